#ifndef DMARC_STORE_H
#define DMARC_STORE_H

/* reports -> SQLite (schema in dmarc-store-schema.sql). One transaction
   per report (or per batch for imports), WAL journal and a busy timeout so
   that concurrent deliveries to one user wait for each other instead of
   failing. Only bound parameters reach SQL. */

#include "dmarc-report.h"

struct sqlite3;
struct dmarc_store;
struct dmarc_store_report;

/* 2: SMTP TLS and failure report tables. An older database is upgraded
   when opened for writing; releases before 2 refuse a version 2 file. */
#define DMARC_STORE_SCHEMA_VERSION 2

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
   with "database busy" (default 30 s: concurrent deliveries to one user
   wait for each other). */
void dmarc_store_set_busy_timeout(struct dmarc_store *store,
				  unsigned int msecs);

/* For the query and kind modules only (dmarc-query*.c,
   dmarc-store-kinds.c): the doors never see SQL. */
struct sqlite3 *dmarc_store_get_db(struct dmarc_store *store);
/* The schema version of the open file: older than
   DMARC_STORE_SCHEMA_VERSION only when it was opened read-only (its
   newer tables are then missing: read them as empty). */
int dmarc_store_get_version(struct dmarc_store *store);
const char *dmarc_store_get_path(struct dmarc_store *store);
bool dmarc_store_in_batch(struct dmarc_store *store);

/* Imports group many reports in one transaction; each report is then a
   savepoint, so one bad report does not undo the others. */
int dmarc_store_batch_begin(struct dmarc_store *store, const char **error_r);
int dmarc_store_batch_commit(struct dmarc_store *store, const char **error_r);

struct dmarc_store_report_info {
	const char *archive_path;  /* relative to the archive dir, or NULL */
	const char *message_id;    /* or NULL */
	time_t received;
};

/* Start storing a report. Returns 1 (begun: add records, then commit or
   rollback), 0 when this report (org_name, report_id, policy domain) is
   already stored (nothing begun), -1 on error. */
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

/* Parse an IPv4/IPv6 address to the 16-byte key used in records. */
bool dmarc_store_ip_key(const char *ip, unsigned char key_r[16]);

#endif
