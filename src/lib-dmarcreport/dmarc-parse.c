/* XML stream -> one DMARC aggregate report, record by record: libxml2's
   SAX2 push parser, fed through a byte filter that refuses DTDs and
   repairs the real-world breakage that leaves the data unambiguous. The
   SAX callbacks run the element machine; records completed while one
   chunk is parsed wait in a short queue for dmarc_parser_next_record().

   Decisions (tested in tests/test-dmarc-parse.c):
   - Rejected: any DOCTYPE; a root other than <feedback> (in no namespace,
     urn:ietf:params:xml:ns:dmarc-2.0 or the old dmarc.org draft one); no
     report_id, policy domain or date_range; no record; p/sp/np other
     than none|quarantine|reject (an empty p is such an unknown value; an
     empty sp/np is "not given"); a key value (org_name, report_id,
     policy domain) longer than PARSE_MAX_KEY_LENGTH.
   - One bad record costs only itself (an anomaly, for one warning): a
     source_ip that is not an address is kept as reported and marked
     invalid; an unknown disposition (RFC 9990 adds pass) or
     policy_evaluated dkim/spf (pass|fail) is stored as absent; a record
     without a usable count is skipped. A report of skipped records only
     is rejected, as one without records.
   - Kept as reported, an anomaly: pct out of 0..100, begin > end.
   - Accepted, normalised: case of all enumerated values and domains
     (lower-cased), surrounding whitespace, auth_results result words as
     found ("hardfail"), empty org_name (""). <version> as given (NULL
     when absent), the format from the root's namespace; <extensions>
     and unknown elements kept as XML (see the ext_ functions).
   - Repaired, with a warning: invalid UTF-8 and control characters
     (U+FFFD; in other charsets a control byte becomes &#xFFFD;), a '<'
     or '&' that starts no markup (kept as text), a stray <xs:schema>
     start tag before <feedback>, whitespace before the XML declaration,
     data after </feedback>, values longer than
     dmarcreport_max_value_length (cut), control characters in values
     (TAB, CR and LF become spaces, as XML normalises attribute values;
     DEL and U+0080..U+009F become U+FFFD): no stored value holds one.
     The key values are never cut.
   - Bounded, the report rejected past the bound: nesting depth, records,
     auth results per record, rows (records + auth results) per report,
     attributes per tag, namespace declarations and distinct names per
     document (what libxml2's time per start tag grows with), <count> and
     the report's total count (DMARC_MAX_COUNT). An empty <dkim/> or
     <spf/> is dropped and counts for nothing. An IPv4-mapped IPv6 source (::ffff:a.b.c.d)
     is stored as the IPv4 address it is. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "strnum.h"
#include "str-sanitize.h"
#include "net.h"
#include "dmarc-settings.h"
#include "dmarc-parse.h"
#include "dmarc-xml-filter.h"

#include <stdarg.h>
#include <libxml/parser.h>
#include <libxml/SAX2.h>
#include <libxml/dict.h>
#include <libxml/parserInternals.h>

#define DMARC2_NAMESPACE "urn:ietf:params:xml:ns:dmarc-2.0"
/* the namespace of the pre-RFC drafts; some reporters still declare it */
#define DMARC_DRAFT_NAMESPACE "http://dmarc.org/dmarc-xml/0.1"

/* Bytes given to libxml2 at a time: the records one chunk completes are
   queued, so this bounds the queue (a record is 60 bytes at least). */
#define PARSE_CHUNK_SIZE 4096
/* Overrides of one record, <error>s of one report: real reports have a
   handful; this bounds the memory of one record, which the records limit
   does not (auth results have their own setting). */
#define PARSE_MAX_ITEMS 1000
/* libxml2 2.9 interns every element and attribute name in a dictionary
   whose hash table stops growing at 16384 buckets: past that each new
   name costs a walk of long chains, quadratic in the number of names.
   A report uses about 50 names. */
#define PARSE_MAX_NAMES 1000
/* bytes of a bad value quoted in an error message */
#define PARSE_ERROR_VALUE_MAX 64
/* The values that identify a report (org_name, report_id, policy domain)
   are never cut to dmarcreport_max_value_length: two long report_ids
   that differ past the cut are two reports. A key longer than this is
   hostile and the report is refused. */
#define PARSE_MAX_KEY_LENGTH 65536

/* Elements we know, each with its parent: names are matched on the local
   name, ids are unique per place in the tree. */
enum elem {
	E_NONE = 0,	/* the document itself */
	E_UNKNOWN,	/* ignored, with all its children */
	E_FEEDBACK,
	E_VERSION, E_REPORT_METADATA, E_POLICY_PUBLISHED, E_RECORD,
	E_ORG_NAME, E_EMAIL, E_EXTRA_CONTACT_INFO, E_REPORT_ID,
	E_DATE_RANGE, E_ERROR, E_GENERATOR,
	E_BEGIN, E_END,
	E_P_DOMAIN, E_P_ADKIM, E_P_ASPF, E_P_P, E_P_SP, E_P_NP, E_P_PCT,
	E_P_FO, E_P_TESTING, E_P_DISCOVERY_METHOD,
	E_ROW, E_IDENTIFIERS, E_AUTH_RESULTS,
	E_SOURCE_IP, E_COUNT, E_POLICY_EVALUATED,
	E_DISPOSITION, E_PE_DKIM, E_PE_SPF, E_REASON,
	E_REASON_TYPE, E_REASON_COMMENT,
	E_HEADER_FROM, E_ENVELOPE_FROM, E_ENVELOPE_TO,
	E_AR_DKIM, E_AR_SPF,
	E_DKIM_DOMAIN, E_DKIM_SELECTOR, E_DKIM_RESULT, E_DKIM_HUMAN_RESULT,
	E_SPF_DOMAIN, E_SPF_SCOPE, E_SPF_RESULT, E_SPF_HUMAN_RESULT,
	ELEM_ID_COUNT
};

struct elem_def {
	enum elem parent;
	const char *name;
	enum elem id;
	bool is_leaf;
};

static const struct elem_def elem_defs[] = {
	{ E_NONE, "feedback", E_FEEDBACK, FALSE },
	{ E_FEEDBACK, "version", E_VERSION, TRUE },
	{ E_FEEDBACK, "report_metadata", E_REPORT_METADATA, FALSE },
	{ E_FEEDBACK, "policy_published", E_POLICY_PUBLISHED, FALSE },
	{ E_FEEDBACK, "record", E_RECORD, FALSE },
	{ E_REPORT_METADATA, "org_name", E_ORG_NAME, TRUE },
	{ E_REPORT_METADATA, "email", E_EMAIL, TRUE },
	{ E_REPORT_METADATA, "extra_contact_info", E_EXTRA_CONTACT_INFO, TRUE },
	{ E_REPORT_METADATA, "report_id", E_REPORT_ID, TRUE },
	{ E_REPORT_METADATA, "date_range", E_DATE_RANGE, FALSE },
	{ E_REPORT_METADATA, "error", E_ERROR, TRUE },
	{ E_REPORT_METADATA, "generator", E_GENERATOR, TRUE },
	{ E_DATE_RANGE, "begin", E_BEGIN, TRUE },
	{ E_DATE_RANGE, "end", E_END, TRUE },
	{ E_POLICY_PUBLISHED, "domain", E_P_DOMAIN, TRUE },
	{ E_POLICY_PUBLISHED, "adkim", E_P_ADKIM, TRUE },
	{ E_POLICY_PUBLISHED, "aspf", E_P_ASPF, TRUE },
	{ E_POLICY_PUBLISHED, "p", E_P_P, TRUE },
	{ E_POLICY_PUBLISHED, "sp", E_P_SP, TRUE },
	{ E_POLICY_PUBLISHED, "np", E_P_NP, TRUE },
	{ E_POLICY_PUBLISHED, "pct", E_P_PCT, TRUE },
	{ E_POLICY_PUBLISHED, "fo", E_P_FO, TRUE },
	{ E_POLICY_PUBLISHED, "testing", E_P_TESTING, TRUE },
	{ E_POLICY_PUBLISHED, "discovery_method", E_P_DISCOVERY_METHOD, TRUE },
	{ E_RECORD, "row", E_ROW, FALSE },
	{ E_RECORD, "identifiers", E_IDENTIFIERS, FALSE },
	{ E_RECORD, "auth_results", E_AUTH_RESULTS, FALSE },
	{ E_ROW, "source_ip", E_SOURCE_IP, TRUE },
	{ E_ROW, "count", E_COUNT, TRUE },
	{ E_ROW, "policy_evaluated", E_POLICY_EVALUATED, FALSE },
	{ E_POLICY_EVALUATED, "disposition", E_DISPOSITION, TRUE },
	{ E_POLICY_EVALUATED, "dkim", E_PE_DKIM, TRUE },
	{ E_POLICY_EVALUATED, "spf", E_PE_SPF, TRUE },
	{ E_POLICY_EVALUATED, "reason", E_REASON, FALSE },
	{ E_REASON, "type", E_REASON_TYPE, TRUE },
	{ E_REASON, "comment", E_REASON_COMMENT, TRUE },
	{ E_IDENTIFIERS, "header_from", E_HEADER_FROM, TRUE },
	{ E_IDENTIFIERS, "envelope_from", E_ENVELOPE_FROM, TRUE },
	{ E_IDENTIFIERS, "envelope_to", E_ENVELOPE_TO, TRUE },
	{ E_AUTH_RESULTS, "dkim", E_AR_DKIM, FALSE },
	{ E_AUTH_RESULTS, "spf", E_AR_SPF, FALSE },
	{ E_AR_DKIM, "domain", E_DKIM_DOMAIN, TRUE },
	{ E_AR_DKIM, "selector", E_DKIM_SELECTOR, TRUE },
	{ E_AR_DKIM, "result", E_DKIM_RESULT, TRUE },
	{ E_AR_DKIM, "human_result", E_DKIM_HUMAN_RESULT, TRUE },
	{ E_AR_SPF, "domain", E_SPF_DOMAIN, TRUE },
	{ E_AR_SPF, "scope", E_SPF_SCOPE, TRUE },
	{ E_AR_SPF, "result", E_SPF_RESULT, TRUE },
	{ E_AR_SPF, "human_result", E_SPF_HUMAN_RESULT, TRUE },
};
#define ELEM_DEF_COUNT N_ELEMENTS(elem_defs)

/* RFC 7489 appendix C / RFC 9990 appendix A enumerations we enforce. */
static const char *const policy_values[] = {
	"none", "quarantine", "reject", NULL
};
/* RFC 9990 ActionDispositionType adds "pass" (its appendix B sample
   uses it). */
static const char *const disposition_values[] = {
	"none", "pass", "quarantine", "reject", NULL
};
static const char *const dmarc_result_values[] = { "pass", "fail", NULL };
/* for the doveadm filters: what can be stored is what can be asked for */
const char *const *const dmarc_parse_disposition_values = disposition_values;
const char *const *const dmarc_parse_result_values = dmarc_result_values;

/* What one step of the element machine ended with. */
enum step_result {
	STEP_CONTINUE,
	STEP_HEADER_DONE,	/* the first <record> started */
	STEP_RECORD_DONE,
	STEP_END,		/* </feedback> */
	STEP_ERROR,
};

/* One record and the memory of its strings. */
struct record_slot {
	pool_t pool;
	struct dmarc_record record;
};

struct dmarc_parser {
	pool_t pool;		/* report header, warnings, errors */
	struct dmarc_limits limits;

	/* the byte filter between the document's istream and libxml2 */
	struct dmarc_xml_filter *filter;
	unsigned int n_values_cut, n_controls_replaced;

	xmlParserCtxtPtr ctxt;
	const xmlChar *names[ELEM_DEF_COUNT];
	ARRAY(enum elem) stack;
	string_t *text;
	const char *xml_error;

	struct dmarc_report report;
	/* the record being parsed; completed ones wait in slots[head..tail-1]
	   and cur is slots[tail] */
	ARRAY(struct record_slot *) slots;
	unsigned int queue_head, queue_tail;
	struct record_slot *cur;
	unsigned int records;
	/* rows the report adds (records and auth results) and the messages
	   it counts, both bounded */
	uint64_t rows;
	int64_t messages;
	const char *error;
	ARRAY_TYPE(const_string) warnings;
	/* what the report says that is wrong but kept (or one record
	   skipped): an admin should hear of it, see get_anomalies() */
	ARRAY_TYPE(const_string) anomalies;
	/* why the record in progress is skipped, or NULL */
	const char *record_skip_reason;
	const char *first_skip_reason, *first_invalid_source;
	unsigned int n_records_skipped, n_invalid_sources;
	unsigned int n_values_unknown, n_extensions_dropped;

	/* the unknown element being copied: nesting inside it (0 when
	   none), its XML so far, and whether it is inside a <record> */
	unsigned int ext_depth;
	string_t *ext;
	/* bytes of fragments kept for the record in progress */
	size_t record_ext_len;
	bool ext_in_record;
	bool ext_overflow;
	string_t *report_ext;

	bool text_cut:1;
	bool have_begin:1;
	bool have_end:1;
	bool header_done:1;
	bool end_seen:1;
	bool xml_terminated:1;
	bool finished:1;
};

static void ATTR_FORMAT(2, 3)
parser_warning(struct dmarc_parser *parser, const char *fmt, ...)
{
	const char *msg;
	va_list args;

	va_start(args, fmt);
	msg = p_strdup_vprintf(parser->pool, fmt, args);
	va_end(args);
	array_push_back(&parser->warnings, &msg);
}

static void ATTR_FORMAT(2, 3)
parser_anomaly(struct dmarc_parser *parser, const char *fmt, ...)
{
	const char *msg;
	va_list args;

	va_start(args, fmt);
	msg = p_strdup_vprintf(parser->pool, fmt, args);
	va_end(args);
	array_push_back(&parser->anomalies, &msg);
}

static const unsigned char utf8_replacement[] = { 0xef, 0xbf, 0xbd };

static inline bool is_xml_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ---------------------------------------------------------------------
   libxml2 errors: kept, never printed. */

static void parser_xml_structured_error(void *context, xmlErrorPtr error)
{
	struct dmarc_parser *parser = context;
	const char *msg;

	if (parser->xml_error != NULL || error->level < XML_ERR_ERROR)
		return;
	msg = error->message == NULL ? "unknown error" :
		t_str_trim(error->message, " \t\r\n");
	parser->xml_error = p_strdup_printf(parser->pool,
		"XML error at line %d: %s", error->line, msg);
}

static void ATTR_FORMAT(2, 3)
parser_xml_generic_error(void *context, const char *fmt, ...)
{
	struct dmarc_parser *parser = context;
	va_list args;

	/* Errors without a parser context (I/O, encoding setup) come here
	   instead of stderr. */
	if (parser == NULL || parser->xml_error != NULL)
		return;
	va_start(args, fmt);
	parser->xml_error = p_strdup_printf(parser->pool, "XML error: %s",
		t_str_trim(t_strdup_vprintf(fmt, args), " \t\r\n"));
	va_end(args);
}

struct generic_error_save {
	xmlGenericErrorFunc func;
	void *context;
};

static void generic_error_push(struct dmarc_parser *parser,
			       struct generic_error_save *save_r)
{
	save_r->func = xmlGenericError;
	save_r->context = xmlGenericErrorContext;
	xmlSetGenericErrorFunc(parser, parser_xml_generic_error);
}

static void generic_error_pop(struct generic_error_save *save)
{
	xmlSetGenericErrorFunc(save->context, save->func);
}

/* ---------------------------------------------------------------------
   The element machine. */

static long parser_line(struct dmarc_parser *parser)
{
	return parser->ctxt == NULL ? 0 : xmlSAX2GetLineNumber(parser->ctxt);
}

static enum step_result ATTR_FORMAT(2, 3)
parser_fail(struct dmarc_parser *parser, const char *fmt, ...)
{
	string_t *str = t_str_new(128);
	va_list args;

	if (parser->header_done && !parser->finished &&
	    parser->records > 0)
		str_printfa(str, "record %u, ", parser->records);
	str_printfa(str, "line %ld: ", parser_line(parser));
	va_start(args, fmt);
	str_vprintfa(str, fmt, args);
	va_end(args);
	parser->error = p_strdup(parser->pool, str_c(str));
	return STEP_ERROR;
}

static const char *quote_value(const char *value)
{
	return t_strdup_printf("\"%s\"",
			       str_sanitize(value, PARSE_ERROR_VALUE_MAX));
}

static const char *elem_name(enum elem id)
{
	unsigned int i;

	for (i = 0; i < ELEM_DEF_COUNT; i++) {
		if (elem_defs[i].id == id)
			return elem_defs[i].name;
	}
	return "?";
}

/* Lower-case copy of an enumerated value, checked against values. */
static enum step_result
parse_enum(struct dmarc_parser *parser, pool_t pool, enum elem id,
	   const char *value, const char *const *values, const char **dest)
{
	char *lvalue = str_lcase(p_strdup(pool, value));

	if (!str_array_find(values, lvalue)) {
		return parser_fail(parser, "<%s> %s is not one of %s",
				   elem_name(id), quote_value(value),
				   t_strarray_join((const char *const *)values,
						   ", "));
	}
	*dest = lvalue;
	return STEP_CONTINUE;
}

static const char *p_strdup_lcase(pool_t pool, const char *value)
{
	return str_lcase(p_strdup(pool, value));
}

static const char *p_strdup_lcase_empty_null(pool_t pool, const char *value)
{
	return *value == '\0' ? NULL : p_strdup_lcase(pool, value);
}

static enum step_result
parse_time(struct dmarc_parser *parser, enum elem id, const char *value,
	   int64_t *time_r)
{
	if (str_to_int64(value, time_r) < 0 || *time_r < 0) {
		return parser_fail(parser, "<%s> %s is not a Unix time",
				   elem_name(id), quote_value(value));
	}
	return STEP_CONTINUE;
}

static const char *normalise_ip(pool_t pool, const char *value)
{
	struct ip_addr ip, ip4;
	const char *addr;

	/* RFC 7489 appendix C's IPAddress: no "[v6]", no zone ("%eth0",
	   which 2.4's net_addr2ip() takes and 2.3's does not) */
	if (strpbrk(value, "[%") != NULL || net_addr2ip(value, &ip) < 0)
		return NULL;
	/* ::ffff:192.0.2.1 is 192.0.2.1: one source, one form */
	if (net_ipv6_mapped_ipv4_convert(&ip, &ip4) == 0)
		ip = ip4;
	addr = net_ip2addr(&ip);
	/* net_addr2ip() also takes what inet_aton() does ("10.1",
	   "0x0a000001", "010.0.0.1", text after a space): an IPv4 source
	   is a dotted quad as written, or not an address */
	if (strchr(value, ':') == NULL && strcmp(addr, value) != 0)
		return NULL;
	return p_strdup(pool, addr);
}

/* TAB, CR and LF (raw or as &#10;) become spaces, as XML 1.0 section
   3.3.3 normalises attribute values; DEL and the C1 controls become
   U+FFFD. The text is valid UTF-8 from libxml2, and XML allows no other
   control character. */
static void text_replace_controls(struct dmarc_parser *parser)
{
	const unsigned char *data = str_data(parser->text);
	size_t i, start, len = str_len(parser->text);
	string_t *out;

	for (i = 0; i < len; i++) {
		if (data[i] < 0x20 || data[i] == 0x7f ||
		    (data[i] == 0xc2 && i + 1 < len && data[i + 1] < 0xa0))
			break;
	}
	if (i == len)
		return;
	out = t_str_new(len + 16);
	for (start = 0; i < len; i++) {
		if (data[i] < 0x20) {
			str_append_data(out, data + start, i - start);
			str_append_c(out, ' ');
		} else if (data[i] == 0x7f ||
			   (data[i] == 0xc2 && i + 1 < len &&
			    data[i + 1] < 0xa0)) {
			str_append_data(out, data + start, i - start);
			str_append_data(out, utf8_replacement,
					sizeof(utf8_replacement));
			if (data[i] == 0xc2)
				i++;
		} else {
			continue;
		}
		start = i + 1;
		parser->n_controls_replaced++;
	}
	str_append_data(out, data + start, len - start);
	str_truncate(parser->text, 0);
	str_append_str(parser->text, out);
}

static const char *text_value(struct dmarc_parser *parser)
{
	const char *data = str_c(parser->text);
	size_t len = str_len(parser->text);

	while (len > 0 && is_xml_space(data[len - 1]))
		len--;
	str_truncate(parser->text, len);
	text_replace_controls(parser);
	data = str_c(parser->text);
	while (is_xml_space(*data))
		data++;
	return data;
}

static bool elem_is_key(enum elem id)
{
	return id == E_ORG_NAME || id == E_REPORT_ID || id == E_P_DOMAIN;
}

static void text_append(struct dmarc_parser *parser, enum elem id,
			const char *value, size_t len)
{
	size_t used = str_len(parser->text);
	bool is_key = elem_is_key(id);
	unsigned int max = is_key ? PARSE_MAX_KEY_LENGTH :
		parser->limits.max_value_length;

	if (parser->text_cut)
		return;
	if (used + len > max) {
		size_t n = max - used;

		/* cut at a character boundary; not uni_utf8_data_truncate(),
		   which also drops a whole character that ends right at the
		   cut (50 two-byte characters in 100 bytes would be 49) */
		while (n > 0 && ((unsigned char)value[n] & 0xc0) == 0x80)
			n--;
		str_append_data(parser->text, value, n);
		parser->text_cut = TRUE;
		/* a key cut refuses the report in leaf_end() */
		if (!is_key)
			parser->n_values_cut++;
		return;
	}
	str_append_data(parser->text, value, len);
}

/* The record in progress is not stored: the first reason is kept for the
   report's one warning. */
static enum step_result ATTR_FORMAT(2, 3)
record_skip(struct dmarc_parser *parser, const char *fmt, ...)
{
	va_list args;

	if (parser->record_skip_reason == NULL) {
		va_start(args, fmt);
		/* the record's pool: freed with the record, however
		   many records are bad */
		parser->record_skip_reason =
			p_strdup_vprintf(parser->cur->pool, fmt, args);
		va_end(args);
	}
	return STEP_CONTINUE;
}

/* An enumerated value of a record that is not one we know: the record is
   kept with the value absent, and the report says so once. */
static enum step_result
parse_record_enum(struct dmarc_parser *parser, pool_t pool, enum elem id,
		  const char *value, const char *const *values,
		  const char **dest)
{
	char *lvalue = str_lcase(p_strdup(pool, value));

	if (!str_array_find(values, lvalue)) {
		if (parser->n_values_unknown++ == 0) {
			parser_anomaly(parser, "record %u: <%s> %s is not one "
				"of %s: stored as absent", parser->records,
				elem_name(id), quote_value(value),
				t_strarray_join((const char *const *)values,
						", "));
		}
		*dest = NULL;
		return STEP_CONTINUE;
	}
	*dest = lvalue;
	return STEP_CONTINUE;
}

static struct dmarc_auth_result *current_auth(struct dmarc_parser *parser)
{
	return array_back_modifiable(&parser->cur->record.auth_results);
}

static struct dmarc_policy_override *current_reason(struct dmarc_parser *parser)
{
	return array_back_modifiable(&parser->cur->record.reasons);
}

/* A leaf element ended with its (trimmed) value. */
static enum step_result
leaf_end(struct dmarc_parser *parser, enum elem id, const char *value)
{
	struct dmarc_report *report = &parser->report;
	struct dmarc_policy_published *policy = &report->policy;
	struct dmarc_record *record = &parser->cur->record;
	pool_t pool = parser->pool, rpool = parser->cur->pool;
	uint64_t count;
	int pct;

	if (elem_is_key(id) && parser->text_cut) {
		return parser_fail(parser, "<%s> is longer than %u bytes",
				   elem_name(id), PARSE_MAX_KEY_LENGTH);
	}
	switch (id) {
	case E_VERSION:
		if (*value != '\0')
			report->version = p_strdup(pool, value);
		break;
	case E_ORG_NAME:
		report->org_name = p_strdup(pool, value);
		break;
	case E_EMAIL:
		report->email = p_strdup(pool, value);
		break;
	case E_EXTRA_CONTACT_INFO:
		report->extra_contact_info = p_strdup(pool, value);
		break;
	case E_REPORT_ID:
		report->report_id = p_strdup(pool, value);
		break;
	case E_GENERATOR:
		report->generator = p_strdup(pool, value);
		break;
	case E_ERROR:
		if (*value != '\0' &&
		    array_count(&report->errors) < PARSE_MAX_ITEMS) {
			value = p_strdup(pool, value);
			array_push_back(&report->errors, &value);
		}
		break;
	case E_BEGIN:
		parser->have_begin = TRUE;
		return parse_time(parser, id, value, &report->date_begin);
	case E_END:
		parser->have_end = TRUE;
		return parse_time(parser, id, value, &report->date_end);
	case E_P_DOMAIN:
		policy->domain = p_strdup_lcase(pool, value);
		break;
	case E_P_ADKIM:
		policy->adkim = p_strdup_lcase_empty_null(pool, value);
		break;
	case E_P_ASPF:
		policy->aspf = p_strdup_lcase_empty_null(pool, value);
		break;
	case E_P_P:
		return parse_enum(parser, pool, id, value, policy_values,
				  &policy->p);
	case E_P_SP:
		/* optional: an empty element means "not given" */
		if (*value == '\0')
			break;
		return parse_enum(parser, pool, id, value, policy_values,
				  &policy->sp);
	case E_P_NP:
		if (*value == '\0')
			break;
		return parse_enum(parser, pool, id, value, policy_values,
				  &policy->np);
	case E_P_PCT:
		/* stored as reported: the admin sees what the receiver
		   claims to have applied */
		if (*value == '\0')
			break;
		if (str_to_int(value, &pct) < 0) {
			parser_anomaly(parser, "ignored <pct> %s: not an "
				       "integer", quote_value(value));
			policy->pct = DMARC_UNSET;
		} else {
			if (pct < 0 || pct > 100) {
				parser_anomaly(parser, "<pct> %d is not "
					       "0..100 (stored as reported)",
					       pct);
			}
			policy->pct = pct;
		}
		break;
	case E_P_FO:
		policy->fo = p_strdup_lcase_empty_null(pool, value);
		break;
	case E_P_TESTING:
		policy->testing = p_strdup_lcase_empty_null(pool, value);
		break;
	case E_P_DISCOVERY_METHOD:
		policy->discovery_method =
			p_strdup_lcase_empty_null(pool, value);
		break;
	case E_SOURCE_IP:
		record->source_ip = normalise_ip(rpool, value);
		record->source_ip_valid = record->source_ip != NULL;
		if (record->source_ip == NULL) {
			/* kept as reported, marked invalid: CIDR filters
			   skip it, the report's other records count */
			record->source_ip = p_strdup(rpool, value);
		}
		break;
	case E_COUNT:
		if (str_to_uint64(value, &count) < 0 && !str_is_numeric(value, '\0')) {
			return record_skip(parser, "<count> %s is not a "
					   "non-negative integer",
					   quote_value(value));
		}
		/* digits past UINT64_MAX are past the bound too */
		if (str_to_uint64(value, &count) < 0 ||
		    count > DMARC_MAX_COUNT) {
			return parser_fail(parser, "<count> %s is more than "
					   "%lld messages", quote_value(value),
					   DMARC_MAX_COUNT);
		}
		record->count = count;
		break;
	case E_DISPOSITION:
		return parse_record_enum(parser, rpool, id, value,
			disposition_values, &record->disposition);
	case E_PE_DKIM:
		return parse_record_enum(parser, rpool, id, value,
			dmarc_result_values, &record->dkim);
	case E_PE_SPF:
		return parse_record_enum(parser, rpool, id, value,
			dmarc_result_values, &record->spf);
	case E_REASON_TYPE:
		current_reason(parser)->type = p_strdup_lcase(rpool, value);
		break;
	case E_REASON_COMMENT:
		current_reason(parser)->comment = p_strdup(rpool, value);
		break;
	case E_HEADER_FROM:
		record->header_from = p_strdup_lcase(rpool, value);
		break;
	case E_ENVELOPE_FROM:
		record->envelope_from = p_strdup_lcase(rpool, value);
		break;
	case E_ENVELOPE_TO:
		record->envelope_to = p_strdup_lcase(rpool, value);
		break;
	case E_DKIM_DOMAIN:
	case E_SPF_DOMAIN:
		current_auth(parser)->domain = p_strdup_lcase(rpool, value);
		break;
	case E_DKIM_SELECTOR:
		current_auth(parser)->selector = p_strdup(rpool, value);
		break;
	case E_SPF_SCOPE:
		current_auth(parser)->scope = p_strdup_lcase(rpool, value);
		break;
	case E_DKIM_RESULT:
	case E_SPF_RESULT:
		/* stored as found (lower-cased): "hardfail" is seen */
		current_auth(parser)->result = p_strdup_lcase(rpool, value);
		break;
	case E_DKIM_HUMAN_RESULT:
	case E_SPF_HUMAN_RESULT:
		current_auth(parser)->human_result = p_strdup(rpool, value);
		break;
	default:
		i_unreached();
	}
	return STEP_CONTINUE;
}

static enum step_result header_check(struct dmarc_parser *parser)
{
	struct dmarc_report *report = &parser->report;

	if (report->report_id == NULL || *report->report_id == '\0')
		return parser_fail(parser, "no <report_id> in report_metadata");
	if (report->policy.domain == NULL || *report->policy.domain == '\0')
		return parser_fail(parser, "no <domain> in policy_published");
	if (!parser->have_begin || !parser->have_end) {
		return parser_fail(parser, "no <date_range> with <begin> and "
				   "<end> in report_metadata");
	}
	if (report->org_name == NULL) {
		/* the reports' identity is (org_name, report_id, domain) */
		report->org_name = "";
	}
	if (report->date_begin > report->date_end) {
		parser_anomaly(parser, "date_range begin %"PRId64" is after "
			       "end %"PRId64" (stored as reported)",
			       report->date_begin, report->date_end);
	}
	parser->header_done = TRUE;
	return STEP_CONTINUE;
}

/* A record or an auth result more: bounded, as it is a row in the
   store. */
static enum step_result report_add_row(struct dmarc_parser *parser)
{
	if (++parser->rows > parser->limits.max_report_rows) {
		return parser_fail(parser, "the report has more than %u records "
				   "and auth results "
				   "(dmarcreport_max_report_rows)",
				   parser->limits.max_report_rows);
	}
	return STEP_CONTINUE;
}

static enum step_result record_begin(struct dmarc_parser *parser)
{
	struct dmarc_record *record = &parser->cur->record;

	if (parser->records >= parser->limits.max_records) {
		return parser_fail(parser, "more than %u records "
				   "(dmarcreport_max_records)",
				   parser->limits.max_records);
	}
	if (report_add_row(parser) == STEP_ERROR)
		return STEP_ERROR;
	parser->records++;
	parser->record_skip_reason = NULL;
	p_clear(parser->cur->pool);
	record->source_ip = NULL;
	record->source_ip_valid = FALSE;
	record->extensions = NULL;
	parser->record_ext_len = 0;
	record->count = DMARC_UNSET;
	record->disposition = record->dkim = record->spf = NULL;
	record->header_from = record->envelope_from = NULL;
	record->envelope_to = NULL;
	array_clear(&record->reasons);
	array_clear(&record->auth_results);
	return STEP_CONTINUE;
}

static enum step_result record_check(struct dmarc_parser *parser)
{
	struct dmarc_record *record = &parser->cur->record;

	if (parser->record_skip_reason == NULL &&
	    record->count == DMARC_UNSET)
		(void)record_skip(parser, "no <count>");
	if (parser->record_skip_reason != NULL) {
		/* one bad record does not cost the report its others */
		if (parser->n_records_skipped++ == 0) {
			parser->first_skip_reason = p_strdup_printf(
				parser->pool, "record %u: %s", parser->records,
				parser->record_skip_reason);
		}
		return STEP_CONTINUE;
	}
	if (record->source_ip == NULL)
		record->source_ip = "";
	if (!record->source_ip_valid && parser->n_invalid_sources++ == 0) {
		parser->first_invalid_source = p_strdup_printf(parser->pool,
			"record %u: %s", parser->records,
			*record->source_ip == '\0' ? "no <source_ip>" :
			quote_value(record->source_ip));
	}
	/* both are at most DMARC_MAX_COUNT: the sum cannot overflow */
	parser->messages += parser->cur->record.count;
	if (parser->messages > DMARC_MAX_COUNT) {
		return parser_fail(parser, "the report's <count>s add up to "
				   "more than %lld messages", DMARC_MAX_COUNT);
	}
	return STEP_RECORD_DONE;
}

static bool str_is_empty(const char *str)
{
	return str == NULL || *str == '\0';
}

static bool auth_result_is_empty(const struct dmarc_auth_result *auth)
{
	return str_is_empty(auth->domain) && str_is_empty(auth->selector) &&
		str_is_empty(auth->scope) && str_is_empty(auth->result) &&
		str_is_empty(auth->human_result);
}

static enum step_result element_start(struct dmarc_parser *parser,
				      enum elem id)
{
	struct dmarc_auth_result *auth;

	switch (id) {
	case E_RECORD:
		if (!parser->header_done) {
			if (header_check(parser) == STEP_ERROR)
				return STEP_ERROR;
			if (record_begin(parser) == STEP_ERROR)
				return STEP_ERROR;
			return STEP_HEADER_DONE;
		}
		return record_begin(parser);
	case E_REASON:
		if (array_count(&parser->cur->record.reasons) >= PARSE_MAX_ITEMS)
			return parser_fail(parser, "too many <reason>s");
		(void)array_append_space(&parser->cur->record.reasons);
		break;
	case E_AR_DKIM:
	case E_AR_SPF:
		if (array_count(&parser->cur->record.auth_results) >=
		    parser->limits.max_auth_results) {
			return parser_fail(parser, "more than %u auth_results "
					   "in one record "
					   "(dmarcreport_max_auth_results)",
					   parser->limits.max_auth_results);
		}
		auth = array_append_space(&parser->cur->record.auth_results);
		auth->type = id == E_AR_DKIM ? DMARC_AUTH_DKIM : DMARC_AUTH_SPF;
		break;
	default:
		break;
	}
	str_truncate(parser->text, 0);
	parser->text_cut = FALSE;
	return STEP_CONTINUE;
}

static enum step_result element_end(struct dmarc_parser *parser,
				    enum elem id, bool is_leaf)
{
	struct dmarc_policy_override *reason;

	if (is_leaf)
		return leaf_end(parser, id, text_value(parser));
	switch (id) {
	case E_RECORD:
		return record_check(parser);
	case E_REASON:
		/* parsedmarc's empty_reason sample: <type/><comment/> */
		reason = current_reason(parser);
		if ((reason->type == NULL || *reason->type == '\0') &&
		    (reason->comment == NULL || *reason->comment == '\0')) {
			array_pop_back(&parser->cur->record.reasons);
		} else if (reason->type == NULL) {
			reason->type = "";
		}
		break;
	case E_AR_DKIM:
	case E_AR_SPF:
		/* an empty <dkim/> says nothing: no row for it */
		if (auth_result_is_empty(current_auth(parser))) {
			array_pop_back(&parser->cur->record.auth_results);
			break;
		}
		return report_add_row(parser);
	case E_FEEDBACK:
		if (!parser->header_done) {
			if (header_check(parser) == STEP_ERROR)
				return STEP_ERROR;
			return parser_fail(parser, "report has no records");
		}
		if (parser->n_records_skipped == parser->records) {
			/* nothing usable: as a report without records */
			return parser_fail(parser, "no usable record (%s)",
					   parser->first_skip_reason);
		}
		return STEP_END;
	default:
		break;
	}
	return STEP_CONTINUE;
}

static bool namespace_is_known(const xmlChar *ns)
{
	return ns == NULL ||
		strcmp((const char *)ns, DMARC2_NAMESPACE) == 0 ||
		strcmp((const char *)ns, DMARC_DRAFT_NAMESPACE) == 0;
}

/* elem_defs lists the children of one parent together: where each
   parent's run starts, ELEM_DEF_COUNT for a parent without children */
static unsigned int elem_first_child[ELEM_ID_COUNT];

static void parse_tables_init(void)
{
	static bool initialized = FALSE;
	unsigned int i;

	if (initialized)
		return;
	for (i = 0; i < ELEM_ID_COUNT; i++)
		elem_first_child[i] = ELEM_DEF_COUNT;
	for (i = ELEM_DEF_COUNT; i > 0; i--)
		elem_first_child[elem_defs[i - 1].parent] = i - 1;
	initialized = TRUE;
}

static const struct elem_def *
elem_lookup(struct dmarc_parser *parser, enum elem parent,
	    const xmlChar *name)
{
	unsigned int i;

	/* names are interned in the parser's dictionary: compare
	   pointers */
	for (i = elem_first_child[parent];
	     i < ELEM_DEF_COUNT && elem_defs[i].parent == parent; i++) {
		if (parser->names[i] == name)
			return &elem_defs[i];
	}
	return NULL;
}

static enum elem stack_top(struct dmarc_parser *parser)
{
	return array_is_empty(&parser->stack) ? E_NONE :
		*array_back(&parser->stack);
}

static bool elem_is_leaf(enum elem id)
{
	return id >= E_VERSION && id != E_UNKNOWN &&
		id != E_REPORT_METADATA && id != E_POLICY_PUBLISHED &&
		id != E_RECORD && id != E_DATE_RANGE && id != E_ROW &&
		id != E_IDENTIFIERS && id != E_AUTH_RESULTS &&
		id != E_POLICY_EVALUATED && id != E_REASON &&
		id != E_AR_DKIM && id != E_AR_SPF;
}

/* --- the record queue --- */

static struct record_slot *record_slot_new(void)
{
	struct record_slot *slot = i_new(struct record_slot, 1);

	slot->pool = pool_alloconly_create("dmarc record", 1024);
	i_array_init(&slot->record.reasons, 2);
	i_array_init(&slot->record.auth_results, 4);
	slot->record.count = DMARC_UNSET;
	return slot;
}

static void record_slot_free(struct record_slot **_slot)
{
	struct record_slot *slot = *_slot;

	*_slot = NULL;
	array_free(&slot->record.reasons);
	array_free(&slot->record.auth_results);
	pool_unref(&slot->pool);
	i_free(slot);
}

/* The current record is complete: queue it, build the next in a free
   slot. */
static void record_queue_push(struct dmarc_parser *parser)
{
	struct record_slot *slot;

	parser->queue_tail++;
	if (parser->queue_tail == array_count(&parser->slots)) {
		slot = record_slot_new();
		array_push_back(&parser->slots, &slot);
	}
	parser->cur = array_idx_elem(&parser->slots, parser->queue_tail);
}

/* All queued records were handed out: their slots are free again. The
   record in progress moves to the first slot. */
static void record_queue_reset(struct dmarc_parser *parser)
{
	struct record_slot **slots;

	i_assert(parser->queue_head == parser->queue_tail);
	if (parser->queue_tail == 0)
		return;
	slots = array_front_modifiable(&parser->slots);
	slots[parser->queue_tail] = slots[0];
	slots[0] = parser->cur;
	parser->queue_head = parser->queue_tail = 0;
}

/* --- SAX callbacks --- */

/* What a callback's step means for the caller; after an error libxml2 is
   stopped and calls nothing more. */
static void parser_step_done(struct dmarc_parser *parser,
			     enum step_result ret)
{
	switch (ret) {
	case STEP_CONTINUE:
	case STEP_HEADER_DONE:	/* header_done is set */
		break;
	case STEP_RECORD_DONE:
		record_queue_push(parser);
		break;
	case STEP_END:
		parser->end_seen = TRUE;
		xmlStopParser(parser->ctxt);
		break;
	case STEP_ERROR:
		xmlStopParser(parser->ctxt);
		break;
	}
}

static enum step_result
parser_element_start(struct dmarc_parser *parser, const xmlChar *name,
		     const xmlChar *ns)
{
	const struct elem_def *def;
	enum elem parent = stack_top(parser), id;
	enum step_result ret;

	if (parent == E_UNKNOWN || elem_is_leaf(parent))
		def = NULL;
	else if (!namespace_is_known(ns))
		def = NULL;
	else
		def = elem_lookup(parser, parent, name);
	if (parent == E_NONE) {
		if (def == NULL) {
			return parser_fail(parser, "not a DMARC aggregate "
				"report (root element <%s>%s%s)",
				str_sanitize((const char *)name,
					     PARSE_ERROR_VALUE_MAX),
				ns == NULL ? "" : " in namespace ",
				ns == NULL ? "" : str_sanitize(
					(const char *)ns,
					PARSE_ERROR_VALUE_MAX));
		}
		parser->report.format = ns == NULL ? DMARC_FORMAT_RFC7489 :
			strcmp((const char *)ns, DMARC2_NAMESPACE) == 0 ?
			DMARC_FORMAT_RFC9990 : DMARC_FORMAT_DRAFT;
	}
	id = def == NULL ? E_UNKNOWN : def->id;
	if (parser->header_done && (id == E_VERSION ||
	    id == E_REPORT_METADATA || id == E_POLICY_PUBLISHED)) {
		/* the report may already be stored under its header */
		parser_warning(parser, "ignored <%s> after the first record",
			       elem_name(id));
		id = E_UNKNOWN;
	}
	ret = element_start(parser, id);
	if (ret != STEP_ERROR)
		array_push_back(&parser->stack, &id);
	return ret;
}

/* --- unknown elements, kept as XML ---

   RFC 9990 <extensions> and any element we do not know are copied as
   XML fragments (re-serialised from the SAX events: the same elements,
   attributes, namespace declarations and text; line breaks and tabs as
   character references, so no stored value holds a control character).
   Indentation between tags is not kept. Bounded by
   dmarcreport_max_value_length per report level and per record: a
   fragment that does not fit is dropped whole, never cut into broken
   XML. */

/* Bytes kept so far at the level the fragment in progress belongs to. */
static size_t ext_level_len(struct dmarc_parser *parser)
{
	return parser->ext_in_record ? parser->record_ext_len :
		str_len(parser->report_ext);
}

static bool ext_fits(struct dmarc_parser *parser, size_t more)
{
	unsigned int max = parser->limits.max_value_length;

	return ext_level_len(parser) + str_len(parser->ext) + more <= max;
}

static void ext_append_escaped(struct dmarc_parser *parser,
			       const char *data, size_t len, bool is_attr)
{
	string_t *str = parser->ext;
	size_t i, start = 0;
	const char *esc;

	if (parser->ext_overflow)
		return;
	for (i = 0; i < len; i++) {
		switch (data[i]) {
		case '&': esc = "&amp;"; break;
		case '<': esc = "&lt;"; break;
		case '>': esc = "&gt;"; break;
		case '"': esc = is_attr ? "&quot;" : NULL; break;
		case '\t': esc = "&#9;"; break;
		case '\n': esc = "&#10;"; break;
		case '\r': esc = "&#13;"; break;
		default: esc = NULL; break;
		}
		if (esc == NULL)
			continue;
		str_append_data(str, data + start, i - start);
		str_append(str, esc);
		start = i + 1;
	}
	str_append_data(str, data + start, len - start);
	if (!ext_fits(parser, 0))
		parser->ext_overflow = TRUE;
}

static void ext_append(struct dmarc_parser *parser, const char *text)
{
	if (parser->ext_overflow)
		return;
	str_append(parser->ext, text);
	if (!ext_fits(parser, 0))
		parser->ext_overflow = TRUE;
}

static void ext_append_qname(struct dmarc_parser *parser,
			     const xmlChar *prefix, const xmlChar *name)
{
	if (prefix != NULL) {
		ext_append(parser, (const char *)prefix);
		ext_append(parser, ":");
	}
	ext_append(parser, (const char *)name);
}

static void
ext_start_tag(struct dmarc_parser *parser, const xmlChar *localname,
	      const xmlChar *prefix, int nb_namespaces,
	      const xmlChar **namespaces, int nb_attributes,
	      const xmlChar **attributes)
{
	int i;

	ext_append(parser, "<");
	ext_append_qname(parser, prefix, localname);
	for (i = 0; i < nb_namespaces; i++) {
		ext_append(parser, namespaces[i*2] == NULL ? " xmlns" :
			   " xmlns:");
		if (namespaces[i*2] != NULL)
			ext_append(parser, (const char *)namespaces[i*2]);
		ext_append(parser, "=\"");
		if (namespaces[i*2+1] != NULL) {
			ext_append_escaped(parser,
				(const char *)namespaces[i*2+1],
				strlen((const char *)namespaces[i*2+1]), TRUE);
		}
		ext_append(parser, "\"");
	}
	for (i = 0; i < nb_attributes; i++) {
		const xmlChar **attr = attributes + i*5;

		ext_append(parser, " ");
		ext_append_qname(parser, attr[1], attr[0]);
		ext_append(parser, "=\"");
		ext_append_escaped(parser, (const char *)attr[3],
				   attr[4] - attr[3], TRUE);
		ext_append(parser, "\"");
	}
	ext_append(parser, ">");
}

static bool stack_has_record(struct dmarc_parser *parser)
{
	enum elem id;

	array_foreach_elem(&parser->stack, id) {
		if (id == E_RECORD)
			return TRUE;
	}
	return FALSE;
}

/* The fragment is complete: add it to its record or to the report, or
   drop it when it does not fit. */
static void ext_finish(struct dmarc_parser *parser)
{
	struct dmarc_record *record = &parser->cur->record;
	unsigned int max = parser->limits.max_value_length;

	if (parser->ext_overflow ||
	    ext_level_len(parser) + str_len(parser->ext) > max) {
		parser->n_extensions_dropped++;
	} else if (parser->ext_in_record) {
		record->extensions = p_strconcat(parser->cur->pool,
			record->extensions == NULL ? "" : record->extensions,
			str_c(parser->ext), NULL);
		parser->record_ext_len += str_len(parser->ext);
	} else {
		str_append_str(parser->report_ext, parser->ext);
	}
	str_truncate(parser->ext, 0);
	parser->ext_overflow = FALSE;
}

static bool is_blank(const xmlChar *text, int len)
{
	int i;

	for (i = 0; i < len; i++) {
		if (!is_xml_space(text[i]))
			return FALSE;
	}
	return TRUE;
}

/* Whitespace right after a tag is the document's indentation: not kept
   (it would be all line breaks as &#10;). Text with words is kept whole. */
static bool ext_after_tag(struct dmarc_parser *parser)
{
	size_t len = str_len(parser->ext);

	return len > 0 && str_data(parser->ext)[len - 1] == '>';
}

static void
sax_start_element(void *context, const xmlChar *localname,
		  const xmlChar *prefix, const xmlChar *uri,
		  int nb_namespaces, const xmlChar **namespaces,
		  int nb_attributes, int nb_defaulted ATTR_UNUSED,
		  const xmlChar **attributes)
{
	struct dmarc_parser *parser = context;
	enum elem parent = stack_top(parser);
	unsigned int depth = array_count(&parser->stack);

	if (xmlDictSize(parser->ctxt->dict) > PARSE_MAX_NAMES) {
		parser_step_done(parser, parser_fail(parser,
			"more than %u distinct XML names", PARSE_MAX_NAMES));
		return;
	}
	parser_step_done(parser, parser_element_start(parser, localname, uri));
	if (parser->error != NULL || array_count(&parser->stack) == depth ||
	    stack_top(parser) != E_UNKNOWN)
		return;
	if (parser->ext_depth == 0) {
		/* the top of an unknown subtree, not a known element
		   ignored (parent E_UNKNOWN) */
		if (parent == E_UNKNOWN)
			return;
		parser->ext_in_record = stack_has_record(parser);
		/* the level is full: count it, copy nothing (a document
		   of a billion <a/>s costs no more than before) */
		if (ext_level_len(parser) >= parser->limits.max_value_length)
			parser->ext_overflow = TRUE;
	}
	parser->ext_depth++;
	ext_start_tag(parser, localname, prefix, nb_namespaces, namespaces,
		      nb_attributes, attributes);
}

static void
sax_end_element(void *context, const xmlChar *localname,
		const xmlChar *prefix, const xmlChar *uri ATTR_UNUSED)
{
	struct dmarc_parser *parser = context;
	enum elem id = stack_top(parser);

	array_pop_back(&parser->stack);
	if (id != E_UNKNOWN)
		parser_step_done(parser, element_end(parser, id, elem_is_leaf(id)));
	else if (parser->ext_depth > 0) {
		ext_append(parser, "</");
		ext_append_qname(parser, prefix, localname);
		ext_append(parser, ">");
		if (--parser->ext_depth == 0)
			ext_finish(parser);
	}
}

static void sax_characters(void *context, const xmlChar *text, int len)
{
	struct dmarc_parser *parser = context;
	enum elem id = stack_top(parser);

	if (elem_is_leaf(id))
		text_append(parser, id, (const char *)text, len);
	else if (parser->ext_depth > 0 &&
		 !(ext_after_tag(parser) && is_blank(text, len)))
		ext_append_escaped(parser, (const char *)text, len, FALSE);
}

static void
sax_internal_subset(void *context, const xmlChar *name ATTR_UNUSED,
		    const xmlChar *external_id ATTR_UNUSED,
		    const xmlChar *system_id ATTR_UNUSED)
{
	/* the filter refuses these already */
	parser_step_done(context, parser_fail(context, "DOCTYPE not allowed"));
}

static void sax_reference(void *context, const xmlChar *name ATTR_UNUSED)
{
	parser_step_done(context, parser_fail(context, "entity references "
					      "not allowed"));
}

static xmlSAXHandler parser_sax = {
	.initialized = XML_SAX2_MAGIC,
	.startElementNs = sax_start_element,
	.endElementNs = sax_end_element,
	.characters = sax_characters,
	.ignorableWhitespace = sax_characters,
	.cdataBlock = sax_characters,
	.internalSubset = sax_internal_subset,
	.reference = sax_reference,
	.serror = parser_xml_structured_error,
};

/* --- feeding libxml2 --- */

/* Give libxml2 the next chunk of filtered input, or the end. Returns -1
   with parser->error set when the document cannot go on. */
static int parser_feed(struct dmarc_parser *parser)
{
	const unsigned char *data;
	const char *error;
	size_t size;
	int ret;

	ret = dmarc_xml_filter_read(parser->filter, PARSE_CHUNK_SIZE,
				    &data, &size, &error);
	if (ret < 0) {
		parser->error = error;
		return -1;
	}
	if (ret == 0) {
		parser->xml_terminated = TRUE;
		ret = xmlParseChunk(parser->ctxt, NULL, 0, 1);
	} else {
		ret = xmlParseChunk(parser->ctxt, (const char *)data, size, 0);
	}
	if (parser->error != NULL)
		return -1;	/* a callback failed */
	if (parser->xml_terminated && !parser->end_seen) {
		if (!dmarc_xml_filter_root_closed(parser->filter)) {
			/* libxml2's push parser calls this "Extra content at
			   the end of the document" */
			(void)parser_fail(parser, "the report is truncated: "
				"premature end of data before </feedback>");
		} else {
			parser->error = parser->xml_error != NULL ?
				parser->xml_error :
				"document ended before </feedback>";
		}
		return -1;
	}
	if (ret != 0 && !parser->end_seen) {
		parser->error = parser->xml_error != NULL ?
			parser->xml_error : "XML parse error";
		return -1;
	}
	return 0;
}

/* Parse until the header is complete (want_header), or a record is
   queued, or the report ended. */
static enum step_result parser_run(struct dmarc_parser *parser,
				   bool want_header)
{
	for (;;) {
		if (want_header ? parser->header_done :
		    parser->queue_head < parser->queue_tail)
			return want_header ? STEP_HEADER_DONE : STEP_RECORD_DONE;
		if (parser->error != NULL)
			return STEP_ERROR;
		if (parser->end_seen) {
			/* </feedback> before any record fails in
			   element_end(); so this is after the header */
			return STEP_END;
		}
		if (!want_header)
			record_queue_reset(parser);
		/* on failure parser->error is set: what the chunk completed
		   before it is still handed out first */
		(void)parser_feed(parser);
	}
}

struct dmarc_parser *
dmarc_parser_init(struct istream *input, const struct dmarc_limits *limits)
{
	struct dmarc_parser *parser;
	pool_t pool;

	/* the settings take only positive numbers: every bound holds */
	i_assert(limits->max_records > 0 && limits->max_value_length > 0);
	xmlInitParser();
	parse_tables_init();
	pool = pool_alloconly_create("dmarc parser", 4096);
	parser = p_new(pool, struct dmarc_parser, 1);
	parser->pool = pool;
	parser->limits = *limits;
	parser->filter = dmarc_xml_filter_init(input, limits->max_xml_depth);
	parser->text = str_new(default_pool, 256);
	i_array_init(&parser->stack, 16);
	i_array_init(&parser->slots, 4);
	parser->cur = record_slot_new();
	array_push_back(&parser->slots, &parser->cur);
	p_array_init(&parser->report.errors, pool, 2);
	p_array_init(&parser->warnings, pool, 4);
	p_array_init(&parser->anomalies, pool, 4);
	parser->ext = str_new(default_pool, 128);
	parser->report_ext = str_new(default_pool, 128);
	parser->report.policy.pct = DMARC_UNSET;
	return parser;
}

void dmarc_parser_set_charset(struct dmarc_parser *parser,
			      const char *charset)
{
	dmarc_xml_filter_set_charset(parser->filter, charset);
}

void dmarc_parser_deinit(struct dmarc_parser **_parser)
{
	struct dmarc_parser *parser = *_parser;
	struct generic_error_save save;
	struct record_slot *slot;

	*_parser = NULL;
	if (parser == NULL)
		return;
	if (parser->ctxt != NULL) {
		generic_error_push(parser, &save);
		xmlFreeParserCtxt(parser->ctxt);
		generic_error_pop(&save);
	}
	array_foreach_elem(&parser->slots, slot)
		record_slot_free(&slot);
	array_free(&parser->slots);
	array_free(&parser->stack);
	str_free(&parser->text);
	str_free(&parser->ext);
	str_free(&parser->report_ext);
	dmarc_xml_filter_deinit(&parser->filter);
	pool_unref(&parser->pool);
}

static int parser_open(struct dmarc_parser *parser)
{
	xmlCharEncodingHandlerPtr handler;
	const char *error, *forced_encoding;
	unsigned int i;

	/* Look at the start before libxml2 does: an empty or non-XML
	   input gets a plain reason. */
	if (dmarc_xml_filter_fill(parser->filter, &error) < 0) {
		parser->error = error;
		return -1;
	}
	forced_encoding = dmarc_xml_filter_get_forced_encoding(parser->filter,
							       &handler);
	parser->ctxt = xmlCreatePushParserCtxt(&parser_sax, parser,
					       NULL, 0, NULL);
	if (parser->ctxt == NULL) {
		if (handler != NULL)
			(void)xmlCharEncCloseFunc(handler);
		parser->error = parser->xml_error != NULL ?
			parser->xml_error : "cannot create an XML parser";
		return -1;
	}
	if (handler != NULL) {
		/* the context owns it now, even when switching fails */
		if (xmlSwitchToEncoding(parser->ctxt, handler) < 0) {
			parser->error = p_strdup_printf(parser->pool,
				"unsupported charset \"%s\"",
				str_sanitize(forced_encoding, 40));
			return -1;
		}
	}
	/* NONET and no NOENT/DTDLOAD/DTDATTR: nothing is ever fetched or
	   expanded (the filter refuses DTDs anyway). IGNORE_ENC when the
	   MIME charset decided the encoding. */
	(void)xmlCtxtUseOptions(parser->ctxt, XML_PARSE_NONET |
		XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOBLANKS |
		XML_PARSE_NOCDATA | XML_PARSE_COMPACT | XML_PARSE_BIG_LINES |
		(forced_encoding != NULL ? XML_PARSE_IGNORE_ENC : 0));
	/* names are interned in the parser's dictionary: element names
	   are then compared as pointers */
	for (i = 0; i < ELEM_DEF_COUNT; i++) {
		parser->names[i] = xmlDictLookup(parser->ctxt->dict,
			(const xmlChar *)elem_defs[i].name, -1);
	}
	return 0;
}

int dmarc_parser_read_header(struct dmarc_parser *parser,
			     const struct dmarc_report **report_r,
			     const char **error_r)
{
	struct generic_error_save save;
	enum step_result ret;

	i_assert(parser->ctxt == NULL && parser->error == NULL);

	generic_error_push(parser, &save);
	if (parser_open(parser) < 0)
		ret = STEP_ERROR;
	else T_BEGIN {
		ret = parser_run(parser, TRUE);
	} T_END;
	generic_error_pop(&save);

	if (ret == STEP_ERROR) {
		*error_r = parser->error;
		return -1;
	}
	i_assert(ret == STEP_HEADER_DONE);
	*report_r = &parser->report;
	return 0;
}

int dmarc_parser_next_record(struct dmarc_parser *parser,
			     const struct dmarc_record **record_r,
			     const char **error_r)
{
	struct generic_error_save save;
	struct record_slot *slot;
	enum step_result ret;

	i_assert(parser->header_done);
	if (parser->finished)
		return 0;

	generic_error_push(parser, &save);
	T_BEGIN {
		ret = parser_run(parser, FALSE);
	} T_END;
	generic_error_pop(&save);

	switch (ret) {
	case STEP_RECORD_DONE:
		slot = array_idx_elem(&parser->slots, parser->queue_head++);
		*record_r = &slot->record;
		return 1;
	case STEP_END:
		parser->finished = TRUE;
		/* report-level extensions may follow the records */
		if (str_len(parser->report_ext) > 0) {
			parser->report.extensions = p_strdup(parser->pool,
				str_c(parser->report_ext));
		}
		return 0;
	case STEP_ERROR:
		*error_r = parser->error;
		return -1;
	default:
		i_unreached();
	}
}

const char *dmarc_format_name(enum dmarc_format format)
{
	switch (format) {
	case DMARC_FORMAT_RFC7489:
		return "rfc7489";
	case DMARC_FORMAT_RFC9990:
		return "rfc9990";
	case DMARC_FORMAT_DRAFT:
		return "draft";
	}
	i_unreached();
}

const char *const *dmarc_parser_get_anomalies(struct dmarc_parser *parser)
{
	ARRAY_TYPE(const_string) anomalies;
	const char *msg;

	p_array_init(&anomalies, parser->pool,
		     array_count(&parser->anomalies) + 4);
	array_append_array(&anomalies, &parser->anomalies);
	if (parser->n_invalid_sources > 0) {
		msg = p_strdup_printf(parser->pool, "%u records with a source_ip "
			"that is not an IP address, kept as reported and marked "
			"invalid (first: %s)", parser->n_invalid_sources,
			parser->first_invalid_source);
		array_push_back(&anomalies, &msg);
	}
	if (parser->n_records_skipped > 0) {
		msg = p_strdup_printf(parser->pool, "%u records not stored "
			"(first: %s)", parser->n_records_skipped,
			parser->first_skip_reason);
		array_push_back(&anomalies, &msg);
	}
	if (parser->n_values_unknown > 1) {
		msg = p_strdup_printf(parser->pool, "%u policy_evaluated values "
			"in all were not ones we know, stored as absent",
			parser->n_values_unknown);
		array_push_back(&anomalies, &msg);
	}
	if (parser->n_values_cut > 0) {
		/* the archive keeps the whole value */
		msg = p_strdup_printf(parser->pool, "cut %u values to %u bytes "
			"(dmarcreport_max_value_length)", parser->n_values_cut,
			parser->limits.max_value_length);
		array_push_back(&anomalies, &msg);
	}
	if (parser->n_extensions_dropped > 0) {
		msg = p_strdup_printf(parser->pool, "%u extensions or unknown "
			"elements not kept: longer than %u bytes together "
			"(dmarcreport_max_value_length)",
			parser->n_extensions_dropped,
			parser->limits.max_value_length);
		array_push_back(&anomalies, &msg);
	}
	array_append_zero(&anomalies);
	return array_front(&anomalies);
}

const char *const *dmarc_parser_get_warnings(struct dmarc_parser *parser)
{
	ARRAY_TYPE(const_string) warnings;
	const char *msg;

	p_array_init(&warnings, parser->pool,
		     array_count(&parser->warnings) + 8);
	array_append_array(&warnings, &parser->warnings);
	dmarc_xml_filter_get_warnings(parser->filter, parser->pool, &warnings);
#define ADD(fmt, ...) STMT_START { \
	msg = p_strdup_printf(parser->pool, fmt, __VA_ARGS__); \
	array_push_back(&warnings, &msg); } STMT_END
	if (parser->n_controls_replaced > 0)
		ADD("replaced %u control characters in values (line breaks "
		    "and tabs with spaces, others with U+FFFD)",
		    parser->n_controls_replaced);
#undef ADD
	array_append_zero(&warnings);
	return array_front(&warnings);
}
