/* doveadm dmarc import: backfill the database from report files, whole
   mails (.eml), directories of them, or the messages of a mailbox, through
   the same ingest pipeline as delivery, in one transaction. */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "istream.h"
#include "path-util.h"
#include "read-full.h"
#include "mail-namespace.h"
#include "mail-search-build.h"
#include "doveadm-print.h"
#include "dmarc-ingest.h"
#include "dmarc-log.h"
#include "doveadm-dmarc.h"

#define IMPORT_READ_WHOLE_MAX_BYTES (1024*1024)

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

struct import_cmd_context {
	struct doveadm_dmarc_cmd_context dctx;
	const char *mailbox;
	const char *const *paths;
	/* copy what is imported into the archive dir */
	bool archive;

	/* of the current user */
	struct dmarc_ingest *ingest;
	struct dmarc_ingest_counts total;
	/* the current mail file when read whole */
	buffer_t *file_buf;
	unsigned int inputs;
	bool storage_failed;
};

/* --- files --- */

static bool has_suffix(const char *name, const char *suffix)
{
	size_t len = strlen(name), slen = strlen(suffix);

	return len >= slen && strcasecmp(name + len - slen, suffix) == 0;
}

/* Is this file a whole mail rather than a bare report? By the extension
   first, then by its first bytes: gzip, zip, XML and JSON (TLS reports)
   are reports; a first line that is a header field is a mail. */
static bool import_file_is_message(const char *path, int fd)
{
	unsigned char buf[256];
	ssize_t len, i;

	if (has_suffix(path, ".eml") || has_suffix(path, ".msg"))
		return TRUE;
	if (has_suffix(path, ".xml") || has_suffix(path, ".gz") ||
	    has_suffix(path, ".zip") || has_suffix(path, ".zlib") ||
	    has_suffix(path, ".json"))
		return FALSE;

	len = pread(fd, buf, sizeof(buf), 0);
	if (len < 2)
		return FALSE;
	if ((buf[0] == 0x1f && buf[1] == 0x8b) ||
	    (buf[0] == 'P' && buf[1] == 'K') || buf[0] == '{')
		return FALSE;
	/* RFC 5322 2.2: field-name is printable ASCII except ':' */
	for (i = 0; i < len; i++) {
		if (buf[i] == ':')
			return i > 0;
		if (buf[i] < 33 || buf[i] > 126)
			return FALSE;
	}
	return FALSE;
}

static void
import_counts_add(struct import_cmd_context *ctx,
		  const struct dmarc_ingest_counts *counts)
{
	ctx->total.attachments += counts->attachments;
	ctx->total.reports_new += counts->reports_new;
	ctx->total.reports_duplicate += counts->reports_duplicate;
	ctx->total.failed += counts->failed;
	ctx->total.records += counts->records;
}

/* A mail file as a stream: read whole when small (one read instead of a
   pread and an fstat per block, which add up over thousands of files),
   else streamed. *fd stays the caller's to close, or is taken (-1). */
static struct istream *
import_file_stream(struct import_cmd_context *ctx, const char *path,
		   int *fd, const struct stat *st)
{
	struct istream *input;
	ssize_t ret;

	if (st->st_size > 0 && st->st_size <= IMPORT_READ_WHOLE_MAX_BYTES) {
		if (ctx->file_buf == NULL)
			ctx->file_buf = buffer_create_dynamic(default_pool, 65536);
		buffer_set_used_size(ctx->file_buf, 0);
		ret = read_full(*fd, buffer_append_space_unsafe(
			ctx->file_buf, st->st_size), st->st_size);
		if (ret > 0) {
			input = i_stream_create_from_data(ctx->file_buf->data,
							  ctx->file_buf->used);
			i_stream_set_name(input, path);
			return input;
		}
		/* changed meanwhile, or an error: the stream reports it */
		if (lseek(*fd, 0, SEEK_SET) < 0)
			i_error("dmarc import: lseek(%s) failed: %m",
				dmarc_log_text(path));
	}
	input = i_stream_create_fd_autoclose(fd, IO_BLOCK_SIZE);
	i_stream_set_name(input, path);
	return input;
}

static int import_file(struct import_cmd_context *ctx, const char *path)
{
	struct dmarc_ingest_counts counts;
	struct istream *input;
	struct stat st;
	int fd, ret;

	i_zero(&counts);
	ctx->inputs++;
	fd = open(path, O_RDONLY);
	if (fd == -1 || fstat(fd, &st) < 0) {
		i_error("dmarc import: open(%s) failed: %m",
			dmarc_log_text(path));
		ctx->total.failed++;
		if (fd != -1)
			i_close_fd(&fd);
		return 0;
	}
	if (!import_file_is_message(path, fd)) {
		i_close_fd(&fd);
		ret = dmarc_ingest_file(ctx->ingest, path, &counts);
	} else {
		input = import_file_stream(ctx, path, &fd, &st);
		ret = dmarc_ingest_message(ctx->ingest, input, st.st_mtime,
					   &counts);
		i_stream_unref(&input);
		if (fd != -1)
			i_close_fd(&fd);
	}
	import_counts_add(ctx, &counts);
	return ret;
}

struct import_dir_entry {
	const char *path;
	/* DT_* from readdir(), DT_UNKNOWN when it did not say */
	unsigned char type;
};

static int import_dir_entry_cmp(const struct import_dir_entry *e1,
				const struct import_dir_entry *e2)
{
	return strcmp(e1->path, e2->path);
}

/* A directory: its files and subdirectories in name order, dot files
   left out (Maildir's tmp/ files are not finished mails either). */
static int import_dir(struct import_cmd_context *ctx, const char *dir);

static int import_path(struct import_cmd_context *ctx, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		i_error("dmarc import: stat(%s) failed: %m",
			dmarc_log_text(path));
		ctx->total.failed++;
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		return import_dir(ctx, path);
	if (!S_ISREG(st.st_mode))
		return 0;
	return import_file(ctx, path);
}

static int import_dir(struct import_cmd_context *ctx, const char *dir)
{
	ARRAY(struct import_dir_entry) entries;
	const struct import_dir_entry *entry;
	struct import_dir_entry *new_entry;
	struct dirent *d;
	DIR *dirp;
	int ret = 0;

	dirp = opendir(dir);
	if (dirp == NULL) {
		i_error("dmarc import: opendir(%s) failed: %m",
			dmarc_log_text(dir));
		ctx->total.failed++;
		return 0;
	}
	t_array_init(&entries, 64);
	while ((d = readdir(dirp)) != NULL) {
		if (d->d_name[0] == '.' || strcmp(d->d_name, "tmp") == 0)
			continue;
		new_entry = array_append_space(&entries);
		new_entry->path = t_strconcat(dir, "/", d->d_name, NULL);
		new_entry->type = d->d_type;
	}
	if (closedir(dirp) < 0)
		i_error("dmarc import: closedir(%s) failed: %m",
			dmarc_log_text(dir));
	array_sort(&entries, import_dir_entry_cmp);
	array_foreach(&entries, entry) {
		T_BEGIN {
			/* a regular file needs no stat() of its own: the
			   open file is looked at */
			if (entry->type == DT_REG)
				ret = import_file(ctx, entry->path);
			else
				ret = import_path(ctx, entry->path);
		} T_END;
		if (ret < 0)
			break;
	}
	return ret;
}

/* --- a mailbox --- */

static int
import_mailbox(struct import_cmd_context *ctx, struct mail_user *user)
{
	struct doveadm_mail_cmd_context *_ctx = &ctx->dctx.ctx;
	struct mail_namespace *ns;
	struct mailbox *box;
	struct mailbox_transaction_context *trans;
	struct mail_search_context *search;
	struct dmarc_ingest_counts counts;
	struct istream *input;
	struct mail *mail;
	time_t received;
	int ret = 0;

	ns = mail_namespace_find(user->namespaces, ctx->mailbox);
	box = mailbox_alloc(ns->list, ctx->mailbox,
			    MAILBOX_FLAG_READONLY | MAILBOX_FLAG_IGNORE_ACLS);
	if (mailbox_sync(box, 0) < 0) {
		i_error("dmarc import: Opening mailbox %s failed: %s",
			ctx->mailbox, mailbox_get_last_internal_error(box, NULL));
		doveadm_mail_failed_mailbox(_ctx, box);
		mailbox_free(&box);
		return -1;
	}
	mail_search_args_init(_ctx->search_args, box, FALSE, NULL);
	trans = mailbox_transaction_begin(box, 0, "dmarc import");
	search = mailbox_search_init(trans, _ctx->search_args, NULL,
				     MAIL_FETCH_STREAM_HEADER |
				     MAIL_FETCH_STREAM_BODY |
				     MAIL_FETCH_RECEIVED_DATE, NULL);
	while (ret == 0 && mailbox_search_next(search, &mail)) {
		ctx->inputs++;
		if (mail_get_stream(mail, NULL, NULL, &input) < 0) {
			i_error("dmarc import: %s UID %u: Reading failed: %s",
				ctx->mailbox, mail->uid,
				mailbox_get_last_internal_error(box, NULL));
			ctx->total.failed++;
			continue;
		}
		if (mail_get_received_date(mail, &received) < 0)
			received = ioloop_time;
		i_zero(&counts);
		ret = dmarc_ingest_message(ctx->ingest, input, received,
					   &counts);
		import_counts_add(ctx, &counts);
	}
	if (mailbox_search_deinit(&search) < 0) {
		i_error("dmarc import: Searching mailbox %s failed: %s",
			ctx->mailbox, mailbox_get_last_internal_error(box, NULL));
		doveadm_mail_failed_mailbox(_ctx, box);
		ret = -1;
	}
	mail_search_args_deinit(_ctx->search_args);
	/* read-only: nothing to commit in the mailbox */
	mailbox_transaction_rollback(&trans);
	mailbox_free(&box);
	return ret;
}

/* --- the command --- */

static int
cmd_dmarc_import_run(struct doveadm_mail_cmd_context *_ctx,
		     struct mail_user *user)
{
	struct import_cmd_context *ctx = (struct import_cmd_context *)_ctx;
	struct dmarc_settings set;
	const char *const *path;
	int ret = 0;

	if (doveadm_dmarc_user_settings(_ctx, user, &set) < 0)
		return -1;
	i_zero(&ctx->total);
	ctx->inputs = 0;
	ctx->ingest = dmarc_ingest_init(&set, user->event);
	/* the files or mails imported exist already: copies only on request */
	dmarc_ingest_set_archiving(ctx->ingest, ctx->archive);
	/* the totals are printed; -D shows each report */
	dmarc_ingest_set_quiet(ctx->ingest, TRUE);
	/* one transaction: a backfill of thousands of reports stays fast,
	   and each report is still a savepoint of its own */
	if (dmarc_ingest_batch_begin(ctx->ingest) < 0)
		ret = -1;
	if (ret == 0 && ctx->mailbox != NULL)
		ret = import_mailbox(ctx, user);
	else if (ret == 0) {
		for (path = ctx->paths; *path != NULL && ret == 0; path++) {
			/* a path given on the command line must exist */
			if (access(*path, F_OK) < 0) {
				i_error("dmarc import: %s: %m",
					dmarc_log_text(*path));
				_ctx->exit_code = EX_NOINPUT;
				continue;
			}
			ret = import_path(ctx, *path);
		}
	}
	if (dmarc_ingest_batch_commit(ctx->ingest) < 0)
		ret = -1;
	dmarc_ingest_deinit(&ctx->ingest);
	if (ctx->file_buf != NULL)
		buffer_free(&ctx->file_buf);

	doveadm_dmarc_print_num(ctx->inputs);
	doveadm_dmarc_print_num(ctx->total.reports_new);
	doveadm_dmarc_print_num(ctx->total.reports_duplicate);
	doveadm_dmarc_print_num(ctx->total.failed);
	doveadm_dmarc_print_num(ctx->total.records);
	if (ret < 0) {
		/* the ingest logged why */
		if (_ctx->exit_code == 0)
			_ctx->exit_code = EX_TEMPFAIL;
		return -1;
	}
	/* Inputs that gave no report are counted and logged, not an
	   error: a mailbox holds other mails with attachments too. */
	return 0;
}

static void cmd_dmarc_import_preinit(struct doveadm_mail_cmd_context *_ctx)
{
	struct import_cmd_context *ctx = (struct import_cmd_context *)_ctx;

	/* runs before the user lookups: a mailbox needs the namespaces */
	if (doveadm_cmd_param_str(_ctx->cctx, "mailbox", &ctx->mailbox))
		_ctx->service_flags &= ENUM_NEGATE(MAIL_STORAGE_SERVICE_FLAG_NO_NAMESPACES);
}

static void
cmd_dmarc_import_init(struct doveadm_mail_cmd_context *_ctx,
		      const char *const args[])
{
	struct import_cmd_context *ctx = (struct import_cmd_context *)_ctx;

	(void)doveadm_cmd_param_bool(_ctx->cctx, "archive", &ctx->archive);
	if (ctx->mailbox != NULL) {
		if (args[0] == NULL) {
			_ctx->search_args = mail_search_build_init();
			mail_search_build_add_all(_ctx->search_args);
		} else {
			_ctx->search_args = doveadm_mail_build_search_args(args);
		}
	} else if (args[0] == NULL) {
		doveadm_dmarc_usage_error(_ctx,
			"Nothing to import: give files, directories or --mailbox");
	} else {
		ARRAY_TYPE(const_string) paths;
		const char *path, *error;

		/* relative to where doveadm was started, before any chdir
		   to the user's home */
		p_array_init(&paths, _ctx->pool, 8);
		for (; *args != NULL; args++) {
			if (t_abspath(*args, &path, &error) < 0) {
				i_fatal_status(EX_OSERR,
					       "dmarc import: %s: %s", *args, error);
			}
			path = p_strdup(_ctx->pool, path);
			array_push_back(&paths, &path);
		}
		array_append_zero(&paths);
		ctx->paths = array_front(&paths);
	}
	doveadm_print_header("inputs", "Inputs", DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("new", "New", DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("duplicate", "Duplicate",
			     DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("failed", "Failed", DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("records", "Records", DOVEADM_DMARC_NUMBER_FLAGS);
}

static struct doveadm_mail_cmd_context *cmd_dmarc_import_alloc(void)
{
	struct import_cmd_context *ctx;

	ctx = doveadm_dmarc_cmd_alloc(struct import_cmd_context, "m:a");
	ctx->dctx.ctx.v.preinit = cmd_dmarc_import_preinit;
	ctx->dctx.ctx.v.init = cmd_dmarc_import_init;
	ctx->dctx.ctx.v.run = cmd_dmarc_import_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->dctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_import = {
	.name = "dmarc import",
	.mail_cmd = cmd_dmarc_import_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"[--archive] --mailbox <mailbox> [<search query>] | [--archive] <file|dir> [...]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('m', "mailbox", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('a', "archive", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('\0', "args", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
