/* Expire: the store deletes reports that ended before a date, of every
   kind, and names the archive files no remaining report uses (doveadm
   dmarc expire removes them). Next to the store, not the read side: it
   is a write, in the store's batch. */

#include "lib.h"
#include "array.h"
#include "dmarc-store.h"

#include <sqlite3.h>

/* Rows of one expired report deleted per statement: a report of a million
   records goes in many short steps, each of which the store's batch may
   commit, so that deliveries get the lock in between. */
#define EXPIRE_CHUNK_RECORDS 2000

#define EXPIRE_WHAT "expiring reports"

/* sql with each of its n parameters bound to before. */
static int
expire_prepare(struct dmarc_store *store, const char *sql,
	       const int64_t *values, unsigned int n, sqlite3_stmt **stmt_r,
	       const char **error_r)
{
	unsigned int i;

	if (sqlite3_prepare_v2(dmarc_store_get_db(store), sql, -1, stmt_r,
			       NULL) != SQLITE_OK) {
		*error_r = dmarc_store_db_error(store, EXPIRE_WHAT);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (sqlite3_bind_int64(*stmt_r, i + 1, values[i]) != SQLITE_OK) {
			*error_r = dmarc_store_db_error(store, EXPIRE_WHAT);
			sqlite3_finalize(*stmt_r);
			return -1;
		}
	}
	return 0;
}

/* 1 row, 0 done, -1 error. */
static int expire_step(struct dmarc_store *store, sqlite3_stmt *stmt,
		       const char **error_r)
{
	switch (sqlite3_step(stmt)) {
	case SQLITE_ROW:
		return 1;
	case SQLITE_DONE:
		return 0;
	default:
		*error_r = dmarc_store_db_error(store, EXPIRE_WHAT);
		return -1;
	}
}

/* Runs a statement without result rows; *changes_r (when not NULL) gets
   the rows it changed. */
static int
expire_run(struct dmarc_store *store, const char *sql, const int64_t *values,
	   unsigned int n, unsigned int *changes_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (expire_prepare(store, sql, values, n, &stmt, error_r) < 0)
		return -1;
	ret = expire_step(store, stmt, error_r);
	if (ret == 0 && changes_r != NULL)
		*changes_r = sqlite3_changes(dmarc_store_get_db(store));
	sqlite3_finalize(stmt);
	return ret < 0 ? -1 : 0;
}

/* Appends the archive paths sql selects (its one column). */
static int
expire_paths(struct dmarc_store *store, const char *sql,
	     const int64_t *values, unsigned int n, pool_t pool,
	     ARRAY_TYPE(const_string) *paths_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	const char *path;
	int ret;

	if (expire_prepare(store, sql, values, n, &stmt, error_r) < 0)
		return -1;
	while ((ret = expire_step(store, stmt, error_r)) > 0) {
		path = p_strdup(pool, (const char *)sqlite3_column_text(stmt, 0));
		array_push_back(paths_r, &path);
	}
	sqlite3_finalize(stmt);
	return ret;
}

/* The records (and their auth results) of reports that are gone: those
   just deleted, or left by an expire that was interrupted. Readers never
   see them: every query joins records to reports. */
static int expire_orphans(struct dmarc_store *store, const char **error_r)
{
	/* the same chunk of records, first their auth results and reasons
	   (foreign keys are off in a batch) */
	static const char *const chunk_deletes[] = {
		"DELETE FROM auth_results WHERE record_ref IN (SELECT id"
		" FROM records WHERE report_ref = ? ORDER BY id LIMIT ?)",
		"DELETE FROM record_reasons WHERE record_ref IN (SELECT id"
		" FROM records WHERE report_ref = ? ORDER BY id LIMIT ?)",
		"DELETE FROM records WHERE id IN (SELECT id FROM records"
		" WHERE report_ref = ? ORDER BY id LIMIT ?)",
	};
	ARRAY(int64_t) refs;
	sqlite3_stmt *stmt;
	unsigned int i, changes;
	int64_t ref, values[2];
	int ret;

	t_array_init(&refs, 64);
	if (expire_prepare(store, "SELECT DISTINCT report_ref FROM records"
			   " WHERE report_ref NOT IN (SELECT id FROM reports)",
			   NULL, 0, &stmt, error_r) < 0)
		return -1;
	while ((ret = expire_step(store, stmt, error_r)) > 0) {
		ref = sqlite3_column_int64(stmt, 0);
		array_push_back(&refs, &ref);
	}
	sqlite3_finalize(stmt);
	if (ret < 0)
		return -1;

	array_foreach_elem(&refs, ref) {
		values[0] = ref;
		values[1] = EXPIRE_CHUNK_RECORDS;
		do {
			if (dmarc_store_batch_continue(store, error_r) < 0)
				return -1;
			for (i = 0; i < N_ELEMENTS(chunk_deletes); i++) {
				if (expire_run(store, chunk_deletes[i], values,
					       2, &changes, error_r) < 0)
					return -1;
			}
			/* changes: of the records' delete, the last one */
		} while (changes > 0);
	}
	/* the expired reports' errors: a handful each */
	return expire_run(store, "DELETE FROM report_errors WHERE report_ref"
			  " NOT IN (SELECT id FROM reports)", NULL, 0, NULL,
			  error_r);
}

/* Returns 0, or -1 with nothing deleted, or -2 when the reports are
   deleted (and paths_r may be used) but some of their rows are left for
   the next expire. */
static int
expire_aggregate(struct dmarc_store *store, int64_t before, pool_t pool,
		 ARRAY_TYPE(const_string) *paths_r, unsigned int *deleted_r,
		 const char **error_r)
{
	const int64_t values[] = { before, before };
	const char *error;
	int ret = 0;

	/* A batch: foreign keys off, so that deleting a report does not
	   cascade to all its records in one long statement; they follow in
	   chunks. Its first transaction is IMMEDIATE: no delivery may add a
	   report using one of the archive files between reading the paths
	   and deleting the rows. */
	if (dmarc_store_batch_begin(store, error_r) < 0)
		return -1;
	if (paths_r != NULL) {
		/* a file that held several reports goes only with the last;
		   one that a TLS or failure report was also read from (a
		   zip of several kinds) is left to expire_kinds(), which
		   names it when the last of those goes */
		ret = expire_paths(store, t_strconcat(
			"SELECT DISTINCT archive_path FROM reports"
			" WHERE date_end < ? AND archive_path IS NOT NULL"
			" AND archive_path NOT IN (SELECT archive_path"
			"  FROM reports WHERE date_end >= ?"
			"  AND archive_path IS NOT NULL)",
			dmarc_store_get_version(store) < 2 ? "" :
			" AND archive_path NOT IN (SELECT archive_path"
			"  FROM tls_reports WHERE archive_path IS NOT NULL"
			"  UNION SELECT archive_path FROM failure_reports"
			"  WHERE archive_path IS NOT NULL)",
			" ORDER BY archive_path", NULL), values, 2, pool,
			paths_r, error_r);
	}
	if (ret == 0) {
		ret = expire_run(store, "DELETE FROM reports WHERE date_end < ?",
				 values, 1, deleted_r, error_r);
	}
	if (ret < 0) {
		(void)dmarc_store_batch_commit(store, &error);
		return -1;
	}
	/* the reports are gone as one: their rows follow in steps */
	if (dmarc_store_batch_flush(store, error_r) < 0) {
		(void)dmarc_store_batch_commit(store, &error);
		return -1;
	}
	if (expire_orphans(store, error_r) < 0) {
		/* the reports are gone, and no report uses their files
		   any more: whatever rows are left go with the next
		   expire */
		(void)dmarc_store_batch_commit(store, &error);
		return -2;
	}
	return dmarc_store_batch_commit(store, error_r) < 0 ? -2 : 0;
}

/* TLS reports whose date range ended before before, failure reports that
   arrived before it: small reports, one transaction deletes them. */
static int
expire_kinds(struct dmarc_store *store, int64_t before, pool_t pool,
	     ARRAY_TYPE(const_string) *paths_r, unsigned int *deleted_r,
	     const char **error_r)
{
	static const char *const deletes[] = {
		"DELETE FROM tls_reports WHERE date_end < ?",
		"DELETE FROM failure_reports WHERE"
		" coalesce(arrival_time, received) < ?",
	};
	const int64_t values[] = { before, before, before, before };
	sqlite3 *db = dmarc_store_get_db(store);
	unsigned int i, changes;
	int ret = 0;

	/* IMMEDIATE: no delivery may add a report using one of the archive
	   files between reading the paths and deleting the rows */
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		*error_r = dmarc_store_db_error(store, EXPIRE_WHAT);
		return -1;
	}
	if (paths_r != NULL) {
		/* a file goes only when no remaining report of any kind
		   was read from it */
		ret = expire_paths(store,
			"SELECT DISTINCT archive_path FROM ("
			" SELECT archive_path FROM tls_reports WHERE date_end < ?"
			" UNION SELECT archive_path FROM failure_reports"
			"  WHERE coalesce(arrival_time, received) < ?)"
			" WHERE archive_path IS NOT NULL AND archive_path NOT IN ("
			" SELECT archive_path FROM tls_reports WHERE date_end >= ?"
			"  AND archive_path IS NOT NULL"
			" UNION SELECT archive_path FROM failure_reports"
			"  WHERE coalesce(arrival_time, received) >= ?"
			"  AND archive_path IS NOT NULL"
			" UNION SELECT archive_path FROM reports"
			"  WHERE archive_path IS NOT NULL)"
			" ORDER BY archive_path", values, 4, pool, paths_r,
			error_r);
	}
	for (i = 0; ret == 0 && i < N_ELEMENTS(deletes); i++) {
		ret = expire_run(store, deletes[i], values, 1, &changes,
				 error_r);
		if (ret == 0)
			*deleted_r += changes;
	}
	if (ret == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		*error_r = dmarc_store_db_error(store, EXPIRE_WHAT);
		ret = -1;
	}
	if (ret < 0)
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

int dmarc_store_expire(struct dmarc_store *store, int64_t before,
		       pool_t pool, ARRAY_TYPE(const_string) *paths_r,
		       unsigned int *deleted_r, const char **error_r)
{
	unsigned int deleted = 0, deleted_kinds = 0, committed_paths;
	int ret;

	*deleted_r = 0;
	ret = expire_aggregate(store, before, pool, paths_r, &deleted,
			       error_r);
	if (ret == -1) {
		/* nothing deleted: a report that is still there may use
		   the files */
		if (paths_r != NULL)
			array_clear(paths_r);
		return -1;
	}
	/* the aggregate reports are deleted for good: their files go
	   whatever happens next */
	*deleted_r = deleted;
	if (ret < 0)
		return -1;
	committed_paths = paths_r == NULL ? 0 : array_count(paths_r);
	if (dmarc_store_get_version(store) >= 2 &&
	    expire_kinds(store, before, pool, paths_r, &deleted_kinds,
			 error_r) < 0) {
		/* rolled back: its reports, and their files, are there */
		if (paths_r != NULL) {
			array_delete(paths_r, committed_paths,
				     array_count(paths_r) - committed_paths);
		}
		return -1;
	}
	*deleted_r = deleted + deleted_kinds;
	return 0;
}
