/* libFuzzer target for the core: bytes of one attachment -> unpack (from
   a file and from memory) -> parse -> store into a throw-away database;
   the same bytes as a mail -> MIME extraction -> the same for each
   attachment. Build with ./configure --enable-fuzzer CC=clang; seed with
   ../shared/corpus (aggregate reports and mails). */

#include "lib.h"
#include "buffer.h"
#include "istream.h"
#include "write-full.h"
#include "dmarc-extract.h"
#include "dmarc-settings.h"
#include "dmarc-unpack.h"
#include "dmarc-parse.h"
#include "dmarc-store.h"

#include <stdio.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dmarc_limits limits;
static struct dmarc_store *store;

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
	return 0;
}

static void fuzz_document(struct dmarc_unpack *unpack)
{
	struct dmarc_store_report_info info = { .received = 1 };
	struct dmarc_store_report *sreport;
	const struct dmarc_report *report;
	const struct dmarc_record *record;
	struct dmarc_parser *parser;
	const char *error;
	int ret;

	parser = dmarc_parser_init(dmarc_unpack_read, unpack, &limits);
	if (dmarc_parser_read_header(parser, &report, &error) == 0 &&
	    dmarc_store_report_begin(store, report, &info, &sreport,
				     &error) > 0) {
		while ((ret = dmarc_parser_next_record(parser, &record,
						       &error)) > 0) {
			if (dmarc_store_report_add_record(sreport, record,
							  &error) < 0)
				break;
		}
		/* rolled back either way: the database stays small */
		dmarc_store_report_rollback(&sreport);
	}
	dmarc_parser_deinit(&parser);
}

static void fuzz_unpack_data(const void *data, size_t size)
{
	uoff_t budget = limits.max_message_decompressed_size;
	struct dmarc_unpack *unpack;
	const char *name, *error;
	int ret;

	unpack = dmarc_unpack_init_data(data, size, &limits, &budget);
	while ((ret = dmarc_unpack_next(unpack, &name, &error)) != 0) {
		if (ret > 0)
			fuzz_document(unpack);
	}
	dmarc_unpack_deinit(&unpack);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmarc_unpack *unpack;
	uoff_t budget = limits.max_message_decompressed_size;
	const char *name, *error;
	FILE *file;
	int fd, ret;

	file = tmpfile();
	if (file == NULL)
		i_fatal("tmpfile() failed: %m");
	fd = fileno(file);
	if (write_full(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		i_fatal("write() failed: %m");
	T_BEGIN {
		unpack = dmarc_unpack_init_fd(fd, &limits, &budget);
		while ((ret = dmarc_unpack_next(unpack, &name, &error)) != 0) {
			if (ret > 0)
				fuzz_document(unpack);
		}
		dmarc_unpack_deinit(&unpack);
		/* the same bytes through the in-memory reader */
		fuzz_unpack_data(data, size);
		/* and as a mail */
		fuzz_mail(data, size);
	} T_END;
	fclose(file);
	return 0;
}
