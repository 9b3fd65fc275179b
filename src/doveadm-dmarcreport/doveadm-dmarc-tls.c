/* doveadm dmarc tls: SMTP TLS report results (RFC 8460), one row per
   policy, or with --group-by one row per policy domain, MX, result type,
   sending IP or day. */

#include "lib.h"
#include "doveadm-print.h"
#include "doveadm-dmarc-filter.h"
#include "doveadm-dmarc.h"
#include "dmarc-query-kinds.h"

struct tls_cmd_context {
	struct doveadm_dmarc_cmd_context dctx;
	bool grouped;
	enum dmarc_query_tls_group group;
};

static int tls_policy(const struct dmarc_query_tls_row *row,
		      void *context ATTR_UNUSED)
{
	doveadm_dmarc_print_str(row->policy_domain);
	doveadm_dmarc_print_str(row->org_name);
	doveadm_dmarc_print_str(row->report_id);
	doveadm_print(doveadm_dmarc_time(row->date_begin));
	doveadm_print(doveadm_dmarc_time(row->date_end));
	doveadm_dmarc_print_str(row->policy_type);
	doveadm_dmarc_print_str(row->mx_hosts);
	doveadm_dmarc_print_num(row->sessions);
	doveadm_dmarc_print_num(row->failures);
	doveadm_dmarc_print_rate(row->success_rate);
	doveadm_dmarc_print_str(row->failure_details);
	return 0;
}

static int tls_group(const struct dmarc_query_tls_group_row *row,
		     void *context ATTR_UNUSED)
{
	doveadm_dmarc_print_str(row->key);
	doveadm_dmarc_print_num(row->sessions);
	doveadm_dmarc_print_num(row->failures);
	doveadm_dmarc_print_rate(row->success_rate);
	return 0;
}

static int
tls_read(struct doveadm_mail_cmd_context *_ctx, struct dmarc_store *store,
	 const struct dmarc_settings *set ATTR_UNUSED, const char **error_r)
{
	struct tls_cmd_context *ctx = (struct tls_cmd_context *)_ctx;

	if (ctx->grouped) {
		return dmarc_query_tls_groups(store, &ctx->dctx.filter,
					      ctx->group, tls_group, ctx,
					      error_r);
	}
	return dmarc_query_tls(store, &ctx->dctx.filter, tls_policy, ctx,
			       error_r);
}

/* after the key, titled with the --group-by name */
static const struct doveadm_dmarc_column tls_group_columns[] = {
	{ "sessions", "Sessions", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "failures", "Failures", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "success_rate", "Success%", DOVEADM_DMARC_NUMBER_FLAGS },
};

static const struct doveadm_dmarc_column tls_columns[] = {
	{ "policy_domain", "Domain", 0 },
	{ "org", "Org", 0 },
	{ "report_id", "Report-ID", 0 },
	{ "begin", "Begin", 0 },
	{ "end", "End", 0 },
	{ "policy_type", "Policy", 0 },
	{ "mx", "MX", 0 },
	{ "sessions", "Sessions", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "failures", "Failures", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "success_rate", "Success%", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "failure_details", "Failure details", 0 },
};

static void
cmd_dmarc_tls_init(struct doveadm_mail_cmd_context *_ctx,
		   const char *const args[])
{
	struct tls_cmd_context *ctx = (struct tls_cmd_context *)_ctx;
	const char *group_by;

	if (doveadm_cmd_param_str(_ctx->cctx, "group-by", &group_by)) {
		if (!dmarc_query_tls_group_parse(group_by, &ctx->group)) {
			doveadm_dmarc_usage_error(_ctx,
				"Unknown --group-by '%s' (known: "
				"policy-domain, mx, result-type, sending-ip, "
				"day)", group_by);
		}
		ctx->grouped = TRUE;
	}
	doveadm_dmarc_parse_filter(&ctx->dctx, args);

	if (ctx->grouped) {
		doveadm_print_header("key", group_by, 0);
		doveadm_dmarc_print_headers(tls_group_columns,
					    N_ELEMENTS(tls_group_columns));
	} else {
		doveadm_dmarc_print_headers(tls_columns,
					    N_ELEMENTS(tls_columns));
	}
}

static struct doveadm_mail_cmd_context *cmd_dmarc_tls_alloc(void)
{
	struct tls_cmd_context *ctx;

	ctx = doveadm_dmarc_read_cmd_alloc(struct tls_cmd_context, "g:",
		cmd_dmarc_tls_init, tls_read, DOVEADM_PRINT_TYPE_TABLE);
	ctx->dctx.kind = "tls";
	return &ctx->dctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_tls = {
	.name = "dmarc tls",
	.mail_cmd = cmd_dmarc_tls_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"[--group-by policy-domain|mx|result-type|sending-ip|day] "
		DOVEADM_DMARC_FILTER_USAGE,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('g', "group-by", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('\0', "filter", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
