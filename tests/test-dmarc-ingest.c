/* Unit tests for dmarc-ingest.c: whole mails and files through the real
   pipeline into a real SQLite file and archive dir. */

#include "lib.h"
#include "array.h"
#include "istream.h"
#include "base64.h"
#include "env-util.h"
#include "str.h"
#include "unlink-directory.h"
#include "lib-event-private.h"
#include "test-dmarc-common.h"
#include "dmarc-event.h"
#include "dmarc-kinds.h"
#include "dmarc-ingest.h"

#include <sqlite3.h>
#include <signal.h>
#include <dirent.h>
#include <zlib.h>
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/resource.h>

static struct event *test_event;

/* test_run() owns lib_init(): the event lives between these two. */
static void test_ingest_setup(void)
{
	test_event = event_create(NULL);
}

static void test_ingest_teardown(void)
{
	event_unref(&test_event);
	test_tmpdir_cleanup();
}

static void test_settings(const char *name, struct dmarc_settings *set_r)
{
	const char *dir = t_strconcat(test_tmpdir(), "/", name, NULL);

	i_zero(set_r);
	set_r->db_path = t_strconcat(dir, "/db/reports.sqlite", NULL);
	set_r->archive_dir = t_strconcat(dir, "/archive", NULL);
	dmarc_limits_default(&set_r->limits);
}

static int64_t db_int(const char *db_path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *stmt;
	int64_t value = -1;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		i_fatal("sqlite3_open(%s): %s", db_path, sqlite3_errmsg(db));
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		i_fatal("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(stmt) == SQLITE_ROW)
		value = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return value;
}

static int ingest_mail_file(const struct dmarc_settings *set, const char *path,
			    struct dmarc_ingest_counts *counts)
{
	struct dmarc_ingest *ingest;
	struct istream *input;
	int fd, ret;

	fd = open(path, O_RDONLY);
	if (fd == -1)
		i_fatal("open(%s) failed: %m", path);
	input = i_stream_create_fd_autoclose(&fd, IO_BLOCK_SIZE);
	ingest = dmarc_ingest_init(set, test_event);
	ret = dmarc_ingest_message(ingest, input, 1700000000, counts);
	dmarc_ingest_deinit(&ingest);
	i_stream_unref(&input);
	return ret;
}

static void test_ingest_corpus_emails(void)
{
	const char *const *names = test_corpus_list("email");
	struct dmarc_settings set;
	unsigned int i, n = 0;

	if (test_corpus_dir() == NULL)
		return;
	test_begin("ingest: every corpus mail stores one report");
	test_settings("emails", &set);
	for (i = 0; names[i] != NULL; i++) {
		struct dmarc_ingest_counts counts;

		i_zero(&counts);
		test_assert_idx(ingest_mail_file(&set, t_strconcat(
			test_corpus_dir(), "/email/", names[i], NULL),
			&counts) == 0, i);
		test_assert_idx(counts.reports_new == 1, i);
		test_assert_idx(counts.failed == 0, i);
		if (counts.reports_new != 1)
			i_info("%s: %u new, %u failed", names[i],
			       counts.reports_new, counts.failed);
		n++;
	}
	test_assert(n == 13);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports") == n);
	/* each row points at its archived attachment */
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports "
			   "WHERE archive_path LIKE '2023/11/%'") == n);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports "
			   "WHERE message_id IS NULL") == 0);
	test_end();
}

static void test_ingest_duplicate(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	const char *path;

	if (test_corpus_dir() == NULL)
		return;
	test_begin("ingest: a resent report is stored once");
	test_settings("dup", &set);
	path = t_strconcat(test_corpus_dir(), "/email/mox--google.eml", NULL);
	i_zero(&counts);
	test_assert(ingest_mail_file(&set, path, &counts) == 0);
	test_assert(ingest_mail_file(&set, path, &counts) == 0);
	test_assert(counts.reports_new == 1);
	test_assert(counts.reports_duplicate == 1);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports") == 1);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM records") ==
		    db_int(set.db_path, "SELECT sum(record_count) FROM reports"));
	test_end();
}

static void test_ingest_files(void)
{
	static const char *const files[] = {
		"parsedmarc--nice-input.xml",
		"parsedmarc--nice-input.xml.gz",
		"parsedmarc--nice-input.xml.zip",
		"mail-dmarc--test_dmarc.xml.zip",
		"dmarcgo--aol.com!georgestarcher.com!1342497600!1342584000.zip",
	};
	struct dmarc_ingest_counts counts;
	struct dmarc_ingest *ingest;
	struct dmarc_settings set;
	unsigned int i;

	if (test_corpus_dir() == NULL)
		return;
	test_begin("ingest: files, same report in three containers once");
	test_settings("files", &set);
	i_zero(&counts);
	ingest = dmarc_ingest_init(&set, test_event);
	test_assert(dmarc_ingest_batch_begin(ingest) == 0);
	for (i = 0; i < N_ELEMENTS(files); i++) {
		test_assert_idx(dmarc_ingest_file(ingest, t_strconcat(
			test_corpus_dir(), "/aggregate/", files[i], NULL),
			&counts) == 0, i);
	}
	test_assert(dmarc_ingest_batch_commit(ingest) == 0);
	dmarc_ingest_deinit(&ingest);
	test_assert(counts.reports_new == 3);
	test_assert(counts.reports_duplicate == 2);
	test_assert(counts.failed == 0);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports") == 3);
	test_end();
}

static void test_ingest_db_unwritable(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	struct stat st;
	const char *path;

	if (test_corpus_dir() == NULL)
		return;
	test_begin("ingest: unusable database fails, archive keeps the report");
	test_settings("nodb", &set);
	/* a regular file where the database's directory should be */
	path = t_strconcat(test_tmpdir(), "/nodb", NULL);
	test_assert(mkdir(path, 0700) == 0);
	test_assert(close(open(t_strconcat(path, "/db", NULL),
			       O_CREAT | O_WRONLY, 0600)) == 0);
	i_zero(&counts);
	TEST_EXPECT_WARNINGS("Cannot open the report database: ");
	test_assert(ingest_mail_file(&set, t_strconcat(test_corpus_dir(),
		"/email/mox--yahoo.eml", NULL), &counts) < 0);
	test_expect_no_more_warnings();
	test_assert(counts.reports_new == 0);
	test_assert(stat(t_strconcat(set.archive_dir, "/2023/11", NULL), &st) == 0);
	test_end();
}

static void test_ingest_not_a_report(void)
{
	static const char mail[] =
		"From: a@example.com\n"
		"Message-ID: <not-a-report@example.com>\n"
		"Content-Type: multipart/mixed; boundary=\"b\"\n"
		"\n"
		"--b\n"
		"Content-Type: text/plain\n"
		"\n"
		"hello\n"
		"--b\n"
		"Content-Type: application/octet-stream; name=\"notes.xml\"\n"
		"\n"
		"<html><body>not a report</body></html>\n"
		"--b--\n";
	struct dmarc_ingest_counts counts;
	struct dmarc_ingest *ingest;
	struct dmarc_settings set;
	struct istream *input;

	test_begin("ingest: an HTML attachment is one warning, nothing stored");
	test_settings("html", &set);
	i_zero(&counts);
	input = i_stream_create_from_data(mail, sizeof(mail) - 1);
	ingest = dmarc_ingest_init(&set, test_event);
	TEST_EXPECT_WARNINGS("Not stored: not a DMARC aggregate report "
			     "(root element <html>)");
	test_assert(dmarc_ingest_message(ingest, input, 1700000000, &counts) == 0);
	test_expect_no_more_warnings();
	dmarc_ingest_deinit(&ingest);
	i_stream_unref(&input);
	test_assert(counts.attachments == 1);
	test_assert(counts.failed == 1);
	test_assert(counts.reports_new == 0);
	test_end();
}

/* A mail carrying one plain XML report. */
static int ingest_report_xml(const struct dmarc_settings *set,
			     const char *name, const char *xml,
			     struct dmarc_ingest_counts *counts)
{
	struct dmarc_ingest *ingest;
	struct istream *input;
	const char *mail;
	int ret;

	mail = t_strdup_printf(
		"From: a@example.com\n"
		"Message-ID: <%s@example.com>\n"
		"Content-Type: multipart/mixed; boundary=\"b\"\n"
		"\n--b\n"
		"Content-Type: text/xml; name=\"%s.xml\"\n\n%s\n--b--\n",
		name, name, xml);
	input = i_stream_create_from_data(mail, strlen(mail));
	ingest = dmarc_ingest_init(set, test_event);
	ret = dmarc_ingest_message(ingest, input, 1700000000, counts);
	dmarc_ingest_deinit(&ingest);
	i_stream_unref(&input);
	return ret;
}

#define CONFLICT_XML \
	"<feedback><report_metadata><org_name>%s</org_name>" \
	"<report_id>conf-1</report_id><date_range><begin>%s</begin>" \
	"<end>200</end></date_range></report_metadata>" \
	"<policy_published><domain>example.com</domain><p>none</p>" \
	"<pct>%s</pct></policy_published>" \
	"<record><row><source_ip>%s</source_ip><count>%s</count>" \
	"<policy_evaluated><disposition>none</disposition><dkim>pass</dkim>" \
	"<spf>pass</spf></policy_evaluated></row><identifiers><header_from>" \
	"example.com</header_from></identifiers></record>" \
	"<record><row><source_ip>192.0.2.9</source_ip><count>1</count>" \
	"<policy_evaluated><disposition>none</disposition><dkim>pass</dkim>" \
	"<spf>pass</spf></policy_evaluated></row><identifiers><header_from>" \
	"example.com</header_from></identifiers></record></feedback>"

/* A resent copy is a plain duplicate; the same key (org_name in another
   case) with other content is a conflicting duplicate: one warning, the
   first copy kept. Wrong but usable values are stored as reported, with
   one warning each. */
static void test_ingest_conflict_and_anomalies(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;

	test_begin("ingest: conflicting duplicate, anomalies stored with a "
		   "warning");
	test_settings("conflict", &set);
	i_zero(&counts);
	test_assert(ingest_report_xml(&set, "a", t_strdup_printf(CONFLICT_XML,
		"Example", "100", "100", "192.0.2.1", "1"), &counts) == 0);
	/* the same content again: no warning */
	test_assert(ingest_report_xml(&set, "b", t_strdup_printf(CONFLICT_XML,
		"Example", "100", "100", "192.0.2.1", "1"), &counts) == 0);
	test_expect_error_string("Conflicting duplicate, not stored: report "
				 "conf-1 from EXAMPLE for example.com differs");
	test_assert(ingest_report_xml(&set, "c", t_strdup_printf(CONFLICT_XML,
		"EXAMPLE", "100", "100", "192.0.2.1", "2"), &counts) == 0);
	test_expect_no_more_errors();
	test_assert(counts.reports_new == 1);
	test_assert(counts.reports_duplicate == 2);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports") == 1);
	/* the first is kept */
	test_assert(db_int(set.db_path, "SELECT message_count FROM reports") == 2);

	/* pct out of range, begin after end, an invalid source: stored as
	   reported, one warning each */
	TEST_EXPECT_WARNINGS("<pct> 150 is not 0..100 (stored as reported)",
			     "date_range begin 300 is after end 200",
			     "1 records with a source_ip that is not an IP "
			     "address");
	test_assert(ingest_report_xml(&set, "d", t_strdup_printf(CONFLICT_XML,
		"other", "300", "150", "999.300.1.1", "4"), &counts) == 0);
	test_expect_no_more_warnings();
	test_assert(counts.reports_new == 2);
	test_assert(db_int(set.db_path, "SELECT policy_pct FROM reports"
			   " WHERE org_name = 'other'") == 150);
	test_assert(db_int(set.db_path, "SELECT date_begin FROM reports"
			   " WHERE org_name = 'other'") == 300);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM records"
			   " WHERE source_ip = '999.300.1.1' AND source_ip_valid = 0"
			   " AND source_ip_key IS NULL AND count = 4") == 1);
	test_assert(db_int(set.db_path, "SELECT record_count FROM reports"
			   " WHERE org_name = 'other'") == 2);
	test_end();
}

/* A plain XML report of n records. */
static void big_report_append(string_t *dest, const char *report_id,
			      unsigned int n)
{
	unsigned int i;

	str_printfa(dest,
		"<feedback><report_metadata><org_name>big.example</org_name>"
		"<report_id>%s</report_id><date_range><begin>1</begin>"
		"<end>2</end></date_range></report_metadata>"
		"<policy_published><domain>example.com</domain><p>none</p>"
		"</policy_published>\n", report_id);
	for (i = 0; i < n; i++) {
		str_printfa(dest, "<record><row><source_ip>192.0.2.%u</source_ip>"
			    "<count>1</count><policy_evaluated><disposition>none"
			    "</disposition><dkim>pass</dkim><spf>pass</spf>"
			    "</policy_evaluated></row><identifiers><header_from>"
			    "example.com</header_from></identifiers></record>\n",
			    i % 250 + 1);
	}
	str_append(dest, "</feedback>\n");
}

/* A mail with one plain XML report of n records, built in memory, with
   a comment of pad bytes after the metadata. */
static struct istream *
report_mail(const char *id, unsigned int n, size_t pad)
{
	string_t *mail = str_new(default_pool, n * 200 + pad + 1024);
	unsigned int i;

	str_printfa(mail,
		"From: a@example.com\n"
		"Message-ID: <%s@example.com>\n"
		"Content-Type: multipart/mixed; boundary=\"b\"\n"
		"\n--b\n"
		"Content-Type: text/xml; name=\"%s.xml\"\n\n"
		"<feedback><report_metadata><org_name>big.example</org_name>"
		"<report_id>%s</report_id><date_range><begin>1</begin>"
		"<end>2</end></date_range></report_metadata>"
		"<policy_published><domain>example.com</domain><p>none</p>"
		"</policy_published>\n", id, id, id);
	if (pad > 0) {
		str_append(mail, "<!--");
		for (i = 0; i < pad; i++)
			str_append_c(mail, i % 64 == 63 ? '\n' : 'x');
		str_append(mail, "-->\n");
	}
	for (i = 0; i < n; i++) {
		str_printfa(mail, "<record><row><source_ip>192.0.2.%u</source_ip>"
			    "<count>1</count><policy_evaluated><disposition>none"
			    "</disposition><dkim>pass</dkim><spf>pass</spf>"
			    "</policy_evaluated></row><identifiers><header_from>"
			    "example.com</header_from></identifiers></record>\n",
			    i % 250 + 1);
	}
	str_append(mail, "</feedback>\n--b--\n");
	/* the stream owns a copy; the string goes */
	struct istream *input = i_stream_create_copy_from_data(
		str_data(mail), str_len(mail));
	str_free(&mail);
	return input;
}

static struct istream *big_report_mail(unsigned int n)
{
	return report_mail("big-1", n, 0);
}

static int ingest_stream(const struct dmarc_settings *set, bool queue,
			 struct istream *input,
			 struct dmarc_ingest_counts *counts)
{
	struct dmarc_ingest *ingest;
	int ret;

	ingest = dmarc_ingest_init(set, test_event);
	dmarc_ingest_set_queue_on_failure(ingest, queue);
	ret = dmarc_ingest_message(ingest, input, 1700000000, counts);
	dmarc_ingest_deinit(&ingest);
	i_stream_unref(&input);
	return ret;
}

/* TRUE when a file in dir has a name ending in suffix. */
static bool have_file_suffix(const char *dir, const char *suffix)
{
	struct dirent *d;
	DIR *dirp;
	bool found = FALSE;

	if ((dirp = opendir(dir)) == NULL)
		return FALSE;
	while ((d = readdir(dirp)) != NULL) {
		size_t len = strlen(d->d_name);

		if (len > strlen(suffix) &&
		    strcmp(d->d_name + len - strlen(suffix), suffix) == 0)
			found = TRUE;
	}
	(void)closedir(dirp);
	return found;
}

/* Files in dir whose names do not start with a dot; -1 when no dir. */
static int count_files(const char *dir)
{
	struct dirent *d;
	DIR *dirp;
	int n = 0;

	if ((dirp = opendir(dir)) == NULL)
		return -1;
	while ((d = readdir(dirp)) != NULL) {
		if (d->d_name[0] != '.')
			n++;
	}
	(void)closedir(dirp);
	return n;
}

static void test_ingest_without_archive(void)
{
	const char *const *names = test_corpus_list("email");
	struct dmarc_ingest_counts counts;
	struct dmarc_ingest *ingest;
	struct dmarc_settings set;
	struct istream *input;
	unsigned int i;

	test_begin("ingest: archive off, in memory and spilled to a temp file");
	test_settings("noarchive", &set);
	set.archive_dir = NULL;
	i_zero(&counts);
	for (i = 0; names[i] != NULL; i++) {
		test_assert_idx(ingest_mail_file(&set, t_strconcat(
			test_corpus_dir(), "/email/", names[i], NULL),
			&counts) == 0, i);
	}
	/* 12,000 records, ~2.4 MB: more than is kept in memory */
	input = big_report_mail(12000);
	ingest = dmarc_ingest_init(&set, test_event);
	test_assert(dmarc_ingest_message(ingest, input, 1700000000, &counts) == 0);
	dmarc_ingest_deinit(&ingest);
	i_stream_unref(&input);

	test_assert(counts.reports_new == i + 1);
	test_assert(counts.failed == 0);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports "
			   "WHERE archive_path IS NOT NULL") == 0);
	test_assert(db_int(set.db_path, "SELECT record_count FROM reports "
			   "WHERE report_id = 'big-1'") == 12000);
	test_end();
}

static void test_ingest_too_big_not_archived(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	struct stat st;

	if (test_corpus_dir() == NULL)
		return;
	test_begin("ingest: an attachment over the size limit leaves no stub");
	test_settings("toobig", &set);
	set.limits.max_attachment_size = 100;
	i_zero(&counts);
	TEST_EXPECT_WARNINGS("Not stored: attachment larger than "
			     "dmarcreport_max_attachment_size");
	test_assert(ingest_mail_file(&set, t_strconcat(test_corpus_dir(),
		"/email/mox--google.eml", NULL), &counts) == 0);
	test_expect_no_more_warnings();
	test_assert(counts.failed == 1 && counts.reports_new == 0);
	/* the dated dir was made, the cut-off copy is gone */
	test_assert(stat(t_strconcat(set.archive_dir, "/2023/11", NULL), &st) == 0);
	test_assert(rmdir(t_strconcat(set.archive_dir, "/2023/11", NULL)) == 0);
	test_end();
}

/* Issue 9 item 1: whatever the shape of the input, a mail takes at most
   dmarcreport_max_processing_time of CPU; past it nothing more of the
   mail is stored, with one warning, and the mail is not failed. The
   limit of 1 ms is far below what 12,000 records take (tens of ms). */
static void test_ingest_processing_time_limit(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_ingest *ingest;
	struct dmarc_settings set;
	struct istream *input;
	struct stat st;
	string_t *data;
	const char *path;
	int fd;

	test_begin("ingest: dmarcreport_max_processing_time stops a mail, "
		   "one warning");
	test_settings("budget", &set);
	set.limits.max_processing_time_msecs = 1;

	/* a file: the limit is hit while parsing and storing */
	data = str_new(default_pool, 12000 * 200 + 1024);
	big_report_append(data, "budget-1", 12000);
	path = t_strconcat(test_tmpdir(), "/budget.xml", NULL);
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	test_assert(fd != -1 && write(fd, str_data(data), str_len(data)) ==
		    (ssize_t)str_len(data) && close(fd) == 0);
	i_zero(&counts);
	ingest = dmarc_ingest_init(&set, test_event);
	TEST_EXPECT_WARNINGS("Not stored: the mail took more than 1 ms "
			     "of CPU time");
	test_assert(dmarc_ingest_file(ingest, path, &counts) == 0);
	test_expect_no_more_warnings();
	test_assert(counts.failed == 1 && counts.reports_new == 0);

	/* a mail of two reports: one warning, both counted as failed,
	   both still archived */
	str_truncate(data, 0);
	str_append(data, "From: a@example.com\n"
		   "Message-ID: <budget@example.com>\n"
		   "Content-Type: multipart/mixed; boundary=\"b\"\n"
		   "\n--b\n"
		   "Content-Type: text/xml; name=\"one.xml\"\n\n");
	big_report_append(data, "budget-2", 12000);
	str_append(data, "\n--b\n"
		   "Content-Type: text/xml; name=\"two.xml\"\n\n");
	big_report_append(data, "budget-3", 1);
	str_append(data, "\n--b--\n");
	input = i_stream_create_copy_from_data(str_data(data), str_len(data));
	i_zero(&counts);
	TEST_EXPECT_WARNINGS("Not stored: the mail took more than 1 ms "
			     "of CPU time");
	test_assert(dmarc_ingest_message(ingest, input, 1700000000,
					 &counts) == 0);
	test_expect_no_more_warnings();
	i_stream_unref(&input);
	test_assert(counts.attachments == 2);
	test_assert(counts.failed == 2 && counts.reports_new == 0);
	test_assert(stat(t_strconcat(set.archive_dir, "/2023/11/one.xml",
				     NULL), &st) == 0);
	test_assert(stat(t_strconcat(set.archive_dir, "/2023/11/two.xml",
				     NULL), &st) == 0);
	dmarc_ingest_deinit(&ingest);
	if (stat(set.db_path, &st) == 0) {
		test_assert(db_int(set.db_path,
				   "SELECT count(*) FROM reports") == 0);
	}

	/* the default passes the same report */
	dmarc_limits_default(&set.limits);
	i_zero(&counts);
	ingest = dmarc_ingest_init(&set, test_event);
	test_assert(dmarc_ingest_file(ingest, path, &counts) == 0);
	dmarc_ingest_deinit(&ingest);
	test_assert(counts.failed == 0 && counts.reports_new == 1);
	str_free(&data);
	test_end();
}

static void test_ingest_archive_write_fails(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	struct rlimit old_rl, rl;

	test_begin("ingest: an archive write that fails does not stop the store");
	test_settings("archive-full", &set);
	/* create the database first: the file size limit is for the
	   archive copy */
	i_zero(&counts);
	test_assert(ingest_stream(&set, FALSE, report_mail("small", 1, 0),
				  &counts) == 0);
	/* a 700 KB attachment where files cannot grow past 256 KB: the
	   archive write fails (EFBIG), the report is stored from memory */
	test_assert(getrlimit(RLIMIT_FSIZE, &old_rl) == 0);
	rl = old_rl;
	rl.rlim_cur = 256*1024;
	signal(SIGXFSZ, SIG_IGN);
	test_assert(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	i_zero(&counts);
	TEST_EXPECT_WARNINGS("Archiving failed, processing it anyway");
	test_assert(ingest_stream(&set, FALSE, report_mail("padded", 3, 700*1024),
				  &counts) == 0);
	test_expect_no_more_warnings();
	test_assert(setrlimit(RLIMIT_FSIZE, &old_rl) == 0);
	test_assert(counts.reports_new == 1 && counts.failed == 0);
	test_assert(db_int(set.db_path, "SELECT record_count FROM reports "
			   "WHERE report_id = 'padded' AND archive_path IS NULL") == 3);
	/* no cut-off copy is left in the archive */
	test_assert(count_files(t_strconcat(set.archive_dir, "/2023/11",
					    NULL)) == 1);
	test_end();
}

/* iostream-temp keeps an attachment in memory when it cannot create its
   temp file: past INGEST_MEMORY_MAX_BYTES that is a failed write, not a
   2 MB (or 50 MB) attachment held in memory whole. */
static void test_ingest_temp_dir_unusable(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	const char *old_tmpdir = getenv("TMPDIR");

	test_begin("ingest: an attachment that cannot spill to a temp file is a failed write");
	test_settings("notemp", &set);
	set.archive_dir = NULL;
	i_zero(&counts);
	test_assert(ingest_stream(&set, FALSE, report_mail("small", 1, 0),
				  &counts) == 0);
	env_put("TMPDIR", t_strconcat(test_tmpdir(), "/no-such-dir", NULL));
	i_zero(&counts);
	TEST_EXPECT_WARNINGS("safe_mkstemp(",
			     "could not be moved to a temp file in");
	test_assert(ingest_stream(&set, TRUE, report_mail("unspilled", 3,
							  2*1024*1024),
				  &counts) == -1);
	test_expect_no_more_warnings();
	if (old_tmpdir != NULL)
		env_put("TMPDIR", old_tmpdir);
	else
		env_remove("TMPDIR");
	test_assert(counts.failed == 1 && counts.reports_new == 0);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports "
			   "WHERE report_id = 'unspilled'") == 0);
	test_end();
}

/* With an archive a large attachment is written once: it is unpacked from
   its archive copy, no temp file is made (TMPDIR is unusable here). When
   that copy cannot be written, nothing is left to unpack: a failed write. */
static void test_ingest_large_from_archive(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	struct rlimit old_rl, rl;
	const char *old_tmpdir = getenv("TMPDIR");

	test_begin("ingest: a large attachment is unpacked from its archive copy");
	test_settings("fromarchive", &set);
	i_zero(&counts);
	test_assert(ingest_stream(&set, FALSE, report_mail("small", 1, 0),
				  &counts) == 0);
	env_put("TMPDIR", t_strconcat(test_tmpdir(), "/no-such-dir", NULL));
	i_zero(&counts);
	test_assert(ingest_stream(&set, FALSE, report_mail("archived", 3,
							  2*1024*1024),
				  &counts) == 0);
	test_assert(counts.reports_new == 1 && counts.failed == 0);
	test_assert(db_int(set.db_path, "SELECT record_count FROM reports "
			   "WHERE report_id = 'archived' AND archive_path "
			   "IS NOT NULL") == 3);

	/* the archive copy stops at 1.5 MB */
	test_assert(getrlimit(RLIMIT_FSIZE, &old_rl) == 0);
	rl = old_rl;
	rl.rlim_cur = 1536*1024;
	signal(SIGXFSZ, SIG_IGN);
	test_assert(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	i_zero(&counts);
	TEST_EXPECT_WARNINGS("write(");
	test_assert(ingest_stream(&set, FALSE, report_mail("cut", 3,
							  2*1024*1024),
				  &counts) == -1);
	test_expect_no_more_warnings();
	test_assert(setrlimit(RLIMIT_FSIZE, &old_rl) == 0);
	if (old_tmpdir != NULL)
		env_put("TMPDIR", old_tmpdir);
	else
		env_remove("TMPDIR");
	test_assert(counts.failed == 1 && counts.reports_new == 0);
	/* no cut-off copy is left in the archive: the small and the
	   archived reports' files only */
	test_assert(count_files(t_strconcat(set.archive_dir, "/2023/11",
					    NULL)) == 2);
	test_end();
}

/* Another connection holds the write lock (a long import) until
   lock_release(). */
static sqlite3 *lock_db(const char *db_path)
{
	sqlite3 *db;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		i_fatal("%s: BEGIN IMMEDIATE: %s", db_path, sqlite3_errmsg(db));
	return db;
}

static void lock_release(sqlite3 *db)
{
	(void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
}

static void test_ingest_queue_when_busy(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_ingest *ingest;
	struct dmarc_settings set, set_noarch;
	const char *spool;
	sqlite3 *lock;

	test_begin("ingest: busy past the lock timeout: queued, stored later");
	test_settings("busy", &set);
	set.limits.lock_timeout_msecs = 100;
	set_noarch = set;
	set_noarch.archive_dir = NULL;
	spool = t_strconcat(set.db_path, "-pending", NULL);
	i_zero(&counts);
	test_assert(ingest_stream(&set, TRUE, report_mail("first", 1, 0),
				  &counts) == 0);

	lock = lock_db(set.db_path);
	i_zero(&counts);
	/* one warning each, naming the spool */
	TEST_EXPECT_WARNINGS(
		"'queued-a.xml': Storing the report failed (queued in ",
		"'queued-b.xml': Storing the report failed (queued in ");
	test_assert(ingest_stream(&set, TRUE, report_mail("queued-a", 2, 0),
				  &counts) < 0);
	/* without an archive copy, the spool keeps the bytes */
	test_assert(ingest_stream(&set_noarch, TRUE,
				  report_mail("queued-b", 3, 0), &counts) < 0);
	test_expect_no_more_warnings();
	test_assert(counts.queued == 2 && counts.reports_new == 0);
	/* two entries, one of them with its data file */
	test_assert(count_files(spool) == 3);
	lock_release(lock);

	/* the next delivery stores them */
	i_zero(&counts);
	ingest = dmarc_ingest_init(&set, test_event);
	dmarc_ingest_set_queue_on_failure(ingest, TRUE);
	test_assert(dmarc_ingest_pending(ingest, FALSE, 0, &counts) == 0);
	dmarc_ingest_deinit(&ingest);
	test_assert(counts.reports_new == 2 && counts.failed == 0);
	test_assert(count_files(spool) == 0);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports") == 3);
	test_assert(db_int(set.db_path, "SELECT record_count FROM reports "
			   "WHERE report_id = 'queued-b'") == 3);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports WHERE "
			   "report_id = 'queued-a' AND archive_path LIKE '2023/11/%'") == 1);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports WHERE "
			   "message_id = '<queued-b@example.com>'") == 1);
	test_end();
}

static void test_ingest_pending_db_broken(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_ingest *ingest;
	struct dmarc_settings set;
	const char *spool;
	sqlite3 *lock;
	int fd;

	test_begin("ingest: pending entries keep their attempts while the database is broken");
	test_settings("broken", &set);
	set.limits.lock_timeout_msecs = 10;
	spool = t_strconcat(set.db_path, "-pending", NULL);
	i_zero(&counts);
	test_assert(ingest_stream(&set, TRUE, report_mail("first", 1, 0),
				  &counts) == 0);
	lock = lock_db(set.db_path);
	TEST_EXPECT_WARNINGS("Storing the report failed (queued in ");
	test_assert(ingest_stream(&set, TRUE, report_mail("queued", 1, 0),
				  &counts) < 0);
	test_expect_no_more_warnings();
	lock_release(lock);
	test_assert(count_files(spool) == 1);
	/* the database is replaced by something that is not one */
	test_assert(unlink(set.db_path) == 0);
	fd = open(set.db_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	test_assert(fd != -1 && write(fd, "not a database, not at all........"
		"..............................................................."
		"..............................", 128) == 128);
	i_close_fd(&fd);
	ingest = dmarc_ingest_init(&set, test_event);
	dmarc_ingest_set_queue_on_failure(ingest, TRUE);
	TEST_EXPECT_WARNINGS("1 pending reports wait: Cannot open the "
			     "report database: ");
	test_assert(dmarc_ingest_pending(ingest, FALSE, 0, &counts) < 0);
	test_expect_no_more_warnings();
	dmarc_ingest_deinit(&ingest);
	/* still its first attempt to come: <id>.0 */
	test_assert(count_files(spool) == 1);
	test_assert(have_file_suffix(spool, ".0"));
	test_end();
}

static void test_ingest_queue_bounded(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	sqlite3 *lock;

	test_begin("ingest: the pending spool is bounded");
	test_settings("spool-full", &set);
	set.archive_dir = NULL;
	set.limits.lock_timeout_msecs = 10;
	set.limits.max_pending_size = 64*1024;
	i_zero(&counts);
	test_assert(ingest_stream(&set, TRUE, report_mail("first", 1, 0),
				  &counts) == 0);
	lock = lock_db(set.db_path);
	i_zero(&counts);
	TEST_EXPECT_WARNINGS("Storing the report failed (not queued: ");
	test_assert(ingest_stream(&set, TRUE, report_mail("big", 1, 100*1024),
				  &counts) < 0);
	test_expect_no_more_warnings();
	test_assert(counts.queued == 0);
	test_assert(count_files(t_strconcat(set.db_path, "-pending", NULL)) == 0);
	lock_release(lock);
	test_end();
}

static void test_ingest_import_goes_on(void)
{
	static const char overflow[] =
		"<feedback><report_metadata><org_name>o</org_name>"
		"<report_id>overflow</report_id><date_range><begin>1</begin>"
		"<end>2</end></date_range></report_metadata>"
		"<policy_published><domain>example.com</domain><p>none</p>"
		"</policy_published>"
		"<record><row><source_ip>192.0.2.1</source_ip>"
		"<count>9223372036854775807</count><policy_evaluated>"
		"<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf>"
		"</policy_evaluated></row><identifiers><header_from>example.com"
		"</header_from></identifiers></record>"
		"<record><row><source_ip>192.0.2.2</source_ip>"
		"<count>9223372036854775807</count><policy_evaluated>"
		"<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf>"
		"</policy_evaluated></row><identifiers><header_from>example.com"
		"</header_from></identifiers></record></feedback>\n";
	struct dmarc_ingest_counts counts;
	struct dmarc_ingest *ingest;
	struct dmarc_settings set;
	const char *dir, *bad, *good;
	int fd;

	test_begin("ingest: a report the store refuses is one failure, the import goes on");
	test_settings("goes-on", &set);
	dir = t_strconcat(test_tmpdir(), "/goes-on-files", NULL);
	test_assert(mkdir(dir, 0700) == 0);
	bad = t_strconcat(dir, "/a-overflow.xml", NULL);
	fd = open(bad, O_WRONLY | O_CREAT, 0600);
	test_assert(write(fd, overflow, sizeof(overflow) - 1) ==
		    (ssize_t)sizeof(overflow) - 1);
	i_close_fd(&fd);
	good = t_strconcat(dir, "/b-good.xml", NULL);
	fd = open(good, O_WRONLY | O_CREAT, 0600);
	test_assert(write(fd, "<feedback><report_metadata><org_name>o"
		"</org_name><report_id>good</report_id><date_range><begin>1"
		"</begin><end>2</end></date_range></report_metadata>"
		"<policy_published><domain>example.com</domain><p>none</p>"
		"</policy_published><record><row><source_ip>192.0.2.1"
		"</source_ip><count>1</count><policy_evaluated><disposition>"
		"none</disposition><dkim>pass</dkim><spf>pass</spf>"
		"</policy_evaluated></row><identifiers><header_from>"
		"example.com</header_from></identifiers></record></feedback>\n",
		476) == 476);
	i_close_fd(&fd);

	i_zero(&counts);
	ingest = dmarc_ingest_init(&set, test_event);
	dmarc_ingest_set_archiving(ingest, FALSE);
	test_assert(dmarc_ingest_batch_begin(ingest) == 0);
	TEST_EXPECT_WARNINGS("Not stored: report overflow from o for "
			     "example.com: record 1, line 1: <count>");
	test_assert(dmarc_ingest_file(ingest, bad, &counts) == 0);
	test_expect_no_more_warnings();
	test_assert(dmarc_ingest_file(ingest, good, &counts) == 0);
	test_assert(dmarc_ingest_batch_commit(ingest) == 0);
	dmarc_ingest_deinit(&ingest);
	test_assert(counts.failed == 1 && counts.reports_new == 1);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports") == 1);
	test_end();
}


static int ingest_mail_str(const struct dmarc_settings *set, const char *mail,
			   struct dmarc_ingest_counts *counts)
{
	struct dmarc_ingest *ingest;
	struct istream *input;
	int ret;

	input = i_stream_create_from_data(mail, strlen(mail));
	ingest = dmarc_ingest_init(set, test_event);
	ret = dmarc_ingest_message(ingest, input, 1700000000, counts);
	dmarc_ingest_deinit(&ingest);
	i_stream_unref(&input);
	return ret;
}

/* A one-record report; org is put in as it is (any charset). */
static const char *small_report(const char *decl, const char *report_id,
				const char *org)
{
	return t_strdup_printf("%s<feedback><report_metadata>"
		"<org_name>%s</org_name><report_id>%s</report_id>"
		"<date_range><begin>1</begin><end>2</end></date_range>"
		"</report_metadata><policy_published><domain>example.com"
		"</domain><p>none</p></policy_published><record><row>"
		"<source_ip>192.0.2.1</source_ip><count>1</count>"
		"<policy_evaluated><disposition>none</disposition><dkim>pass"
		"</dkim><spf>pass</spf></policy_evaluated></row><identifiers>"
		"<header_from>example.com</header_from></identifiers></record>"
		"</feedback>\n", decl, org, report_id);
}

static buffer_t *gzip_data(const char *data)
{
	buffer_t *out = t_buffer_create(1024);
	z_stream zs;

	i_zero(&zs);
	if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		i_fatal("deflateInit2() failed");
	zs.next_in = (void *)data;
	zs.avail_in = strlen(data);
	zs.next_out = buffer_append_space_unsafe(out, 4096);
	zs.avail_out = 4096;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		i_fatal("deflate() failed");
	buffer_set_used_size(out, zs.total_out);
	(void)deflateEnd(&zs);
	return out;
}

/* A mail whose one attachment has these headers and this (encoded)
   body; the closing boundary only when closed. */
static const char *
attachment_mail(const char *id, const char *headers, const char *body,
		bool closed)
{
	return t_strdup_printf("From: a@example.com\n"
		"Message-ID: <%s@example.com>\n"
		"MIME-Version: 1.0\n"
		"Content-Type: multipart/mixed; boundary=\"b\"\n\n"
		"--b\nContent-Type: text/plain\n\nreport attached\n"
		"--b\n%s\n%s%s", id, headers, body, closed ? "--b--\n" : "");
}

static const char *base64_lines(const void *data, size_t size)
{
	string_t *str = t_str_new(size * 2);
	size_t pos;

	base64_encode(data, size, str);
	for (pos = 76; pos < str_len(str); pos += 77)
		str_insert(str, pos, "\n");
	str_append_c(str, '\n');
	return str_c(str);
}

static bool archive_holds(const struct dmarc_settings *set,
			  const char *report_id, const buffer_t *expected)
{
	const char *rel, *path;
	sqlite3 *db;
	sqlite3_stmt *stmt;
	buffer_t *data = t_buffer_create(expected->used + 16);
	unsigned char buf[4096];
	ssize_t ret;
	int fd;

	if (sqlite3_open_v2(set->db_path, &db, SQLITE_OPEN_READONLY,
			    NULL) != SQLITE_OK)
		return FALSE;
	if (sqlite3_prepare_v2(db, "SELECT archive_path FROM reports "
			       "WHERE report_id = ?", -1, &stmt,
			       NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return FALSE;
	}
	sqlite3_bind_text(stmt, 1, report_id, -1, SQLITE_TRANSIENT);
	rel = sqlite3_step(stmt) == SQLITE_ROW ?
		t_strdup((const char *)sqlite3_column_text(stmt, 0)) : NULL;
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	if (rel == NULL)
		return FALSE;
	path = t_strconcat(set->archive_dir, "/", rel, NULL);
	if ((fd = open(path, O_RDONLY)) == -1)
		return FALSE;
	while ((ret = read(fd, buf, sizeof(buf))) > 0)
		buffer_append(data, buf, ret);
	i_close_fd(&fd);
	return buffer_cmp(data, expected);
}

static void test_ingest_gzip_labelled_text(void)
{
	static const char *const types[] = {
		"text/xml", "text/plain; name=\"report.xml.gz\"",
		"text/xml; charset=utf-8",
	};
	struct dmarc_settings set;
	unsigned int i;

	test_begin("ingest: a gzip labelled as text is stored and archived "
		   "as sent");
	test_settings("gzip-as-text", &set);
	for (i = 0; i < N_ELEMENTS(types); i++) {
		struct dmarc_ingest_counts counts;
		const char *id = t_strdup_printf("gz-as-text-%u", i);
		buffer_t *gz = gzip_data(small_report("", id, "org"));

		i_zero(&counts);
		test_assert_idx(ingest_mail_str(&set, attachment_mail(id,
			t_strdup_printf("Content-Type: %s\n"
				"Content-Disposition: attachment; "
				"filename=\"r.xml.gz\"\n"
				"Content-Transfer-Encoding: base64\n", types[i]),
			base64_lines(gz->data, gz->used), TRUE),
			&counts) == 0, i);
		test_assert_idx(counts.reports_new == 1 && counts.failed == 0, i);
		test_assert_idx(archive_holds(&set, id, gz), i);
	}
	test_end();
}

static buffer_t *zip_data(const char *name, const char *data)
{
	size_t size = strlen(data), used = 0, max = size + 4096;
	buffer_t *out = t_buffer_create(max);
	struct archive *a = archive_write_new();
	struct archive_entry *entry = archive_entry_new();

	if (archive_write_set_format_zip(a) != ARCHIVE_OK ||
	    archive_write_open_memory(a, buffer_append_space_unsafe(out, max),
				      max, &used) != ARCHIVE_OK)
		i_fatal("zip: %s", archive_error_string(a));
	archive_entry_set_pathname(entry, name);
	archive_entry_set_filetype(entry, AE_IFREG);
	archive_entry_set_perm(entry, 0644);
	archive_entry_set_size(entry, size);
	if (archive_write_header(a, entry) != ARCHIVE_OK ||
	    archive_write_data(a, data, size) != (la_ssize_t)size ||
	    archive_write_close(a) != ARCHIVE_OK)
		i_fatal("zip: %s", archive_error_string(a));
	archive_entry_free(entry);
	archive_write_free(a);
	buffer_set_used_size(out, used);
	return out;
}

/* dmarc-kinds.h: a kind recognises a document by its first
   DMARC_KIND_PEEK_SIZE bytes, however the stream it comes from reads:
   a text-only failure report whose "Sender IP Address:" line starts
   past them is no failure report, plain, gzipped or zipped alike. */
static void test_ingest_kind_peek_size(void)
{
	static const char *const containers[] = { "txt", "txt.gz", "zip" };
	struct dmarc_settings set;
	string_t *text = t_str_new(DMARC_KIND_PEEK_SIZE + 1024);
	unsigned int i;

	test_begin("ingest: a kind is recognised by the first 4096 bytes, "
		   "whatever the container");
	test_settings("kind-peek", &set);
	str_append(text, "A message claiming to be from you has failed the "
		   "published DMARC\npolicy for your domain.\n\n"
		   "  Sender Domain: example.com\n");
	while (str_len(text) < DMARC_KIND_PEEK_SIZE + 100)
		str_append(text, "  Note: this line only makes the summary "
			   "longer than what a kind gets to see.\n");
	test_assert(str_len(text) > DMARC_KIND_PEEK_SIZE);
	str_append(text, "  Sender IP Address: 192.0.2.7\n"
		   "  DMARC Results: Reject\n\n"
		   "------ This is a copy of the headers that were received "
		   "before the error was detected.\n\n"
		   "From: <ceo@example.com>\nSubject: urgent\n");
	for (i = 0; i < N_ELEMENTS(containers); i++) T_BEGIN {
		struct dmarc_ingest_counts counts;
		const char *id = t_strdup_printf("kind-peek-%s", containers[i]);
		const char *name = t_strconcat("failure.", containers[i], NULL);
		const buffer_t *data;

		if (i == 0) {
			data = t_buffer_create(str_len(text));
			buffer_append_buf((buffer_t *)data, text, 0, SIZE_MAX);
		} else if (i == 1) {
			data = gzip_data(str_c(text));
		} else {
			data = zip_data("failure.txt", str_c(text));
		}
		i_zero(&counts);
		/* not a failure report, so the first kind's (aggregate):
		   not stored, one warning */
		test_expect_errors(1);
		test_assert_idx(ingest_mail_str(&set, attachment_mail(id,
			t_strdup_printf("Content-Type: application/octet-stream\n"
				"Content-Disposition: attachment; "
				"filename=\"%s\"\n"
				"Content-Transfer-Encoding: base64\n", name),
			base64_lines(data->data, data->used), TRUE),
			&counts) == 0, i);
		test_expect_no_more_errors();
		test_assert_idx(counts.reports_new == 0 &&
				counts.failed == 1, i);
		/* nothing stored: no database made */
		test_assert_idx(access(set.db_path, F_OK) == -1 ||
				db_int(set.db_path, "SELECT COUNT(*) FROM "
				       "failure_reports") == 0, i);
	} T_END;
	test_end();
}

/* A read of the mail that fails inside an attachment: what was read of
   it is neither stored (a text-only failure report cut in its copy of the
   headers would parse) nor left in the archive; the mail itself is
   the copy to go back to. */
static void test_ingest_read_error_mid_attachment(void)
{
	const char *mail = attachment_mail("read-error",
		"Content-Type: text/plain\n"
		"Content-Disposition: attachment; filename=\"failure.txt\"\n",
		"A message claiming to be from you has failed the published "
		"DMARC\npolicy for your domain.\n\n"
		"  Sender Domain: example.com\n"
		"  Sender IP Address: 192.0.2.8\n"
		"  DMARC Results: Reject\n\n"
		"------ This is a copy of the headers that were received "
		"before the error was detected.\n\n"
		"From: <ceo@example.com>\nSubject: urgent, cut here\n", TRUE);
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	struct dmarc_ingest *ingest;
	struct test_fail_reader reader = {
		.mem = { .data = (const void *)mail, .size = strlen(mail) },
		.fail_offset = strstr(mail, ", cut here") - mail,
	};
	struct istream *input;

	test_begin("ingest: a read error inside an attachment stores and "
		   "archives nothing of it");
	test_settings("read-error", &set);
	input = test_istream_create_func(test_fail_read, &reader, 64);
	i_zero(&counts);
	ingest = dmarc_ingest_init(&set, test_event);
	/* the attachment not stored, saying why, and the read error */
	TEST_EXPECT_WARNINGS("Not stored: reading the mail failed inside "
			     "the attachment", "");
	test_assert(dmarc_ingest_message(ingest, input, 1700000000,
					 &counts) < 0);
	test_expect_no_more_warnings();
	dmarc_ingest_deinit(&ingest);
	i_stream_unref(&input);
	test_assert(counts.attachments == 1 && counts.reports_new == 0 &&
		    counts.failed == 1);
	test_assert(access(set.db_path, F_OK) == -1 ||
		    db_int(set.db_path, "SELECT COUNT(*) FROM "
			   "failure_reports") == 0);
	/* received 1700000000: archived under 2023/11, made at its
	   beginning and empty again */
	test_assert(count_files(t_strconcat(set.archive_dir, "/2023/11",
					    NULL)) == 0);
	test_end();
}

static void test_ingest_mime_charset(void)
{
	static const struct {
		const char *decl, *content_type;
	} cases[] = {
		/* the declaration agrees: converting before the parser
		   would decode twice ("CafÃ©") */
		{ "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n",
		  "text/xml; charset=iso-8859-1" },
		/* no declaration: UTF-8 unless the MIME charset says */
		{ "", "text/xml; charset=iso-8859-1" },
		/* a wrong declaration: the MIME charset decides */
		{ "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
		  "application/xml; charset=\"ISO-8859-1\"" },
		/* a charset nobody knows: the declaration decides */
		{ "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n",
		  "text/xml; charset=x-no-such-charset" },
	};
	struct dmarc_settings set;
	unsigned int i;

	test_begin("ingest: the MIME charset of a text/xml report decides "
		   "its encoding (RFC 7303)");
	test_settings("mime-charset", &set);
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		struct dmarc_ingest_counts counts;
		const char *id = t_strdup_printf("latin1-%u", i);
		const char *xml = small_report(cases[i].decl, id, "Caf\xe9");

		i_zero(&counts);
		test_assert_idx(ingest_mail_str(&set, attachment_mail(id,
			t_strdup_printf("Content-Type: %s\n"
				"Content-Disposition: attachment; "
				"filename=\"r.xml\"\n"
				"Content-Transfer-Encoding: base64\n",
				cases[i].content_type),
			base64_lines(xml, strlen(xml)), TRUE),
			&counts) == 0, i);
		test_assert_idx(counts.reports_new == 1, i);
		test_assert_idx(db_int(set.db_path, t_strdup_printf(
			"SELECT org_name = 'Caf\xc3\xa9' FROM reports "
			"WHERE report_id = '%s'", id)) == 1, i);
	}
	test_end();
}

static void test_ingest_base64_text_unclosed(void)
{
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	const char *xml = small_report("", "unclosed", "org");
	buffer_t *expected = t_buffer_create(512);

	test_begin("ingest: a base64 text/xml part without its closing "
		   "boundary is one stored report");
	test_settings("unclosed", &set);
	buffer_append(expected, xml, strlen(xml));
	i_zero(&counts);
	test_assert(ingest_mail_str(&set, attachment_mail("unclosed",
		"Content-Type: text/xml\n"
		"Content-Disposition: attachment; filename=\"r.xml\"\n"
		"Content-Transfer-Encoding: base64\n",
		base64_lines(xml, strlen(xml)), FALSE), &counts) == 0);
	test_assert(counts.attachments == 1);
	test_assert(counts.reports_new == 1 && counts.failed == 0);
	test_assert(archive_holds(&set, "unclosed", expected));
	test_end();
}

static const char *db_text(const char *db_path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *stmt;
	const char *value = NULL;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		i_fatal("sqlite3_open(%s): %s", db_path, sqlite3_errmsg(db));
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		i_fatal("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(stmt) == SQLITE_ROW &&
	    sqlite3_column_type(stmt, 0) != SQLITE_NULL)
		value = t_strdup((const char *)sqlite3_column_text(stmt, 0));
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return value;
}

static bool name_ends_with(const char *name, const char *suffix)
{
	size_t len = strlen(name), slen = strlen(suffix);

	return len >= slen && strcmp(name + len - slen, suffix) == 0;
}

static void test_ingest_tls_corpus(void)
{
	const char *const *names = test_corpus_list("tlsrpt");
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	struct dmarc_ingest *ingest;
	unsigned int i, mails = 0, files = 0;

	if (test_corpus_dir() == NULL)
		return;
	test_begin("ingest: every corpus TLS report mail and file is stored");
	test_settings("tls", &set);
	for (i = 0; names[i] != NULL; i++) {
		const char *path = t_strconcat(test_corpus_dir(), "/tlsrpt/",
					       names[i], NULL);

		i_zero(&counts);
		if (name_ends_with(names[i], ".eml")) {
			test_assert_idx(ingest_mail_file(&set, path,
							 &counts) == 0, i);
			mails++;
		} else {
			ingest = dmarc_ingest_init(&set, test_event);
			test_assert_idx(dmarc_ingest_file(ingest, path,
							  &counts) == 0, i);
			dmarc_ingest_deinit(&ingest);
			files++;
		}
		/* rpt01.eml carries the RFC 8460 example, as does
		   parsedmarc--rfc8460.json: the second is a duplicate */
		test_assert_idx(counts.reports_new + counts.reports_duplicate == 1, i);
		test_assert_idx(counts.failed == 0, i);
		if (counts.failed != 0 ||
		    counts.reports_new + counts.reports_duplicate != 1)
			i_info("%s: %u new, %u failed", names[i],
			       counts.reports_new, counts.failed);
	}
	test_assert(mails == 5 && files == 8);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM tls_reports") >= 10);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM reports") == 0);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM tls_reports "
			   "WHERE archive_path IS NULL") == 0);
	test_assert_strcmp(db_text(set.db_path, "SELECT group_concat("
		"result_type || '/' || failed_session_count, ' ') FROM "
		"tls_failures f JOIN tls_policies p ON f.policy_ref = p.id "
		"JOIN tls_reports r ON p.report_ref = r.id WHERE "
		"r.report_id = '5065427c-23d3-47ca-b6e0-946ea0e8c4be'"),
		"certificate-expired/100 starttls-not-supported/200 "
		"validation-failure/3");
	test_end();
}

static void test_ingest_failure_corpus(void)
{
	const char *const *names = test_corpus_list("failure");
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	unsigned int i, n = 0;

	if (test_corpus_dir() == NULL)
		return;
	test_begin("ingest: every corpus failure report is stored, Exim's text-only one too");
	test_settings("failure", &set);
	for (i = 0; names[i] != NULL; i++) {
		const char *path = t_strconcat(test_corpus_dir(), "/failure/",
					       names[i], NULL);

		i_zero(&counts);
		test_assert_idx(ingest_mail_file(&set, path, &counts) == 0, i);
		/* the LinkedIn report comes with CRLF and LF line ends:
		   the same report, stored once */
		test_assert_idx(counts.reports_new + counts.reports_duplicate == 1, i);
		test_assert_idx(counts.failed == 0, i);
		n++;
	}
	test_assert(n == 7);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM failure_reports") == 6);
	test_assert(db_int(set.db_path, "SELECT count(*) FROM failure_reports "
			   "WHERE orig_from IS NULL OR orig_subject IS NULL "
			   "OR reported_domain IS NULL") == 0);
	/* Exim's text-only report: its summary lines and the header
	   block it copies */
	test_assert_strcmp(db_text(set.db_path, "SELECT feedback_type || '|' "
		"|| auth_failure || '|' || reported_domain || '|' || source_ip "
		"|| '|' || arrival_date || '|' || identity_alignment || '|' "
		"|| other_fields || '|' || orig_from || '|' || orig_subject "
		"|| '|' || orig_message_id FROM failure_reports "
		"WHERE source_ip = '203.0.113.68'"),
		"auth-failure|dmarc|example.com|203.0.113.68|"
		"Mon, 07 Apr 2025 23:16:09 +0200|none|"
		"DMARC-Results: None, Accept|<user@example.com>|"
		"Payment from your account.|"
		"<134117F8-2145-AECE-9CCA-25FC98731341@example.com>");
	test_assert_strcmp(db_text(set.db_path, "SELECT orig_subject || '|' "
		"|| auth_failure || '|' || source_ip FROM failure_reports "
		"WHERE user_agent LIKE 'OpenDMARC%'"),
		"Wir kaufen dein Auto!|dmarc|148.163.85.135");
	test_end();
}

/* The outcome events sent while collecting: "name field=value ...". The
   events come inside the pipeline's data stack frames: a pool of its
   own. */
static pool_t test_outcome_pool;
static ARRAY_TYPE(const_string) test_outcomes;

static bool event_has_dmarc_category(struct event *event)
{
	struct event_category *const *categories;
	unsigned int i, count;

	for (; event != NULL; event = event_get_parent(event)) {
		categories = event_get_categories(event, &count);
		for (i = 0; i < count; i++) {
			/* events keep the registered copy of a category */
			if (strcmp(categories[i]->name,
				   dmarc_event_category.name) == 0)
				return TRUE;
		}
	}
	return FALSE;
}

static bool
test_outcome_callback(struct event *event, enum event_callback_type type,
		      struct failure_context *ctx ATTR_UNUSED,
		      const char *fmt ATTR_UNUSED, va_list args ATTR_UNUSED)
{
	static const char *const fields[] = {
		"kind", "org", "policy_domain", "report_id", "records",
		"messages", "attachments",
	};
	const char *value;
	string_t *str;
	unsigned int i;

	if (type != EVENT_CALLBACK_TYPE_SEND || event->sending_name == NULL ||
	    !str_begins_with(event->sending_name, "dmarcreport_report_"))
		return TRUE;
	str = t_str_new(128);
	str_append(str, event->sending_name + strlen("dmarcreport_report_"));
	for (i = 0; i < N_ELEMENTS(fields); i++) {
		value = event_find_field_recursive_str(event, fields[i]);
		if (value != NULL)
			str_printfa(str, " %s=%s", fields[i], value);
	}
	if (event_find_field_recursive_str(event, "reason") != NULL)
		str_append(str, " reason");
	if (!event_has_dmarc_category(event))
		str_append(str, " (no category)");
	value = p_strdup(test_outcome_pool, str_c(str));
	array_push_back(&test_outcomes, &value);
	return TRUE;
}

#define OUTCOME_XML(id, end) \
	"<feedback><report_metadata><org_name>ev.example</org_name>" \
	"<report_id>" id "</report_id><date_range><begin>1</begin>" \
	"<end>2</end></date_range></report_metadata>" \
	"<policy_published><domain>example.com</domain><p>none</p>" \
	"</policy_published>" \
	"<record><row><source_ip>192.0.2.1</source_ip><count>3</count>" \
	"<policy_evaluated><disposition>none</disposition><dkim>pass</dkim>" \
	"<spf>pass</spf></policy_evaluated></row><identifiers><header_from>" \
	"example.com</header_from></identifiers></record>" \
	"<record><row><source_ip>192.0.2.2</source_ip><count>4</count>" end

static void test_ingest_outcome_events(void)
{
	static const char mail[] =
		"From: a@example.com\n"
		"Message-ID: <events@example.com>\n"
		"Content-Type: multipart/mixed; boundary=\"b\"\n"
		"\n--b\n"
		"Content-Type: text/xml; name=\"a.xml\"\n\n"
		OUTCOME_XML("ev-1", "<policy_evaluated><disposition>none"
			    "</disposition><dkim>pass</dkim><spf>pass</spf>"
			    "</policy_evaluated></row><identifiers>"
			    "<header_from>example.com</header_from>"
			    "</identifiers></record></feedback>")
		"\n--b\n"
		"Content-Type: text/xml; name=\"again.xml\"\n\n"
		OUTCOME_XML("ev-1", "<policy_evaluated><disposition>none"
			    "</disposition><dkim>pass</dkim><spf>pass</spf>"
			    "</policy_evaluated></row><identifiers>"
			    "<header_from>example.com</header_from>"
			    "</identifiers></record></feedback>")
		"\n--b\n"
		"Content-Type: text/xml; name=\"cut.xml\"\n\n"
		OUTCOME_XML("ev-2", "")
		"\n--b\n"
		"Content-Type: application/octet-stream; name=\"notes.txt\"\n\n"
		"just notes\n"
		"--b--\n";
	static const char no_attachment[] =
		"From: a@example.com\n"
		"Message-ID: <events-none@example.com>\n"
		"\nhello\n";
	static const char *const expected[] = {
		"stored kind=aggregate org=ev.example policy_domain=example.com "
			"report_id=ev-1 records=2 messages=7",
		"duplicate kind=aggregate org=ev.example "
			"policy_domain=example.com report_id=ev-1",
		"failed kind=aggregate org=ev.example policy_domain=example.com "
			"report_id=ev-2 reason",
		"failed kind=aggregate reason",
		"skipped reason",
	};
	struct dmarc_ingest_counts counts;
	struct dmarc_ingest *ingest;
	struct dmarc_settings set;
	struct istream *input;
	const char *const *outcomes;
	unsigned int i, count;

	test_begin("ingest: one named outcome event per attachment, with fields");
	test_settings("events", &set);
	test_outcome_pool = pool_alloconly_create("test outcomes", 1024);
	p_array_init(&test_outcomes, test_outcome_pool, 8);
	event_register_callback(test_outcome_callback);
	i_zero(&counts);
	ingest = dmarc_ingest_init(&set, test_event);
	TEST_EXPECT_WARNINGS("'cut.xml': Not stored: report ev-2 from "
			     "ev.example for example.com: ",
			     "'notes.txt': Not stored: not an XML document");
	input = i_stream_create_from_data(mail, sizeof(mail) - 1);
	test_assert(dmarc_ingest_message(ingest, input, 1700000000,
					 &counts) == 0);
	i_stream_unref(&input);
	test_expect_no_more_warnings();
	input = i_stream_create_from_data(no_attachment,
					  sizeof(no_attachment) - 1);
	test_assert(dmarc_ingest_message(ingest, input, 1700000000,
					 &counts) == 0);
	i_stream_unref(&input);
	dmarc_ingest_deinit(&ingest);
	event_unregister_callback(test_outcome_callback);

	test_assert(counts.reports_new == 1 && counts.reports_duplicate == 1 &&
		    counts.failed == 2);
	outcomes = array_get(&test_outcomes, &count);
	test_assert(count == N_ELEMENTS(expected));
	for (i = 0; i < count && i < N_ELEMENTS(expected); i++)
		test_assert_strcmp_idx(outcomes[i], expected[i], i);
	pool_unref(&test_outcome_pool);
	test_end();
}

/* ARF parts labelled text/plain, and text-only reports, built here */
static void test_ingest_failure_text_parts(void)
{
	static const char arf_as_text[] =
		"From: r@example.net\nMessage-ID: <arf-text@x>\n"
		"Content-Type: multipart/report; report-type=feedback-report;"
		" boundary=b\n\n"
		"--b\nContent-Type: text/plain\n\nA DMARC failure report.\n"
		"--b\nContent-Type: text/plain; charset=us-ascii\n\n"
		"Feedback-Type: auth-failure\nVersion: 1\n"
		"Source-IP: 192.0.2.9\nReported-Domain: example.org\n"
		"Auth-Failure: dmarc\n\n"
		"--b\nContent-Type: text/rfc822-headers\n\n"
		"From: x@example.org\nSubject: labelled text\n\n"
		"--b--\n";
	static const char exim_single[] =
		"From: r@example.net\nMessage-ID: <exim-single@x>\n"
		"Content-Type: text/plain\n\n"
		"A message claiming to be from you has failed the published "
		"DMARC\npolicy for your domain.\n\n"
		"  Sender Domain: Example.COM\n"
		"  Sender IP Address: 2001:db8::7\n"
		"  Received Date: Tue, 8 Apr 2025 10:00:00 +0000\n"
		"  SPF Alignment: yes\n  DKIM Alignment: no\n"
		"  DMARC Results: Reject\n\n"
		"------ This is a copy of the headers that were received "
		"before the error was detected.\n\n"
		"From: <ceo@example.com>\nSubject: urgent\n";
	static const char not_a_report[] =
		"From: r@example.net\nMessage-ID: <nothing@x>\n"
		"Content-Type: multipart/report; boundary=b\n\n"
		"--b\nContent-Type: text/plain\n\nSender Domain: example.com\n"
		"(no address line)\n"
		"--b--\n";
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;

	test_begin("ingest: failure reports in text/plain parts");
	test_settings("failure-text", &set);
	i_zero(&counts);
	test_assert(ingest_mail_str(&set, arf_as_text, &counts) == 0);
	test_assert(counts.reports_new == 1 && counts.failed == 0);
	test_assert_strcmp(db_text(set.db_path, "SELECT source_ip || '|' || "
		"orig_subject FROM failure_reports WHERE "
		"message_id = '<arf-text@x>'"), "192.0.2.9|labelled text");

	i_zero(&counts);
	test_assert(ingest_mail_str(&set, exim_single, &counts) == 0);
	test_assert(counts.reports_new == 1 && counts.failed == 0);
	test_assert_strcmp(db_text(set.db_path, "SELECT reported_domain || '|' "
		"|| source_ip || '|' || identity_alignment || '|' || "
		"arrival_time || '|' || orig_from FROM failure_reports WHERE "
		"message_id = '<exim-single@x>'"),
		"example.com|2001:db8::7|spf|1744106400|<ceo@example.com>");
	/* resent: the same report */
	i_zero(&counts);
	test_assert(ingest_mail_str(&set, exim_single, &counts) == 0);
	test_assert(counts.reports_duplicate == 1);

	/* one warning says why nothing was stored */
	i_zero(&counts);
	test_expect_error_string("Not stored: not a report: a multipart/report");
	test_assert(ingest_mail_str(&set, not_a_report, &counts) == 0);
	test_expect_no_more_errors();
	test_assert(counts.reports_new == 0 && counts.failed == 1);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_ingest_setup,
		test_ingest_corpus_emails,
		test_ingest_duplicate,
		test_ingest_files,
		test_ingest_db_unwritable,
		test_ingest_not_a_report,
		test_ingest_conflict_and_anomalies,
		test_ingest_without_archive,
		test_ingest_too_big_not_archived,
		test_ingest_processing_time_limit,
		test_ingest_archive_write_fails,
		test_ingest_temp_dir_unusable,
		test_ingest_large_from_archive,
		test_ingest_queue_when_busy,
		test_ingest_pending_db_broken,
		test_ingest_queue_bounded,
		test_ingest_import_goes_on,
		test_ingest_gzip_labelled_text,
		test_ingest_kind_peek_size,
		test_ingest_read_error_mid_attachment,
		test_ingest_mime_charset,
		test_ingest_base64_text_unclosed,
		test_ingest_tls_corpus,
		test_ingest_failure_corpus,
		test_ingest_outcome_events,
		test_ingest_failure_text_parts,
		test_ingest_teardown,
		NULL
	};
	return test_run(test_functions);
}
