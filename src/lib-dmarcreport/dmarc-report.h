#ifndef DMARC_REPORT_H
#define DMARC_REPORT_H

/* The model of one DMARC aggregate report (RFC 7489 appendix C, RFC 9990
   appendix A). Plain structs: the parser fills them, the store reads them.
   All strings are normalised UTF-8 (trimmed; enumerated values lower-case)
   or NULL when the element was absent. */

#include "array.h"

/* A counted value that was absent in the report. */
#define DMARC_UNSET (-1)

/* The most messages one record, and one report in total, may count.
   RFC 7489 appendix C leaves <count> unbounded (xs:integer); a report
   covers one reporting interval of one receiver for one domain (a day by
   default, RFC 7489 section 7.2), and 10^12 messages a day is eleven
   million a second. Below it, sums over up to 9 million reports fit in
   an int64_t. */
#define DMARC_MAX_COUNT 1000000000000LL

enum dmarc_auth_type {
	DMARC_AUTH_DKIM,
	DMARC_AUTH_SPF,
};

struct dmarc_auth_result {
	enum dmarc_auth_type type;
	const char *domain;
	const char *selector;     /* DKIM only */
	const char *scope;        /* SPF only: "mfrom" or "helo" */
	const char *result;       /* "pass", "fail", "softfail", ... */
	const char *human_result; /* DKIM only */
};
ARRAY_DEFINE_TYPE(dmarc_auth_result, struct dmarc_auth_result);

struct dmarc_policy_override {
	const char *type;         /* "forwarded", "local_policy", ... */
	const char *comment;
};
ARRAY_DEFINE_TYPE(dmarc_policy_override, struct dmarc_policy_override);

/* One <record>. The parser reuses a single record (and its pool) for
   every record of a report: copy what must outlive the callback. */
struct dmarc_record {
	const char *source_ip;    /* normalised text form */
	int64_t count;
	/* "none", "quarantine", "reject"; RFC 9990 adds "pass" */
	const char *disposition;
	const char *dkim;         /* policy_evaluated: "pass" or "fail" */
	const char *spf;          /* policy_evaluated: "pass" or "fail" */
	ARRAY_TYPE(dmarc_policy_override) reasons;
	const char *header_from;
	const char *envelope_from;
	const char *envelope_to;
	ARRAY_TYPE(dmarc_auth_result) auth_results;
};

struct dmarc_policy_published {
	const char *domain;
	const char *adkim;        /* "r" or "s" */
	const char *aspf;
	const char *p;
	const char *sp;
	const char *np;           /* RFC 9990 */
	int pct;                  /* RFC 7489 only; DMARC_UNSET when absent */
	const char *fo;
	const char *testing;      /* RFC 9990: "y" or "n" */
	const char *discovery_method; /* RFC 9990: "psl" or "treewalk" */
};

struct dmarc_report {
	/* "1.0" for RFC 7489 reports without <version>, else the value */
	const char *version;
	bool is_dmarc2_namespace;

	/* report_metadata */
	const char *org_name;     /* never NULL: "" when empty or absent */
	const char *email;
	const char *extra_contact_info;
	const char *report_id;
	int64_t date_begin;
	int64_t date_end;
	const char *generator;    /* RFC 9990 */
	ARRAY_TYPE(const_string) errors;

	struct dmarc_policy_published policy;
};

#endif
