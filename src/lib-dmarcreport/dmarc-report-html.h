#ifndef DMARC_REPORT_HTML_H
#define DMARC_REPORT_HTML_H

/* doveadm dmarc report's output: one self-contained HTML page (inline
   SVG charts, no script, no external resource) and its plain-text
   summary, both from dmarc_query_report()'s aggregates. */

struct dmarc_query_report;

struct dmarc_report_html_info {
	/* whose reports: the mail user */
	const char *user;
	/* when made (the page says so) */
	time_t generated;
	/* for a mail: charts as tables of bars instead of SVG, which Gmail
	   and Outlook drop (dmarc_report_mail() sets it) */
	bool for_mail;
};

/* Appends the whole HTML document to dest. */
void dmarc_report_html(string_t *dest, const struct dmarc_query_report *report,
		       const struct dmarc_report_html_info *info);

/* Appends the plain-text summary (UTF-8, lines under 78 characters unless
   a value is longer) to dest. */
void dmarc_report_text(string_t *dest, const struct dmarc_query_report *report,
		       const struct dmarc_report_html_info *info);

/* The digest mail: multipart/alternative with the plain-text summary and
   the HTML page, each base64 (lines of 76), LF line ends, as a mail
   storage saves it. address is the user's, for From: and To:. */
void dmarc_report_mail(string_t *dest, const struct dmarc_query_report *report,
		       const struct dmarc_report_html_info *info,
		       const char *address);

/* "DMARC report 2024-01-01 to 2024-01-31": a subject or a title. */
const char *dmarc_report_title(const struct dmarc_query_report *report);

#endif
