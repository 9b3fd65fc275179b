#ifndef DMARC_IMPORT_H
#define DMARC_IMPORT_H

/* Report files (.xml, .xml.gz, .zip), whole mails (.eml, or a first line
   that is a header field) and directories of them -> dmarc-ingest.
   Directories are read recursively in name order, dot files and "tmp"
   left out; symlinks are followed, but each file and directory is read
   once per import (device and inode), so a link loop ends. One input
   that fails is counted and logged; only a storage failure stops it. */

struct dmarc_ingest;
struct dmarc_ingest_counts;
struct dmarc_import;

/* counts gets the totals of every input. event is the parent of the log
   lines (prefixed "dmarc import: "). */
struct dmarc_import *
dmarc_import_init(struct dmarc_ingest *ingest, struct event *event,
		  struct dmarc_ingest_counts *counts);
void dmarc_import_deinit(struct dmarc_import **import);

/* named: given by the user, where anything but a readable regular file
   or directory is an error (counted as unreadable); found in a directory,
   a FIFO, device or socket is skipped with a warning. A directory that
   cannot be read is unreadable either way. Returns 0, or -1 when storage
   failed (logged by the ingest): the caller should stop. */
int dmarc_import_path(struct dmarc_import *import, const char *path,
		      bool named);

/* Files read (a file reached twice counts once). */
unsigned int dmarc_import_get_inputs(struct dmarc_import *import);
/* Inputs that could not be read at all (doveadm: exit status 66). */
unsigned int dmarc_import_get_unreadable(struct dmarc_import *import);

#endif
