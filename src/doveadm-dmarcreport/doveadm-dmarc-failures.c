/* doveadm dmarc failures: DMARC failure reports (RFC 6591), one row per
   report. */

#include "lib.h"
#include "doveadm-print.h"
#include "doveadm-dmarc-filter.h"
#include "doveadm-dmarc.h"
#include "dmarc-query-kinds.h"

struct failures_cmd_context {
	struct doveadm_dmarc_cmd_context dctx;
	const char *archive_dir;
};

static int failures_row(const struct dmarc_query_failure_row *row,
			void *context)
{
	struct failures_cmd_context *ctx = context;

	doveadm_print(doveadm_dmarc_time(row->arrival));
	doveadm_dmarc_print_str(row->reported_domain);
	doveadm_dmarc_print_str(row->source_ip);
	doveadm_dmarc_print_str(row->auth_failure);
	doveadm_dmarc_print_str(row->delivery_result);
	doveadm_dmarc_print_str(row->original_mail_from);
	doveadm_dmarc_print_str(row->orig_from);
	doveadm_dmarc_print_str(row->orig_subject);
	doveadm_dmarc_print_str(row->orig_message_id);
	doveadm_dmarc_print_str(row->user_agent);
	if (row->archive_path == NULL || ctx->archive_dir == NULL)
		doveadm_dmarc_print_str(row->archive_path);
	else {
		doveadm_dmarc_print_str(t_strconcat(ctx->archive_dir, "/",
						    row->archive_path, NULL));
	}
	return 0;
}

static int
failures_read(struct doveadm_mail_cmd_context *_ctx, struct dmarc_store *store,
	      const struct dmarc_settings *set, const char **error_r)
{
	struct failures_cmd_context *ctx = (struct failures_cmd_context *)_ctx;

	ctx->archive_dir = set->archive_dir;
	return dmarc_query_failures(store, &ctx->dctx.filter, failures_row,
				    ctx, error_r);
}

static int
cmd_dmarc_failures_run(struct doveadm_mail_cmd_context *_ctx,
		       struct mail_user *user)
{
	return doveadm_dmarc_read(_ctx, user, failures_read);
}

static void
cmd_dmarc_failures_init(struct doveadm_mail_cmd_context *_ctx,
			const char *const args[])
{
	struct failures_cmd_context *ctx = (struct failures_cmd_context *)_ctx;

	doveadm_dmarc_parse_filter(&ctx->dctx, args);
	doveadm_print_header("arrival", "Arrival", 0);
	doveadm_print_header("reported_domain", "Domain", 0);
	doveadm_print_header("source_ip", "Source", 0);
	doveadm_print_header("auth_failure", "Auth-Failure", 0);
	doveadm_print_header("delivery_result", "Delivery", 0);
	doveadm_print_header("mail_from", "Mail-From", 0);
	doveadm_print_header("from", "From", 0);
	doveadm_print_header("subject", "Subject", 0);
	doveadm_print_header("message_id", "Message-ID", 0);
	doveadm_print_header("user_agent", "User-Agent", 0);
	doveadm_print_header("archive", "Archive", 0);
}

static struct doveadm_mail_cmd_context *cmd_dmarc_failures_alloc(void)
{
	struct failures_cmd_context *ctx;

	ctx = doveadm_dmarc_cmd_alloc(struct failures_cmd_context, "");
	ctx->dctx.kind = "failure";
	ctx->dctx.init = cmd_dmarc_failures_init;
	ctx->dctx.ctx.v.run = cmd_dmarc_failures_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->dctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_failures = {
	.name = "dmarc failures",
	.mail_cmd = cmd_dmarc_failures_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX DOVEADM_DMARC_FILTER_USAGE,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('\0', "filter", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
