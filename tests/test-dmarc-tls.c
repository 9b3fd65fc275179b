/* Unit tests for dmarc-tls-parse.c: RFC 8460 reports from the corpus,
   the lenient cases real reporters need, and hostile JSON. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "istream.h"
#include "test-dmarc-common.h"
#include "dmarc-compat-json.h"
#include "dmarc-tls.h"

#include <time.h>

static int parse_str(pool_t pool, const char *json,
		     const struct dmarc_limits *limits,
		     struct dmarc_tls_report **report_r, const char **error_r)
{
	return dmarc_tls_parse(pool, (const unsigned char *)json,
			       strlen(json), limits, report_r, error_r);
}

static void test_tls_rfc8460_example(void)
{
	const char *corpus = test_corpus_dir();
	struct dmarc_tls_report *report;
	const struct dmarc_tls_policy *policy;
	const struct dmarc_tls_failure *failure;
	const char *error;
	buffer_t *buf;
	pool_t pool;

	if (corpus == NULL)
		return;
	test_begin("tls: the RFC 8460 example, every field");
	buf = test_read_file(t_strconcat(corpus,
		"/tlsrpt/parsedmarc--rfc8460.json", NULL));
	pool = pool_alloconly_create("test", 4096);
	test_assert(dmarc_tls_parse(pool, buf->data, buf->used,
				    test_default_limits(), &report,
				    &error) == 0);
	test_assert_strcmp(report->org_name, "Company-X");
	test_assert_strcmp(report->contact_info,
			   "sts-reporting@company-x.example");
	test_assert_strcmp(report->report_id,
			   "5065427c-23d3-47ca-b6e0-946ea0e8c4be");
	test_assert(report->date_begin == 1459468800);
	test_assert(report->date_end == 1459555199);
	test_assert(array_count(&report->policies) == 1);
	policy = array_front(&report->policies);
	test_assert_strcmp(policy->policy_type, "sts");
	test_assert_strcmp(policy->policy_strings, "version: STSv1\n"
		"mode: testing\nmx: *.mail.company-y.example\nmax_age: 86400");
	test_assert_strcmp(policy->policy_domain, "company-y.example");
	test_assert_strcmp(policy->mx_hosts, "*.mail.company-y.example");
	test_assert(policy->success_count == 5326);
	test_assert(policy->failure_count == 303);
	test_assert(array_count(&policy->failures) == 3);
	failure = array_idx(&policy->failures, 0);
	test_assert_strcmp(failure->result_type, "certificate-expired");
	test_assert_strcmp(failure->sending_mta_ip, "2001:db8:abcd:12::1");
	test_assert_strcmp(failure->receiving_mx_hostname,
			   "mx1.mail.company-y.example");
	test_assert(failure->failed_session_count == 100);
	test_assert(failure->receiving_ip == NULL);
	failure = array_idx(&policy->failures, 1);
	test_assert_strcmp(failure->receiving_ip, "203.0.113.56");
	test_assert(failure->additional_information != NULL &&
		    strncmp(failure->additional_information, "https://", 8) == 0);
	failure = array_idx(&policy->failures, 2);
	test_assert_strcmp(failure->failure_reason_code,
			   "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED");
	test_assert(failure->failed_session_count == 3);
	buffer_free(&buf);
	pool_unref(&pool);
	test_end();
}

static void test_tls_corpus_json(void)
{
	const char *corpus = test_corpus_dir();
	const char *const *names, *error;
	struct dmarc_tls_report *report;
	buffer_t *buf;
	pool_t pool;
	unsigned int i, n = 0;

	if (corpus == NULL)
		return;
	test_begin("tls: every corpus .json parses");
	names = test_corpus_list("tlsrpt");
	for (i = 0; names[i] != NULL; i++) {
		size_t len = strlen(names[i]);

		if (len < 5 || strcmp(names[i] + len - 5, ".json") != 0)
			continue;
		buf = test_read_file(t_strconcat(corpus, "/tlsrpt/",
						 names[i], NULL));
		pool = pool_alloconly_create("test", 4096);
		if (dmarc_tls_parse(pool, buf->data, buf->used,
				    test_default_limits(), &report,
				    &error) < 0) {
			i_error("%s: %s", names[i], error);
			test_assert_idx(FALSE, i);
		} else {
			test_assert_idx(array_count(&report->policies) > 0, i);
		}
		n++;
		buffer_free(&buf);
		pool_unref(&pool);
	}
	test_assert(n >= 6);
	test_end();
}

static void test_tls_lenient_sample(void)
{
	const char *corpus = test_corpus_dir();
	struct dmarc_tls_report *report;
	const struct dmarc_tls_policy *policy;
	const struct dmarc_tls_failure *failure;
	const char *error;
	buffer_t *buf;
	pool_t pool;

	if (corpus == NULL)
		return;
	test_begin("tls: counts as strings, STS, trailing dots, unknown result");
	buf = test_read_file(t_strconcat(corpus,
		"/tlsrpt/DmarcAnalyzerApp--sample-lenient-tls.json", NULL));
	pool = pool_alloconly_create("test", 4096);
	test_assert(dmarc_tls_parse(pool, buf->data, buf->used,
				    test_default_limits(), &report,
				    &error) == 0);
	test_assert(report->contact_info == NULL);
	test_assert(array_count(&report->policies) == 2);
	policy = array_idx(&report->policies, 0);
	test_assert_strcmp(policy->policy_type, "sts");
	test_assert_strcmp(policy->policy_domain, "acme.example");
	test_assert(policy->success_count == 42);
	test_assert(policy->failure_count == 7);
	failure = array_idx(&policy->failures, 0);
	test_assert_strcmp(failure->result_type, "quantum-handshake-flux");
	test_assert(failure->failed_session_count == 5);
	failure = array_idx(&policy->failures, 1);
	test_assert_strcmp(failure->receiving_mx_hostname, "mx1.acme.example");
	test_assert(failure->failed_session_count == 0);
	policy = array_idx(&report->policies, 1);
	test_assert_strcmp(policy->policy_domain, "");
	test_assert(array_count(&report->warnings) == 1);
	buffer_free(&buf);
	pool_unref(&pool);
	test_end();
}

static void test_tls_refused(void)
{
	static const struct {
		const char *json, *error;
	} cases[] = {
		{ "", "not valid JSON" },
		{ "[1,2]", "not an object" },
		{ "{\"a\": 1", "not valid JSON" },
		{ "{\"organization-name\": \"x\"}", "no report-id" },
		{ "{\"report-id\": \"r\", \"policies\": []}", "no date-range" },
		{ "{\"report-id\": \"r\", \"date-range\": {\"start-datetime\":"
		  " \"2016-04-01T00:00:00Z\", \"end-datetime\": \"yesterday\"},"
		  " \"policies\": []}", "not an RFC 3339 date-time" },
		/* 2.3's parser hands the digits over, 2.4's refuses them */
		{ "{\"report-id\": \"r\", \"policies\": [{\"summary\": "
		  "{\"total-successful-session-count\": 99999999999999999999}}]}",
		  DOVECOT_PREREQ(2, 4, 0) ? "Number overflow" : "is not a count" },
		{ "{\"report-id\": \"r\", \"policies\": [{\"summary\": "
		  "{\"total-failure-session-count\": -1}}]}", "is not a count" },
		{ "{\"report-id\": \"r\", \"policies\": [{\"failure-details\": "
		  "[{\"sending-mta-ip\": \"300.1.1.1\"}]}]}",
		  "is not an IP address" },
		{ "{\"report-id\": \"r\", \"policies\": [{\"summary\": "
		  "{\"total-successful-session-count\": true}}]}",
		  "is not a number" },
	};
	struct dmarc_tls_report *report;
	const char *error;
	unsigned int i;
	pool_t pool;

	test_begin("tls: refused documents say why");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		pool = pool_alloconly_create("test", 1024);
		error = NULL;
		test_assert_idx(parse_str(pool, cases[i].json,
					  test_default_limits(), &report,
					  &error) < 0, i);
		test_assert_idx(error != NULL &&
				strstr(error, cases[i].error) != NULL, i);
		if (error != NULL && strstr(error, cases[i].error) == NULL)
			i_error("case %u: %s", i, error);
		pool_unref(&pool);
	}
	test_end();
}

static const char *tls_header =
	"{\"organization-name\": \"o\", \"report-id\": \"r\","
	" \"date-range\": {\"start-datetime\": \"2024-01-01T00:00:00Z\","
	" \"end-datetime\": \"2024-01-02T00:00:00Z\"},";

static void test_tls_hostile(void)
{
	struct dmarc_limits limits = *test_default_limits();
	const struct dmarc_tls_policy *policy;
	struct dmarc_tls_report *report;
	const char *error;
	string_t *json;
	unsigned int i;
	pool_t pool;

	test_begin("tls: depth, entry count, duplicate keys, control bytes");
	/* deep nesting, inside an unknown member */
	json = t_str_new(4096);
	str_append(json, tls_header);
	str_append(json, "\"x\": ");
	for (i = 0; i < 1000; i++)
		str_append(json, "[");
	pool = pool_alloconly_create("test", 1024);
	test_assert(parse_str(pool, str_c(json), &limits, &report, &error) < 0);
	test_assert(strstr(error, "dmarcreport_max_xml_depth") != NULL);
	pool_unref(&pool);

	/* more failure-details entries than max_tls_entries (the policy is
	   one entry too) */
	limits.max_tls_entries = 100;
	str_truncate(json, 0);
	str_append(json, tls_header);
	str_append(json, "\"policies\": [{\"failure-details\": [");
	for (i = 0; i < 101; i++)
		str_append(json, i == 0 ? "{}" : ",{}");
	str_append(json, "]}]}");
	pool = pool_alloconly_create("test", 1024);
	test_assert(parse_str(pool, str_c(json), &limits, &report, &error) < 0);
	test_assert(strstr(error, "dmarcreport_max_tls_entries") != NULL);
	pool_unref(&pool);
	limits = *test_default_limits();

	/* duplicate keys: the last wins; control characters are replaced;
	   long values cut (invalid UTF-8 below: the versions differ) */
	limits.max_value_length = 16;
	str_truncate(json, 0);
	str_append(json, "{\"report-id\": \"first\", \"report-id\": \"second\","
		   " \"organization-name\": \"a\\u0007b\","
		   " \"contact-info\": \"0123456789abcdefXYZ\","
		   " \"date-range\": {\"start-datetime\": \"2024-01-01T00:00:00Z\","
		   " \"end-datetime\": \"2024-01-02T00:00:00+01:00\"},"
		   " \"policies\": [{\"policy\": {\"policy-type\": \"TLSA\","
		   " \"mx-host\": [\"MX1.Example.\", \"mx2.example\"]}}]}");
	pool = pool_alloconly_create("test", 1024);
	test_assert(parse_str(pool, str_c(json), &limits, &report, &error) == 0);
	test_assert_strcmp(report->report_id, "second");
	test_assert_strcmp(report->org_name, "a\xef\xbf\xbd" "b");
	test_assert_strcmp(report->contact_info, "0123456789abcdef");
	test_assert(report->date_end == 1704150000);
	policy = array_front(&report->policies);
	test_assert_strcmp(policy->policy_type, "tlsa");
	test_assert_strcmp(policy->mx_hosts, "mx1.example\nmx2.example");
	pool_unref(&pool);

	/* invalid UTF-8 inside a JSON string is replaced before the JSON
	   parser sees it, on 2.3 and 2.4 alike, and said in a warning */
	pool = pool_alloconly_create("test", 1024);
	test_assert(parse_str(pool, t_strconcat(tls_header,
		" \"contact-info\": \"a\xff\xfe" "b\", \"policies\": []}", NULL),
		test_default_limits(), &report, &error) == 0);
	test_assert_strcmp(report->contact_info, "a\xef\xbf\xbd" "b");
	test_assert(array_count(&report->warnings) == 1);
	if (array_count(&report->warnings) == 1) {
		test_assert_strcmp(array_idx_elem(&report->warnings, 0),
			"bytes that are not UTF-8 replaced with U+FFFD");
	}
	pool_unref(&pool);

	/* data after the report's closing brace is not read */
	pool = pool_alloconly_create("test", 1024);
	test_assert(parse_str(pool, t_strconcat(tls_header,
		" \"policies\": []} trailing", NULL),
		test_default_limits(), &report, &error) == 0);
	pool_unref(&pool);
	test_end();
}

/* The tokens the JSON reader under the TLS parser (Dovecot's own, 2.3 or
   2.4, see dmarc-compat-json.h) hands out for input, and how it ends. */
static const char *json_tokens(struct istream *input)
{
	struct dmarc_json *json = dmarc_json_init(input);
	enum dmarc_json_token token;
	const char *name, *value, *error;
	string_t *str = t_str_new(1024);
	int ret;

	while ((ret = dmarc_json_next(json, &token, &name, &value)) > 0) {
		str_printfa(str, "%d|%s|%s\n", token,
			    name == NULL ? "-" : name,
			    value == NULL ? "-" : value);
	}
	str_printfa(str, "next %d\n", ret);
	if (dmarc_json_deinit(&json, &error) < 0)
		str_printfa(str, "error %s\n", error);
	return str_c(str);
}

/* Issue 13 point 6: the JSON reader is also fed in small blocks (a read
   gives 1 byte up to a few KiB) with the same tokens: every JSON report of
   the corpus and built documents (escapes, a long string, numbers, broken
   JSON). */
static void test_tls_small_blocks(void)
{
	static const size_t block_sizes[] = { 1, 2, 3, 7, 64, 1000, 4096 };
	static const char *const built[] = {
		"{\"a\\u00e9\\\"\": [1, -2.5e3, true, false, null, \"x\\ny\"],"
		" \"b\": {\"c\": {}}}",
		"{\"unterminated\": [1, 2",
		"{\"bad\": tru}",
	};
	ARRAY(const buffer_t *) docs;
	ARRAY_TYPE(const_string) labels;
	const char *whole, *label, *const *names;
	const buffer_t *data;
	struct istream *input;
	buffer_t *buf;
	string_t *long_doc;
	unsigned int i, k;

	test_begin("tls: the JSON reader fed in small blocks, the same tokens");
	t_array_init(&docs, 16);
	t_array_init(&labels, 16);
	if (test_corpus_dir() != NULL) {
		for (names = test_corpus_list("tlsrpt"); *names != NULL; names++) {
			if (!str_ends_with(*names, ".json"))
				continue;
			data = test_read_file(t_strconcat(test_corpus_dir(),
				"/tlsrpt/", *names, NULL));
			if (data == NULL)
				continue;
			array_push_back(&docs, &data);
			array_push_back(&labels, names);
		}
	}
	for (i = 0; i < N_ELEMENTS(built); i++) {
		buf = t_buffer_create(strlen(built[i]));
		buffer_append(buf, built[i], strlen(built[i]));
		array_push_back(&docs, (const buffer_t **)&buf);
		array_push_back(&labels, &built[i]);
	}
	long_doc = t_str_new(70000);
	str_append(long_doc, "{\"long\": \"");
	for (i = 0; i < 6000; i++)
		str_append(long_doc, "0123456789");
	str_append(long_doc, "\"}");
	buf = t_buffer_create(str_len(long_doc));
	buffer_append(buf, str_data(long_doc), str_len(long_doc));
	array_push_back(&docs, (const buffer_t **)&buf);
	label = "a 60 KB string";
	array_push_back(&labels, &label);

	for (i = 0; i < array_count(&docs); i++) T_BEGIN {
		data = array_idx_elem(&docs, i);
		input = i_stream_create_from_data(data->data, data->used);
		whole = json_tokens(input);
		i_stream_unref(&input);
		for (k = 0; k < N_ELEMENTS(block_sizes); k++) {
			input = test_istream_create_trickle(data->data,
				data->used, block_sizes[k]);
			if (strcmp(json_tokens(input), whole) != 0) {
				i_error("%s: %zu-byte blocks differ",
					array_idx_elem(&labels, i),
					block_sizes[k]);
				test_assert_idx(FALSE, i);
			}
			i_stream_unref(&input);
		}
	} T_END;
	if (test_corpus_dir() != NULL)
		test_assert(array_count(&docs) >= 8);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_tls_rfc8460_example,
		test_tls_corpus_json,
		test_tls_lenient_sample,
		test_tls_refused,
		test_tls_hostile,
		test_tls_small_blocks,
		NULL
	};
	return test_run(test_functions);
}
