/* Report kind: DMARC aggregate reports (RFC 7489, RFC 9990), XML. */

#include "lib.h"
#include "dmarc-log.h"
#include "dmarc-parse.h"
#include "dmarc-store.h"
#include "dmarc-kinds.h"
#include "dmarc-ingest-private.h"

static bool aggregate_recognise(const unsigned char *data, size_t size)
{
	const unsigned char *p = dmarc_kind_first_byte(data, size);

	return p != NULL && *p == '<';
}

/* For log lines: each value sanitised (see dmarc-log.h). */
static const char *report_label(const struct dmarc_report *report)
{
	return t_strdup_printf("report %s from %s for %s",
			       dmarc_log_value(report->report_id),
			       report->org_name == NULL || *report->org_name == '\0' ?
			       "(no org_name)" : dmarc_log_value(report->org_name),
			       dmarc_log_value(report->policy.domain));
}

/* The report's key is stored already. A resent copy is the usual case
   (info); one whose content differs is a conflicting duplicate: the first
   stays stored and a warning names both archive files. Reading the rest
   of the document costs what storing it would have; a document that
   breaks off is just a duplicate. Returns -1 only when the store
   failed. */
static int
aggregate_duplicate(struct dmarc_kind_doc *doc, struct dmarc_store *store,
		    struct dmarc_parser *parser,
		    const struct dmarc_report *report)
{
	struct dmarc_store_digest digest;
	struct dmarc_store_found found;
	const struct dmarc_record *record;
	const char *error, *new_digest;
	int ret;

	if (dmarc_store_find_report(store, report, &found, &error) < 0) {
		return dmarc_ingest_report_store_failed(doc->ingest, doc->event,
			report_label(report), error, doc->counts);
	}
	doc->counts->reports_duplicate++;
	dmarc_store_digest_init(&digest);
	while ((ret = dmarc_parser_next_record(parser, &record, &error)) > 0)
		dmarc_store_digest_record(&digest, record);
	new_digest = ret < 0 ? NULL :
		dmarc_store_digest_finish(&digest, report);
	if (new_digest == NULL || found.content_digest == NULL ||
	    strcmp(new_digest, found.content_digest) == 0) {
		e_log(doc->event, dmarc_ingest_report_log_type(doc->ingest),
		      "Duplicate, already stored: %s", report_label(report));
		return 0;
	}
	e_warning(doc->event, "Conflicting duplicate, not stored: %s differs "
		  "from the copy stored first (kept): stored from %s, this "
		  "one archived as %s", report_label(report),
		  found.archive_path == NULL ? "(no archive)" :
		  dmarc_log_text(found.archive_path),
		  doc->archive_path == NULL ? "(no archive)" :
		  dmarc_log_text(doc->archive_path));
	return 0;
}

/* Parse one XML document and store it. Returns -1 only when storage failed;
   a bad document is logged and counted. */
static int aggregate_ingest(struct dmarc_kind_doc *doc)
{
	struct dmarc_ingest *ingest = doc->ingest;
	struct dmarc_ingest_counts *counts = doc->counts;
	enum log_type log_type = dmarc_ingest_report_log_type(ingest);
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	const struct dmarc_report *report;
	const struct dmarc_record *record;
	struct dmarc_parser *parser;
	struct dmarc_store *store;
	const char *error, *const *warnings;
	uint64_t records = 0;
	int ret;

	parser = dmarc_parser_init(doc->input, dmarc_ingest_get_limits(ingest));
	if (doc->charset != NULL)
		dmarc_parser_set_charset(parser, doc->charset);
	if (dmarc_parser_read_header(parser, &report, &error) < 0) {
		e_warning(doc->event, "Not stored: %s", dmarc_log_text(error));
		dmarc_ingest_document_failed(ingest);
		counts->failed++;
		dmarc_parser_deinit(&parser);
		return 0;
	}

	store = dmarc_ingest_get_store(ingest);
	if (store == NULL) {
		dmarc_parser_deinit(&parser);
		return -1;
	}
	i_zero(&info);
	info.archive_path = doc->archive_path;
	info.message_id = doc->message_id;
	info.received = doc->received;
	ret = dmarc_store_report_begin(store, report, &info, &sreport, &error);
	if (ret < 0) {
		ret = dmarc_ingest_report_store_failed(ingest, doc->event,
			report_label(report), error, counts);
		dmarc_parser_deinit(&parser);
		return ret;
	}
	if (ret == 0) {
		ret = aggregate_duplicate(doc, store, parser, report);
		dmarc_parser_deinit(&parser);
		return ret;
	}

	while ((ret = dmarc_parser_next_record(parser, &record, &error)) > 0) {
		if (dmarc_store_report_add_record(sreport, record, &error) < 0) {
			dmarc_store_report_rollback(&sreport);
			ret = dmarc_ingest_report_store_failed(ingest,
				doc->event, report_label(report), error,
				counts);
			dmarc_parser_deinit(&parser);
			return ret;
		}
		records++;
	}
	if (ret < 0) {
		/* all or nothing: a report cut short is not stored */
		dmarc_store_report_rollback(&sreport);
		e_warning(doc->event, "Not stored: %s: %s",
			  report_label(report), dmarc_log_text(error));
		dmarc_ingest_document_failed(ingest);
		counts->failed++;
		dmarc_parser_deinit(&parser);
		return 0;
	}
	if (dmarc_store_report_commit(&sreport, &error) < 0) {
		ret = dmarc_ingest_report_store_failed(ingest, doc->event,
			report_label(report), error, counts);
		dmarc_parser_deinit(&parser);
		return ret;
	}
	warnings = dmarc_parser_get_warnings(parser);
	for (; warnings != NULL && *warnings != NULL; warnings++)
		e_debug(doc->event, "%s: %s", report_label(report),
			dmarc_log_text(*warnings));
	/* stored as reported, but an admin should hear of it */
	warnings = dmarc_parser_get_anomalies(parser);
	for (; *warnings != NULL; warnings++)
		e_warning(doc->event, "%s: %s", report_label(report),
			  dmarc_log_text(*warnings));
	e_log(doc->event, log_type,
	      "Stored %s (%"PRIu64" records)", report_label(report), records);
	counts->reports_new++;
	counts->records += records;
	dmarc_parser_deinit(&parser);
	return 0;
}

const struct dmarc_kind dmarc_kind_aggregate = {
	.name = "aggregate",
	.recognise = aggregate_recognise,
	.ingest = aggregate_ingest,
};
