#ifndef DMARC_SETTINGS_H
#define DMARC_SETTINGS_H

/* The dmarcreport_* settings shared by the Sieve and doveadm plugins
   (the list: dmarc-settings-list.h). The doors supply a lookup function
   (see dmarc-compat.h), so this file knows neither Sieve nor doveadm nor
   a particular Dovecot version. */

struct dmarc_limits {
	/* bytes of one decoded attachment as it came in the mail */
	uoff_t max_attachment_size;
	/* bytes of XML unpacked from one attachment (all zip entries) */
	uoff_t max_decompressed_size;
	/* bytes of XML unpacked from all attachments of one message */
	uoff_t max_message_decompressed_size;
	unsigned int max_attachments;
	/* MIME nesting levels looked into below the message itself */
	unsigned int max_mime_depth;
	unsigned int max_zip_entries;
	unsigned int max_records;
	unsigned int max_xml_depth;
	/* longer text values are cut at this many bytes */
	unsigned int max_value_length;
	/* DKIM and SPF results of one record */
	unsigned int max_auth_results;
	/* rows one report may add: its records and their auth results */
	unsigned int max_report_rows;
	/* CPU time one mail (or one imported file) may take, in ms */
	unsigned int max_processing_time_msecs;
	/* a delivery waits this long for another writer of the database,
	   then queues the report as pending */
	unsigned int lock_timeout_msecs;
	/* disk space the pending spool next to the database may take */
	uoff_t max_pending_size;
	/* bytes of one SMTP TLS report's JSON (parsed from memory) */
	uoff_t max_tls_report_size;
	/* bytes of one failure report's feedback-report part, or of the
	   header block of the reported message (parsed from memory) */
	uoff_t max_failure_report_size;
	/* policies plus failure-details entries of one SMTP TLS report */
	unsigned int max_tls_entries;
	/* doveadm dmarc --resolve: time for all lookups of one command,
	   and how long a name stays in the user's database */
	unsigned int resolve_timeout_msecs;
	unsigned int resolve_cache_msecs;
};

/* A long writer (import, expire) commits at least this often, so that a
   delivery waiting dmarcreport_lock_timeout for it gets its turn. */
#define DMARC_LOCK_TIMEOUT_BATCH_MSECS(lock_timeout_msecs) \
	I_MAX((lock_timeout_msecs) / 10, 1U)

struct dmarc_settings {
	const char *db_path;          /* absolute, "~" expanded */
	const char *archive_dir;      /* absolute, or NULL when disabled */
	/* keep the database open between deliveries (the Sieve door) */
	bool store_cache;
	struct dmarc_limits limits;
};

/* Returns the value of a setting as text ("50M", "1024", "~/x"), or NULL
   when unset (then the default applies). */
typedef const char *dmarc_setting_lookup_t(const char *name, void *context);

/* Read all settings with defaults; "~/" is expanded with home (which may
   be NULL when the user has none: then "~" settings are an error).
   Strings are allocated from pool. An error names the setting. */
int dmarc_settings_read(pool_t pool, dmarc_setting_lookup_t *lookup,
			void *context, const char *home,
			struct dmarc_settings *set_r, const char **error_r);

/* Defaults only, for tests and tools. */
void dmarc_limits_default(struct dmarc_limits *limits_r);

#endif
