/* doveadm dmarc summary: per policy domain, how far it is from p=reject. */

#include "lib.h"
#include "str.h"
#include "doveadm-print.h"
#include "doveadm-dmarc-filter.h"
#include "doveadm-dmarc.h"

static int summary_domain(const struct dmarc_query_summary_row *row,
			  void *context ATTR_UNUSED)
{
	string_t *top = t_str_new(128);
	unsigned int i;

	for (i = 0; i < row->top_failing_count; i++) {
		if (i > 0)
			str_append(top, ", ");
		str_printfa(top, "%s (%"PRIu64")", row->top_failing[i].source_ip,
			    row->top_failing[i].messages);
	}
	doveadm_dmarc_print_str(row->policy_domain);
	doveadm_dmarc_print_num(row->reports);
	doveadm_dmarc_print_num(row->messages);
	doveadm_dmarc_print_rate(row->pass_rate);
	doveadm_dmarc_print_rate(row->dkim_rate);
	doveadm_dmarc_print_rate(row->spf_rate);
	doveadm_dmarc_print_str(str_c(top));
	doveadm_dmarc_print_str(row->verdict);
	return 0;
}

static int
summary_read(struct doveadm_mail_cmd_context *_ctx, struct dmarc_store *store,
	     const struct dmarc_settings *set ATTR_UNUSED, const char **error_r)
{
	struct doveadm_dmarc_cmd_context *dctx =
		(struct doveadm_dmarc_cmd_context *)_ctx;

	return dmarc_query_summary(store, &dctx->filter, summary_domain, dctx,
				   error_r);
}

static int
cmd_dmarc_summary_run(struct doveadm_mail_cmd_context *_ctx,
		      struct mail_user *user)
{
	return doveadm_dmarc_read(_ctx, user, summary_read);
}

static void
cmd_dmarc_summary_init(struct doveadm_mail_cmd_context *_ctx,
		       const char *const args[])
{
	doveadm_dmarc_parse_filter((struct doveadm_dmarc_cmd_context *)_ctx,
				   args);
	doveadm_print_header("domain", "Domain", 0);
	doveadm_print_header("reports", "Reports", DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("messages", "Messages", DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("pass_rate", "DMARC%", DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("dkim_aligned_rate", "DKIM%",
			     DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("spf_aligned_rate", "SPF%",
			     DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("top_failing", "Top failing sources", 0);
	doveadm_print_header("verdict", "Verdict", 0);
}

static struct doveadm_mail_cmd_context *cmd_dmarc_summary_alloc(void)
{
	struct doveadm_dmarc_cmd_context *dctx;

	dctx = doveadm_dmarc_cmd_alloc(struct doveadm_dmarc_cmd_context, "");
	dctx->init = cmd_dmarc_summary_init;
	dctx->ctx.v.run = cmd_dmarc_summary_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &dctx->ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_summary = {
	.name = "dmarc summary",
	.mail_cmd = cmd_dmarc_summary_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX DOVEADM_DMARC_FILTER_USAGE,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('\0', "filter", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
