#ifndef DMARC_ARCHIVE_H
#define DMARC_ARCHIVE_H

/* raw attachment -> <archive_dir>/YYYY/MM/<safe name>. The name comes from
   the sender: it is reduced to a safe base name, and the file is created
   with O_EXCL so an earlier file is never overwritten. */

/* Reduce an untrusted file name to one safe path component: no directory
   part, no "/" or NUL (also after RFC 2231 decoding), no leading dot, no
   control characters, no device names, at most 200 bytes. Returns fallback
   when nothing usable remains. Allocated from the data stack. */
const char *dmarc_archive_safe_name(const char *filename,
				    const char *fallback);

/* Create a new file for an attachment received at 'when' (UTC decides
   YYYY/MM). Directories are created 0700 and the file 0600. If the name
   exists, "-1", "-2", ... is inserted before the extension. Returns the
   open fd (O_RDWR) and the path relative to archive_dir (data stack). */
int dmarc_archive_create(const char *archive_dir, time_t when,
			 const char *filename, int *fd_r,
			 const char **relpath_r, const char **error_r);

#endif
