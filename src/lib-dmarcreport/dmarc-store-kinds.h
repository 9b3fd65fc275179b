#ifndef DMARC_STORE_KINDS_H
#define DMARC_STORE_KINDS_H

/* SMTP TLS and DMARC failure reports -> SQLite (tables of schema version
   2). Each report is one transaction, or one savepoint inside an import
   batch: all of it or nothing. */

#include "dmarc-store.h"

struct dmarc_tls_report;
struct dmarc_failure_report;

/* Returns 1 stored, 0 already stored (same org_name and report_id, or the
   same failure report), -1 on error. */
int dmarc_store_tls_report(struct dmarc_store *store,
			   const struct dmarc_tls_report *report,
			   const struct dmarc_store_report_info *info,
			   const char **error_r);
int dmarc_store_failure_report(struct dmarc_store *store,
			       const struct dmarc_failure_report *report,
			       const struct dmarc_store_report_info *info,
			       const char **error_r);

#endif
