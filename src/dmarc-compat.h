#ifndef DMARC_COMPAT_H
#define DMARC_COMPAT_H

/* The seam between the plugins and the Dovecot version: the calls that
   differ between Dovecot 2.3.19 / Pigeonhole 0.5.19 and Dovecot 2.4.1 /
   Pigeonhole 2.4.1 are wrapped in this header (settings, JSON escaping,
   the Sieve and doveadm APIs), dmarc-compat-lib.h (lib functions 2.4
   renamed) and dmarc-compat-json.h (the JSON reader), chosen with
   DOVECOT_PREREQ(2,4,0); the doors and the core have no version #if of
   their own. Events and their log calls (lib-event.h, event-log.h) are
   the same on both. What else 2.4 needed is not C of the plugins:
   the settings module (src/settings: 2.4's config process refuses
   settings it does not know), configure.ac's DC_DOVECOT_TEST_WRAPPER
   guard, and 2.4's config syntax (README, tests/e2e/dovetest.py). */

#include "mail-user.h"
#include "dmarc-settings.h"

/* --- Settings ---
   2.3: plugin {} values, %-expanded by lib-storage, read by name.
   2.4: top-level dmarcreport_* settings of the setting_parser_info in
   src/settings (declared to the config process by the settings module),
   read with settings_get(): %{variables} and userdb_dmarcreport_*
   overrides applied, sizes and counts already parsed. Either way the
   values reach dmarc_settings_read() as text by name, so the rules after
   that ("~", empty archive dir, absolute paths) are the same code. */
#if DOVECOT_PREREQ(2, 4, 0)
#include "settings.h"
#include "dmarcreport-settings.h"

/* A typed 2.4 value back as the text the core parses. */
static inline const char *
dmarc_compat_user_setting(const char *name, void *context)
{
	const struct dmarcreport_settings *set = context;
	const struct setting_parser_info *info =
		&dmarcreport_setting_parser_info;
	const struct setting_define *def;
	const void *value;
	unsigned int idx;

	if (!setting_parser_info_find_key(info, name, &idx))
		return NULL;
	def = &info->defines[idx];
	value = CONST_PTR_OFFSET(set, def->offset);
	switch (def->type) {
	case SET_STR:
		return *(const char *const *)value;
	case SET_SIZE:
		return dec2str(*(const uoff_t *)value);
	case SET_UINT:
		return dec2str(*(const unsigned int *)value);
	case SET_TIME_MSECS:
		return t_strdup_printf("%ums", *(const unsigned int *)value);
	case SET_BOOL:
		return *(const bool *)value ? "yes" : "no";
	default:
		i_unreached();
	}
}

/* The user's settings, "~" expanded with its home. A bad value (e.g. a
   userdb_dmarcreport_max_records=many) fails here, and the error names
   the setting. */
static inline int
dmarc_compat_user_settings(struct mail_user *user, pool_t pool,
			   struct dmarc_settings *set_r, const char **error_r)
{
	const struct dmarcreport_settings *set;
	const char *home, *error;
	int ret;

	if (settings_get(user->event, &dmarcreport_setting_parser_info, 0,
			 &set, &error) < 0) {
		*error_r = t_strdup(error);
		return -1;
	}
	if (mail_user_get_home(user, &home) <= 0)
		home = NULL;
	ret = dmarc_settings_read(pool, dmarc_compat_user_setting,
				  (void *)set, home, set_r, error_r);
	settings_free(set);
	return ret;
}
#else
static inline const char *
dmarc_compat_user_setting(const char *name, void *context)
{
	struct mail_user *user = context;

	/* plugin {} values arrive %-expanded by lib-storage */
	return mail_user_plugin_getenv(user, name);
}

/* The plugin {} settings of a mail user, "~" expanded with its home. */
static inline int
dmarc_compat_user_settings(struct mail_user *user, pool_t pool,
			   struct dmarc_settings *set_r, const char **error_r)
{
	const char *home;

	if (mail_user_get_home(user, &home) <= 0)
		home = NULL;
	return dmarc_settings_read(pool, dmarc_compat_user_setting, user,
				   home, set_r, error_r);
}
#endif

/* --- JSON text (doveadm dmarc show) ---
   json_append_escaped(): lib's json-parser.h in 2.3, lib-json's
   json-generator.h in 2.4 (same signature). */
#if DOVECOT_PREREQ(2, 4, 0)
#  include "json-generator.h"
#else
#  include "json-parser.h"
#endif

/* --- Sieve ---
   Compiled only into the Sieve door, which includes sieve-extensions.h
   first. Pigeonhole 2.4: plugin_load returns int (0, or -1 when the
   plugin cannot work), and sieve_extension_register() returns int with
   the extension in an out-parameter. */
#ifdef SIEVE_EXTENSIONS_H
#if DOVECOT_PREREQ(2, 4, 0)
typedef int dmarc_compat_sieve_load_ret_t;
#  define DMARC_COMPAT_SIEVE_LOAD_RETURN(ret) return (ret)
#else
typedef void dmarc_compat_sieve_load_ret_t;
#  define DMARC_COMPAT_SIEVE_LOAD_RETURN(ret) \
	STMT_START { (void)(ret); return; } STMT_END
#endif

/* Register an extension that stays disabled until sieve_extensions or
   sieve_global_extensions names it. */
static inline int
dmarc_compat_sieve_extension_register(struct sieve_instance *svinst,
				      const struct sieve_extension_def *def,
				      const struct sieve_extension **ext_r)
{
#if DOVECOT_PREREQ(2, 4, 0)
	return sieve_extension_register(svinst, def, FALSE, ext_r);
#else
	*ext_r = sieve_extension_register(svinst, def, FALSE);
	return *ext_r == NULL ? -1 : 0;
#endif
}
#endif

/* --- doveadm ---
   Compiled only into the doveadm door, which includes doveadm-mail.h
   first. Options and words are read with doveadm_cmd_param_*() on both.
   2.3: every named option of a mail command must also pass through
   getopt_args and parse_arg, or doveadm answers "invalid parameter", and
   v.init gets the positional words as args.
   2.4: getopt_args and parse_arg are gone, v.init takes only the
   context, and the words are the value of the command's positional
   CMD_PARAM_ARRAY. */
#ifdef DOVEADM_MAIL_H
#if DOVECOT_PREREQ(2, 4, 0)
static inline void
dmarc_compat_doveadm_named_options(struct doveadm_mail_cmd_context *ctx ATTR_UNUSED,
				   const char *short_opts ATTR_UNUSED)
{
}

static inline const char *const *
dmarc_compat_doveadm_args(struct doveadm_mail_cmd_context *ctx)
{
	static const char *const no_args[] = { NULL };
	const struct doveadm_cmd_context *cctx = ctx->cctx;
	const char *const *args;
	int i;

	for (i = 0; i < cctx->argc; i++) {
		const struct doveadm_cmd_param *param = &cctx->argv[i];

		if (param->type == CMD_PARAM_ARRAY &&
		    (param->flags & CMD_PARAM_FLAG_POSITIONAL) != 0 &&
		    doveadm_cmd_param_array(cctx, param->name, &args))
			return args;
	}
	return no_args;
}

/* v.init's parameters, and the words they give */
#  define DMARC_COMPAT_DOVEADM_INIT_PARAMS \
	struct doveadm_mail_cmd_context *ctx
#  define DMARC_COMPAT_DOVEADM_INIT_ARGS dmarc_compat_doveadm_args(ctx)
#else
static inline bool
dmarc_compat_doveadm_accept_option(struct doveadm_mail_cmd_context *ctx ATTR_UNUSED,
				   int c ATTR_UNUSED)
{
	return TRUE;
}

static inline void
dmarc_compat_doveadm_named_options(struct doveadm_mail_cmd_context *ctx,
				   const char *short_opts)
{
	ctx->getopt_args = short_opts;
	ctx->v.parse_arg = dmarc_compat_doveadm_accept_option;
}

#  define DMARC_COMPAT_DOVEADM_INIT_PARAMS \
	struct doveadm_mail_cmd_context *ctx, const char *const args[]
#  define DMARC_COMPAT_DOVEADM_INIT_ARGS args
#endif
#endif

#endif
