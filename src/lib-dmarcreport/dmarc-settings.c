/* plugin {} settings and limits: every name, type and default in one table. */

#include "lib.h"
#include "settings-parser.h"
#include "dmarc-settings.h"

enum setting_kind {
	SETTING_PATH,
	SETTING_SIZE,
	SETTING_UINT,
	SETTING_TIME_MSECS,
};

struct setting_def {
	const char *name;
	enum setting_kind kind;
	size_t offset;
	const char *default_value;
	/* PATH only: an empty value turns the feature off */
	bool empty_disables;
};

#define DEF_PATH(name, field, def, empty_ok) \
	{ name, SETTING_PATH, offsetof(struct dmarc_settings, field), def, empty_ok }
#define DEF_LIMIT(name, kind, field, def) \
	{ name, kind, offsetof(struct dmarc_settings, limits.field), def, FALSE }

/* Defaults are sized so that real reports (the largest seen: 200,000
   records, ~120 MB of XML) pass while bombs stop early. */
static const struct setting_def setting_defs[] = {
	DEF_PATH("dmarcreport_db", db_path, "~/dmarcreport/reports.sqlite", FALSE),
	DEF_PATH("dmarcreport_archive_dir", archive_dir, "~/dmarcreport/archive", TRUE),
	DEF_LIMIT("dmarcreport_max_attachment_size", SETTING_SIZE,
		  max_attachment_size, "50M"),
	DEF_LIMIT("dmarcreport_max_decompressed_size", SETTING_SIZE,
		  max_decompressed_size, "256M"),
	DEF_LIMIT("dmarcreport_max_message_decompressed_size", SETTING_SIZE,
		  max_message_decompressed_size, "512M"),
	DEF_LIMIT("dmarcreport_max_attachments", SETTING_UINT,
		  max_attachments, "50"),
	DEF_LIMIT("dmarcreport_max_mime_depth", SETTING_UINT,
		  max_mime_depth, "20"),
	DEF_LIMIT("dmarcreport_max_zip_entries", SETTING_UINT,
		  max_zip_entries, "100"),
	DEF_LIMIT("dmarcreport_max_records", SETTING_UINT,
		  max_records, "1000000"),
	DEF_LIMIT("dmarcreport_max_xml_depth", SETTING_UINT,
		  max_xml_depth, "32"),
	DEF_LIMIT("dmarcreport_max_value_length", SETTING_UINT,
		  max_value_length, "1024"),
	/* real records carry one or two DKIM results and one SPF result */
	DEF_LIMIT("dmarcreport_max_auth_results", SETTING_UINT,
		  max_auth_results, "20"),
	/* max_records records with three auth results each */
	DEF_LIMIT("dmarcreport_max_report_rows", SETTING_UINT,
		  max_report_rows, "4000000"),
	/* CPU time: 200,000 records (the largest real report) take about
	   1.5 s to unpack, parse and store, so max_records would take about
	   8 s; slower machines and sanitizer builds need room too */
	DEF_LIMIT("dmarcreport_max_processing_time", SETTING_TIME_MSECS,
		  max_processing_time_msecs, "10s"),
	DEF_LIMIT("dmarcreport_lock_timeout", SETTING_TIME_MSECS,
		  lock_timeout_msecs, "5s"),
	DEF_LIMIT("dmarcreport_max_pending_size", SETTING_SIZE,
		  max_pending_size, "64M"),
};

static int
setting_apply(pool_t pool, const struct setting_def *def, const char *value,
	      const char *home, struct dmarc_settings *set,
	      const char **error_r)
{
	void *field = PTR_OFFSET(set, def->offset);
	unsigned int uint_value;
	uoff_t size;
	const char *error;

	switch (def->kind) {
	case SETTING_PATH:
		if (*value == '\0') {
			if (!def->empty_disables) {
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
			value = t_strconcat(home, value + 1, NULL);
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
		if (settings_get_size(value, &size, &error) < 0) {
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
		if (settings_get_time_msecs(value, &uint_value, &error) < 0) {
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
			value = def->default_value;
		if (setting_apply(pool, def, value, home, set_r, &error) < 0) {
			*error_r = t_strdup_printf("plugin { %s }: %s",
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

		if (def->kind == SETTING_PATH)
			continue;
		if (setting_apply(pool_datastack_create(), def,
				  def->default_value, NULL, &set, &error) < 0)
			i_panic("default of %s: %s", def->name, error);
	}
	*limits_r = set.limits;
}
