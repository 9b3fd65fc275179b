/* libFuzzer target for the core: bytes of one attachment -> unpack (from
   a file and from memory) -> parse -> store into a throw-away database;
   the same bytes as a mail -> MIME extraction -> the same for each
   attachment; the same bytes as a file in a directory that doveadm
   import's walk reads (file sniffing, whole mails, the ingest pipeline);
   and through the TLS and failure report parsers. Build with
   ./configure --enable-fuzzer CC=clang; seed with ../shared/corpus
   (aggregate reports and mails, TLS and failure reports). */

#include "lib.h"
#include "buffer.h"
#include "istream.h"
#include "write-full.h"
#include "dmarc-extract.h"
#include "dmarc-settings.h"
#include "dmarc-unpack.h"
#include "dmarc-parse.h"
#include "dmarc-store.h"
#include "dmarc-query.h"
#include "dmarc-ingest.h"
#include "dmarc-import.h"
#include "dmarc-tls.h"
#include "dmarc-failure.h"

#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dmarc_limits limits;
static struct dmarc_store *store;
/* the import walk's: a directory holding one file, and its database */
static const char *walk_dir;
static struct dmarc_settings walk_set;
static struct event *walk_event;

/* Every garbage input gives a warning: not printed, or the fuzzer would
   spend its time writing them. Fatal errors and panics still are. */
static void fuzz_log_nothing(const struct failure_context *ctx ATTR_UNUSED,
			     const char *format ATTR_UNUSED,
			     va_list args ATTR_UNUSED)
{
}

int LLVMFuzzerInitialize(int *argc ATTR_UNUSED, char ***argv ATTR_UNUSED)
{
	char path[] = "/tmp/fuzz-dmarc.XXXXXX";
	const char *error;

	lib_init();
	dmarc_limits_default(&limits);
	/* small limits keep each run fast; the logic is the same */
	limits.max_decompressed_size = 4*1024*1024;
	limits.max_message_decompressed_size = 8*1024*1024;
	limits.max_records = 10000;
	limits.max_attachment_size = 1024*1024;
	if (mkdtemp(path) == NULL)
		i_fatal("mkdtemp() failed: %m");
	if (dmarc_store_open(t_strconcat(path, "/fuzz.sqlite", NULL),
			     DMARC_STORE_OPEN_CREATE, &store, &error) <= 0)
		i_fatal("%s", error);

	walk_dir = i_strconcat(path, "/walk", NULL);
	if (mkdir(walk_dir, 0700) < 0)
		i_fatal("mkdir(%s) failed: %m", walk_dir);
	walk_set.db_path = i_strconcat(path, "/walk.sqlite", NULL);
	walk_set.archive_dir = NULL;
	walk_set.limits = limits;
	walk_event = event_create(NULL);
	i_set_error_handler(fuzz_log_nothing);
	i_set_info_handler(fuzz_log_nothing);
	return 0;
}

/* The bytes as the one file of a directory given to the import walk;
   its name (no extension, .eml, .xml.gz) picks how it is taken. */
static void fuzz_import_walk(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "input", "input.eml", "input.xml.gz" };
	struct dmarc_ingest_counts counts;
	struct dmarc_ingest *ingest;
	struct dmarc_import *import;
	const char *path;
	unsigned int i;
	int fd;

	for (i = 0; i < N_ELEMENTS(names); i++)
		i_unlink_if_exists(t_strconcat(walk_dir, "/", names[i], NULL));
	path = t_strconcat(walk_dir, "/", names[size % N_ELEMENTS(names)], NULL);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1 || write_full(fd, data, size) < 0)
		i_fatal("write(%s) failed: %m", path);
	i_close_fd(&fd);

	i_zero(&counts);
	ingest = dmarc_ingest_init(&walk_set, walk_event);
	dmarc_ingest_set_quiet(ingest, TRUE);
	import = dmarc_import_init(ingest, walk_event, &counts);
	(void)dmarc_import_path(import, walk_dir, TRUE);
	if (dmarc_import_get_inputs(import) != 1)
		i_panic("import walk: %u inputs, expected 1",
			dmarc_import_get_inputs(import));
	dmarc_import_deinit(&import);
	dmarc_ingest_deinit(&ingest);
}

static void fuzz_document(struct istream *input)
{
	struct dmarc_store_report_info info = { .received = 1 };
	struct dmarc_store_report *sreport;
	const struct dmarc_report *report;
	const struct dmarc_record *record;
	struct dmarc_parser *parser;
	const char *error;
	int ret;

	parser = dmarc_parser_init(input, &limits);
	if (dmarc_parser_read_header(parser, &report, &error) == 0 &&
	    dmarc_store_report_begin(store, report, &info, &sreport,
				     &error) > 0) {
		while ((ret = dmarc_parser_next_record(parser, &record,
						       &error)) > 0) {
			if (dmarc_store_report_add_record(sreport, record,
							  &error) < 0)
				break;
		}
		/* a whole report is committed (its extensions and digest
		   are written then) and deleted again, anything else
		   rolled back: the database stays small */
		if (ret == 0 &&
		    dmarc_store_report_commit(&sreport, &error) == 0) {
			unsigned int deleted;

			(void)dmarc_store_expire(store, INT64_MAX, NULL, NULL,
						 &deleted, &error);
		} else if (sreport != NULL) {
			dmarc_store_report_rollback(&sreport);
		}
	}
	dmarc_parser_deinit(&parser);
}

static void fuzz_unpack_stream(struct istream *input)
{
	uoff_t budget = limits.max_message_decompressed_size;
	struct dmarc_unpack *unpack;
	struct istream *doc;
	const char *name, *error;
	int ret;

	unpack = dmarc_unpack_init(input, &limits, &budget);
	while ((ret = dmarc_unpack_next(unpack, &name, &doc, &error)) != 0) {
		if (ret > 0)
			fuzz_document(doc);
	}
	dmarc_unpack_deinit(&unpack);
}

static void fuzz_unpack_data(const void *data, size_t size)
{
	struct istream *input = i_stream_create_from_data(data, size);

	fuzz_unpack_stream(input);
	i_stream_unref(&input);
}

/* the mail's attachments, one at a time */
static bool fuzz_att_begin(const struct dmarc_attachment *att ATTR_UNUSED,
			   void *context)
{
	buffer_set_used_size(context, 0);
	return TRUE;
}

static void fuzz_att_data(const unsigned char *data, size_t size,
			  void *context)
{
	buffer_append(context, data, size);
}

static void fuzz_att_end(const struct dmarc_attachment *att ATTR_UNUSED,
			 bool truncated, void *context)
{
	buffer_t *buf = context;

	if (!truncated)
		fuzz_unpack_data(buf->data, buf->used);
}

static const struct dmarc_extract_callbacks fuzz_extract_callbacks = {
	.begin = fuzz_att_begin,
	.data = fuzz_att_data,
	.end = fuzz_att_end,
};

static void fuzz_mail(const uint8_t *data, size_t size)
{
	struct dmarc_extract_stats stats;
	struct istream *input;
	buffer_t *buf = buffer_create_dynamic(default_pool, 4096);
	const char *error;

	input = i_stream_create_from_data(data, size);
	(void)dmarc_extract_message(input, &limits, &fuzz_extract_callbacks,
				    buf, &stats, &error);
	i_stream_unref(&input);
	buffer_free(&buf);
}

/* The same bytes as a TLS report and as failure report parts. */
static void fuzz_kinds(const uint8_t *data, size_t size)
{
	struct dmarc_tls_report *tls;
	struct dmarc_failure_report *failure;
	const char *error;
	pool_t pool;

	pool = pool_alloconly_create("fuzz kinds", 4096);
	(void)dmarc_tls_parse(pool, data, size, &limits, &tls, &error);
	if (dmarc_failure_parse_arf(pool, data, size, &limits, &failure,
				    &error) == 0)
		dmarc_failure_parse_original(failure, pool, &limits, data, size);
	pool_unref(&pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct istream *input;
	FILE *file;
	int fd;

	file = tmpfile();
	if (file == NULL)
		i_fatal("tmpfile() failed: %m");
	fd = fileno(file);
	if (write_full(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		i_fatal("write() failed: %m");
	T_BEGIN {
		input = i_stream_create_fd(fd, IO_BLOCK_SIZE);
		fuzz_unpack_stream(input);
		i_stream_unref(&input);
		/* the same bytes from memory */
		fuzz_unpack_data(data, size);
		/* and as a mail */
		fuzz_mail(data, size);
		fuzz_import_walk(data, size);
		fuzz_kinds(data, size);
	} T_END;
	fclose(file);
	return 0;
}
