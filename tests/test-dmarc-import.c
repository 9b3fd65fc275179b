/* Unit tests for dmarc-import.c: the file side of doveadm dmarc import. */

#include "lib.h"
#include "test-dmarc-common.h"
#include "dmarc-ingest.h"
#include "dmarc-import.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/stat.h>

static struct event *test_event;

static void test_import_setup(void)
{
	test_event = event_create(NULL);
}

static void test_import_teardown(void)
{
	event_unref(&test_event);
	test_tmpdir_cleanup();
}

static void write_report(const char *path, const char *id)
{
	const char *xml = t_strdup_printf(
		"<feedback><report_metadata><org_name>o</org_name>"
		"<report_id>%s</report_id><date_range><begin>1</begin>"
		"<end>2</end></date_range></report_metadata><policy_published>"
		"<domain>example.com</domain><p>none</p></policy_published>"
		"<record><row><source_ip>192.0.2.1</source_ip><count>1</count>"
		"<policy_evaluated><disposition>none</disposition><dkim>pass"
		"</dkim><spf>pass</spf></policy_evaluated></row><identifiers>"
		"<header_from>example.com</header_from></identifiers></record>"
		"</feedback>\n", id);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd == -1 || write(fd, xml, strlen(xml)) != (ssize_t)strlen(xml))
		i_fatal("write(%s) failed: %m", path);
	i_close_fd(&fd);
}

static void test_import_walk_each_file_once(void)
{
	const char *dir = t_strconcat(test_tmpdir(), "/walk", NULL);
	const char *fifo = t_strconcat(test_tmpdir(), "/fifo", NULL);
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	struct dmarc_ingest *ingest;
	struct dmarc_import *import;

	test_begin("import: symlink loops and second names read once, FIFOs not opened");
	test_assert(mkdir(dir, 0700) == 0);
	test_assert(mkdir(t_strconcat(dir, "/sub", NULL), 0700) == 0);
	write_report(t_strconcat(dir, "/a.xml", NULL), "a");
	write_report(t_strconcat(dir, "/sub/b.xml", NULL), "b");
	test_assert(symlink("..", t_strconcat(dir, "/sub/loop", NULL)) == 0);
	test_assert(symlink("a.xml", t_strconcat(dir, "/link.xml", NULL)) == 0);
	test_assert(mkfifo(t_strconcat(dir, "/sub/pipe.xml", NULL), 0600) == 0);
	test_assert(mkfifo(fifo, 0600) == 0);

	i_zero(&set);
	set.db_path = t_strconcat(test_tmpdir(), "/walk.sqlite", NULL);
	dmarc_limits_default(&set.limits);
	i_zero(&counts);
	ingest = dmarc_ingest_init(&set, test_event);
	dmarc_ingest_set_quiet(ingest, TRUE);
	import = dmarc_import_init(ingest, test_event, &counts);
	/* the FIFO in the walk: one warning; the FIFO named: one error */
	TEST_EXPECT_WARNINGS("not a regular file or directory: skipped",
			     "not a regular file or directory");
	test_assert(dmarc_import_path(import, dir, TRUE) == 0);
	test_assert(dmarc_import_path(import, fifo, TRUE) == 0);
	test_expect_no_more_warnings();
	test_assert(dmarc_import_get_inputs(import) == 2);
	test_assert(dmarc_import_get_unreadable(import) == 1);
	dmarc_import_deinit(&import);
	dmarc_ingest_deinit(&ingest);
	test_assert(counts.reports_new == 2 && counts.reports_duplicate == 0);
	test_assert(counts.failed == 2);
	test_end();
}

/* IN_OPEN events of the watch so far (the watch is non-blocking). */
static unsigned int count_opens(int inotify_fd)
{
	union {
		struct inotify_event event;
		char buf[4096];
	} u;
	const struct inotify_event *event;
	unsigned int opens = 0;
	ssize_t ret, pos;

	while ((ret = read(inotify_fd, u.buf, sizeof(u.buf))) > 0) {
		for (pos = 0; pos < ret;
		     pos += sizeof(*event) + event->len) {
			event = (const void *)(u.buf + pos);
			if ((event->mask & IN_OPEN) != 0)
				opens++;
		}
	}
	return opens;
}

/* Issue 13: a file is opened once, whether it is a bare report or a
   mail (the sniff and the ingest share one stream). */
static void test_import_opens_each_file_once(void)
{
	static const char mail[] =
		"From: r@example.net\nMessage-ID: <once@x>\n"
		"Content-Type: text/xml; name=once.xml\n\n";
	const char *const names[] = { "report.xml", "report", "mail" };
	const char *dir = t_strconcat(test_tmpdir(), "/once", NULL);
	struct dmarc_ingest_counts counts;
	struct dmarc_settings set;
	struct dmarc_ingest *ingest;
	struct dmarc_import *import;
	unsigned int i;
	int inotify_fd, fd;

	test_begin("import: each file opened once, a bare report too");
	test_assert(mkdir(dir, 0700) == 0);
	i_zero(&set);
	set.db_path = t_strconcat(test_tmpdir(), "/once.sqlite", NULL);
	dmarc_limits_default(&set.limits);
	inotify_fd = inotify_init1(IN_NONBLOCK);
	test_assert(inotify_fd != -1);
	for (i = 0; i < N_ELEMENTS(names); i++) {
		const char *path = t_strconcat(dir, "/", names[i], NULL);

		if (strcmp(names[i], "mail") == 0) {
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			test_assert(fd != -1 && write(fd, mail, strlen(mail)) ==
				    (ssize_t)strlen(mail));
			i_close_fd(&fd);
			write_report(t_strconcat(dir, "/body", NULL), "once");
			test_assert(system(t_strdup_printf("cat %s/body >> %s "
				"&& rm %s/body", dir, path, dir)) == 0);
		} else {
			write_report(path, t_strdup_printf("once-%u", i));
		}
		/* IN_CLOSE too: inotify merges identical events in a row */
		test_assert_idx(inotify_add_watch(inotify_fd, path,
						  IN_OPEN | IN_CLOSE) >= 0, i);
		(void)count_opens(inotify_fd);

		i_zero(&counts);
		ingest = dmarc_ingest_init(&set, test_event);
		dmarc_ingest_set_quiet(ingest, TRUE);
		import = dmarc_import_init(ingest, test_event, &counts);
		test_assert_idx(dmarc_import_path(import, path, TRUE) == 0, i);
		dmarc_import_deinit(&import);
		dmarc_ingest_deinit(&ingest);
		test_assert_idx(counts.reports_new == 1, i);
		test_assert_idx(count_opens(inotify_fd) == 1, i);
	}
	i_close_fd(&inotify_fd);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_import_setup,
		test_import_walk_each_file_once,
		test_import_opens_each_file_once,
		test_import_teardown,
		NULL
	};
	return test_run(test_functions);
}
