/* Unit tests for dmarc-archive.c. */

#include "lib.h"
#include "array.h"
#include "test-dmarc-common.h"
#include "unichar.h"
#include "str.h"
#include "dmarc-archive.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

static void test_archive_safe_name(void)
{
	static const struct {
		const char *in, *out;
	} tests[] = {
		{ "report.xml.gz", "report.xml.gz" },
		{ "../../etc/passwd", "passwd" },
		{ "/etc/cron.d/evil.xml", "evil.xml" },
		{ "..\\..\\windows\\evil.zip", "evil.zip" },
		{ "..", "fallback" },
		{ ".", "fallback" },
		{ "", "fallback" },
		{ ".hidden.xml", "hidden.xml" },
		{ "dir/", "fallback" },
		{ "a\nb\tc\x01.xml", "a_b_c_.xml" },
		{ "CON", "_CON" },
		{ "nul.xml", "_nul.xml" },
		{ "com1.zip", "_com1.zip" },
		{ "console.xml", "console.xml" },
		{ "what?*:<>|\".xml", "what_______.xml" },
		{ "trailing. . ", "trailing" },
		{ "google.com!example.com!1!2.zip", "google.com!example.com!1!2.zip" },
	};
	unsigned int i;

	test_begin("archive: unsafe names become one harmless component");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		test_assert_strcmp_idx(dmarc_archive_safe_name(tests[i].in,
							       "fallback"),
				       tests[i].out, i);
	}
	test_assert(dmarc_archive_safe_name(NULL, "fb") != NULL &&
		    strcmp(dmarc_archive_safe_name(NULL, "fb"), "fb") == 0);
	test_end();
}

static void test_archive_safe_name_long(void)
{
	string_t *name = t_str_new(600);
	const char *safe;
	unsigned int i;

	test_begin("archive: over-long names are cut, the extension kept");
	for (i = 0; i < 150; i++)
		str_append(name, "\xc3\xa9");	/* é: 2 bytes each */
	str_append(name, ".xml.gz");
	safe = dmarc_archive_safe_name(str_c(name), "fallback");
	test_assert(strlen(safe) <= 200);
	test_assert(strcmp(safe + strlen(safe) - 7, ".xml.gz") == 0);
	/* cut on a character boundary: still valid UTF-8 */
	test_assert(uni_utf8_str_is_valid(safe));
	/* invalid UTF-8 is replaced, not kept */
	safe = dmarc_archive_safe_name("bad\xff\xfe.xml", "fallback");
	test_assert(uni_utf8_str_is_valid(safe));
	test_end();
}

static void test_archive_same_name_many_times(void)
{
	const char *dir = t_strconcat(test_tmpdir(), "/same-name", NULL);
	const char *path, *error;
	ARRAY_TYPE(const_string) paths;
	const char *const *p;
	unsigned int i, j;
	int fd;

	test_begin("archive: a name used 30 times, numbered then random");
	t_array_init(&paths, 30);
	for (i = 0; i < 30; i++) {
		test_assert_idx(dmarc_archive_create(dir, 1700000000,
			"same.xml.gz", &fd, &path, &error) == 0, i);
		i_close_fd(&fd);
		path = t_strdup(path);
		array_push_back(&paths, &path);
		if (i == 0)
			test_assert_strcmp(path, "2023/11/same.xml.gz");
		else if (i < 10) {
			test_assert_strcmp(path, t_strdup_printf(
				"2023/11/same-%u.xml.gz", i));
		} else {
			size_t len = strlen(path);

			/* "same-<random>.xml.gz", not "same-10.xml.gz" */
			test_assert_idx(str_begins_with(path, "2023/11/same-") &&
					len > strlen("2023/11/same-1234.xml.gz") &&
					strcmp(path + len - 7, ".xml.gz") == 0, i);
		}
	}
	p = array_front(&paths);
	for (i = 0; i < 30; i++) {
		for (j = i + 1; j < 30; j++)
			test_assert_idx(strcmp(p[i], p[j]) != 0, i * 100 + j);
	}
	test_end();
}

static void test_archive_create(void)
{
	const char *dir = t_strconcat(test_tmpdir(), "/archive", NULL);
	const char *path1, *path2, *path3, *error;
	struct stat st;
	int fd1, fd2, fd3;

	test_begin("archive: dated layout, modes, never overwrite, no symlinks");
	/* 2023-11-14 UTC */
	test_assert(dmarc_archive_create(dir, 1700000000, "r.xml.gz", &fd1,
					 &path1, &error) == 0);
	path1 = t_strdup(path1);
	test_assert_strcmp(path1, "2023/11/r.xml.gz");
	test_assert(write(fd1, "one", 3) == 3);
	test_assert(dmarc_archive_create(dir, 1700000000, "r.xml.gz", &fd2,
					 &path2, &error) == 0);
	path2 = t_strdup(path2);
	test_assert_strcmp(path2, "2023/11/r-1.xml.gz");
	/* a symlink planted where the next file goes is not followed */
	test_assert(symlink("/etc/passwd", t_strconcat(dir,
		"/2023/11/r-2.xml.gz", NULL)) == 0);
	test_assert(dmarc_archive_create(dir, 1700000000, "../r.xml.gz", &fd3,
					 &path3, &error) == 0);
	test_assert_strcmp(path3, "2023/11/r-3.xml.gz");

	test_assert(stat(t_strconcat(dir, "/", path1, NULL), &st) == 0 &&
		    st.st_size == 3 && (st.st_mode & 07777) == 0600);
	test_assert(stat(t_strconcat(dir, "/2023/11", NULL), &st) == 0 &&
		    (st.st_mode & 07777) == 0700);
	test_assert(stat(t_strconcat(dir, "/2023", NULL), &st) == 0 &&
		    (st.st_mode & 07777) == 0700);
	i_close_fd(&fd1);
	i_close_fd(&fd2);
	i_close_fd(&fd3);

	/* an unusable dir is an error naming the path */
	test_assert(dmarc_archive_create("/proc/no-such-dir", 1700000000,
					 "x.xml", &fd1, &path1, &error) < 0);
	test_assert(strstr(error, "/proc/no-such-dir") != NULL);
	test_end();
}

static void test_archive_no_symlinked_dirs(void)
{
	const char *dir = t_strconcat(test_tmpdir(), "/links", NULL);
	const char *outside = t_strconcat(test_tmpdir(), "/outside", NULL);
	const char *path, *error;
	struct stat st;
	int fd;

	test_begin("archive: YYYY and MM symlinks are not followed");
	test_assert(mkdir(dir, 0700) == 0);
	test_assert(mkdir(outside, 0700) == 0);
	test_assert(mkdir(t_strconcat(outside, "/11", NULL), 0700) == 0);
	/* 2023 -> outside: delivery must not write into outside/11/ */
	test_assert(symlink(outside, t_strconcat(dir, "/2023", NULL)) == 0);
	test_assert(dmarc_archive_create(dir, 1700000000, "r.xml", &fd,
					 &path, &error) < 0);
	test_assert(strstr(error, "/2023 is not a directory") != NULL);
	test_assert(stat(t_strconcat(outside, "/11/r.xml", NULL), &st) < 0 &&
		    errno == ENOENT);
	/* a victim file outside, reachable through the link */
	fd = open(t_strconcat(outside, "/11/victim.xml", NULL),
		  O_CREAT | O_WRONLY, 0600);
	test_assert(fd != -1);
	i_close_fd(&fd);
	test_assert(dmarc_archive_remove(dir, "2023/11/victim.xml",
					 &error) < 0);
	test_assert(stat(t_strconcat(outside, "/11/victim.xml", NULL),
			 &st) == 0);
	test_assert(dmarc_archive_open(dir, "2023/11/victim.xml", &fd,
				       &error) < 0 && fd == -1);

	/* MM as a link: the same */
	test_assert(unlink(t_strconcat(dir, "/2023", NULL)) == 0);
	test_assert(mkdir(t_strconcat(dir, "/2023", NULL), 0700) == 0);
	test_assert(symlink(t_strconcat(outside, "/11", NULL),
			    t_strconcat(dir, "/2023/11", NULL)) == 0);
	test_assert(dmarc_archive_create(dir, 1700000000, "r.xml", &fd,
					 &path, &error) < 0);
	test_assert(dmarc_archive_remove(dir, "2023/11/victim.xml",
					 &error) < 0);
	test_assert(stat(t_strconcat(outside, "/11/victim.xml", NULL),
			 &st) == 0);
	/* a link as the file itself: the link goes, not its target */
	test_assert(unlink(t_strconcat(dir, "/2023/11", NULL)) == 0);
	test_assert(mkdir(t_strconcat(dir, "/2023/11", NULL), 0700) == 0);
	test_assert(symlink(t_strconcat(outside, "/11/victim.xml", NULL),
			    t_strconcat(dir, "/2023/11/link.xml", NULL)) == 0);
	test_assert(dmarc_archive_open(dir, "2023/11/link.xml", &fd,
				       &error) < 0);
	test_assert(dmarc_archive_remove(dir, "2023/11/link.xml",
					 &error) == 1);
	test_assert(stat(t_strconcat(outside, "/11/victim.xml", NULL),
			 &st) == 0);
	/* no way out by the path itself */
	test_assert(dmarc_archive_remove(dir, "../outside/11/victim.xml",
					 &error) < 0);
	test_assert(dmarc_archive_remove(dir, "/etc/passwd", &error) < 0);
	test_assert(dmarc_archive_remove(dir, "2023/11/none.xml",
					 &error) == 0);
	/* and a real file is created, read and removed */
	test_assert(dmarc_archive_create(dir, 1700000000, "r.xml", &fd,
					 &path, &error) == 0);
	i_close_fd(&fd);
	path = t_strdup(path);
	test_assert(dmarc_archive_open(dir, path, &fd, &error) == 1);
	i_close_fd(&fd);
	test_assert(dmarc_archive_remove(dir, path, &error) == 1);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_archive_safe_name,
		test_archive_safe_name_long,
		test_archive_create,
		test_archive_same_name_many_times,
		test_archive_no_symlinked_dirs,
		test_tmpdir_cleanup,
		NULL
	};
	return test_run(test_functions);
}
