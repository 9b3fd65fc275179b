#ifndef DMARC_QUERY_KINDS_H
#define DMARC_QUERY_KINDS_H

/* The read side of SMTP TLS and DMARC failure reports for doveadm dmarc
   (list, tls, failures, summary). Filters are those of
   dmarc-query.h: domain (the policy domain of a TLS policy, the
   Reported-Domain of a failure report), org (organization-name; a
   failure report's Reporting-MTA or User-Agent), since/until (the date
   range's begin; a failure report's Arrival-Date, else when it was
   stored), source (a failure report's Source-IP) and report (the id, when
   type names the kind; without a type it is an aggregate report's); each
   may be negated. The other record fields select aggregate records only,
   so with one of them set these functions return no rows. A database of schema version 1 opened
   read-only has no such reports: no rows either. */

#include "dmarc-query.h"

/* --- list: TLS and failure reports as rows of doveadm dmarc list --- */
struct dmarc_query_kind_row {
	const char *type;         /* "tls" or "failure" */
	int64_t id;               /* for show --type <type> */
	const char *org_name, *report_id, *domain;
	int64_t date_begin, date_end;
	/* TLS: policies, sessions, successful sessions;
	   failure: 1, incidents (1 when not given), 0 */
	uint64_t records, messages, pass;
	/* TLS: policy types; failure: Auth-Failure */
	const char *policy;
	const char *archive_path;
};
typedef int dmarc_query_kind_callback_t(
	const struct dmarc_query_kind_row *row, void *context);
/* TLS reports, then failure reports, oldest first; as filter->type says.
   Returns as dmarc_query_list(). */
int dmarc_query_list_kinds(struct dmarc_store *store,
			   const struct dmarc_query_filter *filter,
			   dmarc_query_kind_callback_t *callback, void *context,
			   const char **error_r);

/* --- tls: one row per policy --- */
struct dmarc_query_tls_row {
	const char *org_name, *report_id;
	int64_t date_begin, date_end;
	const char *policy_type, *policy_domain, *mx_hosts;
	uint64_t sessions, failures;
	double success_rate;      /* percent; 0 without sessions */
	/* "certificate-expired:100 validation-failure:3" */
	const char *failure_details;
};
typedef int dmarc_query_tls_callback_t(
	const struct dmarc_query_tls_row *row, void *context);
int dmarc_query_tls(struct dmarc_store *store,
		    const struct dmarc_query_filter *filter,
		    dmarc_query_tls_callback_t *callback, void *context,
		    const char **error_r);

/* --- tls --group-by --- */
enum dmarc_query_tls_group {
	DMARC_QUERY_TLS_GROUP_POLICY_DOMAIN,
	DMARC_QUERY_TLS_GROUP_MX,
	DMARC_QUERY_TLS_GROUP_RESULT_TYPE,
	DMARC_QUERY_TLS_GROUP_SENDING_IP,
	DMARC_QUERY_TLS_GROUP_DAY,
};
/* "policy-domain", "mx", "result-type", "sending-ip", "day" */
bool dmarc_query_tls_group_parse(const char *name,
				 enum dmarc_query_tls_group *group_r);
/* For policy-domain, mx and day, sessions are all sessions of the
   policies and failures their failed ones. RFC 8460 gives result types
   and sending IPs for failed sessions only: for those groups sessions
   are the failed sessions of the failure-details entries (the success
   rate is then 0). Most sessions first. */
struct dmarc_query_tls_group_row {
	const char *key;          /* "" when absent */
	uint64_t sessions, failures;
	double success_rate;
};
typedef int dmarc_query_tls_group_callback_t(
	const struct dmarc_query_tls_group_row *row, void *context);
int dmarc_query_tls_groups(struct dmarc_store *store,
			   const struct dmarc_query_filter *filter,
			   enum dmarc_query_tls_group group,
			   dmarc_query_tls_group_callback_t *callback,
			   void *context, const char **error_r);

/* --- failures: one row per failure report, oldest first --- */
struct dmarc_query_failure_row {
	int64_t arrival;          /* Arrival-Date, else when stored */
	const char *reported_domain, *source_ip, *auth_failure;
	const char *delivery_result, *original_mail_from;
	const char *orig_from, *orig_subject, *orig_message_id;
	const char *user_agent, *archive_path;
};
typedef int dmarc_query_failure_callback_t(
	const struct dmarc_query_failure_row *row, void *context);
int dmarc_query_failures(struct dmarc_store *store,
			 const struct dmarc_query_filter *filter,
			 dmarc_query_failure_callback_t *callback,
			 void *context, const char **error_r);

/* --- summary: TLS sessions of one policy domain --- */
/* *sessions_r = 0 when the domain has no TLS report (matching filter's
   dates). */
int dmarc_query_tls_domain_rate(struct dmarc_store *store,
				const struct dmarc_query_filter *filter,
				const char *domain, uint64_t *sessions_r,
				double *success_rate_r, const char **error_r);

#endif
