/* doveadm dmarc query: record rows, or with --group-by one row per
   source, domain, org, header_from, day or disposition. */

#include "lib.h"
#include "doveadm-print.h"
#include "doveadm-dmarc-filter.h"
#include "doveadm-dmarc.h"

#include <ctype.h>

struct query_cmd_context {
	struct doveadm_dmarc_cmd_context dctx;
	bool grouped;
	enum dmarc_query_group group;
};

static int query_record(const struct dmarc_query_record_row *row,
			void *context ATTR_UNUSED)
{
	doveadm_dmarc_print_str(row->policy_domain);
	doveadm_dmarc_print_str(row->org_name);
	doveadm_print(doveadm_dmarc_time(row->date_begin));
	doveadm_dmarc_print_str(row->source_ip);
	doveadm_dmarc_print_num(row->count);
	doveadm_dmarc_print_str(row->disposition);
	doveadm_dmarc_print_str(row->dkim);
	doveadm_dmarc_print_str(row->spf);
	doveadm_print(row->dmarc_pass ? "pass" : "fail");
	doveadm_dmarc_print_str(row->header_from);
	doveadm_dmarc_print_str(row->envelope_from);
	doveadm_dmarc_print_str(row->auth);
	return 0;
}

static int query_group(const struct dmarc_query_group_row *row,
		       void *context ATTR_UNUSED)
{
	doveadm_dmarc_print_str(row->key);
	doveadm_dmarc_print_num(row->messages);
	doveadm_dmarc_print_num(row->pass);
	doveadm_dmarc_print_num(row->fail);
	doveadm_dmarc_print_rate(row->pass_rate);
	return 0;
}

static int
query_read(struct doveadm_mail_cmd_context *_ctx, struct dmarc_store *store,
	   const struct dmarc_settings *set ATTR_UNUSED, const char **error_r)
{
	struct query_cmd_context *ctx = (struct query_cmd_context *)_ctx;

	if (ctx->grouped) {
		return dmarc_query_groups(store, &ctx->dctx.filter, ctx->group,
					  query_group, ctx, error_r);
	}
	return dmarc_query_records(store, &ctx->dctx.filter, query_record,
				   ctx, error_r);
}

static int
cmd_dmarc_query_run(struct doveadm_mail_cmd_context *_ctx,
		    struct mail_user *user)
{
	return doveadm_dmarc_read(_ctx, user, query_read);
}

static void
cmd_dmarc_query_init(struct doveadm_mail_cmd_context *_ctx,
		     const char *const args[])
{
	struct query_cmd_context *ctx = (struct query_cmd_context *)_ctx;
	const char *group_by;

	if (doveadm_cmd_param_str(_ctx->cctx, "group-by", &group_by)) {
		if (!dmarc_query_group_parse(group_by, &ctx->group)) {
			doveadm_dmarc_usage_error(_ctx,
				"Unknown --group-by '%s' (known: source, "
				"domain, org, header_from, day, disposition)",
				group_by);
		}
		ctx->grouped = TRUE;
	}
	doveadm_dmarc_parse_filter(&ctx->dctx, args);

	if (ctx->grouped) {
		const char *name = dmarc_query_group_name(ctx->group);

		/* "source" -> "Source", as the other titles */
		doveadm_print_header(name, p_strdup_printf(_ctx->pool, "%c%s",
				     i_toupper(name[0]), name + 1), 0);
		doveadm_print_header("messages", "Messages",
				     DOVEADM_DMARC_NUMBER_FLAGS);
		doveadm_print_header("pass", "Pass", DOVEADM_DMARC_NUMBER_FLAGS);
		doveadm_print_header("fail", "Fail", DOVEADM_DMARC_NUMBER_FLAGS);
		doveadm_print_header("pass_rate", "Pass%",
				     DOVEADM_DMARC_NUMBER_FLAGS);
		return;
	}
	doveadm_print_header("domain", "Domain", 0);
	doveadm_print_header("org", "Org", 0);
	doveadm_print_header("begin", "Begin", 0);
	doveadm_print_header("source_ip", "Source", 0);
	doveadm_print_header("count", "Count", DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("disposition", "Disposition", 0);
	doveadm_print_header("dkim", "DKIM", 0);
	doveadm_print_header("spf", "SPF", 0);
	doveadm_print_header("dmarc", "DMARC", 0);
	doveadm_print_header("header_from", "Header-From", 0);
	doveadm_print_header("envelope_from", "Envelope-From", 0);
	doveadm_print_header("auth", "Auth results", 0);
}

static struct doveadm_mail_cmd_context *cmd_dmarc_query_alloc(void)
{
	struct query_cmd_context *ctx;

	ctx = doveadm_dmarc_cmd_alloc(struct query_cmd_context, "g:");
	ctx->dctx.init = cmd_dmarc_query_init;
	ctx->dctx.ctx.v.run = cmd_dmarc_query_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->dctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_query = {
	.name = "dmarc query",
	.mail_cmd = cmd_dmarc_query_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"[--group-by source|domain|org|header_from|day|disposition] "
		DOVEADM_DMARC_FILTER_USAGE,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('g', "group-by", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('\0', "filter", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
