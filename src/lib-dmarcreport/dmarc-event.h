#ifndef DMARC_EVENT_H
#define DMARC_EVENT_H

/* The events of the core, for log filters and Dovecot's metric {}: all
   of them carry the category "dmarcreport"; every document (attachment,
   zip entry, imported file, pending entry) ends in one named event, with
   the fields below where they are known (dovecot-dmarcreport(7), EVENTS
   AND METRICS). The API is the same on Dovecot 2.3 and 2.4. */

#include "lib-event.h"

extern struct event_category dmarc_event_category;

/* A report was stored: kind, org, policy_domain, report_id, records and
   messages (aggregate), policies and messages (tls: sessions); a failure
   report has policy_domain (its Reported-Domain) only. */
#define DMARC_EVENT_REPORT_STORED "dmarcreport_report_stored"
/* The report was stored before: kind, org, policy_domain, report_id; a
   conflicting duplicate (other content) also has reason. */
#define DMARC_EVENT_REPORT_DUPLICATE "dmarcreport_report_duplicate"
/* A document gave no report, or the database failed: reason, and the
   report's fields once its header was read. */
#define DMARC_EVENT_REPORT_FAILED "dmarcreport_report_failed"
/* Not looked at, or no report of its own: reason (a limit of the whole
   mail, the reported message of a failure report, no attachment). */
#define DMARC_EVENT_REPORT_SKIPPED "dmarcreport_report_skipped"

/* A child of parent (NULL: a root event) with the category. */
struct event *dmarc_event_create(struct event *parent);

/* A named event for the outcome of one document, for an e_*() call. */
struct event_passthrough *
dmarc_event_outcome(struct event *event, const char *name);
/* DMARC_EVENT_REPORT_FAILED or _SKIPPED with the reason (sanitised). */
struct event_passthrough *
dmarc_event_failed(struct event *event, const char *reason);
struct event_passthrough *
dmarc_event_skipped(struct event *event, const char *reason);

#endif
