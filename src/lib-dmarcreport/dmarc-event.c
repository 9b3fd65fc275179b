/* The core's event category and outcome events (see dmarc-event.h). */

#include "lib.h"
#include "dmarc-log.h"
#include "dmarc-event.h"

struct event_category dmarc_event_category = {
	.name = "dmarcreport",
};

struct event *dmarc_event_create(struct event *parent)
{
	struct event *event = event_create(parent);

	event_add_category(event, &dmarc_event_category);
	return event;
}

struct event_passthrough *
dmarc_event_outcome(struct event *event, const char *name)
{
	return event_create_passthrough(event)->set_name(name);
}

struct event_passthrough *
dmarc_event_failed(struct event *event, const char *reason)
{
	return dmarc_event_outcome(event, DMARC_EVENT_REPORT_FAILED)->
		add_str("reason", dmarc_log_text(reason));
}

struct event_passthrough *
dmarc_event_skipped(struct event *event, const char *reason)
{
	return dmarc_event_outcome(event, DMARC_EVENT_REPORT_SKIPPED)->
		add_str("reason", dmarc_log_text(reason));
}
