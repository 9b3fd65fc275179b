/* doveadm dmarc summary: per policy domain, how far it is from p=reject. */

#include "lib.h"
#include "str.h"
#include "hash.h"
#include "doveadm-print.h"
#include "doveadm-dmarc-filter.h"
#include "doveadm-dmarc.h"
#include "dmarc-query-kinds.h"

struct summary_context {
	struct dmarc_store *store;
	/* --resolve: names after the top failing sources */
	struct doveadm_dmarc_resolver *resolver;
	const struct dmarc_query_filter *filter;
	/* the domains printed from aggregate reports */
	HASH_TABLE(const char *, void *) domains;
	pool_t pool;
	const char *error;
};

static int summary_domain(const struct dmarc_query_summary_row *row,
			  void *context)
{
	struct summary_context *ctx = context;
	string_t *top = t_str_new(128);
	const char *domain, *name;
	uint64_t tls_sessions;
	double tls_rate;
	unsigned int i;

	/* the TLS success rate where TLS reports exist */
	if (dmarc_query_tls_domain_rate(ctx->store, ctx->filter,
					row->policy_domain, &tls_sessions,
					&tls_rate, &ctx->error) < 0) {
		ctx->error = t_strdup(ctx->error);
		return -1;
	}

	for (i = 0; i < row->top_failing_count; i++) {
		if (i > 0)
			str_append(top, ", ");
		str_append(top, row->top_failing[i].source_ip);
		/* --resolve: "192.0.2.1 mail.example.com (120)" */
		name = ctx->resolver == NULL ? "" :
			doveadm_dmarc_resolve(ctx->resolver,
					      row->top_failing[i].source_ip);
		if (*name != '\0')
			str_printfa(top, " %s", name);
		str_printfa(top, " (%"PRIu64")", row->top_failing[i].messages);
	}
	domain = p_strdup(ctx->pool, row->policy_domain);
	hash_table_insert(ctx->domains, domain, POINTER_CAST(1));
	doveadm_dmarc_print_str(row->policy_domain);
	doveadm_dmarc_print_num(row->reports);
	doveadm_dmarc_print_num(row->messages);
	doveadm_dmarc_print_rate(row->pass_rate);
	doveadm_dmarc_print_rate(row->dkim_rate);
	doveadm_dmarc_print_rate(row->spf_rate);
	doveadm_dmarc_print_str(str_c(top));
	doveadm_dmarc_print_str(row->verdict);
	if (tls_sessions > 0)
		doveadm_dmarc_print_rate(tls_rate);
	else
		doveadm_print("");
	return 0;
}

/* A policy domain with TLS reports and no aggregate report: a row of its
   own, so that its TLS success rate is shown too. */
static int summary_tls_domain(const struct dmarc_query_tls_group_row *row,
			      void *context)
{
	struct summary_context *ctx = context;

	if (*row->key == '\0' || hash_table_lookup(ctx->domains, row->key) != NULL)
		return 0;
	doveadm_dmarc_print_str(row->key);
	doveadm_dmarc_print_num(0);
	doveadm_dmarc_print_num(0);
	doveadm_dmarc_print_rate(0);
	doveadm_dmarc_print_rate(0);
	doveadm_dmarc_print_rate(0);
	doveadm_dmarc_print_str("");
	doveadm_dmarc_print_str("no aggregate reports, TLS reports only");
	doveadm_dmarc_print_rate(row->success_rate);
	return 0;
}

static int
summary_read(struct doveadm_mail_cmd_context *_ctx, struct dmarc_store *store,
	     const struct dmarc_settings *set, const char **error_r)
{
	struct doveadm_dmarc_cmd_context *dctx =
		(struct doveadm_dmarc_cmd_context *)_ctx;
	struct summary_context ctx = {
		.store = store, .filter = &dctx->filter,
	};
	int ret;

	if (dctx->resolve)
		ctx.resolver = doveadm_dmarc_resolver_init(store, set);
	ctx.pool = pool_alloconly_create("dmarc summary domains", 1024);
	hash_table_create(&ctx.domains, ctx.pool, 0, str_hash, strcmp);
	ret = dmarc_query_summary(store, &dctx->filter, summary_domain, &ctx,
				  error_r);
	if (ret < 0 && ctx.error != NULL)
		*error_r = ctx.error;
	if (ret == 0) {
		ret = dmarc_query_tls_groups(store, &dctx->filter,
			DMARC_QUERY_TLS_GROUP_POLICY_DOMAIN,
			summary_tls_domain, &ctx, error_r);
	}
	hash_table_destroy(&ctx.domains);
	pool_unref(&ctx.pool);
	if (ctx.resolver != NULL)
		doveadm_dmarc_resolver_deinit(&ctx.resolver);
	return ret;
}

static const struct doveadm_dmarc_column summary_columns[] = {
	{ "domain", "Domain", 0 },
	{ "reports", "Reports", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "messages", "Messages", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "pass_rate", "DMARC%", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "dkim_aligned_rate", "DKIM%", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "spf_aligned_rate", "SPF%", DOVEADM_DMARC_NUMBER_FLAGS },
	{ "top_failing", "Top failing sources", 0 },
	{ "verdict", "Verdict", 0 },
	/* last, so that the columns before keep their places for scripts;
	   a string: empty for a domain without TLS reports */
	{ "tls_success_rate", "TLS%", DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY },
};

static void
cmd_dmarc_summary_init(struct doveadm_mail_cmd_context *_ctx,
		       const char *const args[])
{
	struct doveadm_dmarc_cmd_context *dctx =
		(struct doveadm_dmarc_cmd_context *)_ctx;

	(void)doveadm_cmd_param_bool(_ctx->cctx, "resolve", &dctx->resolve);
	doveadm_dmarc_parse_filter(dctx, args);
	doveadm_dmarc_print_headers(summary_columns,
				    N_ELEMENTS(summary_columns));
}

static struct doveadm_mail_cmd_context *cmd_dmarc_summary_alloc(void)
{
	struct doveadm_dmarc_cmd_context *dctx;

	dctx = doveadm_dmarc_read_cmd_alloc(struct doveadm_dmarc_cmd_context,
		"r", cmd_dmarc_summary_init, summary_read,
		DOVEADM_PRINT_TYPE_TABLE);
	return &dctx->ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_summary = {
	.name = "dmarc summary",
	.mail_cmd = cmd_dmarc_summary_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX "[--resolve] "
		DOVEADM_DMARC_FILTER_USAGE,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('r', "resolve", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('\0', "filter", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
