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
	struct doveadm_dmarc_resolver *resolver;
};

static int query_record(const struct dmarc_query_record_row *row,
			void *context)
{
	struct query_cmd_context *ctx = context;

	doveadm_dmarc_print_num(row->report);
	doveadm_dmarc_print_str(row->policy_domain);
	doveadm_dmarc_print_str(row->org_name);
	doveadm_print(doveadm_dmarc_time(row->date_begin));
	doveadm_print(doveadm_dmarc_time(row->date_end));
	doveadm_dmarc_print_str(row->source_ip);
	if (ctx->resolver != NULL) {
		doveadm_dmarc_print_str(doveadm_dmarc_resolve(ctx->resolver,
							      row->source_ip));
	}
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
	   const struct dmarc_settings *set, const char **error_r)
{
	struct query_cmd_context *ctx = (struct query_cmd_context *)_ctx;
	int ret;

	if (ctx->grouped) {
		return dmarc_query_groups(store, &ctx->dctx.filter, ctx->group,
					  query_group, ctx, error_r);
	}
	if (ctx->dctx.resolve)
		ctx->resolver = doveadm_dmarc_resolver_init(store, set);
	ret = dmarc_query_records(store, &ctx->dctx.filter, query_record,
				  ctx, error_r);
	if (ctx->resolver != NULL)
		doveadm_dmarc_resolver_deinit(&ctx->resolver);
	return ret;
}

/* after the group, titled with its name */
static const struct doveadm_dmarc_column query_group_columns[] = {
	{ "messages", "Messages", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "pass", "Pass", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "fail", "Fail", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "pass_rate", "Pass%", DOVEADM_DMARC_NUMBER_FLAGS },
};

/* up to the source; --resolve puts its name after it */
static const struct doveadm_dmarc_column query_columns[] = {
	/* the report's id, as list prints it and show takes it */
	{ "report", "Report", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "domain", "Domain", 0 },
	{ "org", "Org", 0 },
	{ "begin", "Begin", 0 },
	{ "end", "End", 0 },
	{ "source_ip", "Source", 0 },
};

static const struct doveadm_dmarc_column query_record_columns[] = {
	{ "count", "Count", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "disposition", "Disposition", 0 },
	{ "dkim", "DKIM", 0 },
	{ "spf", "SPF", 0 },
	{ "dmarc", "DMARC", 0 },
	{ "header_from", "Header-From", 0 },
	{ "envelope_from", "Envelope-From", 0 },
	{ "auth", "Auth results", 0 },
};

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
	(void)doveadm_cmd_param_bool(_ctx->cctx, "resolve", &ctx->dctx.resolve);
	if (ctx->grouped && ctx->dctx.resolve) {
		doveadm_dmarc_usage_error(_ctx, "--resolve names the sources "
					  "of records, not of groups");
	}
	doveadm_dmarc_parse_filter(&ctx->dctx, args);

	if (ctx->grouped) {
		const char *name = dmarc_query_group_name(ctx->group);

		/* "source" -> "Source", as the other titles */
		doveadm_print_header(name, p_strdup_printf(_ctx->pool, "%c%s",
				     i_toupper(name[0]), name + 1), 0);
		doveadm_dmarc_print_headers(query_group_columns,
					    N_ELEMENTS(query_group_columns));
		return;
	}
	doveadm_dmarc_print_headers(query_columns, N_ELEMENTS(query_columns));
	if (ctx->dctx.resolve)
		doveadm_print_header("source_name", "Source name", 0);
	doveadm_dmarc_print_headers(query_record_columns,
				    N_ELEMENTS(query_record_columns));
}

static struct doveadm_mail_cmd_context *cmd_dmarc_query_alloc(void)
{
	struct query_cmd_context *ctx;

	ctx = doveadm_dmarc_read_cmd_alloc(struct query_cmd_context, "g:L:s:r",
		cmd_dmarc_query_init, query_read, DOVEADM_PRINT_TYPE_TABLE);
	ctx->dctx.kind = "aggregate";
	return &ctx->dctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_query = {
	.name = "dmarc query",
	.mail_cmd = cmd_dmarc_query_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"[--group-by source|domain|org|header_from|day|disposition] "
		"[--sort begin|messages|source] [--limit <n>] [--resolve] "
		DOVEADM_DMARC_FILTER_USAGE,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('g', "group-by", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('s', "sort", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('L', "limit", CMD_PARAM_INT64, 0)
DOVEADM_CMD_PARAM('r', "resolve", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('\0', "filter", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
