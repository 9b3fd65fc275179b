/* doveadm dmarc report: the user's reports as one self-contained HTML
   page with charts, written to a file or saved as a digest mail
   (multipart/alternative, text and HTML) into one of the user's
   mailboxes. */

#include "lib.h"
#include "ioloop.h"
#include "istream.h"
#include "str.h"
#include "hostpid.h"
#include "path-util.h"
#include "write-full.h"
#include "mail-storage.h"
#include "doveadm-print.h"
#include "doveadm-dmarc-filter.h"
#include "dmarc-log.h"
#include "dmarc-report-html.h"
#include "doveadm-dmarc.h"

#include <fcntl.h>
#include <unistd.h>

struct report_cmd_context {
	struct doveadm_dmarc_cmd_context dctx;
	/* one of these two */
	const char *output, *mailbox;

	/* of the current user */
	struct mail_user *user;
	struct dmarc_query_report *report;
};

/* --output: "%u" is the user name, so that -A writes one file each */
static const char *report_output_path(struct report_cmd_context *ctx)
{
	const char *p = strstr(ctx->output, "%u");

	if (p == NULL)
		return ctx->output;
	return t_strconcat(t_strdup_until(ctx->output, p),
			   ctx->user->username, p + 2, NULL);
}

static int report_write_file(struct report_cmd_context *ctx,
			     const string_t *html, const char **error_r)
{
	const char *path = report_output_path(ctx);
	const char *tmp = t_strdup_printf("%s.tmp.%s", path, my_pid);
	int fd;

	/* written whole, then renamed: a reader never sees half a page */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", tmp);
		return -1;
	}
	if (write_full(fd, str_data(html), str_len(html)) < 0) {
		*error_r = t_strdup_printf("write(%s) failed: %m", tmp);
		i_close_fd(&fd);
		i_unlink(tmp);
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = t_strdup_printf("close(%s) failed: %m", tmp);
		i_unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		*error_r = t_strdup_printf("rename(%s, %s) failed: %m",
					   tmp, path);
		i_unlink(tmp);
		return -1;
	}
	return 0;
}

/* As doveadm save does, into a mailbox created when missing. */
static int report_save_mail(struct report_cmd_context *ctx,
			    const string_t *mail)
{
	struct doveadm_mail_cmd_context *_ctx = &ctx->dctx.ctx;
	struct mailbox *box;
	struct mailbox_transaction_context *trans;
	struct mail_save_context *save_ctx;
	struct istream *input;
	enum mail_error error;
	int result = -1;

	/* doveadm's own lookup, as doveadm save: a name that is not UTF-8
	   is EX_DATAERR */
	box = doveadm_mailbox_find(ctx->user, ctx->mailbox);
	if (mailbox_create(box, NULL, FALSE) < 0) {
		(void)mailbox_get_last_error(box, &error);
		if (error != MAIL_ERROR_EXISTS) {
			i_error("dmarc report: Creating mailbox %s failed: %s",
				dmarc_log_text(ctx->mailbox),
				mailbox_get_last_internal_error(box, NULL));
			doveadm_mail_failed_mailbox(_ctx, box);
			mailbox_free(&box);
			return -1;
		}
	}
	if (mailbox_open(box) < 0) {
		i_error("dmarc report: Opening mailbox %s failed: %s",
			dmarc_log_text(ctx->mailbox),
			mailbox_get_last_internal_error(box, NULL));
		doveadm_mail_failed_mailbox(_ctx, box);
		mailbox_free(&box);
		return -1;
	}

	input = i_stream_create_from_data(str_data(mail), str_len(mail));
	trans = mailbox_transaction_begin(box, MAILBOX_TRANSACTION_FLAG_EXTERNAL,
					  "dmarc report");
	save_ctx = mailbox_save_alloc(trans);
	if (mailbox_save_begin(&save_ctx, input) == 0) {
		bool save_failed = FALSE;

		do {
			if (mailbox_save_continue(save_ctx) < 0) {
				save_failed = TRUE;
				break;
			}
		} while (i_stream_read(input) > 0);
		/* a memory stream: read to its end unless saving failed */
		if (!save_failed && input->eof &&
		    mailbox_save_finish(&save_ctx) == 0 &&
		    mailbox_transaction_commit(&trans) == 0)
			result = 0;
	}
	if (result < 0) {
		i_error("dmarc report: Saving into %s failed: %s",
			dmarc_log_text(ctx->mailbox),
			mailbox_get_last_internal_error(box, NULL));
		doveadm_mail_failed_mailbox(_ctx, box);
	}
	if (save_ctx != NULL)
		mailbox_save_cancel(&save_ctx);
	if (trans != NULL)
		mailbox_transaction_rollback(&trans);
	i_stream_unref(&input);
	mailbox_free(&box);
	return result;
}

static int
report_read(struct doveadm_mail_cmd_context *_ctx, struct dmarc_store *store,
	    const struct dmarc_settings *set ATTR_UNUSED, const char **error_r)
{
	struct report_cmd_context *ctx = (struct report_cmd_context *)_ctx;

	return dmarc_query_report(store, &ctx->dctx.filter, ioloop_time,
				  &ctx->report, error_r);
}

static int
cmd_dmarc_report_run(struct doveadm_mail_cmd_context *_ctx,
		     struct mail_user *user)
{
	struct report_cmd_context *ctx = (struct report_cmd_context *)_ctx;
	struct dmarc_report_html_info info;
	const char *error;
	string_t *out;
	int ret = 0;

	ctx->user = user;
	ctx->report = NULL;
	/* a user without a database gets no report: under -A, only the
	   users who receive reports get a digest */
	ret = doveadm_dmarc_read(_ctx, user, report_read);
	if (ret < 0 || ctx->report == NULL) {
		if (ctx->report != NULL)
			dmarc_query_report_free(&ctx->report);
		return ret;
	}

	i_zero(&info);
	info.user = user->username;
	info.generated = ioloop_time;
	out = str_new(default_pool, 256 * 1024);
	if (ctx->output != NULL) {
		dmarc_report_html(out, ctx->report, &info);
		if (report_write_file(ctx, out, &error) < 0) {
			i_error("dmarc report: user %s: %s", user->username,
				dmarc_log_text(error));
			doveadm_dmarc_set_exit_code(_ctx, EX_CANTCREAT);
			ret = -1;
		}
	} else {
		dmarc_report_mail(out, ctx->report, &info, user->username);
		ret = report_save_mail(ctx, out);
	}
	if (ret == 0) {
		doveadm_dmarc_print_str(ctx->output != NULL ?
					report_output_path(ctx) : ctx->mailbox);
		doveadm_dmarc_print_num(ctx->report->domain_count +
					ctx->report->more_domains);
		doveadm_dmarc_print_num(str_len(out));
	}
	str_free(&out);
	dmarc_query_report_free(&ctx->report);
	return ret;
}

static void cmd_dmarc_report_preinit(struct doveadm_mail_cmd_context *_ctx)
{
	struct report_cmd_context *ctx = (struct report_cmd_context *)_ctx;

	/* runs before the user lookups: saving a mail needs the
	   namespaces */
	if (doveadm_cmd_param_str(_ctx->cctx, "mailbox", &ctx->mailbox))
		_ctx->service_flags &= ENUM_NEGATE(MAIL_STORAGE_SERVICE_FLAG_NO_NAMESPACES);
}

static void
cmd_dmarc_report_init(struct doveadm_mail_cmd_context *_ctx,
		      const char *const args[])
{
	struct report_cmd_context *ctx = (struct report_cmd_context *)_ctx;
	const char *output, *error;

	if (doveadm_cmd_param_str(_ctx->cctx, "output", &output)) {
		/* relative to where doveadm was started */
		if (t_abspath(output, &output, &error) < 0) {
			i_fatal_status(EX_OSERR, "dmarc report: %s: %s",
				       output, error);
		}
		ctx->output = p_strdup(_ctx->pool, output);
	}
	if ((ctx->output == NULL) == (ctx->mailbox == NULL)) {
		doveadm_dmarc_usage_error(_ctx,
			"Give either --output <file> or --mailbox <name>");
	}
	doveadm_dmarc_parse_filter(&ctx->dctx, args);
	doveadm_print_header(ctx->output != NULL ? "file" : "mailbox",
			     ctx->output != NULL ? "File" : "Mailbox", 0);
	doveadm_print_header("domains", "Domains", DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("bytes", "Bytes", DOVEADM_DMARC_NUMBER_FLAGS);
}

static struct doveadm_mail_cmd_context *cmd_dmarc_report_alloc(void)
{
	struct report_cmd_context *ctx;

	ctx = doveadm_dmarc_cmd_alloc(struct report_cmd_context, "o:m:");
	ctx->dctx.ctx.v.preinit = cmd_dmarc_report_preinit;
	ctx->dctx.init = cmd_dmarc_report_init;
	ctx->dctx.ctx.v.run = cmd_dmarc_report_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->dctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_report = {
	.name = "dmarc report",
	.mail_cmd = cmd_dmarc_report_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"--output <file> | --mailbox <name> "
		DOVEADM_DMARC_FILTER_USAGE,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('o', "output", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('m', "mailbox", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('\0', "filter", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
