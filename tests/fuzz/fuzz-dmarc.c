/* libFuzzer target for the core: bytes of one attachment -> unpack (from
   a file and from memory) -> parse -> store into a throw-away database;
   and the same bytes through the TLS and failure report parsers. Build with
   ./configure --enable-fuzzer CC=clang; seed with ../shared/corpus. */

#include "lib.h"
#include "write-full.h"
#include "dmarc-settings.h"
#include "dmarc-unpack.h"
#include "dmarc-parse.h"
#include "dmarc-store.h"
#include "dmarc-tls.h"
#include "dmarc-failure.h"

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
	struct dmarc_unpack *unpack;
	uoff_t budget = limits.max_message_decompressed_size;
	const char *name, *error;
	FILE *file;
	int fd;

	file = tmpfile();
	if (file == NULL)
		i_fatal("tmpfile() failed: %m");
	fd = fileno(file);
	if (write_full(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		i_fatal("write() failed: %m");
	T_BEGIN {
		unpack = dmarc_unpack_init_fd(fd, &limits, &budget);
		while (dmarc_unpack_next(unpack, &name, &error) > 0)
			fuzz_document(unpack);
		dmarc_unpack_deinit(&unpack);
		/* the same bytes through the in-memory reader */
		budget = limits.max_message_decompressed_size;
		unpack = dmarc_unpack_init_data(data, size, &limits, &budget);
		while (dmarc_unpack_next(unpack, &name, &error) > 0)
			fuzz_document(unpack);
		dmarc_unpack_deinit(&unpack);
		fuzz_kinds(data, size);
	} T_END;
	fclose(file);
	return 0;
}
