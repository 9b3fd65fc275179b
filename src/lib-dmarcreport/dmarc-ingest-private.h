#ifndef DMARC_INGEST_PRIVATE_H
#define DMARC_INGEST_PRIVATE_H

/* What the report kinds (dmarc-kind-*.c) use of the ingest pipeline. */

#include "dmarc-parse.h"
#include "dmarc-ingest.h"

struct dmarc_store;
struct dmarc_limits;

/* The database, opened on first use; NULL when it cannot be used (the
   cause is kept: a kind's ingest() returns -1 and the pipeline logs it
   with the attachment, queued in the pending spool on delivery). */
struct dmarc_store *dmarc_ingest_get_store(struct dmarc_ingest *ingest);
/* The store failed on a report: when only this report was refused, a
   warning naming label and 0 (go on); else the database failed: -1, the
   cause kept as above. */
int dmarc_ingest_report_store_failed(struct dmarc_ingest *ingest,
				     struct event *event, const char *label,
				     const char *error,
				     struct dmarc_ingest_counts *counts);
/* For kinds that store at message_end(), when no attachment is left to
   queue: record error (unless NULL: dmarc_ingest_get_store() recorded
   it) and log the storage failure once, with the way back. */
void dmarc_ingest_storage_failed(struct dmarc_ingest *ingest,
				 struct event *event, const char *error);
/* The level of "Stored" and "Duplicate" lines: info, or debug when
   quiet (an import prints totals instead). */
enum log_type dmarc_ingest_report_log_type(struct dmarc_ingest *ingest);
const struct dmarc_limits *dmarc_ingest_get_limits(struct dmarc_ingest *ingest);
/* A document was logged as not stored: when the mail's CPU time budget
   (dmarcreport_max_processing_time) was the cause, that line was the
   budget's one warning for the mail. */
void dmarc_ingest_document_failed(struct dmarc_ingest *ingest);

/* Read a whole document's stream into buf, at most max_size bytes.
   Returns 0, or -1 with *error_r (a read error, or the document is
   larger: limit_name names the setting, and buf holds its first max_size
   bytes). */
int dmarc_ingest_read_all(struct istream *input, uoff_t max_size,
			  const char *limit_name, buffer_t *buf,
			  const char **error_r);

#endif
