/* Settings and limits: every name, kind and default in one table. */

#include "lib.h"
#include "home-expand.h"
#include "dmarc-compat-lib.h"
#include "dmarc-settings-list.h"
#include "dmarc-settings.h"

enum setting_kind {
	SETTING_PATH,
	SETTING_PATH_OR_EMPTY,
	SETTING_SIZE,
	SETTING_UINT,
	SETTING_TIME_MSECS,
	SETTING_BOOL,
};

struct setting_def {
	const char *name;
	enum setting_kind kind;
	size_t offset;
	/* paths */
	const char *default_path;
	/* sizes, counts, intervals, booleans (0 or 1) */
	uintmax_t default_number;
};

#define DEFAULT_PATH_PATH(value) value
#define DEFAULT_PATH_PATH_OR_EMPTY(value) value
#define DEFAULT_PATH_SIZE(value) NULL
#define DEFAULT_PATH_UINT(value) NULL
#define DEFAULT_PATH_TIME_MSECS(value) NULL
#define DEFAULT_PATH_BOOL(value) NULL
#define DEFAULT_NUMBER_PATH(value) 0
#define DEFAULT_NUMBER_PATH_OR_EMPTY(value) 0
#define DEFAULT_NUMBER_SIZE(value) (value)
#define DEFAULT_NUMBER_UINT(value) (value)
#define DEFAULT_NUMBER_TIME_MSECS(value) (value)
#define DEFAULT_NUMBER_BOOL(value) ((value) ? 1 : 0)

#define DMARC_SETTING_DEF(kind, name, field, default_value) \
	{ "dmarcreport_" #name, SETTING_##kind, \
	  offsetof(struct dmarc_settings, field), \
	  DEFAULT_PATH_##kind(default_value), \
	  DEFAULT_NUMBER_##kind(default_value) },

/* The rows are in dmarc-settings-list.h, shared with Dovecot 2.4's
   setting_parser_info. */
static const struct setting_def setting_defs[] = {
	DMARC_SETTINGS_LIST(DMARC_SETTING_DEF)
};

static int
setting_apply(pool_t pool, const struct setting_def *def, const char *value,
	      const char *home, struct dmarc_settings *set,
	      const char **error_r)
{
	void *field = PTR_OFFSET(set, def->offset);
	unsigned int uint_value;
	bool bool_value;
	uoff_t size;
	const char *error;

	switch (def->kind) {
	case SETTING_PATH:
	case SETTING_PATH_OR_EMPTY:
		if (*value == '\0') {
			if (def->kind != SETTING_PATH_OR_EMPTY) {
				*error_r = "must not be empty";
				return -1;
			}
			*(const char **)field = NULL;
			return 0;
		}
		if (value[0] == '~' && (value[1] == '/' || value[1] == '\0')) {
			if (home == NULL || *home == '\0') {
				*error_r = t_strdup_printf(
					"%s: '~' used, but the user has no home directory",
					value);
				return -1;
			}
			value = home_expand_tilde(value, home);
		}
		if (value[0] != '/') {
			*error_r = t_strdup_printf(
				"%s: must be an absolute path or start with ~/",
				value);
			return -1;
		}
		*(const char **)field = p_strdup(pool, value);
		return 0;
	case SETTING_SIZE:
		if (str_parse_get_size(value, &size, &error) < 0) {
			*error_r = error;
			return -1;
		}
		*(uoff_t *)field = size;
		return 0;
	case SETTING_UINT:
		if (str_to_uint(value, &uint_value) < 0 || uint_value == 0) {
			*error_r = t_strdup_printf(
				"%s: not a positive number", value);
			return -1;
		}
		*(unsigned int *)field = uint_value;
		return 0;
	case SETTING_TIME_MSECS:
		if (str_parse_get_interval_msecs(value, &uint_value,
						 &error) < 0) {
			*error_r = error;
			return -1;
		}
		if (uint_value == 0) {
			*error_r = t_strdup_printf(
				"%s: not a positive time", value);
			return -1;
		}
		*(unsigned int *)field = uint_value;
		return 0;
	case SETTING_BOOL:
		if (str_parse_get_bool(value, &bool_value, &error) < 0) {
			*error_r = error;
			return -1;
		}
		*(bool *)field = bool_value;
		return 0;
	}
	i_unreached();
}

/* The default as the text a setting would have: one way to apply both. */
static const char *setting_default_text(const struct setting_def *def)
{
	switch (def->kind) {
	case SETTING_PATH:
	case SETTING_PATH_OR_EMPTY:
		return def->default_path;
	case SETTING_SIZE:
	case SETTING_UINT:
		return dec2str(def->default_number);
	case SETTING_TIME_MSECS:
		return t_strdup_printf("%jums", def->default_number);
	case SETTING_BOOL:
		return def->default_number != 0 ? "yes" : "no";
	}
	i_unreached();
}

int dmarc_settings_read(pool_t pool, dmarc_setting_lookup_t *lookup,
			void *context, const char *home,
			struct dmarc_settings *set_r, const char **error_r)
{
	const char *value, *error;
	unsigned int i;

	i_zero(set_r);
	for (i = 0; i < N_ELEMENTS(setting_defs); i++) {
		const struct setting_def *def = &setting_defs[i];

		value = lookup == NULL ? NULL : lookup(def->name, context);
		if (value == NULL)
			value = setting_default_text(def);
		if (setting_apply(pool, def, value, home, set_r, &error) < 0) {
			*error_r = t_strdup_printf("%s: %s",
						   def->name, error);
			return -1;
		}
	}
	return 0;
}

void dmarc_limits_default(struct dmarc_limits *limits_r)
{
	struct dmarc_settings set;
	const char *error;
	unsigned int i;

	i_zero(&set);
	for (i = 0; i < N_ELEMENTS(setting_defs); i++) {
		const struct setting_def *def = &setting_defs[i];

		if (def->kind == SETTING_PATH ||
		    def->kind == SETTING_PATH_OR_EMPTY ||
		    def->kind == SETTING_BOOL)
			continue;
		if (setting_apply(pool_datastack_create(), def,
				  setting_default_text(def), NULL, &set,
				  &error) < 0)
			i_panic("default of %s: %s", def->name, error);
	}
	*limits_r = set.limits;
}
