#ifndef DMARC_SETTINGS_LIST_H
#define DMARC_SETTINGS_LIST_H

/* Every dmarcreport_* setting, once: kind, name (without "dmarcreport_"),
   field of struct dmarc_settings, default (a string for paths, else a
   number: bytes, a count, milliseconds). Two tables are made from it:
   setting_defs[] in dmarc-settings.c, which reads a setting by name
   (Dovecot 2.3's plugin {}; the 2.4 doors hand their typed values in by
   the same names), and the setting_parser_info of
   src/settings/dmarcreport-settings.c, which declares them to Dovecot
   2.4 (doveconf, config-time checks, userdb overrides).

   To add a setting: one line here, its field in struct dmarc_limits (or
   struct dmarc_settings), and a line in README's settings table and in
   doc/dovecot-dmarcreport.7. Kinds, and their Dovecot 2.4 type:
     PATH           absolute path or ~/..., must not be empty   SET_STR
     PATH_OR_EMPTY  the same, but empty turns the feature off   SET_STR
     SIZE           bytes, "50M" (uoff_t)                       SET_SIZE
     UINT           a positive number (unsigned int)            SET_UINT
     TIME_MSECS     an interval, "30s", "500ms" (unsigned int,
                    milliseconds)                               SET_TIME_MSECS
     BOOL           yes or no (bool; default TRUE or FALSE)     SET_BOOL
   Defaults are sized so that real reports (the largest seen: 200,000
   records, ~120 MB of XML) pass while bombs stop early. */
#define DMARC_SETTINGS_LIST(X) \
	X(PATH, db, db_path, "~/dmarcreport/reports.sqlite") \
	X(PATH_OR_EMPTY, archive_dir, archive_dir, "~/dmarcreport/archive") \
	X(SIZE, max_attachment_size, limits.max_attachment_size, 50 * MIB) \
	X(SIZE, max_decompressed_size, limits.max_decompressed_size, 256 * MIB) \
	X(SIZE, max_message_decompressed_size, limits.max_message_decompressed_size, 512 * MIB) \
	X(UINT, max_attachments, limits.max_attachments, 50) \
	X(UINT, max_mime_depth, limits.max_mime_depth, 20) \
	X(UINT, max_zip_entries, limits.max_zip_entries, 100) \
	X(UINT, max_records, limits.max_records, 1000000) \
	X(UINT, max_xml_depth, limits.max_xml_depth, 32) \
	X(UINT, max_value_length, limits.max_value_length, 1024) \
	/* real records carry one or two DKIM results and one SPF result */ \
	X(UINT, max_auth_results, limits.max_auth_results, 20) \
	/* max_records records with three auth results each */ \
	X(UINT, max_report_rows, limits.max_report_rows, 4000000) \
	/* CPU time: 200,000 records (the largest real report) take about \
	   1.5 s to unpack, parse and store, so max_records would take about \
	   8 s; slower machines need room too */ \
	X(TIME_MSECS, max_processing_time, limits.max_processing_time_msecs, 10 * 1000) \
	X(TIME_MSECS, lock_timeout, limits.lock_timeout_msecs, 5 * 1000) \
	X(SIZE, max_pending_size, limits.max_pending_size, 64 * MIB) \
	/* parsed from memory, which then takes about four times this: \
	   real TLS reports are a few KB */ \
	X(SIZE, max_tls_report_size, limits.max_tls_report_size, 5 * MIB) \
	X(SIZE, max_failure_report_size, limits.max_failure_report_size, 1 * MIB) \
	/* a TLS report is held in memory whole: real ones have a handful \
	   of policies and failure-details entries */ \
	X(UINT, max_tls_entries, limits.max_tls_entries, 10000) \
	/* doveadm dmarc --resolve: all lookups of one command together */ \
	X(TIME_MSECS, resolve_timeout, limits.resolve_timeout_msecs, 10 * 1000) \
	/* how long a looked-up name is kept: Dovecot's DNS client does not \
	   hand out the records' TTLs */ \
	X(TIME_MSECS, resolve_cache_time, limits.resolve_cache_msecs, 24 * 3600 * 1000) \
	/* lmtp keeps a user's database open between deliveries (see \
	   dmarc-store-cache.h); no: open and close it for each one */ \
	X(BOOL, store_cache, store_cache, TRUE) \
	/* one line per setting, above this comment */

#define MIB (1024ULL * 1024)

#endif
