/* Unit tests for dmarc-unpack.c: real gzip and zip files, built here with
   zlib and libarchive's writer, and the corpus containers. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "test-dmarc-common.h"
#include "dmarc-settings.h"
#include "dmarc-unpack.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <archive.h>
#include <archive_entry.h>

struct unpacked {
	unsigned int documents;
	ARRAY_TYPE(const_string) names;
	buffer_t *first;      /* bytes of the first document */
	const char *error;    /* the first error, NULL when none */
};

/* Unpacks everything, from the fd or (data != NULL) from memory. */
static void unpack_all(int fd, const buffer_t *data,
		       const struct dmarc_limits *limits, uoff_t *budget,
		       struct unpacked *result_r)
{
	struct dmarc_unpack *unpack;
	unsigned char buf[4096];
	const char *name, *error;
	ssize_t ret;
	int next;

	i_zero(result_r);
	t_array_init(&result_r->names, 4);
	result_r->first = t_buffer_create(1024);
	unpack = data != NULL ?
		dmarc_unpack_init_data(data->data, data->used, limits, budget) :
		dmarc_unpack_init_fd(fd, limits, budget);
	while ((next = dmarc_unpack_next(unpack, &name, &error)) > 0) {
		result_r->documents++;
		name = name == NULL ? "" : t_strdup(name);
		array_push_back(&result_r->names, &name);
		while ((ret = dmarc_unpack_read(unpack, buf, sizeof(buf),
						&error)) > 0) {
			if (result_r->documents == 1)
				buffer_append(result_r->first, buf, ret);
		}
		if (ret < 0 && result_r->error == NULL)
			result_r->error = t_strdup(error);
	}
	if (next < 0 && result_r->error == NULL)
		result_r->error = t_strdup(error);
	dmarc_unpack_deinit(&unpack);
}

static int open_file(const char *path)
{
	int fd = open(path, O_RDONLY);

	if (fd == -1)
		i_fatal("open(%s) failed: %m", path);
	return fd;
}

static const char *tmp_path(const char *name)
{
	return t_strconcat(test_tmpdir(), "/", name, NULL);
}

static void write_file(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd == -1 || write(fd, data, size) != (ssize_t)size)
		i_fatal("write(%s) failed: %m", path);
	i_close_fd(&fd);
}

/* A zip of the given entries (name, content pairs, NULL-terminated). */
static void write_zip(const char *path, const char *const *entries)
{
	struct archive *a = archive_write_new();
	struct archive_entry *entry;

	archive_write_set_format_zip(a);
	if (archive_write_open_filename(a, path) != ARCHIVE_OK)
		i_fatal("%s: %s", path, archive_error_string(a));
	for (; entries[0] != NULL; entries += 2) {
		entry = archive_entry_new();
		archive_entry_set_pathname(entry, entries[0]);
		archive_entry_set_filetype(entry, AE_IFREG);
		archive_entry_set_perm(entry, 0644);
		archive_entry_set_size(entry, strlen(entries[1]));
		archive_write_header(a, entry);
		archive_write_data(a, entries[1], strlen(entries[1]));
		archive_entry_free(entry);
	}
	archive_write_close(a);
	archive_write_free(a);
}

/* A gzip of `size` zero bytes, streamed: a bomb of ~1000:1. */
static void write_gzip_zeros(const char *path, uoff_t size)
{
	static unsigned char zeros[65536];
	gzFile gz = gzopen(path, "wb9");
	uoff_t written = 0;

	if (gz == NULL)
		i_fatal("gzopen(%s) failed", path);
	while (written < size) {
		gzwrite(gz, zeros, sizeof(zeros));
		written += sizeof(zeros);
	}
	gzclose(gz);
}

static bool looks_like_xml(const buffer_t *buf)
{
	const unsigned char *p = buf->data;
	size_t i = 0;

	if (buf->used >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < buf->used && (p[i] == ' ' || p[i] == '\n' ||
				 p[i] == '\r' || p[i] == '\t'))
		i++;
	return i < buf->used && p[i] == '<';
}

static void test_unpack_corpus(void)
{
	const char *const *names = test_corpus_list("aggregate");
	struct unpacked result;
	unsigned int i;

	if (test_corpus_dir() == NULL)
		return;
	test_begin("unpack: every corpus report file gives XML");
	for (i = 0; names[i] != NULL; i++) {
		const char *path = t_strconcat(test_corpus_dir(),
					       "/aggregate/", names[i], NULL);
		uoff_t budget = test_default_limits()->max_message_decompressed_size;
		int fd = open_file(path);

		unpack_all(fd, NULL, test_default_limits(), &budget, &result);
		i_close_fd(&fd);
		test_assert_idx(result.error == NULL, i);
		test_assert_idx(result.documents >= 1, i);
		test_assert_idx(looks_like_xml(result.first), i);
	}
	test_end();
}

static void test_unpack_double_gzip_and_zlib(void)
{
	struct unpacked result;
	uoff_t budget = 1024*1024;
	buffer_t *data;

	if (test_corpus_dir() == NULL)
		return;
	test_begin("unpack: double gzip is unwrapped, raw zlib is not a container");
	/* accepted: libarchive stacks the gzip filter; limits apply to the
	   final bytes */
	data = test_read_file(t_strconcat(test_corpus_dir(), "/aggregate-invalid/"
		"dmarc-report-converter--test.xml.gz.gz", NULL));
	unpack_all(-1, data, test_default_limits(), &budget, &result);
	test_assert(result.documents == 1 && result.error == NULL);
	test_assert(looks_like_xml(result.first));
	/* raw zlib has no magic we accept: it comes out as it is, and the
	   parser rejects it as not XML */
	data = test_read_file(t_strconcat(test_corpus_dir(), "/aggregate-invalid/"
		"dmarcgo--aol.com!georgestarcher.com!1342497600!1342584000.zlib", NULL));
	unpack_all(-1, data, test_default_limits(), &budget, &result);
	test_assert(result.documents == 1 && result.error == NULL);
	test_assert(!looks_like_xml(result.first));
	test_end();
}

static void test_unpack_same_report_three_containers(void)
{
	static const char *const files[] = {
		"parsedmarc--nice-input.xml",
		"parsedmarc--nice-input.xml.gz",
		"parsedmarc--nice-input.xml.zip",
	};
	static const enum dmarc_container containers[] = {
		DMARC_CONTAINER_PLAIN, DMARC_CONTAINER_GZIP, DMARC_CONTAINER_ZIP,
	};
	struct unpacked result, plain;
	unsigned int i;

	if (test_corpus_dir() == NULL)
		return;
	test_begin("unpack: container by content; same bytes from xml, gz, zip");
	for (i = 0; i < N_ELEMENTS(files); i++) {
		uoff_t budget = 1024*1024;
		buffer_t *data = test_read_file(t_strconcat(test_corpus_dir(),
			"/aggregate/", files[i], NULL));
		struct dmarc_unpack *unpack =
			dmarc_unpack_init_data(data->data, data->used,
					       test_default_limits(), &budget);

		test_assert_idx(dmarc_unpack_get_container(unpack) ==
				containers[i], i);
		dmarc_unpack_deinit(&unpack);
		unpack_all(-1, data, test_default_limits(), &budget, &result);
		test_assert_idx(result.documents == 1 && result.error == NULL, i);
		if (i == 0)
			plain = result;
		else
			test_assert_idx(buffer_cmp(plain.first, result.first), i);
	}
	test_end();
}

static void test_unpack_zip_entries(void)
{
	static const char *const entries[] = {
		"a.xml", "<feedback>a</feedback>",
		"dir/../../b.xml", "<feedback>b</feedback>",
		NULL
	};
	const char *path = tmp_path("two.zip");
	const char *const *names;
	struct unpacked result;
	struct dmarc_limits limits = *test_default_limits();
	uoff_t budget = 1024*1024;
	int fd;

	test_begin("unpack: a zip gives every entry, named; entry limit");
	write_zip(path, entries);
	fd = open_file(path);
	unpack_all(fd, NULL, &limits, &budget, &result);
	i_close_fd(&fd);
	test_assert(result.documents == 2 && result.error == NULL);
	names = array_front(&result.names);
	test_assert_strcmp(names[0], "a.xml");
	test_assert_strcmp(names[1], "dir/../../b.xml");

	/* one entry too many: the first ones count, then a clear error */
	limits.max_zip_entries = 1;
	fd = open_file(path);
	unpack_all(fd, NULL, &limits, &budget, &result);
	i_close_fd(&fd);
	test_assert(result.documents == 1);
	test_assert(result.error != NULL &&
		    strstr(result.error, "more than 1 entries") != NULL);
	test_end();
}

static void test_unpack_bomb(void)
{
	const char *path = tmp_path("bomb.gz");
	struct dmarc_limits limits = *test_default_limits();
	struct unpacked result;
	uoff_t budget;
	int fd;

	test_begin("unpack: a gzip bomb stops at the limits");
	write_gzip_zeros(path, 64*1024*1024);
	limits.max_decompressed_size = 4*1024*1024;
	budget = 1024*1024*1024;
	fd = open_file(path);
	unpack_all(fd, NULL, &limits, &budget, &result);
	i_close_fd(&fd);
	test_assert(result.error != NULL &&
		    strstr(result.error, "decompressed size exceeds 4194304") != NULL);
	test_assert(result.first->used <= 4*1024*1024);

	/* the message's budget, shared by its attachments, stops it too */
	limits.max_decompressed_size = 1024*1024*1024;
	budget = 2*1024*1024;
	fd = open_file(path);
	unpack_all(fd, NULL, &limits, &budget, &result);
	i_close_fd(&fd);
	test_assert(result.error != NULL &&
		    strstr(result.error, "message") != NULL);
	test_assert(budget == 0);
	test_end();
}

static void test_unpack_broken(void)
{
	static const unsigned char garbage_zip[] =
		"PK\x03\x04\x14\x00\x00\x00\x08\x00garbage garbage garbage";
	const char *path = tmp_path("trunc.gz");
	const char *xml = "<feedback><report_metadata/></feedback>";
	struct unpacked result;
	buffer_t *data = t_buffer_create(256);
	uoff_t budget = 1024*1024;
	unsigned char gz[512];
	uLongf gz_size = sizeof(gz);
	z_stream zs;
	int fd;

	test_begin("unpack: truncated gzip, corrupt zip, empty input");
	/* gzip of the XML, cut in half */
	i_zero(&zs);
	test_assert(deflateInit2(&zs, 9, Z_DEFLATED, 31, 8,
				 Z_DEFAULT_STRATEGY) == Z_OK);
	zs.next_in = (void *)xml;
	zs.avail_in = strlen(xml);
	zs.next_out = gz;
	zs.avail_out = gz_size;
	test_assert(deflate(&zs, Z_FINISH) == Z_STREAM_END);
	gz_size = zs.total_out;
	deflateEnd(&zs);
	write_file(path, gz, gz_size / 2);
	fd = open_file(path);
	unpack_all(fd, NULL, test_default_limits(), &budget, &result);
	i_close_fd(&fd);
	test_assert(result.error != NULL);

	buffer_append(data, garbage_zip, sizeof(garbage_zip) - 1);
	unpack_all(-1, data, test_default_limits(), &budget, &result);
	test_assert(result.error != NULL &&
		    strstr(result.error, "zip") != NULL);

	/* empty: one plain document of no bytes (the parser rejects it) */
	buffer_set_used_size(data, 0);
	unpack_all(-1, data, test_default_limits(), &budget, &result);
	test_assert(result.documents == 1 && result.error == NULL &&
		    result.first->used == 0);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_unpack_corpus,
		test_unpack_same_report_three_containers,
		test_unpack_double_gzip_and_zlib,
		test_unpack_zip_entries,
		test_unpack_bomb,
		test_unpack_broken,
		test_tmpdir_cleanup,
		NULL
	};
	return test_run(test_functions);
}
