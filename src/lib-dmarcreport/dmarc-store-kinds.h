#ifndef DMARC_STORE_KINDS_H
#define DMARC_STORE_KINDS_H

/* SMTP TLS reports -> SQLite (tables of schema version 2). Each report is one transaction, or one savepoint inside an import
   batch: all of it or nothing. */

#include "dmarc-store.h"

struct dmarc_tls_report;

/* Returns 1 stored, 0 already stored (same org_name and report_id), -1
   on error. */
int dmarc_store_tls_report(struct dmarc_store *store,
			   const struct dmarc_tls_report *report,
			   const struct dmarc_store_report_info *info,
			   const char **error_r);

#endif
