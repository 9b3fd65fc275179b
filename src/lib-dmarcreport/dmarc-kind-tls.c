/* Report kind: SMTP TLS reports (RFC 8460), JSON. A TLS report is small
   (a few KB): it is read whole, bounded by dmarcreport_max_tls_report_size,
   and parsed from memory. */

#include "lib.h"
#include "buffer.h"
#include "dmarc-log.h"
#include "dmarc-event.h"
#include "dmarc-settings.h"
#include "dmarc-tls.h"
#include "dmarc-store-kinds.h"
#include "dmarc-kinds.h"
#include "dmarc-ingest-private.h"

static bool tls_recognise(const unsigned char *data, size_t size)
{
	const unsigned char *p = dmarc_kind_first_byte(data, size);

	return p != NULL && *p == '{';
}

static const char *tls_label(const struct dmarc_tls_report *report)
{
	return t_strdup_printf("TLS report %s from %s",
			       dmarc_log_value(report->report_id),
			       *report->org_name == '\0' ?
			       "(no organization-name)" :
			       dmarc_log_value(report->org_name));
}

/* The policy domain of the report's first policy (a report usually has
   one), or NULL. */
static const char *tls_policy_domain(const struct dmarc_tls_report *report)
{
	const struct dmarc_tls_policy *policy;

	if (array_count(&report->policies) == 0)
		return NULL;
	policy = array_front(&report->policies);
	return *policy->policy_domain == '\0' ? NULL : policy->policy_domain;
}

/* Store the parsed report, logging with its event. Returns as
   tls_ingest(). */
static int
tls_store(struct dmarc_kind_doc *doc, struct event *event,
	  const struct dmarc_tls_report *report)
{
	struct dmarc_ingest *ingest = doc->ingest;
	struct dmarc_store_report_info info;
	const struct dmarc_tls_policy *policy;
	struct dmarc_store *store;
	const char *error, *const *warning;
	unsigned int failures = 0;
	uint64_t sessions = 0;
	int ret;

	store = dmarc_ingest_get_store(ingest);
	if (store == NULL)
		return -1;
	i_zero(&info);
	info.archive_path = doc->archive_path;
	info.message_id = doc->message_id;
	info.received = doc->received;
	ret = dmarc_store_tls_report(store, report, &info, &error);
	if (ret < 0) {
		return dmarc_ingest_report_store_failed(ingest, event,
			tls_label(report), error, doc->counts);
	}
	if (ret == 0) {
		e_log(dmarc_event_outcome(event, DMARC_EVENT_REPORT_DUPLICATE)->
		      event(), dmarc_ingest_report_log_type(ingest),
		      "Duplicate, already stored: %s", tls_label(report));
		doc->counts->reports_duplicate++;
		return 0;
	}
	array_foreach(&report->warnings, warning)
		e_debug(event, "%s: %s", tls_label(report),
			dmarc_log_text(*warning));
	array_foreach(&report->policies, policy) {
		failures += array_count(&policy->failures);
		if (policy->success_count > 0)
			sessions += policy->success_count;
		if (policy->failure_count > 0)
			sessions += policy->failure_count;
	}
	e_log(dmarc_event_outcome(event, DMARC_EVENT_REPORT_STORED)->
	      add_int("policies", array_count(&report->policies))->
	      add_int("messages", sessions)->event(),
	      dmarc_ingest_report_log_type(ingest),
	      "Stored %s (%u policies, %u failure details)",
	      tls_label(report), array_count(&report->policies), failures);
	doc->counts->reports_new++;
	return 0;
}

static int tls_ingest(struct dmarc_kind_doc *doc)
{
	const struct dmarc_limits *limits = dmarc_ingest_get_limits(doc->ingest);
	struct dmarc_tls_report *report;
	struct event *event;
	const char *error;
	buffer_t *buf;
	pool_t pool;
	int ret;

	buf = buffer_create_dynamic(default_pool, 8192);
	if (dmarc_ingest_read_all(doc->input, limits->max_tls_report_size,
				  "dmarcreport_max_tls_report_size",
				  buf, &error) < 0) {
		e_warning(dmarc_event_failed(doc->event, error)->event(),
			  "Not stored: TLS report: %s", dmarc_log_text(error));
		dmarc_ingest_document_failed(doc->ingest);
		doc->counts->failed++;
		buffer_free(&buf);
		return 0;
	}
	pool = pool_alloconly_create("dmarc tls report", 4096);
	if (dmarc_tls_parse(pool, buf->data, buf->used, limits,
			    &report, &error) < 0) {
		e_warning(dmarc_event_failed(doc->event, error)->event(),
			  "Not stored: %s", dmarc_log_text(error));
		dmarc_ingest_document_failed(doc->ingest);
		doc->counts->failed++;
		buffer_free(&buf);
		pool_unref(&pool);
		return 0;
	}
	buffer_free(&buf);

	event = dmarc_kind_report_event(doc->event,
		report->org_name, tls_policy_domain(report), report->report_id);
	ret = tls_store(doc, event, report);
	event_unref(&event);
	pool_unref(&pool);
	return ret;
}

const struct dmarc_kind dmarc_kind_tls = {
	.name = "tls",
	.recognise = tls_recognise,
	.ingest = tls_ingest,
};
