/* SMTP TLS report (RFC 8460) JSON -> struct dmarc_tls_report, with
   Dovecot's streaming JSON parser (see dmarc-compat-json.h).

   Decisions (tested in tests/test-dmarc-tls.c):
   - Required: the root is an object with report-id, date-range
     (start-datetime and end-datetime, RFC 3339) and a policies array.
     organization-name may be missing ("" then), as may contact-info.
   - Lenient, as real reporters are sloppy: a date-time without a zone
     (UTC, as Microsoft means it); counts sent as JSON strings
     ("42"); policy-type and result-type in any case (stored lower-case;
     unknown words kept); domains and MX names lower-cased without a
     trailing dot; policy-string and mx-host as a string or an array; a
     policy without policy-domain ("") or without counts (0).
   - Rejected: a count that is negative, not a number or above 2^63-1; an
     IP address that does not parse; a date that does not parse; nesting
     deeper than dmarcreport_max_xml_depth; more policies and
     failure-details entries than dmarcreport_max_tls_entries (the report
     is held in memory: this bounds it; real ones have a handful).
   - Repaired: bytes that are not UTF-8 become U+FFFD before the JSON
     parser sees them, on every Dovecot version (2.4's parser would refuse
     the document, 2.3's passes them on), as the aggregate XML filter
     does: RFC 8259 8.1 requires UTF-8 but section 9 lets a parser accept
     more, and RFC 8460's counts do not depend on a broken free-text
     member. Control characters become U+FFFD too (on 2.4 the JSON parser
     still refuses numbers past its range itself); values longer than
     dmarcreport_max_value_length are cut. Duplicate members: the last one
     wins (arrays add up). Unknown members are ignored, so is anything
     after the root object's end. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strnum.h"
#include "istream.h"
#include "net.h"
#include "unichar.h"
#include "iso8601-date.h"
#include "str-sanitize.h"
#include "dmarc-settings.h"
#include "dmarc-compat-json.h"
#include "dmarc-tls.h"

#include <ctype.h>

struct tls_parse {
	pool_t pool;
	const struct dmarc_limits *limits;
	struct dmarc_tls_report *report;
	struct dmarc_tls_policy *policy;
	struct dmarc_tls_failure *failure;
	/* policies and failure-details entries so far */
	unsigned int entries;

	/* where we are: "policies/[]/policy" */
	string_t *path;
	ARRAY(size_t) path_lengths;
	/* policy-string, mx-host: joined while their array is read */
	string_t *joined;

	bool have_begin, have_end, have_policies, have_report_id;
	bool count_as_string;
	const char *error;
};

static const char *quote(const char *value)
{
	return t_strdup_printf("\"%s\"", str_sanitize(value, 64));
}

/* Valid UTF-8 without control characters, at most max_value_length
   bytes. */
static const char *tls_value(struct tls_parse *ctx, const char *value)
{
	string_t *str;
	const char *p;
	size_t len = strlen(value);

	/* cut first, so that a long value is not copied whole */
	if (len > ctx->limits->max_value_length)
		len = ctx->limits->max_value_length;
	str = t_str_new(len + 16);
	if (uni_utf8_get_valid_data((const unsigned char *)value, len, str))
		str_append_data(str, value, len);
	for (p = str_c(str); *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			break;
	}
	if (*p != '\0') {
		string_t *clean = t_str_new(str_len(str) + 16);

		for (p = str_c(str); *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				str_append(clean, UNICODE_REPLACEMENT_CHAR_UTF8);
			else
				str_append_c(clean, *p);
		}
		str = clean;
	}
	/* U+FFFD replacements may have made it longer */
	len = uni_utf8_data_truncate(str_data(str), str_len(str),
				     ctx->limits->max_value_length);
	return p_strndup(ctx->pool, str_data(str), len);
}

const char *dmarc_tls_normalise_domain(const char *value)
{
	const char *p = t_str_lcase(t_str_trim(value, " \t\r\n"));
	size_t len = strlen(p);

	while (len > 0 && p[len - 1] == '.')
		len--;
	return t_strndup(p, len);
}

static int tls_count(struct tls_parse *ctx, enum dmarc_json_token token,
		     const char *name, const char *value, int64_t *count_r)
{
	const char *trimmed;

	if (token == DMARC_JSON_STRING) {
		/* sloppy reporters send "42" */
		ctx->count_as_string = TRUE;
		trimmed = t_str_trim(value, " \t\r\n");
	} else if (token == DMARC_JSON_NUMBER) {
		trimmed = value;
	} else {
		ctx->error = t_strdup_printf("%s is not a number", name);
		return -1;
	}
	if (str_to_int64(trimmed, count_r) < 0 || *count_r < 0) {
		ctx->error = t_strdup_printf("%s %s is not a count "
					     "(0 to 2^63-1)", name,
					     quote(value));
		return -1;
	}
	return 0;
}

static int tls_ip(struct tls_parse *ctx, const char *name, const char *value,
		  const char **ip_r)
{
	struct ip_addr ip, ip4;
	const char *trimmed = t_str_trim(value, " \t\r\n");

	if (*trimmed == '\0') {
		*ip_r = NULL;
		return 0;
	}
	if (net_addr2ip(trimmed, &ip) < 0) {
		ctx->error = t_strdup_printf("%s %s is not an IP address",
					     name, quote(value));
		return -1;
	}
	/* ::ffff:192.0.2.1 is 192.0.2.1, as the aggregate parser stores
	   it */
	if (net_ipv6_mapped_ipv4_convert(&ip, &ip4) == 0)
		ip = ip4;
	*ip_r = p_strdup(ctx->pool, net_ip2addr(&ip));
	return 0;
}

static int tls_date(struct tls_parse *ctx, const char *name,
		    const char *value, int64_t *date_r)
{
	const char *trimmed = t_str_trim(value, " \t\r\n");
	time_t t;
	int tz;

	/* Microsoft sends "2023-01-10T00:00:00", without the zone that
	   RFC 3339 requires: taken as UTC */
	if (!iso8601_date_parse((const unsigned char *)trimmed,
				strlen(trimmed), &t, &tz) &&
	    (strlen(trimmed) != 19 || trimmed[10] != 'T' ||
	     !iso8601_date_parse((const unsigned char *)
				 t_strconcat(trimmed, "Z", NULL), 20,
				 &t, &tz))) {
		ctx->error = t_strdup_printf("%s %s is not an RFC 3339 "
					     "date-time", name, quote(value));
		return -1;
	}
	*date_r = t;
	return 0;
}

static void join_append(string_t *joined, const char *value)
{
	if (str_len(joined) > 0)
		str_append_c(joined, '\n');
	str_append(joined, value);
}

/* A string, number or literal at path (its member name last). */
static int tls_value_token(struct tls_parse *ctx, enum dmarc_json_token token,
			   const char *path, const char *value)
{
	struct dmarc_tls_report *report = ctx->report;
	struct dmarc_tls_policy *policy = ctx->policy;
	struct dmarc_tls_failure *failure = ctx->failure;
	const char *leaf = strrchr(path, '/');

	leaf = leaf == NULL ? path : leaf + 1;
	if (token == DMARC_JSON_LITERAL && strcmp(value, "null") == 0)
		return 0;	/* as if absent */

	if (strcmp(path, "organization-name") == 0)
		report->org_name = tls_value(ctx, value);
	else if (strcmp(path, "contact-info") == 0)
		report->contact_info = tls_value(ctx, value);
	else if (strcmp(path, "report-id") == 0) {
		report->report_id = tls_value(ctx, t_str_trim(value, " \t\r\n"));
		ctx->have_report_id = *report->report_id != '\0';
	} else if (strcmp(path, "date-range/start-datetime") == 0) {
		if (tls_date(ctx, leaf, value, &report->date_begin) < 0)
			return -1;
		ctx->have_begin = TRUE;
	} else if (strcmp(path, "date-range/end-datetime") == 0) {
		if (tls_date(ctx, leaf, value, &report->date_end) < 0)
			return -1;
		ctx->have_end = TRUE;
	} else if (policy == NULL || strncmp(path, "policies/[]/", 12) != 0) {
		return 0;
	} else if ((path += 12, strcmp(path, "policy/policy-type")) == 0) {
		policy->policy_type = tls_value(ctx, t_str_lcase(
			t_str_trim(value, " \t\r\n")));
	} else if (strcmp(path, "policy/policy-string") == 0 ||
		   strcmp(path, "policy/policy-string/[]") == 0) {
		if (path[20] == '\0')
			str_truncate(ctx->joined, 0);
		join_append(ctx->joined, tls_value(ctx, value));
		policy->policy_strings = p_strdup(ctx->pool, str_c(ctx->joined));
	} else if (strcmp(path, "policy/policy-domain") == 0) {
		policy->policy_domain =
			tls_value(ctx, dmarc_tls_normalise_domain(value));
	} else if (strcmp(path, "policy/mx-host") == 0 ||
		   strcmp(path, "policy/mx-host/[]") == 0) {
		if (path[14] == '\0')
			str_truncate(ctx->joined, 0);
		join_append(ctx->joined,
			    tls_value(ctx, dmarc_tls_normalise_domain(value)));
		policy->mx_hosts = p_strdup(ctx->pool, str_c(ctx->joined));
	} else if (strcmp(path, "summary/total-successful-session-count") == 0) {
		return tls_count(ctx, token, leaf, value, &policy->success_count);
	} else if (strcmp(path, "summary/total-failure-session-count") == 0) {
		return tls_count(ctx, token, leaf, value, &policy->failure_count);
	} else if (failure == NULL ||
		   strncmp(path, "failure-details/[]/", 19) != 0) {
		return 0;
	} else if (strcmp(leaf, "result-type") == 0) {
		failure->result_type = tls_value(ctx, t_str_lcase(
			t_str_trim(value, " \t\r\n")));
	} else if (strcmp(leaf, "sending-mta-ip") == 0) {
		return tls_ip(ctx, leaf, value, &failure->sending_mta_ip);
	} else if (strcmp(leaf, "receiving-ip") == 0) {
		return tls_ip(ctx, leaf, value, &failure->receiving_ip);
	} else if (strcmp(leaf, "receiving-mx-hostname") == 0) {
		failure->receiving_mx_hostname =
			tls_value(ctx, dmarc_tls_normalise_domain(value));
	} else if (strcmp(leaf, "receiving-mx-helo") == 0) {
		failure->receiving_mx_helo = tls_value(ctx, value);
	} else if (strcmp(leaf, "failed-session-count") == 0) {
		return tls_count(ctx, token, leaf, value,
				 &failure->failed_session_count);
	} else if (strcmp(leaf, "additional-information") == 0) {
		failure->additional_information = tls_value(ctx, value);
	} else if (strcmp(leaf, "failure-reason-code") == 0) {
		failure->failure_reason_code = tls_value(ctx, value);
	}
	return 0;
}

/* Before one more policy or failure-details entry. */
static bool tls_entries_exceeded(struct tls_parse *ctx)
{
	if (ctx->entries >= ctx->limits->max_tls_entries) {
		ctx->error = t_strdup_printf("more than %u policies and "
			"failure-details entries (dmarcreport_max_tls_entries)",
			ctx->limits->max_tls_entries);
		return TRUE;
	}
	ctx->entries++;
	return FALSE;
}

/* An object or array starts at path. */
static int tls_container_start(struct tls_parse *ctx, const char *path,
			       enum dmarc_json_token token)
{
	if (strcmp(path, "policies") == 0 && token == DMARC_JSON_ARRAY) {
		ctx->have_policies = TRUE;
	} else if (strcmp(path, "policies/[]") == 0 &&
		   token == DMARC_JSON_OBJECT) {
		if (tls_entries_exceeded(ctx))
			return -1;
		ctx->policy = array_append_space(&ctx->report->policies);
		ctx->policy->policy_domain = "";
		p_array_init(&ctx->policy->failures, ctx->pool, 4);
		ctx->failure = NULL;
	} else if (ctx->policy != NULL &&
		   strcmp(path, "policies/[]/failure-details/[]") == 0 &&
		   token == DMARC_JSON_OBJECT) {
		if (tls_entries_exceeded(ctx))
			return -1;
		ctx->failure = array_append_space(&ctx->policy->failures);
	} else if (ctx->policy != NULL &&
		   (strcmp(path, "policies/[]/policy/policy-string") == 0 ||
		    strcmp(path, "policies/[]/policy/mx-host") == 0)) {
		str_truncate(ctx->joined, 0);
	}
	return 0;
}

/* The path of a member named name (NULL: an array item) of the current
   container: "policies/[]/policy/policy-type". */
static const char *path_of(struct tls_parse *ctx, const char *name)
{
	const char *leaf = name == NULL ? "[]" : name;

	if (str_len(ctx->path) == 0)
		return leaf;
	return t_strconcat(str_c(ctx->path), "/", leaf, NULL);
}

static void path_push(struct tls_parse *ctx, const char *path)
{
	size_t len = str_len(ctx->path);

	array_push_back(&ctx->path_lengths, &len);
	str_truncate(ctx->path, 0);
	str_append(ctx->path, path);
}

static void path_pop(struct tls_parse *ctx)
{
	const size_t *len = array_back(&ctx->path_lengths);

	str_truncate(ctx->path, *len);
	array_pop_back(&ctx->path_lengths);
}

static int tls_parse_tokens(struct tls_parse *ctx, struct dmarc_json *json)
{
	enum dmarc_json_token token;
	const char *name, *value, *path;
	unsigned int depth = 0;
	int ret;

	while ((ret = dmarc_json_next(json, &token, &name, &value)) > 0) {
		switch (token) {
		case DMARC_JSON_OBJECT:
		case DMARC_JSON_ARRAY:
			if (depth == 0 && token != DMARC_JSON_OBJECT) {
				ctx->error = "not a TLS report (the JSON is "
					"not an object)";
				return -1;
			}
			if (depth >= ctx->limits->max_xml_depth) {
				ctx->error = t_strdup_printf(
					"JSON nested deeper than %u "
					"(dmarcreport_max_xml_depth)",
					ctx->limits->max_xml_depth);
				return -1;
			}
			/* the root's members' paths are their names */
			path = depth == 0 ? "" : path_of(ctx, name);
			if (depth > 0 &&
			    tls_container_start(ctx, path, token) < 0)
				return -1;
			path_push(ctx, path);
			depth++;
			break;
		case DMARC_JSON_OBJECT_END:
		case DMARC_JSON_ARRAY_END:
			depth--;
			path_pop(ctx);
			break;
		default:
			if (depth == 0) {
				ctx->error = "not a TLS report (the JSON is "
					"not an object)";
				return -1;
			}
			if (tls_value_token(ctx, token, path_of(ctx, name),
					    value) < 0)
				return -1;
			break;
		}
	}
	return ret;
}

int dmarc_tls_parse(pool_t pool, const unsigned char *data, size_t size,
		    const struct dmarc_limits *limits,
		    struct dmarc_tls_report **report_r, const char **error_r)
{
	struct tls_parse ctx;
	struct dmarc_json *json;
	struct istream *input;
	const char *json_error = NULL, *msg;
	buffer_t *valid = NULL;
	int ret;

	/* the settings take only positive numbers: every bound holds */
	i_assert(limits->max_value_length > 0 && limits->max_tls_entries > 0 &&
		 limits->max_xml_depth > 0);
	i_zero(&ctx);
	ctx.pool = pool;
	ctx.limits = limits;
	ctx.report = p_new(pool, struct dmarc_tls_report, 1);
	p_array_init(&ctx.report->policies, pool, 4);
	p_array_init(&ctx.report->warnings, pool, 2);
	ctx.path = str_new(default_pool, 128);
	ctx.joined = str_new(default_pool, 128);
	i_array_init(&ctx.path_lengths, 8);

	if (!uni_utf8_data_is_valid(data, size)) {
		/* see "Repaired" above: the same report on 2.3 and 2.4,
		   and a debug warning */
		valid = buffer_create_dynamic(default_pool, size + 64);
		if (!uni_utf8_get_valid_data(data, size, valid)) {
			data = valid->data;
			size = valid->used;
		}
		msg = "bytes that are not UTF-8 replaced with U+FFFD";
		array_push_back(&ctx.report->warnings, &msg);
	}
	input = i_stream_create_from_data(data, size);
	json = dmarc_json_init(input);
	T_BEGIN {
		ret = tls_parse_tokens(&ctx, json);
		if (ctx.error != NULL)
			ctx.error = p_strdup(pool, ctx.error);
	} T_END;
	if (dmarc_json_deinit(&json, &json_error) < 0 && ret == 0)
		ret = -1;
	i_stream_unref(&input);
	if (valid != NULL)
		buffer_free(&valid);
	str_free(&ctx.path);
	str_free(&ctx.joined);
	array_free(&ctx.path_lengths);

	if (ctx.error != NULL) {
		*error_r = ctx.error;
		return -1;
	}
	if (ret < 0) {
		*error_r = t_strdup_printf("not valid JSON: %s",
			json_error == NULL ? "unexpected end" :
			str_sanitize(json_error, 200));
		return -1;
	}
	if (!ctx.have_report_id) {
		*error_r = "not a TLS report (no report-id)";
		return -1;
	}
	if (!ctx.have_policies) {
		*error_r = "not a TLS report (no policies)";
		return -1;
	}
	if (!ctx.have_begin || !ctx.have_end) {
		*error_r = "not a TLS report (no date-range)";
		return -1;
	}
	if (ctx.report->org_name == NULL)
		ctx.report->org_name = "";
	if (ctx.count_as_string) {
		msg = "session counts sent as JSON strings";
		array_push_back(&ctx.report->warnings, &msg);
	}
	*report_r = ctx.report;
	return 0;
}
