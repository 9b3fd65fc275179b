/* Report kind: DMARC aggregate reports (RFC 7489, RFC 9990), XML. */

#include "lib.h"
#include "dmarc-log.h"
#include "dmarc-event.h"
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

/* The report's outcome event (dmarc-event.h), for one e_*() call. */
static struct event_passthrough *
report_outcome(struct dmarc_kind_doc *doc, const char *name,
	       const struct dmarc_report *report)
{
	return dmarc_kind_report_outcome(doc->event, name,
		report->org_name == NULL ? "" : report->org_name,
		report->policy.domain, report->report_id);
}

/* The store refused the report or failed: see
   dmarc_ingest_report_store_failed(). */
static int
report_store_failed(struct dmarc_kind_doc *doc,
		    const struct dmarc_report *report, const char *error)
{
	struct event *event;
	int ret;

	event = dmarc_kind_report_event(doc->event,
		report->org_name == NULL ? "" : report->org_name,
		report->policy.domain, report->report_id);
	ret = dmarc_ingest_report_store_failed(doc->ingest, event,
		report_label(report), error, doc->counts);
	event_unref(&event);
	return ret;
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

	if (dmarc_store_find_report(store, report, &found, &error) < 0)
		return report_store_failed(doc, report, error);
	doc->counts->reports_duplicate++;
	dmarc_store_digest_init(&digest);
	while ((ret = dmarc_parser_next_record(parser, &record, &error)) > 0)
		dmarc_store_digest_record(&digest, record);
	new_digest = ret < 0 ? NULL :
		dmarc_store_digest_finish(&digest, report);
	/* a digest of another length was made another way (a SHA-256 by
	   an earlier build): no telling, so a resend */
	if (new_digest == NULL || found.content_digest == NULL ||
	    strlen(found.content_digest) != strlen(new_digest) ||
	    strcmp(new_digest, found.content_digest) == 0) {
		e_log(report_outcome(doc, DMARC_EVENT_REPORT_DUPLICATE,
				     report)->event(),
		      dmarc_ingest_report_log_type(doc->ingest),
		      "Duplicate, already stored: %s", report_label(report));
		return 0;
	}
	e_warning(report_outcome(doc, DMARC_EVENT_REPORT_DUPLICATE, report)->
		  add_str("reason", "conflicting: its content differs from "
			  "the copy stored first")->event(),
		  "Conflicting duplicate, not stored: %s differs "
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
static int
aggregate_store(struct dmarc_kind_doc *doc, struct dmarc_parser *parser,
		const struct dmarc_report *report)
{
	struct dmarc_ingest *ingest = doc->ingest;
	struct dmarc_ingest_counts *counts = doc->counts;
	struct dmarc_store_report_info info;
	struct dmarc_store_report *sreport;
	const struct dmarc_record *record;
	struct dmarc_store *store;
	const char *error, *const *warnings;
	uint64_t records = 0, messages = 0;
	int ret;

	store = dmarc_ingest_get_store(ingest);
	if (store == NULL)
		return -1;
	i_zero(&info);
	info.archive_path = doc->archive_path;
	info.message_id = doc->message_id;
	info.received = doc->received;
	ret = dmarc_store_report_begin(store, report, &info, &sreport, &error);
	if (ret < 0)
		return report_store_failed(doc, report, error);
	if (ret == 0)
		return aggregate_duplicate(doc, store, parser, report);

	while ((ret = dmarc_parser_next_record(parser, &record, &error)) > 0) {
		if (dmarc_store_report_add_record(sreport, record, &error) < 0) {
			dmarc_store_report_rollback(&sreport);
			return report_store_failed(doc, report, error);
		}
		records++;
		if (record->count > 0)
			messages += record->count;
	}
	if (ret < 0) {
		/* all or nothing: a report cut short is not stored */
		dmarc_store_report_rollback(&sreport);
		e_warning(report_outcome(doc, DMARC_EVENT_REPORT_FAILED, report)->
			  add_str("reason", dmarc_log_text(error))->event(),
			  "Not stored: %s: %s", report_label(report),
			  dmarc_log_text(error));
		dmarc_ingest_document_failed(ingest);
		counts->failed++;
		return 0;
	}
	if (dmarc_store_report_commit(&sreport, &error) < 0)
		return report_store_failed(doc, report, error);
	warnings = dmarc_parser_get_warnings(parser);
	for (; warnings != NULL && *warnings != NULL; warnings++)
		e_debug(doc->event, "%s: %s", report_label(report),
			dmarc_log_text(*warnings));
	/* stored as reported, but an admin should hear of it */
	warnings = dmarc_parser_get_anomalies(parser);
	for (; *warnings != NULL; warnings++)
		e_warning(doc->event, "%s: %s", report_label(report),
			  dmarc_log_text(*warnings));
	e_log(report_outcome(doc, DMARC_EVENT_REPORT_STORED, report)->
	      add_int("records", records)->
	      add_int("messages", messages)->event(),
	      dmarc_ingest_report_log_type(ingest),
	      "Stored %s (%"PRIu64" records)", report_label(report), records);
	counts->reports_new++;
	counts->records += records;
	return 0;
}

static int aggregate_ingest(struct dmarc_kind_doc *doc)
{
	const struct dmarc_report *report;
	struct dmarc_parser *parser;
	const char *error;
	int ret;

	parser = dmarc_parser_init(doc->input,
				   dmarc_ingest_get_limits(doc->ingest));
	if (doc->charset != NULL)
		dmarc_parser_set_charset(parser, doc->charset);
	if (dmarc_parser_read_header(parser, &report, &error) < 0) {
		e_warning(dmarc_event_failed(doc->event, error)->event(),
			  "Not stored: %s", dmarc_log_text(error));
		dmarc_ingest_document_failed(doc->ingest);
		doc->counts->failed++;
		ret = 0;
	} else {
		ret = aggregate_store(doc, parser, report);
	}
	dmarc_parser_deinit(&parser);
	return ret;
}

const struct dmarc_kind dmarc_kind_aggregate = {
	.name = "aggregate",
	.recognise = aggregate_recognise,
	.ingest = aggregate_ingest,
};
