#ifndef DOVEADM_DMARC_FILTER_H
#define DOVEADM_DMARC_FILTER_H

/* Search-query-style filter words ("domain example.com since 30d
   source 192.0.2.0/24 ...") -> struct dmarc_query_filter. */

struct dmarc_query_filter;
struct ip_addr;

/* Words are "name value" pairs, names case-insensitive, all combined with
   AND. now is the reference for intervals ("30d"). Returns 0, or -1 with
   an error naming the offending word. */
int doveadm_dmarc_filter_parse(const char *const *args, time_t now,
			       struct dmarc_query_filter *filter_r,
			       const char **error_r);

/* -1 with an error naming the first word that does not apply to reports
   of kind ("aggregate", "tls", "failure"; "disposition" and the other
   aggregate record fields apply to aggregate reports only), or a type
   filter naming another kind. */
int doveadm_dmarc_filter_check_kind(const struct dmarc_query_filter *filter,
				    const char *kind, const char **error_r);

/* A date as "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ" (UTC, as list prints
   it), Unix seconds (0 to INT64_MAX), or an interval ago like
   doveadm search: "30d", "12h", "2w", "90m", "45s" (relative to now).
   *start_r is its first second, *last_r its last: the same second, or the
   day's last for "YYYY-MM-DD" (so "until 2024-01-31" includes that day).
   Both are in 0..INT64_MAX and need no arithmetic at the edges. */
int doveadm_dmarc_filter_parse_date(const char *str, time_t now,
				    int64_t *start_r, int64_t *last_r,
				    const char **error_r);

/* An IPv4/IPv6 address or CIDR ("192.0.2.0/24", "2001:db8::/32",
   "[2001:db8::1]"), IPv4 written out as reports write it (not "192.0.2"
   or "0x7f.1", which inet_aton() takes). */
int doveadm_dmarc_filter_parse_source(const char *str, struct ip_addr *ip_r,
				      unsigned int *bits_r,
				      const char **error_r);

/* One line listing the words, for usage texts. */
#define DOVEADM_DMARC_FILTER_USAGE "[<filter>...]"

#endif
