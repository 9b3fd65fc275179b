#ifndef DMARC_STORE_H
#define DMARC_STORE_H

/* reports -> SQLite (schema in dmarc-store-schema.sql). One transaction
   per report (or per batch of a bounded time for imports), WAL journal and
   a busy timeout so that concurrent writers to one user's database wait
   for each other instead of failing. Only bound parameters reach SQL. */

#include "array.h"
#include "dmarc-report.h"

struct sqlite3;
struct dmarc_store;
struct dmarc_store_report;

/* 2: SMTP TLS and failure report tables. 3: every byte of an aggregate
   report kept (format, version as given, extensions, errors and reasons
   as rows, invalid source_ip marked, content digest, resolved names).
   An older database is upgraded in place when opened (through a writable
   connection also when opened read-only); releases before refuse it. */
#define DMARC_STORE_SCHEMA_VERSION 3

enum dmarc_store_open_flags {
	/* Create the file (0600) and its directory (0700) when missing. */
	DMARC_STORE_OPEN_CREATE = 0x01,
	DMARC_STORE_OPEN_READONLY = 0x02,
};

/* Returns 1 and the store, 0 when the file does not exist and CREATE was
   not given, or when READONLY finds an empty file whose schema a first
   delivery has not written yet (callers treat both as an empty database),
   -1 on error (cannot open, corrupt, not ours, or a schema newer than this
   build knows). Errors name the database file. */
int dmarc_store_open(const char *path, enum dmarc_store_open_flags flags,
		     struct dmarc_store **store_r, const char **error_r);
void dmarc_store_close(struct dmarc_store **store);

/* TRUE while the store's path still names the file it has open: not
   removed, moved away or replaced since. */
bool dmarc_store_is_current(struct dmarc_store *store);

/* Write the WAL into the database file and empty it, when no other
   connection is in the way within a second (else left to the next
   checkpoint). For a store about to be closed by a process that may no
   longer be allowed to remove its -wal file. */
void dmarc_store_checkpoint(struct dmarc_store *store);

/* How long to wait for another process's write transaction before failing
   with "database busy" (default 30 s; deliveries wait less, see
   dmarcreport_lock_timeout). The wait polls every few milliseconds, so a
   short gap between another writer's transactions is enough. */
void dmarc_store_set_busy_timeout(struct dmarc_store *store,
				  unsigned int msecs);

enum dmarc_store_error {
	DMARC_STORE_ERROR_NONE = 0,
	/* Only this report was refused (a value the database does not
	   take, a count that overflows): the store is fine, go on. */
	DMARC_STORE_ERROR_REPORT,
	/* Another writer held the lock past the busy timeout. */
	DMARC_STORE_ERROR_BUSY,
	/* The database cannot be written (disk full, permissions, I/O
	   error, corrupt file). */
	DMARC_STORE_ERROR_STORAGE,
};
/* The error of the database's last call, naming the file and what, and
   classified for dmarc_store_get_error(): for the kind modules that run
   their own statements (dmarc-store-kinds.c). */
const char *dmarc_store_db_error(struct dmarc_store *store, const char *what);
/* What the last failure of a dmarc_store_*() call on store was. */
enum dmarc_store_error dmarc_store_get_error(struct dmarc_store *store);

/* For the query and kind modules only (dmarc-query*.c,
   dmarc-store-kinds.c): the doors never see SQL. */
struct sqlite3 *dmarc_store_get_db(struct dmarc_store *store);
/* The schema version of the open file: always DMARC_STORE_SCHEMA_VERSION
   now that a read-only open upgrades an older file first; the readers
   that skip tables of newer versions keep working either way. */
int dmarc_store_get_version(struct dmarc_store *store);
const char *dmarc_store_get_path(struct dmarc_store *store);
bool dmarc_store_in_batch(struct dmarc_store *store);

/* Imports group many reports in one transaction; a report that fails is
   removed again (an aggregate report is deleted with its records, a TLS
   or failure report is a savepoint rolled back), so one bad report does
   not undo the others. */
int dmarc_store_batch_begin(struct dmarc_store *store, const char **error_r);
int dmarc_store_batch_commit(struct dmarc_store *store, const char **error_r);
/* Commit the batch's transaction and begin a new one between two reports
   once it is msecs old (0, the default: one transaction for the batch),
   leaving the lock free for a moment: deliveries interleave with a long
   import instead of waiting for its end. */
void dmarc_store_batch_set_max_time(struct dmarc_store *store,
				    unsigned int msecs);
/* Between two steps of a long batch that stores no reports (expire): the
   same commit once the max time is reached. flush commits now. */
int dmarc_store_batch_continue(struct dmarc_store *store, const char **error_r);
int dmarc_store_batch_flush(struct dmarc_store *store, const char **error_r);
/* Reports stored in the batch's current transaction, not committed yet:
   what a failed dmarc_store_batch_commit() loses. */
unsigned int dmarc_store_batch_uncommitted(struct dmarc_store *store);

struct dmarc_store_report_info {
	const char *archive_path;  /* relative to the archive dir, or NULL */
	const char *message_id;    /* or NULL */
	time_t received;
};

/* Start storing a report. Returns 1 (begun: add records, then commit or
   rollback), 0 when this report (org_name case-insensitively, report_id,
   policy domain) is already stored (nothing begun: the first copy is
   kept), -1 on error. The report must stay valid until the commit,
   which reads its extensions (they may follow the records). */
int dmarc_store_report_begin(struct dmarc_store *store,
			     const struct dmarc_report *report,
			     const struct dmarc_store_report_info *info,
			     struct dmarc_store_report **ctx_r,
			     const char **error_r);
int dmarc_store_report_add_record(struct dmarc_store_report *ctx,
				  const struct dmarc_record *record,
				  const char **error_r);
/* Both end the context and set *ctx to NULL. */
int dmarc_store_report_commit(struct dmarc_store_report **ctx,
			      const char **error_r);
void dmarc_store_report_rollback(struct dmarc_store_report **ctx);

/* The stored report with the same key, for telling a resent copy from a
   conflicting one: the same content has the same digest. */
struct dmarc_store_found {
	int64_t id;
	const char *archive_path;   /* NULL when none */
	const char *content_digest; /* NULL when stored before version 2 */
};
/* Returns 1 and *found_r (strings on the data stack), 0 when there is no
   such report, -1 on error. */
int dmarc_store_find_report(struct dmarc_store *store,
			    const struct dmarc_report *report,
			    struct dmarc_store_found *found_r,
			    const char **error_r);

/* A digest of what the store keeps of a report: records as they come,
   then the report (whose extensions may follow the records). Returns
   16 hex digits (CRC-32 and Adler-32), on the data stack. */
struct dmarc_store_digest {
	unsigned long crc, adler;
	unsigned char buf[1024];
	size_t used;
};
void dmarc_store_digest_init(struct dmarc_store_digest *digest);
void dmarc_store_digest_record(struct dmarc_store_digest *digest,
			       const struct dmarc_record *record);
const char *dmarc_store_digest_finish(struct dmarc_store_digest *digest,
				      const struct dmarc_report *report);

/* --- expire (dmarc-store-expire.c) --- */

/* Deletes the aggregate reports whose date_end < before in one
   transaction, then their records and auth results (and those left by an
   interrupted expire) in chunks, committed as the store's batch max time
   says (see dmarc_store_batch_set_max_time()): a huge report does not
   hold the lock for long. Then, in one transaction, the TLS reports whose
   date range ended before before and the failure reports that arrived
   before it. *deleted_r counts the reports of every kind. When paths_r is
   not NULL, it gets the archive paths (relative, as stored, allocated
   from pool) that no remaining report of any kind uses any more. Returns
   0, or -1 with paths_r holding only the files of the reports that were
   deleted nonetheless (the aggregate reports are deleted in their own
   transaction before the other kinds; some of their rows may be left for
   the next expire). */
int dmarc_store_expire(struct dmarc_store *store, int64_t before,
		       pool_t pool, ARRAY_TYPE(const_string) *paths_r,
		       unsigned int *deleted_r, const char **error_r);

/* Parse an IPv4/IPv6 address to the 16-byte key used in records. */
bool dmarc_store_ip_key(const char *ip, unsigned char key_r[16]);

#endif
