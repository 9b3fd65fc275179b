/* Helpers shared by the unit tests. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "unlink-directory.h"
#include "test-dmarc-common.h"

#include <stdio.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

static char *tmpdir_path = NULL;

const char *test_corpus_dir(void)
{
	static bool warned = FALSE;
	struct stat st;

	if (stat(CORPUS_DIR "/aggregate", &st) == 0)
		return CORPUS_DIR;
	if (!warned) {
		printf("NOTE: %s not found: corpus tests skipped\n", CORPUS_DIR);
		warned = TRUE;
	}
	return NULL;
}

static bool ends_with(const char *str, const char *suffix)
{
	size_t len = strlen(str), suffix_len = strlen(suffix);

	return len >= suffix_len && strcmp(str + len - suffix_len, suffix) == 0;
}

static int cmp_strp(const char *const *a, const char *const *b)
{
	return strcmp(*a, *b);
}

const char *const *test_corpus_list(const char *subdir)
{
	ARRAY_TYPE(const_string) names;
	const char *corpus = test_corpus_dir(), *dir;
	struct dirent *d;
	DIR *dirp;

	t_array_init(&names, 64);
	if (corpus == NULL) {
		array_append_zero(&names);
		return array_front(&names);
	}
	dir = t_strconcat(corpus, "/", subdir, NULL);
	dirp = opendir(dir);
	if (dirp == NULL)
		i_fatal("opendir(%s) failed: %m", dir);
	while ((d = readdir(dirp)) != NULL) {
		if (d->d_name[0] == '.' ||
		    ends_with(d->d_name, ".expected.json"))
			continue;
		const char *name = t_strdup(d->d_name);
		array_push_back(&names, &name);
	}
	(void)closedir(dirp);
	array_sort(&names, cmp_strp);
	array_append_zero(&names);
	return array_front(&names);
}

const char *test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");

	if (tmpdir_path != NULL)
		return tmpdir_path;
	if (base == NULL || *base == '\0')
		base = "/tmp";
	tmpdir_path = i_strdup_printf("%s/test-dmarc.XXXXXX", base);
	if (mkdtemp(tmpdir_path) == NULL)
		i_fatal("mkdtemp(%s) failed: %m", tmpdir_path);
	return tmpdir_path;
}

void test_tmpdir_cleanup(void)
{
	const char *error;

	if (tmpdir_path == NULL)
		return;
	if (unlink_directory(tmpdir_path, UNLINK_DIRECTORY_FLAG_RMDIR,
			     &error) < 0)
		i_error("%s", error);
	i_free(tmpdir_path);
}

buffer_t *test_read_file(const char *path)
{
	unsigned char buf[8192];
	buffer_t *data;
	ssize_t ret;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd == -1)
		return NULL;
	data = t_buffer_create(8192);
	while ((ret = read(fd, buf, sizeof(buf))) > 0)
		buffer_append(data, buf, ret);
	i_close_fd(&fd);
	return ret < 0 ? NULL : data;
}

ssize_t test_mem_read(void *context, void *buf, size_t size,
		      const char **error_r ATTR_UNUSED)
{
	struct test_mem_reader *reader = context;
	size_t left = reader->size - reader->pos;

	if (size > left)
		size = left;
	memcpy(buf, reader->data + reader->pos, size);
	reader->pos += size;
	return size;
}

const struct dmarc_limits *test_default_limits(void)
{
	static struct dmarc_limits limits;
	static bool initialized = FALSE;

	if (!initialized) {
		dmarc_limits_default(&limits);
		initialized = TRUE;
	}
	return &limits;
}

/* test_expect_warnings(): the expected lines, and test-common's handler,
   which counts any other as an unexpected error */
#define TEST_EXPECTED_WARNINGS_MAX 8
static const char *expected_warnings_buf[TEST_EXPECTED_WARNINGS_MAX + 1];
static const char *const *expected_warnings;
static unsigned int expected_warning_idx;
static failure_callback_t *test_common_error_handler;

static void
test_warning_handler(const struct failure_context *ctx, const char *format,
		     va_list args)
{
	const char *expected = expected_warnings[expected_warning_idx];

	if (expected == NULL) {
		test_common_error_handler(ctx, format, args);
		return;
	}
	T_BEGIN {
		const char *text = t_strdup_vprintf(format, args);

		if (strstr(text, expected) == NULL) {
			printf("expected a line with '%s', got: %s\n",
			       expected, text);
			test_assert_idx(FALSE, expected_warning_idx);
		}
	} T_END;
	expected_warning_idx++;
}

void test_expect_warnings(const char *const *substrings)
{
	failure_callback_t *fatal, *info, *debug;
	unsigned int i;

	i_assert(expected_warnings == NULL);
	i_get_failure_handlers(&fatal, &test_common_error_handler,
			       &info, &debug);
	/* a copy: the caller's array may be a compound literal */
	for (i = 0; substrings[i] != NULL; i++) {
		i_assert(i < TEST_EXPECTED_WARNINGS_MAX);
		expected_warnings_buf[i] = substrings[i];
	}
	expected_warnings_buf[i] = NULL;
	expected_warnings = expected_warnings_buf;
	expected_warning_idx = 0;
	i_set_error_handler(test_warning_handler);
}

void test_expect_no_more_warnings(void)
{
	i_assert(expected_warnings != NULL);
	if (expected_warnings[expected_warning_idx] != NULL) {
		printf("missing line with '%s'\n",
		       expected_warnings[expected_warning_idx]);
		test_assert(FALSE);
	}
	i_set_error_handler(test_common_error_handler);
	expected_warnings = NULL;
}
