#ifndef DMARC_KINDS_H
#define DMARC_KINDS_H

/* The table of report kinds, as fts has its parsers[]: each kind says
   whether it recognises a document by its first bytes (never by the MIME
   label or the name), and parses and stores it. Aggregate XML (RFC 7489,
   RFC 9990), SMTP TLS reports (RFC 8460) and DMARC failure reports
   (RFC 6591 ARF) are rows; a new kind is a new file and one row. */

#include "dmarc-parse.h"

struct event;
struct dmarc_ingest;
struct dmarc_ingest_counts;
struct dmarc_kind_message;

/* Bytes of a document a kind may look at to recognise it. */
#define DMARC_KIND_PEEK_SIZE 4096

/* One document (an attachment, a zip entry, or an imported file) handed
   to a kind. */
struct dmarc_kind_doc {
	struct dmarc_ingest *ingest;
	/* names the message, the attachment and the entry in log lines */
	struct event *event;
	/* its bytes, from the first one (the peeked ones included); a
	   read fails once the mail's CPU time budget is spent */
	struct istream *input;
	/* relative to the archive dir, NULL when not archived */
	const char *archive_path;
	const char *message_id;
	/* the MIME type it came with, NULL for a file. Kinds recognise by
	   content; this only tells a kind what it has seen already (the
	   headers of a message/rfc822 part came through embedded_header) */
	const char *content_type;
	/* the MIME charset of a plain (not compressed) text or XML part, or
	   NULL: RFC 7303 lets it decide an XML document's encoding */
	const char *charset;
	time_t received;
	struct dmarc_ingest_counts *counts;
	/* this kind's state for the current message (see message_end) */
	void **state;
	pool_t message_pool;
};

struct dmarc_kind {
	/* "aggregate", "tls", "failure": the type column of doveadm */
	const char *name;
	/* Does a document starting with these bytes (up to
	   DMARC_KIND_PEEK_SIZE of them; fewer only at its end) belong to
	   this kind? */
	bool (*recognise)(const unsigned char *data, size_t size);
	/* Optional: does a text/plain part without a file name, which is
	   the mail's own text unless a kind claims it, belong to this
	   kind? data is its first bytes (see claim_text in
	   dmarc-extract.h). */
	bool (*recognise_text)(const unsigned char *data, size_t size);
	/* Parse and store. Returns 0, also for a broken document (logged
	   with doc->event and counted as failed), -1 only when storage
	   failed (logged already): the mail must then not be lost. */
	int (*ingest)(struct dmarc_kind_doc *doc);

	/* Optional, for kinds that are made of several parts of one mail
	   (a failure report and the message it reports): a header of a
	   message embedded in the mail (message/rfc822), decoded. */
	void (*embedded_header)(void **state, const char *name,
				const char *value);
	/* Optional: the mail (or imported file) ended: store what waits in
	   *state and clear it. Returns as ingest(). */
	int (*message_end)(struct dmarc_ingest *ingest, void **state,
			   struct dmarc_ingest_counts *counts);
};

/* NULL-terminated, in the order they are tried. A document no kind
   recognises goes to the first (aggregate XML), whose parser says why it
   is not a report. */
extern const struct dmarc_kind *const dmarc_kinds[];
#define DMARC_KIND_COUNT 3

extern const struct dmarc_kind dmarc_kind_aggregate;
extern const struct dmarc_kind dmarc_kind_tls;
extern const struct dmarc_kind dmarc_kind_failure;

/* Does some kind claim a nameless text/plain part starting with data? */
bool dmarc_kind_claims_text(const unsigned char *data, size_t size);

/* The kind that takes a document starting with data. */
const struct dmarc_kind *
dmarc_kind_find(const unsigned char *data, size_t size);

/* Once a report's header is read: the fields org, policy_domain and
   report_id (sanitised; NULL leaves one out) that its outcome event
   (dmarc-event.h) carries. _event() gives a child event of doc_event
   for several log lines, _outcome() the named event for one e_*() call
   (no event of its own: an import sends thousands). */
struct event *
dmarc_kind_report_event(struct event *doc_event, const char *org,
			const char *policy_domain, const char *report_id);
struct event_passthrough *
dmarc_kind_report_outcome(struct event *doc_event, const char *name,
			  const char *org, const char *policy_domain,
			  const char *report_id);

/* Skip a UTF-8 BOM and whitespace: the first byte that says what the
   document is, or NULL. */
const unsigned char *
dmarc_kind_first_byte(const unsigned char *data, size_t size);

#endif
