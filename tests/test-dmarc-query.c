/* Unit tests for dmarc-query.c: figures of list, records, groups and
   summary over a fixed set stored with the store API, checked against
   hand-computed numbers; filters; date and CIDR parsing; and the store's
   expire (dmarc-store-expire.c) over the same set. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "net.h"
#include "test-dmarc-common.h"
#include "dmarc-store.h"
#include "dmarc-query.h"

#include <sqlite3.h>
#include <unistd.h>

/* 2024-01-01T00:00:00Z */
#define DAY1 1704067200
#define DAY (24*60*60)

/* The fixed set: 3 reports, 7 records, 2 policy domains.

   report        domain       org         day  records (ip count dkim spf)
   r1            example.com  google.com  1    192.0.2.1 100 pass pass
                                               198.51.100.7 20 fail fail
                                               2001:db8::1 5 pass fail
   r2            example.com  Yahoo       2    192.0.2.1 50 pass pass
                                               198.51.100.7 10 fail fail
   r3            example.org  google.com  3    203.0.113.5 3 fail pass
                                               2001:db8:1::9 2 fail fail

   example.com: 185 msgs, 155 pass (83.8%), DKIM 155, SPF 150,
                failing: 198.51.100.7 with 30
   example.org: 5 msgs, 3 pass, DKIM 0, SPF 3, failing 2001:db8:1::9 (2) */
struct fixture_record {
	unsigned int report;
	const char *ip;
	int64_t count;
	const char *disposition, *dkim, *spf;
};

static const struct fixture_record fixture_records[] = {
	{ 0, "192.0.2.1", 100, "none", "pass", "pass" },
	{ 0, "198.51.100.7", 20, "reject", "fail", "fail" },
	{ 0, "2001:db8::1", 5, "none", "pass", "fail" },
	{ 1, "192.0.2.1", 50, "none", "pass", "pass" },
	{ 1, "198.51.100.7", 10, "quarantine", "fail", "fail" },
	{ 2, "203.0.113.5", 3, "none", "fail", "pass" },
	{ 2, "2001:db8:1::9", 2, "none", "fail", "fail" },
};

static const struct {
	const char *org, *id, *domain, *p, *np, *archive;
	int64_t begin;
} fixture_reports[] = {
	{ "google.com", "r1", "example.com", "reject", NULL,
	  "2024/01/r1.xml.gz", DAY1 },
	{ "Yahoo", "r2", "example.com", "none", NULL, "2024/01/r2.xml",
	  DAY1 + DAY },
	{ "google.com", "r3", "example.org", "none", "reject",
	  "2024/01/r1.xml.gz", DAY1 + 2*DAY },
};

static char *db_path;

static void fixture_store_report(struct dmarc_store *store, unsigned int idx)
{
	struct dmarc_report report;
	struct dmarc_record record;
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	struct dmarc_auth_result *auth;
	const char *error;
	unsigned int i;

	i_zero(&report);
	t_array_init(&report.errors, 1);
	report.version = "1.0";
	report.org_name = fixture_reports[idx].org;
	report.report_id = fixture_reports[idx].id;
	report.date_begin = fixture_reports[idx].begin;
	report.date_end = fixture_reports[idx].begin + DAY - 1;
	report.policy.domain = fixture_reports[idx].domain;
	report.policy.p = fixture_reports[idx].p;
	report.policy.np = fixture_reports[idx].np;
	report.policy.pct = DMARC_UNSET;

	i_zero(&info);
	info.archive_path = fixture_reports[idx].archive;
	info.received = report.date_end + 3600;
	if (dmarc_store_report_begin(store, &report, &info, &sreport,
				     &error) != 1)
		i_fatal("report_begin(%s): %s", report.report_id, error);

	for (i = 0; i < N_ELEMENTS(fixture_records); i++) {
		const struct fixture_record *fr = &fixture_records[i];

		if (fr->report != idx)
			continue;
		i_zero(&record);
		t_array_init(&record.reasons, 1);
		t_array_init(&record.auth_results, 2);
		record.source_ip = fr->ip;
		record.source_ip_valid = TRUE;
		record.count = fr->count;
		record.disposition = fr->disposition;
		record.dkim = fr->dkim;
		record.spf = fr->spf;
		record.header_from = report.policy.domain;
		record.envelope_from = report.policy.domain;
		auth = array_append_space(&record.auth_results);
		auth->type = DMARC_AUTH_DKIM;
		auth->domain = report.policy.domain;
		auth->selector = "s1";
		auth->result = fr->dkim;
		auth = array_append_space(&record.auth_results);
		auth->type = DMARC_AUTH_SPF;
		auth->domain = report.policy.domain;
		auth->scope = "mfrom";
		auth->result = fr->spf;
		if (dmarc_store_report_add_record(sreport, &record, &error) < 0)
			i_fatal("add_record: %s", error);
	}
	if (dmarc_store_report_commit(&sreport, &error) < 0)
		i_fatal("report_commit: %s", error);
}

static void fixture_create(void)
{
	struct dmarc_store *store;
	const char *error;
	unsigned int i;

	db_path = i_strconcat(test_tmpdir(), "/reports.sqlite", NULL);
	/* a set-up step, not a test: no test_begin() */
	(void)unlink(db_path);
	if (dmarc_store_open(db_path, DMARC_STORE_OPEN_CREATE, &store,
			     &error) != 1)
		i_fatal("dmarc_store_open(%s): %s", db_path, error);
	for (i = 0; i < N_ELEMENTS(fixture_reports); i++) T_BEGIN {
		fixture_store_report(store, i);
	} T_END;
	dmarc_store_close(&store);
}

static struct dmarc_store *fixture_open(void)
{
	struct dmarc_store *store;
	const char *error;

	if (dmarc_store_open(db_path, DMARC_STORE_OPEN_READONLY, &store,
			     &error) != 1)
		i_fatal("dmarc_store_open(%s): %s", db_path, error);
	return store;
}

/* --- collecting rows --- */

struct collected {
	string_t *ids;        /* "r1 r2 " or "ip:count " */
	unsigned int rows;
	uint64_t records, messages, pass;
};

static int collect_report(const struct dmarc_query_report_row *row,
			  void *context)
{
	struct collected *c = context;

	str_printfa(c->ids, "%s ", row->report_id);
	c->rows++;
	c->records += row->records;
	c->messages += row->messages;
	c->pass += row->pass;
	return 0;
}

static int collect_record(const struct dmarc_query_record_row *row,
			  void *context)
{
	struct collected *c = context;

	str_printfa(c->ids, "%s:%"PRIu64" ", row->source_ip, row->count);
	c->rows++;
	c->messages += row->count;
	if (row->dmarc_pass)
		c->pass += row->count;
	return 0;
}

static int collect_group(const struct dmarc_query_group_row *row,
			 void *context)
{
	struct collected *c = context;

	str_printfa(c->ids, "%s=%"PRIu64"/%"PRIu64" ", row->key,
		    row->messages, row->pass);
	c->rows++;
	c->messages += row->messages;
	c->pass += row->pass;
	return 0;
}

static void collected_init(struct collected *c)
{
	i_zero(c);
	c->ids = t_str_new(128);
}

static const char *
list_ids(struct dmarc_store *store, const struct dmarc_query_filter *filter)
{
	struct collected c;
	const char *error;

	collected_init(&c);
	if (dmarc_query_list(store, filter, collect_report, &c, &error) < 0)
		return t_strdup_printf("ERROR %s", error);
	return str_c(c.ids);
}

static const char *
record_ids(struct dmarc_store *store, const struct dmarc_query_filter *filter)
{
	struct collected c;
	const char *error;

	collected_init(&c);
	if (dmarc_query_records(store, filter, collect_record, &c,
				&error) < 0)
		return t_strdup_printf("ERROR %s", error);
	return str_c(c.ids);
}

/* --- tests --- */

static void test_query_list_figures(void)
{
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;
	struct collected c;
	const char *error;

	test_begin("query: list figures per report and totals");
	dmarc_query_filter_init(&filter);
	collected_init(&c);
	test_assert(dmarc_query_list(store, &filter, collect_report, &c,
				     &error) == 0);
	test_assert_strcmp(str_c(c.ids), "r1 r2 r3 ");
	test_assert(c.rows == 3);
	test_assert(c.records == 7);
	test_assert(c.messages == 190);
	test_assert(c.pass == 158);
	test_end();
	dmarc_store_close(&store);
}

static int check_r1(const struct dmarc_query_report_row *row, void *context)
{
	bool *seen = context;

	if (strcmp(row->report_id, "r1") != 0)
		return 0;
	*seen = TRUE;
	test_assert_strcmp(row->org_name, "google.com");
	test_assert_strcmp(row->policy_domain, "example.com");
	test_assert(row->date_begin == DAY1);
	test_assert(row->date_end == DAY1 + DAY - 1);
	test_assert_strcmp(row->policy_p, "reject");
	test_assert(row->policy_np == NULL);
	test_assert(row->policy_pct == -1);
	test_assert_strcmp(row->archive_path, "2024/01/r1.xml.gz");
	test_assert(row->records == 3);
	test_assert(row->messages == 125);
	test_assert(row->pass == 105);
	return 0;
}

static void test_query_list_row(void)
{
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;
	const char *error;
	bool seen = FALSE;

	test_begin("query: list row fields");
	dmarc_query_filter_init(&filter);
	test_assert(dmarc_query_list(store, &filter, check_r1, &seen,
				     &error) == 0);
	test_assert(seen);
	test_end();
	dmarc_store_close(&store);
}

static void test_query_records_auth(void)
{
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;

	test_begin("query: record rows in report order");
	dmarc_query_filter_init(&filter);
	test_assert_strcmp(record_ids(store, &filter),
		"192.0.2.1:100 198.51.100.7:20 2001:db8::1:5 "
		"192.0.2.1:50 198.51.100.7:10 203.0.113.5:3 2001:db8:1::9:2 ");
	test_end();
	dmarc_store_close(&store);
}

static int check_auth(const struct dmarc_query_record_row *row, void *context)
{
	unsigned int *n = context;

	if (strcmp(row->source_ip, "2001:db8::1") == 0) {
		(*n)++;
		test_assert_strcmp(row->auth,
			"dkim=pass(example.com) spf=fail(example.com)");
		test_assert(row->dmarc_pass);
		test_assert_strcmp(row->disposition, "none");
	}
	return 0;
}

static void test_query_records_auth_summary(void)
{
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;
	const char *error;
	unsigned int n = 0;

	test_begin("query: record auth results summarised");
	dmarc_query_filter_init(&filter);
	test_assert(dmarc_query_records(store, &filter, check_auth, &n,
					&error) == 0);
	test_assert(n == 1);
	test_end();
	dmarc_store_close(&store);
}

static void test_query_groups(void)
{
	static const struct {
		enum dmarc_query_group group;
		const char *expected;
	} tests[] = {
		{ DMARC_QUERY_GROUP_SOURCE,
		  "192.0.2.1=150/150 198.51.100.7=30/0 2001:db8::1=5/5 "
		  "203.0.113.5=3/3 2001:db8:1::9=2/0 " },
		{ DMARC_QUERY_GROUP_DOMAIN, "example.com=185/155 example.org=5/3 " },
		{ DMARC_QUERY_GROUP_ORG, "google.com=130/108 Yahoo=60/50 " },
		{ DMARC_QUERY_GROUP_HEADER_FROM,
		  "example.com=185/155 example.org=5/3 " },
		{ DMARC_QUERY_GROUP_DAY,
		  "2024-01-01=125/105 2024-01-02=60/50 2024-01-03=5/3 " },
		{ DMARC_QUERY_GROUP_DISPOSITION,
		  "none=160/158 reject=20/0 quarantine=10/0 " },
	};
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;
	struct collected c;
	const char *error;
	unsigned int i;

	test_begin("query: --group-by figures");
	dmarc_query_filter_init(&filter);
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		collected_init(&c);
		test_assert_idx(dmarc_query_groups(store, &filter,
						   tests[i].group,
						   collect_group, &c,
						   &error) == 0, i);
		test_assert_strcmp_idx(str_c(c.ids), tests[i].expected, i);
		/* every grouping adds up to the list totals */
		test_assert_idx(c.messages == 190 && c.pass == 158, i);
	}
	test_end();
	dmarc_store_close(&store);
}

static void test_query_group_names(void)
{
	enum dmarc_query_group group;

	test_begin("query: group names");
	test_assert(dmarc_query_group_parse("Header_From", &group) &&
		    group == DMARC_QUERY_GROUP_HEADER_FROM);
	test_assert_strcmp(dmarc_query_group_name(DMARC_QUERY_GROUP_DAY), "day");
	test_assert(!dmarc_query_group_parse("ip", &group));
	test_end();
}

struct summary_collected {
	unsigned int rows;
	struct dmarc_query_summary_row com, org;
	const char *com_top, *org_top;
};

static int collect_summary(const struct dmarc_query_summary_row *row,
			   void *context)
{
	struct summary_collected *c = context;
	struct dmarc_query_summary_row *dest;

	c->rows++;
	dest = strcmp(row->policy_domain, "example.com") == 0 ?
		&c->com : &c->org;
	*dest = *row;
	dest->verdict = t_strdup(row->verdict);
	if (row->top_failing_count > 0) {
		const char *top = t_strdup_printf("%s:%"PRIu64,
			row->top_failing[0].source_ip,
			row->top_failing[0].messages);
		if (dest == &c->com)
			c->com_top = top;
		else
			c->org_top = top;
	}
	return 0;
}

static bool rate_is(double rate, double expected)
{
	return rate > expected - 0.05 && rate < expected + 0.05;
}

static void test_query_summary(void)
{
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;
	struct summary_collected c;
	const char *error;

	test_begin("query: summary per domain and verdicts");
	dmarc_query_filter_init(&filter);
	i_zero(&c);
	test_assert(dmarc_query_summary(store, &filter, collect_summary, &c,
					&error) == 0);
	test_assert(c.rows == 2);
	test_assert(c.com.reports == 2);
	test_assert(c.com.messages == 185);
	test_assert(c.com.pass == 155);
	test_assert(c.com.dkim_aligned == 155);
	test_assert(c.com.spf_aligned == 150);
	test_assert(rate_is(c.com.pass_rate, 83.8));
	test_assert(rate_is(c.com.spf_rate, 81.1));
	test_assert(c.com.top_failing_count == 1);
	test_assert(c.com.failing_sources == 1);
	test_assert_strcmp(c.com_top, "198.51.100.7:30");
	test_assert_strcmp(c.com.verdict,
			   "fix first: 198.51.100.7 (30 msgs failing)");

	test_assert(c.org.messages == 5);
	test_assert(c.org.dkim_aligned == 0);
	test_assert(c.org.spf_aligned == 3);
	test_assert_strcmp(c.org_top, "2001:db8:1::9:2");
	test_assert_strcmp(c.org.verdict, "too little data (5 msgs)");

	/* only what passes: example.com becomes ready */
	filter.result = 1;
	i_zero(&c);
	test_assert(dmarc_query_summary(store, &filter, collect_summary, &c,
					&error) == 0);
	test_assert(c.com.messages == 155);
	test_assert(c.com.top_failing_count == 0);
	test_assert_strcmp(c.com.verdict, "ready for p=reject");
	test_end();
	dmarc_store_close(&store);
}

static void test_query_filters(void)
{
	static const struct {
		const char *what;
		struct dmarc_query_filter filter;
		const char *reports, *records;
	} tests[] = {
		{ "domain", { .domain = "EXAMPLE.org", .result = -1 },
		  "r3 ", "203.0.113.5:3 2001:db8:1::9:2 " },
		{ "org", { .org = "yahoo", .result = -1 },
		  "r2 ", "192.0.2.1:50 198.51.100.7:10 " },
		{ "disposition", { .disposition = "reject", .result = -1 },
		  "r1 ", "198.51.100.7:20 " },
		{ "dkim", { .dkim = "pass", .result = -1 },
		  "r1 r2 ", "192.0.2.1:100 2001:db8::1:5 192.0.2.1:50 " },
		{ "spf", { .spf = "fail", .domain = "example.org", .result = -1 },
		  "r3 ", "2001:db8:1::9:2 " },
		{ "result", { .result = 0 },
		  "r1 r2 r3 ", "198.51.100.7:20 198.51.100.7:10 2001:db8:1::9:2 " },
		{ "header_from", { .header_from = "Example.COM", .result = 1,
				   .org = "google.com" },
		  "r1 ", "192.0.2.1:100 2001:db8::1:5 " },
		{ "since", { .have_since = TRUE, .since = DAY1 + DAY, .result = -1 },
		  "r2 r3 ", NULL },
		{ "until", { .have_until = TRUE, .until = DAY1 + DAY - 1, .result = -1 },
		  "r1 ", NULL },
		{ "until inclusive", { .have_until = TRUE, .until = DAY1 + DAY,
				       .result = -1 }, "r1 r2 ", NULL },
		/* the extremes: no arithmetic on the bounds to overflow */
		{ "until max", { .have_until = TRUE, .until = INT64_MAX,
				 .result = -1 }, "r1 r2 r3 ", NULL },
		{ "until 0", { .have_until = TRUE, .until = 0, .result = -1 },
		  "", NULL },
		{ "since max", { .have_since = TRUE, .since = INT64_MAX,
				 .result = -1 }, "", NULL },
		{ "since 0 until max", { .have_since = TRUE, .since = 0,
					 .have_until = TRUE, .until = INT64_MAX,
					 .result = -1 }, "r1 r2 r3 ", NULL },
		{ "nothing", { .domain = "example.net", .result = -1 }, "", "" },
	};
	struct dmarc_store *store = fixture_open();
	unsigned int i;

	test_begin("query: filters on list and records");
	for (i = 0; i < N_ELEMENTS(tests); i++) T_BEGIN {
		test_assert_strcmp_idx(list_ids(store, &tests[i].filter),
				       tests[i].reports, i);
		if (tests[i].records != NULL) {
			test_assert_strcmp_idx(record_ids(store, &tests[i].filter),
					       tests[i].records, i);
		}
	} T_END;
	test_end();
	dmarc_store_close(&store);
}

/* not, report, --limit, --sort (as Mail::DMARC's viewer has them). */
static void test_query_not_report_limit_sort(void)
{
#define NOT(field) DMARC_QUERY_FIELD_BIT(DMARC_QUERY_FIELD_ ## field)
	static const struct {
		const char *what;
		struct dmarc_query_filter filter;
		const char *reports, *records;
	} tests[] = {
		{ "not dkim pass", { .dkim = "pass", .negated = NOT(DKIM),
				     .result = -1 },
		  "r1 r2 r3 ", "198.51.100.7:20 198.51.100.7:10 "
		  "203.0.113.5:3 2001:db8:1::9:2 " },
		{ "not domain", { .domain = "example.com",
				  .negated = NOT(DOMAIN), .result = -1 },
		  "r3 ", NULL },
		{ "not result pass", { .result = 1, .negated = NOT(RESULT) },
		  "r1 r2 r3 ", "198.51.100.7:20 198.51.100.7:10 "
		  "2001:db8:1::9:2 " },
		{ "report 2", { .have_report = TRUE, .report = 2,
				.result = -1 },
		  "r2 ", "192.0.2.1:50 198.51.100.7:10 " },
		{ "not report 2", { .have_report = TRUE, .report = 2,
				    .negated = NOT(REPORT), .result = -1 },
		  "r1 r3 ", NULL },
		{ "limit 2", { .limit = 2, .result = -1 },
		  "r1 r2 ", "192.0.2.1:100 198.51.100.7:20 " },
		{ "sort messages", { .sort = DMARC_QUERY_SORT_MESSAGES,
				     .result = -1 },
		  "r1 r2 r3 ", "192.0.2.1:100 192.0.2.1:50 198.51.100.7:20 "
		  "198.51.100.7:10 2001:db8::1:5 203.0.113.5:3 "
		  "2001:db8:1::9:2 " },
		{ "sort messages limit 1 domain example.org",
		  { .sort = DMARC_QUERY_SORT_MESSAGES, .limit = 1,
		    .domain = "example.org", .result = -1 },
		  "r3 ", "203.0.113.5:3 " },
		/* IPv4 (as ::ffff:a.b.c.d) before IPv6 */
		{ "sort source", { .sort = DMARC_QUERY_SORT_SOURCE,
				   .result = -1 },
		  "ERROR a report has many sources: sort list by begin or "
		  "messages", "192.0.2.1:100 192.0.2.1:50 198.51.100.7:20 "
		  "198.51.100.7:10 203.0.113.5:3 2001:db8::1:5 "
		  "2001:db8:1::9:2 " },
	};
	struct dmarc_store *store = fixture_open();
	unsigned int i;

	test_begin("query: not, report, limit, sort");
	for (i = 0; i < N_ELEMENTS(tests); i++) T_BEGIN {
		test_assert_strcmp_idx(list_ids(store, &tests[i].filter),
				       tests[i].reports, i);
		if (tests[i].records != NULL) {
			test_assert_strcmp_idx(record_ids(store, &tests[i].filter),
					       tests[i].records, i);
		}
	} T_END;
	test_end();
	dmarc_store_close(&store);
#undef NOT
}

/* A new database at path with one report (org "o", example.com) begun:
   the caller adds its records and commits (report lives until then). */
static struct dmarc_store *
store_one_report(const char *path, const char *report_id,
		 struct dmarc_report *report,
		 struct dmarc_store_report **sreport_r)
{
	struct dmarc_store_report_info info;
	struct dmarc_store *store;
	const char *error;

	(void)unlink(path);
	test_assert(dmarc_store_open(path, DMARC_STORE_OPEN_CREATE, &store,
				     &error) == 1);
	i_zero(report);
	report->org_name = "o";
	report->report_id = report_id;
	report->policy.domain = "example.com";
	report->policy.pct = DMARC_UNSET;
	i_zero(&info);
	test_assert(dmarc_store_report_begin(store, report, &info, sreport_r,
					     &error) == 1);
	return store;
}

/* show's tree as compact text: {k=v ...} and [...] */
static void show_t_object_begin(void *context, const char *key)
{
	string_t *str = context;

	str_printfa(str, "%s{", key == NULL ? "" : t_strconcat(key, "=", NULL));
}
static void show_t_object_end(void *context)
{
	str_append((string_t *)context, "} ");
}
static void show_t_list_begin(void *context, const char *key)
{
	str_printfa((string_t *)context, "%s=[", key);
}
static void show_t_list_end(void *context)
{
	str_append((string_t *)context, "] ");
}
static void show_t_str(void *context, const char *key, const char *value)
{
	/* only what tells the records apart */
	if (key == NULL || strcmp(key, "source_ip") == 0 ||
	    strcmp(key, "selector") == 0 || strcmp(key, "scope") == 0 ||
	    strcmp(key, "comment") == 0) {
		str_printfa((string_t *)context, "%s ",
			    value == NULL ? "null" : value);
	}
}
static void show_t_num(void *context ATTR_UNUSED, const char *key ATTR_UNUSED,
		       int64_t value ATTR_UNUSED) {}
static void show_t_bool(void *context ATTR_UNUSED,
			const char *key ATTR_UNUSED, bool value ATTR_UNUSED) {}

static const struct dmarc_query_show_output show_t_output = {
	.object_begin = show_t_object_begin,
	.object_end = show_t_object_end,
	.list_begin = show_t_list_begin,
	.list_end = show_t_list_end,
	.str = show_t_str,
	.num = show_t_num,
	.boolean = show_t_bool,
	.time = show_t_num,
};

/* show walks the reasons and auth results beside the records: each list
   lands on its own record, also around records that have none. */
static void test_query_show_lists_per_record(void)
{
	static const struct {
		const char *ip;
		const char *reasons[3];
		const char *dkim[3], *spf[3];
	} recs[] = {
		{ "192.0.2.1", { "r1a", NULL }, { "s1a", "s1b", NULL },
		  { "mfrom", NULL } },
		{ "192.0.2.2", { NULL }, { NULL }, { NULL } },
		{ "192.0.2.3", { "r3a", "r3b", NULL }, { NULL },
		  { "helo", NULL } },
		{ "192.0.2.4", { NULL }, { "s4a", NULL }, { NULL } },
	};
	const char *path = t_strconcat(test_tmpdir(), "/show-lists.sqlite",
				       NULL);
	struct dmarc_query_show_key key;
	struct dmarc_store_report *sreport;
	struct dmarc_store *store;
	struct dmarc_report report;
	struct dmarc_record record;
	struct dmarc_policy_override *reason;
	struct dmarc_auth_result *auth;
	string_t *str = t_str_new(512);
	const char *error;
	unsigned int i, j;

	test_begin("query show: reasons and auth results per record");
	store = store_one_report(path, "lists", &report, &sreport);
	for (i = 0; i < N_ELEMENTS(recs); i++) T_BEGIN {
		i_zero(&record);
		record.source_ip = recs[i].ip;
		record.source_ip_valid = TRUE;
		record.count = 1;
		t_array_init(&record.reasons, 2);
		t_array_init(&record.auth_results, 2);
		for (j = 0; recs[i].reasons[j] != NULL; j++) {
			reason = array_append_space(&record.reasons);
			reason->type = "other";
			reason->comment = recs[i].reasons[j];
		}
		/* SPF first: show lists DKIM results first all the same */
		for (j = 0; recs[i].spf[j] != NULL; j++) {
			auth = array_append_space(&record.auth_results);
			auth->type = DMARC_AUTH_SPF;
			auth->domain = "example.com";
			auth->scope = recs[i].spf[j];
			auth->result = "pass";
		}
		for (j = 0; recs[i].dkim[j] != NULL; j++) {
			auth = array_append_space(&record.auth_results);
			auth->type = DMARC_AUTH_DKIM;
			auth->domain = "example.com";
			auth->selector = recs[i].dkim[j];
			auth->result = "pass";
		}
		test_assert(dmarc_store_report_add_record(sreport, &record,
							  &error) == 0);
	} T_END;
	test_assert(dmarc_store_report_commit(&sreport, &error) == 0);

	i_zero(&key);
	key.kind = DMARC_QUERY_KIND_AGGREGATE;
	key.org_name = "O";
	key.report_id = "lists";
	test_assert(dmarc_query_show(store, &key, &show_t_output, str,
				     &error) == 1);
	test_assert_strcmp(str_c(str),
		"{errors=[] records=["
		"{192.0.2.1 reasons=[{r1a } ] dkim_results=[{s1a } {s1b } ] "
		"spf_results=[{mfrom } ] } "
		"{192.0.2.2 reasons=[] dkim_results=[] spf_results=[] } "
		"{192.0.2.3 reasons=[{r3a } {r3b } ] dkim_results=[] "
		"spf_results=[{helo } ] } "
		"{192.0.2.4 reasons=[] dkim_results=[{s4a } ] "
		"spf_results=[] } ] } ");
	key.kind = DMARC_QUERY_KIND_TLS;
	str_truncate(str, 0);
	test_assert(dmarc_query_show(store, &key, &show_t_output, str,
				     &error) == 0);
	test_assert_strcmp(str_c(str), "");
	dmarc_store_close(&store);
	test_end();
}

/* A record whose source_ip is not an address is in no network: a source
   filter skips it, its negation takes it. */
static void test_query_invalid_source(void)
{
	const char *path = t_strconcat(test_tmpdir(), "/invalid-ip.sqlite",
				       NULL);
	struct dmarc_store_report *sreport;
	struct dmarc_query_filter filter;
	struct dmarc_store *store;
	struct dmarc_report report;
	struct dmarc_record record;
	const char *error;

	test_begin("query: an invalid source_ip matches no source filter");
	store = store_one_report(path, "bad-ip", &report, &sreport);
	i_zero(&record);
	record.source_ip = "999.300.1.1";
	record.count = 4;
	test_assert(dmarc_store_report_add_record(sreport, &record, &error) == 0);
	record.source_ip = "192.0.2.1";
	record.source_ip_valid = TRUE;
	record.count = 1;
	test_assert(dmarc_store_report_add_record(sreport, &record, &error) == 0);
	test_assert(dmarc_store_report_commit(&sreport, &error) == 0);

	dmarc_query_filter_init(&filter);
	test_assert(net_parse_range("0.0.0.0/0", &filter.source_ip,
				    &filter.source_bits) == 0);
	filter.have_source = TRUE;
	test_assert_strcmp(record_ids(store, &filter), "192.0.2.1:1 ");
	filter.negated = DMARC_QUERY_FIELD_BIT(DMARC_QUERY_FIELD_SOURCE);
	test_assert_strcmp(record_ids(store, &filter), "999.300.1.1:4 ");
	dmarc_store_close(&store);
	test_end();
}

static void test_query_list_counts_matching_records(void)
{
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;
	struct collected c;
	const char *error;

	test_begin("query: list figures count the matching records only");
	dmarc_query_filter_init(&filter);
	filter.result = 0;
	collected_init(&c);
	test_assert(dmarc_query_list(store, &filter, collect_report, &c,
				     &error) == 0);
	test_assert(c.rows == 3);
	test_assert(c.records == 3);
	test_assert(c.messages == 32);
	test_assert(c.pass == 0);
	test_end();
	dmarc_store_close(&store);
}

static void test_query_source_filters(void)
{
	static const struct {
		const char *source, *records;
	} tests[] = {
		{ "192.0.2.1", "192.0.2.1:100 192.0.2.1:50 " },
		{ "192.0.2.0/24", "192.0.2.1:100 192.0.2.1:50 " },
		{ "192.0.2.2/32", "" },
		{ "192.0.0.0/8", "192.0.2.1:100 192.0.2.1:50 " },
		{ "0.0.0.0/0", "192.0.2.1:100 198.51.100.7:20 192.0.2.1:50 "
			       "198.51.100.7:10 203.0.113.5:3 " },
		{ "198.51.100.0/25", "198.51.100.7:20 198.51.100.7:10 " },
		{ "2001:db8::/32", "2001:db8::1:5 2001:db8:1::9:2 " },
		{ "2001:db8::/48", "2001:db8::1:5 " },
		{ "2001:db8:1::/48", "2001:db8:1::9:2 " },
		{ "2001:db8:1::9", "2001:db8:1::9:2 " },
		{ "[2001:db8:1::9]", "2001:db8:1::9:2 " },
		{ "[2001:db8::]/32", "2001:db8::1:5 2001:db8:1::9:2 " },
		/* IPv4-mapped IPv6 is the IPv4 address, whichever way the
		   row was stored */
		{ "::ffff:192.0.2.1", "192.0.2.1:100 192.0.2.1:50 " },
		{ "::FFFF:192.0.2.1", "192.0.2.1:100 192.0.2.1:50 " },
		{ "::ffff:c000:201", "192.0.2.1:100 192.0.2.1:50 " },
		{ "[::ffff:192.0.2.1]", "192.0.2.1:100 192.0.2.1:50 " },
		{ "0:0:0:0:0:ffff:192.0.2.1", "192.0.2.1:100 192.0.2.1:50 " },
		{ "::ffff:192.0.2.0/120", "192.0.2.1:100 192.0.2.1:50 " },
		{ "::ffff:198.51.100.0/121", "198.51.100.7:20 198.51.100.7:10 " },
		{ "::ffff:0.0.0.0/96", "192.0.2.1:100 198.51.100.7:20 "
				       "192.0.2.1:50 198.51.100.7:10 "
				       "203.0.113.5:3 " },
		{ "::/0", "192.0.2.1:100 198.51.100.7:20 2001:db8::1:5 "
			  "192.0.2.1:50 198.51.100.7:10 203.0.113.5:3 "
			  "2001:db8:1::9:2 " },
	};
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;
	unsigned int i;

	test_begin("query: source IP and CIDR filters, IPv4 and IPv6");
	for (i = 0; i < N_ELEMENTS(tests); i++) T_BEGIN {
		struct ip_addr net, ip;
		unsigned char key[16], min[16], max[16];
		unsigned int bits, j;

		/* what the door's net_parse_range() gives */
		dmarc_query_filter_init(&filter);
		test_assert_idx(net_parse_range(tests[i].source,
						&filter.source_ip,
						&filter.source_bits) == 0, i);
		filter.have_source = TRUE;
		dmarc_query_source_range(&filter.source_ip, filter.source_bits,
					 min, max);
		test_assert_strcmp_idx(record_ids(store, &filter),
				       tests[i].records, i);
		/* the key range holds what Dovecot's net_is_in_network()
		   says is in the network, for an address of the network's
		   family (it keeps IPv4 out of ::/0, and out of
		   ::ffff:0.0.0.0/96 too, where the filter lets it in) */
		test_assert_idx(net_parse_range(tests[i].source, &net,
						&bits) == 0, i);
		for (j = 0; j < N_ELEMENTS(fixture_records); j++) {
			bool in_range;

			test_assert(net_addr2ip(fixture_records[j].ip, &ip) == 0);
			test_assert(dmarc_store_ip_key(fixture_records[j].ip, key));
			if (IPADDR_IS_V4(&ip) != IPADDR_IS_V4(&net))
				continue;
			in_range = memcmp(key, min, 16) >= 0 &&
				memcmp(key, max, 16) <= 0;
			test_assert_idx(in_range ==
					net_is_in_network(&ip, &net, bits),
					i * 100 + j);
		}
	} T_END;
	test_end();
	dmarc_store_close(&store);
}

static void test_query_missing_db(void)
{
	struct dmarc_store *store = NULL;
	const char *error;
	const char *path = t_strconcat(test_tmpdir(), "/none.sqlite", NULL);

	test_begin("query: a missing database opens as nothing");
	test_assert(dmarc_store_open(path, DMARC_STORE_OPEN_READONLY, &store,
				     &error) == 0);
	test_assert(store == NULL);
	test_end();
}

static int64_t db_count(struct dmarc_store *store, const char *sql)
{
	sqlite3_stmt *stmt;
	int64_t n = -1;

	if (sqlite3_prepare_v2(dmarc_store_get_db(store), sql, -1, &stmt,
			       NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		n = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return n;
}

static void test_store_expire(void)
{
	struct dmarc_store *store;
	struct dmarc_query_filter filter;
	ARRAY_TYPE(const_string) paths;
	unsigned int deleted;
	const char *error;
	pool_t pool;

	test_begin("store: expire deletes reports with their records");
	if (dmarc_store_open(db_path, 0, &store, &error) != 1)
		i_fatal("dmarc_store_open(%s): %s", db_path, error);
	pool = pool_alloconly_create("expire paths", 256);
	p_array_init(&paths, pool, 4);

	/* nothing ends before DAY1 */
	test_assert(dmarc_store_expire(store, DAY1, pool, &paths, &deleted,
				       &error) == 0);
	test_assert(deleted == 0 && array_count(&paths) == 0);

	/* r1 and r2 ended before day 3; r2's file goes, r1's file stays
	   because r3 (kept) was stored from the same file */
	test_assert(dmarc_store_expire(store, DAY1 + 2*DAY, pool, &paths,
				       &deleted, &error) == 0);
	test_assert(deleted == 2);
	test_assert(array_count(&paths) == 1);
	if (array_count(&paths) == 1) {
		test_assert_strcmp(array_idx_elem(&paths, 0),
				   "2024/01/r2.xml");
	}
	dmarc_query_filter_init(&filter);
	test_assert_strcmp(list_ids(store, &filter), "r3 ");
	/* ON DELETE CASCADE took the records and auth results along */
	test_assert_strcmp(record_ids(store, &filter),
			   "203.0.113.5:3 2001:db8:1::9:2 ");
	test_assert(db_count(store, "SELECT count(*) FROM records") == 2);
	test_assert(db_count(store, "SELECT count(*) FROM auth_results") == 4);

	/* rows an interrupted expire left behind (their report is gone)
	   go with the next expire, in chunks, whatever it deletes */
	test_assert(sqlite3_exec(dmarc_store_get_db(store),
		"PRAGMA foreign_keys = OFF;"
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n"
		" WHERE i < 4500) INSERT INTO records (report_ref, source_ip,"
		" count, dmarc_pass) SELECT 999999, '192.0.2.1', 1, 0 FROM n;"
		"INSERT INTO auth_results (record_ref, type) SELECT id, 'spf'"
		" FROM records WHERE report_ref = 999999;"
		"INSERT INTO record_reasons (record_ref, seq, type) SELECT id,"
		" 0, 'forwarded' FROM records WHERE report_ref = 999999;"
		"INSERT INTO report_errors (report_ref, seq, error)"
		" VALUES (999999, 0, 'e');"
		"PRAGMA foreign_keys = ON;", NULL, NULL, NULL) == SQLITE_OK);
	dmarc_store_batch_set_max_time(store, 1);
	test_assert(dmarc_store_expire(store, DAY1, pool, &paths, &deleted,
				       &error) == 0);
	test_assert(deleted == 0);
	test_assert(db_count(store, "SELECT count(*) FROM records") == 2);
	test_assert(db_count(store, "SELECT count(*) FROM auth_results") == 4);
	/* and the reasons and errors of schema 3 */
	test_assert(db_count(store, "SELECT count(*) FROM record_reasons") == 0);
	test_assert(db_count(store, "SELECT count(*) FROM report_errors") == 0);
	test_end();
	pool_unref(&pool);
	dmarc_store_close(&store);
}

static bool paths_have(const ARRAY_TYPE(const_string) *paths,
		       const char *path)
{
	const char *p;

	array_foreach_elem(paths, p) {
		if (strcmp(p, path) == 0)
			return TRUE;
	}
	return FALSE;
}

/* One zip held an aggregate report and a TLS report: the file goes only
   with the last of them. And when a later step of expire fails, the
   files of the aggregate reports already deleted are still named. */
static void test_store_expire_kinds_share_files(void)
{
	const char *path = t_strconcat(test_tmpdir(), "/expire2.sqlite", NULL);
	struct dmarc_store *store;
	ARRAY_TYPE(const_string) paths;
	unsigned int deleted;
	const char *error;
	pool_t pool;

	test_begin("store: expire keeps a file another kind of report uses");
	(void)unlink(path);
	if (dmarc_store_open(path, DMARC_STORE_OPEN_CREATE, &store,
			     &error) != 1)
		i_fatal("dmarc_store_open(%s): %s", path, error);
	pool = pool_alloconly_create("expire paths", 256);
	p_array_init(&paths, pool, 4);
	fixture_store_report(store, 0);	/* r1: 2024/01/r1.xml.gz, day 1 */
	fixture_store_report(store, 1);	/* r2: 2024/01/r2.xml, day 2 */
	/* a TLS report of day 3 from r2's file */
	test_assert(sqlite3_exec(dmarc_store_get_db(store),
		"INSERT INTO tls_reports (org_name, report_id, date_begin,"
		" date_end, archive_path, received) VALUES ('o', 't1',"
		" 1704240000, 1704326399, '2024/01/r2.xml', 0)",
		NULL, NULL, NULL) == SQLITE_OK);

	/* r1 and r2 go; r2's file stays for the TLS report */
	test_assert(dmarc_store_expire(store, DAY1 + 2*DAY, pool, &paths,
				       &deleted, &error) == 0);
	test_assert(deleted == 2);
	test_assert(array_count(&paths) == 1);
	test_assert(paths_have(&paths, "2024/01/r1.xml.gz"));
	/* the TLS report goes: now the file goes with it */
	array_clear(&paths);
	test_assert(dmarc_store_expire(store, DAY1 + 3*DAY, pool, &paths,
				       &deleted, &error) == 0);
	test_assert(deleted == 1);
	test_assert(array_count(&paths) == 1);
	test_assert(paths_have(&paths, "2024/01/r2.xml"));
	test_end();

	test_begin("store: expire names the files of deleted reports after a later failure");
	fixture_store_report(store, 0);
	fixture_store_report(store, 1);
	test_assert(sqlite3_exec(dmarc_store_get_db(store),
		"INSERT INTO tls_reports (org_name, report_id, date_begin,"
		" date_end, archive_path, received) VALUES ('o', 't2',"
		" 1704067200, 1704153599, '2024/01/t2.json', 0);"
		"CREATE TRIGGER fail_tls BEFORE DELETE ON tls_reports"
		" BEGIN SELECT RAISE(ABORT, 'tls delete fails'); END",
		NULL, NULL, NULL) == SQLITE_OK);
	/* the aggregate reports are deleted, the TLS report is not */
	array_clear(&paths);
	test_assert(dmarc_store_expire(store, DAY1 + 2*DAY, pool, &paths,
				       &deleted, &error) == -1);
	test_assert(deleted == 2);
	test_assert(array_count(&paths) == 2);
	test_assert(paths_have(&paths, "2024/01/r1.xml.gz"));
	test_assert(paths_have(&paths, "2024/01/r2.xml"));
	test_assert(!paths_have(&paths, "2024/01/t2.json"));
	test_assert(db_count(store, "SELECT count(*) FROM reports") == 0);
	test_assert(db_count(store, "SELECT count(*) FROM tls_reports") == 1);

	/* the same when deleting the records fails: the reports are gone */
	fixture_store_report(store, 0);
	test_assert(sqlite3_exec(dmarc_store_get_db(store),
		"DROP TRIGGER fail_tls;"
		"CREATE TRIGGER fail_records BEFORE DELETE ON records"
		" BEGIN SELECT RAISE(ABORT, 'records delete fails'); END",
		NULL, NULL, NULL) == SQLITE_OK);
	array_clear(&paths);
	test_assert(dmarc_store_expire(store, DAY1 + 2*DAY, pool, &paths,
				       &deleted, &error) == -1);
	test_assert(deleted == 1);
	test_assert(array_count(&paths) == 1);
	test_assert(paths_have(&paths, "2024/01/r1.xml.gz"));
	test_assert(db_count(store, "SELECT count(*) FROM reports") == 0);
	test_assert(db_count(store, "SELECT count(*) FROM tls_reports") == 1);
	test_end();
	pool_unref(&pool);
	dmarc_store_close(&store);
}

/* r1 and r2 of the fixture, every count then set to INT64_MAX directly in
   the database (as a database written before counts were bounded at parse
   time may hold): the sums must saturate, not fail. */
static void test_query_sums_saturate(void)
{
	const char *path = t_strconcat(test_tmpdir(), "/big.sqlite", NULL);
	struct dmarc_store *store;
	struct dmarc_query_filter filter;
	struct summary_collected sc;
	struct collected c;
	const char *error;

	test_begin("query: sums past INT64_MAX saturate");
	(void)unlink(path);
	if (dmarc_store_open(path, DMARC_STORE_OPEN_CREATE, &store,
			     &error) != 1)
		i_fatal("dmarc_store_open(%s): %s", path, error);
	fixture_store_report(store, 0);
	fixture_store_report(store, 1);
	test_assert(sqlite3_exec(dmarc_store_get_db(store),
		"UPDATE records SET count = 9223372036854775807",
		NULL, NULL, NULL) == SQLITE_OK);
	dmarc_query_filter_init(&filter);

	/* r1: 3 records, 2 passing; r2: 2 records, 1 passing */
	collected_init(&c);
	test_assert(dmarc_query_list(store, &filter, collect_report, &c,
				     &error) == 0);
	test_assert_strcmp(str_c(c.ids), "r1 r2 ");
	test_assert(c.records == 5);
	test_assert(c.messages == 2 * (uint64_t)INT64_MAX);
	test_assert(c.pass == 2 * (uint64_t)INT64_MAX);

	/* one record's count is exact; two saturate */
	collected_init(&c);
	/* longer than collected_init() plans for: the callbacks run in a
	   data stack frame of their own and must not grow it */
	c.ids = t_str_new(512);
	test_assert(dmarc_query_groups(store, &filter, DMARC_QUERY_GROUP_SOURCE,
				       collect_group, &c, &error) == 0);
	test_assert_strcmp(str_c(c.ids),
		"192.0.2.1=9223372036854775807/9223372036854775807 "
		"198.51.100.7=9223372036854775807/0 "
		"2001:db8::1=9223372036854775807/9223372036854775807 ");
	collected_init(&c);
	test_assert(dmarc_query_groups(store, &filter, DMARC_QUERY_GROUP_DAY,
				       collect_group, &c, &error) == 0);
	test_assert(c.rows == 2);

	/* 3 of 5 records pass: the rate is right although the counts
	   saturated */
	i_zero(&sc);
	test_assert(dmarc_query_summary(store, &filter, collect_summary, &sc,
					&error) == 0);
	test_assert(sc.rows == 1);
	test_assert(sc.com.reports == 2);
	test_assert(sc.com.messages == INT64_MAX);
	test_assert(sc.com.pass == INT64_MAX);
	test_assert(rate_is(sc.com.pass_rate, 60.0));
	test_assert(rate_is(sc.com.spf_rate, 40.0));
	test_assert_strcmp(sc.com_top, "198.51.100.7:9223372036854775807");
	test_end();
	dmarc_store_close(&store);
}

static void test_query_escape(void)
{
	static const struct {
		const char *in, *out;
	} tests[] = {
		{ "", "" },
		{ "google.com", "google.com" },
		{ "r1\nFORGED\tcell", "r1\\nFORGED\\tcell" },
		{ "a\r\nb", "a\\r\\nb" },
		{ "\x1b[2Jclear", "\\x1b[2Jclear" },
		{ "del\x7f", "del\\x7f" },
		{ "\x01\x1f", "\\x01\\x1f" },
		/* U+009B (CSI) in UTF-8 */
		{ "c1\xc2\x9b" "31m", "c1\\xc2\\x9b" "31m" },
		/* printable UTF-8 around it stays: U+00E9, U+00A0, U+2028 */
		{ "caf\xc3\xa9 \xc2\xa0 \xe2\x80\xa8", "caf\xc3\xa9 \xc2\xa0 \xe2\x80\xa8" },
		/* a backslash is not a control character */
		{ "a\\nb", "a\\nb" },
	};
	unsigned int i;

	test_begin("query: escaping values for output");
	for (i = 0; i < N_ELEMENTS(tests); i++) T_BEGIN {
		test_assert_strcmp_idx(dmarc_query_escape(tests[i].in),
				       tests[i].out, i);
	} T_END;
	test_assert(dmarc_query_escape(NULL) == NULL);
	/* nothing to escape: the value itself, no copy */
	test_assert(dmarc_query_escape(tests[1].in) == tests[1].in);
	test_end();
}

/* --- report --- */

static void test_query_bucket_bounds(void)
{
	/* 2024-12-15T12:00:00Z */
	const int64_t t = 1734264000;

	test_begin("query report: day, week (Monday), month and year buckets");
	test_assert(dmarc_query_bucket_start(DMARC_QUERY_BUCKET_DAY, t) == 1734220800);
	/* 2024-12-09 was a Monday */
	test_assert(dmarc_query_bucket_start(DMARC_QUERY_BUCKET_WEEK, t) == 1733702400);
	test_assert(dmarc_query_bucket_start(DMARC_QUERY_BUCKET_WEEK, DAY1) == DAY1);
	test_assert(dmarc_query_bucket_start(DMARC_QUERY_BUCKET_MONTH, t) == 1733011200);
	/* December carries into January */
	test_assert(dmarc_query_bucket_next(DMARC_QUERY_BUCKET_MONTH, 1733011200) == 1735689600);
	test_assert(dmarc_query_bucket_start(DMARC_QUERY_BUCKET_YEAR, t) == DAY1);
	test_assert(dmarc_query_bucket_next(DMARC_QUERY_BUCKET_YEAR, DAY1) == 1735689600);
	/* before 1970 too */
	test_assert(dmarc_query_bucket_start(DMARC_QUERY_BUCKET_DAY, -1) == -DAY);
	test_end();
}

static void test_query_report_far_future(void)
{
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;
	struct dmarc_query_report *report;
	const char *error;
	enum dmarc_query_bucket_size size;

	test_begin("query report: dates near INT64_MAX saturate, no overflow");
	for (size = DMARC_QUERY_BUCKET_DAY; size <= DMARC_QUERY_BUCKET_YEAR; size++) {
		test_assert(dmarc_query_bucket_next(size, INT64_MAX - 10) == INT64_MAX);
		test_assert(dmarc_query_bucket_next(size, INT64_MAX) == INT64_MAX);
	}
	/* a report may be dated up to INT64_MAX: "since" that far */
	dmarc_query_filter_init(&filter);
	filter.have_since = TRUE;
	filter.since = INT64_MAX - 100;
	test_assert(dmarc_query_report(store, &filter, DAY1, &report, &error) == 0);
	test_assert(report->domain_count == 0);
	test_assert(report->bucket_count >= 1 &&
		    report->bucket_count <= DMARC_QUERY_REPORT_MAX_BUCKETS);
	test_assert(report->end >= report->begin);
	dmarc_query_report_free(&report);
	test_end();
	dmarc_store_close(&store);
}

/* The report's summary rows are summary's own: same figures, verdict. */
static void
check_report_matches_summary(struct dmarc_store *store,
			     const struct dmarc_query_filter *filter)
{
	struct dmarc_query_report *report;
	struct summary_collected c;
	const struct dmarc_query_summary_row *r, *s;
	const char *error;
	unsigned int i;

	i_zero(&c);
	test_assert(dmarc_query_summary(store, filter, collect_summary, &c,
					&error) == 0);
	test_assert(dmarc_query_report(store, filter, DAY1 + 10*DAY, &report,
				       &error) == 0);
	test_assert(report->domain_count == c.rows);
	for (i = 0; i < report->domain_count; i++) {
		r = &report->domains[i].summary;
		s = strcmp(r->policy_domain, "example.com") == 0 ? &c.com : &c.org;
		test_assert_strcmp(r->policy_domain, s->policy_domain);
		test_assert(r->reports == s->reports);
		test_assert(r->messages == s->messages);
		test_assert(r->pass == s->pass);
		test_assert(r->dkim_aligned == s->dkim_aligned);
		test_assert(r->spf_aligned == s->spf_aligned);
		test_assert(r->failing_sources == s->failing_sources);
		test_assert(r->top_failing_count == s->top_failing_count);
		test_assert(rate_is(r->pass_rate, s->pass_rate));
		test_assert_strcmp(r->verdict, s->verdict);
	}
	dmarc_query_report_free(&report);
}

static void test_query_report_summary(void)
{
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;

	test_begin("query report: per-domain figures and verdict as summary has them");
	dmarc_query_filter_init(&filter);
	check_report_matches_summary(store, &filter);
	filter.result = 1;
	check_report_matches_summary(store, &filter);
	dmarc_query_filter_init(&filter);
	filter.domain = "EXAMPLE.org";
	check_report_matches_summary(store, &filter);
	dmarc_query_filter_init(&filter);
	test_assert(net_parse_range("198.51.100.0/24", &filter.source_ip,
				    &filter.source_bits) == 0);
	filter.have_source = TRUE;
	check_report_matches_summary(store, &filter);
	test_end();
	dmarc_store_close(&store);
}

static void test_query_report_aggregates(void)
{
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;
	struct dmarc_query_report *report;
	const struct dmarc_query_report_domain *com, *org;
	const char *error;

	test_begin("query report: buckets, sources, reporters, policy versions");
	dmarc_query_filter_init(&filter);
	test_assert(dmarc_query_report(store, &filter, DAY1 + 10*DAY, &report,
				       &error) == 0);
	/* the data's own period: three days */
	test_assert(report->bucket_size == DMARC_QUERY_BUCKET_DAY);
	test_assert(report->bucket_count == 3);
	test_assert(report->begin == DAY1);
	test_assert(report->end == DAY1 + 3*DAY - 1);
	test_assert(!report->charts_cut);
	test_assert(!report->have_tls);       /* no TLS report stored */
	test_assert(report->domain_count == 2);
	if (report->domain_count != 2) {
		dmarc_query_report_free(&report);
		test_end();
		dmarc_store_close(&store);
		return;
	}
	/* most messages first */
	com = &report->domains[0];
	org = &report->domains[1];
	test_assert_strcmp(com->summary.policy_domain, "example.com");
	test_assert(com->bucket_count == 3);
	test_assert(com->buckets[0].start == DAY1);
	test_assert(com->buckets[0].messages == 125);
	test_assert(com->buckets[0].pass == 105);
	test_assert(com->buckets[0].dkim_aligned == 105);
	test_assert(com->buckets[0].spf_aligned == 100);
	test_assert(com->buckets[0].none == 105);
	test_assert(com->buckets[0].reject == 20);
	test_assert(com->buckets[1].messages == 60);
	test_assert(com->buckets[1].quarantine == 10);
	test_assert(com->buckets[1].other == 0);
	test_assert(com->buckets[2].messages == 0);

	test_assert(com->top_source_count == 3);
	test_assert_strcmp(com->top_sources[0].source_ip, "192.0.2.1");
	test_assert(com->top_sources[0].messages == 150);
	test_assert_strcmp(com->top_sources[1].source_ip, "198.51.100.7");
	test_assert_strcmp(com->top_sources[2].source_ip, "2001:db8::1");
	test_assert(com->top_sources[2].spf_aligned == 0);
	test_assert(com->failing_source_count == 1);
	test_assert_strcmp(com->failing_sources[0].source_ip, "198.51.100.7");
	test_assert(com->failing_sources[0].messages == 30);

	test_assert(com->reporter_count == 2);
	test_assert_strcmp(com->reporters[0].org_name, "google.com");
	test_assert(com->reporters[0].messages == 125);
	test_assert(com->reporters[0].reports == 1);
	test_assert_strcmp(com->reporters[1].org_name, "Yahoo");

	/* p=reject on day 1, p=none on day 2: two versions, oldest first */
	test_assert(com->policy_count == 2);
	test_assert_strcmp(com->policies[0].p, "reject");
	test_assert(com->policies[0].first_seen == DAY1);
	test_assert_strcmp(com->policies[1].p, "none");
	test_assert(com->policies[1].first_seen == DAY1 + DAY);

	test_assert(org->buckets[2].messages == 5);
	test_assert(org->policy_count == 1);
	test_assert_strcmp(org->policies[0].np, "reject");
	test_assert(org->policies[0].pct == -1);
	dmarc_query_report_free(&report);

	/* "since": the period runs to now, empty days included */
	filter.have_since = TRUE;
	filter.since = DAY1 + DAY;
	test_assert(dmarc_query_report(store, &filter, DAY1 + 10*DAY, &report,
				       &error) == 0);
	test_assert(report->bucket_count == 10);
	test_assert(report->domain_count == 2);
	test_assert(report->domains[0].buckets[0].messages == 60);
	dmarc_query_report_free(&report);

	/* an empty period */
	filter.since = DAY1 + 5*DAY;
	test_assert(dmarc_query_report(store, &filter, DAY1 + 10*DAY, &report,
				       &error) == 0);
	test_assert(report->domain_count == 0);
	test_assert(report->bucket_count == 6);
	dmarc_query_report_free(&report);
	test_end();
	dmarc_store_close(&store);
}

static void test_query_report_period_bounded(void)
{
	struct dmarc_store *store = fixture_open();
	struct dmarc_query_filter filter;
	struct dmarc_query_report *report;
	const char *error;

	test_begin("query report: wider periods in weeks, months, years, at most 62 buckets");
	dmarc_query_filter_init(&filter);
	filter.have_since = filter.have_until = TRUE;
	filter.since = DAY1;
	filter.until = DAY1 + 100*DAY;
	test_assert(dmarc_query_report(store, &filter, DAY1, &report, &error) == 0);
	test_assert(report->bucket_size == DMARC_QUERY_BUCKET_WEEK);
	test_assert(report->bucket_count == 15);
	test_assert(report->domains[0].buckets[0].messages == 185);
	dmarc_query_report_free(&report);

	filter.until = DAY1 + 3*366*DAY;
	test_assert(dmarc_query_report(store, &filter, DAY1, &report, &error) == 0);
	test_assert(report->bucket_size == DMARC_QUERY_BUCKET_MONTH);
	test_assert(report->bucket_count == 37);
	dmarc_query_report_free(&report);

	/* 1970 to 2100: the last 62 years are charted, the figures keep
	   what came before */
	filter.since = 0;
	filter.until = 4102444800;
	test_assert(dmarc_query_report(store, &filter, DAY1, &report, &error) == 0);
	test_assert(report->bucket_size == DMARC_QUERY_BUCKET_YEAR);
	test_assert(report->bucket_count == DMARC_QUERY_REPORT_MAX_BUCKETS);
	test_assert(report->charts_cut);
	test_assert(report->domain_count == 2);
	test_assert(report->domains[0].summary.messages == 185);
	test_assert(report->domains[0].buckets[0].messages == 0);
	dmarc_query_report_free(&report);
	test_end();
	dmarc_store_close(&store);
}

static void test_query_report_domains_bounded(void)
{
	const unsigned int n = DMARC_QUERY_REPORT_MAX_DOMAINS + 5;
	const char *path = t_strconcat(test_tmpdir(), "/domains.sqlite", NULL);
	struct dmarc_query_filter filter;
	struct dmarc_query_report *report;
	struct dmarc_store *store;
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	struct dmarc_report rep;
	struct dmarc_record record;
	const char *error;
	unsigned int i;

	test_begin("query report: the busiest domains get a section, the rest one line");
	test_assert(dmarc_store_open(path, DMARC_STORE_OPEN_CREATE, &store,
				     &error) == 1);
	/* d01.example has 1 message ... d25.example 25 */
	for (i = 1; i <= n; i++) T_BEGIN {
		i_zero(&rep);
		t_array_init(&rep.errors, 1);
		rep.version = "1.0";
		rep.org_name = "org";
		rep.report_id = t_strdup_printf("r%u", i);
		rep.date_begin = DAY1;
		rep.date_end = DAY1 + DAY - 1;
		rep.policy.domain = t_strdup_printf("d%02u.example", i);
		rep.policy.p = "none";
		rep.policy.pct = DMARC_UNSET;
		i_zero(&info);
		info.received = DAY1 + DAY;
		test_assert(dmarc_store_report_begin(store, &rep, &info, &sreport,
						     &error) == 1);
		i_zero(&record);
		t_array_init(&record.reasons, 1);
		t_array_init(&record.auth_results, 1);
		record.source_ip = "192.0.2.1";
		record.count = i;
		record.disposition = "none";
		record.dkim = "pass";
		record.spf = "pass";
		test_assert(dmarc_store_report_add_record(sreport, &record,
							  &error) == 0);
		test_assert(dmarc_store_report_commit(&sreport, &error) == 0);
	} T_END;
	dmarc_query_filter_init(&filter);
	test_assert(dmarc_query_report(store, &filter, DAY1, &report, &error) == 0);
	test_assert(report->domain_count == DMARC_QUERY_REPORT_MAX_DOMAINS);
	test_assert_strcmp(report->domains[0].summary.policy_domain, "d25.example");
	test_assert_strcmp(report->domains[DMARC_QUERY_REPORT_MAX_DOMAINS - 1].summary.policy_domain,
			   "d06.example");
	test_assert(report->more_domains == 5);
	test_assert(report->more_domains_messages == 1 + 2 + 3 + 4 + 5);
	dmarc_query_report_free(&report);
	dmarc_store_close(&store);
	test_end();
}

static void test_query_report_tls(void)
{
	const char *path = t_strconcat(test_tmpdir(), "/tls.sqlite", NULL);
	struct dmarc_query_filter filter;
	struct dmarc_query_report *report;
	struct dmarc_store *store;
	const char *error;

	test_begin("query report: TLS sessions per policy domain once TLS reports are stored");
	test_assert(dmarc_store_open(path, DMARC_STORE_OPEN_CREATE, &store,
				     &error) == 1);
	dmarc_query_filter_init(&filter);
	/* no TLS report yet: no TLS section */
	test_assert(dmarc_query_report(store, &filter, DAY1, &report, &error) == 0);
	test_assert(!report->have_tls);
	dmarc_query_report_free(&report);

	/* rows as the store keeps RFC 8460 reports (schema version 2) */
	test_assert(sqlite3_exec(dmarc_store_get_db(store),
		"INSERT INTO tls_reports (id, org_name, report_id, date_begin,"
		" date_end, received) VALUES (1, 'o', 'a', 1704067200, 1704153599, 0);"
		"INSERT INTO tls_reports (id, org_name, report_id, date_begin,"
		" date_end, received) VALUES (2, 'o', 'b', 1704153600, 1704239999, 0);"
		"INSERT INTO tls_policies (id, report_ref, policy_domain,"
		" success_count, failure_count) VALUES (1, 1, 'example.com', 90, 10);"
		"INSERT INTO tls_policies (id, report_ref, policy_domain,"
		" success_count, failure_count) VALUES (2, 2, 'example.com', 5, 0);"
		"INSERT INTO tls_policies (id, report_ref, policy_domain,"
		" success_count, failure_count) VALUES (3, 2, 'example.org', 500, 1);",
		NULL, NULL, NULL) == SQLITE_OK);
	test_assert(dmarc_query_report(store, &filter, DAY1, &report, &error) == 0);
	test_assert(report->have_tls);
	test_assert(report->tls_count == 2);
	if (report->tls_count == 2) {
		/* most sessions first */
		test_assert_strcmp(report->tls[0].policy_domain, "example.org");
		test_assert(report->tls[0].success == 500);
		test_assert(report->tls[0].failure == 1);
		test_assert(report->tls[1].success == 95);
		test_assert(report->tls[1].failure == 10);
	}
	dmarc_query_report_free(&report);

	/* the period and the domain filter them too */
	filter.have_since = TRUE;
	filter.since = DAY1 + DAY;
	filter.domain = "example.com";
	test_assert(dmarc_query_report(store, &filter, DAY1, &report, &error) == 0);
	test_assert(report->have_tls);
	test_assert(report->tls_count == 1 && report->tls[0].success == 5);
	dmarc_query_report_free(&report);
	dmarc_store_close(&store);
	test_end();
}

/* test_run() owns lib_init(): set-up and tear-down run inside it. */
static void fixture_teardown(void)
{
	i_free(db_path);
	test_tmpdir_cleanup();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		fixture_create,
		test_query_list_figures,
		test_query_list_row,
		test_query_records_auth,
		test_query_records_auth_summary,
		test_query_groups,
		test_query_group_names,
		test_query_summary,
		/* before expire and the saturation test change the set */
		test_query_bucket_bounds,
		test_query_report_far_future,
		test_query_report_summary,
		test_query_report_aggregates,
		test_query_report_period_bounded,
		test_query_report_domains_bounded,
		test_query_report_tls,
		test_query_filters,
		test_query_not_report_limit_sort,
		test_query_invalid_source,
		test_query_show_lists_per_record,
		test_query_list_counts_matching_records,
		test_query_source_filters,
		test_query_missing_db,
		test_store_expire,
		test_store_expire_kinds_share_files,
		test_query_sums_saturate,
		test_query_escape,
		fixture_teardown,
		NULL
	};
	return test_run(test_functions);
}
