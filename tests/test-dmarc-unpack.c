/* Unit tests for dmarc-unpack.c: real gzip and zip files, built here with
   zlib and libarchive's writer, and the corpus containers. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "istream.h"
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
	/* entries (or containers) that dmarc_unpack_next() refused */
	unsigned int bad;
	ARRAY_TYPE(const_string) names;
	buffer_t *first;      /* bytes of the first document */
	const char *error;    /* the first error, NULL when none */
};

/* The unpack of the bytes of fd or (data != NULL) of memory. */
static struct dmarc_unpack *
unpack_open(int fd, const buffer_t *data, const struct dmarc_limits *limits,
	    uoff_t *budget)
{
	struct dmarc_unpack *unpack;
	struct istream *input;

	input = data != NULL ?
		i_stream_create_from_data(data->data, data->used) :
		i_stream_create_fd(fd, 4096);
	unpack = dmarc_unpack_init(input, limits, budget);
	i_stream_unref(&input);
	return unpack;
}

/* Unpacks everything, from the fd or (data != NULL) from memory. */
static void unpack_all(int fd, const buffer_t *data,
		       const struct dmarc_limits *limits, uoff_t *budget,
		       struct unpacked *result_r)
{
	struct dmarc_unpack *unpack;
	struct istream *input;
	const unsigned char *buf;
	const char *name, *error;
	size_t size;
	int next;

	i_zero(result_r);
	t_array_init(&result_r->names, 4);
	result_r->first = t_buffer_create(1024);
	unpack = unpack_open(fd, data, limits, budget);
	while ((next = dmarc_unpack_next(unpack, &name, &input, &error)) != 0) {
		if (next < 0) {
			result_r->bad++;
			if (result_r->error == NULL)
				result_r->error = t_strdup(error);
			continue;
		}
		result_r->documents++;
		name = name == NULL ? "" : t_strdup(name);
		array_push_back(&result_r->names, &name);
		while (i_stream_read_more(input, &buf, &size) > 0) {
			if (result_r->documents == 1)
				buffer_append(result_r->first, buf, size);
			i_stream_skip(input, size);
		}
		if (input->stream_errno != 0 && result_r->error == NULL)
			result_r->error = t_strdup(i_stream_get_error(input));
	}
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
	/* accepted: a gzip layer per gzip magic; limits apply to the
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
			unpack_open(-1, data, test_default_limits(), &budget);

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

	/* one entry too many: found before libarchive loads the
	   directory, so nothing is read */
	limits.max_zip_entries = 1;
	fd = open_file(path);
	unpack_all(fd, NULL, &limits, &budget, &result);
	i_close_fd(&fd);
	test_assert(result.documents == 0);
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

/* A gzip member of data, with the given FLG bits' fields. */
static buffer_t *gzip_member(const char *data, const char *fname,
			     size_t comment_size)
{
	buffer_t *out = t_buffer_create(1024 + comment_size);
	unsigned char hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 };
	unsigned char *dest;
	uint32_t crc, isize;
	z_stream zs;

	if (fname != NULL)
		hdr[3] |= 0x08;
	if (comment_size > 0)
		hdr[3] |= 0x10;
	buffer_append(out, hdr, sizeof(hdr));
	if (fname != NULL)
		buffer_append(out, fname, strlen(fname) + 1);
	if (comment_size > 0) {
		memset(buffer_append_space_unsafe(out, comment_size - 1), 'C',
		       comment_size - 1);
		buffer_append_c(out, '\0');
	}
	/* raw deflate, then the RFC 1952 trailer */
	i_zero(&zs);
	test_assert(deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8,
				 Z_DEFAULT_STRATEGY) == Z_OK);
	zs.next_in = (void *)data;
	zs.avail_in = strlen(data);
	dest = buffer_append_space_unsafe(out, 1024 + strlen(data));
	zs.next_out = dest;
	zs.avail_out = 1024 + strlen(data);
	test_assert(deflate(&zs, Z_FINISH) == Z_STREAM_END);
	buffer_set_used_size(out, out->used - zs.avail_out);
	(void)deflateEnd(&zs);
	crc = crc32(0, (const void *)data, strlen(data));
	isize = strlen(data);
	for (unsigned int i = 0; i < 4; i++)
		buffer_append_c(out, (crc >> (8*i)) & 0xff);
	for (unsigned int i = 0; i < 4; i++)
		buffer_append_c(out, (isize >> (8*i)) & 0xff);
	return out;
}

static void test_unpack_gzip_trailer_checked(void)
{
	const char *xml = "<feedback><report_metadata/></feedback>\n";
	struct unpacked result;
	uoff_t budget = 1024*1024;
	buffer_t *gz;
	unsigned char *p;

	test_begin("unpack: gzip CRC32 and ISIZE are checked");
	gz = gzip_member(xml, "r.xml", 0);
	unpack_all(-1, gz, test_default_limits(), &budget, &result);
	test_assert(result.documents == 1 && result.error == NULL);
	test_assert(result.first->used == strlen(xml) &&
		    memcmp(result.first->data, xml, strlen(xml)) == 0);

	/* zeroed trailer */
	p = buffer_get_modifiable_data(gz, NULL);
	memset(p + gz->used - 8, 0, 8);
	unpack_all(-1, gz, test_default_limits(), &budget, &result);
	test_assert(result.error != NULL &&
		    strstr(result.error, "incorrect data check") != NULL);

	/* right CRC, wrong size */
	gz = gzip_member(xml, NULL, 0);
	p = buffer_get_modifiable_data(gz, NULL);
	p[gz->used - 4] ^= 0x01;
	unpack_all(-1, gz, test_default_limits(), &budget, &result);
	test_assert(result.error != NULL &&
		    strstr(result.error, "incorrect length check") != NULL);
	test_end();
}

static void test_unpack_gzip_members_and_header(void)
{
	struct unpacked result;
	uoff_t budget = 1024*1024;
	buffer_t *gz;

	test_begin("unpack: gzip members follow each other; header fields "
		   "are bounded");
	gz = gzip_member("<feedback>", "a", 0);
	buffer_append_buf(gz, gzip_member("</feedback>", NULL, 100), 0, SIZE_MAX);
	unpack_all(-1, gz, test_default_limits(), &budget, &result);
	test_assert(result.documents == 1 && result.error == NULL);
	test_assert(result.first->used == 21 &&
		    memcmp(result.first->data, "<feedback></feedback>", 21) == 0);

	/* a comment of 1 MB: refused before it is read whole */
	gz = gzip_member("<feedback/>", NULL, 1024*1024);
	unpack_all(-1, gz, test_default_limits(), &budget, &result);
	test_assert(result.documents == 0 && result.error != NULL &&
		    strstr(result.error, "header") != NULL);
	test_end();
}

/* A stored (uncompressed) zip of the entries, in memory. */
static buffer_t *stored_zip(const char *const *entries)
{
	const char *path = tmp_path("stored.zip");
	struct archive *a = archive_write_new();
	struct archive_entry *entry;

	archive_write_set_format_zip(a);
	archive_write_set_options(a, "zip:compression=store");
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
	return test_read_file(path);
}

/* The n-th (0-based) occurrence of sig in the zip. */
static unsigned char *zip_find(buffer_t *zip, const char *sig, unsigned int n)
{
	unsigned char *p = buffer_get_modifiable_data(zip, NULL);
	size_t i;

	for (i = 0; i + 4 <= zip->used; i++) {
		if (memcmp(p + i, sig, 4) == 0 && n-- == 0)
			return p + i;
	}
	i_panic("zip signature not found");
}

static void test_unpack_zip_bad_entries_skipped(void)
{
	static const char *const entries[] = {
		"good1.xml", "<feedback>one</feedback>",
		"lzma.xml", "<feedback>lzma</feedback>",
		"enc.xml", "<feedback>enc</feedback>",
		"crc.xml", "<feedback>crc</feedback>",
		"good2.xml", "<feedback>two</feedback>",
		NULL
	};
	const char *const *names;
	struct unpacked result;
	uoff_t budget = 1024*1024;
	buffer_t *zip = stored_zip(entries);
	unsigned char *p;
	int fd;

	test_begin("unpack: a bad or encrypted zip entry is skipped, the "
		   "next ones are read");
	/* entry 1 claims LZMA (method 14), in its local and central
	   header alike */
	zip_find(zip, "PK\003\004", 1)[8] = 14;
	zip_find(zip, "PK\001\002", 1)[10] = 14;
	/* entry 2 is flagged encrypted */
	zip_find(zip, "PK\003\004", 2)[6] |= 1;
	zip_find(zip, "PK\001\002", 2)[8] |= 1;
	/* entry 3's data no longer matches its CRC */
	p = zip_find(zip, "PK\003\004", 3);
	p[30 + strlen("crc.xml") + 10] ^= 0x20;

	write_file(tmp_path("bad-entries.zip"), zip->data, zip->used);
	for (unsigned int i = 0; i < 2; i++) {
		if (i == 0) {
			unpack_all(-1, zip, test_default_limits(), &budget,
				   &result);
		} else {
			fd = open_file(tmp_path("bad-entries.zip"));
			unpack_all(fd, NULL, test_default_limits(), &budget,
				   &result);
			i_close_fd(&fd);
		}
		/* crc.xml is handed out: its error comes when it is read */
		test_assert_idx(result.documents == 3, i);
		test_assert_idx(result.bad == 2, i);
		names = array_front(&result.names);
		test_assert_idx(result.documents == 3 &&
				strcmp(names[0], "good1.xml") == 0 &&
				strcmp(names[1], "crc.xml") == 0 &&
				strcmp(names[2], "good2.xml") == 0, i);
		test_assert_idx(result.error != NULL &&
				strstr(result.error, "lzma") != NULL, i);
	}
	test_end();
}

static void test_unpack_zip_directory_counted_first(void)
{
	static const char *const entries[] = {
		"a.xml", "<feedback>a</feedback>",
		"b.xml", "<feedback>b</feedback>",
		"c.xml", "<feedback>c</feedback>",
		NULL
	};
	struct dmarc_limits limits = *test_default_limits();
	struct unpacked result;
	uoff_t budget = 1024*1024;
	buffer_t *zip = stored_zip(entries);
	unsigned char *eocd;

	test_begin("unpack: zip entries are counted before libarchive "
		   "loads them, whatever the end record claims");
	/* the end record claims one entry: libarchive would still load
	   every entry of the directory */
	eocd = zip_find(zip, "PK\005\006", 0);
	eocd[8] = 1; eocd[9] = 0; eocd[10] = 1; eocd[11] = 0;
	limits.max_zip_entries = 2;
	unpack_all(-1, zip, &limits, &budget, &result);
	test_assert(result.documents == 0 && result.bad == 1);
	test_assert(result.error != NULL &&
		    strstr(result.error, "more than 2 entries") != NULL);
	limits.max_zip_entries = 3;
	unpack_all(-1, zip, &limits, &budget, &result);
	test_assert(result.documents == 3 && result.error == NULL);
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
		test_unpack_gzip_trailer_checked,
		test_unpack_gzip_members_and_header,
		test_unpack_zip_bad_entries_skipped,
		test_unpack_zip_directory_counted_first,
		test_tmpdir_cleanup,
		NULL
	};
	return test_run(test_functions);
}
