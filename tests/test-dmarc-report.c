/* Unit tests for dmarc-svg.c and dmarc-report-html.c: the HTML page, its
   charts and tables, the plain-text summary and the digest mail, from
   hand-made aggregates (no database). */

#include "lib.h"
#include "str.h"
#include "base64.h"
#include "test-dmarc-common.h"
#include "dmarc-query.h"
#include "dmarc-svg.h"
#include "dmarc-report-html.h"

/* 2024-01-01T00:00:00Z */
#define DAY1 1704067200
#define DAY (24*60*60)

#define HOSTILE "<script>alert(1)</script>\x1b[31m\"&'"

static unsigned int count_str(const char *haystack, const char *needle)
{
	unsigned int n = 0;
	const char *p = haystack;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	return n;
}

static struct dmarc_query_report_bucket buckets[4] = {
	{ .start = DAY1, .messages = 100, .pass = 90, .dkim_aligned = 80,
	  .spf_aligned = 85, .none = 95, .quarantine = 5 },
	{ .start = DAY1 + DAY, .messages = 0 },
	{ .start = DAY1 + 2*DAY, .messages = 50, .pass = 50,
	  .dkim_aligned = 50, .spf_aligned = 40, .none = 50 },
	{ .start = DAY1 + 3*DAY, .messages = 10, .pass = 0, .reject = 7,
	  .other = 3 },
};

static const struct dmarc_query_report_source sources[] = {
	{ .source_ip = "192.0.2.1", .messages = 140, .pass = 140,
	  .dkim_aligned = 130, .spf_aligned = 125 },
	{ .source_ip = HOSTILE, .messages = 20, .pass = 0 },
};

static const struct dmarc_query_source_count top_failing[] = {
	{ .source_ip = HOSTILE, .messages = 20 },
};

static const struct dmarc_query_report_reporter reporters[] = {
	{ .org_name = HOSTILE, .reports = 3, .messages = 160, .pass = 140 },
};

static const struct dmarc_query_report_policy policies[] = {
	{ .p = "none", .sp = "none", .pct = 100, .first_seen = DAY1,
	  .last_seen = DAY1 + 2*DAY, .reports = 2 },
	{ .p = "quarantine", .pct = -1, .first_seen = DAY1 + 3*DAY,
	  .last_seen = DAY1 + 3*DAY, .reports = 1 },
};

static void test_report_fill(struct dmarc_query_report *report,
			     struct dmarc_query_report_domain *domain)
{
	i_zero(report);
	i_zero(domain);
	report->begin = DAY1;
	report->end = DAY1 + 4*DAY - 1;
	report->bucket_size = DMARC_QUERY_BUCKET_DAY;
	report->bucket_count = N_ELEMENTS(buckets);
	domain->summary.policy_domain = "example.com";
	domain->summary.reports = 3;
	domain->summary.messages = 160;
	domain->summary.pass = 140;
	domain->summary.pass_rate = 87.5;
	domain->summary.failing_sources = 1;
	domain->summary.top_failing = top_failing;
	domain->summary.top_failing_count = 1;
	domain->summary.verdict = "fix first: " HOSTILE " (20 msgs failing)";
	domain->buckets = buckets;
	domain->bucket_count = N_ELEMENTS(buckets);
	domain->top_sources = sources;
	domain->top_source_count = N_ELEMENTS(sources);
	domain->failing_sources = &sources[1];
	domain->failing_source_count = 1;
	domain->reporters = reporters;
	domain->reporter_count = N_ELEMENTS(reporters);
	domain->policies = policies;
	domain->policy_count = N_ELEMENTS(policies);
	report->domains = domain;
	report->domain_count = 1;
}

static const struct dmarc_report_html_info info = {
	.user = "dmarc@example.com", .generated = DAY1 + 5*DAY,
};

static void test_report_html_charts(void)
{
	struct dmarc_query_report report;
	struct dmarc_query_report_domain domain;
	string_t *html = t_str_new(65536);

	test_begin("report html: three charts, a bar per day, a point per day with mail");
	test_report_fill(&report, &domain);
	dmarc_report_html(html, &report, &info);
	test_assert(count_str(str_c(html), "<svg ") == 3);
	test_assert(count_str(str_c(html), "data-chart=\"messages\"") == 1);
	test_assert(count_str(str_c(html), "data-chart=\"rates\"") == 1);
	test_assert(count_str(str_c(html), "data-chart=\"dispositions\"") == 1);
	/* messages and dispositions: one group per day, empty days too */
	test_assert(count_str(str_c(html), "<g class=\"bar\">") == 2 * 4);
	/* rates: three series, a marker for each of the 3 days with mail,
	   the day without a gap in the line */
	test_assert(count_str(str_c(html), "class=\"point\"") == 3 * 3);
	test_assert(count_str(str_c(html), "<path class=\"line\"") == 3);
	/* every chart has a title and a table beside it */
	test_assert(count_str(str_c(html), "</svg>\n<div class=\"table\"><table>") == 3);
	test_assert(count_str(str_c(html), "<figcaption>") == 3);
	test_assert(count_str(str_c(html), "<title>") >= 3);
	/* the numbers of the table */
	test_assert(strstr(str_c(html), "<td>2024-01-02</td><td class=\"n\">0</td>") != NULL);
	test_assert(strstr(str_c(html), "The policy changed during the period: 2 versions.") != NULL);
	test_assert(strstr(str_c(html), "class=\"verdict fix\"") != NULL);
	test_end();
}

static void test_report_html_self_contained(void)
{
	struct dmarc_query_report report;
	struct dmarc_query_report_domain domain;
	string_t *html = t_str_new(65536);
	const char *p;

	test_begin("report html: no script, no external resource, values escaped");
	test_report_fill(&report, &domain);
	dmarc_report_html(html, &report, &info);
	p = str_c(html);
	test_assert(strncmp(p, "<!DOCTYPE html>\n", 16) == 0);
	test_assert(strstr(p, "<script") == NULL);
	test_assert(strstr(p, "src=") == NULL);
	test_assert(strstr(p, "url(") == NULL);
	test_assert(strstr(p, "@import") == NULL);
	test_assert(strstr(p, "<link") == NULL);
	/* the only URL is SVG's namespace name, which nothing fetches */
	test_assert(count_str(p, "http") == count_str(p, "xmlns=\"http://www.w3.org/2000/svg\""));
	test_assert(strstr(p, "href=\"http") == NULL);
	test_assert(strstr(p, "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[31m&quot;&amp;&#39;") != NULL);
	test_assert(strchr(p, '\x1b') == NULL);
	/* dark mode and print */
	test_assert(strstr(p, "prefers-color-scheme:dark") != NULL);
	test_assert(strstr(p, "@media print") != NULL);
	test_end();
}

static void test_report_html_empty_period(void)
{
	struct dmarc_query_report report;
	struct dmarc_query_report_domain domain;
	string_t *html = t_str_new(4096), *text = t_str_new(1024);

	test_begin("report html: an empty period says so, no charts");
	test_report_fill(&report, &domain);
	report.domain_count = 0;
	dmarc_report_html(html, &report, &info);
	test_assert(strstr(str_c(html), "<svg") == NULL);
	test_assert(strstr(str_c(html),
		"No DMARC aggregate reports from 2024-01-01 to 2024-01-04") != NULL);
	dmarc_report_text(text, &report, &info);
	test_assert(strstr(str_c(text), "No DMARC aggregate reports") != NULL);
	test_end();
}

static void test_report_html_tls(void)
{
	static const struct dmarc_query_report_tls tls[] = {
		{ "example.com", 990, 10 }, { "example.org", 5, 0 },
	};
	struct dmarc_query_report report;
	struct dmarc_query_report_domain domain;
	string_t *html = t_str_new(65536);

	test_begin("report html: a TLS section only when the database has TLS reports");
	test_report_fill(&report, &domain);
	dmarc_report_html(html, &report, &info);
	test_assert(strstr(str_c(html), "SMTP TLS") == NULL);

	report.have_tls = TRUE;
	str_truncate(html, 0);
	dmarc_report_html(html, &report, &info);
	test_assert(strstr(str_c(html), "No TLS reports in this period.") != NULL);

	report.tls = tls;
	report.tls_count = N_ELEMENTS(tls);
	str_truncate(html, 0);
	dmarc_report_html(html, &report, &info);
	test_assert(count_str(str_c(html), "data-chart=\"tls\"") == 1);
	test_assert(count_str(str_c(html), "<g class=\"bar\">") == 2 * 4 + 2);
	test_end();
}

static void test_report_more_domains(void)
{
	struct dmarc_query_report report;
	struct dmarc_query_report_domain domain;
	string_t *html = t_str_new(65536), *text = t_str_new(4096);

	test_begin("report: domains beyond the limit and reports beyond the charts are said");
	test_report_fill(&report, &domain);
	report.more_domains = 5;
	report.more_domains_messages = 12;
	dmarc_report_html(html, &report, &info);
	test_assert(strstr(str_c(html), "And 5 more domains with 12 messages") != NULL);
	test_assert(strstr(str_c(html), "Some reports began outside") == NULL);
	report.charts_cut = TRUE;
	str_truncate(html, 0);
	dmarc_report_html(html, &report, &info);
	test_assert(strstr(str_c(html), "Some reports began outside 2024-01-01 "
			   "to 2024-01-04: they count in the figures") != NULL);
	dmarc_report_text(text, &report, &info);
	test_assert(strstr(str_c(text), "And 5 more domains with 12 messages") != NULL);
	test_end();
}

static void test_report_text(void)
{
	struct dmarc_query_report report;
	struct dmarc_query_report_domain domain;
	string_t *text = t_str_new(4096);

	test_begin("report text: figures, verdict, policy versions, escaped values");
	test_report_fill(&report, &domain);
	dmarc_report_text(text, &report, &info);
	test_assert(strncmp(str_c(text), "DMARC report 2024-01-01 to 2024-01-04\n", 38) == 0);
	test_assert(strstr(str_c(text), "example.com: 160 messages in 3 reports\n") != NULL);
	test_assert(strstr(str_c(text), "  Policy: p=none sp=none pct=100 (2024-01-01 to 2024-01-03)\n") != NULL);
	test_assert(strstr(str_c(text), "  then: p=quarantine (2024-01-04 to 2024-01-04)\n") != NULL);
	test_assert(strstr(str_c(text), "\\x1b[31m") != NULL);
	test_assert(strchr(str_c(text), '\x1b') == NULL);
	test_end();
}

static const char *mail_part_body(const char *mail, const char *type)
{
	const char *p = strstr(mail, t_strdup_printf("Content-Type: %s;", type));
	const char *end;
	buffer_t *decoded;

	if (p == NULL || (p = strstr(p, "\n\n")) == NULL)
		return NULL;
	p += 2;
	end = strstr(p, "\n--=_dmarcreport_");
	if (end == NULL)
		return NULL;
	decoded = t_base64_decode_str(t_strdup_until(p, end));
	return t_strndup(decoded->data, decoded->used);
}

static void test_report_mail(void)
{
	struct dmarc_query_report report;
	struct dmarc_query_report_domain domain;
	string_t *mail = t_str_new(65536), *html = t_str_new(65536);
	string_t *text = t_str_new(4096);
	const char *const *lines, *boundary, *p;
	unsigned int i;
	bool in_body = FALSE, long_line = FALSE;

	struct dmarc_report_html_info mail_info = info;

	test_begin("report mail: multipart/alternative, text then HTML, base64");
	test_report_fill(&report, &domain);
	dmarc_report_mail(mail, &report, &info, "dmarc@example.com");
	mail_info.for_mail = TRUE;
	dmarc_report_html(html, &report, &mail_info);
	dmarc_report_text(text, &report, &info);

	p = str_c(mail);
	test_assert(strstr(p, "\nSubject: DMARC report 2024-01-01 to 2024-01-04\n") != NULL);
	test_assert(strncmp(p, "From: DMARC report <dmarc@example.com>\n", 39) == 0);
	test_assert(strstr(p, "\nMIME-Version: 1.0\n") != NULL);
	test_assert(strstr(p, "\nAuto-Submitted: auto-generated\n") != NULL);
	p = strstr(p, "Content-Type: multipart/alternative; boundary=\"");
	test_assert(p != NULL);
	if (p == NULL) {
		test_end();
		return;
	}
	boundary = t_strcut(p + 47, '"');
	test_assert(count_str(str_c(mail), t_strdup_printf("\n--%s\n", boundary)) == 2);
	test_assert(count_str(str_c(mail), t_strdup_printf("\n--%s--\n", boundary)) == 1);
	/* the parts decode to what the renderers give, text first */
	test_assert(strstr(str_c(mail), "Content-Type: text/plain;") <
		    strstr(str_c(mail), "Content-Type: text/html;"));
	test_assert_strcmp(mail_part_body(str_c(mail), "text/plain"), str_c(text));
	test_assert_strcmp(mail_part_body(str_c(mail), "text/html"), str_c(html));
	/* RFC 5322 2.1.1: lines of at most 78 characters here */
	lines = t_strsplit(str_c(mail), "\n");
	for (i = 0; lines[i] != NULL; i++) {
		if (lines[i][0] == '\0')
			in_body = TRUE;
		if (in_body && strlen(lines[i]) > 78)
			long_line = TRUE;
	}
	test_assert(!long_line);

	/* a user name that is no address does not break the header */
	str_truncate(mail, 0);
	dmarc_report_mail(mail, &report, &info, "bob");
	test_assert(strncmp(str_c(mail), "From: DMARC report <bob@localhost>\n", 35) == 0);
	str_truncate(mail, 0);
	dmarc_report_mail(mail, &report, &info, "evil>\nBcc: x@y");
	test_assert(strstr(str_c(mail), "\nBcc:") == NULL);
	test_end();
}

static void test_report_mail_charts(void)
{
	struct dmarc_query_report report;
	struct dmarc_query_report_domain domain;
	struct dmarc_report_html_info mail_info = info;
	string_t *html = t_str_new(65536);
	const char *p;

	test_begin("report mail html: charts as tables of bars, no SVG (Gmail, Outlook)");
	test_report_fill(&report, &domain);
	mail_info.for_mail = TRUE;
	dmarc_report_html(html, &report, &mail_info);
	p = str_c(html);
	test_assert(strstr(p, "<svg") == NULL);
	test_assert(count_str(p, "<table class=\"mailchart\"") == 3);
	/* a row per day in each chart */
	test_assert(count_str(p, "<tr class=\"bar\">") == 3 * 4);
	/* messages: pass+fail on day 1, pass on day 3, fail on day 4;
	   rates: three bars on each of the 3 days with mail; dispositions:
	   none+quarantine, none, reject+other */
	test_assert(count_str(p, "class=\"seg\"") == (2 + 1 + 1) + 3 * 3 + (2 + 1 + 2));
	/* widths are percentages of the largest day */
	test_assert(strstr(p, "<table width=\"100.0%\" cellpadding=\"0\" "
			   "cellspacing=\"0\"><tr><td class=\"seg\" width=\"90.0%\"") != NULL);
	test_assert(strstr(p, "<script") == NULL);
	test_assert(strstr(p, "src=") == NULL);
	test_end();
}

/* The page is bounded whatever the database holds: at most 20 domains,
   62 buckets, 10+10 sources, 10 reporters and 20 policy versions each,
   values (up to dmarcreport_max_value_length, 1024 bytes) shown cut at
   255. That page is 2.8 MB, 3.9 MB as a mail's HTML. */
#define WORST_VALUE_LEN 1024
#define WORST_PAGE_BYTES (4*1024*1024)
static void test_report_html_worst_case_size(void)
{
	const unsigned int nb = DMARC_QUERY_REPORT_MAX_BUCKETS;
	struct dmarc_query_report report;
	struct dmarc_query_report_domain *domains;
	struct dmarc_query_report_bucket *b;
	struct dmarc_query_report_source *src;
	struct dmarc_query_report_reporter *rep;
	struct dmarc_query_report_policy *pol;
	const char *long_value;
	string_t *html = str_new(default_pool, 1024*1024);
	unsigned int i, j;

	test_begin("report html: the largest page the limits allow stays bounded");
	long_value = t_strdup_printf("%0*d", WORST_VALUE_LEN, 7);
	b = t_new(struct dmarc_query_report_bucket, nb);
	for (i = 0; i < nb; i++) {
		b[i].start = DAY1 + i * DAY;
		b[i].messages = UINT64_C(1234567890123);
		b[i].pass = UINT64_C(1234567890000);
		b[i].dkim_aligned = b[i].spf_aligned = UINT64_C(1111111111111);
		b[i].none = b[i].quarantine = b[i].reject = b[i].other =
			UINT64_C(308641972530);
	}
	src = t_new(struct dmarc_query_report_source, DMARC_QUERY_REPORT_TOP_SOURCES);
	for (i = 0; i < DMARC_QUERY_REPORT_TOP_SOURCES; i++) {
		src[i].source_ip = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff";
		src[i].messages = UINT64_C(1234567890123);
	}
	rep = t_new(struct dmarc_query_report_reporter, DMARC_QUERY_REPORT_TOP_REPORTERS);
	for (i = 0; i < DMARC_QUERY_REPORT_TOP_REPORTERS; i++)
		rep[i].org_name = long_value;
	pol = t_new(struct dmarc_query_report_policy, DMARC_QUERY_REPORT_MAX_POLICIES);
	for (i = 0; i < DMARC_QUERY_REPORT_MAX_POLICIES; i++) {
		pol[i].p = pol[i].sp = pol[i].np = pol[i].adkim = pol[i].aspf =
			pol[i].fo = pol[i].testing = long_value;
	}
	domains = t_new(struct dmarc_query_report_domain, DMARC_QUERY_REPORT_MAX_DOMAINS);
	for (i = 0; i < DMARC_QUERY_REPORT_MAX_DOMAINS; i++) {
		domains[i].summary.policy_domain = long_value;
		domains[i].summary.verdict = t_strdup_printf("fix first: %s", long_value);
		domains[i].buckets = b;
		domains[i].bucket_count = nb;
		domains[i].top_sources = domains[i].failing_sources = src;
		domains[i].top_source_count = domains[i].failing_source_count =
			DMARC_QUERY_REPORT_TOP_SOURCES;
		domains[i].reporters = rep;
		domains[i].reporter_count = DMARC_QUERY_REPORT_TOP_REPORTERS;
		domains[i].policies = pol;
		domains[i].policy_count = DMARC_QUERY_REPORT_MAX_POLICIES;
	}
	i_zero(&report);
	report.begin = DAY1;
	report.end = DAY1 + nb * DAY - 1;
	report.bucket_count = nb;
	report.domains = domains;
	report.domain_count = DMARC_QUERY_REPORT_MAX_DOMAINS;
	for (j = 0; j < 2; j++) {
		struct dmarc_report_html_info worst_info = info;

		worst_info.for_mail = j == 1;
		str_truncate(html, 0);
		dmarc_report_html(html, &report, &worst_info);
		test_assert_idx(str_len(html) < WORST_PAGE_BYTES, j);
	}
	str_free(&html);
	test_end();
}

static void test_svg_text_cut(void)
{
	string_t *str = t_str_new(1024);
	const char *long_value = t_strdup_printf("%0*d", 300, 0);
	const char *utf8 = t_strconcat(t_strdup_printf("%0*d", 254, 0),
				       "\xc3\xa9", NULL);

	test_begin("svg text: a value past 255 bytes is cut with an ellipsis");
	dmarc_svg_append_text(str, long_value);
	test_assert(str_len(str) == 255 + 3);
	test_assert(strcmp(str_c(str) + 255, "\xe2\x80\xa6") == 0);
	/* at a character boundary: 254 bytes and "é" is 256, cut before
	   the "é"; 253 bytes and "é" is 255, whole */
	str_truncate(str, 0);
	dmarc_svg_append_text(str, utf8);
	test_assert(str_len(str) == 254 + 3);
	str_truncate(str, 0);
	dmarc_svg_append_text(str, utf8 + 1);
	test_assert(str_len(str) == 255);
	test_end();
}

static void test_svg_lines_without_values(void)
{
	static const double none[] = { DMARC_SVG_NO_VALUE, DMARC_SVG_NO_VALUE };
	static const char *const labels[] = { "a", "b" };
	const struct dmarc_svg_series series = { "s", DMARC_SVG_BLUE, NULL, none };
	const struct dmarc_svg_chart chart = {
		.id = "x", .title = "t", .x_label = "x", .y_label = "y",
		.x_labels = labels, .x_count = 2, .series = &series,
		.series_count = 1, .y_max = 100, .y_unit = "%",
	};
	string_t *svg = t_str_new(4096);

	test_begin("svg: a series without values draws no path (an empty d is an error)");
	dmarc_svg_lines(svg, &chart);
	test_assert(strstr(str_c(svg), "<path class=\"line\"") == NULL);
	test_assert(strstr(str_c(svg), "class=\"point\"") == NULL);
	test_assert(strstr(str_c(svg), "nan") == NULL);
	test_end();
}

static void test_svg_axis(void)
{
	static const double values[] = { 0, 1234567 };
	static const double zeros[] = { 0, 0 };
	static const char *const labels[] = { "a", "b" };
	struct dmarc_svg_series series = { "s", DMARC_SVG_BLUE, NULL, values };
	struct dmarc_svg_chart chart = {
		.id = "x", .title = "t", .x_label = "x", .y_label = "y",
		.x_labels = labels, .x_count = 2, .series = &series,
		.series_count = 1, .y_unit = "",
	};
	string_t *svg = t_str_new(4096);

	test_begin("svg: y axis in round steps above the data, short labels");
	dmarc_svg_stacked_bars(svg, &chart);
	test_assert(strstr(str_c(svg), ">1.5M</text>") != NULL);
	test_assert(strstr(str_c(svg), ">2M</text>") == NULL);
	/* all zero: an axis of 0..1, no division by zero */
	series.values = zeros;
	str_truncate(svg, 0);
	dmarc_svg_stacked_bars(svg, &chart);
	test_assert(strstr(str_c(svg), "nan") == NULL);
	test_assert(strstr(str_c(svg), "inf") == NULL);
	/* no bar segment (the legend has its swatch) */
	test_assert(strstr(str_c(svg), "</title><rect") == NULL);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_report_html_charts,
		test_report_html_self_contained,
		test_report_html_empty_period,
		test_report_html_tls,
		test_report_more_domains,
		test_report_text,
		test_report_mail,
		test_report_mail_charts,
		test_report_html_worst_case_size,
		test_svg_text_cut,
		test_svg_lines_without_values,
		test_svg_axis,
		NULL
	};
	return test_run(test_functions);
}
