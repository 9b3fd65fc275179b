#ifndef DMARC_QUERY_H
#define DMARC_QUERY_H

/* Read side of the store for doveadm dmarc: filters and result rows.
   The door parses the command line; the filter holds parsed values. All
   SQL lives in dmarc-query*.c; every filter value is bound as a
   parameter. Rows handed to a callback are valid only during the call.
   Message counts summed over records never fail on overflow: they
   saturate at INT64_MAX (rates are computed before saturating). */

#include "net.h"

struct dmarc_store;

/* The filter fields, for negating one ("not dkim pass"). */
enum dmarc_query_field {
	DMARC_QUERY_FIELD_REPORT,
	DMARC_QUERY_FIELD_DOMAIN,
	DMARC_QUERY_FIELD_ORG,
	DMARC_QUERY_FIELD_SINCE,
	DMARC_QUERY_FIELD_UNTIL,
	DMARC_QUERY_FIELD_SOURCE,
	DMARC_QUERY_FIELD_DISPOSITION,
	DMARC_QUERY_FIELD_DKIM,
	DMARC_QUERY_FIELD_SPF,
	DMARC_QUERY_FIELD_RESULT,
	DMARC_QUERY_FIELD_HEADER_FROM,
	DMARC_QUERY_FIELD_TYPE,
};
#define DMARC_QUERY_FIELD_BIT(field) (1U << (field))

/* The order of list and query rows. */
enum dmarc_query_sort {
	DMARC_QUERY_SORT_BEGIN = 0,	/* oldest period first (default) */
	DMARC_QUERY_SORT_MESSAGES,	/* most messages first */
	DMARC_QUERY_SORT_SOURCE,	/* query only: by address, invalid
					   ones last */
};
/* "begin", "messages", "source" -> the order; FALSE when unknown. */
bool dmarc_query_sort_parse(const char *name, enum dmarc_query_sort *sort_r);

/* All set fields must match (AND). Report fields select reports; record
   fields select records, and a report is listed when one of its records
   matches, its figures then counting the matching records only. A field
   whose bit is in negated must not match instead (a record whose value is
   absent, or whose source_ip is not an address, does not match, so "not"
   selects it). */
struct dmarc_query_filter {
	bool have_report;
	int64_t report;           /* the report's id, as list prints it */
	unsigned int negated;     /* DMARC_QUERY_FIELD_BIT()s */
	/* ... of the fields given (the door's parser sets it, to name a
	   field in a message; the queries read the values) */
	unsigned int fields;
	/* at most this many rows (0: all) */
	unsigned int limit;
	enum dmarc_query_sort sort;

	/* report fields */
	const char *domain;       /* policy domain (compared lower-case) */
	const char *org;          /* reporter org_name (case-insensitive) */
	bool have_since, have_until;
	int64_t since;            /* date_begin >= since */
	int64_t until;            /* date_begin <= until (inclusive: no
				     end+1 to overflow at INT64_MAX) */
	/* "aggregate", "tls" or "failure": the kind of report list shows
	   (NULL: all; see dmarc-query-kinds.h) */
	const char *type;

	/* record fields */
	bool have_source;
	struct ip_addr source_ip; /* the network source_ip/source_bits */
	unsigned int source_bits;
	const char *disposition;  /* "none", "pass" (RFC 9990), "quarantine",
				     "reject" */
	const char *dkim;         /* policy_evaluated: "pass" or "fail" */
	const char *spf;
	int result;               /* DMARC result: -1 any, 0 fail, 1 pass */
	const char *header_from;  /* compared case-insensitively */
};

void dmarc_query_filter_init(struct dmarc_query_filter *filter_r);

/* The inclusive range of source_ip_key values (see dmarc_store_ip_key())
   of the network ip/bits. An IPv4 network is also the IPv4-mapped IPv6
   one, and an IPv4-mapped IPv6 network (::ffff:192.0.2.0/120) the IPv4
   one: both match the rows whichever way they were stored. */
void dmarc_query_source_range(const struct ip_addr *ip, unsigned int bits,
			      unsigned char min_r[16], unsigned char max_r[16]);

/* A stored value for doveadm's output: control characters (C0, DEL and
   the C1 range U+0080..U+009F) become "\t", "\n", "\r" or "\xHH" per
   byte, so that one value stays one cell of a tab, table or flow line and
   prints no terminal escape sequence. The parser stores no such character,
   but a database written by an older version may hold them. Returns value
   itself when there is nothing to escape (NULL stays NULL). */
const char *dmarc_query_escape(const char *value);

/* --- list: one row per report --- */
struct dmarc_query_report_row {
	int64_t id;
	const char *org_name, *report_id, *policy_domain;
	int64_t date_begin, date_end;
	const char *policy_p, *policy_sp, *policy_np, *policy_testing;
	int policy_pct;           /* -1 when absent */
	const char *archive_path; /* relative to the archive dir, or NULL */
	int64_t received;
	/* of the matching records */
	uint64_t records, messages, pass;
};
typedef int dmarc_query_report_callback_t(
	const struct dmarc_query_report_row *row, void *context);

/* Calls callback for each report, oldest first; a callback returning -1
   stops the walk and makes the call return -1 (its error in *error_r is
   then "callback failed"). Returns 0 or -1. */
int dmarc_query_list(struct dmarc_store *store,
		     const struct dmarc_query_filter *filter,
		     dmarc_query_report_callback_t *callback, void *context,
		     const char **error_r);

/* --- query: one row per record --- */
struct dmarc_query_record_row {
	int64_t report;           /* the report's id, for show */
	const char *policy_domain, *org_name, *report_id;
	int64_t date_begin, date_end;
	const char *source_ip;
	uint64_t count;
	const char *disposition, *dkim, *spf;
	bool dmarc_pass;
	const char *header_from, *envelope_from;
	/* "dkim=pass(example.com) spf=softfail(mail.example.com)" */
	const char *auth;
};
typedef int dmarc_query_record_callback_t(
	const struct dmarc_query_record_row *row, void *context);
int dmarc_query_records(struct dmarc_store *store,
			const struct dmarc_query_filter *filter,
			dmarc_query_record_callback_t *callback, void *context,
			const char **error_r);

/* --- query --group-by: one row per group, most messages first --- */
enum dmarc_query_group {
	DMARC_QUERY_GROUP_SOURCE,
	DMARC_QUERY_GROUP_DOMAIN,
	DMARC_QUERY_GROUP_ORG,
	DMARC_QUERY_GROUP_HEADER_FROM,
	DMARC_QUERY_GROUP_DAY,          /* of date_begin, UTC */
	DMARC_QUERY_GROUP_DISPOSITION,
};
/* "source", "domain", ... -> the group; FALSE when unknown. */
bool dmarc_query_group_parse(const char *name,
			     enum dmarc_query_group *group_r);
/* The group's name as dmarc_query_group_parse() takes it. */
const char *dmarc_query_group_name(enum dmarc_query_group group);

struct dmarc_query_group_row {
	const char *key;          /* "" when the value was absent */
	uint64_t messages, pass, fail;
	double pass_rate;         /* percent; 0 when messages is 0 */
};
typedef int dmarc_query_group_callback_t(
	const struct dmarc_query_group_row *row, void *context);
int dmarc_query_groups(struct dmarc_store *store,
		       const struct dmarc_query_filter *filter,
		       enum dmarc_query_group group,
		       dmarc_query_group_callback_t *callback, void *context,
		       const char **error_r);

/* --- summary: one row per policy domain --- */

/* Below this many messages a domain gets "too little data". */
#define DMARC_QUERY_SUMMARY_MIN_MESSAGES 100
/* At or above this DMARC pass rate (percent) a domain is ready. */
#define DMARC_QUERY_SUMMARY_READY_PASS_RATE 98.0
/* How many failing sources the summary names. */
#define DMARC_QUERY_SUMMARY_TOP_SOURCES 3

struct dmarc_query_source_count {
	const char *source_ip;
	uint64_t messages;
};

struct dmarc_query_summary_row {
	const char *policy_domain;
	uint64_t reports, messages, pass, dkim_aligned, spf_aligned;
	double pass_rate, dkim_rate, spf_rate; /* percent */
	/* sources with messages failing DMARC */
	uint64_t failing_sources;
	/* most failing messages first, at most _TOP_SOURCES */
	const struct dmarc_query_source_count *top_failing;
	unsigned int top_failing_count;
	/* "ready for p=reject", "fix first: 192.0.2.1 (120 msgs failing), ..."
	   (", and 12 more sources" when there are more than those named) or
	   "too little data (12 msgs)" */
	const char *verdict;
};
typedef int dmarc_query_summary_callback_t(
	const struct dmarc_query_summary_row *row, void *context);
int dmarc_query_summary(struct dmarc_store *store,
			const struct dmarc_query_filter *filter,
			dmarc_query_summary_callback_t *callback, void *context,
			const char **error_r);

/* --- report: the aggregates doveadm dmarc report draws ---
   Sums and top lists only, never raw rows: the work and the result stay
   bounded whatever the database holds. */

/* Domains with a section of their own, most messages first; the rest are
   counted in one line. */
#define DMARC_QUERY_REPORT_MAX_DOMAINS 20
/* Sources listed per domain: the most mail, and the most failing mail. */
#define DMARC_QUERY_REPORT_TOP_SOURCES 10
/* Reporters listed per domain. */
#define DMARC_QUERY_REPORT_TOP_REPORTERS 10
/* Policy variants listed per domain (each a change seen by reporters). */
#define DMARC_QUERY_REPORT_MAX_POLICIES 20
/* At most this many days (then weeks, months, years) on a time axis. */
#define DMARC_QUERY_REPORT_MAX_BUCKETS 62

enum dmarc_query_bucket_size {
	DMARC_QUERY_BUCKET_DAY,
	DMARC_QUERY_BUCKET_WEEK,        /* starting on Monday, UTC */
	DMARC_QUERY_BUCKET_MONTH,
	DMARC_QUERY_BUCKET_YEAR,
};

/* The first second of the bucket holding t, and of the one after it. */
int64_t dmarc_query_bucket_start(enum dmarc_query_bucket_size size,
				 int64_t t);
int64_t dmarc_query_bucket_next(enum dmarc_query_bucket_size size,
				int64_t start);

/* One time bucket of one domain (by report date_begin). */
struct dmarc_query_report_bucket {
	int64_t start;
	uint64_t messages, pass, dkim_aligned, spf_aligned;
	/* the dispositions receivers applied; other: RFC 9990's "pass" and
	   records that had none */
	uint64_t none, quarantine, reject, other;
};

struct dmarc_query_report_source {
	const char *source_ip;
	/* its verified name from the --resolve cache (resolved_names),
	   NULL when none is cached */
	const char *name;
	uint64_t messages, pass, dkim_aligned, spf_aligned;
};

struct dmarc_query_report_reporter {
	const char *org_name;
	uint64_t reports, messages, pass;
};

/* One published policy as reporters saw it; a domain with more than one
   changed its policy during the period (oldest first). */
struct dmarc_query_report_policy {
	const char *p, *sp, *np, *adkim, *aspf, *fo, *testing;
	int pct;                  /* -1 when absent */
	int64_t first_seen, last_seen; /* date_begin of its first/last report */
	uint64_t reports;
};

struct dmarc_query_report_domain {
	/* as doveadm dmarc summary gives it: figures, verdict, reasons */
	struct dmarc_query_summary_row summary;
	/* every bucket of the period, in order, empty ones included */
	const struct dmarc_query_report_bucket *buckets;
	unsigned int bucket_count;
	/* most messages first */
	const struct dmarc_query_report_source *top_sources;
	unsigned int top_source_count;
	/* most failing messages first; only sources with failures */
	const struct dmarc_query_report_source *failing_sources;
	unsigned int failing_source_count;
	const struct dmarc_query_report_reporter *reporters;
	unsigned int reporter_count;
	const struct dmarc_query_report_policy *policies;
	unsigned int policy_count;
};

/* SMTP TLS reports (RFC 8460) per policy domain, as doveadm dmarc tls
   --group-by policy-domain counts them. */
struct dmarc_query_report_tls {
	const char *policy_domain;
	uint64_t success, failure;
};

struct dmarc_query_report {
	/* the charted period: the first bucket's start and the last
	   second of the last bucket */
	int64_t begin, end;
	enum dmarc_query_bucket_size bucket_size;
	unsigned int bucket_count;
	/* some reports began outside begin..end (more buckets than the
	   charts hold): they count in the figures, not in the charts */
	bool charts_cut;

	const struct dmarc_query_report_domain *domains;
	unsigned int domain_count;
	/* domains beyond DMARC_QUERY_REPORT_MAX_DOMAINS */
	unsigned int more_domains;
	uint64_t more_domains_messages;

	bool have_tls;            /* the database holds TLS reports */
	const struct dmarc_query_report_tls *tls;
	unsigned int tls_count;
};

/* The aggregates of the filtered records, in one pass over them in the
   database's index order (no sort of the records): *report_r is freed
   with dmarc_query_report_free(), also after an error. now is the end of
   an open "since" period. A period with no records gives domain_count 0.
   Memory grows with the distinct sources and reporters of one domain and
   the days of the period, not with the records. Returns 0 or -1. */
int dmarc_query_report(struct dmarc_store *store,
		       const struct dmarc_query_filter *filter, time_t now,
		       struct dmarc_query_report **report_r,
		       const char **error_r);
void dmarc_query_report_free(struct dmarc_query_report **report);

/* --- names of sources (doveadm dmarc --resolve) ---
   The lookups themselves are the door's (Dovecot's DNS client); the
   store keeps their answers. */

/* 1 and *name_r (NULL: no verified name) when ip has an unexpired entry
   at now, 0 when not, -1 on error. */
int dmarc_query_resolved_get(struct dmarc_store *store, const char *ip,
			     int64_t now, const char **name_r,
			     const char **error_r);
/* Keeps name (or NULL) for ip until expires. The store must be open for
   writing. */
int dmarc_query_resolved_put(struct dmarc_store *store, const char *ip,
			     const char *name, int64_t expires,
			     const char **error_r);

/* --- show: one report of any kind, everything stored of it ---
   The report is handed over as a tree of named values, in order, the way
   a JSON writer takes it: an object per report, lists of objects for its
   records (TLS: policies with their failure details). Records are read
   one at a time, so memory does not grow with the report. The keys are
   those of doveadm dmarc show -f json. Values are valid during the call
   only. */
enum dmarc_query_kind {
	DMARC_QUERY_KIND_AGGREGATE,
	DMARC_QUERY_KIND_TLS,
	DMARC_QUERY_KIND_FAILURE,
};

struct dmarc_query_show_output {
	/* key is NULL for the items of a list */
	void (*object_begin)(void *context, const char *key);
	void (*object_end)(void *context);
	void (*list_begin)(void *context, const char *key);
	void (*list_end)(void *context);
	/* value NULL: absent (null) */
	void (*str)(void *context, const char *key, const char *value);
	void (*num)(void *context, const char *key, int64_t value);
	void (*boolean)(void *context, const char *key, bool value);
	/* a date, Unix seconds */
	void (*time)(void *context, const char *key, int64_t value);
};

/* A report by its id (as list prints it for its type), or by org_name
   (compared case-insensitively) and report_id: an aggregate report once
   per policy domain, a TLS report once. Failure reports have ids only. */
struct dmarc_query_show_key {
	enum dmarc_query_kind kind;
	int64_t id;
	const char *org_name, *report_id; /* report_id NULL: by id */
};

/* The top-level keys of a kind's reports, in the order output gets
   them; NULL-terminated. */
const char *const *dmarc_query_show_fields(enum dmarc_query_kind kind);

/* Hands each matching report to output. Returns 1 when one was found, 0
   when none, -1 on error (a report may then be handed over in part). */
int dmarc_query_show(struct dmarc_store *store,
		     const struct dmarc_query_show_key *key,
		     const struct dmarc_query_show_output *output,
		     void *context, const char **error_r);

#endif
