/* Unit tests for dmarc-store.c: reports are built by hand and read back
   with plain SQLite queries, so the test checks the schema's meaning too. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "hex-binary.h"
#include "ioloop.h"
#include "time-util.h"
#include "test-dmarc-common.h"
#include "dmarc-store.h"
#include "dmarc-store-cache.h"

#include <sqlite3.h>
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* --- helpers --- */

static const char *test_db_path(const char *name)
{
	return t_strconcat(test_tmpdir(), "/", name, "/reports.sqlite", NULL);
}

/* The directory of a path from test_db_path(), for files made by hand. */
static void test_db_mkdir(const char *path)
{
	const char *dir = t_strdup_until(path, strrchr(path, '/'));

	if (mkdir(dir, 0700) < 0)
		i_fatal("mkdir(%s) failed: %m", dir);
}

static struct dmarc_store *test_open(const char *path)
{
	struct dmarc_store *store;
	const char *error = NULL;

	if (dmarc_store_open(path, DMARC_STORE_OPEN_CREATE, &store,
			     &error) != 1)
		i_fatal("dmarc_store_open(%s): %s", path, error);
	return store;
}

/* All rows of a query, columns joined by '|', rows ended by ";\n", NULL
   as "NULL". A connection of its own, like the doveadm plugin's. */
static const char *test_sql(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *stmt;
	string_t *str = t_str_new(256);
	int i, ret;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		i_fatal("sqlite3_open(%s): %s", path, sqlite3_errmsg(db));
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		i_fatal("%s: %s", sql, sqlite3_errmsg(db));
	while ((ret = sqlite3_step(stmt)) == SQLITE_ROW) {
		for (i = 0; i < sqlite3_column_count(stmt); i++) {
			if (i > 0)
				str_append_c(str, '|');
			if (sqlite3_column_type(stmt, i) == SQLITE_NULL)
				str_append(str, "NULL");
			else {
				str_append(str, (const char *)
					   sqlite3_column_text(stmt, i));
			}
		}
		str_append(str, ";\n");
	}
	if (ret != SQLITE_DONE)
		i_fatal("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return str_c(str);
}

static void test_sql_exec(const char *path, const char *sql)
{
	sqlite3 *db;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		i_fatal("%s: %s: %s", path, sql, sqlite3_errmsg(db));
	sqlite3_close(db);
}

static const char *test_counts(const char *path)
{
	return test_sql(path, "SELECT (SELECT count(*) FROM reports),"
			" (SELECT count(*) FROM records),"
			" (SELECT count(*) FROM auth_results)");
}

/* A report with every field set; its three records come from
   test_report_records. */
static void test_report_init(struct dmarc_report *report, const char *id)
{
	const char *error;

	i_zero(report);
	report->version = "1.0";
	report->org_name = "google.com";
	report->email = "noreply-dmarc-support@google.com";
	report->extra_contact_info = "https://support.google.com/a/answer/2466580";
	report->report_id = id;
	report->date_begin = 1704067200;
	report->date_end = 1704153599;
	report->generator = "test 1.0";
	t_array_init(&report->errors, 2);
	error = "first error";
	array_push_back(&report->errors, &error);
	error = "second error";
	array_push_back(&report->errors, &error);
	report->policy.domain = "example.com";
	report->policy.adkim = "r";
	report->policy.aspf = "s";
	report->policy.p = "reject";
	report->policy.sp = "quarantine";
	report->policy.np = "none";
	report->policy.pct = 100;
	report->policy.fo = "1";
	report->policy.testing = "n";
	report->policy.discovery_method = "treewalk";
	report->extensions = "<x:e xmlns:x=\"urn:x\">1</x:e>";
}

static const struct test_record_def {
	const char *ip;
	int64_t count;
	const char *disposition, *dkim, *spf;
	const char *reason_type, *reason_comment;
	unsigned int auth_count;
} test_records[] = {
	{ "192.0.2.1", 10, "none", "pass", "fail", "forwarded", "list", 2 },
	{ "2001:db8::1", 5, "quarantine", "fail", "fail", NULL, NULL, 1 },
	{ "198.51.100.7", 1, "reject", "fail", "pass", "local_policy", NULL, 0 },
};

/* Reuses one record as the parser does. */
static int test_store_records(struct dmarc_store_report *sreport,
			      const char **error_r)
{
	struct dmarc_record record;
	struct dmarc_auth_result *auth;
	struct dmarc_policy_override *reason;
	unsigned int i;

	i_zero(&record);
	t_array_init(&record.reasons, 2);
	t_array_init(&record.auth_results, 2);
	for (i = 0; i < N_ELEMENTS(test_records); i++) {
		const struct test_record_def *def = &test_records[i];

		array_clear(&record.reasons);
		array_clear(&record.auth_results);
		record.source_ip = def->ip;
		record.source_ip_valid = TRUE;
		record.count = def->count;
		record.disposition = def->disposition;
		record.dkim = def->dkim;
		record.spf = def->spf;
		record.header_from = "example.com";
		record.envelope_from = i == 0 ? "bounce.example.com" : NULL;
		record.envelope_to = i == 0 ? "example.net" : NULL;
		record.extensions = i == 0 ? "<ext/>" : NULL;
		if (def->reason_type != NULL) {
			reason = array_append_space(&record.reasons);
			reason->type = def->reason_type;
			reason->comment = def->reason_comment;
			if (i == 0) {
				/* a second reason, without comment */
				reason = array_append_space(&record.reasons);
				reason->type = "mailing_list";
			}
		}
		if (def->auth_count >= 1) {
			auth = array_append_space(&record.auth_results);
			auth->type = DMARC_AUTH_SPF;
			auth->domain = "bounce.example.com";
			auth->scope = "mfrom";
			auth->result = "softfail";
		}
		if (def->auth_count >= 2) {
			auth = array_append_space(&record.auth_results);
			auth->type = DMARC_AUTH_DKIM;
			auth->domain = "example.com";
			auth->selector = "s1";
			auth->result = "pass";
			auth->human_result = "good sig";
		}
		if (dmarc_store_report_add_record(sreport, &record, error_r) < 0)
			return -1;
	}
	return 0;
}

/* Stores a whole report: returns what report_begin returned, or -1. */
static int test_store_report(struct dmarc_store *store,
			     const struct dmarc_report *report,
			     const char **error_r)
{
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	int ret;

	i_zero(&info);
	info.archive_path = "2024/01/google.com!example.com!1.xml.gz";
	info.message_id = "<abc@google.com>";
	info.received = 1704200000;
	ret = dmarc_store_report_begin(store, report, &info, &sreport, error_r);
	if (ret <= 0)
		return ret;
	if (test_store_records(sreport, error_r) < 0) {
		dmarc_store_report_rollback(&sreport);
		return -1;
	}
	if (dmarc_store_report_commit(&sreport, error_r) < 0)
		return -1;
	return 1;
}

static void test_store_or_fail(struct dmarc_store *store, const char *id)
{
	struct dmarc_report report;
	const char *error = NULL;

	test_report_init(&report, id);
	if (test_store_report(store, &report, &error) != 1)
		i_fatal("storing %s: %s", id, error);
}

/* --- open --- */

static void test_open_create_modes(void)
{
	const char *path = test_db_path("create/sub");
	const char *dir = t_strconcat(test_tmpdir(), "/create", NULL);
	struct dmarc_store *store;
	struct stat st;
	mode_t old_umask;

	test_begin("store: create makes 0700 dirs and 0600 files, any umask");
	/* umask 0: the modes must come from the code, not the umask */
	old_umask = umask(0);
	store = test_open(path);
	test_assert_strcmp(test_sql(path, "SELECT version FROM schema_version"),
			   t_strdup_printf("%d;\n", DMARC_STORE_SCHEMA_VERSION));
	test_assert(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0700);
	test_assert(stat(t_strconcat(dir, "/sub", NULL), &st) == 0 &&
		    (st.st_mode & 07777) == 0700);
	test_assert(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600);
	/* WAL: the -wal and -shm files exist while the store is open */
	test_assert(stat(t_strconcat(path, "-wal", NULL), &st) == 0 &&
		    (st.st_mode & 07777) == 0600);
	test_assert(stat(t_strconcat(path, "-shm", NULL), &st) == 0 &&
		    (st.st_mode & 07777) == 0600);
	test_assert_strcmp(test_sql(path, "PRAGMA journal_mode"), "wal;\n");
	dmarc_store_close(&store);
	test_assert(store == NULL);
	/* opening again keeps the data and does not re-apply the schema */
	store = test_open(path);
	test_assert_strcmp(test_sql(path, "SELECT count(*) FROM schema_version"),
			   "1;\n");
	dmarc_store_close(&store);
	umask(old_umask);
	test_end();
}

static void test_open_missing(void)
{
	static const enum dmarc_store_open_flags flags[] = {
		0, DMARC_STORE_OPEN_READONLY,
		DMARC_STORE_OPEN_READONLY | DMARC_STORE_OPEN_CREATE,
	};
	const char *path = test_db_path("missing");
	struct dmarc_store *store;
	const char *error;
	struct stat st;
	unsigned int i;

	test_begin("store: a missing database without CREATE is empty (0)");
	for (i = 0; i < N_ELEMENTS(flags); i++) {
		store = (void *)1;
		test_assert_idx(dmarc_store_open(path, flags[i], &store,
						 &error) == 0, i);
		test_assert_idx(store == NULL, i);
		test_assert_idx(stat(path, &st) < 0 && errno == ENOENT, i);
	}
	test_end();
}

static void test_open_readonly_empty_file(void)
{
	const char *path = test_db_path("empty");
	struct dmarc_store *store;
	const char *error;
	int fd;

	test_begin("store: read-only open of an empty file (schema not yet "
		   "written) is empty (0)");
	test_db_mkdir(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	test_assert(fd != -1);
	i_close_fd(&fd);
	test_assert(dmarc_store_open(path, DMARC_STORE_OPEN_READONLY, &store,
				     &error) == 0);
	test_assert(store == NULL);
	test_end();
}

static void test_open_newer_schema(void)
{
	const char *path = test_db_path("newer");
	struct dmarc_store *store;
	const char *error = NULL;
	unsigned int i;

	test_begin("store: a newer schema version is refused");
	store = test_open(path);
	dmarc_store_close(&store);
	test_sql_exec(path, t_strdup_printf("UPDATE schema_version SET "
		"version = %d", DMARC_STORE_SCHEMA_VERSION + 1));
	for (i = 0; i < 2; i++) {
		test_assert_idx(dmarc_store_open(path, i == 0 ?
			DMARC_STORE_OPEN_CREATE : DMARC_STORE_OPEN_READONLY,
			&store, &error) == -1, i);
		test_assert_idx(store == NULL, i);
		test_assert_strcmp_idx(error, t_strdup_printf(
			"%s: database schema version %d is newer than this "
			"build knows (%d)", path, DMARC_STORE_SCHEMA_VERSION + 1,
			DMARC_STORE_SCHEMA_VERSION), i);
	}
	test_end();
}

/* The schema of release 1 (schema version 1) as it shipped, to make the
   databases of that release. */
static const char test_schema_v1_sql[] =
	"CREATE TABLE schema_version (\n"
	"  version INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE reports (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  org_name TEXT NOT NULL,\n"
	"  report_id TEXT NOT NULL,\n"
	"  policy_domain TEXT NOT NULL,\n"
	"  date_begin INTEGER NOT NULL,\n"
	"  date_end INTEGER NOT NULL,\n"
	"  email TEXT,\n"
	"  extra_contact_info TEXT,\n"
	"  generator TEXT,\n"
	"  errors TEXT,\n"
	"  format_version TEXT NOT NULL,\n"
	"  policy_adkim TEXT,\n"
	"  policy_aspf TEXT,\n"
	"  policy_p TEXT,\n"
	"  policy_sp TEXT,\n"
	"  policy_np TEXT,\n"
	"  policy_pct INTEGER,\n"
	"  policy_fo TEXT,\n"
	"  policy_testing TEXT,\n"
	"  policy_discovery_method TEXT,\n"
	"  record_count INTEGER NOT NULL DEFAULT 0,\n"
	"  message_count INTEGER NOT NULL DEFAULT 0,\n"
	"  pass_count INTEGER NOT NULL DEFAULT 0,\n"
	"  archive_path TEXT,\n"
	"  message_id TEXT,\n"
	"  received INTEGER NOT NULL,\n"
	"  UNIQUE (org_name, report_id, policy_domain)\n"
	");\n"
	"CREATE INDEX reports_domain_begin ON reports (policy_domain, date_begin);\n"
	"CREATE INDEX reports_begin ON reports (date_begin);\n"
	"CREATE TABLE records (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  report_ref INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,\n"
	"  source_ip TEXT NOT NULL,\n"
	"  source_ip_key BLOB,\n"
	"  count INTEGER NOT NULL,\n"
	"  disposition TEXT,\n"
	"  dkim TEXT,\n"
	"  spf TEXT,\n"
	"  dmarc_pass INTEGER NOT NULL,\n"
	"  reasons TEXT,\n"
	"  header_from TEXT,\n"
	"  envelope_from TEXT,\n"
	"  envelope_to TEXT\n"
	");\n"
	"CREATE INDEX records_report ON records (report_ref);\n"
	"CREATE INDEX records_source ON records (source_ip_key);\n"
	"CREATE TABLE auth_results (\n"
	"  record_ref INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,\n"
	"  type TEXT NOT NULL,\n"
	"  domain TEXT,\n"
	"  selector TEXT,\n"
	"  scope TEXT,\n"
	"  result TEXT,\n"
	"  human_result TEXT\n"
	");\n"
	"CREATE INDEX auth_results_record ON auth_results (record_ref);\n"
	"INSERT INTO schema_version (version) VALUES (1);\n";

/* A version 1 database with one report, two records and an auth result,
   as release 1 made it (WAL, 0600). */
static void test_make_v1_database(const char *path)
{
	int fd;

	test_db_mkdir(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd == -1)
		i_fatal("open(%s) failed: %m", path);
	i_close_fd(&fd);
	test_sql_exec(path, t_strconcat("PRAGMA journal_mode = WAL;BEGIN;",
		test_schema_v1_sql,
		"INSERT INTO reports (id, org_name, report_id, policy_domain,"
		" date_begin, date_end, email, format_version, policy_p,"
		" policy_pct, record_count, message_count, pass_count,"
		" archive_path, message_id, received) VALUES (7, 'Org',"
		" 'r-1', 'example.com', 1000, 2000, 'a@b', '1.0', 'reject',"
		" 100, 2, 12, 10, '2024/01/x.xml', '<m@x>', 3000);"
		"INSERT INTO records (id, report_ref, source_ip, source_ip_key,"
		" count, disposition, dkim, spf, dmarc_pass, header_from)"
		" VALUES (1, 7, '192.0.2.1', x'00000000000000000000ffffc0000201',"
		" 10, 'none', 'pass', 'fail', 1, 'example.com'), (2, 7,"
		" '2001:db8::1', NULL, 2, 'reject', 'fail', 'fail', 0, NULL);"
		"INSERT INTO auth_results (record_ref, type, domain, result)"
		" VALUES (1, 'dkim', 'example.com', 'pass');"
		"COMMIT;", NULL));
}

static const char *test_v1_contents(const char *path)
{
	return test_sql(path,
		"SELECT r.id, org_name, report_id, policy_domain, date_begin,"
		" date_end, email, policy_p, policy_pct, record_count,"
		" message_count, pass_count, archive_path, message_id,"
		" received, c.id, source_ip, hex(source_ip_key), count,"
		" disposition, dkim, spf, dmarc_pass, header_from,"
		" (SELECT group_concat(type || ' ' || domain || ' ' || result)"
		"  FROM auth_results WHERE record_ref = c.id)"
		" FROM reports r JOIN records c ON c.report_ref = r.id"
		" WHERE r.id = 7 ORDER BY c.id");
}

static void test_open_migrates_v1(void)
{
	const char *path = test_db_path("v1"), *before, *error;
	struct dmarc_store *store;

	test_begin("store: a version 1 database is upgraded, its data kept");
	test_make_v1_database(path);
	before = test_v1_contents(path);
	test_assert(strstr(before, "Org|r-1|example.com") != NULL);

	/* read-only: upgraded through a writable connection first (issue
	   11: every existing database is upgraded in place) */
	test_assert(dmarc_store_open(path, DMARC_STORE_OPEN_READONLY,
				     &store, &error) == 1);
	test_assert(dmarc_store_get_version(store) == DMARC_STORE_SCHEMA_VERSION);
	dmarc_store_close(&store);
	test_assert_strcmp(test_sql(path, "SELECT max(version) FROM "
				    "schema_version"),
			   t_strdup_printf("%d;\n", DMARC_STORE_SCHEMA_VERSION));

	/* for writing: as upgraded */
	store = test_open(path);
	test_assert(dmarc_store_get_version(store) == DMARC_STORE_SCHEMA_VERSION);
	test_assert_strcmp(test_v1_contents(path), before);
	test_assert_strcmp(test_sql(path, "SELECT count(*) FROM sqlite_master"
		" WHERE name IN ('tls_reports', 'tls_policies',"
		" 'tls_failures', 'failure_reports')"), "4;\n");
	/* and takes new reports next to the old */
	test_store_or_fail(store, "after-upgrade");
	dmarc_store_close(&store);
	test_assert_strcmp(test_sql(path, "SELECT count(*) FROM reports"),
			   "2;\n");

	/* opened again: not upgraded twice */
	store = test_open(path);
	dmarc_store_close(&store);
	test_assert_strcmp(test_sql(path, "SELECT count(DISTINCT version) FROM "
				    "schema_version"), "3;\n");
	test_assert_strcmp(test_v1_contents(path), before);
	test_end();
}

static void test_open_corrupt(void)
{
	static const char garbage[] =
		"this is no SQLite file, just text that happens to be "
		"longer than the 100 bytes of a database header, padded "
		"with more words to be sure of it.....";
	const char *path = test_db_path("corrupt");
	struct dmarc_store *store;
	const char *error = NULL;
	unsigned int i;
	int fd;

	test_begin("store: a corrupt file gives an error naming it");
	test_db_mkdir(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	for (i = 0; i < 64; i++) {
		if (write(fd, garbage, sizeof(garbage)) != sizeof(garbage))
			i_fatal("write(%s) failed: %m", path);
	}
	i_close_fd(&fd);
	for (i = 0; i < 2; i++) {
		test_assert_idx(dmarc_store_open(path, i == 0 ?
			DMARC_STORE_OPEN_CREATE : DMARC_STORE_OPEN_READONLY,
			&store, &error) == -1, i);
		test_assert_idx(store == NULL, i);
		test_assert_idx(error != NULL &&
				str_begins_with(error, t_strconcat(path, ": ", NULL)) &&
				strstr(error, "file is not a database") != NULL, i);
	}
	test_end();
}

static void test_open_foreign_database(void)
{
	const char *path = test_db_path("foreign");
	struct dmarc_store *store;
	const char *error = NULL;

	test_begin("store: another application's database is left alone");
	test_db_mkdir(path);
	{
		sqlite3 *db;

		if (sqlite3_open(path, &db) != SQLITE_OK ||
		    sqlite3_exec(db, "CREATE TABLE notes (x TEXT)", NULL,
				 NULL, NULL) != SQLITE_OK)
			i_fatal("%s: %s", path, sqlite3_errmsg(db));
		sqlite3_close(db);
	}
	test_assert(dmarc_store_open(path, DMARC_STORE_OPEN_CREATE, &store,
				     &error) == -1);
	test_assert_strcmp(error, t_strconcat(path, ": not a dovecot-dmarcreport"
			   " database (no schema_version)", NULL));
	test_assert_strcmp(test_sql(path, "SELECT name FROM sqlite_master"),
			   "notes;\n");
	test_end();
}

/* Rows release 1 stored: newline-joined errors and reasons, an IPv6
   and an IPv4 record (the schema is test_schema_v1_sql above). */
static const char test_data_v1_sql[] =
	"INSERT INTO reports (id, org_name, report_id, policy_domain,"
	" date_begin, date_end, errors, format_version, policy_p,"
	" record_count, message_count, pass_count, archive_path, received)"
	" VALUES (1, 'google.com', 'r1', 'example.com', 100, 200,"
	" 'first error' || char(10) || 'second error', '1.0', 'reject',"
	" 2, 15, 10, '2024/01/a.xml', 300);"
	"INSERT INTO records (id, report_ref, source_ip, source_ip_key, count,"
	" disposition, dkim, spf, dmarc_pass, reasons, header_from) VALUES"
	" (1, 1, '192.0.2.1', x'00000000000000000000FFFFC0000201', 10,"
	" 'none', 'pass', 'fail', 1,"
	" 'forwarded: a list: of words' || char(10) || 'mailing_list',"
	" 'example.com'),"
	" (2, 1, '2001:db8::1', x'20010DB8000000000000000000000001', 5,"
	" 'reject', 'fail', 'fail', 0, NULL, 'example.com');"
	"INSERT INTO auth_results (record_ref, type, domain, result) VALUES"
	" (1, 'dkim', 'example.com', 'pass');";

/* A database made by release 1 is upgraded in place when opened: data
   kept, lists split into rows, the version up; read-only opens upgrade
   it too (through a writable connection), and a second open does
   nothing more. */
static void test_store_migrate_v1(void)
{
	const char *path = test_db_path("migrate-v1");
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL;
	unsigned int i;

	test_begin("store: a version 1 database is upgraded in place");
	test_db_mkdir(path);
	for (i = 0; i < 2; i++) {
		sqlite3 *db;

		i_unlink_if_exists(path);
		if (sqlite3_open(path, &db) != SQLITE_OK)
			i_fatal("%s: %s", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		test_sql_exec(path, test_schema_v1_sql);
		test_sql_exec(path, test_data_v1_sql);
		test_assert_idx(dmarc_store_open(path, i == 0 ?
			DMARC_STORE_OPEN_CREATE : DMARC_STORE_OPEN_READONLY,
			&store, &error) == 1, i);
		dmarc_store_close(&store);
		test_assert_strcmp_idx(test_sql(path,
			"SELECT max(version) FROM schema_version"),
			t_strdup_printf("%d;\n", DMARC_STORE_SCHEMA_VERSION), i);
		test_assert_strcmp_idx(test_counts(path), "1|2|1;\n", i);
		test_assert_strcmp_idx(test_sql(path, "SELECT org_name,"
			" report_id, message_count, errors, format, version,"
			" archive_path FROM reports"),
			"google.com|r1|15|NULL|NULL|1.0|2024/01/a.xml;\n", i);
		test_assert_strcmp_idx(test_sql(path, "SELECT report_ref, seq,"
			" error FROM report_errors ORDER BY seq"),
			"1|0|first error;\n1|1|second error;\n", i);
		test_assert_strcmp_idx(test_sql(path, "SELECT record_ref, seq,"
			" type, comment FROM record_reasons ORDER BY seq"),
			"1|0|forwarded|a list: of words;\n"
			"1|1|mailing_list|NULL;\n", i);
		test_assert_strcmp_idx(test_sql(path, "SELECT id, reasons,"
			" source_ip_valid, extensions FROM records ORDER BY id"),
			"1|NULL|1|NULL;\n2|NULL|1|NULL;\n", i);
		test_assert_strcmp_idx(test_sql(path, "SELECT count(*) FROM"
			" resolved_names"), "0;\n", i);
	}
	/* the upgraded file takes new reports; a second open is a no-op */
	store = test_open(path);
	test_report_init(&report, "r2");
	test_assert(test_store_report(store, &report, &error) == 1);
	/* org_name differs in case only: the same report */
	report.report_id = "r1";
	report.org_name = "Google.COM";
	test_assert(test_store_report(store, &report, &error) == 0);
	dmarc_store_close(&store);
	test_assert_strcmp(test_sql(path, "SELECT count(*) FROM schema_version"
		" WHERE version = 2"), "1;\n");
	test_assert_strcmp(test_counts(path), "2|5|4;\n");
	test_end();
}

/* A resent report is found by its key, org_name case-insensitively; the
   content digest tells a copy from a conflicting one. */
static void test_store_find_digest(void)
{
	const char *path = test_db_path("find");
	struct dmarc_store_digest digest;
	struct dmarc_store_found found;
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL, *stored;

	test_begin("store: find a stored report, content digest");
	store = test_open(path);
	test_report_init(&report, "r1");
	test_assert(dmarc_store_find_report(store, &report, &found,
					    &error) == 0);
	test_assert(test_store_report(store, &report, &error) == 1);
	report.org_name = "GOOGLE.com";
	test_assert(dmarc_store_find_report(store, &report, &found,
					    &error) == 1);
	test_assert(found.id == 1);
	test_assert_strcmp(found.archive_path,
			   "2024/01/google.com!example.com!1.xml.gz");
	stored = found.content_digest;
	test_assert(stored != NULL && strlen(stored) == 16);

	/* the digest leaves out the key: the same content under another
	   key has the same digest, another pct another one */
	report.policy.domain = "example.org";
	test_assert(test_store_report(store, &report, &error) == 1);
	report.policy.domain = "example.net";
	report.policy.pct = 50;
	test_assert(test_store_report(store, &report, &error) == 1);
	dmarc_store_close(&store);
	test_assert_strcmp(test_sql(path, "SELECT id, content_digest = ("
		"SELECT content_digest FROM reports WHERE id = 1)"
		" FROM reports ORDER BY id"), "1|1;\n2|1;\n3|0;\n");
	/* a digest made apart, as ingest makes one for a duplicate */
	dmarc_store_digest_init(&digest);
	test_assert(strcmp(dmarc_store_digest_finish(&digest, &report),
			   stored) != 0);
	test_end();
}

/* --- storing --- */

static void test_store_columns(void)
{
	const char *path = test_db_path("columns");
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL;

	test_begin("store: a report with 3 records, every column read back");
	store = test_open(path);
	test_report_init(&report, "r1");
	test_assert(test_store_report(store, &report, &error) == 1);
	dmarc_store_close(&store);

	test_assert_strcmp(test_sql(path,
		"SELECT id, org_name, report_id, policy_domain, date_begin,"
		" date_end, email, extra_contact_info, generator, errors,"
		" format_version, policy_adkim, policy_aspf, policy_p,"
		" policy_sp, policy_np, policy_pct, policy_fo, policy_testing,"
		" policy_discovery_method, record_count, message_count,"
		" pass_count, archive_path, message_id, received FROM reports"),
		"1|google.com|r1|example.com|1704067200|1704153599|"
		"noreply-dmarc-support@google.com|"
		"https://support.google.com/a/answer/2466580|test 1.0|"
		"NULL|1.0|r|s|reject|quarantine|none|100|"
		"1|n|treewalk|3|16|11|2024/01/google.com!example.com!1.xml.gz|"
		"<abc@google.com>|1704200000;\n");
	/* version 2: the format, <version> as given, extensions, lists */
	test_assert_strcmp(test_sql(path,
		"SELECT format, version, extensions, length(content_digest)"
		" FROM reports"),
		"rfc7489|1.0|<x:e xmlns:x=\"urn:x\">1</x:e>|16;\n");
	test_assert_strcmp(test_sql(path,
		"SELECT report_ref, seq, error FROM report_errors ORDER BY seq"),
		"1|0|first error;\n1|1|second error;\n");
	test_assert_strcmp(test_sql(path,
		"SELECT record_ref, seq, type, comment FROM record_reasons"
		" ORDER BY record_ref, seq"),
		"1|0|forwarded|list;\n1|1|mailing_list|NULL;\n"
		"3|0|local_policy|NULL;\n");
	test_assert_strcmp(test_sql(path,
		"SELECT source_ip_valid, extensions FROM records ORDER BY id"),
		"1|<ext/>;\n1|NULL;\n1|NULL;\n");
	test_assert_strcmp(test_sql(path,
		"SELECT id, report_ref, source_ip, hex(source_ip_key), count,"
		" disposition, dkim, spf, dmarc_pass, reasons, header_from,"
		" envelope_from, envelope_to FROM records ORDER BY id"),
		"1|1|192.0.2.1|00000000000000000000FFFFC0000201|10|none|pass|"
		"fail|1|NULL|example.com|"
		"bounce.example.com|example.net;\n"
		"2|1|2001:db8::1|20010DB8000000000000000000000001|5|quarantine|"
		"fail|fail|0|NULL|example.com|NULL|NULL;\n"
		"3|1|198.51.100.7|00000000000000000000FFFFC6336407|1|reject|"
		"fail|pass|1|NULL|example.com|NULL|NULL;\n");
	test_assert_strcmp(test_sql(path,
		"SELECT record_ref, type, domain, selector, scope, result,"
		" human_result FROM auth_results ORDER BY rowid"),
		"1|spf|bounce.example.com|NULL|mfrom|softfail|NULL;\n"
		"1|dkim|example.com|s1|NULL|pass|good sig;\n"
		"2|spf|bounce.example.com|NULL|mfrom|softfail|NULL;\n");
	test_end();
}

static void test_store_optional_fields_null(void)
{
	const char *path = test_db_path("nulls");
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL;

	test_begin("store: absent optional fields are NULL, no org_name is ''");
	store = test_open(path);
	i_zero(&report);
	report.report_id = "min";
	report.policy.domain = "example.com";
	report.policy.pct = DMARC_UNSET;
	i_zero(&info);
	test_assert(dmarc_store_report_begin(store, &report, &info, &sreport,
					     &error) == 1);
	test_assert(dmarc_store_report_commit(&sreport, &error) == 0);
	test_assert(sreport == NULL);
	/* NULL and "" org_name are the same reporter */
	report.org_name = "";
	test_assert(dmarc_store_report_begin(store, &report, &info, &sreport,
					     &error) == 0);
	dmarc_store_close(&store);
	test_assert_strcmp(test_sql(path,
		"SELECT quote(org_name), email, extra_contact_info, generator,"
		" errors, format_version, policy_adkim, policy_aspf, policy_p,"
		" policy_sp, policy_np, policy_pct, policy_fo, policy_testing,"
		" policy_discovery_method, record_count, message_count,"
		" pass_count, archive_path, message_id, received FROM reports"),
		"''|NULL|NULL|NULL|NULL|1.0|NULL|NULL|NULL|NULL|NULL|NULL|NULL|"
		"NULL|NULL|0|0|0|NULL|NULL|0;\n");
	test_end();
}

static void test_store_duplicate(void)
{
	const char *path = test_db_path("duplicate");
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL;

	test_begin("store: a duplicate report returns 0 and stores nothing");
	store = test_open(path);
	test_report_init(&report, "r1");
	test_assert(test_store_report(store, &report, &error) == 1);
	i_zero(&info);
	info.received = 1;
	sreport = (void *)1;
	test_assert(dmarc_store_report_begin(store, &report, &info, &sreport,
					     &error) == 0);
	test_assert(sreport == NULL);
	/* nothing is left open: a new report can begin */
	report.policy.domain = "example.org";
	test_assert(test_store_report(store, &report, &error) == 1);
	report.org_name = "Yahoo";
	test_assert(test_store_report(store, &report, &error) == 1);
	dmarc_store_close(&store);
	test_assert_strcmp(test_counts(path), "3|9|9;\n");
	test_assert_strcmp(test_sql(path, "SELECT org_name, policy_domain,"
		" received FROM reports ORDER BY id"),
		"google.com|example.com|1704200000;\n"
		"google.com|example.org|1704200000;\n"
		"Yahoo|example.org|1704200000;\n");
	test_end();
}

static void test_store_closed_file_complete(void)
{
	const char *path = test_db_path("complete");
	const char *copy = test_db_path("complete-copy");
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL;
	unsigned int i;
	struct stat st;

	test_begin("store: once closed, the database file alone is complete");
	/* one open/store/close per report, as dovecot-lda does */
	for (i = 0; i < 50; i++) {
		store = test_open(path);
		test_report_init(&report, t_strdup_printf("r%u", i));
		test_assert_idx(test_store_report(store, &report, &error) == 1, i);
		dmarc_store_close(&store);
		/* nothing is left in a WAL an admin could lose by moving
		   or copying the file alone */
		test_assert_idx(stat(t_strconcat(path, "-wal", NULL), &st) < 0 ||
				st.st_size == 0, i);
	}
	test_db_mkdir(copy);
	test_assert(link(path, copy) == 0);
	test_assert_strcmp(test_counts(copy), "50|150|150;\n");
	test_assert_strcmp(test_sql(copy, "PRAGMA integrity_check"), "ok;\n");
	test_end();
}

/* Expire deletes a report's row, then its records in later transactions:
   a report stored in between must not get the freed id, or the rest of
   the expire takes its records too. */
static void test_store_id_not_reused_while_rows_remain(void)
{
	const char *path = test_db_path("id-reuse");
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL;

	test_begin("store: a report id is not handed out while records "
		   "still refer to it");
	store = test_open(path);
	test_report_init(&report, "old");
	test_assert(test_store_report(store, &report, &error) == 1);
	dmarc_store_close(&store);
	/* what expire's first transaction leaves: the report row gone,
	   its records still there */
	test_sql_exec(path, "PRAGMA foreign_keys = OFF;"
		      "DELETE FROM reports WHERE report_id = 'old'");
	store = test_open(path);
	test_report_init(&report, "new");
	test_assert(test_store_report(store, &report, &error) == 1);
	dmarc_store_close(&store);
	test_assert_strcmp(test_sql(path,
		"SELECT count(*) FROM records WHERE report_ref ="
		" (SELECT id FROM reports WHERE report_id = 'new')"), "3;\n");
	test_end();
}

static void test_store_cache(void)
{
	const char *path = test_db_path("cache");
	const char *other = test_db_path("cache-other");
	struct dmarc_store_cache *cache;
	struct dmarc_store *store, *kept;
	struct dmarc_report report;
	const char *error = NULL;
	struct stat st;

	test_begin("store cache: same file reused, another path or file not");
	cache = dmarc_store_cache_init(60*1000);
	test_assert(dmarc_store_cache_take(cache, path) == NULL);
	store = test_open(path);
	kept = store;
	dmarc_store_cache_put(cache, path, &store);
	test_assert(store == NULL);
	/* the same path and file: the same open store */
	store = dmarc_store_cache_take(cache, path);
	test_assert(store == kept);
	test_report_init(&report, "c1");
	test_assert(test_store_report(store, &report, &error) == 1);
	dmarc_store_cache_put(cache, path, &store);
	/* committed: other connections see it while the store is kept */
	test_assert_strcmp(test_counts(path), "1|3|3;\n");

	/* another path: the kept store is closed, its WAL written into the
	   file and emptied, nothing is returned */
	test_assert(dmarc_store_cache_take(cache, other) == NULL);
	test_assert(stat(t_strconcat(path, "-wal", NULL), &st) < 0 ||
		    st.st_size == 0);
	test_assert(dmarc_store_cache_take(cache, path) == NULL);

	/* the file moved away and a new one in its place: not reused */
	store = test_open(path);
	dmarc_store_cache_put(cache, path, &store);
	test_assert(rename(path, t_strconcat(path, ".old", NULL)) == 0);
	store = test_open(path);
	kept = store;
	test_assert(dmarc_store_cache_take(cache, path) == NULL);
	dmarc_store_cache_put(cache, path, &store);
	/* and removed */
	test_assert(unlink(path) == 0);
	test_assert(dmarc_store_cache_take(cache, path) == NULL);
	dmarc_store_cache_deinit(&cache);
	test_assert(cache == NULL);
	test_end();
}

static void test_store_cache_stop(struct ioloop *ioloop)
{
	io_loop_stop(ioloop);
}

static void test_store_cache_idle(void)
{
	const char *path = test_db_path("cache-idle");
	const char *wal = t_strconcat(path, "-wal", NULL);
	struct dmarc_store_cache *cache;
	struct dmarc_store *store;
	struct dmarc_report report;
	struct ioloop *ioloop;
	struct timeout *to;
	const char *error = NULL;
	struct stat st;

	test_begin("store cache: closed when idle or when its ioloop goes");
	ioloop = io_loop_create();
	cache = dmarc_store_cache_init(20);
	store = test_open(path);
	test_report_init(&report, "idle-1");
	test_assert(test_store_report(store, &report, &error) == 1);
	dmarc_store_cache_put(cache, path, &store);
	/* kept open: the report is still in the WAL */
	test_assert(stat(wal, &st) == 0 && st.st_size > 0);
	to = timeout_add_short(500, test_store_cache_stop, ioloop);
	io_loop_run(ioloop);
	timeout_remove(&to);
	/* idle: closed, checkpointed into the file */
	test_assert(stat(wal, &st) < 0 && errno == ENOENT);
	test_assert(dmarc_store_cache_take(cache, path) == NULL);

	/* kept when the ioloop is destroyed: closed then, no timeout leak */
	store = test_open(path);
	dmarc_store_cache_put(cache, path, &store);
	io_loop_destroy(&ioloop);
	test_assert(stat(wal, &st) < 0 && errno == ENOENT);
	test_assert(dmarc_store_cache_take(cache, path) == NULL);
	dmarc_store_cache_deinit(&cache);
	test_assert_strcmp(test_counts(path), "1|3|3;\n");
	test_end();
}

static void test_store_rollback(void)
{
	const char *path = test_db_path("rollback");
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL;

	test_begin("store: rollback leaves nothing");
	store = test_open(path);
	test_report_init(&report, "r1");
	i_zero(&info);
	test_assert(dmarc_store_report_begin(store, &report, &info, &sreport,
					     &error) == 1);
	test_assert(test_store_records(sreport, &error) == 0);
	dmarc_store_report_rollback(&sreport);
	test_assert(sreport == NULL);
	test_assert_strcmp(test_counts(path), "0|0|0;\n");
	/* the same report is not a duplicate afterwards */
	test_assert(test_store_report(store, &report, &error) == 1);
	dmarc_store_close(&store);
	test_assert_strcmp(test_counts(path), "1|3|3;\n");
	test_end();
}

static void test_store_batch(void)
{
	const char *path = test_db_path("batch");
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL;

	test_begin("store: a batch keeps the reports around a rolled back one");
	store = test_open(path);
	test_assert(dmarc_store_batch_begin(store, &error) == 0);
	test_store_or_fail(store, "a");
	test_report_init(&report, "b");
	i_zero(&info);
	test_assert(dmarc_store_report_begin(store, &report, &info, &sreport,
					     &error) == 1);
	test_assert(test_store_records(sreport, &error) == 0);
	dmarc_store_report_rollback(&sreport);
	/* a duplicate inside the batch does not end the batch either */
	test_report_init(&report, "a");
	test_assert(test_store_report(store, &report, &error) == 0);
	test_store_or_fail(store, "c");
	/* nothing is visible to others before the batch commits */
	test_assert_strcmp(test_counts(path), "0|0|0;\n");
	test_assert(dmarc_store_batch_commit(store, &error) == 0);
	test_assert_strcmp(test_sql(path, "SELECT report_id, record_count,"
		" message_count, pass_count FROM reports ORDER BY id"),
		"a|3|16|11;\nc|3|16|11;\n");
	test_assert_strcmp(test_counts(path), "2|6|6;\n");
	/* the rolled back report can be stored later */
	test_store_or_fail(store, "b");

	/* closing with an open batch stores nothing of it */
	test_assert(dmarc_store_batch_begin(store, &error) == 0);
	test_store_or_fail(store, "d");
	dmarc_store_close(&store);
	test_assert_strcmp(test_counts(path), "3|9|9;\n");
	test_end();
}

static void test_store_count_limits(void)
{
	static const struct {
		int64_t first, second;
		const char *error_suffix;
	} tests[] = {
		{ INT64_MAX, 1, ": the report's message count overflows" },
		{ 1, -1, ": record count -1 is negative" },
	};
	const char *path = test_db_path("counts");
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	struct dmarc_store *store;
	struct dmarc_report report;
	struct dmarc_record record;
	const char *error = NULL;
	unsigned int i;

	test_begin("store: record counts: int64 overflow and negative refused");
	store = test_open(path);
	i_zero(&info);
	i_zero(&record);
	record.source_ip = "192.0.2.1";
	record.source_ip_valid = TRUE;
	record.dkim = "pass";
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		test_report_init(&report, "big");
		test_assert_idx(dmarc_store_report_begin(store, &report, &info,
			&sreport, &error) == 1, i);
		record.count = tests[i].first;
		test_assert_idx(dmarc_store_report_add_record(sreport, &record,
							      &error) == 0, i);
		record.count = tests[i].second;
		test_assert_idx(dmarc_store_report_add_record(sreport, &record,
							      &error) == -1, i);
		test_assert_strcmp_idx(error, t_strconcat(path,
			tests[i].error_suffix, NULL), i);
		dmarc_store_report_rollback(&sreport);
	}
	/* INT64_MAX itself is a valid sum */
	test_assert(dmarc_store_report_begin(store, &report, &info, &sreport,
					     &error) == 1);
	record.count = INT64_MAX;
	test_assert(dmarc_store_report_add_record(sreport, &record,
						  &error) == 0);
	test_assert(dmarc_store_report_commit(&sreport, &error) == 0);
	dmarc_store_close(&store);
	test_assert_strcmp(test_sql(path, "SELECT message_count, pass_count"
				    " FROM reports"),
			   "9223372036854775807|9223372036854775807;\n");
	test_end();
}

static void test_store_error_report_only(void)
{
	const char *path = test_db_path("report-error");
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	struct dmarc_store *store;
	struct dmarc_report report;
	struct dmarc_record record;
	const char *error = NULL;

	test_begin("store: a report refused alone leaves the batch going");
	store = test_open(path);
	test_assert(dmarc_store_batch_begin(store, &error) == 0);
	test_store_or_fail(store, "a");
	test_report_init(&report, "overflow");
	i_zero(&info);
	i_zero(&record);
	record.source_ip = "192.0.2.1";
	record.count = INT64_MAX;
	test_assert(dmarc_store_report_begin(store, &report, &info, &sreport,
					     &error) == 1);
	test_assert(dmarc_store_report_add_record(sreport, &record,
						  &error) == 0);
	test_assert(dmarc_store_report_add_record(sreport, &record,
						  &error) == -1);
	test_assert(dmarc_store_get_error(store) == DMARC_STORE_ERROR_REPORT);
	dmarc_store_report_rollback(&sreport);
	test_store_or_fail(store, "c");
	test_assert(dmarc_store_batch_commit(store, &error) == 0);
	dmarc_store_close(&store);
	test_assert_strcmp(test_sql(path, "SELECT report_id FROM reports"
				    " ORDER BY id"), "a;\nc;\n");
	test_assert_strcmp(test_counts(path), "2|6|6;\n");
	test_end();
}

static void test_store_batch_max_time(void)
{
	const char *path = test_db_path("batch-time");
	struct dmarc_store *store;
	const char *error = NULL;

	test_begin("store: a batch older than its max time commits between reports");
	store = test_open(path);
	test_assert(dmarc_store_batch_begin(store, &error) == 0);
	dmarc_store_batch_set_max_time(store, 1);
	test_store_or_fail(store, "a");
	test_assert(dmarc_store_batch_uncommitted(store) == 1);
	test_assert_strcmp(test_counts(path), "0|0|0;\n");
	/* past the 1 ms: "a" is committed before "b" begins */
	usleep(2000);
	test_store_or_fail(store, "b");
	test_assert_strcmp(test_counts(path), "1|3|3;\n");
	test_assert(dmarc_store_batch_uncommitted(store) == 1);
	test_assert(dmarc_store_batch_commit(store, &error) == 0);
	test_assert_strcmp(test_counts(path), "2|6|6;\n");
	dmarc_store_close(&store);
	test_end();
}

static void test_store_readonly_refuses_writes(void)
{
	const char *path = test_db_path("readonly");
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL;

	test_begin("store: a read-only store refuses to store, naming the file");
	store = test_open(path);
	dmarc_store_close(&store);
	test_assert(dmarc_store_open(path, DMARC_STORE_OPEN_READONLY, &store,
				     &error) == 1);
	test_report_init(&report, "r1");
	i_zero(&info);
	test_assert(dmarc_store_report_begin(store, &report, &info, &sreport,
					     &error) == -1);
	test_assert(sreport == NULL);
	test_assert(str_begins_with(error, t_strconcat(path, ": ", NULL)) &&
		    strstr(error, "readonly") != NULL);
	dmarc_store_close(&store);
	test_end();
}

/* --- ip keys --- */

static void test_ip_key(void)
{
	static const struct {
		const char *ip;
		const char *hex; /* NULL: invalid */
	} tests[] = {
		{ "192.0.2.1", "00000000000000000000ffffc0000201" },
		{ "0.0.0.0", "00000000000000000000ffff00000000" },
		{ "255.255.255.255", "00000000000000000000ffffffffffff" },
		{ "::ffff:192.0.2.1", "00000000000000000000ffffc0000201" },
		{ "2001:db8::1", "20010db8000000000000000000000001" },
		{ "::", "00000000000000000000000000000000" },
		{ "", NULL },
		{ "192.0.2", NULL },
		{ "192.0.2.256", NULL },
		{ "192.0.2.1/24", NULL },
		{ " 192.0.2.1", NULL },
		{ "2001:db8::1::2", NULL },
		{ "example.com", NULL },
	};
	unsigned char key[16];
	unsigned int i;
	bool ret;

	test_begin("store: ip key for IPv4, IPv6 and invalid input");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		ret = dmarc_store_ip_key(tests[i].ip, key);
		test_assert_idx(ret == (tests[i].hex != NULL), i);
		if (ret && tests[i].hex != NULL) {
			test_assert_strcmp_idx(binary_to_hex(key, sizeof(key)),
					       tests[i].hex, i);
		}
	}
	test_end();
}

/* --- two processes --- */

/* A child (another LMTP delivery) opens its own store, begins a report
   (the write lock), says so on ready_fd and stores its report when
   release_fd is readable or closed; exits 0 on success. */
static pid_t test_fork_writer(const char *path, const char *id,
			      int *ready_fd_r, int *release_fd_r)
{
	int ready[2], release[2];
	pid_t pid;

	if (pipe(ready) < 0 || pipe(release) < 0)
		i_fatal("pipe() failed: %m");
	pid = fork();
	if (pid < 0)
		i_fatal("fork() failed: %m");
	if (pid == 0) {
		struct dmarc_store_report_info info;
		struct dmarc_store_report *sreport;
		struct dmarc_store *store;
		struct dmarc_report report;
		const char *error;
		char c;
		int ret;

		i_close_fd(&ready[0]);
		i_close_fd(&release[1]);
		ret = dmarc_store_open(path, DMARC_STORE_OPEN_CREATE, &store,
				       &error);
		if (ret != 1)
			_exit(2);
		test_report_init(&report, id);
		i_zero(&info);
		if (dmarc_store_report_begin(store, &report, &info, &sreport,
					     &error) != 1)
			_exit(3);
		if (write(ready[1], "r", 1) != 1)
			_exit(4);
		if (read(release[0], &c, 1) < 0)
			_exit(4);
		if (test_store_records(sreport, &error) < 0 ||
		    dmarc_store_report_commit(&sreport, &error) < 0)
			_exit(5);
		dmarc_store_close(&store);
		_exit(0);
	}
	i_close_fd(&ready[1]);
	i_close_fd(&release[0]);
	*ready_fd_r = ready[0];
	*release_fd_r = release[1];
	return pid;
}

static int test_wait_child(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) < 0)
		i_fatal("waitpid() failed: %m");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void test_concurrent_writers_wait(void)
{
	const char *path = test_db_path("concurrent");
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL;
	int ready_fd, release_fd;
	pid_t pid;
	char c;

	test_begin("store: a second writer waits for the first (no "
		   "'database is locked')");
	store = test_open(path);
	pid = test_fork_writer(path, "child", &ready_fd, &release_fd);
	test_assert(read(ready_fd, &c, 1) == 1);
	/* the child holds the write lock; it lets go ~200 ms later, while
	   our report_begin() is already waiting for it */
	if (fork() == 0) {
		usleep(200*1000);
		_exit(write(release_fd, "g", 1) == 1 ? 0 : 1);
	}
	i_close_fd(&release_fd);
	test_report_init(&report, "parent");
	i_zero(&info);
	test_assert(dmarc_store_report_begin(store, &report, &info, &sreport,
					     &error) == 1);
	/* we got the lock only after the child committed */
	test_assert_strcmp(test_counts(path), "1|3|3;\n");
	if (sreport != NULL) {
		test_assert(test_store_records(sreport, &error) == 0);
		test_assert(dmarc_store_report_commit(&sreport, &error) == 0);
	}
	test_assert(test_wait_child(pid) == 0);
	(void)wait(NULL);
	i_close_fd(&ready_fd);
	dmarc_store_close(&store);
	test_assert_strcmp(test_sql(path, "SELECT report_id FROM reports"
				    " ORDER BY id"), "child;\nparent;\n");
	test_end();
}

static void test_concurrent_busy_timeout(void)
{
	const char *path = test_db_path("busy");
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	struct dmarc_store *store;
	struct dmarc_report report;
	const char *error = NULL;
	int ready_fd, release_fd;
	pid_t pid;
	char c;

	test_begin("store: a writer busy past the timeout is an error saying so");
	store = test_open(path);
	dmarc_store_set_busy_timeout(store, 50);
	pid = test_fork_writer(path, "child", &ready_fd, &release_fd);
	test_assert(read(ready_fd, &c, 1) == 1);
	/* the child holds the lock until we release it */
	test_report_init(&report, "parent");
	i_zero(&info);
	test_assert(dmarc_store_report_begin(store, &report, &info, &sreport,
					     &error) == -1);
	test_assert(sreport == NULL);
	test_assert(error != NULL &&
		    str_begins_with(error, t_strconcat(path, ": ", NULL)) &&
		    strstr(error, "busy for more than 50 ms") != NULL);
	i_close_fd(&release_fd);
	test_assert(test_wait_child(pid) == 0);
	i_close_fd(&ready_fd);
	/* once the lock is free, the same store works again */
	test_assert(test_store_report(store, &report, &error) == 1);
	dmarc_store_close(&store);
	test_assert_strcmp(test_counts(path), "2|6|6;\n");
	test_end();
}

static void test_concurrent_writer_during_batch(void)
{
	const char *path = test_db_path("batch-writer");
	struct dmarc_store *store;
	const char *error = NULL;
	struct timeval start, now;
	unsigned int n = 0;
	int status = -1, go[2];
	pid_t pid;
	char c;

	test_begin("store: a writer gets in during a long batch (1 s lock timeout)");
	/* forked before the parent opens the database: SQLite's lock state
	   of this process must not be copied into the child */
	test_db_mkdir(path);
	if (pipe(go) < 0)
		i_fatal("pipe() failed: %m");
	pid = fork();
	if (pid < 0)
		i_fatal("fork() failed: %m");
	if (pid == 0) {
		struct dmarc_store *child;
		struct dmarc_report report;

		i_close_fd(&go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(4);
		if (dmarc_store_open(path, DMARC_STORE_OPEN_CREATE, &child,
				     &error) != 1)
			_exit(2);
		dmarc_store_set_busy_timeout(child, 1000);
		test_report_init(&report, "child");
		if (test_store_report(child, &report, &error) != 1) {
			i_error("child: %s", error);
			_exit(3);
		}
		dmarc_store_close(&child);
		_exit(0);
	}
	i_close_fd(&go[0]);
	store = test_open(path);
	test_assert(dmarc_store_batch_begin(store, &error) == 0);
	dmarc_store_batch_set_max_time(store, 50);
	/* the batch holds the write lock from here on */
	test_store_or_fail(store, "p-first");
	test_assert(write(go[1], "g", 1) == 1);
	i_close_fd(&go[1]);
	/* the import goes on until the child is done (bounded: 20 s) */
	i_gettimeofday(&start);
	do {
		T_BEGIN {
			test_store_or_fail(store, t_strdup_printf("p%u", n++));
		} T_END;
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		status = -1;
		i_gettimeofday(&now);
	} while (timeval_diff_msecs(&now, &start) < 20000);
	if (status == -1 && waitpid(pid, &status, 0) < 0)
		i_fatal("waitpid() failed: %m");
	test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	test_assert(dmarc_store_batch_commit(store, &error) == 0);
	dmarc_store_close(&store);
	test_assert_strcmp(test_sql(path, "SELECT count(*) FROM reports"
				    " WHERE report_id = 'child'"), "1;\n");
	test_end();
}

/* test_run() owns lib_init(): the tear-down runs inside it. */
static void test_teardown(void)
{
	test_tmpdir_cleanup();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_open_create_modes,
		test_open_missing,
		test_open_readonly_empty_file,
		test_open_newer_schema,
		test_open_migrates_v1,
		test_open_corrupt,
		test_open_foreign_database,
		test_store_columns,
		test_store_migrate_v1,
		test_store_find_digest,
		test_store_optional_fields_null,
		test_store_duplicate,
		test_store_rollback,
		test_store_closed_file_complete,
		test_store_id_not_reused_while_rows_remain,
		test_store_cache,
		test_store_cache_idle,
		test_store_batch,
		test_store_count_limits,
		test_store_error_report_only,
		test_store_batch_max_time,
		test_store_readonly_refuses_writes,
		test_ip_key,
		test_concurrent_writers_wait,
		test_concurrent_busy_timeout,
		test_concurrent_writer_during_batch,
		test_teardown,
		NULL
	};
	return test_run(test_functions);
}
