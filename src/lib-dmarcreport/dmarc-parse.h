#ifndef DMARC_PARSE_H
#define DMARC_PARSE_H

/* XML stream -> one report, pulled record by record, with libxml2's
   SAX2 push parser (no DOM): the memory used does not grow with the
   number of records. Safe options only: no network, no DTD loading, no
   entity substitution. Accepts RFC 7489 and RFC 9990 reports (with or
   without the urn:ietf:params:xml:ns:dmarc-2.0 namespace) and recovers
   from the common real-world breakage where the data stays unambiguous. */

#include "dmarc-report.h"

struct istream;
struct dmarc_limits;
struct dmarc_parser;

/* The values the parser stores for a record's policy_evaluated, lower-case
   and NULL-terminated: its disposition, and its dkim and spf results. */
extern const char *const *const dmarc_parse_disposition_values;
extern const char *const *const dmarc_parse_result_values;

/* Parse the document read from input (referenced until deinit; blocking:
   memory, a file, an unpacked document). A read error of input ends the
   parse with i_stream_get_error()'s text as the error. */
struct dmarc_parser *
dmarc_parser_init(struct istream *input, const struct dmarc_limits *limits);
void dmarc_parser_deinit(struct dmarc_parser **parser);

/* The charset the transport declared for the document (the MIME charset
   of a text/xml part), before anything is read. RFC 7303 3.2: it decides
   the encoding over the XML declaration (a BOM still wins). */
void dmarc_parser_set_charset(struct dmarc_parser *parser,
			      const char *charset);

/* Read up to the first <record>: report_metadata and policy_published.
   Returns 0 and the report (valid until deinit), or -1 when this is not an
   aggregate report or it lacks what identifies it (report_id, policy
   domain, date range). */
int dmarc_parser_read_header(struct dmarc_parser *parser,
			     const struct dmarc_report **report_r,
			     const char **error_r);

/* Next record: 1 = *record_r is valid until the next call, 0 = the report
   ended cleanly (at least one record was seen), -1 = error (broken XML
   past recovery, a limit, a bad value, or a report without records). */
int dmarc_parser_next_record(struct dmarc_parser *parser,
			     const struct dmarc_record **record_r,
			     const char **error_r);

/* What the report says that is wrong but was kept as reported (pct out
   of range, begin after end, records with an invalid source_ip), cut
   (values past dmarcreport_max_value_length, extensions that did not
   fit) or cost one record (a record without a count): for one warning
   each, once the report ended. NULL-terminated. */
const char *const *dmarc_parser_get_anomalies(struct dmarc_parser *parser);

/* Non-fatal findings so far (recovered XML, repaired UTF-8, controls
   replaced), for a debug log line. NULL-terminated. */
const char *const *dmarc_parser_get_warnings(struct dmarc_parser *parser);

#endif
