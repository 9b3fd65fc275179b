/* The HTML report and its plain-text summary: per policy domain the
   verdict toward p=reject, messages and rates over time, dispositions,
   sources, reporters and the published policy; every chart with the
   same numbers in a table beside it. */

#include "lib.h"
#include "str.h"
#include "base64.h"
#include "hostpid.h"
#include "message-date.h"
#include "dmarc-query.h"
#include "dmarc-svg.h"
#include "dmarc-report-html.h"

#include <time.h>

/* Kept in the page: a stylesheet or font fetched from elsewhere would be
   a request, and mail clients block them anyway. The SVG colours are
   fixed (see dmarc-svg.h); text and axes follow the scheme. */
static const char report_css[] =
":root{color-scheme:light dark}\n"
"body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
"margin:1.5em auto;max-width:1120px;padding:0 1em;color:#1b1b1b;"
"background:#fff}\n"
"h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:2em;"
"border-bottom:2px solid rgba(128,128,128,.4)}h3{margin-bottom:.3em}\n"
"figure.chart{display:flex;flex-wrap:wrap;gap:1em 2em;margin:1em 0 2em;"
"align-items:flex-start}\n"
"figure.chart figcaption{flex:1 1 100%;font-weight:bold}\n"
"figure.chart svg{flex:1 1 420px;max-width:640px;height:auto}\n"
".table{flex:1 1 280px;max-height:300px;overflow:auto}\n"
"table{border-collapse:collapse;font-variant-numeric:tabular-nums}\n"
"th,td{padding:2px 8px;border-bottom:1px solid rgba(128,128,128,.35);"
"text-align:left;vertical-align:top}\n"
"th{font-weight:600}td.n,th.n{text-align:right}\n"
".table td:first-child{white-space:nowrap}\n"
"table.mailchart{max-width:900px}table.mailchart td{border:0;padding:1px 4px}\n"
".meta{color:#555}.empty{font-size:1.2em;padding:1em;"
"border:1px dashed rgba(128,128,128,.6)}\n"
".verdict{font-size:1.1em;padding:.5em .8em;border-left:6px solid #999}\n"
".verdict.ready{border-color:#0072B2}.verdict.fix{border-color:#D55E00}\n"
".verdict.little{border-color:#999}\n"
"@media (prefers-color-scheme:dark){body{color:#e4e4e4;background:#15171a}"
".meta{color:#aaa}a{color:#8ab4f8}}\n"
"@media print{body{max-width:none;color:#000;background:#fff}"
".table{max-height:none;overflow:visible}section.domain{break-before:page}"
"figure.chart{break-inside:avoid}a{color:inherit}}\n";

static void html_text(string_t *dest, const char *text)
{
	dmarc_svg_append_text(dest, text);
}

static const char *report_date(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[32];

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%d", &tm) == 0)
		return t_strdup_printf("%"PRId64, t);
	return t_strdup(buf);
}

static const char *bucket_label(enum dmarc_query_bucket_size size, int64_t t)
{
	const char *date = report_date(t);

	switch (size) {
	case DMARC_QUERY_BUCKET_DAY:
	case DMARC_QUERY_BUCKET_WEEK:
		return date;
	case DMARC_QUERY_BUCKET_MONTH:
		return t_strndup(date, 7);
	case DMARC_QUERY_BUCKET_YEAR:
		return t_strndup(date, 4);
	}
	i_unreached();
}

static const char *bucket_axis(enum dmarc_query_bucket_size size)
{
	switch (size) {
	case DMARC_QUERY_BUCKET_DAY: return "day (UTC)";
	case DMARC_QUERY_BUCKET_WEEK: return "week starting (UTC)";
	case DMARC_QUERY_BUCKET_MONTH: return "month (UTC)";
	case DMARC_QUERY_BUCKET_YEAR: return "year (UTC)";
	}
	i_unreached();
}

static const char *bucket_name(enum dmarc_query_bucket_size size)
{
	switch (size) {
	case DMARC_QUERY_BUCKET_DAY: return "day";
	case DMARC_QUERY_BUCKET_WEEK: return "week";
	case DMARC_QUERY_BUCKET_MONTH: return "month";
	case DMARC_QUERY_BUCKET_YEAR: return "year";
	}
	i_unreached();
}

static double rate(uint64_t part, uint64_t total)
{
	return total == 0 ? DMARC_SVG_NO_VALUE : 100.0 * part / total;
}

const char *dmarc_report_title(const struct dmarc_query_report *report)
{
	return t_strdup_printf("DMARC report %s to %s",
			       report_date(report->begin),
			       report_date(report->end));
}

/* A chart table's header cell per series, and its number cells of row
   x: the same in the report's tables and the digest mail's bar tables. */
static void
chart_series_headers(string_t *dest, const struct dmarc_svg_chart *chart)
{
	unsigned int i;

	for (i = 0; i < chart->series_count; i++) {
		str_append(dest, "<th class=\"n\">");
		html_text(dest, chart->series[i].name);
		if (chart->y_unit[0] != '\0')
			str_printfa(dest, " (%s)", chart->y_unit);
		str_append(dest, "</th>");
	}
}

static void chart_value_cells(string_t *dest,
			      const struct dmarc_svg_chart *chart,
			      unsigned int x)
{
	unsigned int i;

	for (i = 0; i < chart->series_count; i++) {
		str_printfa(dest, "<td class=\"n\">%s</td>",
			    dmarc_svg_number(chart->series[i].values[x]));
	}
}

/* The table beside a chart: the same numbers, one row per x. */
static void chart_table(string_t *dest, const struct dmarc_svg_chart *chart)
{
	unsigned int x;

	str_append(dest, "<div class=\"table\"><table><thead><tr><th>");
	html_text(dest, chart->x_label);
	str_append(dest, "</th>");
	chart_series_headers(dest, chart);
	str_append(dest, "</tr></thead><tbody>\n");
	for (x = 0; x < chart->x_count; x++) {
		str_append(dest, "<tr><td>");
		html_text(dest, chart->x_labels[x]);
		str_append(dest, "</td>");
		chart_value_cells(dest, chart, x);
		str_append(dest, "</tr>\n");
	}
	str_append(dest, "</tbody></table></div>\n");
}

enum chart_kind { CHART_BARS, CHART_LINES };

static const char *percent(double part, double whole)
{
	double p = whole <= 0 ? 0 : 100.0 * part / whole;

	/* a sliver stays visible */
	return t_strdup_printf("%.1f%%", p < 0.5 ? 0.5 : p > 100 ? 100 : p);
}

/* A bar of one colour, as mail clients draw it: a table cell with a
   width and a background, both as attributes and as style. */
static void
mail_bar_segment(string_t *dest, const char *width, const char *colour,
		 const char *name, double value)
{
	str_printfa(dest, "<td class=\"seg\" width=\"%s\" height=\"12\" "
		    "bgcolor=\"%s\" style=\"background:%s;height:12px;"
		    "line-height:12px;font-size:1px\" title=\"", width, colour,
		    colour);
	html_text(dest, name);
	str_printfa(dest, " %s\">&nbsp;</td>", dmarc_svg_number(value));
}

/* The chart of a digest mail: Gmail and Outlook drop inline SVG, but draw
   tables. One row per x with its bars and its numbers: stacked bars of
   the series (CHART_BARS), or one bar per series on the axis 0..y_max
   (CHART_LINES, the rates). */
static void
chart_mail(string_t *dest, const struct dmarc_svg_chart *chart,
	   enum chart_kind kind)
{
	double max = chart->y_max, sum, v;
	unsigned int x, i;

	if (max <= 0) {
		for (x = 0; x < chart->x_count; x++) {
			sum = 0;
			for (i = 0; i < chart->series_count; i++) {
				if (chart->series[i].values[x] > 0)
					sum += chart->series[i].values[x];
			}
			if (sum > max)
				max = sum;
		}
	}
	str_append(dest, "<table class=\"mailchart\" data-chart=\"");
	html_text(dest, chart->id);
	str_append(dest, "\" width=\"100%\" cellpadding=\"0\" "
		   "cellspacing=\"0\"><thead><tr><th>");
	html_text(dest, chart->x_label);
	str_append(dest, "</th><th>");
	for (i = 0; i < chart->series_count; i++) {
		str_printfa(dest, "<span style=\"color:%s\">&#9632;</span> ",
			    chart->series[i].colour);
		html_text(dest, chart->series[i].name);
		str_append(dest, " ");
	}
	str_append(dest, "</th>");
	chart_series_headers(dest, chart);
	str_append(dest, "</tr></thead><tbody>\n");
	for (x = 0; x < chart->x_count; x++) {
		str_append(dest, "<tr class=\"bar\"><td nowrap>");
		html_text(dest, chart->x_labels[x]);
		str_append(dest, "</td><td width=\"50%\">");
		if (kind == CHART_BARS) {
			sum = 0;
			for (i = 0; i < chart->series_count; i++) {
				if (chart->series[i].values[x] > 0)
					sum += chart->series[i].values[x];
			}
			if (sum > 0) {
				str_printfa(dest, "<table width=\"%s\" "
					    "cellpadding=\"0\" cellspacing=\"0\">"
					    "<tr>", percent(sum, max));
				for (i = 0; i < chart->series_count; i++) {
					v = chart->series[i].values[x];
					if (v <= 0)
						continue;
					mail_bar_segment(dest, percent(v, sum),
						chart->series[i].colour,
						chart->series[i].name, v);
				}
				str_append(dest, "</tr></table>");
			}
		} else {
			for (i = 0; i < chart->series_count; i++) {
				v = chart->series[i].values[x];
				if (v < 0)
					continue;
				str_printfa(dest, "<table width=\"%s\" "
					    "cellpadding=\"0\" cellspacing=\"1\">"
					    "<tr>", percent(v, max));
				mail_bar_segment(dest, "100%",
						 chart->series[i].colour,
						 chart->series[i].name, v);
				str_append(dest, "</tr></table>");
			}
		}
		str_append(dest, "</td>");
		chart_value_cells(dest, chart, x);
		str_append(dest, "</tr>\n");
	}
	str_append(dest, "</tbody></table>\n");
}

static void
chart_figure(string_t *dest, const struct dmarc_report_html_info *info,
	     const struct dmarc_svg_chart *chart, enum chart_kind kind)
{
	str_append(dest, "<figure class=\"chart\"><figcaption>");
	html_text(dest, chart->title);
	str_append(dest, "</figcaption>\n");
	if (info->for_mail) {
		/* the numbers are in the chart's own rows */
		chart_mail(dest, chart, kind);
	} else {
		if (kind == CHART_BARS)
			dmarc_svg_stacked_bars(dest, chart);
		else
			dmarc_svg_lines(dest, chart);
		chart_table(dest, chart);
	}
	str_append(dest, "</figure>\n");
}

static double *series_values(unsigned int count)
{
	return t_new(double, I_MAX(count, 1));
}

static void
domain_charts(string_t *dest, const struct dmarc_query_report *report,
	      const struct dmarc_report_html_info *info,
	      const struct dmarc_query_report_domain *dom)
{
	unsigned int n = dom->bucket_count, x;
	const char **labels = t_new(const char *, n + 1);
	double *pass = series_values(n), *fail = series_values(n);
	double *r_dmarc = series_values(n), *r_dkim = series_values(n);
	double *r_spf = series_values(n);
	double *d_none = series_values(n), *d_quar = series_values(n);
	double *d_rej = series_values(n), *d_other = series_values(n);
	struct dmarc_svg_series s_msgs[2], s_rates[3], s_disp[4];
	struct dmarc_svg_chart chart;

	for (x = 0; x < n; x++) {
		const struct dmarc_query_report_bucket *b = &dom->buckets[x];

		labels[x] = bucket_label(report->bucket_size, b->start);
		pass[x] = b->pass;
		fail[x] = b->messages - b->pass;
		r_dmarc[x] = rate(b->pass, b->messages);
		r_dkim[x] = rate(b->dkim_aligned, b->messages);
		r_spf[x] = rate(b->spf_aligned, b->messages);
		d_none[x] = b->none;
		d_quar[x] = b->quarantine;
		d_rej[x] = b->reject;
		d_other[x] = b->other;
	}

	i_zero(&chart);
	chart.x_labels = labels;
	chart.x_count = n;
	chart.x_label = bucket_axis(report->bucket_size);

	s_msgs[0] = (struct dmarc_svg_series){ "DMARC pass", DMARC_SVG_BLUE, NULL, pass };
	s_msgs[1] = (struct dmarc_svg_series){ "DMARC fail", DMARC_SVG_VERMILION, NULL, fail };
	chart.id = "messages";
	chart.title = t_strdup_printf("Messages per %s, by DMARC result",
				      bucket_name(report->bucket_size));
	chart.y_label = "messages";
	chart.y_unit = "";
	chart.series = s_msgs;
	chart.series_count = N_ELEMENTS(s_msgs);
	chart.y_max = 0;
	chart_figure(dest, info, &chart, CHART_BARS);

	s_rates[0] = (struct dmarc_svg_series){ "DMARC pass", DMARC_SVG_BLUE, NULL, r_dmarc };
	s_rates[1] = (struct dmarc_svg_series){ "DKIM aligned", DMARC_SVG_GREEN, "6 3", r_dkim };
	s_rates[2] = (struct dmarc_svg_series){ "SPF aligned", DMARC_SVG_ORANGE, "2 3", r_spf };
	chart.id = "rates";
	chart.title = "DMARC, aligned DKIM and aligned SPF pass rates";
	chart.y_label = "pass rate";
	chart.y_unit = "%";
	chart.series = s_rates;
	chart.series_count = N_ELEMENTS(s_rates);
	chart.y_max = 100;
	chart_figure(dest, info, &chart, CHART_LINES);

	s_disp[0] = (struct dmarc_svg_series){ "none", DMARC_SVG_SKY, NULL, d_none };
	s_disp[1] = (struct dmarc_svg_series){ "quarantine", DMARC_SVG_ORANGE, NULL, d_quar };
	s_disp[2] = (struct dmarc_svg_series){ "reject", DMARC_SVG_VERMILION, NULL, d_rej };
	s_disp[3] = (struct dmarc_svg_series){ "other", DMARC_SVG_GREY, NULL, d_other };
	chart.id = "dispositions";
	chart.title = "Dispositions receivers applied";
	chart.y_label = "messages";
	chart.y_unit = "";
	chart.series = s_disp;
	chart.series_count = N_ELEMENTS(s_disp);
	chart.y_max = 0;
	chart_figure(dest, info, &chart, CHART_BARS);
}

static void
sources_table(string_t *dest, const char *id, const char *caption,
	      const struct dmarc_query_report_source *sources,
	      unsigned int count, bool failing)
{
	unsigned int i;

	str_printfa(dest, "<h3>%s</h3>\n", caption);
	if (count == 0) {
		str_append(dest, failing ? "<p>No source failed DMARC.</p>\n" :
			   "<p>No sources.</p>\n");
		return;
	}
	str_printfa(dest, "<table data-table=\"%s\"><thead><tr><th>Source</th>"
		    "<th>Name</th>%s<th class=\"n\">Messages</th><th class=\"n\">DMARC pass</th>"
		    "<th class=\"n\">DKIM aligned</th><th class=\"n\">SPF aligned"
		    "</th></tr></thead><tbody>\n", id,
		    failing ? "<th class=\"n\">Failing</th>" : "");
	for (i = 0; i < count; i++) {
		const struct dmarc_query_report_source *s = &sources[i];

		str_append(dest, "<tr><td>");
		html_text(dest, s->source_ip);
		/* a PTR record is its owner's text: escaped like the rest */
		str_append(dest, "</td><td>");
		if (s->name != NULL)
			html_text(dest, s->name);
		str_append(dest, "</td>");
		if (failing) {
			str_printfa(dest, "<td class=\"n\">%"PRIu64"</td>",
				    s->messages - s->pass);
		}
		str_printfa(dest, "<td class=\"n\">%"PRIu64"</td>"
			    "<td class=\"n\">%s%%</td><td class=\"n\">%s%%</td>"
			    "<td class=\"n\">%s%%</td></tr>\n", s->messages,
			    dmarc_svg_number(rate(s->pass, s->messages)),
			    dmarc_svg_number(rate(s->dkim_aligned, s->messages)),
			    dmarc_svg_number(rate(s->spf_aligned, s->messages)));
	}
	str_append(dest, "</tbody></table>\n");
}

static void
reporters_table(string_t *dest, const struct dmarc_query_report_domain *dom)
{
	unsigned int i;

	str_append(dest, "<h3>Reporters</h3>\n<table data-table=\"reporters\">"
		   "<thead><tr><th>Organisation</th><th class=\"n\">Reports</th>"
		   "<th class=\"n\">Messages</th><th class=\"n\">DMARC pass</th>"
		   "</tr></thead><tbody>\n");
	for (i = 0; i < dom->reporter_count; i++) {
		const struct dmarc_query_report_reporter *r = &dom->reporters[i];

		str_append(dest, "<tr><td>");
		html_text(dest, r->org_name[0] == '\0' ? "(no name)" : r->org_name);
		str_printfa(dest, "</td><td class=\"n\">%"PRIu64"</td>"
			    "<td class=\"n\">%"PRIu64"</td>"
			    "<td class=\"n\">%s%%</td></tr>\n", r->reports,
			    r->messages, dmarc_svg_number(rate(r->pass, r->messages)));
	}
	str_append(dest, "</tbody></table>\n");
}

static const char *opt(const char *value)
{
	return value == NULL ? "\xe2\x80\x93" : value;
}

static void
policy_table(string_t *dest, const struct dmarc_query_report_domain *dom)
{
	unsigned int i;

	str_append(dest, "<h3>Published policy, as reporters saw it</h3>\n");
	if (dom->policy_count > 1) {
		str_printfa(dest, "<p>The policy changed during the period: "
			    "%u versions.</p>\n", dom->policy_count);
	}
	str_append(dest, "<table data-table=\"policy\"><thead><tr><th>p</th>"
		   "<th>sp</th><th>np</th><th class=\"n\">pct</th><th>adkim</th>"
		   "<th>aspf</th><th>fo</th><th>testing</th><th>First seen</th>"
		   "<th>Last seen</th><th class=\"n\">Reports</th></tr></thead>"
		   "<tbody>\n");
	for (i = 0; i < dom->policy_count; i++) {
		const struct dmarc_query_report_policy *p = &dom->policies[i];
		const char *const cells[] = {
			opt(p->p), opt(p->sp), opt(p->np),
		};
		const char *const cells2[] = {
			opt(p->adkim), opt(p->aspf), opt(p->fo), opt(p->testing),
		};
		unsigned int j;

		str_append(dest, "<tr>");
		for (j = 0; j < N_ELEMENTS(cells); j++) {
			str_append(dest, "<td>");
			html_text(dest, cells[j]);
			str_append(dest, "</td>");
		}
		str_printfa(dest, "<td class=\"n\">%s</td>",
			    p->pct < 0 ? "\xe2\x80\x93" : dec2str(p->pct));
		for (j = 0; j < N_ELEMENTS(cells2); j++) {
			str_append(dest, "<td>");
			html_text(dest, cells2[j]);
			str_append(dest, "</td>");
		}
		str_printfa(dest, "<td>%s</td><td>%s</td><td class=\"n\">%"PRIu64
			    "</td></tr>\n", report_date(p->first_seen),
			    report_date(p->last_seen), p->reports);
	}
	str_append(dest, "</tbody></table>\n");
}

static const char *verdict_class(const struct dmarc_query_summary_row *sum)
{
	if (sum->messages < DMARC_QUERY_SUMMARY_MIN_MESSAGES)
		return "little";
	if (sum->pass_rate >= DMARC_QUERY_SUMMARY_READY_PASS_RATE)
		return "ready";
	return "fix";
}

static void
domain_section(string_t *dest, const struct dmarc_query_report *report,
	       const struct dmarc_report_html_info *info,
	       const struct dmarc_query_report_domain *dom, unsigned int idx)
{
	const struct dmarc_query_summary_row *sum = &dom->summary;

	str_printfa(dest, "<section class=\"domain\" id=\"domain-%u\">\n<h2>",
		    idx + 1);
	html_text(dest, sum->policy_domain);
	str_printfa(dest, "</h2>\n<p class=\"verdict %s\"><strong>Toward "
		    "p=reject:</strong> ", verdict_class(sum));
	html_text(dest, sum->verdict);
	str_printfa(dest, "</p>\n<p>%"PRIu64" messages in %"PRIu64" reports; "
		    "DMARC pass %.1f%%, DKIM aligned %.1f%%, SPF aligned "
		    "%.1f%%; %"PRIu64" sources failed DMARC.</p>\n",
		    sum->messages, sum->reports, sum->pass_rate, sum->dkim_rate,
		    sum->spf_rate, sum->failing_sources);
	domain_charts(dest, report, info, dom);
	sources_table(dest, "top-sources", "Sources sending the most mail",
		      dom->top_sources, dom->top_source_count, FALSE);
	sources_table(dest, "failing-sources", "Sources failing most",
		      dom->failing_sources, dom->failing_source_count, TRUE);
	reporters_table(dest, dom);
	policy_table(dest, dom);
	str_append(dest, "</section>\n");
}

static void tls_section(string_t *dest, const struct dmarc_query_report *report,
			const struct dmarc_report_html_info *info)
{
	unsigned int n = report->tls_count, i;
	const char **labels = t_new(const char *, n + 1);
	double *ok = series_values(n), *failed = series_values(n);
	struct dmarc_svg_series series[2];
	struct dmarc_svg_chart chart;

	str_append(dest, "<section class=\"tls\">\n<h2>SMTP TLS sessions "
		   "(TLS reports, RFC 8460)</h2>\n");
	if (n == 0) {
		str_append(dest, "<p class=\"empty\">No TLS reports in this "
			   "period.</p>\n</section>\n");
		return;
	}
	for (i = 0; i < n; i++) {
		labels[i] = report->tls[i].policy_domain;
		ok[i] = report->tls[i].success;
		failed[i] = report->tls[i].failure;
	}
	series[0] = (struct dmarc_svg_series){ "successful", DMARC_SVG_BLUE, NULL, ok };
	series[1] = (struct dmarc_svg_series){ "failed", DMARC_SVG_VERMILION, NULL, failed };
	i_zero(&chart);
	chart.id = "tls";
	chart.title = "TLS sessions per policy domain";
	chart.x_label = "policy domain";
	chart.y_label = "sessions";
	chart.y_unit = "";
	chart.x_labels = labels;
	chart.x_count = n;
	chart.series = series;
	chart.series_count = N_ELEMENTS(series);
	chart_figure(dest, info, &chart, CHART_BARS);
	str_append(dest, "</section>\n");
}

static void
overview(string_t *dest, const struct dmarc_query_report *report)
{
	unsigned int i;

	str_append(dest, "<h2>Policy domains</h2>\n<table data-table=\"domains\">"
		   "<thead><tr><th>Domain</th><th class=\"n\">Messages</th>"
		   "<th class=\"n\">DMARC pass</th><th>Toward p=reject</th></tr>"
		   "</thead><tbody>\n");
	for (i = 0; i < report->domain_count; i++) {
		const struct dmarc_query_summary_row *sum =
			&report->domains[i].summary;

		str_printfa(dest, "<tr><td><a href=\"#domain-%u\">", i + 1);
		html_text(dest, sum->policy_domain);
		str_printfa(dest, "</a></td><td class=\"n\">%"PRIu64"</td>"
			    "<td class=\"n\">%.1f%%</td><td>", sum->messages,
			    sum->pass_rate);
		html_text(dest, sum->verdict);
		str_append(dest, "</td></tr>\n");
	}
	str_append(dest, "</tbody></table>\n");
	if (report->more_domains > 0) {
		str_printfa(dest, "<p>And %u more domains with %"PRIu64
			    " messages: a <code>domain</code> filter shows "
			    "one of them.</p>\n", report->more_domains,
			    report->more_domains_messages);
	}
}

void dmarc_report_html(string_t *dest, const struct dmarc_query_report *report,
		       const struct dmarc_report_html_info *info)
{
	const char *title = dmarc_report_title(report);
	unsigned int i;

	str_append(dest, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
		   "<meta charset=\"utf-8\">\n"
		   "<meta name=\"viewport\" content=\"width=device-width, "
		   "initial-scale=1\">\n"
		   "<meta name=\"color-scheme\" content=\"light dark\">\n<title>");
	html_text(dest, title);
	str_append(dest, "</title>\n<style>\n");
	str_append(dest, report_css);
	str_append(dest, "</style>\n</head>\n<body>\n<header><h1>");
	html_text(dest, title);
	str_append(dest, "</h1>\n<p class=\"meta\">Aggregate reports received "
		   "for <strong>");
	html_text(dest, info->user);
	str_printfa(dest, "</strong>, by %s of the report's begin date (UTC). "
		    "Made %s by dovecot-dmarcreport.</p>\n</header>\n",
		    bucket_name(report->bucket_size),
		    report_date(info->generated));
	if (report->charts_cut) {
		str_printfa(dest, "<p>Some reports began outside %s to %s: "
			    "they count in the figures and tables, not in the "
			    "charts.</p>\n", report_date(report->begin),
			    report_date(report->end));
	}
	if (report->domain_count == 0) {
		str_printfa(dest, "<p class=\"empty\">No DMARC aggregate reports "
			    "from %s to %s: nothing to show for this period.</p>\n",
			    report_date(report->begin), report_date(report->end));
	} else {
		overview(dest, report);
		for (i = 0; i < report->domain_count; i++) T_BEGIN {
			domain_section(dest, report, info, &report->domains[i], i);
		} T_END;
	}
	/* a database without TLS report tables (schema version 1) has no
	   section at all */
	if (report->have_tls) T_BEGIN {
		tls_section(dest, report, info);
	} T_END;
	str_append(dest, "</body>\n</html>\n");
}

static void text_value(string_t *dest, const char *value)
{
	str_append(dest, dmarc_query_escape(value));
}

void dmarc_report_text(string_t *dest, const struct dmarc_query_report *report,
		       const struct dmarc_report_html_info *info)
{
	unsigned int i, j;

	str_append(dest, dmarc_report_title(report));
	str_append(dest, "\nfor ");
	text_value(dest, info->user);
	str_append(dest, "\n\n");
	if (report->domain_count == 0) {
		str_printfa(dest, "No DMARC aggregate reports from %s to %s: "
			    "nothing to show for this period.\n",
			    report_date(report->begin), report_date(report->end));
	}
	for (i = 0; i < report->domain_count; i++) T_BEGIN {
		const struct dmarc_query_report_domain *dom = &report->domains[i];
		const struct dmarc_query_summary_row *sum = &dom->summary;

		text_value(dest, sum->policy_domain);
		str_printfa(dest, ": %"PRIu64" messages in %"PRIu64" reports\n"
			    "  DMARC pass %.1f%%, DKIM aligned %.1f%%, "
			    "SPF aligned %.1f%%\n  Toward p=reject: ",
			    sum->messages, sum->reports, sum->pass_rate,
			    sum->dkim_rate, sum->spf_rate);
		text_value(dest, sum->verdict);
		str_append(dest, "\n");
		for (j = 0; j < dom->policy_count; j++) {
			const struct dmarc_query_report_policy *p =
				&dom->policies[j];

			str_append(dest, j == 0 ? "  Policy: " : "  then: ");
			str_append(dest, "p=");
			text_value(dest, opt(p->p));
			if (p->sp != NULL) {
				str_append(dest, " sp=");
				text_value(dest, p->sp);
			}
			if (p->pct >= 0)
				str_printfa(dest, " pct=%d", p->pct);
			str_printfa(dest, " (%s to %s)\n",
				    report_date(p->first_seen),
				    report_date(p->last_seen));
		}
		for (j = 0; j < dom->failing_source_count; j++) {
			const struct dmarc_query_report_source *s =
				&dom->failing_sources[j];

			str_append(dest, j == 0 ? "  Failing most: " : "                ");
			text_value(dest, s->source_ip);
			if (s->name != NULL) {
				str_append(dest, " ");
				text_value(dest, s->name);
			}
			str_printfa(dest, " (%"PRIu64" of %"PRIu64" failing)\n",
				    s->messages - s->pass, s->messages);
		}
		str_append(dest, "\n");
	} T_END;
	if (report->more_domains > 0) {
		str_printfa(dest, "And %u more domains with %"PRIu64
			    " messages.\n", report->more_domains,
			    report->more_domains_messages);
	}
	if (report->have_tls) {
		str_append(dest, "SMTP TLS sessions (RFC 8460):\n");
		if (report->tls_count == 0)
			str_append(dest, "  No TLS reports in this period.\n");
		for (i = 0; i < report->tls_count; i++) {
			const struct dmarc_query_report_tls *t = &report->tls[i];

			str_append(dest, "  ");
			text_value(dest, t->policy_domain);
			str_printfa(dest, ": %"PRIu64" successful, %"PRIu64
				    " failed\n", t->success, t->failure);
		}
	}
	str_append(dest, "\nThe HTML part has the charts.\n");
}

static void mail_part(string_t *dest, const char *boundary, const char *type,
		      const string_t *body)
{
	const buffer_t *b64 = t_base64_encode(0, 76, str_data(body),
					      str_len(body));

	str_printfa(dest, "--%s\nContent-Type: %s; charset=utf-8\n"
		    "Content-Transfer-Encoding: base64\n\n", boundary, type);
	str_append_data(dest, b64->data, b64->used);
	str_append(dest, "\n");
}

/* An address for a header: the user name when it is one, else a local
   part of the host (doveadm users need not be addresses). */
static const char *mail_address(const char *address)
{
	const char *p;

	for (p = address; *p != '\0'; p++) {
		/* nothing that would end or fold the header field */
		if (*p <= ' ' || *p == '<' || *p == '>' || *p == '"' ||
		    (unsigned char)*p >= 0x7f)
			return "postmaster@localhost";
	}
	return strchr(address, '@') != NULL ? address :
		t_strconcat(address, "@localhost", NULL);
}

void dmarc_report_mail(string_t *dest, const struct dmarc_query_report *report,
		       const struct dmarc_report_html_info *info,
		       const char *address)
{
	/* base64 never contains "=_": the boundary cannot occur in a part */
	const char *boundary = t_strdup_printf("=_dmarcreport_%ld_%s",
					       (long)info->generated, my_pid);
	const char *addr = mail_address(address);
	string_t *text = t_str_new(4096), *html = t_str_new(65536);
	struct dmarc_report_html_info mail_info = *info;

	mail_info.for_mail = TRUE;
	dmarc_report_text(text, report, info);
	dmarc_report_html(html, report, &mail_info);
	str_printfa(dest, "From: DMARC report <%s>\nTo: <%s>\n"
		    "Subject: %s\nDate: %s\n"
		    "Message-ID: <dmarcreport.%ld.%s@%s>\n"
		    "Auto-Submitted: auto-generated\nMIME-Version: 1.0\n"
		    "Content-Type: multipart/alternative; boundary=\"%s\"\n\n"
		    "This is a DMARC report in MIME format.\n\n",
		    addr, addr, dmarc_report_title(report),
		    message_date_create(info->generated),
		    (long)info->generated, my_pid, my_hostname, boundary);
	mail_part(dest, boundary, "text/plain", text);
	mail_part(dest, boundary, "text/html", html);
	str_printfa(dest, "--%s--\n", boundary);
}
