/* Filter words of doveadm dmarc list/query/summary, in the manner of a
   doveadm search query: "name value" pairs combined with AND. The values
   only fill a struct; dmarc-query.c turns it into bound SQL. */

#include "lib.h"
#include "dmarc-parse.h"
#include "dmarc-query.h"
#include "doveadm-dmarc-filter.h"

struct filter_word {
	const char *name;
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

	if (dmarc_query_parse_date(value, now, &filter->since, &last,
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
	if (dmarc_query_parse_date(value, now, &start, &filter->until,
				   error_r) < 0)
		return -1;
	filter->have_until = TRUE;
	return 0;
}

static int filter_source(struct dmarc_query_filter *filter, const char *value,
			 time_t now ATTR_UNUSED, const char **error_r)
{
	if (dmarc_query_parse_source(value, filter->source_min,
				     filter->source_max, error_r) < 0)
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

static int filter_type(struct dmarc_query_filter *filter, const char *value,
		       time_t now ATTR_UNUSED, const char **error_r)
{
	static const char *const types[] = {
		"aggregate", "tls", "failure", NULL
	};

	return parse_enum("type", value, types, &filter->type, error_r);
}

static const struct filter_word filter_words[] = {
	{ "domain", filter_domain },
	{ "org", filter_org },
	{ "since", filter_since },
	{ "until", filter_until },
	{ "source", filter_source },
	{ "disposition", filter_disposition },
	{ "dkim", filter_dkim },
	{ "spf", filter_spf },
	{ "result", filter_result },
	{ "header_from", filter_header_from },
	{ "type", filter_type },
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

	dmarc_query_filter_init(filter_r);
	for (; *args != NULL; args += 2) {
		word = filter_word_find(args[0]);
		if (word == NULL) {
			*error_r = t_strdup_printf("Unknown filter '%s' "
				"(known: domain, org, since, until, source, "
				"disposition, dkim, spf, result, header_from, "
				"type)",
				args[0]);
			return -1;
		}
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
