#ifndef TEST_DMARC_COMMON_H
#define TEST_DMARC_COMMON_H

/* Helpers shared by the unit tests: the corpus, temp dirs, whole files. */

#include "test-common.h"
#include "dmarc-compat-lib.h"
#include "dmarc-settings.h"

/* ../shared/corpus seen from the project root; NULL (and a line saying the
   corpus tests are skipped) when it is absent. */
const char *test_corpus_dir(void);

/* Sorted file names of one corpus subdir (e.g. "aggregate") matching
   suffix filter: names ending in ".expected.json" are left out. */
const char *const *test_corpus_list(const char *subdir);

/* A fresh empty directory under $TMPDIR, removed by test_tmpdir_cleanup(). */
const char *test_tmpdir(void);
void test_tmpdir_cleanup(void);

/* The whole file, or NULL when it cannot be read. */
buffer_t *test_read_file(const char *path);

/* A read function: fill buf with up to size bytes: >0 bytes, 0 at the
   end, -1 with *error_r. */
typedef ssize_t test_read_func_t(void *context, void *buf, size_t size,
				 const char **error_r);
/* An istream over a read function (a generator, a reader that fails at
   some point): each read() of the stream calls it once, for at most
   max_block bytes. Its errors become the stream's (EIO, the text). */
struct istream *test_istream_create_func(test_read_func_t *func,
					 void *context, size_t max_block);

/* A seekable istream over data (which must stay valid) whose every read()
   gives at most block new bytes, while its buffer may hold more (up to
   64 KiB): lib-mail needs a whole header line in the buffer, Dovecot's
   test_istream_set_max_buffer_size() bounds both. */
struct istream *test_istream_create_trickle(const void *data, size_t size,
					    size_t block);

/* A test_read_func_t over a memory buffer (context: struct
   test_mem_reader). */
struct test_mem_reader {
	const unsigned char *data;
	size_t size, pos;
};
ssize_t test_mem_read(void *context, void *buf, size_t size,
		      const char **error_r);

/* Like test_mem_read(), but a read at fail_offset fails ("test: the disk
   failed"): with test_istream_create_func(), a mail whose read fails
   there (context: struct test_fail_reader). */
struct test_fail_reader {
	struct test_mem_reader mem;
	size_t fail_offset;
};
ssize_t test_fail_read(void *context, void *buf, size_t size,
		       const char **error_r);

/* Expect exactly these warnings or errors, in this order, each one
   containing its substring (NULL-terminated; the text is checked, not
   only the count), until test_expect_no_more_warnings(). A line logged
   beyond them fails the test as test-common's unexpected errors do. */
void test_expect_warnings(const char *const *substrings);
void test_expect_no_more_warnings(void);
#define TEST_EXPECT_WARNINGS(...) \
	test_expect_warnings((const char *const []){ __VA_ARGS__, NULL })

/* Defaults of all limits. */
const struct dmarc_limits *test_default_limits(void);

#endif
