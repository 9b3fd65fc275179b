#ifndef DOVEADM_DMARC_FILTER_H
#define DOVEADM_DMARC_FILTER_H

/* Search-query-style filter words ("domain example.com since 30d
   source 192.0.2.0/24 ...") -> struct dmarc_query_filter. */

struct dmarc_query_filter;

/* Words are "name value" pairs, names case-insensitive, all combined with
   AND. now is the reference for intervals ("30d"). Returns 0, or -1 with
   an error naming the offending word. */
int doveadm_dmarc_filter_parse(const char *const *args, time_t now,
			       struct dmarc_query_filter *filter_r,
			       const char **error_r);

/* One line listing the words, for usage texts. */
#define DOVEADM_DMARC_FILTER_USAGE "[<filter>...]"

#endif
