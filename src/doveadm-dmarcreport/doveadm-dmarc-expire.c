/* doveadm dmarc expire: delete reports that ended before a date, and with
   --archive the archive files no remaining report uses. */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "doveadm-print.h"
#include "dmarc-archive.h"
#include "dmarc-log.h"
#include "dmarc-query.h"
#include "doveadm-dmarc-filter.h"
#include "doveadm-dmarc.h"

struct expire_cmd_context {
	struct doveadm_dmarc_cmd_context dctx;
	int64_t before;
	bool archive;
};

/* dmarc_archive_remove() refuses paths that could lead outside the
   archive dir and follows no symlink below it. */
static unsigned int
expire_archive_files(struct mail_user *user, const char *archive_dir,
		     const ARRAY_TYPE(const_string) *paths)
{
	const char *path, *error;
	unsigned int removed = 0;
	int ret;

	array_foreach_elem(paths, path) {
		ret = dmarc_archive_remove(archive_dir, path, &error);
		if (ret > 0)
			removed++;
		else if (ret < 0) {
			i_error("dmarc: user %s: Not removed: %s",
				user->username, dmarc_log_text(error));
		}
	}
	return removed;
}

static int
cmd_dmarc_expire_run(struct doveadm_mail_cmd_context *_ctx,
		     struct mail_user *user)
{
	struct expire_cmd_context *ctx = (struct expire_cmd_context *)_ctx;
	struct dmarc_settings set;
	struct dmarc_store *store;
	ARRAY_TYPE(const_string) paths;
	unsigned int deleted = 0, removed = 0;
	bool want_files;
	const char *error;
	int ret;

	ret = doveadm_dmarc_store_open(_ctx, user, 0, &set, &store);
	if (ret < 0)
		return -1;
	if (ret > 0) {
		want_files = ctx->archive && set.archive_dir != NULL;
		t_array_init(&paths, 16);
		/* deliveries waiting for the lock get it in time */
		dmarc_store_batch_set_max_time(store,
			DMARC_LOCK_TIMEOUT_BATCH_MSECS(set.limits.lock_timeout_msecs));
		ret = dmarc_store_expire(store, ctx->before, _ctx->pool,
					 want_files ? &paths : NULL,
					 &deleted, &error);
		dmarc_store_close(&store);
		/* after a failure paths holds the files of the reports
		   that are deleted nonetheless */
		if (want_files) {
			removed = expire_archive_files(user, set.archive_dir,
						       &paths);
		}
		if (ret < 0)
			return doveadm_dmarc_query_failed(_ctx, user, error);
	}
	doveadm_dmarc_print_num(deleted);
	doveadm_dmarc_print_num(removed);
	return 0;
}

static void
cmd_dmarc_expire_init(struct doveadm_mail_cmd_context *_ctx,
		      const char *const args[])
{
	struct expire_cmd_context *ctx = (struct expire_cmd_context *)_ctx;
	const char *before, *error;
	int64_t last;

	if (args[0] != NULL)
		doveadm_dmarc_usage_error(_ctx, "Unexpected argument '%s'",
					  args[0]);
	if (!doveadm_cmd_param_str(_ctx->cctx, "before", &before))
		doveadm_dmarc_usage_error(_ctx, "--before <date> is required");
	/* reports that ended before its first second */
	if (doveadm_dmarc_filter_parse_date(before, ioloop_time, &ctx->before,
					    &last, &error) < 0)
		doveadm_dmarc_usage_error(_ctx, "--before: %s", error);
	(void)doveadm_cmd_param_bool(_ctx->cctx, "archive", &ctx->archive);

	doveadm_print_header("reports", "Reports deleted",
			     DOVEADM_DMARC_NUMBER_FLAGS);
	doveadm_print_header("archive_files", "Archive files removed",
			     DOVEADM_DMARC_NUMBER_FLAGS);
}

static struct doveadm_mail_cmd_context *cmd_dmarc_expire_alloc(void)
{
	struct expire_cmd_context *ctx;

	ctx = doveadm_dmarc_cmd_alloc(struct expire_cmd_context, "b:a");
	ctx->dctx.init = cmd_dmarc_expire_init;
	ctx->dctx.ctx.v.run = cmd_dmarc_expire_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->dctx.ctx;
}

struct doveadm_cmd_ver2 doveadm_dmarc_cmd_expire = {
	.name = "dmarc expire",
	.mail_cmd = cmd_dmarc_expire_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX "--before <date> [--archive]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('b', "before", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('a', "archive", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAM('\0', "args", CMD_PARAM_ARRAY, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
};
