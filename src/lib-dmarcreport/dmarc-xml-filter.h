#ifndef DMARC_XML_FILTER_H
#define DMARC_XML_FILTER_H

/* The byte filter between a report's bytes and libxml2: it refuses DTDs
   and non-XML input, and repairs the real-world breakage of aggregate
   reports that leaves the data unambiguous (invalid UTF-8, a stray '<' or
   '&', a wrapper start tag before <feedback>, whitespace before the XML
   declaration, data after the root). It also bounds the nesting depth.
   A function over an istream: it reads the document's stream and hands
   out filtered blocks for libxml2's push parser. */

#include "dmarc-parse.h"
#include <libxml/encoding.h>

struct dmarc_xml_filter;

/* Filter the bytes of input (referenced; blocking: memory, a file, an
   unpacked document). A read error of input fails the filter with
   i_stream_get_error()'s text. max_depth (> 0, a setting's positive
   number): elements nested deeper fail. */
struct dmarc_xml_filter *
dmarc_xml_filter_init(struct istream *input, unsigned int max_depth);
void dmarc_xml_filter_deinit(struct dmarc_xml_filter **filter);

/* The charset the transport declared (see dmarc_parser_set_charset()),
   before anything is read. */
void dmarc_xml_filter_set_charset(struct dmarc_xml_filter *filter,
				  const char *charset);
/* After the first fill: the encoding the MIME charset imposes over the
   XML declaration, or NULL; *handler_r is its converter for libxml2
   (NULL for UTF-8), which the caller then owns. */
const char *
dmarc_xml_filter_get_forced_encoding(struct dmarc_xml_filter *filter,
				     xmlCharEncodingHandlerPtr *handler_r);

/* Produce more filtered output (the first call also checks the start of
   the document: BOM, encoding, '<'). Returns 0, or -1 with *error_r. */
int dmarc_xml_filter_fill(struct dmarc_xml_filter *filter,
			  const char **error_r);

/* The next filtered bytes, at most max_size of them: 1 = *data_r and
   *size_r are valid until the next call, 0 = the document ended, -1 =
   error (*error_r says why). */
int dmarc_xml_filter_read(struct dmarc_xml_filter *filter, size_t max_size,
			  const unsigned char **data_r, size_t *size_r,
			  const char **error_r);

/* Whether the root element's end tag was seen (else a document that
   ends is cut short). */
bool dmarc_xml_filter_root_closed(struct dmarc_xml_filter *filter);

/* What was repaired so far, appended to warnings (allocated from pool). */
void dmarc_xml_filter_get_warnings(struct dmarc_xml_filter *filter,
				   pool_t pool,
				   ARRAY_TYPE(const_string) *warnings);

#endif
