#ifndef DMARC_INGEST_PRIVATE_H
#define DMARC_INGEST_PRIVATE_H

/* What the report kinds (dmarc-kind-*.c) use of the ingest pipeline. */

#include "dmarc-parse.h"
#include "dmarc-ingest.h"

struct dmarc_store;
struct dmarc_limits;

/* The database, opened on first use; NULL when it cannot be used (that
   was logged once, with the way back). */
struct dmarc_store *dmarc_ingest_get_store(struct dmarc_ingest *ingest);
/* Storing failed: log it (once per run) with the way back. */
void dmarc_ingest_store_failed(struct dmarc_ingest *ingest, const char *error);
/* The level of "Stored" and "Duplicate" lines: info, or debug when
   quiet (an import prints totals instead). */
enum log_type dmarc_ingest_report_log_type(struct dmarc_ingest *ingest);
const struct dmarc_limits *dmarc_ingest_get_limits(struct dmarc_ingest *ingest);
/* A document was logged as not stored: when the mail's CPU time budget
   (dmarcreport_max_processing_time) was the cause, that line was the
   budget's one warning for the mail. */
void dmarc_ingest_document_failed(struct dmarc_ingest *ingest);

/* Read a whole document into buf, at most max_size bytes. Returns 0, or
   -1 with *error_r (a read error, or the document is larger). */
int dmarc_ingest_read_all(dmarc_read_func_t *read, void *context,
			  uoff_t max_size, const char *limit_name,
			  buffer_t *buf, const char **error_r);

#endif
