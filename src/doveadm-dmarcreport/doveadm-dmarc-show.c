/* doveadm dmarc show: one report of any kind with everything stored of
   it, streamed: a record is printed as it is read. */

#include "lib.h"
#include "str.h"
#include "strnum.h"
#include "ostream.h"
#include "doveadm-print.h"
#include "dmarc-compat.h"
#include "doveadm-dmarc.h"

struct show_cmd_context {
	struct doveadm_dmarc_cmd_context dctx;
	struct dmarc_query_show_key key;
	const char *archive_dir;
	struct doveadm_dmarc_resolver *resolver;
	/* -f was given (or the HTTP API's JSON): not the pager */
	bool format_forced;
	/* JSON output is written here, not through doveadm's print layer */
	bool json;
	/* json: the reports written so far (of all users) */
	unsigned int json_reports;
	/* json: -A or a user mask, each object says whose it is */
	bool json_username;
	const char *username;
	/* users read, and the reports shown of all of them: "not found"
	   (68) is decided at the end, when no user had the report */
	unsigned int users_read, reports_shown;

	/* the tree walk: depth 1 is the report's own fields */
	unsigned int depth;
	/* json: whether a value was written at each depth */
	bool have_value[16];
	/* text: the list item being built, and whether a list had items */
	string_t *item;
	bool list_items;
};

/* --- JSON, written straight to doveadm's output ---
   doveadm's print layer holds one scalar per field, in its JSON output
   and over the HTTP API alike (Dovecot 2.3 and 2.4 have no header flag
   for a raw JSON value): show writes the JSON itself, one object per
   report with real lists, and keeps the print layer out of it. */

/* "value", escaped */
static const char *json_quote(const char *value)
{
	string_t *str = t_str_new(strlen(value) + 16);

	str_append_c(str, '"');
	json_append_escaped(str, value);
	str_append_c(str, '"');
	return str_c(str);
}

static void json_key(struct show_cmd_context *ctx, const char *key)
{
	string_t *str = t_str_new(64);

	i_assert(ctx->depth < N_ELEMENTS(ctx->have_value));
	if (ctx->have_value[ctx->depth])
		str_append_c(str, ',');
	ctx->have_value[ctx->depth] = TRUE;
	if (key != NULL) {
		str_append_c(str, '"');
		json_append_escaped(str, key);
		str_append(str, "\":");
	}
	o_stream_nsend(doveadm_print_ostream, str_data(str), str_len(str));
}

static void json_open(struct show_cmd_context *ctx, const char *key,
		      char c)
{
	if (ctx->depth == 0) {
		/* a report: the array of all users' reports */
		o_stream_nsend_str(doveadm_print_ostream,
				   ctx->json_reports++ == 0 ? "[" : ",");
	} else {
		json_key(ctx, key);
	}
	o_stream_nsend(doveadm_print_ostream, &c, 1);
	ctx->depth++;
	ctx->have_value[ctx->depth] = FALSE;
	if (ctx->depth == 1 && ctx->json_username) {
		/* -A or a user mask: whose report, as doveadm's own
		   JSON rows say it */
		json_key(ctx, "username");
		o_stream_nsend_str(doveadm_print_ostream,
				   json_quote(ctx->username));
	}
}

static void json_close(struct show_cmd_context *ctx, char c)
{
	i_assert(ctx->depth > 0);
	ctx->depth--;
	o_stream_nsend(doveadm_print_ostream, &c, 1);
	/* a report of any size: out in blocks, not held until the end */
	if (o_stream_get_buffer_used_size(doveadm_print_ostream) >=
	    IO_BLOCK_SIZE) {
		o_stream_uncork(doveadm_print_ostream);
		o_stream_cork(doveadm_print_ostream);
	}
}

static void json_value(struct show_cmd_context *ctx, const char *key,
		       const char *json)
{
	json_key(ctx, key);
	o_stream_nsend_str(doveadm_print_ostream, json);
}

/* --- text: doveadm's print layer, one field per report field ---
   A list (errors, records, policies) is one field, streamed an item at a
   time: "key=value" pairs, nested lists in [], objects in {}. The pager
   (the default) puts each item on a line of its own; the other
   formatters keep a field on one line, items separated by "; ". */

static void text_sep(struct show_cmd_context *ctx)
{
	char last;

	if (str_len(ctx->item) == 0)
		return;
	last = str_c(ctx->item)[str_len(ctx->item) - 1];
	if (last != '[' && last != '{')
		str_append_c(ctx->item, ctx->depth >= 4 ? ',' : ' ');
	if (ctx->depth >= 4 && last != '[' && last != '{')
		str_append_c(ctx->item, ' ');
}

static void text_key(struct show_cmd_context *ctx, const char *key)
{
	text_sep(ctx);
	if (key != NULL)
		str_printfa(ctx->item, "%s=", key);
}

static void text_item_end(struct show_cmd_context *ctx)
{
	if (ctx->list_items && ctx->format_forced)
		doveadm_print_stream("; ", 2);
	if (!ctx->format_forced)
		str_insert(ctx->item, 0, "  ");
	if (!ctx->format_forced)
		str_append_c(ctx->item, '\n');
	doveadm_print_stream(str_data(ctx->item), str_len(ctx->item));
	str_truncate(ctx->item, 0);
	ctx->list_items = TRUE;
}

static void text_value(struct show_cmd_context *ctx, const char *key,
		       const char *value)
{
	if (ctx->depth == 1) {
		doveadm_dmarc_print_str(value);
		return;
	}
	text_key(ctx, key);
	str_append(ctx->item, value == NULL ? "" :
		   dmarc_query_escape(value));
	if (ctx->depth == 2)
		text_item_end(ctx);
}

/* --- the tree from dmarc_query_show() --- */

static void show_object_begin(void *context, const char *key)
{
	struct show_cmd_context *ctx = context;

	if (ctx->json) {
		json_open(ctx, key, '{');
		return;
	}
	if (ctx->depth >= 2) {
		text_key(ctx, key);
		if (ctx->depth >= 3)
			str_append_c(ctx->item, '{');
	}
	ctx->depth++;
}

static void show_object_end(void *context)
{
	struct show_cmd_context *ctx = context;

	if (ctx->json) {
		json_close(ctx, '}');
		return;
	}
	ctx->depth--;
	if (ctx->depth >= 3)
		str_append_c(ctx->item, '}');
	else if (ctx->depth == 2)
		text_item_end(ctx);
}

static void show_list_begin(void *context, const char *key)
{
	struct show_cmd_context *ctx = context;

	if (ctx->json) {
		json_open(ctx, key, '[');
		return;
	}
	if (ctx->depth == 1)
		ctx->list_items = FALSE;
	else {
		text_key(ctx, key);
		str_append_c(ctx->item, '[');
	}
	ctx->depth++;
}

static void show_list_end(void *context)
{
	struct show_cmd_context *ctx = context;

	if (ctx->json) {
		json_close(ctx, ']');
		return;
	}
	ctx->depth--;
	if (ctx->depth >= 2)
		str_append_c(ctx->item, ']');
	else if (ctx->list_items)
		doveadm_print_stream("", 0);
	else
		doveadm_print("");
}

static void show_str(void *context, const char *key, const char *value)
{
	struct show_cmd_context *ctx = context;

	if (ctx->depth == 1 && value != NULL && ctx->archive_dir != NULL &&
	    strcmp(key, "archive") == 0)
		value = t_strconcat(ctx->archive_dir, "/", value, NULL);
	if (ctx->json) {
		json_value(ctx, key, value == NULL ? "null" :
			   json_quote(value));
	} else {
		text_value(ctx, key, value);
	}
	if (ctx->depth == 3 && ctx->resolver != NULL && value != NULL &&
	    strcmp(key, "source_ip") == 0) {
		/* --resolve: a record's source gets its name */
		show_str(ctx, "source_name",
			 doveadm_dmarc_resolve(ctx->resolver, value));
	}
}

static void show_num(void *context, const char *key, int64_t value)
{
	struct show_cmd_context *ctx = context;
	const char *str = t_strdup_printf("%"PRId64, value);

	if (ctx->json)
		json_value(ctx, key, str);
	else
		text_value(ctx, key, str);
}

static void show_bool(void *context, const char *key, bool value)
{
	struct show_cmd_context *ctx = context;
	const char *str = value ? "true" : "false";

	if (ctx->json)
		json_value(ctx, key, str);
	else
		text_value(ctx, key, str);
}

static void show_time(void *context, const char *key, int64_t value)
{
	show_str(context, key, doveadm_dmarc_time(value));
}

static const struct dmarc_query_show_output show_output = {
	.object_begin = show_object_begin,
	.object_end = show_object_end,
	.list_begin = show_list_begin,
	.list_end = show_list_end,
	.str = show_str,
	.num = show_num,
	.boolean = show_bool,
	.time = show_time,
};

static int
show_read(struct doveadm_mail_cmd_context *_ctx, struct dmarc_store *store,
	  const struct dmarc_settings *set, const char **error_r)
{
	struct show_cmd_context *ctx = (struct show_cmd_context *)_ctx;
	int ret;

	ctx->archive_dir = set->archive_dir;
	if (ctx->dctx.resolve)
		ctx->resolver = doveadm_dmarc_resolver_init(store, set);
	ctx->depth = 0;
	ret = dmarc_query_show(store, &ctx->key, &show_output, ctx, error_r);
	if (ctx->resolver != NULL)
		doveadm_dmarc_resolver_deinit(&ctx->resolver);
	if (ret > 0)
		ctx->reports_shown++;
	return ret < 0 ? -1 : 0;
}

static int
cmd_dmarc_show_run(struct doveadm_mail_cmd_context *_ctx,
		   struct mail_user *user)
{
	struct show_cmd_context *ctx = (struct show_cmd_context *)_ctx;

	ctx->username = p_strdup(_ctx->pool, user->username);
	/* in JSON show prints no header: one is doveadm's username */
	ctx->json_username = ctx->json &&
		doveadm_print_get_headers_count() > 0;
	/* a user without a database counts too: it lacks the report */
	ctx->users_read++;
	return doveadm_dmarc_read(_ctx, user, show_read);
}

static void cmd_dmarc_show_deinit(struct doveadm_mail_cmd_context *_ctx)
{
	struct show_cmd_context *ctx = (struct show_cmd_context *)_ctx;
	struct ostream *output = doveadm_print_ostream;

	/* -A or a user mask: another user's copy is the one asked for, so
	   "not found" only when no user had it. Unless a user was read here
	   (not an unknown user, not one a doveadm server read), doveadm's
	   own code stands. An earlier error's code stays (doveadm's rule). */
	if (ctx->users_read > 0 && ctx->reports_shown == 0)
		doveadm_dmarc_set_exit_code(_ctx, DOVEADM_EX_NOTFOUND);
	if (!ctx->json)
		return;
	o_stream_nsend_str(output, ctx->json_reports == 0 ? "[]" : "]");
	/* The print layer printed nothing; ended without an output it
	   writes nothing either (its JSON formatter would add an empty
	   array), and later calls of doveadm's find it ended. */
	doveadm_print_ostream = NULL;
	doveadm_print_deinit();
	doveadm_print_ostream = output;
}

static void
cmd_dmarc_show_init(struct doveadm_mail_cmd_context *_ctx,
		    const char *const args[])
{
	struct show_cmd_context *ctx = (struct show_cmd_context *)_ctx;
	const char *const *fields, *type;

	(void)doveadm_cmd_param_bool(_ctx->cctx, "resolve", &ctx->dctx.resolve);
	if (doveadm_cmd_param_str(_ctx->cctx, "type", &type)) {
		if (strcmp(type, "aggregate") == 0)
			ctx->key.kind = DMARC_QUERY_KIND_AGGREGATE;
		else if (strcmp(type, "tls") == 0)
			ctx->key.kind = DMARC_QUERY_KIND_TLS;
		else if (strcmp(type, "failure") == 0)
			ctx->key.kind = DMARC_QUERY_KIND_FAILURE;
		else {
			doveadm_dmarc_usage_error(_ctx, "Unknown --type '%s' "
				"(known: aggregate, tls, failure)", type);
		}
	}
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

	ctx->json = doveadm_dmarc_output_is_json(_ctx);
	if (ctx->json) {
		/* doveadm adds a username header of its own for -A and
		   user masks (before or after init): each object then
		   says whose report it is */
		return;
	}
	ctx->item = str_new(_ctx->pool, 256);
	for (fields = dmarc_query_show_fields(ctx->key.kind);
	     *fields != NULL; fields++)
		doveadm_print_header_simple(*fields);
}

static struct doveadm_mail_cmd_context *cmd_dmarc_show_alloc(void)
{
	struct show_cmd_context *ctx;

	ctx = doveadm_dmarc_cmd_alloc(struct show_cmd_context, "rt:");
	ctx->dctx.init = cmd_dmarc_show_init;
	ctx->dctx.ctx.v.run = cmd_dmarc_show_run;
	ctx->dctx.ctx.v.deinit = cmd_dmarc_show_deinit;
	/* -f on the command line, or the HTTP API, chose already */
	ctx->format_forced = doveadm_print_is_initialized();
	/* one "field: value" line each: a report has some thirty */
	doveadm_print_init(DOVEADM_PRINT_TYPE_PAGER);
	return &ctx->dctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_show = {
	.name = "dmarc show",
	.mail_cmd = cmd_dmarc_show_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX
		"[--resolve] [--type aggregate|tls|failure] "
		"<id> | <org> <report_id>",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('r', "resolve", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('t', "type", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('\0', "report", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
