#ifndef DMARC_FAILURE_H
#define DMARC_FAILURE_H

/* DMARC failure reports (RFC 6591 / RFC 9991 on the ARF of RFC 5965): the
   model and the parser of the message/feedback-report part, of the
   reported message's headers, and of text-only reports (Exim's). Values are unfolded, valid UTF-8 without
   control characters, cut at dmarcreport_max_value_length; fields that
   may repeat are joined by newlines; NULL when absent. */

struct dmarc_limits;

struct dmarc_failure_report {
	const char *feedback_type;        /* lower-case: "auth-failure" */
	const char *user_agent;
	const char *version;
	const char *arrival_date;         /* as sent */
	int64_t arrival_time;             /* parsed, or -1 */
	const char *source_ip;            /* normalised; IPv4-mapped as IPv4 */
	const char *original_envelope_id;
	const char *original_mail_from;
	const char *original_rcpt_to;
	const char *reporting_mta;
	const char *reported_domain;      /* lower-case */
	const char *incidents;
	const char *authentication_results;
	const char *auth_failure;         /* lower-case: "dmarc", "bodyhash" */
	const char *identity_alignment;
	const char *delivery_result;
	const char *dkim_domain;
	const char *dkim_identity;
	const char *dkim_selector;
	const char *dkim_canonicalized_header;
	const char *dkim_canonicalized_body;
	const char *spf_dns;
	const char *reported_uri;
	/* any other field, "Name: value" per line */
	const char *other_fields;

	/* headers of the reported message */
	const char *orig_from, *orig_to, *orig_subject, *orig_date;
	const char *orig_message_id;
	bool have_original;

	/* the feedback-report part without CRs, for the duplicate key */
	const char *arf_text;
};

/* Does the text start as a header block (a "Name:" line)? */
bool dmarc_failure_is_header_block(const unsigned char *data, size_t size);
/* Is it an ARF part: a header block with a Feedback-Type field? */
bool dmarc_failure_is_arf(const unsigned char *data, size_t size);

/* Is it a text-only failure report, as Exim sends them: a text with
   "Sender Domain:" and "Sender IP Address:" lines, no ARF part? */
bool dmarc_failure_is_text_report(const unsigned char *data, size_t size);

/* Parse a text-only failure report into a new report (from pool): its
   summary lines become the ARF fields they stand for (Sender Domain ->
   Reported-Domain, Sender IP Address -> Source-IP, Received Date ->
   Arrival-Date, SPF and DKIM Alignment -> Identity-Alignment, DMARC
   Results kept as another field) with Feedback-Type auth-failure and
   Auth-Failure dmarc, and the header block after its "------" line is
   the reported message's. Returns as dmarc_failure_parse_arf(). */
int dmarc_failure_parse_text(pool_t pool, const unsigned char *data,
			     size_t size, const struct dmarc_limits *limits,
			     struct dmarc_failure_report **report_r,
			     const char **error_r);

/* Parse a message/feedback-report part into a new report (from pool).
   Returns 0, or -1 with *error_r (no Feedback-Type, not auth-failure, a
   bad Source-IP). */
int dmarc_failure_parse_arf(pool_t pool, const unsigned char *data,
			    size_t size, const struct dmarc_limits *limits,
			    struct dmarc_failure_report **report_r,
			    const char **error_r);

/* One header of the reported message (decoded, unfolded): From, To,
   Subject, Date and Message-ID are kept (the first of each). */
void dmarc_failure_add_original_header(struct dmarc_failure_report *report,
				       pool_t pool,
				       const struct dmarc_limits *limits,
				       const char *name, const char *value);
/* A text/rfc822-headers part (or a message): its header block, RFC 2047
   words decoded, goes through dmarc_failure_add_original_header(). */
void dmarc_failure_parse_original(struct dmarc_failure_report *report,
				  pool_t pool,
				  const struct dmarc_limits *limits,
				  const unsigned char *data, size_t size);

#endif
