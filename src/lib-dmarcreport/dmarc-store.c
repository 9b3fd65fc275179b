/* reports -> SQLite. The schema is dmarc-store-schema.sql, embedded at
   build time. Statements are prepared once per store and reused: the
   import path stores tens of thousands of records a second. */

#include "lib.h"
#include "str.h"
#include "mkdir-parents.h"
#include "hostpid.h"
#include "time-util.h"
#include "dmarc-event.h"
#include "dmarc-store.h"
#include "dmarc-store-schema.h"

#include <sqlite3.h>
#include <zlib.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <arpa/inet.h>

/* Concurrent deliveries to one user wait this long for each other
   (deliveries set their own, shorter dmarcreport_lock_timeout). */
#define DMARC_STORE_BUSY_TIMEOUT_MSECS (30*1000)
/* How long an explicit checkpoint waits for other connections. */
#define STORE_CHECKPOINT_BUSY_MSECS 1000
/* A writer waiting for the lock looks again this often. SQLite's own
   busy handler backs off to 100 ms, so a waiter could miss every short
   gap an import leaves between its batches. */
#define STORE_BUSY_POLL_USECS 2000
/* What an import leaves between two batches for a waiting writer: a few
   of its polls. */
#define STORE_BATCH_YIELD_USECS (3*STORE_BUSY_POLL_USECS)

enum store_stmt {
	STMT_FIND_REPORT,
	STMT_INSERT_REPORT,
	STMT_INSERT_ERROR,
	STMT_INSERT_RECORD,
	STMT_INSERT_REASON,
	STMT_INSERT_AUTH,
	STMT_UPDATE_REPORT,
	/* in this order: removing a report from a batch */
	STMT_DELETE_REPORT_AUTH,
	STMT_DELETE_REPORT_REASONS,
	STMT_DELETE_REPORT_RECORDS,
	STMT_DELETE_REPORT_ERRORS,
	STMT_DELETE_REPORT,
	STMT_COUNT
};

static const char *const store_stmt_sql[STMT_COUNT] = {
	/* the key: org_name as the domain, case-insensitively (the
	   parser lower-cases the domain) */
	[STMT_FIND_REPORT] =
		"SELECT id, archive_path, content_digest FROM reports"
		" WHERE report_id = ? AND policy_domain = ?"
		" AND org_name = ? COLLATE NOCASE ORDER BY id LIMIT 1",
	[STMT_INSERT_REPORT] =
		/* The id is past every id that records still refer to:
		   expire deletes a report's row first and its records in
		   later transactions, and SQLite would otherwise hand the
		   freed highest id to the next report, whose records the
		   rest of that expire would then delete. Both maxima are
		   index lookups. */
		"INSERT INTO reports (id, org_name, report_id, policy_domain,"
		" date_begin, date_end, email, extra_contact_info, generator,"
		" format, format_version, policy_adkim, policy_aspf, policy_p,"
		" policy_sp, policy_np, policy_pct, policy_fo, policy_testing,"
		" policy_discovery_method, archive_path, message_id, received,"
		" version)"
		" VALUES (1 + max(coalesce((SELECT max(id) FROM reports), 0),"
		"  coalesce((SELECT max(report_ref) FROM records), 0)),"
		" ?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
		" ON CONFLICT (org_name, report_id, policy_domain) DO NOTHING",
	[STMT_INSERT_ERROR] =
		"INSERT INTO report_errors (report_ref, seq, error)"
		" VALUES (?,?,?)",
	[STMT_INSERT_RECORD] =
		"INSERT INTO records (report_ref, source_ip, source_ip_key, count,"
		" disposition, dkim, spf, dmarc_pass, header_from,"
		" envelope_from, envelope_to, source_ip_valid, extensions)"
		" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[STMT_INSERT_REASON] =
		"INSERT INTO record_reasons (record_ref, seq, type, comment)"
		" VALUES (?,?,?,?)",
	[STMT_INSERT_AUTH] =
		"INSERT INTO auth_results (record_ref, type, domain, selector,"
		" scope, result, human_result) VALUES (?,?,?,?,?,?,?)",
	[STMT_UPDATE_REPORT] =
		"UPDATE reports SET record_count = ?, message_count = ?,"
		" pass_count = ?, extensions = ?, content_digest = ?"
		" WHERE id = ?",
	[STMT_DELETE_REPORT_AUTH] =
		"DELETE FROM auth_results WHERE record_ref IN"
		" (SELECT id FROM records WHERE report_ref = ?)",
	[STMT_DELETE_REPORT_REASONS] =
		"DELETE FROM record_reasons WHERE record_ref IN"
		" (SELECT id FROM records WHERE report_ref = ?)",
	[STMT_DELETE_REPORT_RECORDS] =
		"DELETE FROM records WHERE report_ref = ?",
	[STMT_DELETE_REPORT_ERRORS] =
		"DELETE FROM report_errors WHERE report_ref = ?",
	[STMT_DELETE_REPORT] = "DELETE FROM reports WHERE id = ?",
};

struct dmarc_store {
	char *path;
	sqlite3 *db;
	unsigned int busy_timeout_msecs;
	/* when the busy handler first saw the current lock wait */
	struct timeval busy_start;
	sqlite3_stmt *stmts[STMT_COUNT];
	enum dmarc_store_error last_error;
	bool readonly;
	bool in_batch;
	/* a batch's transaction is committed and begun again between
	   reports once it is this old (0: one transaction) */
	unsigned int batch_msecs;
	struct timeval batch_start;
	/* reports added since the batch's transaction began */
	unsigned int batch_reports;
	/* why the batch cannot be committed any more (a failed report could
	   not be removed), or NULL */
	char *batch_error;
	struct dmarc_store_report *report;
	/* the schema version of the file (older only when read-only) */
	int version;
	/* the file opened, to tell whether the path still names it */
	dev_t dev;
	ino_t ino;
};

struct dmarc_store_report {
	struct dmarc_store *store;
	const struct dmarc_report *report;
	int64_t report_ref;
	int64_t records, messages, pass;
	struct dmarc_store_digest digest;
};

/* Only this report is refused (a value the database does not take); the
   database itself is fine. */
static bool sqlite_code_is_report_error(int code)
{
	return code == SQLITE_CONSTRAINT || code == SQLITE_TOOBIG ||
		code == SQLITE_MISMATCH || code == SQLITE_RANGE;
}

static const char *
store_error(struct dmarc_store *store, const char *what)
{
	int code = sqlite3_errcode(store->db);

	if (sqlite_code_is_report_error(code))
		store->last_error = DMARC_STORE_ERROR_REPORT;
	else if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
		store->last_error = DMARC_STORE_ERROR_BUSY;
	else
		store->last_error = DMARC_STORE_ERROR_STORAGE;
	if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
		return t_strdup_printf("%s: %s: database busy for more than "
				       "%u ms: %s", store->path, what,
				       store->busy_timeout_msecs,
				       sqlite3_errmsg(store->db));
	}
	return t_strdup_printf("%s: %s: %s", store->path, what,
			       sqlite3_errmsg(store->db));
}

/* what names the step in the error (the SQL may be the whole schema). */
static int store_exec(struct dmarc_store *store, const char *sql,
		      const char *what, const char **error_r)
{
	if (sqlite3_exec(store->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		*error_r = store_error(store, what);
		return -1;
	}
	return 0;
}

/* A new database is made whole under a temporary name (mode 0600, WAL,
   schema) and then linked into place, so that no process ever opens it
   half made. Otherwise one opening it before its creator switched it to
   WAL would try the switch itself, which waits for every other
   connection to close: with lmtp keeping its connection between
   deliveries, that is forever. */
static int store_create_file(const char *path, const char **error_r)
{
	const char *dir, *p, *tmp_path;
	struct stat st;
	sqlite3 *db = NULL;
	int fd, ret = 0;

	if (stat(path, &st) == 0)
		return 0;
	if (stat(t_strconcat(path, "-wal", NULL), &st) == 0 && st.st_size > 0) {
		/* the last writes of a database that is gone from here:
		   SQLite would read them into the new one */
		*error_r = t_strdup_printf("%s-wal exists without its database"
			" (moved away while in use?): move it and %s-shm to "
			"where the database went, or remove them", path, path);
		return -1;
	}
	p = strrchr(path, '/');
	dir = p == NULL ? "." : p == path ? "/" : t_strdup_until(path, p);
	if (p != NULL && p != path &&
	    mkdir_parents(dir, 0700) < 0 && errno != EEXIST) {
		*error_r = t_strdup_printf("%s: mkdir(%s) failed: %m",
					   path, dir);
		return -1;
	}
	tmp_path = t_strdup_printf("%s/.%s.new.%s", dir,
				   p == NULL ? path : p + 1, my_pid);
	/* left by a process of the same pid that died making it */
	(void)unlink(tmp_path);
	fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", tmp_path);
		return -1;
	}
	i_close_fd(&fd);
	if (sqlite3_open_v2(tmp_path, &db, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    sqlite3_exec(db, t_strconcat("BEGIN;", dmarc_store_schema_sql,
					 "COMMIT;", NULL),
			 NULL, NULL, NULL) != SQLITE_OK) {
		*error_r = t_strdup_printf("%s: creating the database: %s",
			tmp_path, db == NULL ? "out of memory" :
			sqlite3_errmsg(db));
		ret = -1;
	}
	/* checkpoints and removes the temporary -wal and -shm */
	if (db != NULL && sqlite3_close(db) != SQLITE_OK && ret == 0) {
		*error_r = t_strdup_printf("%s: closing the new database "
					   "failed", tmp_path);
		ret = -1;
	}
	if (ret == 0 && link(tmp_path, path) < 0 && errno != EEXIST) {
		/* EEXIST: another process made it first, which is as good */
		*error_r = t_strdup_printf("link(%s, %s) failed: %m",
					   tmp_path, path);
		ret = -1;
	}
	i_unlink_if_exists(tmp_path);
	return ret;
}

/* Runs a one-column integer query, *value_r = 0 when it returns no row. */
static int store_query_int(struct dmarc_store *store, const char *sql,
			   const char *what, int *value_r,
			   const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	*value_r = 0;
	if (sqlite3_prepare_v2(store->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		*error_r = store_error(store, what);
		return -1;
	}
	ret = sqlite3_step(stmt);
	if (ret == SQLITE_ROW)
		*value_r = sqlite3_column_int(stmt, 0);
	else if (ret != SQLITE_DONE)
		*error_r = store_error(store, what);
	sqlite3_finalize(stmt);
	return ret == SQLITE_ROW || ret == SQLITE_DONE ? 0 : -1;
}

/* *version_r = 0 when there is no schema_version table; *tables_r counts
   all tables, to tell an empty file from somebody else's database. */
static int store_get_version(struct dmarc_store *store, int *version_r,
			     int *tables_r, const char **error_r)
{
	int have_version;

	*version_r = 0;
	if (store_query_int(store,
		"SELECT count(*) FROM sqlite_master WHERE type = 'table'",
		"reading the schema", tables_r, error_r) < 0 ||
	    store_query_int(store,
		"SELECT count(*) FROM sqlite_master WHERE type = 'table'"
		" AND name = 'schema_version'",
		"reading the schema", &have_version, error_r) < 0)
		return -1;
	if (have_version == 0)
		return 0;
	return store_query_int(store, "SELECT max(version) FROM schema_version",
			       "reading schema_version", version_r, error_r);
}

/* --- upgrading an older database in place ---

   One function per step, each bringing the schema from the version
   before it to its own; they run in order in one IMMEDIATE transaction
   (two processes opening the file at once do not both upgrade it), and
   end where dmarc-store-schema.sql starts a new database. */

/* Version 3: every byte of an aggregate report kept. The report's format and its
   <version> as given, <extensions> and unknown elements, the <error>s and
   <reason>s as lists of rows (they were newline-joined text), a record's
   invalid source_ip marked, a digest of the content to tell a conflicting
   resend, and an index for the case-insensitive key lookup. Rows stored
   before keep what they had: format unknown (NULL), version the
   format_version they were stored with. */
static const char store_migrate_3_sql[] =
	"ALTER TABLE reports ADD COLUMN format TEXT;"
	"ALTER TABLE reports ADD COLUMN version TEXT;"
	"ALTER TABLE reports ADD COLUMN extensions TEXT;"
	"ALTER TABLE reports ADD COLUMN content_digest TEXT;"
	"ALTER TABLE records ADD COLUMN source_ip_valid INTEGER NOT NULL"
	" DEFAULT 1;"
	"ALTER TABLE records ADD COLUMN extensions TEXT;"
	"UPDATE records SET source_ip_valid = 0 WHERE source_ip_key IS NULL;"
	"UPDATE reports SET version = format_version;"
	"CREATE INDEX IF NOT EXISTS reports_key ON reports"
	" (report_id, policy_domain);"
	"CREATE TABLE IF NOT EXISTS report_errors ("
	" report_ref INTEGER NOT NULL REFERENCES reports (id)"
	"  ON DELETE CASCADE, seq INTEGER NOT NULL, error TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS report_errors_report ON report_errors"
	" (report_ref);"
	"CREATE TABLE IF NOT EXISTS record_reasons ("
	" record_ref INTEGER NOT NULL REFERENCES records (id)"
	"  ON DELETE CASCADE, seq INTEGER NOT NULL, type TEXT NOT NULL,"
	" comment TEXT);"
	"CREATE INDEX IF NOT EXISTS record_reasons_record ON record_reasons"
	" (record_ref);"
	/* the newline-joined lists become rows, one per line */
	"WITH RECURSIVE split(ref, seq, item, rest) AS ("
	" SELECT id, -1, NULL, errors || char(10) FROM reports"
	"  WHERE errors IS NOT NULL AND errors != ''"
	" UNION ALL SELECT ref, seq + 1,"
	"  substr(rest, 1, instr(rest, char(10)) - 1),"
	"  substr(rest, instr(rest, char(10)) + 1) FROM split WHERE rest != '')"
	" INSERT INTO report_errors (report_ref, seq, error)"
	" SELECT ref, seq, item FROM split WHERE seq >= 0;"
	"WITH RECURSIVE split(ref, seq, item, rest) AS ("
	" SELECT id, -1, NULL, reasons || char(10) FROM records"
	"  WHERE reasons IS NOT NULL AND reasons != ''"
	" UNION ALL SELECT ref, seq + 1,"
	"  substr(rest, 1, instr(rest, char(10)) - 1),"
	"  substr(rest, instr(rest, char(10)) + 1) FROM split WHERE rest != '')"
	" INSERT INTO record_reasons (record_ref, seq, type, comment)"
	" SELECT ref, seq,"
	"  CASE WHEN instr(item, ': ') > 0"
	"   THEN substr(item, 1, instr(item, ': ') - 1) ELSE item END,"
	"  CASE WHEN instr(item, ': ') > 0"
	"   THEN substr(item, instr(item, ': ') + 2) ELSE NULL END"
	" FROM split WHERE seq >= 0;"
	"CREATE TABLE IF NOT EXISTS resolved_names (ip TEXT PRIMARY KEY,"
	" name TEXT, expires INTEGER NOT NULL);"
	"UPDATE reports SET errors = NULL WHERE errors IS NOT NULL;"
	"UPDATE records SET reasons = NULL WHERE reasons IS NOT NULL;";

static const struct store_migration {
	int version;		/* the version the step reaches */
	const char *sql;
} store_migrations[] = {
	/* Version 2: the SMTP TLS and failure report tables. The schema's
	   statements are all IF NOT EXISTS: applied to a version 1
	   database, it adds them (and the tables of version 3). */
	{ 2, dmarc_store_schema_sql },
	{ 3, store_migrate_3_sql },
};

static int store_migrate(struct dmarc_store *store, int *version,
			 const char **error_r)
{
	unsigned int i;
	int tables;

	if (store_exec(store, "BEGIN IMMEDIATE", "upgrading the schema",
		       error_r) < 0)
		return -1;
	/* another process may have upgraded it meanwhile */
	if (store_get_version(store, version, &tables, error_r) < 0) {
		(void)sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	for (i = 0; i < N_ELEMENTS(store_migrations); i++) {
		const struct store_migration *step = &store_migrations[i];

		if (step->version <= *version)
			continue;
		if (store_exec(store, step->sql, t_strdup_printf(
				"upgrading the schema to version %d",
				step->version), error_r) < 0 ||
		    store_exec(store, t_strdup_printf(
				"INSERT INTO schema_version (version) "
				"VALUES (%d)", step->version),
			       "upgrading the schema", error_r) < 0) {
			(void)sqlite3_exec(store->db, "ROLLBACK", NULL, NULL,
					   NULL);
			return -1;
		}
		*version = step->version;
	}
	if (store_exec(store, "COMMIT", "upgrading the schema", error_r) < 0) {
		(void)sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	i_assert(*version == DMARC_STORE_SCHEMA_VERSION);
	return 0;
}

/* Returns 1 when the schema is usable, 0 for an empty file opened
   read-only (a first delivery is still creating it, or failed to), 2 for
   an older schema opened read-only (to be upgraded first), -1 on
   error. */
static int store_check_schema(struct dmarc_store *store, bool readonly,
			      const char **error_r)
{
	int version, tables;

	if (store_get_version(store, &version, &tables, error_r) < 0)
		return -1;
	if (version == 0 && tables == 0) {
		if (readonly)
			return 0;
		/* IMMEDIATE: two first deliveries must not both create it */
		if (store_exec(store, "BEGIN IMMEDIATE",
			       "creating the schema", error_r) < 0)
			return -1;
		if (store_get_version(store, &version, &tables, error_r) < 0 ||
		    (version == 0 && tables == 0 &&
		     store_exec(store, dmarc_store_schema_sql,
				"creating the schema", error_r) < 0) ||
		    store_exec(store, "COMMIT", "creating the schema",
			       error_r) < 0) {
			(void)sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		if (version == 0 && tables == 0)
			version = DMARC_STORE_SCHEMA_VERSION;
	}
	if (version == 0) {
		/* never add our tables to some other application's file */
		*error_r = t_strdup_printf("%s: not a dovecot-dmarcreport "
					   "database (no schema_version)",
					   store->path);
		return -1;
	}
	if (version > DMARC_STORE_SCHEMA_VERSION) {
		*error_r = t_strdup_printf("%s: database schema version %d is "
			"newer than this build knows (%d)", store->path,
			version, DMARC_STORE_SCHEMA_VERSION);
		return -1;
	}
	if (version < DMARC_STORE_SCHEMA_VERSION) {
		if (readonly)
			return 2;
		if (store_migrate(store, &version, error_r) < 0)
			return -1;
	}
	store->version = version;
	return 1;
}

/* Polls every STORE_BUSY_POLL_USECS until busy_timeout_msecs have passed
   since this wait began (count 0). */
static int store_busy_handler(void *context, int count)
{
	struct dmarc_store *store = context;
	struct timeval now;

	i_gettimeofday(&now);
	if (count == 0)
		store->busy_start = now;
	if (timeval_diff_msecs(&now, &store->busy_start) >=
	    (int)store->busy_timeout_msecs)
		return 0;
	usleep(STORE_BUSY_POLL_USECS);
	return 1;
}

static void store_set_busy_timeout(struct dmarc_store *store,
				   unsigned int msecs)
{
	store->busy_timeout_msecs = msecs;
	(void)sqlite3_busy_handler(store->db, store_busy_handler, store);
}

int dmarc_store_open(const char *path, enum dmarc_store_open_flags flags,
		     struct dmarc_store **store_r, const char **error_r)
{
	bool readonly = (flags & DMARC_STORE_OPEN_READONLY) != 0;
	struct dmarc_store *store;
	struct stat st;
	int sqlite_flags, ret;

	*store_r = NULL;
	if ((flags & DMARC_STORE_OPEN_CREATE) != 0 && !readonly) {
		if (store_create_file(path, error_r) < 0)
			return -1;
	} else if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = t_strdup_printf("stat(%s) failed: %m", path);
		return -1;
	}

	store = i_new(struct dmarc_store, 1);
	store->path = i_strdup(path);
	store->busy_timeout_msecs = DMARC_STORE_BUSY_TIMEOUT_MSECS;
	store->readonly = readonly;
	sqlite_flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
		SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &store->db, sqlite_flags, NULL) != SQLITE_OK) {
		*error_r = store->db == NULL ?
			t_strdup_printf("%s: cannot open the database", path) :
			store_error(store, "opening the database");
		dmarc_store_close(&store);
		return -1;
	}
	sqlite3_extended_result_codes(store->db, 0);
	store_set_busy_timeout(store, store->busy_timeout_msecs);
	/* WAL: readers (doveadm) never block a delivery. synchronous=NORMAL:
	   the mail and the archive are the durable copies; a power cut may
	   lose the last transactions, never consistency. A file that is not
	   a database fails here with SQLite's "file is not a database". */
	if ((!readonly &&
	     store_exec(store, "PRAGMA journal_mode = WAL",
			"opening the database", error_r) < 0) ||
	    store_exec(store, "PRAGMA synchronous = NORMAL",
		       "opening the database", error_r) < 0 ||
	    store_exec(store, "PRAGMA foreign_keys = ON",
		       "opening the database", error_r) < 0 ||
	    (ret = store_check_schema(store, readonly, error_r)) < 0) {
		dmarc_store_close(&store);
		return -1;
	}
	if (ret == 0) {
		dmarc_store_close(&store);
		return 0;
	}
	if (ret == 2) {
		/* an older schema: upgrade it through a writable connection
		   (readers see every stored field the same way), then read */
		dmarc_store_close(&store);
		if (dmarc_store_open(path, 0, &store, error_r) < 0) {
			*error_r = t_strdup_printf("the database needs an "
				"upgrade to schema version %d, which failed: "
				"%s", DMARC_STORE_SCHEMA_VERSION, *error_r);
			return -1;
		}
		dmarc_store_close(&store);
		return dmarc_store_open(path, flags, store_r, error_r);
	}
	if (stat(path, &st) < 0) {
		*error_r = t_strdup_printf("stat(%s) failed: %m", path);
		dmarc_store_close(&store);
		return -1;
	}
	store->dev = st.st_dev;
	store->ino = st.st_ino;
	*store_r = store;
	return 1;
}

bool dmarc_store_is_current(struct dmarc_store *store)
{
	struct stat st;

	return stat(store->path, &st) == 0 &&
		st.st_dev == store->dev && st.st_ino == store->ino;
}

void dmarc_store_set_busy_timeout(struct dmarc_store *store,
				  unsigned int msecs)
{
	store_set_busy_timeout(store, msecs);
}

const char *dmarc_store_db_error(struct dmarc_store *store, const char *what)
{
	return store_error(store, what);
}

enum dmarc_store_error dmarc_store_get_error(struct dmarc_store *store)
{
	return store->last_error;
}

/* Write the WAL into the database file and empty it (truncated through
   the open file, so even a -wal that cannot be removed afterwards is
   harmless), waiting briefly for other connections. */
static int store_checkpoint_truncate(struct dmarc_store *store)
{
	int ret;

	unsigned int busy_timeout_msecs = store->busy_timeout_msecs;

	store->busy_timeout_msecs = STORE_CHECKPOINT_BUSY_MSECS;
	ret = sqlite3_wal_checkpoint_v2(store->db, NULL,
					SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	store->busy_timeout_msecs = busy_timeout_msecs;
	return ret == SQLITE_OK ? 0 : -1;
}

void dmarc_store_checkpoint(struct dmarc_store *store)
{
	if (!store->readonly)
		(void)store_checkpoint_truncate(store);
}

/* The file was moved away (or replaced) while open. SQLite then skips
   its checkpoint on close and leaves the WAL under the old name, where the
   database next created at the path would find it: its reports would be
   lost from the moved file, and a database restored to the path could be
   corrupted. Write them into the moved file and empty the WAL first. */
static void store_checkpoint_moved(struct dmarc_store *store)
{
	struct event *event;

	if (store_checkpoint_truncate(store) == 0)
		return;
	/* a root event: lmtp may close a kept store after the delivery
	   (dmarc-store-cache.h), when no user's event is at hand */
	event = dmarc_event_create(NULL);
	event_set_append_log_prefix(event, "dmarcreport: ");
	e_warning(event, "%s: moved away while open, and its last reports "
		  "could not be written into it: %s", store->path,
		  sqlite3_errmsg(store->db));
	event_unref(&event);
}

void dmarc_store_close(struct dmarc_store **_store)
{
	struct dmarc_store *store = *_store;
	unsigned int i;

	*_store = NULL;
	if (store == NULL)
		return;
	if (store->report != NULL)
		dmarc_store_report_rollback(&store->report);
	if (store->in_batch)
		(void)sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
	for (i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(store->stmts[i]);
	if (store->db != NULL && !store->readonly && store->ino != 0 &&
	    !dmarc_store_is_current(store))
		store_checkpoint_moved(store);
	if (store->db != NULL)
		(void)sqlite3_close(store->db);
	i_free(store->batch_error);
	i_free(store->path);
	i_free(store);
}

struct sqlite3 *dmarc_store_get_db(struct dmarc_store *store)
{
	return store->db;
}

int dmarc_store_get_version(struct dmarc_store *store)
{
	return store->version;
}

const char *dmarc_store_get_path(struct dmarc_store *store)
{
	return store->path;
}

bool dmarc_store_in_batch(struct dmarc_store *store)
{
	return store->in_batch;
}

static sqlite3_stmt *
store_stmt(struct dmarc_store *store, enum store_stmt id,
	   const char **error_r)
{
	sqlite3_stmt *stmt = store->stmts[id];

	/* prepared on first use: a read-only store never needs them */
	if (stmt == NULL) {
		if (sqlite3_prepare_v3(store->db, store_stmt_sql[id], -1,
				       SQLITE_PREPARE_PERSISTENT, &stmt,
				       NULL) != SQLITE_OK) {
			*error_r = store_error(store, "preparing a statement");
			return NULL;
		}
		store->stmts[id] = stmt;
	}
	return stmt;
}

/* Runs a prepared INSERT/UPDATE to its end and leaves it ready for the
   next use. The bindings are cleared at once: they are SQLITE_STATIC
   pointers into strings that die with the caller's frame. */
static int store_step(struct dmarc_store *store, sqlite3_stmt *stmt,
		      const char *what, const char **error_r)
{
	int ret = sqlite3_step(stmt);

	if (ret != SQLITE_DONE) {
		/* before reset: reset would replace the message */
		*error_r = store_error(store, what);
	}
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return ret == SQLITE_DONE ? 0 : -1;
}

static void bind_text(sqlite3_stmt *stmt, int idx, const char *value)
{
	/* SQLITE_STATIC: the strings outlive the step that reads them,
	   and store_step() clears the binding right after */
	if (value == NULL)
		sqlite3_bind_null(stmt, idx);
	else
		sqlite3_bind_text(stmt, idx, value, -1, SQLITE_STATIC);
}

int dmarc_store_batch_begin(struct dmarc_store *store, const char **error_r)
{
	i_assert(!store->in_batch && store->report == NULL);
	/* A batch's pages stay in the cache until COMMIT instead of spilling
	   to the WAL again and again: 8 MiB, bounded, for an import. */
	if (store_exec(store, "PRAGMA cache_size = -8192", "sizing the cache",
		       error_r) < 0 ||
	    /* Checking each record's and auth result's parent costs a
	       lookup per row; the batch only inserts children of the report
	       it just inserted, and deletes a failed one's by hand. */
	    store_exec(store, "PRAGMA foreign_keys = OFF", "starting a batch",
		       error_r) < 0 ||
	    store_exec(store, "BEGIN IMMEDIATE", "starting a batch",
		       error_r) < 0) {
		(void)sqlite3_exec(store->db, "PRAGMA foreign_keys = ON",
				   NULL, NULL, NULL);
		return -1;
	}
	store->in_batch = TRUE;
	store->batch_reports = 0;
	i_gettimeofday(&store->batch_start);
	return 0;
}

void dmarc_store_batch_set_max_time(struct dmarc_store *store,
				    unsigned int msecs)
{
	store->batch_msecs = msecs;
}

unsigned int dmarc_store_batch_uncommitted(struct dmarc_store *store)
{
	return store->in_batch ? store->batch_reports : 0;
}

/* Commit what the batch has so far and begin its transaction again, with
   a short pause between: the write lock is free for a moment, and a
   delivery waiting for it (polling every STORE_BUSY_POLL_USECS) gets it. */
static int store_batch_renew(struct dmarc_store *store, bool force,
			     const char **error_r)
{
	struct timeval now;

	i_gettimeofday(&now);
	if (!force && (store->batch_msecs == 0 ||
		       timeval_diff_msecs(&now, &store->batch_start) <
		       (int)store->batch_msecs))
		return 0;
	if (store->batch_error != NULL) {
		*error_r = t_strdup(store->batch_error);
		return -1;
	}
	if (store_exec(store, "COMMIT", "committing a batch", error_r) < 0) {
		store->batch_error = i_strdup(*error_r);
		return -1;
	}
	store->batch_reports = 0;
	usleep(STORE_BATCH_YIELD_USECS);
	if (store_exec(store, "BEGIN IMMEDIATE", "starting a batch",
		       error_r) < 0) {
		/* nothing is lost, but the batch is over */
		store->batch_error = i_strdup(*error_r);
		return -1;
	}
	i_gettimeofday(&store->batch_start);
	return 0;
}

int dmarc_store_batch_continue(struct dmarc_store *store, const char **error_r)
{
	i_assert(store->in_batch && store->report == NULL);
	return store_batch_renew(store, FALSE, error_r);
}

int dmarc_store_batch_flush(struct dmarc_store *store, const char **error_r)
{
	i_assert(store->in_batch && store->report == NULL);
	return store_batch_renew(store, TRUE, error_r);
}

int dmarc_store_batch_commit(struct dmarc_store *store, const char **error_r)
{
	i_assert(store->in_batch && store->report == NULL);
	store->in_batch = FALSE;
	if (store->batch_error == NULL && sqlite3_get_autocommit(store->db) != 0) {
		store->batch_error = i_strdup_printf(
			"%s: the import transaction was rolled back",
			store->path);
	}
	if (store->batch_error != NULL) {
		*error_r = t_strdup(store->batch_error);
		i_free(store->batch_error);
		(void)sqlite3_exec(store->db, "ROLLBACK; PRAGMA foreign_keys = ON",
				   NULL, NULL, NULL);
		return -1;
	}
	if (store_exec(store, "COMMIT", "committing a batch", error_r) < 0) {
		(void)sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
		(void)store_exec(store, "PRAGMA foreign_keys = ON",
				 "ending a batch", error_r);
		return -1;
	}
	return store_exec(store, "PRAGMA foreign_keys = ON", "ending a batch",
			  error_r);
}

/* Outside a batch each report is a transaction of its own. Inside one,
   a report that fails half-way is deleted again, with its records and
   auth results, instead of being a savepoint: savepoints journal every
   page they touch, which made imports slow. */
static int store_tx_begin(struct dmarc_store *store, const char **error_r)
{
	if (store->in_batch) {
		/* SQLite ends the whole transaction on some errors (disk
		   full): later reports must not be committed one by one */
		if (store->batch_error == NULL &&
		    sqlite3_get_autocommit(store->db) != 0) {
			store->batch_error = i_strdup_printf(
				"%s: the import transaction was rolled back",
				store->path);
		}
		if (store->batch_error != NULL) {
			*error_r = t_strdup(store->batch_error);
			return -1;
		}
		return store_batch_renew(store, FALSE, error_r);
	}
	return store_exec(store, "BEGIN IMMEDIATE", "starting a transaction",
			  error_r);
}

static int store_tx_commit(struct dmarc_store *store, const char **error_r)
{
	if (store->in_batch) {
		store->batch_reports++;
		return 0;
	}
	return store_exec(store, "COMMIT", "committing the report", error_r);
}

/* report_ref: the report's row, 0 when none was inserted */
static void store_tx_rollback(struct dmarc_store *store, int64_t report_ref)
{
	const char *error;
	sqlite3_stmt *stmt;
	enum store_stmt i;

	if (!store->in_batch) {
		(void)sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
		return;
	}
	if (report_ref == 0)
		return;
	/* children first: foreign keys are off in a batch */
	for (i = STMT_DELETE_REPORT_AUTH; i <= STMT_DELETE_REPORT; i++) {
		if ((stmt = store_stmt(store, i, &error)) == NULL ||
		    (sqlite3_bind_int64(stmt, 1, report_ref),
		     store_step(store, stmt, "removing a failed report",
				&error) < 0)) {
			/* half a report would stay: the batch must not
			   commit */
			if (store->batch_error == NULL)
				store->batch_error = i_strdup(error);
			return;
		}
	}
}

/* --- the content digest ---
   Every stored field of a report but its key (equal by definition) and
   where it came from (archive, message-id, time), each behind its own tag
   byte, NULL told apart from "": equal digests mean the same stored
   report. It only tells a resent report from a conflicting one, so two
   of zlib's checksums side by side (CRC-32 and Adler-32: 64 bits, about
   a tenth of SHA-256's cost on the import path) are enough: a reporter
   who forged a collision would only get its own second version treated
   as a resend. */

enum digest_tag {
	DIGEST_RECORD = 'R', DIGEST_VALID, DIGEST_COUNT, DIGEST_DISPOSITION,
	DIGEST_DKIM, DIGEST_SPF, DIGEST_REASON, DIGEST_COMMENT,
	DIGEST_HEADER_FROM, DIGEST_ENVELOPE_FROM, DIGEST_ENVELOPE_TO,
	DIGEST_AUTH_DKIM, DIGEST_AUTH_SPF, DIGEST_SELECTOR, DIGEST_SCOPE,
	DIGEST_RESULT, DIGEST_HUMAN_RESULT, DIGEST_RECORD_EXTENSIONS,
	DIGEST_FORMAT = 'A', DIGEST_VERSION, DIGEST_EMAIL,
	DIGEST_EXTRA_CONTACT_INFO, DIGEST_BEGIN, DIGEST_END, DIGEST_GENERATOR,
	DIGEST_ERROR, DIGEST_ADKIM, DIGEST_ASPF, DIGEST_P, DIGEST_SP,
	DIGEST_NP, DIGEST_PCT, DIGEST_FO, DIGEST_TESTING,
	DIGEST_DISCOVERY_METHOD, DIGEST_EXTENSIONS,
};

static void digest_flush(struct dmarc_store_digest *digest)
{
	digest->crc = crc32_z(digest->crc, digest->buf, digest->used);
	digest->adler = adler32_z(digest->adler, digest->buf, digest->used);
	digest->used = 0;
}

/* The fields are a few bytes each: gathered, the checksums run over
   blocks, which costs a fraction of a call per field. */
static void digest_update(struct dmarc_store_digest *digest,
			  const void *data, size_t size)
{
	if (digest->used + size > sizeof(digest->buf)) {
		digest_flush(digest);
		if (size > sizeof(digest->buf)) {
			digest->crc = crc32_z(digest->crc, data, size);
			digest->adler = adler32_z(digest->adler, data, size);
			return;
		}
	}
	memcpy(digest->buf + digest->used, data, size);
	digest->used += size;
}

static void digest_str(struct dmarc_store_digest *digest,
		       enum digest_tag tag, const char *value)
{
	/* tag, then \1 for NULL or \2, the value and its NUL */
	unsigned char head[2] = { tag, value == NULL ? 1 : 2 };

	digest_update(digest, head, sizeof(head));
	if (value != NULL)
		digest_update(digest, value, strlen(value) + 1);
}

static void digest_int(struct dmarc_store_digest *digest,
		       enum digest_tag tag, int64_t value)
{
	unsigned char buf[1 + sizeof(uint64_t)];
	uint64_t v = (uint64_t)value;
	unsigned int i;

	buf[0] = tag;
	for (i = 0; i < sizeof(uint64_t); i++)
		buf[1 + i] = (v >> (8 * i)) & 0xff;
	digest_update(digest, buf, sizeof(buf));
}

void dmarc_store_digest_init(struct dmarc_store_digest *digest)
{
	digest->crc = crc32_z(0, NULL, 0);
	digest->adler = adler32_z(0, NULL, 0);
	digest->used = 0;
}

void dmarc_store_digest_record(struct dmarc_store_digest *digest,
			       const struct dmarc_record *record)
{
	const struct dmarc_policy_override *reason;
	const struct dmarc_auth_result *auth;

	digest_str(digest, DIGEST_RECORD, record->source_ip);
	digest_int(digest, DIGEST_VALID, record->source_ip_valid ? 1 : 0);
	digest_int(digest, DIGEST_COUNT, record->count);
	digest_str(digest, DIGEST_DISPOSITION, record->disposition);
	digest_str(digest, DIGEST_DKIM, record->dkim);
	digest_str(digest, DIGEST_SPF, record->spf);
	if (array_is_created(&record->reasons)) {
		array_foreach(&record->reasons, reason) {
			digest_str(digest, DIGEST_REASON, reason->type);
			digest_str(digest, DIGEST_COMMENT, reason->comment);
		}
	}
	digest_str(digest, DIGEST_HEADER_FROM, record->header_from);
	digest_str(digest, DIGEST_ENVELOPE_FROM, record->envelope_from);
	digest_str(digest, DIGEST_ENVELOPE_TO, record->envelope_to);
	if (array_is_created(&record->auth_results)) {
		array_foreach(&record->auth_results, auth) {
			digest_str(digest, auth->type == DMARC_AUTH_DKIM ?
				   DIGEST_AUTH_DKIM : DIGEST_AUTH_SPF,
				   auth->domain);
			digest_str(digest, DIGEST_SELECTOR, auth->selector);
			digest_str(digest, DIGEST_SCOPE, auth->scope);
			digest_str(digest, DIGEST_RESULT, auth->result);
			digest_str(digest, DIGEST_HUMAN_RESULT,
				   auth->human_result);
		}
	}
	digest_str(digest, DIGEST_RECORD_EXTENSIONS, record->extensions);
}

const char *dmarc_store_digest_finish(struct dmarc_store_digest *digest,
				      const struct dmarc_report *report)
{
	const struct dmarc_policy_published *pol = &report->policy;
	const char *error;

	digest_str(digest, DIGEST_FORMAT, dmarc_format_name(report->format));
	digest_str(digest, DIGEST_VERSION, report->version);
	digest_str(digest, DIGEST_EMAIL, report->email);
	digest_str(digest, DIGEST_EXTRA_CONTACT_INFO,
		   report->extra_contact_info);
	digest_int(digest, DIGEST_BEGIN, report->date_begin);
	digest_int(digest, DIGEST_END, report->date_end);
	digest_str(digest, DIGEST_GENERATOR, report->generator);
	if (array_is_created(&report->errors)) {
		array_foreach_elem(&report->errors, error)
			digest_str(digest, DIGEST_ERROR, error);
	}
	digest_str(digest, DIGEST_ADKIM, pol->adkim);
	digest_str(digest, DIGEST_ASPF, pol->aspf);
	digest_str(digest, DIGEST_P, pol->p);
	digest_str(digest, DIGEST_SP, pol->sp);
	digest_str(digest, DIGEST_NP, pol->np);
	digest_int(digest, DIGEST_PCT, pol->pct);
	digest_str(digest, DIGEST_FO, pol->fo);
	digest_str(digest, DIGEST_TESTING, pol->testing);
	digest_str(digest, DIGEST_DISCOVERY_METHOD, pol->discovery_method);
	digest_str(digest, DIGEST_EXTENSIONS, report->extensions);
	digest_flush(digest);
	return t_strdup_printf("%08lx%08lx", (unsigned long)digest->crc,
			       (unsigned long)digest->adler);
}

int dmarc_store_find_report(struct dmarc_store *store,
			    const struct dmarc_report *report,
			    struct dmarc_store_found *found_r,
			    const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	i_zero(found_r);
	if ((stmt = store_stmt(store, STMT_FIND_REPORT, error_r)) == NULL)
		return -1;
	bind_text(stmt, 1, report->report_id);
	bind_text(stmt, 2, report->policy.domain);
	bind_text(stmt, 3, report->org_name == NULL ? "" : report->org_name);
	ret = sqlite3_step(stmt);
	if (ret == SQLITE_ROW) {
		found_r->id = sqlite3_column_int64(stmt, 0);
		found_r->archive_path =
			t_strdup((const char *)sqlite3_column_text(stmt, 1));
		found_r->content_digest =
			t_strdup((const char *)sqlite3_column_text(stmt, 2));
	} else if (ret != SQLITE_DONE) {
		*error_r = store_error(store, "looking up the report");
	}
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	if (ret != SQLITE_ROW && ret != SQLITE_DONE)
		return -1;
	return ret == SQLITE_ROW ? 1 : 0;
}

static int store_report_errors(struct dmarc_store *store, int64_t report_ref,
			       const struct dmarc_report *report,
			       const char **error_r)
{
	const char *const *errors;
	sqlite3_stmt *stmt;
	unsigned int i, count;

	if (!array_is_created(&report->errors))
		return 0;
	errors = array_get(&report->errors, &count);
	for (i = 0; i < count; i++) {
		if ((stmt = store_stmt(store, STMT_INSERT_ERROR, error_r)) == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, report_ref);
		sqlite3_bind_int(stmt, 2, i);
		bind_text(stmt, 3, errors[i]);
		if (store_step(store, stmt, "storing an error", error_r) < 0)
			return -1;
	}
	return 0;
}

int dmarc_store_report_begin(struct dmarc_store *store,
			     const struct dmarc_report *report,
			     const struct dmarc_store_report_info *info,
			     struct dmarc_store_report **ctx_r,
			     const char **error_r)
{
	const struct dmarc_policy_published *pol = &report->policy;
	struct dmarc_store_report *ctx;
	struct dmarc_store_found found;
	sqlite3_stmt *stmt;
	int ret;

	i_assert(store->report == NULL);
	*ctx_r = NULL;
	if (store_tx_begin(store, error_r) < 0)
		return -1;
	/* in the transaction: nobody stores it between lookup and insert */
	ret = dmarc_store_find_report(store, report, &found, error_r);
	if (ret != 0) {
		/* stored already (ret 1; the first copy is kept) */
		store_tx_rollback(store, 0);
		return ret < 0 ? -1 : 0;
	}
	if ((stmt = store_stmt(store, STMT_INSERT_REPORT, error_r)) == NULL) {
		store_tx_rollback(store, 0);
		return -1;
	}
	bind_text(stmt, 1, report->org_name == NULL ? "" : report->org_name);
	bind_text(stmt, 2, report->report_id);
	bind_text(stmt, 3, pol->domain);
	sqlite3_bind_int64(stmt, 4, report->date_begin);
	sqlite3_bind_int64(stmt, 5, report->date_end);
	bind_text(stmt, 6, report->email);
	bind_text(stmt, 7, report->extra_contact_info);
	bind_text(stmt, 8, report->generator);
	bind_text(stmt, 9, dmarc_format_name(report->format));
	/* what releases before schema version 2 showed */
	bind_text(stmt, 10, report->version == NULL ? "1.0" : report->version);
	bind_text(stmt, 11, pol->adkim);
	bind_text(stmt, 12, pol->aspf);
	bind_text(stmt, 13, pol->p);
	bind_text(stmt, 14, pol->sp);
	bind_text(stmt, 15, pol->np);
	if (pol->pct == DMARC_UNSET)
		sqlite3_bind_null(stmt, 16);
	else
		sqlite3_bind_int(stmt, 16, pol->pct);
	bind_text(stmt, 17, pol->fo);
	bind_text(stmt, 18, pol->testing);
	bind_text(stmt, 19, pol->discovery_method);
	bind_text(stmt, 20, info->archive_path);
	bind_text(stmt, 21, info->message_id);
	sqlite3_bind_int64(stmt, 22, info->received);
	bind_text(stmt, 23, report->version);
	if (store_step(store, stmt, "storing the report", error_r) < 0) {
		store_tx_rollback(store, 0);
		return -1;
	}
	if (sqlite3_changes(store->db) == 0) {
		/* (org_name, report_id, policy_domain) is stored already */
		store_tx_rollback(store, 0);
		return 0;
	}
	ctx = i_new(struct dmarc_store_report, 1);
	ctx->store = store;
	ctx->report = report;
	ctx->report_ref = sqlite3_last_insert_rowid(store->db);
	dmarc_store_digest_init(&ctx->digest);
	if (store_report_errors(store, ctx->report_ref, report, error_r) < 0) {
		store_tx_rollback(store, ctx->report_ref);
		i_free(ctx);
		return -1;
	}
	store->report = ctx;
	*ctx_r = ctx;
	return 1;
}

bool dmarc_store_ip_key(const char *ip, unsigned char key_r[16])
{
	struct in_addr addr4;

	if (inet_pton(AF_INET6, ip, key_r) == 1)
		return TRUE;
	if (inet_pton(AF_INET, ip, &addr4) != 1)
		return FALSE;
	/* ::ffff:a.b.c.d, so v4 and v6 sort in one key space */
	memset(key_r, 0, 10);
	key_r[10] = 0xff;
	key_r[11] = 0xff;
	memcpy(key_r + 12, &addr4, 4);
	return TRUE;
}

static int
store_reasons(struct dmarc_store *store, int64_t record_ref,
	      const struct dmarc_record *record, const char **error_r)
{
	const struct dmarc_policy_override *reasons;
	sqlite3_stmt *stmt;
	unsigned int i, count;

	if (!array_is_created(&record->reasons))
		return 0;
	reasons = array_get(&record->reasons, &count);
	for (i = 0; i < count; i++) {
		if ((stmt = store_stmt(store, STMT_INSERT_REASON, error_r)) == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, record_ref);
		sqlite3_bind_int(stmt, 2, i);
		bind_text(stmt, 3, reasons[i].type == NULL ? "" :
			  reasons[i].type);
		bind_text(stmt, 4, reasons[i].comment);
		if (store_step(store, stmt, "storing a reason", error_r) < 0)
			return -1;
	}
	return 0;
}

static int
store_auth_results(struct dmarc_store *store, int64_t record_ref,
		   const struct dmarc_record *record, const char **error_r)
{
	const struct dmarc_auth_result *auth;
	sqlite3_stmt *stmt;

	if (!array_is_created(&record->auth_results))
		return 0;
	array_foreach(&record->auth_results, auth) {
		if ((stmt = store_stmt(store, STMT_INSERT_AUTH, error_r)) == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, record_ref);
		bind_text(stmt, 2, auth->type == DMARC_AUTH_DKIM ? "dkim" : "spf");
		bind_text(stmt, 3, auth->domain);
		bind_text(stmt, 4, auth->selector);
		bind_text(stmt, 5, auth->scope);
		bind_text(stmt, 6, auth->result);
		bind_text(stmt, 7, auth->human_result);
		if (store_step(store, stmt, "storing an auth result", error_r) < 0)
			return -1;
	}
	return 0;
}

int dmarc_store_report_add_record(struct dmarc_store_report *ctx,
				  const struct dmarc_record *record,
				  const char **error_r)
{
	struct dmarc_store *store = ctx->store;
	unsigned char key[16];
	sqlite3_stmt *stmt;
	bool dmarc_pass;
	int ret;

	if (record->count < 0) {
		store->last_error = DMARC_STORE_ERROR_REPORT;
		*error_r = t_strdup_printf("%s: record count %"PRId64" is "
					   "negative", store->path,
					   record->count);
		return -1;
	}
	if (ctx->messages > INT64_MAX - record->count) {
		store->last_error = DMARC_STORE_ERROR_REPORT;
		*error_r = t_strdup_printf("%s: the report's message count "
					   "overflows", store->path);
		return -1;
	}
	dmarc_pass = null_strcmp(record->dkim, "pass") == 0 ||
		null_strcmp(record->spf, "pass") == 0;

	T_BEGIN {
		if ((stmt = store_stmt(store, STMT_INSERT_RECORD, error_r)) == NULL)
			ret = -1;
		else {
			sqlite3_bind_int64(stmt, 1, ctx->report_ref);
			bind_text(stmt, 2, record->source_ip);
			/* an invalid one has no key: CIDR filters skip it */
			if (record->source_ip != NULL &&
			    record->source_ip_valid &&
			    dmarc_store_ip_key(record->source_ip, key))
				sqlite3_bind_blob(stmt, 3, key, sizeof(key),
						  SQLITE_STATIC);
			sqlite3_bind_int64(stmt, 4, record->count);
			bind_text(stmt, 5, record->disposition);
			bind_text(stmt, 6, record->dkim);
			bind_text(stmt, 7, record->spf);
			sqlite3_bind_int(stmt, 8, dmarc_pass ? 1 : 0);
			bind_text(stmt, 9, record->header_from);
			bind_text(stmt, 10, record->envelope_from);
			bind_text(stmt, 11, record->envelope_to);
			sqlite3_bind_int(stmt, 12,
					 record->source_ip_valid ? 1 : 0);
			bind_text(stmt, 13, record->extensions);
			ret = store_step(store, stmt, "storing a record", error_r);
		}
		if (ret == 0) {
			int64_t record_ref = sqlite3_last_insert_rowid(store->db);

			ret = store_reasons(store, record_ref, record, error_r);
			if (ret == 0) {
				ret = store_auth_results(store, record_ref,
							 record, error_r);
			}
		}
	} T_END_PASS_STR_IF(ret < 0, error_r);
	if (ret < 0)
		return -1;

	dmarc_store_digest_record(&ctx->digest, record);
	ctx->records++;
	ctx->messages += record->count;
	if (dmarc_pass)
		ctx->pass += record->count;
	return 0;
}

static void store_report_free(struct dmarc_store_report **_ctx)
{
	struct dmarc_store_report *ctx = *_ctx;

	*_ctx = NULL;
	ctx->store->report = NULL;
	i_free(ctx);
}

int dmarc_store_report_commit(struct dmarc_store_report **_ctx,
			      const char **error_r)
{
	struct dmarc_store_report *ctx = *_ctx;
	struct dmarc_store *store = ctx->store;
	sqlite3_stmt *stmt;

	if ((stmt = store_stmt(store, STMT_UPDATE_REPORT, error_r)) == NULL) {
		dmarc_store_report_rollback(_ctx);
		return -1;
	}
	sqlite3_bind_int64(stmt, 1, ctx->records);
	sqlite3_bind_int64(stmt, 2, ctx->messages);
	sqlite3_bind_int64(stmt, 3, ctx->pass);
	/* both known only at the end: report-level extensions may follow
	   the records */
	bind_text(stmt, 4, ctx->report->extensions);
	bind_text(stmt, 5, dmarc_store_digest_finish(&ctx->digest,
						     ctx->report));
	sqlite3_bind_int64(stmt, 6, ctx->report_ref);
	if (store_step(store, stmt, "updating the report's totals",
		       error_r) < 0 ||
	    store_tx_commit(store, error_r) < 0) {
		dmarc_store_report_rollback(_ctx);
		return -1;
	}
	store_report_free(_ctx);
	return 0;
}

void dmarc_store_report_rollback(struct dmarc_store_report **_ctx)
{
	struct dmarc_store_report *ctx = *_ctx;

	store_tx_rollback(ctx->store, ctx->report_ref);
	store_report_free(_ctx);
}
