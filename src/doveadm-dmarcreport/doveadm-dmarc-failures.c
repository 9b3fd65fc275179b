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
	doveadm_dmarc_print_archive(ctx->archive_dir, row->archive_path);
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

static const struct doveadm_dmarc_column failures_columns[] = {
	{ "arrival", "Arrival", 0 },
	{ "reported_domain", "Domain", 0 },
	{ "source_ip", "Source", 0 },
	{ "auth_failure", "Auth-Failure", 0 },
	{ "delivery_result", "Delivery", 0 },
	{ "mail_from", "Mail-From", 0 },
	{ "from", "From", 0 },
	{ "subject", "Subject", 0 },
	{ "message_id", "Message-ID", 0 },
	{ "user_agent", "User-Agent", 0 },
	{ "archive", "Archive", 0 },
};

static void
cmd_dmarc_failures_init(struct doveadm_mail_cmd_context *_ctx,
			const char *const args[])
{
	struct failures_cmd_context *ctx = (struct failures_cmd_context *)_ctx;

	doveadm_dmarc_parse_filter(&ctx->dctx, args);
	doveadm_dmarc_print_headers(failures_columns,
				    N_ELEMENTS(failures_columns));
}

static struct doveadm_mail_cmd_context *cmd_dmarc_failures_alloc(void)
{
	struct failures_cmd_context *ctx;

	ctx = doveadm_dmarc_read_cmd_alloc(struct failures_cmd_context, "",
		cmd_dmarc_failures_init, failures_read,
		DOVEADM_PRINT_TYPE_TABLE);
	ctx->dctx.kind = "failure";
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
