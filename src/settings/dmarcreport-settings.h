#ifndef DMARCREPORT_SETTINGS_H
#define DMARCREPORT_SETTINGS_H

/* Dovecot 2.4 only: the dmarcreport_* settings as a setting_parser_info,
   made from dmarc-settings-list.h. The config process learns them from
   the settings module (dmarcreport-settings-module.c); the two plugins
   read them with settings_get() (see dmarc-compat.h). All three compile
   this one file, so they agree on names, order and types. */

#include "settings-parser.h"
#include "dmarc-settings-list.h"

#define DMARCREPORT_SET_TYPE_PATH const char *
#define DMARCREPORT_SET_TYPE_PATH_OR_EMPTY const char *
#define DMARCREPORT_SET_TYPE_SIZE uoff_t
#define DMARCREPORT_SET_TYPE_UINT unsigned int
#define DMARCREPORT_SET_TYPE_TIME_MSECS unsigned int
#define DMARCREPORT_SET_TYPE_BOOL bool

#define DMARCREPORT_SET_FIELD(kind, name, field, default_value) \
	DMARCREPORT_SET_TYPE_##kind dmarcreport_##name;

struct dmarcreport_settings {
	pool_t pool;
	DMARC_SETTINGS_LIST(DMARCREPORT_SET_FIELD)
};

extern const struct setting_parser_info dmarcreport_setting_parser_info;

#endif
