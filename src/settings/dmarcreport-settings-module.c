/* Dovecot 2.4's settings module (<moduledir>/settings): the config
   process, doveconf and every process reading the config look up
   <module name>_set_infos here, and then accept dmarcreport_* as
   top-level settings. Without it an unknown setting is fatal. */

#include "lib.h"
#include "dmarcreport-settings.h"

extern const char *dmarcreport_settings_version;
extern const struct setting_parser_info *dmarcreport_settings_set_infos[];

const char *dmarcreport_settings_version = DOVECOT_ABI_VERSION;

const struct setting_parser_info *dmarcreport_settings_set_infos[] = {
	&dmarcreport_setting_parser_info,
	NULL
};
