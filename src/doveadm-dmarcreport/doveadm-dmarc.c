/* The doveadm door: plugin entry points, the command table, and what the
   commands share (context, filter words, settings and database per user,
   output helpers). */

#include "lib.h"
#include "ioloop.h"
#include "module-dir.h"
#include "master-service-private.h"
#include "doveadm.h"
#include "doveadm-print.h"
#include "doveadm-mail.h"
#include "dmarc-compat.h"
#include "doveadm-dmarc-filter.h"
#include "dmarc-log.h"
#include "doveadm-dmarc.h"

#include <stdio.h>
#include <time.h>

const char *doveadm_dmarcreport_plugin_version = DOVECOT_ABI_VERSION;

/* A new command is one file and one line here. */
static struct doveadm_cmd_ver2 *const dmarc_cmds[] = {
	&doveadm_dmarc_cmd_list,
	&doveadm_dmarc_cmd_show,
	&doveadm_dmarc_cmd_query,
	&doveadm_dmarc_cmd_summary,
	&doveadm_dmarc_cmd_import,
	&doveadm_dmarc_cmd_expire,
	&doveadm_dmarc_cmd_report,
	&doveadm_dmarc_cmd_tls,
	&doveadm_dmarc_cmd_failures,
};

static void doveadm_dmarc_cmd_init(DMARC_COMPAT_DOVEADM_INIT_PARAMS)
{
	struct doveadm_dmarc_cmd_context *dctx =
		(struct doveadm_dmarc_cmd_context *)ctx;

	if (dctx->init != NULL)
		dctx->init(ctx, DMARC_COMPAT_DOVEADM_INIT_ARGS);
}

bool doveadm_dmarc_output_is_json(struct doveadm_mail_cmd_context *ctx)
{
	char **argv = master_service->argv;
	const char *format = NULL, *p, *opt, *value;
	int i;

	switch (ctx->cctx->conn_type) {
	case DOVEADM_CONNECTION_TYPE_HTTP:
		/* the HTTP API prints JSON, always */
		return TRUE;
	case DOVEADM_CONNECTION_TYPE_CLI:
		break;
	default:
		/* a doveadm server: the client formats what it gets */
		return FALSE;
	}
	/* doveadm's print layer does not say which formatter it runs: read
	   doveadm's own -f, given before the command name, the way getopt
	   did (options with a value are those with a ':' in getopt_str) */
	for (i = 1; i < master_service->argc && argv[i][0] == '-'; i++) {
		if (argv[i][1] == '-')
			break;
		for (p = argv[i] + 1; *p != '\0'; p++) {
			opt = strchr(master_service->getopt_str, *p);
			if (opt == NULL || opt[1] != ':')
				continue;
			/* the value: the rest of this word, or the next */
			value = p[1] != '\0' ? p + 1 :
				i + 1 < master_service->argc ? argv[++i] : NULL;
			if (*p == 'f')
				format = value;
			break;
		}
	}
	return format != NULL && strcmp(format, DOVEADM_PRINT_TYPE_JSON) == 0;
}

struct doveadm_dmarc_cmd_context *
doveadm_dmarc_cmd_alloc_size(size_t size, const char *getopt_args)
{
	struct doveadm_dmarc_cmd_context *dctx;

	i_assert(size >= sizeof(*dctx));
	dctx = (struct doveadm_dmarc_cmd_context *)
		doveadm_mail_cmd_alloc_size(size);
	/* options are read with doveadm_cmd_param_*() */
	dmarc_compat_doveadm_named_options(&dctx->ctx, getopt_args);
	dctx->ctx.v.init = doveadm_dmarc_cmd_init;
	/* The commands read one SQLite file: they need the user's home and
	   settings, not its mailboxes. import --mailbox clears
	   this flag again. */
	dctx->ctx.service_flags |= MAIL_STORAGE_SERVICE_FLAG_NO_NAMESPACES;
	dmarc_query_filter_init(&dctx->filter);
	return dctx;
}

static int
doveadm_dmarc_read_cmd_run(struct doveadm_mail_cmd_context *ctx,
			   struct mail_user *user)
{
	struct doveadm_dmarc_cmd_context *dctx =
		(struct doveadm_dmarc_cmd_context *)ctx;

	return doveadm_dmarc_read(ctx, user, dctx->read);
}

struct doveadm_dmarc_cmd_context *
doveadm_dmarc_read_cmd_alloc_size(size_t size, const char *getopt_args,
				  doveadm_dmarc_init_func_t *init,
				  doveadm_dmarc_read_func_t *read,
				  const char *formatter)
{
	struct doveadm_dmarc_cmd_context *dctx;

	dctx = doveadm_dmarc_cmd_alloc_size(size, getopt_args);
	dctx->init = init;
	dctx->read = read;
	dctx->ctx.v.run = doveadm_dmarc_read_cmd_run;
	doveadm_print_init(formatter);
	return dctx;
}

void doveadm_dmarc_print_headers(const struct doveadm_dmarc_column *columns,
				 unsigned int count)
{
	unsigned int i;

	for (i = 0; i < count; i++) {
		doveadm_print_header(columns[i].key, columns[i].title,
				     columns[i].flags);
	}
}

void doveadm_dmarc_usage_error(struct doveadm_mail_cmd_context *ctx,
			       const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	i_error("%s: %s", ctx->cmd->name, t_strdup_vprintf(fmt, args));
	va_end(args);
	help_ver2(ctx->cctx->cmd);
}

void doveadm_dmarc_parse_filter(struct doveadm_dmarc_cmd_context *dctx,
				const char *const *args)
{
	const char *error, *sort;
	int64_t limit;

	const char *kind;

	if (doveadm_dmarc_filter_parse(args, ioloop_time, &dctx->filter,
				       &error) < 0)
		doveadm_dmarc_usage_error(&dctx->ctx, "%s", error);
	/* "list type tls dkim pass" matches nothing: say why */
	kind = dctx->kind != NULL ? dctx->kind : dctx->filter.type;
	if (kind != NULL &&
	    doveadm_dmarc_filter_check_kind(&dctx->filter, kind, &error) < 0)
		doveadm_dmarc_usage_error(&dctx->ctx, "%s", error);
	/* list and query have these, summary not */
	if (doveadm_cmd_param_int64(dctx->ctx.cctx, "limit", &limit)) {
		if (limit <= 0 || limit > UINT_MAX) {
			doveadm_dmarc_usage_error(&dctx->ctx, "--limit: "
				"expected a number of rows from 1");
		}
		dctx->filter.limit = limit;
	}
	if (doveadm_cmd_param_str(dctx->ctx.cctx, "sort", &sort) &&
	    !dmarc_query_sort_parse(sort, &dctx->filter.sort)) {
		doveadm_dmarc_usage_error(&dctx->ctx, "Unknown --sort '%s' "
			"(known: begin, messages, source)", sort);
	}
}

int doveadm_dmarc_user_settings(struct doveadm_mail_cmd_context *ctx,
				struct mail_user *user,
				struct dmarc_settings *set_r)
{
	const char *error;

	if (dmarc_compat_user_settings(user, ctx->pool, set_r, &error) < 0) {
		i_error("dmarc: user %s: Invalid settings: %s",
			user->username, dmarc_log_text(error));
		doveadm_dmarc_set_exit_code(ctx, EX_CONFIG);
		return -1;
	}
	return 0;
}

int doveadm_dmarc_store_open(struct doveadm_mail_cmd_context *ctx,
			     struct mail_user *user,
			     enum dmarc_store_open_flags flags,
			     struct dmarc_settings *set_r,
			     struct dmarc_store **store_r)
{
	const char *error;
	int ret;

	*store_r = NULL;
	if (doveadm_dmarc_user_settings(ctx, user, set_r) < 0)
		return -1;
	ret = dmarc_store_open(set_r->db_path, flags, store_r, &error);
	if (ret < 0) {
		/* e.g. a database from a newer version: refuse, say why
		   (the store's error names the file) */
		i_error("dmarc: user %s: %s", user->username,
			dmarc_log_text(error));
		doveadm_dmarc_set_exit_code(ctx, DOVEADM_EX_NOTPOSSIBLE);
		return -1;
	}
	return ret;
}

int doveadm_dmarc_read(struct doveadm_mail_cmd_context *ctx,
		       struct mail_user *user,
		       doveadm_dmarc_read_func_t *read_func)
{
	struct doveadm_dmarc_cmd_context *dctx =
		(struct doveadm_dmarc_cmd_context *)ctx;
	struct dmarc_settings set;
	struct dmarc_store *store;
	const char *error;
	int ret;

	ret = doveadm_dmarc_store_open(ctx, user, dctx->resolve ? 0 :
				       DMARC_STORE_OPEN_READONLY, &set, &store);
	if (ret <= 0)
		return ret;
	ret = read_func(ctx, store, &set, &error);
	dmarc_store_close(&store);
	if (ret < 0)
		return doveadm_dmarc_query_failed(ctx, user, error);
	return 0;
}

void doveadm_dmarc_set_exit_code(struct doveadm_mail_cmd_context *ctx,
				 int exit_code)
{
	/* doveadm's rule (doveadm_mail_failed_error()): EX_TEMPFAIL over
	   all others, else the first error's code */
	if (ctx->exit_code == 0 || exit_code == EX_TEMPFAIL)
		ctx->exit_code = exit_code;
}

int doveadm_dmarc_query_failed(struct doveadm_mail_cmd_context *ctx,
			       struct mail_user *user, const char *error)
{
	i_error("dmarc: user %s: %s", user->username, dmarc_log_text(error));
	doveadm_dmarc_set_exit_code(ctx, EX_TEMPFAIL);
	return -1;
}

void doveadm_dmarc_print_archive(const char *archive_dir, const char *path)
{
	if (path == NULL || archive_dir == NULL)
		doveadm_dmarc_print_str(path);
	else {
		doveadm_dmarc_print_str(t_strconcat(archive_dir, "/", path,
						    NULL));
	}
}

const char *doveadm_dmarc_time(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm *tm = gmtime(&tt);
	char buf[64];

	/* past what struct tm holds (or a negative value from an old
	   database): the number as it is */
	if (tm == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", tm) == 0)
		return t_strdup_printf("%"PRId64, t);
	return t_strdup(buf);
}

void doveadm_dmarc_print_num(uint64_t num)
{
	doveadm_print(dec2str(num));
}

void doveadm_dmarc_print_rate(double percent)
{
	doveadm_print(t_strdup_printf("%.1f", percent));
}

void doveadm_dmarc_print_str(const char *str)
{
	doveadm_print(str == NULL ? "" : dmarc_query_escape(str));
}

void doveadm_dmarcreport_plugin_init(struct module *module ATTR_UNUSED)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(dmarc_cmds); i++)
		doveadm_cmd_register_ver2(dmarc_cmds[i]);
}

void doveadm_dmarcreport_plugin_deinit(void)
{
}
