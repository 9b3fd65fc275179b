#ifndef DMARC_COMPAT_H
#define DMARC_COMPAT_H

/* Every call that differs between Dovecot 2.3 and 2.4 goes here, so that a
   2.4 build is an added branch of this file rather than a rewrite of the
   doors. This is the 2.3.19 / Pigeonhole 0.5.19 side.
   (2.4: mail_user_plugin_getenv() is gone; settings come from a
   setting_parser_info read with settings_get().) */

#include "mail-user.h"
#include "dmarc-settings.h"

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

/* --- JSON text (doveadm dmarc show) ---
   json_append_escaped() is declared in lib's json-parser.h here (2.4:
   lib-json's json-generator.h, same signature). */
#include "json-parser.h"

/* --- Sieve (Pigeonhole 0.5.19) ---
   Compiled only into the Sieve door, which includes sieve-extensions.h
   first. (Pigeonhole of Dovecot 2.4: plugin_load returns int, and
   sieve_extension_register() returns int with the extension in an
   out-parameter.) */
#ifdef SIEVE_EXTENSIONS_H
/* Register an extension that stays disabled until sieve_extensions or
   sieve_global_extensions names it. */
static inline int
dmarc_compat_sieve_extension_register(struct sieve_instance *svinst,
				      const struct sieve_extension_def *def,
				      const struct sieve_extension **ext_r)
{
	*ext_r = sieve_extension_register(svinst, def, FALSE);
	return *ext_r == NULL ? -1 : 0;
}
#endif

/* --- doveadm (2.3) ---
   Compiled only into the doveadm door, which includes doveadm-mail.h
   first. In 2.3 every named option of a mail command is passed through
   getopt_args and parse_arg, or doveadm answers "invalid parameter"; the
   values are read with doveadm_cmd_param_*(), which 2.4 keeps. (Dovecot
   2.4: getopt_args and parse_arg are gone, so this does nothing, and
   v.init takes no args.) */
#ifdef DOVEADM_MAIL_H
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
#endif

#endif
