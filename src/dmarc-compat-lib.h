#ifndef DMARC_COMPAT_LIB_H
#define DMARC_COMPAT_LIB_H

/* The few lib functions the core and its tests call that Dovecot 2.4
   renamed: they are called by their 2.4 names, and this maps them to
   2.3's. The core itself has no version #if. */

#if DOVECOT_PREREQ(2, 4, 0)
#  include "str-parse.h"
#else
#  include "settings-parser.h"
#  define str_parse_get_size(str, bytes_r, error_r) \
	settings_get_size(str, bytes_r, error_r)
#  define str_parse_get_interval_msecs(str, msecs_r, error_r) \
	settings_get_time_msecs(str, msecs_r, error_r)
#  define str_parse_get_interval(str, secs_r, error_r) \
	settings_get_time(str, secs_r, error_r)
/* 2.3 parses booleans inside the settings parser only; the same rule as
   its get_bool() and 2.4's str_parse_get_bool() */
static inline int
str_parse_get_bool(const char *value, bool *result_r, const char **error_r)
{
	if (strcasecmp(value, "yes") == 0 || strcasecmp(value, "y") == 0 ||
	    strcmp(value, "1") == 0)
		*result_r = TRUE;
	else if (strcasecmp(value, "no") == 0)
		*result_r = FALSE;
	else {
		*error_r = t_strdup_printf(
			"Invalid boolean value: %s (use yes or no)", value);
		return -1;
	}
	return 0;
}
/* 2.4's str_begins() takes a third argument, the rest of the string */
#  define str_begins_with(str, prefix) str_begins(str, prefix)
static inline bool str_ends_with(const char *str, const char *suffix)
{
	size_t len = strlen(str), suffix_len = strlen(suffix);

	return len >= suffix_len &&
		memcmp(str + len - suffix_len, suffix, suffix_len) == 0;
}
#endif

#endif
