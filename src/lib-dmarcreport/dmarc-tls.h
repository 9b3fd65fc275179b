#ifndef DMARC_TLS_H
#define DMARC_TLS_H

/* SMTP TLS reports (RFC 8460): the model and its JSON parser. Strings
   are valid UTF-8 without control characters, cut at
   dmarcreport_max_value_length; NULL when absent. */

#include "array.h"

struct dmarc_limits;

/* RFC 8460 4.3: one failure-details entry */
struct dmarc_tls_failure {
	const char *result_type;           /* lower-case, unknown ones kept */
	const char *sending_mta_ip;        /* normalised; IPv4-mapped as IPv4 */
	const char *receiving_mx_hostname; /* lower-case, no trailing dot */
	const char *receiving_mx_helo;
	const char *receiving_ip;
	int64_t failed_session_count;      /* 0 when absent */
	const char *additional_information;
	const char *failure_reason_code;
};
ARRAY_DEFINE_TYPE(dmarc_tls_failure, struct dmarc_tls_failure);

struct dmarc_tls_policy {
	const char *policy_type;   /* "tlsa", "sts", "no-policy-found", ... */
	const char *policy_strings;/* joined by newlines, or NULL */
	const char *policy_domain; /* lower-case, no trailing dot; "" absent */
	const char *mx_hosts;      /* joined by newlines, or NULL */
	int64_t success_count, failure_count;
	ARRAY_TYPE(dmarc_tls_failure) failures;
};
ARRAY_DEFINE_TYPE(dmarc_tls_policy, struct dmarc_tls_policy);

struct dmarc_tls_report {
	const char *org_name;
	const char *contact_info;
	const char *report_id;
	int64_t date_begin, date_end;
	ARRAY_TYPE(dmarc_tls_policy) policies;
	/* non-fatal findings (counts sent as strings, ...), for debug */
	ARRAY_TYPE(const_string) warnings;
};

/* Parse one report from memory. The report is allocated from pool.
   Returns 0, or -1 with *error_r (not JSON, not a TLS report, a limit, a
   value out of range). Bounds: the nesting depth by max_xml_depth, the
   policies and failure-details entries together by max_tls_entries,
   values by max_value_length. */
int dmarc_tls_parse(pool_t pool, const unsigned char *data, size_t size,
		    const struct dmarc_limits *limits,
		    struct dmarc_tls_report **report_r, const char **error_r);

/* A value as the TLS parser stores it: lower-case, trimmed, without the
   trailing dot of a domain (for filters to take what is stored). */
const char *dmarc_tls_normalise_domain(const char *value);

#endif
