/* doveadm dmarc import: backfill the database from report files, whole
   mails (.eml), directories of them, the messages of a mailbox, or the
   pending spool, through the same ingest pipeline as delivery, in
   transactions of a bounded time. One input that fails is counted and
   logged; the run goes on with the next one, unless the database itself
   fails. */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "istream.h"
#include "path-util.h"
#include "mail-storage.h"
#include "mail-search-build.h"
#include "doveadm-mail-iter.h"
#include "doveadm-print.h"
#include "dmarc-ingest.h"
#include "dmarc-import.h"
#include "doveadm-dmarc.h"

struct import_cmd_context {
	struct doveadm_dmarc_cmd_context dctx;
	const char *mailbox;
	const char *const *paths;
	/* copy what is imported into the archive dir */
	bool archive;
	/* store the pending spool's reports */
	bool pending;

	/* of the current user */
	struct dmarc_ingest *ingest;
	struct dmarc_ingest_counts total;
	unsigned int inputs;
};

/* --- a mailbox --- */

static int
import_mailbox(struct import_cmd_context *ctx, struct mail_user *user)
{
	struct doveadm_mail_cmd_context *_ctx = &ctx->dctx.ctx;
	struct doveadm_mail_iter *iter;
	struct mailbox_info info;
	struct mailbox *box;
	enum mailbox_existence existence;
	struct dmarc_ingest_counts counts;
	struct istream *input;
	struct mail *mail;
	time_t received;
	int ret = 0;

	/* doveadm's own lookup: a name that is not UTF-8 fails as it does
	   in doveadm's commands, the namespace is the name's */
	box = doveadm_mailbox_find(user, ctx->mailbox);
	if (mailbox_exists(box, TRUE, &existence) < 0) {
		i_error("dmarc import: Mailbox %s: %s", ctx->mailbox,
			mailbox_get_last_internal_error(box, NULL));
		doveadm_mail_failed_mailbox(_ctx, box);
		mailbox_free(&box);
		return 0;
	}
	if (existence != MAILBOX_EXISTENCE_SELECT) {
		/* the iterator skips a missing mailbox silently, as a walk
		   over a pattern should; one named here is an error (68) */
		i_error("dmarc import: Mailbox %s doesn't exist", ctx->mailbox);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_NOTFOUND);
		mailbox_free(&box);
		return 0;
	}
	i_zero(&info);
	info.ns = mailbox_get_namespace(box);
	info.vname = mailbox_get_vname(box);
	/* -1 for the database only: a mailbox error is logged and in the
	   exit code (doveadm_mail_failed_mailbox()) */
	if (doveadm_mail_iter_init(_ctx, &info, _ctx->search_args,
				   MAIL_FETCH_STREAM_HEADER |
				   MAIL_FETCH_STREAM_BODY |
				   MAIL_FETCH_RECEIVED_DATE, NULL,
				   DOVEADM_MAIL_ITER_FLAG_READONLY, &iter) < 0 ||
	    iter == NULL) {
		mailbox_free(&box);
		return 0;
	}
	while (ret == 0 && doveadm_mail_iter_next(iter, &mail)) {
		ctx->inputs++;
		if (mail_get_stream(mail, NULL, NULL, &input) < 0) {
			i_error("dmarc import: %s UID %u: Reading failed: %s",
				ctx->mailbox, mail->uid,
				mailbox_get_last_internal_error(mail->box, NULL));
			ctx->total.failed++;
			continue;
		}
		if (mail_get_received_date(mail, &received) < 0)
			received = ioloop_time;
		i_zero(&counts);
		ret = dmarc_ingest_message(ctx->ingest, input, received,
					   &counts);
		dmarc_ingest_counts_add(&ctx->total, &counts);
	}
	/* read-only: nothing is committed; a failed search is logged and
	   in the exit code */
	(void)doveadm_mail_iter_deinit(&iter);
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
	struct event *event;
	int ret = 0;

	if (doveadm_dmarc_user_settings(_ctx, user, &set) < 0)
		return -1;
	i_zero(&ctx->total);
	ctx->inputs = 0;
	/* the ingest's lines name the command, as dmarc_import's do */
	event = event_create(user->event);
	event_set_append_log_prefix(event, "dmarc import: ");
	ctx->ingest = dmarc_ingest_init(&set, event);
	event_unref(&event);
	/* the files or mails imported exist already: copies only on request */
	dmarc_ingest_set_archiving(ctx->ingest, ctx->archive);
	/* the totals are printed; -D shows each report */
	dmarc_ingest_set_quiet(ctx->ingest, TRUE);
	if (ctx->pending) {
		struct dmarc_ingest_counts counts;

		/* outside a batch: an entry goes only once its report is
		   committed */
		i_zero(&counts);
		ret = dmarc_ingest_pending(ctx->ingest, TRUE, 0, &counts);
		ctx->inputs += counts.attachments;
		dmarc_ingest_counts_add(&ctx->total, &counts);
	}
	/* Batches of a bounded time: a backfill of thousands of reports
	   stays fast, and deliveries get the lock between two batches. */
	if (ret == 0 && (ctx->mailbox != NULL || ctx->paths != NULL) &&
	    dmarc_ingest_batch_begin(ctx->ingest) < 0)
		ret = -1;
	if (ret == 0 && ctx->mailbox != NULL)
		ret = import_mailbox(ctx, user);
	else if (ret == 0 && ctx->paths != NULL) {
		struct dmarc_import *import;

		import = dmarc_import_init(ctx->ingest, user->event,
					   &ctx->total);
		for (path = ctx->paths; *path != NULL && ret == 0; path++)
			ret = dmarc_import_path(import, *path, TRUE);
		ctx->inputs += dmarc_import_get_inputs(import);
		/* doveadm's rule: the first error's code, EX_TEMPFAIL over
		   all */
		if (dmarc_import_get_unreadable(import) > 0)
			doveadm_dmarc_set_exit_code(_ctx, EX_NOINPUT);
		dmarc_import_deinit(&import);
	}
	if ((ctx->mailbox != NULL || ctx->paths != NULL) &&
	    dmarc_ingest_batch_commit(ctx->ingest) < 0)
		ret = -1;
	dmarc_ingest_deinit(&ctx->ingest);

	doveadm_dmarc_print_num(ctx->inputs);
	doveadm_dmarc_print_num(ctx->total.reports_new);
	doveadm_dmarc_print_num(ctx->total.reports_duplicate);
	doveadm_dmarc_print_num(ctx->total.failed);
	doveadm_dmarc_print_num(ctx->total.records);
	if (ret < 0) {
		/* the database failed (the ingest logged why): the rest
		   would fail alike; import again once it is fixed */
		doveadm_dmarc_set_exit_code(_ctx, EX_TEMPFAIL);
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
	(void)doveadm_cmd_param_bool(_ctx->cctx, "pending", &ctx->pending);
	if (ctx->mailbox != NULL) {
		if (args[0] == NULL) {
			_ctx->search_args = mail_search_build_init();
			mail_search_build_add_all(_ctx->search_args);
		} else {
			_ctx->search_args = doveadm_mail_build_search_args(args);
		}
	} else if (args[0] == NULL) {
		if (!ctx->pending) {
			doveadm_dmarc_usage_error(_ctx, "Nothing to import: "
				"give files, directories, --mailbox or --pending");
		}
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

	ctx = doveadm_dmarc_cmd_alloc(struct import_cmd_context, "m:ap");
	ctx->dctx.ctx.v.preinit = cmd_dmarc_import_preinit;
	ctx->dctx.init = cmd_dmarc_import_init;
	ctx->dctx.ctx.v.run = cmd_dmarc_import_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->dctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_import = {
	.name = "dmarc import",
	.mail_cmd = cmd_dmarc_import_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"[--archive] [--pending] --mailbox <mailbox> [<search query>] | "
		"[--archive] [--pending] [<file|dir> ...]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('m', "mailbox", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('a', "archive", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('p', "pending", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('\0', "args", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
