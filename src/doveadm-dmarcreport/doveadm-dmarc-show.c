/* doveadm dmarc show: one report with everything stored of it. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strnum.h"
#include "doveadm-print.h"
#include "dmarc-compat.h"
#include "doveadm-dmarc.h"

struct show_cmd_context {
	struct doveadm_dmarc_cmd_context dctx;
	struct dmarc_query_show_key key;
	const char *archive_dir;
	struct doveadm_dmarc_resolver *resolver;
};

/* The lists (errors; records with their reasons and auth results) are
   one value each, JSON text: doveadm's print layer holds one scalar per
   field, also in its JSON output and over the HTTP API. NULL is null. */
static void json_str(string_t *dest, const char *value)
{
	if (value == NULL)
		str_append(dest, "null");
	else {
		str_append_c(dest, '"');
		json_append_escaped(dest, value);
		str_append_c(dest, '"');
	}
}

static void json_key_str(string_t *dest, const char *key, const char *value)
{
	str_printfa(dest, "\"%s\":", key);
	json_str(dest, value);
}

static const char *show_errors_json(const struct dmarc_query_show_report *report)
{
	string_t *str = t_str_new(128);
	const char *error;
	bool first = TRUE;

	str_append_c(str, '[');
	array_foreach_elem(&report->errors, error) {
		if (!first)
			str_append_c(str, ',');
		first = FALSE;
		json_str(str, error);
	}
	str_append_c(str, ']');
	return str_c(str);
}

static void show_auth_json(string_t *str,
			   const struct dmarc_query_show_record *rec,
			   const char *type)
{
	const struct dmarc_query_auth *auth;
	bool first = TRUE;

	/* "dkim" and "spf" are the policy_evaluated results */
	str_printfa(str, ",\"%s_results\":[", type);
	array_foreach(&rec->auth_results, auth) {
		if (null_strcmp(auth->type, type) != 0)
			continue;
		if (!first)
			str_append_c(str, ',');
		first = FALSE;
		str_append_c(str, '{');
		json_key_str(str, "domain", auth->domain);
		if (strcmp(type, "dkim") == 0) {
			str_append_c(str, ',');
			json_key_str(str, "selector", auth->selector);
		} else {
			str_append_c(str, ',');
			json_key_str(str, "scope", auth->scope);
		}
		str_append_c(str, ',');
		json_key_str(str, "result", auth->result);
		str_append_c(str, ',');
		json_key_str(str, "human_result", auth->human_result);
		str_append_c(str, '}');
	}
	str_append_c(str, ']');
}

static const char *
show_records_json(struct show_cmd_context *ctx,
		  const struct dmarc_query_show_report *report)
{
	const struct dmarc_query_show_record *rec;
	const struct dmarc_query_reason *reason;
	string_t *str = t_str_new(1024);
	bool first = TRUE, first_reason;

	str_append_c(str, '[');
	array_foreach(&report->record_list, rec) {
		if (!first)
			str_append_c(str, ',');
		first = FALSE;
		str_append_c(str, '{');
		json_key_str(str, "source_ip", rec->source_ip);
		if (ctx->resolver != NULL) {
			str_append_c(str, ',');
			json_key_str(str, "source_name", doveadm_dmarc_resolve(
				ctx->resolver, rec->source_ip));
		}
		str_printfa(str, ",\"source_ip_valid\":%s",
			    rec->source_ip_valid ? "true" : "false");
		str_printfa(str, ",\"count\":%"PRIu64, rec->count);
		str_append_c(str, ',');
		json_key_str(str, "disposition", rec->disposition);
		str_append_c(str, ',');
		json_key_str(str, "dkim", rec->dkim);
		str_append_c(str, ',');
		json_key_str(str, "spf", rec->spf);
		str_printfa(str, ",\"dmarc_pass\":%s",
			    rec->dmarc_pass ? "true" : "false");
		str_append(str, ",\"reasons\":[");
		first_reason = TRUE;
		array_foreach(&rec->reasons, reason) {
			if (!first_reason)
				str_append_c(str, ',');
			first_reason = FALSE;
			str_append_c(str, '{');
			json_key_str(str, "type", reason->type);
			str_append_c(str, ',');
			json_key_str(str, "comment", reason->comment);
			str_append_c(str, '}');
		}
		str_append_c(str, ']');
		str_append_c(str, ',');
		json_key_str(str, "header_from", rec->header_from);
		str_append_c(str, ',');
		json_key_str(str, "envelope_from", rec->envelope_from);
		str_append_c(str, ',');
		json_key_str(str, "envelope_to", rec->envelope_to);
		show_auth_json(str, rec, "dkim");
		show_auth_json(str, rec, "spf");
		str_append_c(str, ',');
		json_key_str(str, "extensions", rec->extensions);
		str_append_c(str, '}');
	}
	str_append_c(str, ']');
	return str_c(str);
}

static int show_report(const struct dmarc_query_show_report *report,
		       void *context)
{
	struct show_cmd_context *ctx = context;

	doveadm_dmarc_print_num(report->id);
	doveadm_dmarc_print_str(report->org_name);
	doveadm_dmarc_print_str(report->report_id);
	doveadm_dmarc_print_str(report->policy_domain);
	doveadm_dmarc_print_str(report->format);
	doveadm_dmarc_print_str(report->version);
	doveadm_print(doveadm_dmarc_time(report->date_begin));
	doveadm_print(doveadm_dmarc_time(report->date_end));
	doveadm_dmarc_print_str(report->email);
	doveadm_dmarc_print_str(report->extra_contact_info);
	doveadm_dmarc_print_str(report->generator);
	doveadm_print(show_errors_json(report));
	doveadm_dmarc_print_str(report->policy_adkim);
	doveadm_dmarc_print_str(report->policy_aspf);
	doveadm_dmarc_print_str(report->policy_p);
	doveadm_dmarc_print_str(report->policy_sp);
	doveadm_dmarc_print_str(report->policy_np);
	doveadm_print(report->have_policy_pct ?
		      t_strdup_printf("%d", report->policy_pct) : "");
	doveadm_dmarc_print_str(report->policy_fo);
	doveadm_dmarc_print_str(report->policy_testing);
	doveadm_dmarc_print_str(report->policy_discovery_method);
	doveadm_dmarc_print_str(report->extensions);
	if (report->archive_path == NULL || ctx->archive_dir == NULL)
		doveadm_dmarc_print_str(report->archive_path);
	else {
		doveadm_dmarc_print_str(t_strconcat(ctx->archive_dir, "/",
						    report->archive_path, NULL));
	}
	doveadm_dmarc_print_str(report->message_id);
	doveadm_print(doveadm_dmarc_time(report->received));
	doveadm_dmarc_print_num(report->records);
	doveadm_dmarc_print_num(report->messages);
	doveadm_dmarc_print_num(report->pass);
	/* JSON text is ASCII-safe: json_append_escaped() escapes every
	   control character */
	doveadm_print(show_records_json(ctx, report));
	return 0;
}

static int
show_read(struct doveadm_mail_cmd_context *_ctx, struct dmarc_store *store,
	  const struct dmarc_settings *set, const char **error_r)
{
	struct show_cmd_context *ctx = (struct show_cmd_context *)_ctx;
	int ret;

	ctx->archive_dir = set->archive_dir;
	if (ctx->dctx.resolve)
		ctx->resolver = doveadm_dmarc_resolver_init(store, set);
	ret = dmarc_query_show(store, &ctx->key, show_report, ctx, error_r);
	if (ctx->resolver != NULL)
		doveadm_dmarc_resolver_deinit(&ctx->resolver);
	if (ret == 0) {
		/* not this user's: doveadm's "not found" for the exit code */
		doveadm_dmarc_set_exit_code(_ctx, DOVEADM_EX_NOTFOUND);
	}
	return ret < 0 ? -1 : 0;
}

static int
cmd_dmarc_show_run(struct doveadm_mail_cmd_context *_ctx,
		   struct mail_user *user)
{
	return doveadm_dmarc_read(_ctx, user, show_read);
}

static void
cmd_dmarc_show_init(struct doveadm_mail_cmd_context *_ctx,
		    const char *const args[])
{
	struct show_cmd_context *ctx = (struct show_cmd_context *)_ctx;

	(void)doveadm_cmd_param_bool(_ctx->cctx, "resolve", &ctx->dctx.resolve);
	if (args[0] == NULL)
		doveadm_dmarc_usage_error(_ctx, "Missing the report: an id "
					  "as list prints it, or org and "
					  "report_id");
	if (args[1] == NULL) {
		if (str_to_int64(args[0], &ctx->key.id) < 0 ||
		    ctx->key.id <= 0) {
			doveadm_dmarc_usage_error(_ctx, "Not a report id: '%s'",
						  args[0]);
		}
	} else {
		if (args[2] != NULL) {
			doveadm_dmarc_usage_error(_ctx,
				"Unexpected argument '%s'", args[2]);
		}
		ctx->key.org_name = p_strdup(_ctx->pool, args[0]);
		ctx->key.report_id = p_strdup(_ctx->pool, args[1]);
	}

	doveadm_print_header("id", "Id", DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header_simple("org");
	doveadm_print_header_simple("report_id");
	doveadm_print_header_simple("domain");
	doveadm_print_header_simple("format");
	doveadm_print_header_simple("version");
	doveadm_print_header_simple("begin");
	doveadm_print_header_simple("end");
	doveadm_print_header_simple("email");
	doveadm_print_header_simple("extra_contact_info");
	doveadm_print_header_simple("generator");
	doveadm_print_header_simple("errors");
	doveadm_print_header_simple("adkim");
	doveadm_print_header_simple("aspf");
	doveadm_print_header_simple("p");
	doveadm_print_header_simple("sp");
	doveadm_print_header_simple("np");
	doveadm_print_header_simple("pct");
	doveadm_print_header_simple("fo");
	doveadm_print_header_simple("testing");
	doveadm_print_header_simple("discovery_method");
	doveadm_print_header_simple("extensions");
	doveadm_print_header_simple("archive");
	doveadm_print_header_simple("message_id");
	doveadm_print_header_simple("received");
	doveadm_print_header("record_count", "record_count",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("messages", "messages",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header("dmarc_pass", "dmarc_pass",
			     DOVEADM_PRINT_HEADER_FLAG_NUMBER);
	doveadm_print_header_simple("records");
}

static struct doveadm_mail_cmd_context *cmd_dmarc_show_alloc(void)
{
	struct show_cmd_context *ctx;

	ctx = doveadm_dmarc_cmd_alloc(struct show_cmd_context, "r");
	ctx->dctx.init = cmd_dmarc_show_init;
	ctx->dctx.ctx.v.run = cmd_dmarc_show_run;
	/* one "field: value" line each: a report has some thirty */
	doveadm_print_init(DOVEADM_PRINT_TYPE_PAGER);
	return &ctx->dctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_show = {
	.name = "dmarc show",
	.mail_cmd = cmd_dmarc_show_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"[--resolve] <id> | <org> <report_id>",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('r', "resolve", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('\0', "report", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
