/* Tests of doveadm dmarc's filter words (src/doveadm-dmarcreport/
   doveadm-dmarc-filter.c): the command line's dates and networks, parsed
   before the core sees them, and which words apply to which kind. */

#include "lib.h"
#include "net.h"
#include "test-common.h"
#include "dmarc-query.h"
#include "doveadm-dmarc-filter.h"

#define DAY1 1704067200
#define DAY (24*60*60)

static void test_filter_parse_source_invalid(void)
{
	static const char *const invalid[] = {
		"", "192.0.2", "192.0.2.0/33", "192.0.2.0/", "192.0.2.0/x",
		"2001:db8::/129", "example.com", "192.0.2.0/-1",
		/* inet_aton() would take these */
		"1", "0x7f.1", "192.0.2.1 ", "[192.0.2.1]",
		"[2001:db8::1", "::ffff:192.0.2.1/129",
	};
	struct ip_addr ip;
	unsigned int bits;
	const char *error;
	unsigned int i;

	test_begin("filter: invalid source values");
	for (i = 0; i < N_ELEMENTS(invalid); i++) {
		test_assert_idx(doveadm_dmarc_filter_parse_source(invalid[i], &ip,
				&bits, &error) < 0, i);
	}
	test_end();
}

static void test_filter_parse_date(void)
{
	static const time_t now = 1706745600; /* 2024-02-01T00:00:00Z */
	static const struct {
		const char *str;
		int64_t start, last;
	} tests[] = {
		{ "2024-01-01", DAY1, DAY1 + DAY - 1 },
		{ "2024-02-29", 1709164800, 1709164800 + DAY - 1 },
		{ "2024-01-02T03:04:05Z", DAY1 + DAY + 3*3600 + 4*60 + 5,
		  DAY1 + DAY + 3*3600 + 4*60 + 5 },
		{ "1704067200", DAY1, DAY1 },
		{ "0", 0, 0 },
		{ "30d", now - 30*DAY, now - 30*DAY },
		{ "12h", now - 12*3600, now - 12*3600 },
		{ "2w", now - 14*DAY, now - 14*DAY },
		{ "90m", now - 90*60, now - 90*60 },
		{ "45s", now - 45, now - 45 },
		/* Dovecot's interval words, as its settings take them */
		{ "30 days", now - 30*DAY, now - 30*DAY },
		{ "2weeks", now - 14*DAY, now - 14*DAY },
		{ "3 hours", now - 3*3600, now - 3*3600 },
		/* the extremes */
		{ "9223372036854775807", INT64_MAX, INT64_MAX },
		{ "1970-01-01", 0, DAY - 1 },
		{ "9999-12-31", 253402214400, 253402214400 + DAY - 1 },
		{ "9999-12-31T23:59:59Z", 253402300799, 253402300799 },
		{ "0s", now, now },
	};
	static const char *const invalid[] = {
		"", "yesterday", "2024-02-30", "2023-02-29", "2024-13-01",
		"2024-1-1", "30x", "d", "-5", "2024-01-01T25:00:00Z",
		"99999999999d", "9223372036854775808", "18446744073709551616",
		"1969-12-31",
	};
	int64_t start, last;
	const char *error;
	unsigned int i;

	test_begin("filter: dates, Unix seconds and intervals");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		test_assert_idx(doveadm_dmarc_filter_parse_date(tests[i].str, now,
						       &start, &last,
						       &error) == 0, i);
		test_assert_idx(start == tests[i].start, i);
		test_assert_idx(last == tests[i].last, i);
	}
	for (i = 0; i < N_ELEMENTS(invalid); i++) {
		test_assert_idx(doveadm_dmarc_filter_parse_date(invalid[i], now,
						       &start, &last,
						       &error) < 0, i);
	}
	test_end();
}

static void test_filter_parse_source(void)
{
	static const struct {
		const char *str, *ip;
		unsigned int bits;
	} tests[] = {
		{ "192.0.2.0/24", "192.0.2.0", 24 },
		{ "192.0.2.1", "192.0.2.1", 32 },
		{ "[2001:db8::1]", "2001:db8::1", 128 },
		{ "2001:db8::/32", "2001:db8::", 32 },
	};
	struct ip_addr ip;
	unsigned int i, bits;
	const char *error;

	test_begin("filter: sources as networks");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		test_assert_idx(doveadm_dmarc_filter_parse_source(
			tests[i].str, &ip, &bits, &error) == 0, i);
		test_assert_strcmp_idx(net_ip2addr(&ip), tests[i].ip, i);
		test_assert_idx(bits == tests[i].bits, i);
	}
	test_end();
}

static void test_filter_kinds(void)
{
	static const struct {
		const char *const words[7];
		const char *kind, *error;
	} tests[] = {
		{ { "dkim", "pass", NULL }, "aggregate", NULL },
		{ { "dkim", "pass", NULL }, "tls",
		  "Filter dkim does not apply to tls reports" },
		{ { "type", "tls", "not", "spf", "fail", NULL }, "tls",
		  "Filter spf does not apply to tls reports" },
		{ { "source", "192.0.2.0/24", NULL }, "failure", NULL },
		{ { "source", "192.0.2.0/24", NULL }, "tls",
		  "Filter source does not apply to tls reports" },
		{ { "header_from", "a.example", NULL }, "failure",
		  "Filter header_from does not apply to failure reports" },
		{ { "domain", "a.example", "since", "30d", "report", "3", NULL },
		  "tls", NULL },
		{ { "type", "failure", NULL }, "tls",
		  "Filter type failure: this command shows tls reports" },
	};
	struct dmarc_query_filter filter;
	const char *error;
	unsigned int i;

	test_begin("filter: words that do not apply to a kind");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		test_assert_idx(doveadm_dmarc_filter_parse(tests[i].words,
			1706745600, &filter, &error) == 0, i);
		error = NULL;
		test_assert_idx(doveadm_dmarc_filter_check_kind(
			&filter, tests[i].kind, &error) ==
			(tests[i].error == NULL ? 0 : -1), i);
		test_assert_strcmp_idx(error, tests[i].error, i);
	}
	test_assert(doveadm_dmarc_filter_parse((const char *const[]){
		"not", "type", "tls", NULL }, 0, &filter, &error) < 0);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_filter_parse_source,
		test_filter_parse_source_invalid,
		test_filter_parse_date,
		test_filter_kinds,
		NULL
	};
	return test_run(test_functions);
}
