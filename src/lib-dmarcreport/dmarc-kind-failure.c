/* Report kind: DMARC failure reports (RFC 6591 ARF). A report is made of
   parts of one mail: the message/feedback-report part (recognised by its
   Feedback-Type field, whatever its label) and the reported message, as
   text/rfc822-headers (a header block) or message/rfc822 (its headers
   arrive through embedded_header). The parts are collected while the
   mail is read and stored when it ends; several reports per mail work,
   each taking the original that follows it. A text-only report (Exim's,
   see dmarc_failure_parse_text()) is one part that carries both. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "istream.h"
#include "dmarc-log.h"
#include "dmarc-event.h"
#include "dmarc-settings.h"
#include "dmarc-failure.h"
#include "dmarc-store-kinds.h"
#include "dmarc-kinds.h"
#include "dmarc-ingest-private.h"

struct failure_pending {
	struct dmarc_failure_report *report;
	struct event *event;
	const char *archive_path;
	const char *message_id;
	time_t received;
};

struct failure_state {
	pool_t pool;
	const struct dmarc_limits *limits;
	ARRAY(struct failure_pending) reports;
	/* a header block that came before any feedback-report part */
	struct event *orphan_event;
	const unsigned char *orphan;
	size_t orphan_size;
};

/* The size of the header block at the start of data, up to and with the
   newline that ends its last line, or 0 when the blank line that ends it
   is not there (from start on: an earlier call found none before). */
static size_t header_block_size(const unsigned char *data, size_t size,
				size_t start)
{
	size_t i;

	for (i = start; i + 1 < size; i++) {
		if (data[i] == '\n' &&
		    (data[i + 1] == '\n' ||
		     (data[i + 1] == '\r' && i + 2 < size &&
		      data[i + 2] == '\n')))
			return i + 1;
	}
	return 0;
}

/* A part cut at dmarcreport_max_failure_report_size is still usable when
   its header block is whole: a reported message with a big body. */
static bool header_block_complete(const buffer_t *buf)
{
	return header_block_size(buf->data, buf->used, 0) > 0;
}

/* A reported message (message/rfc822 or message/global) is archived
   only, unless it is an ARF part sent with that type: its header block
   tells, and its body is not read. Reads into buf up to the end of the
   header block (or max_size, or the end of the part) and returns TRUE
   when the part is to be skipped. */
static bool
failure_skip_reported_message(struct istream *input, uoff_t max_size,
			      buffer_t *buf)
{
	const unsigned char *data;
	size_t size, scanned = 0, end = 0;

	while (end == 0 && buf->used < max_size &&
	       i_stream_read_more(input, &data, &size) > 0) {
		size = I_MIN(size, max_size - buf->used);
		buffer_append(buf, data, size);
		i_stream_skip(input, size);
		end = header_block_size(buf->data, buf->used, scanned);
		/* the blank line may straddle two reads */
		scanned = buf->used < 2 ? 0 : buf->used - 2;
	}
	return end > 0 && dmarc_failure_is_header_block(buf->data, end) &&
		!dmarc_failure_is_arf(buf->data, buf->used);
}

static bool failure_recognise(const unsigned char *data, size_t size)
{
	return dmarc_failure_is_header_block(data, size) ||
		dmarc_failure_is_text_report(data, size);
}

/* A nameless text/plain part is one of ours when it is an ARF part
   labelled text/plain, or a text-only report. */
static bool failure_recognise_text(const unsigned char *data, size_t size)
{
	return dmarc_failure_is_arf(data, size) ||
		dmarc_failure_is_text_report(data, size);
}

static struct failure_state *
failure_state_get(void **state, struct dmarc_kind_doc *doc)
{
	struct failure_state *fstate = *state;

	if (fstate == NULL) {
		fstate = p_new(doc->message_pool, struct failure_state, 1);
		fstate->pool = doc->message_pool;
		fstate->limits = dmarc_ingest_get_limits(doc->ingest);
		p_array_init(&fstate->reports, fstate->pool, 2);
		*state = fstate;
	}
	return fstate;
}

/* The last report still waiting for its original, or NULL. */
static struct failure_pending *
failure_waiting(struct failure_state *fstate)
{
	struct failure_pending *pending;

	if (array_count(&fstate->reports) == 0)
		return NULL;
	pending = array_back_modifiable(&fstate->reports);
	return pending->report->have_original ? NULL : pending;
}

/* A parsed report waits for the mail's end (and maybe its original). */
static struct failure_pending *
failure_add(struct failure_state *fstate, struct dmarc_kind_doc *doc,
	    struct dmarc_failure_report *report)
{
	struct failure_pending *pending;

	pending = array_append_space(&fstate->reports);
	pending->report = report;
	pending->event = dmarc_kind_report_event(doc->event, NULL,
		report->reported_domain, NULL);
	pending->archive_path = p_strdup(fstate->pool, doc->archive_path);
	pending->message_id = p_strdup(fstate->pool, doc->message_id);
	pending->received = doc->received;
	return pending;
}

/* message/rfc822 or message/global: as such the reported message's
   headers came through failure_embedded_header() already, and it is here
   only to be archived whole */
static bool is_reported_message(const struct dmarc_kind_doc *doc)
{
	return doc->content_type != NULL &&
		(strcmp(doc->content_type, "message/rfc822") == 0 ||
		 strcmp(doc->content_type, "message/global") == 0);
}

static void skipped_reported_message(struct dmarc_kind_doc *doc)
{
	e_debug(dmarc_event_skipped(doc->event,
		"the reported message of a failure report")->event(),
		"The reported message: archived only");
}

/* One part read into buf: what is kept is copied into fstate->pool. */
static void
failure_ingest_buf(struct dmarc_kind_doc *doc,
		   const struct dmarc_limits *limits,
		   struct failure_state *fstate, buffer_t *buf)
{
	struct failure_pending *pending;
	struct dmarc_failure_report *report;
	const char *error;

	if (is_reported_message(doc) &&
	    failure_skip_reported_message(doc->input,
					  limits->max_failure_report_size,
					  buf)) {
		skipped_reported_message(doc);
		return;
	}
	if (dmarc_ingest_read_all(doc->input, limits->max_failure_report_size,
				  "dmarcreport_max_failure_report_size",
				  buf, &error) < 0 &&
	    !header_block_complete(buf)) {
		e_warning(dmarc_event_failed(doc->event, error)->event(),
			  "Not stored: failure report part: %s",
			  dmarc_log_text(error));
		dmarc_ingest_document_failed(doc->ingest);
		doc->counts->failed++;
		return;
	}
	if (!dmarc_failure_is_header_block(buf->data, buf->used) &&
	    dmarc_failure_is_text_report(buf->data, buf->used)) {
		if (dmarc_failure_parse_text(fstate->pool, buf->data, buf->used,
					     limits, &report, &error) < 0) {
			e_warning(dmarc_event_failed(doc->event, error)->
				  event(), "Not stored: %s",
				  dmarc_log_text(error));
			dmarc_ingest_document_failed(doc->ingest);
			doc->counts->failed++;
			return;
		}
		failure_add(fstate, doc, report);
		return;
	}
	if (!dmarc_failure_is_arf(buf->data, buf->used)) {
		/* the reported message, its header block cut at the limit
		   (or none) */
		if (is_reported_message(doc)) {
			skipped_reported_message(doc);
			return;
		}
		/* its headers (text/rfc822-headers) */
		pending = failure_waiting(fstate);
		if (pending != NULL) {
			dmarc_failure_parse_original(pending->report,
				fstate->pool, limits, buf->data, buf->used);
			pending->report->have_original = TRUE;
			e_debug(dmarc_event_skipped(doc->event,
				"the reported message of a failure report")->
				event(), "The reported message's headers: "
				"stored with its failure report");
		} else if (fstate->orphan == NULL) {
			/* its outcome is known at message_end */
			fstate->orphan = p_memdup(fstate->pool, buf->data,
						  buf->used);
			fstate->orphan_size = buf->used;
			fstate->orphan_event = event_create(doc->event);
		} else {
			e_debug(dmarc_event_skipped(doc->event,
				"a second header block before any failure "
				"report")->event(), "Not stored: a second "
				"header block before any failure report");
		}
		return;
	}
	if (dmarc_failure_parse_arf(fstate->pool, buf->data, buf->used,
				    limits, &report, &error) < 0) {
		e_warning(dmarc_event_failed(doc->event, error)->event(),
			  "Not stored: %s", dmarc_log_text(error));
		dmarc_ingest_document_failed(doc->ingest);
		doc->counts->failed++;
		return;
	}
	pending = failure_add(fstate, doc, report);
	if (fstate->orphan != NULL) {
		/* the original came first */
		dmarc_failure_parse_original(report, fstate->pool, limits,
					     fstate->orphan,
					     fstate->orphan_size);
		report->have_original = TRUE;
		fstate->orphan = NULL;
		e_debug(dmarc_event_skipped(fstate->orphan_event,
			"the reported message of a failure report")->event(),
			"The reported message's headers: stored with its "
			"failure report");
		event_unref(&fstate->orphan_event);
	}
}

static int failure_ingest(struct dmarc_kind_doc *doc)
{
	const struct dmarc_limits *limits = dmarc_ingest_get_limits(doc->ingest);
	struct failure_state *fstate = failure_state_get(doc->state, doc);
	buffer_t *buf;

	/* read into a buffer of its own, freed when the part is done: the
	   mail's pool keeps only what is stored (up to max_attachments
	   parts of max_failure_report_size would stay there otherwise) */
	buf = buffer_create_dynamic(default_pool, 4096);
	failure_ingest_buf(doc, limits, fstate, buf);
	buffer_free(&buf);
	return 0;
}

static void
failure_embedded_header(void **state, const char *name, const char *value)
{
	struct failure_state *fstate = *state;
	struct failure_pending *pending;

	/* headers of a message/rfc822 part: the original of the last
	   feedback-report part (the first value of each header counts) */
	if (fstate == NULL || array_count(&fstate->reports) == 0)
		return;
	pending = array_back_modifiable(&fstate->reports);
	dmarc_failure_add_original_header(pending->report, fstate->pool,
					  fstate->limits, name, value);
}

static const char *failure_label(const struct dmarc_failure_report *report)
{
	return t_strdup_printf("failure report for %s from %s (%s)",
		report->reported_domain == NULL ? "(no Reported-Domain)" :
		dmarc_log_value(report->reported_domain),
		report->source_ip == NULL ? "(no Source-IP)" :
		dmarc_log_value(report->source_ip),
		report->auth_failure == NULL ? "no Auth-Failure" :
		dmarc_log_value(report->auth_failure));
}

static int
failure_store(struct dmarc_ingest *ingest, struct failure_pending *pending,
	      struct dmarc_ingest_counts *counts)
{
	struct dmarc_store_report_info info;
	struct dmarc_store *store;
	const char *error;
	int ret;

	store = dmarc_ingest_get_store(ingest);
	if (store == NULL) {
		/* the parts are in the archive and the mail */
		dmarc_ingest_storage_failed(ingest, pending->event, NULL);
		return -1;
	}
	i_zero(&info);
	info.archive_path = pending->archive_path;
	info.message_id = pending->message_id;
	info.received = pending->received;
	ret = dmarc_store_failure_report(store, pending->report, &info, &error);
	if (ret < 0) {
		if (dmarc_ingest_report_store_failed(ingest, pending->event,
				failure_label(pending->report), error,
				counts) == 0)
			return 0;
		dmarc_ingest_storage_failed(ingest, pending->event, NULL);
		return -1;
	}
	if (ret == 0) {
		e_log(dmarc_event_outcome(pending->event,
			DMARC_EVENT_REPORT_DUPLICATE)->event(),
		      dmarc_ingest_report_log_type(ingest),
		      "Duplicate, already stored: %s",
		      failure_label(pending->report));
		counts->reports_duplicate++;
	} else {
		e_log(dmarc_event_outcome(pending->event,
			DMARC_EVENT_REPORT_STORED)->event(),
		      dmarc_ingest_report_log_type(ingest),
		      "Stored %s%s", failure_label(pending->report),
		      pending->report->have_original ? "" :
		      " (without the reported message's headers)");
		counts->reports_new++;
	}
	return 0;
}

static int failure_message_end(struct dmarc_ingest *ingest, void **state,
			       struct dmarc_ingest_counts *counts)
{
	struct failure_state *fstate = *state;
	struct failure_pending *pending;
	int ret = 0;

	*state = NULL;
	if (fstate == NULL)
		return 0;
	array_foreach_modifiable(&fstate->reports, pending) {
		if (ret == 0 && failure_store(ingest, pending, counts) < 0)
			ret = -1;
		event_unref(&pending->event);
	}
	if (fstate->orphan_event != NULL) {
		const char *error = "a header block without a failure report "
			"(no Feedback-Type part in this mail)";

		e_warning(dmarc_event_failed(fstate->orphan_event, error)->
			  event(), "Not stored: %s", error);
		counts->failed++;
		event_unref(&fstate->orphan_event);
	}
	return ret;
}

const struct dmarc_kind dmarc_kind_failure = {
	.name = "failure",
	.recognise = failure_recognise,
	.recognise_text = failure_recognise_text,
	.ingest = failure_ingest,
	.embedded_header = failure_embedded_header,
	.message_end = failure_message_end,
};
