/* doveadm dmarc list: one row per stored report of every kind: aggregate
   reports, then SMTP TLS reports, then failure reports. */

#include "lib.h"
#include "str.h"
#include "doveadm-print.h"
#include "doveadm-dmarc-filter.h"
#include "doveadm-dmarc.h"
#include "dmarc-query-kinds.h"

struct list_cmd_context {
	struct doveadm_dmarc_cmd_context dctx;
	const char *archive_dir;
};

/* "p=reject sp=none pct=100", RFC 9990: "p=reject np=reject testing=n" */
static const char *list_policy(const struct dmarc_query_report_row *row)
{
	string_t *str = t_str_new(64);

	if (row->policy_p != NULL)
		str_printfa(str, " p=%s", row->policy_p);
	if (row->policy_sp != NULL)
		str_printfa(str, " sp=%s", row->policy_sp);
	if (row->policy_np != NULL)
		str_printfa(str, " np=%s", row->policy_np);
	if (row->policy_pct >= 0)
		str_printfa(str, " pct=%d", row->policy_pct);
	if (row->policy_testing != NULL)
		str_printfa(str, " testing=%s", row->policy_testing);
	return str_len(str) == 0 ? "" : str_c(str) + 1;
}

static int list_kind(const struct dmarc_query_kind_row *row, void *context)
{
	struct list_cmd_context *ctx = context;

	/* ids are per type: show --type tls|failure <id> */
	doveadm_dmarc_print_num(row->id);
	doveadm_dmarc_print_str(row->org_name);
	doveadm_dmarc_print_str(row->report_id);
	doveadm_dmarc_print_str(row->domain);
	doveadm_print(doveadm_dmarc_time(row->date_begin));
	doveadm_print(doveadm_dmarc_time(row->date_end));
	doveadm_dmarc_print_num(row->records);
	doveadm_dmarc_print_num(row->messages);
	doveadm_dmarc_print_num(row->pass);
	doveadm_dmarc_print_str(row->policy);
	doveadm_dmarc_print_archive(ctx->archive_dir, row->archive_path);
	doveadm_print(row->type);
	return 0;
}

/* An aggregate report: the same columns */
static int list_report(const struct dmarc_query_report_row *row, void *context)
{
	const struct dmarc_query_kind_row kind_row = {
		.type = "aggregate",
		.id = row->id,
		.org_name = row->org_name,
		.report_id = row->report_id,
		.domain = row->policy_domain,
		.date_begin = row->date_begin,
		.date_end = row->date_end,
		.records = row->records,
		.messages = row->messages,
		.pass = row->pass,
		.policy = list_policy(row),
		.archive_path = row->archive_path,
	};

	return list_kind(&kind_row, context);
}

static int
list_read(struct doveadm_mail_cmd_context *_ctx, struct dmarc_store *store,
	  const struct dmarc_settings *set, const char **error_r)
{
	struct list_cmd_context *ctx = (struct list_cmd_context *)_ctx;

	ctx->archive_dir = set->archive_dir;
	if (dmarc_query_list(store, &ctx->dctx.filter, list_report, ctx,
			     error_r) < 0)
		return -1;
	return dmarc_query_list_kinds(store, &ctx->dctx.filter, list_kind,
				      ctx, error_r);
}

static const struct doveadm_dmarc_column list_columns[] = {
	/* with type, what doveadm dmarc show takes */
	{ "id", "Id", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "org", "Org", 0 },
	{ "report_id", "Report-ID", 0 },
	{ "domain", "Domain", 0 },
	{ "begin", "Begin", 0 },
	{ "end", "End", 0 },
	{ "records", "Records", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "messages", "Messages", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "dmarc_pass", "Pass", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "policy", "Policy", 0 },
	{ "archive", "Archive", 0 },
	/* last: the columns before it keep their places for scripts */
	{ "type", "Type", 0 },
};

static void
cmd_dmarc_list_init(struct doveadm_mail_cmd_context *_ctx,
		    const char *const args[])
{
	struct list_cmd_context *ctx = (struct list_cmd_context *)_ctx;

	doveadm_dmarc_parse_filter(&ctx->dctx, args);
	doveadm_dmarc_print_headers(list_columns, N_ELEMENTS(list_columns));
}

static struct doveadm_mail_cmd_context *cmd_dmarc_list_alloc(void)
{
	struct list_cmd_context *ctx;

	ctx = doveadm_dmarc_read_cmd_alloc(struct list_cmd_context, "L:s:",
		cmd_dmarc_list_init, list_read, DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->dctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_list = {
	.name = "dmarc list",
	.mail_cmd = cmd_dmarc_list_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"[--sort begin|messages] [--limit <n>] "
		DOVEADM_DMARC_FILTER_USAGE,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('s', "sort", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('L', "limit", CMD_PARAM_INT64, 0)
DOVEADM_CMD_PARAM('\0', "filter", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
