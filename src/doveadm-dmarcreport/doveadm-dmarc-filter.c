/* Filter words of doveadm dmarc list/query/summary/tls/failures, in the
   manner of a doveadm search query: "name value" pairs combined with AND.
   Dates and networks are parsed here; the values fill a struct that
   dmarc-query.c turns into bound SQL. */

#include "lib.h"
#include "net.h"
#include "strnum.h"
#include "dmarc-compat.h"
#include "dmarc-compat-lib.h"
#include "dmarc-parse.h"
#include "dmarc-query.h"
#include "doveadm-dmarc-filter.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <time.h>

/* The kinds of report a word applies to */
#define KIND_AGGREGATE 0x1
#define KIND_TLS 0x2
#define KIND_FAILURE 0x4
#define KIND_ALL (KIND_AGGREGATE | KIND_TLS | KIND_FAILURE)

struct filter_word {
	const char *name;
	enum dmarc_query_field field;
	unsigned int kinds;
	int (*parse)(struct dmarc_query_filter *filter, const char *value,
		     time_t now, const char **error_r);
};

/* One of the values the parser can store (any case): the filter compares
   lower-case. */
static int
parse_enum(const char *name, const char *value, const char *const *values,
	   const char **result_r, const char **error_r)
{
	unsigned int i;

	for (i = 0; values[i] != NULL; i++) {
		if (strcasecmp(value, values[i]) == 0) {
			*result_r = values[i];
			return 0;
		}
	}
	*error_r = t_strdup_printf("Filter %s: expected %s, not '%s'",
				   name, t_strarray_join(values, "|"), value);
	return -1;
}

int doveadm_dmarc_filter_parse_date(const char *str, time_t now,
				    int64_t *start_r, int64_t *last_r,
				    const char **error_r)
{
	unsigned int year, month, day;
	uintmax_t num;
	const char *end;
	struct tm tm;
	time_t t;

	unsigned int hour, min, sec;

	/* what list prints: 2024-01-31T00:00:00Z */
	if (strlen(str) == 20 && str[10] == 'T' && str[19] == 'Z' &&
	    sscanf(str, "%4u-%2u-%2uT%2u:%2u:%2u", &year, &month, &day,
		   &hour, &min, &sec) == 6 && str[4] == '-' && str[7] == '-' &&
	    str[13] == ':' && str[16] == ':' && hour < 24 && min < 60 &&
	    sec < 61 && month >= 1 && month <= 12 && day >= 1 &&
	    year >= 1970) {
		i_zero(&tm);
		tm.tm_year = year - 1900;
		tm.tm_mon = month - 1;
		tm.tm_mday = day;
		tm.tm_hour = hour;
		tm.tm_min = min;
		tm.tm_sec = sec;
		t = timegm(&tm);
		if (t == (time_t)-1 || tm.tm_mday != (int)day)
			goto invalid;
		*start_r = *last_r = t;
		return 0;
	}
	if (str_parse_uintmax(str, &num, &end) == 0 && end != str) {
		const char *interval_error;
		unsigned int secs;

		if (*end == '\0') {
			/* Unix seconds */
			if (num > INT64_MAX)
				goto invalid;
			*start_r = *last_r = (int64_t)num;
			return 0;
		}
		/* an interval back from now, as Dovecot's settings take
		   them: 30d, 12 hours, 2w */
		if (str_parse_get_interval(str, &secs, &interval_error) == 0) {
			if ((time_t)secs > now)
				goto invalid;
			*start_r = *last_r = (int64_t)now - secs;
			return 0;
		}
		if (sscanf(str, "%4u-%2u-%2u", &year, &month,
					&day) == 3 && strlen(str) == 10 &&
		    str[4] == '-' && str[7] == '-' &&
		    month >= 1 && month <= 12 && day >= 1 && day <= 31 &&
		    year >= 1970) {
			i_zero(&tm);
			tm.tm_year = year - 1900;
			tm.tm_mon = month - 1;
			tm.tm_mday = day;
			t = timegm(&tm);
			/* timegm() normalises 2024-02-31: refuse it */
			if (t == (time_t)-1 || tm.tm_mday != (int)day)
				goto invalid;
			/* year <= 9999: far from any limit */
			*start_r = t;
			*last_r = t + 24*60*60 - 1;
			return 0;
		}
	}
invalid:
	*error_r = t_strdup_printf("Invalid date '%s' "
		"(use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, Unix seconds, "
		"or an interval like 30d)", str);
	return -1;
}

int doveadm_dmarc_filter_parse_source(const char *str, struct ip_addr *ip_r,
				      unsigned int *bits_r,
				      const char **error_r)
{
	struct in_addr addr4;

	/* Dovecot's parser: an address ("[...]" around IPv6 too) and an
	   optional /bits no longer than the address */
	if (net_parse_range(str, ip_r, bits_r) < 0) {
		*error_r = t_strdup_printf(
			"Invalid IP address or network '%s'", str);
		return -1;
	}
	/* inet_aton() behind it also takes "192.0.2" or "0x7f.1": an IPv4
	   address must be written out as reports write it */
	if (IPADDR_IS_V4(ip_r) &&
	    inet_pton(AF_INET, t_strcut(str, '/'), &addr4) != 1) {
		*error_r = t_strdup_printf(
			"Invalid IP address or network '%s'", str);
		return -1;
	}
	return 0;
}

static int filter_domain(struct dmarc_query_filter *filter, const char *value,
			 time_t now ATTR_UNUSED, const char **error_r ATTR_UNUSED)
{
	filter->domain = value;
	return 0;
}

static int filter_org(struct dmarc_query_filter *filter, const char *value,
		      time_t now ATTR_UNUSED, const char **error_r ATTR_UNUSED)
{
	filter->org = value;
	return 0;
}

static int filter_since(struct dmarc_query_filter *filter, const char *value,
			time_t now, const char **error_r)
{
	int64_t last;

	if (doveadm_dmarc_filter_parse_date(value, now, &filter->since, &last,
					    error_r) < 0)
		return -1;
	filter->have_since = TRUE;
	return 0;
}

static int filter_until(struct dmarc_query_filter *filter, const char *value,
			time_t now, const char **error_r)
{
	int64_t start;

	/* "until 2024-01-31" includes that day */
	if (doveadm_dmarc_filter_parse_date(value, now, &start,
					    &filter->until, error_r) < 0)
		return -1;
	filter->have_until = TRUE;
	return 0;
}

static int filter_source(struct dmarc_query_filter *filter, const char *value,
			 time_t now ATTR_UNUSED, const char **error_r)
{
	if (doveadm_dmarc_filter_parse_source(value, &filter->source_ip,
					      &filter->source_bits,
					      error_r) < 0)
		return -1;
	filter->have_source = TRUE;
	return 0;
}

static int
filter_disposition(struct dmarc_query_filter *filter, const char *value,
		   time_t now ATTR_UNUSED, const char **error_r)
{
	/* RFC 7489's none|quarantine|reject and RFC 9990's pass */
	return parse_enum("disposition", value, dmarc_parse_disposition_values,
			  &filter->disposition, error_r);
}

static int filter_dkim(struct dmarc_query_filter *filter, const char *value,
		       time_t now ATTR_UNUSED, const char **error_r)
{
	return parse_enum("dkim", value, dmarc_parse_result_values,
			  &filter->dkim, error_r);
}

static int filter_spf(struct dmarc_query_filter *filter, const char *value,
		      time_t now ATTR_UNUSED, const char **error_r)
{
	return parse_enum("spf", value, dmarc_parse_result_values,
			  &filter->spf, error_r);
}

static int filter_result(struct dmarc_query_filter *filter, const char *value,
			 time_t now ATTR_UNUSED, const char **error_r)
{
	const char *result;

	/* the DMARC result is pass or fail like the dkim and spf ones */
	if (parse_enum("result", value, dmarc_parse_result_values, &result,
		       error_r) < 0)
		return -1;
	filter->result = strcmp(result, "pass") == 0 ? 1 : 0;
	return 0;
}

static int
filter_header_from(struct dmarc_query_filter *filter, const char *value,
		   time_t now ATTR_UNUSED, const char **error_r ATTR_UNUSED)
{
	filter->header_from = value;
	return 0;
}

static int filter_report(struct dmarc_query_filter *filter, const char *value,
			 time_t now ATTR_UNUSED, const char **error_r)
{
	if (str_to_int64(value, &filter->report) < 0 || filter->report <= 0) {
		*error_r = t_strdup_printf("Filter report: expected an id as "
					   "list prints it, not '%s'", value);
		return -1;
	}
	filter->have_report = TRUE;
	return 0;
}

static int filter_type(struct dmarc_query_filter *filter, const char *value,
		       time_t now ATTR_UNUSED, const char **error_r)
{
	static const char *const types[] = {
		"aggregate", "tls", "failure", NULL
	};

	return parse_enum("type", value, types, &filter->type, error_r);
}

static const struct filter_word filter_words[] = {
	/* ids are per kind (list's type column) */
	{ "report", DMARC_QUERY_FIELD_REPORT, KIND_ALL, filter_report },
	{ "domain", DMARC_QUERY_FIELD_DOMAIN, KIND_ALL, filter_domain },
	{ "org", DMARC_QUERY_FIELD_ORG, KIND_ALL, filter_org },
	{ "since", DMARC_QUERY_FIELD_SINCE, KIND_ALL, filter_since },
	{ "until", DMARC_QUERY_FIELD_UNTIL, KIND_ALL, filter_until },
	/* a failure report's Source-IP */
	{ "source", DMARC_QUERY_FIELD_SOURCE, KIND_AGGREGATE | KIND_FAILURE,
	  filter_source },
	{ "disposition", DMARC_QUERY_FIELD_DISPOSITION, KIND_AGGREGATE,
	  filter_disposition },
	{ "dkim", DMARC_QUERY_FIELD_DKIM, KIND_AGGREGATE, filter_dkim },
	{ "spf", DMARC_QUERY_FIELD_SPF, KIND_AGGREGATE, filter_spf },
	{ "result", DMARC_QUERY_FIELD_RESULT, KIND_AGGREGATE, filter_result },
	{ "header_from", DMARC_QUERY_FIELD_HEADER_FROM, KIND_AGGREGATE,
	  filter_header_from },
	/* not "not type": the kind is a table, not a condition */
	{ "type", DMARC_QUERY_FIELD_TYPE, KIND_ALL, filter_type },
};

static const struct filter_word *filter_word_find(const char *name)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(filter_words); i++) {
		if (strcasecmp(filter_words[i].name, name) == 0)
			return &filter_words[i];
	}
	return NULL;
}

int doveadm_dmarc_filter_parse(const char *const *args, time_t now,
			       struct dmarc_query_filter *filter_r,
			       const char **error_r)
{
	const struct filter_word *word;
	bool negate;

	dmarc_query_filter_init(filter_r);
	for (; *args != NULL; args += 2) {
		/* "not dkim pass": the next word must not match */
		negate = strcasecmp(args[0], "not") == 0;
		if (negate && *++args == NULL) {
			*error_r = "Filter not needs a filter after it";
			return -1;
		}
		word = filter_word_find(args[0]);
		if (word == NULL) {
			*error_r = t_strdup_printf("Unknown filter '%s' "
				"(known: report, domain, org, since, until, "
				"source, disposition, dkim, spf, result, "
				"header_from, type, each after not)", args[0]);
			return -1;
		}
		if (negate && word->field == DMARC_QUERY_FIELD_TYPE) {
			*error_r = "Filter type cannot be negated";
			return -1;
		}
		if (negate)
			filter_r->negated |= DMARC_QUERY_FIELD_BIT(word->field);
		filter_r->fields |= DMARC_QUERY_FIELD_BIT(word->field);
		if (args[1] == NULL) {
			*error_r = t_strdup_printf(
				"Filter %s needs a value", word->name);
			return -1;
		}
		if (word->parse(filter_r, args[1], now, error_r) < 0)
			return -1;
	}
	return 0;
}

int doveadm_dmarc_filter_check_kind(const struct dmarc_query_filter *filter,
				    const char *kind, const char **error_r)
{
	static const char *const kinds[] = { "aggregate", "tls", "failure" };
	unsigned int i, kind_bit = 0;

	for (i = 0; i < N_ELEMENTS(kinds); i++) {
		if (strcmp(kinds[i], kind) == 0)
			kind_bit = 1U << i;
	}
	i_assert(kind_bit != 0);
	for (i = 0; i < N_ELEMENTS(filter_words); i++) {
		if ((filter->fields &
		     DMARC_QUERY_FIELD_BIT(filter_words[i].field)) != 0 &&
		    (filter_words[i].kinds & kind_bit) == 0) {
			*error_r = t_strdup_printf(
				"Filter %s does not apply to %s reports",
				filter_words[i].name, kind);
			return -1;
		}
	}
	if (filter->type != NULL && strcmp(filter->type, kind) != 0) {
		*error_r = t_strdup_printf("Filter type %s: this command "
					   "shows %s reports", filter->type,
					   kind);
		return -1;
	}
	return 0;
}
