#ifndef DMARC_PENDING_H
#define DMARC_PENDING_H

/* The pending spool: reports a delivery could not store (the database
   busy past dmarcreport_lock_timeout, or not writable), kept in
   <dmarcreport_db>-pending/ next to the database until the next delivery
   or `doveadm dmarc import --pending` stores them. An entry is a small
   file naming the attachment's archive copy, plus <id>.data holding the
   attachment's bytes when it has no archive copy. Entries are taken with
   flock(), so two processes never work on the same one. */

struct istream;
struct dmarc_pending_iter;

struct dmarc_pending_info {
	/* relative to the archive dir, or NULL: the bytes are in the
	   entry's data file */
	const char *archive_path;
	const char *message_id;    /* or NULL */
	time_t received;
};

struct dmarc_pending_entry {
	const char *name;          /* for log lines */
	struct dmarc_pending_info info;
	/* the data file, when info.archive_path is NULL */
	const char *data_path;
	/* how many times it was taken before, this time included */
	unsigned int attempts;
};

/* Tries an entry gets before it is set aside as failed (a report that
   kills the process must not do so at every delivery). */
#define DMARC_PENDING_MAX_ATTEMPTS 3

/* <db_path>-pending */
const char *dmarc_pending_dir(const char *db_path);

/* Add an entry. When info->archive_path is NULL the bytes are read from
   input (seekable, from offset 0 to its end). The spool's disk use stays
   under max_size. Returns 0, or -1 with *error_r saying why nothing was
   queued. */
int dmarc_pending_add(const char *db_path, uoff_t max_size,
		      const struct dmarc_pending_info *info,
		      struct istream *input, const char **error_r);

/* Entries oldest first. Without include_failed, entries set aside after
   DMARC_PENDING_MAX_ATTEMPTS are left out (import --pending takes them
   too). */
struct dmarc_pending_iter *
dmarc_pending_iter_init(const char *db_path, bool include_failed);
/* Entries listed and not yet returned (some may be taken by others). */
unsigned int dmarc_pending_iter_count(struct dmarc_pending_iter *iter);
/* Returns 1 and the next entry, taken (locked, its attempt counted), 0 at
   the end, -1 on an error with this entry (logged by the caller; the
   iteration goes on). An entry that has now failed too often is set
   aside, returned as an error saying so. */
int dmarc_pending_iter_next(struct dmarc_pending_iter *iter,
			    const struct dmarc_pending_entry **entry_r,
			    const char **error_r);
/* Done with the entry iter_next returned: removed when it was stored (or
   found to be no report), else kept for the next try. */
void dmarc_pending_iter_done(struct dmarc_pending_iter *iter, bool remove);
/* Returns -1 when the spool dir could not be read (error_r says why). */
int dmarc_pending_iter_deinit(struct dmarc_pending_iter **iter,
			      const char **error_r);

#endif
