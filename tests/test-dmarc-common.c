/* Helpers shared by the unit tests. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "unlink-directory.h"
#include "istream-private.h"
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

ssize_t test_fail_read(void *context, void *buf, size_t size,
		       const char **error_r)
{
	struct test_fail_reader *reader = context;

	if (reader->mem.pos >= reader->fail_offset) {
		*error_r = "test: the disk failed";
		return -1;
	}
	size = I_MIN(size, reader->fail_offset - reader->mem.pos);
	return test_mem_read(&reader->mem, buf, size, error_r);
}

struct func_istream {
	struct istream_private istream;
	test_read_func_t *func;
	void *context;
	size_t max_block;
};

static ssize_t func_istream_read(struct istream_private *stream)
{
	struct func_istream *fstream =
		container_of(stream, struct func_istream, istream);
	const char *error;
	size_t size;
	ssize_t ret;

	if (!i_stream_try_alloc(stream, fstream->max_block, &size))
		return -2;
	size = I_MIN(size, fstream->max_block);
	ret = fstream->func(fstream->context, stream->w_buffer + stream->pos,
			    size, &error);
	if (ret < 0) {
		io_stream_set_error(&stream->iostream, "%s", error);
		stream->istream.stream_errno = EIO;
		return -1;
	}
	if (ret == 0) {
		stream->istream.eof = TRUE;
		return -1;
	}
	stream->pos += ret;
	return ret;
}

struct istream *test_istream_create_func(test_read_func_t *func,
					 void *context, size_t max_block)
{
	struct func_istream *fstream;

	fstream = i_new(struct func_istream, 1);
	fstream->func = func;
	fstream->context = context;
	fstream->max_block = max_block;
	fstream->istream.max_buffer_size = I_MAX(max_block, IO_BLOCK_SIZE);
	fstream->istream.read = func_istream_read;
	fstream->istream.istream.blocking = TRUE;
	return i_stream_create(&fstream->istream, NULL, -1, 0);
}

struct trickle_istream {
	struct istream_private istream;
	const unsigned char *data;
	size_t size, block;
};

static ssize_t trickle_istream_read(struct istream_private *stream)
{
	struct trickle_istream *tstream =
		container_of(stream, struct trickle_istream, istream);
	uoff_t offset = stream->istream.v_offset + (stream->pos - stream->skip);
	size_t avail, n;

	if (offset >= tstream->size) {
		stream->istream.eof = TRUE;
		return -1;
	}
	if (!i_stream_try_alloc(stream, tstream->block, &avail))
		return -2;
	n = I_MIN(I_MIN(avail, tstream->block), tstream->size - offset);
	memcpy(stream->w_buffer + stream->pos, tstream->data + offset, n);
	stream->pos += n;
	return n;
}

static void trickle_istream_seek(struct istream_private *stream,
				 uoff_t v_offset, bool mark ATTR_UNUSED)
{
	stream->istream.v_offset = v_offset;
	stream->skip = stream->pos = 0;
}

static int trickle_istream_stat(struct istream_private *stream,
				bool exact ATTR_UNUSED)
{
	struct trickle_istream *tstream =
		container_of(stream, struct trickle_istream, istream);

	stream->statbuf.st_size = tstream->size;
	return 0;
}

struct istream *test_istream_create_trickle(const void *data, size_t size,
					    size_t block)
{
	struct trickle_istream *tstream;

	tstream = i_new(struct trickle_istream, 1);
	tstream->data = data;
	tstream->size = size;
	tstream->block = block;
	tstream->istream.max_buffer_size = 64 * 1024;
	tstream->istream.read = trickle_istream_read;
	tstream->istream.seek = trickle_istream_seek;
	tstream->istream.stat = trickle_istream_stat;
	tstream->istream.istream.blocking = TRUE;
	tstream->istream.istream.seekable = TRUE;
	return i_stream_create(&tstream->istream, NULL, -1, 0);
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
