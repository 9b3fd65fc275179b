/* Unit tests for dmarc-settings.c. */

#include "lib.h"
#include "test-dmarc-common.h"
#include "str.h"
#include "dmarc-settings-list.h"
#include "dmarc-settings.h"

/* A plugin {} block as name=value pairs, NULL-terminated. */
static const char *lookup_pairs(const char *name, void *context)
{
	const char *const *pairs = context;

	for (; *pairs != NULL; pairs += 2) {
		if (strcmp(pairs[0], name) == 0)
			return pairs[1];
	}
	return NULL;
}

static void test_settings_defaults(void)
{
	static const char *const empty[] = { NULL };
	struct dmarc_settings set;
	const char *error;

	test_begin("settings: defaults, ~ expanded with home");
	test_assert(dmarc_settings_read(pool_datastack_create(), lookup_pairs,
					(void *)empty, "/home/u", &set,
					&error) == 0);
	test_assert_strcmp(set.db_path, "/home/u/dmarcreport/reports.sqlite");
	test_assert_strcmp(set.archive_dir, "/home/u/dmarcreport/archive");
	test_assert(set.limits.max_decompressed_size == 256*1024*1024);
	test_assert(set.limits.max_records == 1000000);
	test_assert(set.limits.max_zip_entries == 100);
	test_assert(set.limits.max_auth_results == 20);
	test_assert(set.limits.max_report_rows == 4000000);
	test_assert(set.limits.max_processing_time_msecs == 10000);
	test_assert(set.limits.lock_timeout_msecs == 5000);
	test_assert(set.limits.max_pending_size == 64*1024*1024);
	test_assert(set.store_cache);
	test_end();
}

static void test_settings_overrides(void)
{
	static const char *const pairs[] = {
		"dmarcreport_db", "/var/dmarc/%u.sqlite",
		"dmarcreport_archive_dir", "",
		"dmarcreport_max_decompressed_size", "10M",
		"dmarcreport_max_records", "5000",
		"dmarcreport_max_processing_time", "1500 ms",
		"dmarcreport_lock_timeout", "1500ms",
		"dmarcreport_store_cache", "no",
		NULL
	};
	struct dmarc_settings set;
	const char *error;

	test_begin("settings: values, empty archive dir disables archiving");
	test_assert(dmarc_settings_read(pool_datastack_create(), lookup_pairs,
					(void *)pairs, "/home/u", &set,
					&error) == 0);
	test_assert_strcmp(set.db_path, "/var/dmarc/%u.sqlite");
	test_assert(set.archive_dir == NULL);
	test_assert(set.limits.max_decompressed_size == 10*1024*1024);
	test_assert(set.limits.max_records == 5000);
	test_assert(set.limits.max_processing_time_msecs == 1500);
	test_assert(set.limits.lock_timeout_msecs == 1500);
	test_assert(!set.store_cache);
	test_end();
}

static void test_settings_errors(void)
{
	static const struct {
		const char *name, *value, *home, *error_part;
	} tests[] = {
		{ "dmarcreport_db", "relative/path", "/h", "absolute path" },
		{ "dmarcreport_db", "", "/h", "must not be empty" },
		{ "dmarcreport_db", "~/x.sqlite", NULL, "no home directory" },
		{ "dmarcreport_max_records", "0", "/h", "not a positive number" },
		{ "dmarcreport_max_records", "-5", "/h", "not a positive number" },
		{ "dmarcreport_max_records", "lots", "/h", "not a positive number" },
		{ "dmarcreport_max_attachment_size", "10 parsecs", "/h", "" },
		{ "dmarcreport_max_processing_time", "0", "/h",
		  "not a positive time" },
		{ "dmarcreport_max_processing_time", "soon", "/h", "" },
		{ "dmarcreport_store_cache", "maybe", "/h", "use yes or no" },
	};
	struct dmarc_settings set;
	const char *error;
	unsigned int i;

	test_begin("settings: bad values name the setting and the reason");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		const char *pairs[] = { tests[i].name, tests[i].value, NULL };

		error = NULL;
		test_assert_idx(dmarc_settings_read(pool_datastack_create(),
						    lookup_pairs, pairs,
						    tests[i].home, &set,
						    &error) < 0, i);
		test_assert_idx(error != NULL &&
				strstr(error, tests[i].name) != NULL &&
				strstr(error, tests[i].error_part) != NULL, i);
	}
	test_end();
}

/* Records every name read, comma-terminated. */
static const char *lookup_record(const char *name, void *context)
{
	string_t *names = context;

	str_printfa(names, "%s,", name);
	return NULL;
}

static void test_settings_list(void)
{
#define LIST_NAME(kind, name, field, default_value) "dmarcreport_" #name ","
	static const char *list_names = DMARC_SETTINGS_LIST(LIST_NAME);
	string_t *names = t_str_new(256);
	struct dmarc_settings set;
	const char *error;

	/* dmarc-settings-list.h is the one list: the core reads each of
	   its rows, in order, and no other name */
	test_begin("settings: every row of the list is read by its name");
	test_assert(dmarc_settings_read(pool_datastack_create(), lookup_record,
					names, "/h", &set, &error) == 0);
	test_assert_strcmp(str_c(names), list_names);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_settings_defaults,
		test_settings_overrides,
		test_settings_errors,
		test_settings_list,
		NULL
	};
	return test_run(test_functions);
}
