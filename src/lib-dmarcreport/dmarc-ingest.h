#ifndef DMARC_INGEST_H
#define DMARC_INGEST_H

/* The one pipeline both doors call:
   extract -> archive -> unpack -> recognise (the kinds table,
   dmarc-kinds.h) -> parse -> store.
   A bad attachment is logged (one line naming the message, the attachment
   and the reason) and counted; it never fails the whole message. */

struct istream;
struct event;
struct dmarc_settings;
struct dmarc_ingest;

struct dmarc_ingest_counts {
	unsigned int attachments;  /* attachments seen */
	unsigned int reports_new;
	unsigned int reports_duplicate;
	unsigned int failed;       /* attachments/entries that gave no report */
	uint64_t records;          /* records stored */
	unsigned int queued;       /* attachments queued as pending */
};

void dmarc_ingest_counts_add(struct dmarc_ingest_counts *dest,
			     const struct dmarc_ingest_counts *src);

/* The database is opened on first use and kept open until deinit.
   event is the parent for log lines (it should say which user). */
struct dmarc_ingest *dmarc_ingest_init(const struct dmarc_settings *set,
				       struct event *event);
void dmarc_ingest_deinit(struct dmarc_ingest **ingest);

/* Whether attachments and report files are copied into the archive dir.
   On by default when dmarcreport_archive_dir is set: a delivered mail may
   be deleted later. An import reads files or mails that exist already and
   copies them only when asked. */
void dmarc_ingest_set_archiving(struct dmarc_ingest *ingest, bool archive);

/* Take the database from cache, and give it back at deinit, instead of
   opening and closing it (not in a batch). */
struct dmarc_store_cache;
void dmarc_ingest_set_store_cache(struct dmarc_ingest *ingest,
				  struct dmarc_store_cache *cache);

/* Log stored and duplicate reports at debug level instead of info: an
   import of thousands prints its totals instead. Problems are logged
   either way. */
void dmarc_ingest_set_quiet(struct dmarc_ingest *ingest, bool quiet);

/* For a delivery: wait at most dmarcreport_lock_timeout for another
   writer of the database, and when the database cannot be used (busy,
   unwritable, disk full), queue the attachment in the pending spool next
   to it (dmarc-pending.h) instead of only logging the failure. */
void dmarc_ingest_set_queue_on_failure(struct dmarc_ingest *ingest,
				       bool queue);

/* Store the reports of the pending spool, oldest first; each one stored
   (or found to be no report) is removed from it. Stops at the first
   storage failure, and after max_msecs (0: no limit) so that a delivery
   is not held up by a long queue. include_failed takes also the entries
   set aside after too many attempts. Returns 0, or -1 when the database
   or the spool failed (logged). Not inside a batch: an entry is removed
   only once its report is committed. */
int dmarc_ingest_pending(struct dmarc_ingest *ingest, bool include_failed,
			 unsigned int max_msecs,
			 struct dmarc_ingest_counts *counts);

/* Group the following reports in transactions of a bounded time (doveadm
   import): a tenth of dmarcreport_lock_timeout each, so that deliveries
   get the lock in between. */
int dmarc_ingest_batch_begin(struct dmarc_ingest *ingest);
int dmarc_ingest_batch_commit(struct dmarc_ingest *ingest);

/* A whole mail. received decides the archive's YYYY/MM. Returns 0, or -1
   when storage itself failed (database or archive unusable): the caller
   must not lose the mail; the error was logged already. */
int dmarc_ingest_message(struct dmarc_ingest *ingest, struct istream *input,
			 time_t received, struct dmarc_ingest_counts *counts);

/* A bare report file (.xml, .xml.gz, .zip, .json) as from doveadm import. When
   archiving, it is copied into the archive dir unless it lies inside it
   already (then its stored archive path is its own). Returns as
   dmarc_ingest_message(). */
int dmarc_ingest_file(struct dmarc_ingest *ingest, const char *path,
		      struct dmarc_ingest_counts *counts);
/* The same for a file opened already: input is its bytes (blocking and
   seekable, from offset 0; a file's or memory), mtime its modification
   time. */
int dmarc_ingest_file_stream(struct dmarc_ingest *ingest, const char *path,
			     struct istream *input, time_t mtime,
			     struct dmarc_ingest_counts *counts);

#endif
