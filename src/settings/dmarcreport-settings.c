/* Dovecot 2.4: the setting_parser_info "dmarcreport", one define per row
   of dmarc-settings-list.h, typed so that doveconf checks the values. */

#include "lib.h"
#include "settings-parser.h"
#include "dmarcreport-settings.h"

#define DMARCREPORT_SET_ENUM_PATH SET_STR
#define DMARCREPORT_SET_ENUM_PATH_OR_EMPTY SET_STR
#define DMARCREPORT_SET_ENUM_SIZE SET_SIZE
#define DMARCREPORT_SET_ENUM_UINT SET_UINT
#define DMARCREPORT_SET_ENUM_TIME_MSECS SET_TIME_MSECS
#define DMARCREPORT_SET_ENUM_BOOL SET_BOOL

#define DMARCREPORT_SET_DEFINE(kind, name, field, default_value) \
	SETTING_DEFINE_STRUCT_TYPE(DMARCREPORT_SET_ENUM_##kind, 0, \
		DMARCREPORT_SET_TYPE_##kind, "dmarcreport_" #name, \
		dmarcreport_##name, struct dmarcreport_settings),

static const struct setting_define dmarcreport_setting_defines[] = {
	DMARC_SETTINGS_LIST(DMARCREPORT_SET_DEFINE)
	SETTING_DEFINE_LIST_END
};

#define DMARCREPORT_SET_INIT_PATH(default_value) default_value
#define DMARCREPORT_SET_INIT_PATH_OR_EMPTY(default_value) default_value
#define DMARCREPORT_SET_INIT_SIZE(default_value) (default_value)
#define DMARCREPORT_SET_INIT_UINT(default_value) (default_value)
#define DMARCREPORT_SET_INIT_TIME_MSECS(default_value) (default_value)
#define DMARCREPORT_SET_INIT_BOOL(default_value) (default_value)
#define DMARCREPORT_SET_INIT(kind, name, field, default_value) \
	.dmarcreport_##name = DMARCREPORT_SET_INIT_##kind(default_value),

static const struct dmarcreport_settings dmarcreport_default_settings = {
	DMARC_SETTINGS_LIST(DMARCREPORT_SET_INIT)
};

/* 2.3 says "not a positive number/time" at delivery for a count or an
   interval of 0; here
   doveconf says it when the config is read. Paths are checked at
   delivery on both: they need the user's home. */
static bool
dmarcreport_settings_check(void *_set, pool_t pool ATTR_UNUSED,
			   const char **error_r)
{
	const struct setting_define *def;

	for (def = dmarcreport_setting_defines; def->key != NULL; def++) {
		if ((def->type == SET_UINT || def->type == SET_TIME_MSECS) &&
		    *(const unsigned int *)CONST_PTR_OFFSET(_set, def->offset) == 0) {
			*error_r = t_strdup_printf("%s: not a positive %s",
						   def->key, def->type == SET_UINT ?
						   "number" : "time");
			return FALSE;
		}
	}
	return TRUE;
}

const struct setting_parser_info dmarcreport_setting_parser_info = {
	.name = "dmarcreport",
	.defines = dmarcreport_setting_defines,
	.defaults = &dmarcreport_default_settings,
	.struct_size = sizeof(struct dmarcreport_settings),
	.pool_offset1 = 1 + offsetof(struct dmarcreport_settings, pool),
	.check_func = dmarcreport_settings_check,
};
