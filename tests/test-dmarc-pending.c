/* Unit tests for dmarc-pending.c: the spool of reports a delivery could
   not store. */

#include "lib.h"
#include "istream.h"
#include "test-dmarc-common.h"
#include "dmarc-pending.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

/* An entry whose bytes are in memory. */
static int pending_add_data(const char *db_path, uoff_t max_size,
			    const struct dmarc_pending_info *info,
			    const void *data, size_t size, const char **error_r)
{
	struct istream *input = i_stream_create_from_data(data, size);
	int ret;

	ret = dmarc_pending_add(db_path, max_size, info, input, error_r);
	i_stream_unref(&input);
	return ret;
}

static unsigned int test_iter_count(const char *db_path, bool include_failed,
				    bool remove)
{
	struct dmarc_pending_iter *iter;
	const struct dmarc_pending_entry *entry;
	const char *error;
	unsigned int n = 0;
	int ret;

	iter = dmarc_pending_iter_init(db_path, include_failed);
	while ((ret = dmarc_pending_iter_next(iter, &entry, &error)) != 0) {
		if (ret < 0) {
			i_info("%s", error);
			continue;
		}
		n++;
		dmarc_pending_iter_done(iter, remove);
	}
	test_assert(dmarc_pending_iter_deinit(&iter, &error) == 0);
	return n;
}

static void test_pending_entries(void)
{
	const char *db_path = t_strconcat(test_tmpdir(), "/entries.sqlite", NULL);
	struct dmarc_pending_info info;
	struct dmarc_pending_iter *iter;
	const struct dmarc_pending_entry *entry;
	const char *error;
	int fd;

	test_begin("pending: entries keep what they name, oldest first");
	/* no spool yet: nothing, no error */
	test_assert(test_iter_count(db_path, TRUE, FALSE) == 0);
	i_zero(&info);
	info.archive_path = "2023/11/a\tb.xml";
	info.message_id = "<m1@example.com>";
	info.received = 1700000000;
	test_assert(dmarc_pending_add(db_path, 1024*1024, &info, NULL,
				      &error) == 0);
	info.archive_path = NULL;
	info.message_id = NULL;
	test_assert(pending_add_data(db_path, 1024*1024, &info, "<x/>", 4,
				     &error) == 0);

	iter = dmarc_pending_iter_init(db_path, FALSE);
	test_assert(dmarc_pending_iter_next(iter, &entry, &error) == 1);
	test_assert_strcmp(entry->info.archive_path, "2023/11/a\tb.xml");
	test_assert_strcmp(entry->info.message_id, "<m1@example.com>");
	test_assert(entry->info.received == 1700000000);
	test_assert(entry->data_path == NULL && entry->attempts == 1);
	/* taken: another process skips it */
	fd = open(t_strconcat(dmarc_pending_dir(db_path), "/",
			      entry->name, NULL), O_RDONLY);
	test_assert(fd != -1 && flock(fd, LOCK_EX | LOCK_NB) < 0);
	i_close_fd(&fd);
	dmarc_pending_iter_done(iter, TRUE);
	test_assert(dmarc_pending_iter_next(iter, &entry, &error) == 1);
	test_assert(entry->info.archive_path == NULL &&
		    entry->info.message_id == NULL);
	fd = open(entry->data_path, O_RDONLY);
	test_assert(fd != -1);
	i_close_fd(&fd);
	dmarc_pending_iter_done(iter, TRUE);
	test_assert(dmarc_pending_iter_next(iter, &entry, &error) == 0);
	test_assert(dmarc_pending_iter_deinit(&iter, &error) == 0);
	test_assert(test_iter_count(db_path, TRUE, FALSE) == 0);
	test_end();
}

static void test_pending_attempts_bounded(void)
{
	const char *db_path = t_strconcat(test_tmpdir(), "/attempts.sqlite", NULL);
	struct dmarc_pending_info info;
	const char *error;
	unsigned int i;

	test_begin("pending: an entry that keeps failing is set aside");
	i_zero(&info);
	info.received = 1700000000;
	test_assert(pending_add_data(db_path, 1024*1024, &info, "<x/>", 4,
				     &error) == 0);
	for (i = 0; i < DMARC_PENDING_MAX_ATTEMPTS; i++)
		test_assert_idx(test_iter_count(db_path, FALSE, FALSE) == 1, i);
	/* one more: set aside (an error once), then left out */
	test_assert(test_iter_count(db_path, FALSE, FALSE) == 0);
	test_assert(test_iter_count(db_path, FALSE, FALSE) == 0);
	/* import --pending takes it again */
	test_assert(test_iter_count(db_path, TRUE, TRUE) == 1);
	test_assert(test_iter_count(db_path, TRUE, FALSE) == 0);
	test_end();
}

static void test_pending_bounded(void)
{
	const char *db_path = t_strconcat(test_tmpdir(), "/full.sqlite", NULL);
	struct dmarc_pending_info info;
	const char *error;
	char data[30000];

	test_begin("pending: the spool stays under its size");
	memset(data, 'x', sizeof(data));
	i_zero(&info);
	info.received = 1700000000;
	test_assert(pending_add_data(db_path, 64*1024, &info, data,
				     sizeof(data), &error) == 0);
	test_assert(pending_add_data(db_path, 64*1024, &info, data,
				     sizeof(data), &error) < 0);
	test_assert(strstr(error, "dmarcreport_max_pending_size") != NULL);
	test_assert(test_iter_count(db_path, TRUE, TRUE) == 1);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_pending_entries,
		test_pending_attempts_bounded,
		test_pending_bounded,
		test_tmpdir_cleanup,
		NULL
	};
	return test_run(test_functions);
}
