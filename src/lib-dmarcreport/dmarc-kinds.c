/* The table of report kinds (see dmarc-kinds.h). */

#include "lib.h"
#include "dmarc-log.h"
#include "dmarc-kinds.h"

const struct dmarc_kind *const dmarc_kinds[DMARC_KIND_COUNT + 1] = {
	&dmarc_kind_aggregate,
	&dmarc_kind_tls,
	&dmarc_kind_failure,
	NULL
};

const unsigned char *
dmarc_kind_first_byte(const unsigned char *data, size_t size)
{
	size_t i = 0;

	if (size >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < size && (data[i] == ' ' || data[i] == '\t' ||
			    data[i] == '\r' || data[i] == '\n'))
		i++;
	return i < size ? data + i : NULL;
}

const struct dmarc_kind *
dmarc_kind_find(const unsigned char *data, size_t size)
{
	unsigned int i;

	for (i = 0; dmarc_kinds[i] != NULL; i++) {
		if (dmarc_kinds[i]->recognise(data, size))
			return dmarc_kinds[i];
	}
	return dmarc_kinds[0];
}

struct event_passthrough *
dmarc_kind_report_outcome(struct event *doc_event, const char *name,
			  const char *org, const char *policy_domain,
			  const char *report_id)
{
	struct event_passthrough *e =
		event_create_passthrough(doc_event)->set_name(name);

	if (org != NULL)
		e->add_str("org", dmarc_log_value(org));
	if (policy_domain != NULL)
		e->add_str("policy_domain", dmarc_log_value(policy_domain));
	if (report_id != NULL)
		e->add_str("report_id", dmarc_log_value(report_id));
	return e;
}

struct event *
dmarc_kind_report_event(struct event *doc_event, const char *org,
			const char *policy_domain, const char *report_id)
{
	struct event *event = event_create(doc_event);

	if (org != NULL)
		event_add_str(event, "org", dmarc_log_value(org));
	if (policy_domain != NULL) {
		event_add_str(event, "policy_domain",
			      dmarc_log_value(policy_domain));
	}
	if (report_id != NULL)
		event_add_str(event, "report_id", dmarc_log_value(report_id));
	return event;
}

bool dmarc_kind_claims_text(const unsigned char *data, size_t size)
{
	unsigned int i;

	for (i = 0; dmarc_kinds[i] != NULL; i++) {
		if (dmarc_kinds[i]->recognise_text != NULL &&
		    dmarc_kinds[i]->recognise_text(data, size))
			return TRUE;
	}
	return FALSE;
}
