/* The pipeline both doors call: extract -> archive -> unpack -> parse ->
   store. Each attachment is written to the archive as it is decoded (or to
   an unlinked temp file when archiving is off), then unpacked from there:
   nothing is held in memory whole, whatever the sizes. */

#include "lib.h"
#include "ioloop.h"
#include "istream.h"
#include "str.h"
#include "str-sanitize.h"
#include "safe-mkstemp.h"
#include "write-full.h"
#include "message-parser.h"
#include "dmarc-settings.h"
#include "dmarc-extract.h"
#include "dmarc-archive.h"
#include "dmarc-unpack.h"
#include "dmarc-parse.h"
#include "dmarc-store.h"
#include "dmarc-store-cache.h"
#include "dmarc-ingest.h"

/* Without an archive, attachments up to this size stay in memory; larger
   ones spill to an unlinked temp file. Creating a file per attachment is
   what costs most when backfilling thousands of small reports. */
#define INGEST_MEMORY_MAX_BYTES (1024*1024)

#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

struct dmarc_ingest {
	pool_t pool;
	struct dmarc_settings set;
	struct event *event;

	struct dmarc_store *store;
	struct dmarc_store_cache *store_cache;
	/* reused for every attachment kept in memory */
	buffer_t *mem;
	/* Set once the database could not be used: later reports of this
	   run are not tried again, and the error is logged only once. */
	bool store_failed;
	bool in_batch;
	/* copy attachments into set.archive_dir */
	bool archiving;
	/* "Stored" and "Duplicate" lines at debug level */
	bool quiet;
};

/* One attachment (or one imported file) on its way through the pipeline. */
struct ingest_attachment {
	struct event *event;
	const char *message_id;
	/* the attachment's bytes: in mem while they fit (also written to fd
	   when archiving), else only in fd (archive or temp file) */
	int fd;
	buffer_t *mem;
	/* relative to the archive dir, NULL when not archived */
	const char *archive_path;
	/* the MIME charset, when the part is text or XML: it decides how a
	   plain (uncompressed) document is decoded (RFC 7303) */
	const char *charset;
	bool write_failed;
};

struct ingest_message {
	struct dmarc_ingest *ingest;
	struct dmarc_ingest_counts *counts;
	time_t received;
	uoff_t message_budget;
	struct ingest_attachment att;
	int ret;
};

struct dmarc_ingest *dmarc_ingest_init(const struct dmarc_settings *set,
				       struct event *event)
{
	struct dmarc_ingest *ingest;
	pool_t pool;

	pool = pool_alloconly_create("dmarc ingest", 1024);
	ingest = p_new(pool, struct dmarc_ingest, 1);
	ingest->pool = pool;
	ingest->set = *set;
	ingest->set.db_path = p_strdup(pool, set->db_path);
	ingest->set.archive_dir = p_strdup(pool, set->archive_dir);
	ingest->event = event_create(event);
	event_set_append_log_prefix(ingest->event, "dmarcreport: ");
	ingest->archiving = ingest->set.archive_dir != NULL;
	return ingest;
}

void dmarc_ingest_deinit(struct dmarc_ingest **_ingest)
{
	struct dmarc_ingest *ingest = *_ingest;

	*_ingest = NULL;
	if (ingest->in_batch)
		(void)dmarc_ingest_batch_commit(ingest);
	if (ingest->store != NULL && ingest->store_cache != NULL &&
	    !ingest->store_failed) {
		dmarc_store_cache_put(ingest->store_cache, ingest->set.db_path,
				      &ingest->store);
	}
	if (ingest->store != NULL)
		dmarc_store_close(&ingest->store);
	if (ingest->mem != NULL)
		buffer_free(&ingest->mem);
	event_unref(&ingest->event);
	pool_unref(&ingest->pool);
}

void dmarc_ingest_set_archiving(struct dmarc_ingest *ingest, bool archive)
{
	ingest->archiving = archive && ingest->set.archive_dir != NULL;
}

void dmarc_ingest_set_store_cache(struct dmarc_ingest *ingest,
				  struct dmarc_store_cache *cache)
{
	i_assert(ingest->store == NULL);
	ingest->store_cache = cache;
}

void dmarc_ingest_set_quiet(struct dmarc_ingest *ingest, bool quiet)
{
	ingest->quiet = quiet;
}

/* How the reports can still be stored once the cause is fixed: the log
   line of a storage failure says it, as the only line about it. */
static const char *ingest_recovery_hint(struct dmarc_ingest *ingest)
{
	if (!ingest->archiving) {
		return "the mail is kept; store its reports later with "
			"`doveadm dmarc import --mailbox`";
	}
	return t_strdup_printf("the mail is kept and its attachments are in "
			       "%s; store them later with `doveadm dmarc "
			       "import`", ingest->set.archive_dir);
}

static struct dmarc_store *ingest_get_store(struct dmarc_ingest *ingest)
{
	const char *error;

	if (ingest->store != NULL || ingest->store_failed)
		return ingest->store;
	if (ingest->store_cache != NULL && !ingest->in_batch) {
		ingest->store = dmarc_store_cache_take(ingest->store_cache,
						       ingest->set.db_path);
		if (ingest->store != NULL)
			return ingest->store;
	}
	if (dmarc_store_open(ingest->set.db_path, DMARC_STORE_OPEN_CREATE,
			     &ingest->store, &error) <= 0) {
		e_error(ingest->event, "Cannot open the report database (%s): %s",
			ingest_recovery_hint(ingest), error);
		ingest->store = NULL;
		ingest->store_failed = TRUE;
		return NULL;
	}
	if (ingest->in_batch &&
	    dmarc_store_batch_begin(ingest->store, &error) < 0) {
		e_error(ingest->event, "%s", error);
		dmarc_store_close(&ingest->store);
		ingest->store_failed = TRUE;
		return NULL;
	}
	return ingest->store;
}

static void ingest_store_failed(struct dmarc_ingest *ingest, const char *error)
{
	e_error(ingest->event, "Storing the report failed (%s): %s",
		ingest_recovery_hint(ingest), error);
	ingest->store_failed = TRUE;
}

int dmarc_ingest_batch_begin(struct dmarc_ingest *ingest)
{
	i_assert(!ingest->in_batch);
	ingest->in_batch = TRUE;
	/* the transaction starts when the store is first opened */
	if (ingest->store != NULL) {
		const char *error;

		if (dmarc_store_batch_begin(ingest->store, &error) < 0) {
			ingest_store_failed(ingest, error);
			return -1;
		}
	}
	return 0;
}

int dmarc_ingest_batch_commit(struct dmarc_ingest *ingest)
{
	const char *error;

	i_assert(ingest->in_batch);
	ingest->in_batch = FALSE;
	if (ingest->store == NULL)
		return ingest->store_failed ? -1 : 0;
	if (dmarc_store_batch_commit(ingest->store, &error) < 0) {
		ingest_store_failed(ingest, error);
		return -1;
	}
	return 0;
}

static const char *report_label(const struct dmarc_report *report)
{
	return t_strdup_printf("report %s from %s for %s",
			       report->report_id,
			       report->org_name == NULL || *report->org_name == '\0' ?
			       "(no org_name)" : report->org_name,
			       report->policy.domain);
}

/* Parse one XML document and store it. Returns -1 only when storage failed;
   a bad document is logged and counted. */
static int
ingest_document(struct dmarc_ingest *ingest, struct ingest_attachment *att,
		struct dmarc_unpack *unpack, time_t received,
		struct dmarc_ingest_counts *counts)
{
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	const struct dmarc_report *report;
	const struct dmarc_record *record;
	struct dmarc_parser *parser;
	struct dmarc_store *store;
	const char *error, *const *warnings;
	uint64_t records = 0;
	int ret;

	parser = dmarc_parser_init(dmarc_unpack_read, unpack,
				   &ingest->set.limits);
	/* the label describes the bytes as sent, not what a gzip or zip
	   inside them holds */
	if (att->charset != NULL &&
	    dmarc_unpack_get_container(unpack) == DMARC_CONTAINER_PLAIN)
		dmarc_parser_set_charset(parser, att->charset);
	if (dmarc_parser_read_header(parser, &report, &error) < 0) {
		e_warning(att->event, "Not stored: %s", error);
		counts->failed++;
		dmarc_parser_deinit(&parser);
		return 0;
	}

	store = ingest_get_store(ingest);
	if (store == NULL) {
		dmarc_parser_deinit(&parser);
		return -1;
	}
	i_zero(&info);
	info.archive_path = att->archive_path;
	info.message_id = att->message_id;
	info.received = received;
	ret = dmarc_store_report_begin(store, report, &info, &sreport, &error);
	if (ret < 0) {
		ingest_store_failed(ingest, error);
		dmarc_parser_deinit(&parser);
		return -1;
	}
	if (ret == 0) {
		e_log(att->event, ingest->quiet ? LOG_TYPE_DEBUG : LOG_TYPE_INFO,
		      "Duplicate, already stored: %s", report_label(report));
		counts->reports_duplicate++;
		dmarc_parser_deinit(&parser);
		return 0;
	}

	while ((ret = dmarc_parser_next_record(parser, &record, &error)) > 0) {
		if (dmarc_store_report_add_record(sreport, record, &error) < 0) {
			dmarc_store_report_rollback(&sreport);
			ingest_store_failed(ingest, error);
			dmarc_parser_deinit(&parser);
			return -1;
		}
		records++;
	}
	if (ret < 0) {
		/* all or nothing: a report cut short is not stored */
		dmarc_store_report_rollback(&sreport);
		e_warning(att->event, "Not stored: %s: %s",
			  report_label(report), error);
		counts->failed++;
		dmarc_parser_deinit(&parser);
		return 0;
	}
	if (dmarc_store_report_commit(&sreport, &error) < 0) {
		ingest_store_failed(ingest, error);
		dmarc_parser_deinit(&parser);
		return -1;
	}
	warnings = dmarc_parser_get_warnings(parser);
	for (; warnings != NULL && *warnings != NULL; warnings++)
		e_debug(att->event, "%s: %s", report_label(report), *warnings);
	e_log(att->event, ingest->quiet ? LOG_TYPE_DEBUG : LOG_TYPE_INFO,
	      "Stored %s (%"PRIu64" records)", report_label(report), records);
	counts->reports_new++;
	counts->records += records;
	dmarc_parser_deinit(&parser);
	return 0;
}

/* Unpack the attachment (in att->mem, else in att->fd) and ingest each
   document. */
static int
ingest_attachment_data(struct dmarc_ingest *ingest,
		       struct ingest_attachment *att, time_t received,
		       uoff_t *message_budget,
		       struct dmarc_ingest_counts *counts)
{
	struct dmarc_unpack *unpack;
	const char *entry_name, *error;
	unsigned int documents = 0, bad = 0;
	struct event *parent_event = att->event;
	int ret = 0, result = 0;

	if (att->mem != NULL) {
		unpack = dmarc_unpack_init_data(att->mem->data, att->mem->used,
						&ingest->set.limits,
						message_budget);
	} else if (lseek(att->fd, 0, SEEK_SET) < 0) {
		e_error(att->event, "lseek() failed: %m");
		counts->failed++;
		return 0;
	} else {
		unpack = dmarc_unpack_init_fd(att->fd, &ingest->set.limits,
					      message_budget);
	}
	while (result == 0 &&
	       (ret = dmarc_unpack_next(unpack, &entry_name, &error)) != 0) {
		if (entry_name != NULL) {
			att->event = event_create(parent_event);
			event_add_str(att->event, "zip_entry", entry_name);
			event_set_append_log_prefix(att->event, t_strdup_printf(
				"zip entry '%s': ", str_sanitize_utf8(entry_name, 120)));
		}
		if (ret < 0) {
			/* a bad entry, or the container: the entries after
			   a bad one are still read */
			e_warning(att->event, "Not stored: %s", error);
			counts->failed++;
			bad++;
		} else T_BEGIN {
			documents++;
			result = ingest_document(ingest, att, unpack,
						 received, counts);
		} T_END;
		if (entry_name != NULL) {
			event_unref(&att->event);
			att->event = parent_event;
		}
	}
	if (result == 0 && documents == 0 && bad == 0) {
		e_warning(att->event, "Not stored: no document in the container");
		counts->failed++;
	}
	dmarc_unpack_deinit(&unpack);
	return result;
}

/* Where the attachment's bytes go: the archive, or a temp file that
   disappears on close when archiving is off (or the archive is broken). */
static int ingest_open_temp(struct ingest_attachment *att);

static int
ingest_open_target(struct dmarc_ingest *ingest, struct ingest_attachment *att,
		   const char *filename, time_t when)
{
	const char *error;
	int fd;

	att->archive_path = NULL;
	if (ingest->archiving) {
		/* dmarc_archive_create() makes the sender's name safe */
		if (dmarc_archive_create(ingest->set.archive_dir, when,
					 filename, &fd,
					 &att->archive_path, &error) == 0)
			return fd;
		e_error(att->event, "Archiving failed, processing it anyway: %s",
			error);
		att->archive_path = NULL;
	}

	return ingest_open_temp(att);
}

static int ingest_open_temp(struct ingest_attachment *att)
{
	string_t *prefix;
	const char *tmpdir;
	int fd;

	tmpdir = getenv("TMPDIR");
	if (tmpdir == NULL || *tmpdir == '\0')
		tmpdir = "/tmp";
	prefix = t_str_new(128);
	str_printfa(prefix, "%s/dmarcreport.", tmpdir);
	fd = safe_mkstemp(prefix, 0600, (uid_t)-1, (gid_t)-1);
	if (fd == -1) {
		e_error(att->event, "safe_mkstemp(%s) failed: %m",
			str_c(prefix));
		return -1;
	}
	i_unlink(str_c(prefix));
	return fd;
}

static const char *attachment_label(const struct dmarc_attachment *att)
{
	if (att->filename != NULL && *att->filename != '\0')
		return str_sanitize_utf8(att->filename, 120);
	return t_strdup_printf("#%u (%s, no name)", att->index,
			       att->content_type);
}

/* RFC 7303: the charset parameter of an XML or text type names the
   document's encoding. Other types have no business carrying one. */
static bool content_type_has_charset(const char *content_type)
{
	size_t len = strlen(content_type);

	return strncmp(content_type, "text/", 5) == 0 ||
		strcmp(content_type, "application/xml") == 0 ||
		(len > 4 && strcmp(content_type + len - 4, "+xml") == 0);
}

static bool
ingest_attachment_begin(const struct dmarc_attachment *att, void *context)
{
	struct ingest_message *ctx = context;
	const char *label = attachment_label(att);

	ctx->counts->attachments++;
	i_zero(&ctx->att);
	/* valid until dmarc_extract_message() returns */
	ctx->att.message_id = att->message_id;
	if (att->charset != NULL && content_type_has_charset(att->content_type))
		ctx->att.charset = att->charset;
	ctx->att.event = event_create(ctx->ingest->event);
	event_add_str(ctx->att.event, "attachment", label);
	event_set_append_log_prefix(ctx->att.event,
		t_strdup_printf("attachment '%s': ", label));
	/* A copy in memory as well while small: it is unpacked from
	   there instead of being read back from the archive file. */
	if (ctx->ingest->mem == NULL)
		ctx->ingest->mem = buffer_create_dynamic(default_pool, 8192);
	buffer_set_used_size(ctx->ingest->mem, 0);
	ctx->att.mem = ctx->ingest->mem;
	ctx->att.fd = -1;
	if (!ctx->ingest->archiving) {
		/* nothing to keep: memory, or a temp file when too big */
		return TRUE;
	}
	ctx->att.fd = ingest_open_target(ctx->ingest, &ctx->att,
					 att->filename, ctx->received);
	if (ctx->att.fd == -1) {
		ctx->counts->failed++;
		ctx->ret = -1;
		event_unref(&ctx->att.event);
		return FALSE;
	}
	return TRUE;
}

static void
ingest_attachment_write(const unsigned char *data, size_t size, void *context)
{
	struct ingest_message *ctx = context;

	if (ctx->att.write_failed)
		return;
	if (ctx->att.mem != NULL) {
		if (ctx->att.mem->used + size <= INGEST_MEMORY_MAX_BYTES) {
			buffer_append(ctx->att.mem, data, size);
			if (ctx->att.fd == -1)
				return;
		} else if (ctx->att.fd != -1) {
			/* too big: unpacked from the archive file */
			ctx->att.mem = NULL;
		} else {
			/* too big for memory: move what we have to a temp
			   file */
			ctx->att.fd = ingest_open_temp(&ctx->att);
			if (ctx->att.fd == -1 ||
			    write_full(ctx->att.fd, ctx->att.mem->data,
				       ctx->att.mem->used) < 0) {
				if (ctx->att.fd != -1) {
					e_error(ctx->att.event,
						"write(temp file) failed: %m");
				}
				ctx->att.write_failed = TRUE;
				return;
			}
			ctx->att.mem = NULL;
		}
	}
	if (write_full(ctx->att.fd, data, size) < 0) {
		e_error(ctx->att.event, "write(%s) failed: %m",
			ctx->att.archive_path != NULL ?
			ctx->att.archive_path : "temp file");
		ctx->att.write_failed = TRUE;
	}
}

/* A cut-off copy in the archive would only be re-imported as garbage
   later: the mail is the copy to go back to. */
static void ingest_archive_remove(struct dmarc_ingest *ingest,
				  struct ingest_attachment *att)
{
	if (att->archive_path == NULL)
		return;
	i_unlink_if_exists(t_strconcat(ingest->set.archive_dir, "/",
				       att->archive_path, NULL));
	att->archive_path = NULL;
}

static void
ingest_attachment_end(const struct dmarc_attachment *att ATTR_UNUSED,
		      bool truncated, void *context)
{
	struct ingest_message *ctx = context;

	if (ctx->att.write_failed) {
		/* disk full or similar: the mail itself is the copy left */
		ingest_archive_remove(ctx->ingest, &ctx->att);
		ctx->counts->failed++;
		ctx->ret = -1;
	} else if (truncated) {
		e_warning(ctx->att.event, "Not stored: attachment larger than "
			  "dmarcreport_max_attachment_size (%"PRIuUOFF_T" bytes)",
			  ctx->ingest->set.limits.max_attachment_size);
		ingest_archive_remove(ctx->ingest, &ctx->att);
		ctx->counts->failed++;
	} else if (ingest_attachment_data(ctx->ingest, &ctx->att,
					  ctx->received, &ctx->message_budget,
					  ctx->counts) < 0) {
		ctx->ret = -1;
	}
	if (ctx->att.fd != -1)
		i_close_fd(&ctx->att.fd);
	event_unref(&ctx->att.event);
}

static const struct dmarc_extract_callbacks ingest_extract_callbacks = {
	.begin = ingest_attachment_begin,
	.data = ingest_attachment_write,
	.end = ingest_attachment_end,
};

int dmarc_ingest_message(struct dmarc_ingest *ingest, struct istream *input,
			 time_t received, struct dmarc_ingest_counts *counts)
{
	struct ingest_message ctx;
	struct dmarc_extract_stats stats;
	const char *error;

	i_zero(&ctx);
	ctx.ingest = ingest;
	ctx.counts = counts;
	ctx.received = received;
	ctx.message_budget = ingest->set.limits.max_message_decompressed_size;

	if (dmarc_extract_message(input, &ingest->set.limits,
				  &ingest_extract_callbacks, &ctx,
				  &stats, &error) < 0) {
		e_error(ingest->event, "Reading the message failed: %s", error);
		ctx.ret = -1;
	}
	if (stats.skipped > 0) {
		e_warning(ingest->event, "%u attachments past "
			  "dmarcreport_max_attachments=%u not processed",
			  stats.skipped, ingest->set.limits.max_attachments);
		counts->failed += stats.skipped;
	}
	if (stats.mime_overflow) {
		/* what lies below is not looked at: a report there would
		   be lost without a word */
		e_warning(ingest->event, "MIME parts nested deeper than "
			  "dmarcreport_max_mime_depth=%u (or more than %u parts) "
			  "not processed", ingest->set.limits.max_mime_depth,
			  MESSAGE_PARSER_DEFAULT_MAX_TOTAL_MIME_PARTS);
		counts->failed++;
	}
	if (counts->attachments == 0)
		e_info(ingest->event, "No attachment in the message: nothing to store");
	return ctx.ret;
}

/* If path lies inside the archive dir, its path relative to it. */
static const char *
archive_relative_path(struct dmarc_ingest *ingest, const char *path)
{
	const char *dir = ingest->set.archive_dir;
	size_t len;

	if (dir == NULL)
		return NULL;
	len = strlen(dir);
	while (len > 1 && dir[len-1] == '/')
		len--;
	if (strncmp(path, dir, len) != 0 || path[len] != '/')
		return NULL;
	return path + len + 1;
}

static int copy_fd(int from_fd, int to_fd, const char **error_r)
{
	unsigned char buf[IO_BLOCK_SIZE];
	ssize_t ret;

	while ((ret = read(from_fd, buf, sizeof(buf))) > 0) {
		if (write_full(to_fd, buf, ret) < 0) {
			*error_r = t_strdup_printf("write() failed: %m");
			return -1;
		}
	}
	if (ret < 0) {
		*error_r = t_strdup_printf("read() failed: %m");
		return -1;
	}
	return 0;
}

int dmarc_ingest_file(struct dmarc_ingest *ingest, const char *path,
		      struct dmarc_ingest_counts *counts)
{
	struct ingest_attachment att;
	struct stat st;
	const char *error, *base;
	uoff_t message_budget = ingest->set.limits.max_message_decompressed_size;
	int fd, ret = 0;

	i_zero(&att);
	base = strrchr(path, '/');
	base = base == NULL ? path : base + 1;
	att.event = event_create(ingest->event);
	event_add_str(att.event, "file", path);
	event_set_append_log_prefix(att.event, t_strdup_printf(
		"file '%s': ", str_sanitize_utf8(path, 120)));
	counts->attachments++;

	fd = open(path, O_RDONLY);
	if (fd == -1 || fstat(fd, &st) < 0) {
		e_error(att.event, "open() failed: %m");
		counts->failed++;
		if (fd != -1)
			i_close_fd(&fd);
		event_unref(&att.event);
		return 0;
	}
	if ((uoff_t)st.st_size > ingest->set.limits.max_attachment_size) {
		e_warning(att.event, "Not stored: larger than "
			  "dmarcreport_max_attachment_size");
		counts->failed++;
		i_close_fd(&fd);
		event_unref(&att.event);
		return 0;
	}

	att.archive_path = archive_relative_path(ingest, path);
	if (att.archive_path != NULL || !ingest->archiving) {
		att.fd = fd;
	} else {
		/* backfilled reports go to the archive like delivered ones,
		   dated by the file's modification time */
		att.fd = ingest_open_target(ingest, &att, base, st.st_mtime);
		if (att.fd == -1 || copy_fd(fd, att.fd, &error) < 0) {
			if (att.fd != -1) {
				e_error(att.event, "Archiving failed: %s", error);
				i_close_fd(&att.fd);
			}
			/* process the original instead */
			att.archive_path = NULL;
			att.fd = fd;
			fd = -1;
		}
	}
	ret = ingest_attachment_data(ingest, &att, st.st_mtime,
				     &message_budget, counts);
	if (att.fd != fd)
		i_close_fd(&att.fd);
	if (fd != -1)
		i_close_fd(&fd);
	event_unref(&att.event);
	return ret;
}
