/* The byte filter in front of libxml2 (see dmarc-xml-filter.h). Stage 1
   replaces bytes that are not valid UTF-8 (or not allowed in XML) with
   U+FFFD when the document is UTF-8. Stage 2 is a small lexer that knows
   just enough XML to refuse DTDs, escape a '<' or '&' that cannot start
   markup, drop a stray wrapper start tag before <feedback>, bound the
   nesting depth, and stop after </feedback>. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "str-sanitize.h"
#include "istream.h"
#include "dmarc-xml-filter.h"

#include <stdarg.h>
#include <libxml/encoding.h>

/* Bytes taken from the document's stream at a time. */
#define PARSE_READ_BLOCK_SIZE 16384
#define FILTER_INITIAL_BUFFER_SIZE 4096
/* The filter must see a whole tag to judge it; a real DMARC tag is a few
   hundred bytes at most, so a longer one is hostile. */
#define PARSE_MAX_TAG_LENGTH 65536
/* Longest entity or character reference the filter looks at
   ("&#x10FFFF;" is 10). */
#define PARSE_MAX_REF_LENGTH 12
/* Leading whitespace before the first '<' that we skip. */
#define PARSE_MAX_LEADING_SPACE 65536
/* libxml2 checks an element's attributes against each other and against
   the namespaces in scope on every start tag: both are kept small. Real
   reports put two or three attributes on <feedback> and declare one or
   two namespaces in the whole document. */
#define PARSE_MAX_ATTRIBUTES 32
#define PARSE_MAX_NAMESPACE_DECLS 64
/* bytes of a bad value quoted in an error message */
#define PARSE_ERROR_VALUE_MAX 64

enum lex_state {
	LEX_TEXT,
	LEX_COMMENT,
	LEX_CDATA,
	LEX_PI,
};

struct dmarc_xml_filter {
	pool_t pool;		/* error, root name, warnings */
	unsigned int max_depth;

	/* the document's bytes */
	struct istream *input;

	buffer_t *raw;		/* read but not yet UTF-8 checked */
	buffer_t *clean;	/* UTF-8 checked, not yet lexed */
	size_t clean_pos;
	buffer_t *out;		/* lexed, not yet handed out */
	size_t out_pos;
	enum lex_state lex_state;
	unsigned int lex_match;
	unsigned int lex_depth;
	const char *error;
	const char *root_name;
	/* the transport's charset (MIME), or NULL */
	const char *mime_charset;
	/* set when the MIME charset, not the XML declaration, decides the
	   encoding; the converter until the parser takes it */
	const char *forced_encoding;
	xmlCharEncodingHandlerPtr forced_handler;
	unsigned int n_utf8_repaired, n_lt_escaped, n_amp_escaped;
	unsigned int n_charref_repaired;
	unsigned int n_namespace_decls;
	ARRAY_TYPE(const_string) warnings;

	bool input_eof:1;
	bool prefetched:1;
	bool utf8_mode:1;
	bool root_seen:1;
	bool root_closed:1;
	bool done:1;
	bool wrapper_removed:1;
	bool leading_space_removed:1;
	bool trailing_data_ignored:1;
};

static void ATTR_FORMAT(2, 3)
filter_warning(struct dmarc_xml_filter *filter, const char *fmt, ...)
{
	const char *msg;
	va_list args;

	va_start(args, fmt);
	msg = p_strdup_vprintf(filter->pool, fmt, args);
	va_end(args);
	array_push_back(&filter->warnings, &msg);
}

static const unsigned char utf8_replacement[] = { 0xef, 0xbf, 0xbd };

static inline bool is_xml_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Byte classes of the filter's hot loops, filled by
   parse_tables_init(). */
#define BYTE_NAME_START 0x01
#define BYTE_NAME_CHAR 0x02
#define BYTE_PLAIN 0x04	/* valid as it is: printable ASCII, TAB, LF, CR */
static unsigned char byte_class[256];

static inline bool is_name_start(unsigned char c)
{
	return (byte_class[c] & BYTE_NAME_START) != 0;
}

static inline bool is_name_char(unsigned char c)
{
	return (byte_class[c] & BYTE_NAME_CHAR) != 0;
}

static void byte_class_init(void)
{
	static bool initialized = FALSE;
	unsigned int c;

	if (initialized)
		return;
	initialized = TRUE;
	for (c = 0; c < 256; c++) {
		bool start = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			c == '_' || c == ':' || c >= 0x80;
		bool name = start || (c >= '0' && c <= '9') ||
			c == '-' || c == '.';
		bool plain = (c >= 0x20 && c < 0x80) ||
			c == '\t' || c == '\n' || c == '\r';

		byte_class[c] = (start ? BYTE_NAME_START : 0) |
			(name ? BYTE_NAME_CHAR : 0) | (plain ? BYTE_PLAIN : 0);
	}
}

/* Length of the run of BYTE_PLAIN bytes at data, 8 at a time while
   there are no line breaks or tabs. */
static size_t plain_run_length(const unsigned char *data, size_t size)
{
	const uint64_t high = 0x8080808080808080ULL;
	const uint64_t below_space = 0x2020202020202020ULL;
	size_t pos = 0;
	uint64_t word;

	for (;;) {
		while (pos + sizeof(word) <= size) {
			memcpy(&word, data + pos, sizeof(word));
			/* no byte >= 0x80 and none < 0x20 */
			if (((word | ((word - below_space) & ~word)) & high) != 0)
				break;
			pos += sizeof(word);
		}
		if (pos < size && (byte_class[data[pos]] & BYTE_PLAIN) != 0) {
			pos++;
			continue;
		}
		return pos;
	}
}

static bool is_xml_char(uint32_t chr)
{
	/* XML 1.0 section 2.2 */
	return chr == 0x9 || chr == 0xa || chr == 0xd ||
		(chr >= 0x20 && chr <= 0xd7ff) ||
		(chr >= 0xe000 && chr <= 0xfffd) ||
		(chr >= 0x10000 && chr <= 0x10ffff);
}

/* Length of the valid UTF-8 sequence at data (1..4), 0 when it is
   invalid, -1 when it is cut short by the end of the data. */
static int utf8_seq_length(const unsigned char *data, size_t size)
{
	unsigned char c = data[0];
	unsigned char lo = 0x80, hi = 0xbf;
	unsigned int len, i;
	uint32_t chr;

	if (c < 0x80)
		return is_xml_char(c) ? 1 : 0;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2; chr = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3; chr = c & 0x0f;
		if (c == 0xe0) lo = 0xa0;
		else if (c == 0xed) hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4; chr = c & 0x07;
		if (c == 0xf0) lo = 0x90;
		else if (c == 0xf4) hi = 0x8f;
	} else {
		return 0;
	}
	for (i = 1; i < len; i++) {
		if (i >= size)
			return -1;
		if (data[i] < lo || data[i] > hi)
			return 0;
		lo = 0x80; hi = 0xbf;
		chr = (chr << 6) | (data[i] & 0x3f);
	}
	return is_xml_char(chr) ? (int)len : 0;
}

/* Stage 1: filter->raw -> filter->clean. */
static void filter_utf8(struct dmarc_xml_filter *filter)
{
	const unsigned char *data = filter->raw->data;
	size_t size = filter->raw->used, pos = 0, start;
	int len;

	if (!filter->utf8_mode) {
		/* An ASCII-compatible 8-bit charset: every byte is a
		   character, and only C0 controls other than TAB, LF and CR
		   are not allowed in XML. U+FFFD has no byte here: write it
		   as a character reference. */
		while (pos < size) {
			start = pos;
			while (pos < size && (data[pos] >= 0x20 ||
					      is_xml_space(data[pos])))
				pos++;
			buffer_append(filter->clean, data + start, pos - start);
			if (pos == size)
				break;
			buffer_append(filter->clean, "&#xFFFD;", 8);
			filter->n_utf8_repaired++;
			pos++;
		}
		buffer_set_used_size(filter->raw, 0);
		return;
	}
	while (pos < size) {
		/* the common case: a run of plain ASCII */
		start = pos;
		pos += plain_run_length(data + pos, size - pos);
		buffer_append(filter->clean, data + start, pos - start);
		if (pos == size)
			break;
		len = utf8_seq_length(data + pos, size - pos);
		if (len < 0 && !filter->input_eof)
			break;	/* completed by the next read */
		if (len <= 0) {
			buffer_append(filter->clean, utf8_replacement,
				      sizeof(utf8_replacement));
			filter->n_utf8_repaired++;
			pos++;
		} else {
			buffer_append(filter->clean, data + pos, len);
			pos += len;
		}
	}
	buffer_delete(filter->raw, 0, pos);
}

static void ATTR_FORMAT(2, 3)
filter_fail(struct dmarc_xml_filter *filter, const char *fmt, ...)
{
	va_list args;

	if (filter->error != NULL)
		return;
	va_start(args, fmt);
	filter->error = p_strdup_vprintf(filter->pool, fmt, args);
	va_end(args);
}

/* Judge the reference at data[0] == '&'. Returns the number of bytes to
   copy as they are, 0 when more input is needed, or -1 after writing a
   replacement (and *skip_r is the number of input bytes it replaces). */
static int lex_reference(struct dmarc_xml_filter *filter, const unsigned char *data,
			 size_t size, bool eof, buffer_t *dest, size_t *skip_r)
{
	static const char *const predefined[] = {
		"lt", "gt", "amp", "quot", "apos", NULL
	};
	size_t i = 1, name_start;
	uint32_t chr = 0;
	bool hex = FALSE, valid = FALSE;

	if (i < size && data[i] == '#') {
		i++;
		if (i < size && data[i] == 'x') {
			hex = TRUE;
			i++;
		}
		name_start = i;
		for (; i < size && i < PARSE_MAX_REF_LENGTH; i++) {
			unsigned char c = data[i];
			unsigned int digit;

			if (c >= '0' && c <= '9')
				digit = c - '0';
			else if (hex && c >= 'a' && c <= 'f')
				digit = c - 'a' + 10;
			else if (hex && c >= 'A' && c <= 'F')
				digit = c - 'A' + 10;
			else
				break;
			chr = chr * (hex ? 16 : 10) + digit;
		}
		if (i == size && i < PARSE_MAX_REF_LENGTH && !eof)
			return 0;
		if (i < size && data[i] == ';' && i > name_start) {
			if (is_xml_char(chr))
				return i + 1;
			/* a character XML does not allow, e.g. &#0; */
			buffer_append(dest, "&#xFFFD;", 8);
			filter->n_charref_repaired++;
			*skip_r = i + 1;
			return -1;
		}
	} else {
		name_start = i;
		while (i < size && i < PARSE_MAX_REF_LENGTH &&
		       is_name_char(data[i]))
			i++;
		if (i == size && i < PARSE_MAX_REF_LENGTH && !eof)
			return 0;
		if (i < size && data[i] == ';' && i > name_start) {
			unsigned int j;

			for (j = 0; predefined[j] != NULL; j++) {
				if (strlen(predefined[j]) == i - name_start &&
				    memcmp(predefined[j], data + name_start,
					   i - name_start) == 0)
					valid = TRUE;
			}
			if (valid)
				return i + 1;
		}
	}
	/* A bare '&' (AT&T) or an entity no DTD defines (we allow none):
	   keep it as text. */
	buffer_append(dest, "&amp;", 5);
	filter->n_amp_escaped++;
	*skip_r = 1;
	return -1;
}

/* Scan the tag at data[0] == '<' (data[1] is a name start or '/').
   Returns its length, 0 when more input is needed, -1 when it is not a
   well-formed tag. */
static ssize_t lex_scan_tag(const unsigned char *data, size_t size, bool eof,
			    bool *is_end_r, bool *is_empty_r, size_t *name_len_r,
			    unsigned int *attributes_r,
			    unsigned int *namespace_decls_r)
{
	size_t i = 1, limit = I_MIN(size, PARSE_MAX_TAG_LENGTH), attr_start;
	unsigned char quote;

	*is_end_r = FALSE;
	*is_empty_r = FALSE;
	*attributes_r = 0;
	*namespace_decls_r = 0;
	if (data[i] == '/') {
		*is_end_r = TRUE;
		i++;
	}
	if (i >= limit)
		goto more;
	if (!is_name_start(data[i]))
		return -1;
	while (i < limit && is_name_char(data[i]))
		i++;
	*name_len_r = i - 1 - (*is_end_r ? 1 : 0);
	for (;;) {
		bool had_space = FALSE;

		while (i < limit && is_xml_space(data[i])) {
			had_space = TRUE;
			i++;
		}
		if (i >= limit)
			goto more;
		if (data[i] == '>')
			return i + 1;
		if (*is_end_r)
			return -1;
		if (data[i] == '/') {
			if (i + 1 >= limit)
				goto more;
			if (data[i + 1] != '>')
				return -1;
			*is_empty_r = TRUE;
			return i + 2;
		}
		/* attribute: name S? '=' S? quoted value */
		if (!had_space || !is_name_start(data[i]))
			return -1;
		attr_start = i;
		while (i < limit && is_name_char(data[i]))
			i++;
		(*attributes_r)++;
		/* "xmlns" or "xmlns:prefix" */
		if (i - attr_start >= 5 &&
		    memcmp(data + attr_start, "xmlns", 5) == 0 &&
		    (i - attr_start == 5 || data[attr_start + 5] == ':'))
			(*namespace_decls_r)++;
		while (i < limit && is_xml_space(data[i]))
			i++;
		if (i >= limit)
			goto more;
		if (data[i] != '=')
			return -1;
		i++;
		while (i < limit && is_xml_space(data[i]))
			i++;
		if (i >= limit)
			goto more;
		if (data[i] != '"' && data[i] != '\'')
			return -1;
		quote = data[i++];
		while (i < limit && data[i] != quote)
			i++;
		if (i >= limit)
			goto more;
		i++;
		if (i >= limit)
			goto more;
		if (!is_xml_space(data[i]) && data[i] != '>' && data[i] != '/')
			return -1;
	}
more:
	if (size >= PARSE_MAX_TAG_LENGTH)
		return -2;
	return eof ? -1 : 0;
}

/* Copy a scanned tag, making attribute values well-formed. */
static void lex_copy_tag(struct dmarc_xml_filter *filter,
			 const unsigned char *data, size_t len)
{
	unsigned char quote = 0;
	size_t i, skip;
	int ret;

	/* the common case: nothing to repair */
	if (memchr(data + 1, '<', len - 1) == NULL &&
	    memchr(data, '&', len) == NULL) {
		buffer_append(filter->out, data, len);
		return;
	}
	for (i = 0; i < len; ) {
		unsigned char c = data[i];

		if (quote == 0) {
			if (c == '"' || c == '\'')
				quote = c;
		} else if (c == quote) {
			quote = 0;
		} else if (c == '<') {
			buffer_append(filter->out, "&lt;", 4);
			filter->n_lt_escaped++;
			i++;
			continue;
		} else if (c == '&') {
			/* the tag is complete: no more input can be needed */
			ret = lex_reference(filter, data + i, len - i, TRUE,
					    filter->out, &skip);
			if (ret > 0) {
				buffer_append(filter->out, data + i, ret);
				i += ret;
			} else {
				i += skip;
			}
			continue;
		}
		buffer_append_c(filter->out, c);
		i++;
	}
}

/* A well-formed start or end tag was found: track the root and depth.
   Returns FALSE on error. */
static bool
lex_tag(struct dmarc_xml_filter *filter, const unsigned char *data, size_t len,
	bool is_end, bool is_empty, size_t name_len, unsigned int attributes,
	unsigned int namespace_decls)
{
	const unsigned char *name = data + (is_end ? 2 : 1), *p;
	const char *local;
	size_t i;

	if (is_end) {
		if (filter->lex_depth > 0 && --filter->lex_depth == 0)
			filter->root_closed = TRUE;
		lex_copy_tag(filter, data, len);
		return TRUE;
	}
	filter->n_namespace_decls += namespace_decls;
	if (filter->n_namespace_decls > PARSE_MAX_NAMESPACE_DECLS) {
		filter_fail(filter, "more than %u XML namespace declarations",
			    PARSE_MAX_NAMESPACE_DECLS);
		return FALSE;
	}
	if (attributes > PARSE_MAX_ATTRIBUTES) {
		filter_fail(filter, "more than %u attributes in one tag",
			    PARSE_MAX_ATTRIBUTES);
		return FALSE;
	}
	if (!filter->root_seen) {
		p = memchr(name, ':', name_len);
		p = p == NULL ? name : p + 1;
		local = t_strndup(p, name_len - (p - name));
		if (strcmp(local, "schema") == 0 && !is_empty &&
		    !filter->wrapper_removed) {
			/* parsedmarc's ikea.com sample: a stray, never closed
			   <xs:schema ...> start tag before <feedback>. Blank it,
			   keeping line numbers. */
			for (i = 0; i < len; i++) {
				buffer_append_c(filter->out,
						data[i] == '\n' ? '\n' : ' ');
			}
			filter->wrapper_removed = TRUE;
			filter_warning(filter, "ignored a stray <%s> start tag "
				       "before the root element",
				       str_sanitize(t_strndup(name, name_len),
						    PARSE_ERROR_VALUE_MAX));
			return TRUE;
		}
		filter->root_name = p_strdup(filter->pool,
			str_sanitize(t_strndup(name, name_len),
				     PARSE_ERROR_VALUE_MAX));
		if (strcmp(local, "feedback") != 0) {
			filter_fail(filter, "not a DMARC aggregate report "
				    "(root element <%s>)", filter->root_name);
			return FALSE;
		}
		filter->root_seen = TRUE;
	}
	if (is_empty) {
		if (filter->lex_depth == 0)
			filter->root_closed = TRUE;
	} else if (++filter->lex_depth > filter->max_depth) {
		filter_fail(filter, "XML nested deeper than %u elements "
			    "(dmarcreport_max_xml_depth)",
			    filter->max_depth);
		return FALSE;
	}
	lex_copy_tag(filter, data, len);
	return TRUE;
}

/* Judge the '<' at data[0] in text. Returns the input bytes consumed,
   0 when more input is needed, -1 on error. */
static ssize_t lex_markup(struct dmarc_xml_filter *filter,
			  const unsigned char *data, size_t size, bool eof)
{
	bool is_end, is_empty;
	size_t name_len = 0;
	unsigned int attributes, namespace_decls;
	ssize_t len;

	if (size < 2) {
		if (!eof)
			return 0;
		goto bogus;
	}
	switch (data[1]) {
	case '!':
		if (size < 9 && !eof)
			return 0;
		if (size >= 4 && memcmp(data, "<!--", 4) == 0) {
			buffer_append(filter->out, data, 4);
			filter->lex_state = LEX_COMMENT;
			filter->lex_match = 0;
			return 4;
		}
		if (size >= 9 && memcmp(data, "<![CDATA[", 9) == 0) {
			buffer_append(filter->out, data, 9);
			filter->lex_state = LEX_CDATA;
			filter->lex_match = 0;
			return 9;
		}
		if (size >= 9 && strncasecmp((const char *)data,
					     "<!DOCTYPE", 9) == 0) {
			/* No DTD ever: this is what stops entity expansion
			   bombs and external entities. */
			filter_fail(filter, "DOCTYPE not allowed");
			return -1;
		}
		if (size >= 3 && is_name_start(data[2])) {
			filter_fail(filter, "DOCTYPE not allowed "
				    "(markup declaration <!%s)",
				    str_sanitize(t_strndup(data + 2,
					I_MIN(size - 2, 16)), 16));
			return -1;
		}
		goto bogus;
	case '?':
		buffer_append(filter->out, data, 2);
		filter->lex_state = LEX_PI;
		filter->lex_match = 0;
		return 2;
	case '/':
		break;
	default:
		if (!is_name_start(data[1]))
			goto bogus;
		break;
	}
	len = lex_scan_tag(data, size, eof, &is_end, &is_empty, &name_len,
			   &attributes, &namespace_decls);
	if (len == 0)
		return 0;
	if (len == -2) {
		filter_fail(filter, "XML tag longer than %u bytes",
			    PARSE_MAX_TAG_LENGTH);
		return -1;
	}
	if (len < 0)
		goto bogus;
	if (filter->root_seen) {
		/* only the root needs temporary memory */
		if (!lex_tag(filter, data, len, is_end, is_empty, name_len,
			     attributes, namespace_decls))
			len = -1;
	} else T_BEGIN {
		if (!lex_tag(filter, data, len, is_end, is_empty, name_len,
			     attributes, namespace_decls))
			len = -1;
	} T_END;
	return len;
bogus:
	/* A '<' that starts no markup, e.g. an address in angle brackets
	   (parsedmarc's invalid_xml sample): it is text. */
	buffer_append(filter->out, "&lt;", 4);
	filter->n_lt_escaped++;
	return 1;
}

/* Bytes up to the next '<' or '&' (text runs are short: a loop beats
   memchr) */
static size_t text_run_length(const unsigned char *data, size_t size)
{
	size_t pos = 0;

	while (pos < size && data[pos] != '<' && data[pos] != '&')
		pos++;
	return pos;
}

/* Stage 2: filter->clean -> filter->out. */
static void filter_lex(struct dmarc_xml_filter *filter)
{
	const unsigned char *data = filter->clean->data;
	size_t size = filter->clean->used, pos = filter->clean_pos, start, skip;
	bool eof = filter->input_eof && filter->raw->used == 0;
	ssize_t ret;

	while (pos < size && filter->error == NULL) {
		if (filter->root_closed) {
			/* Stop after </feedback>: trailing junk (padding,
			   a second document) must not fail the report. */
			for (; pos < size; pos++) {
				if (!is_xml_space(data[pos]))
					filter->trailing_data_ignored = TRUE;
			}
			filter->done = TRUE;
			break;
		}
		switch (filter->lex_state) {
		case LEX_TEXT:
			start = pos;
			pos += text_run_length(data + pos, size - pos);
			buffer_append(filter->out, data + start, pos - start);
			if (pos == size)
				break;
			if (data[pos] == '<') {
				ret = lex_markup(filter, data + pos,
						 size - pos, eof);
				if (ret <= 0)
					goto stop;
				pos += ret;
			} else {
				ret = lex_reference(filter, data + pos,
						    size - pos, eof,
						    filter->out, &skip);
				if (ret == 0)
					goto stop;
				if (ret > 0) {
					buffer_append(filter->out, data + pos,
						      ret);
					pos += ret;
				} else {
					pos += skip;
				}
			}
			break;
		case LEX_COMMENT:
		case LEX_CDATA:
		case LEX_PI: {
			/* copy up to and including the terminator:
			   "-->", "]]>" or "?>" */
			unsigned char mark = filter->lex_state == LEX_COMMENT ?
				'-' : filter->lex_state == LEX_CDATA ? ']' : '?';
			unsigned int need = filter->lex_state == LEX_PI ? 1 : 2;

			start = pos;
			for (; pos < size; pos++) {
				if (data[pos] == '>' &&
				    filter->lex_match >= need) {
					pos++;
					filter->lex_state = LEX_TEXT;
					break;
				}
				if (data[pos] == mark)
					filter->lex_match++;
				else
					filter->lex_match = 0;
			}
			buffer_append(filter->out, data + start, pos - start);
			break;
		}
		}
	}
stop:
	filter->clean_pos = pos;
	if (eof && pos == size)
		filter->done = TRUE;
	if (filter->clean_pos > PARSE_READ_BLOCK_SIZE ||
	    filter->clean_pos == filter->clean->used) {
		buffer_delete(filter->clean, 0, filter->clean_pos);
		filter->clean_pos = 0;
	}
}

/* Take the input's next bytes (at most PARSE_READ_BLOCK_SIZE). The input
   is blocking: a read that would block is an error, not a wait. */
static int filter_read_raw(struct dmarc_xml_filter *filter)
{
	const unsigned char *data;
	size_t size;
	int ret;

	if (filter->input_eof)
		return 0;
	ret = i_stream_read_more(filter->input, &data, &size);
	if (ret > 0) {
		size = I_MIN(size, PARSE_READ_BLOCK_SIZE);
		buffer_append(filter->raw, data, size);
		i_stream_skip(filter->input, size);
		return 0;
	}
	if (ret == 0) {
		filter_fail(filter, "read(%s) failed: the stream would block",
			    i_stream_get_name(filter->input));
		return -1;
	}
	if (filter->input->stream_errno != 0) {
		filter_fail(filter, "%s", i_stream_get_error(filter->input));
		return -1;
	}
	filter->input_eof = TRUE;
	return 0;
}

static const unsigned char *
find_bytes(const unsigned char *data, size_t size, const char *what)
{
	size_t len = strlen(what), i;

	for (i = 0; i + len <= size; i++) {
		if (data[i] == (unsigned char)what[0] &&
		    memcmp(data + i, what, len) == 0)
			return data + i;
	}
	return NULL;
}

/* The encoding="..." of the XML declaration at data, or NULL. */
static const char *xml_decl_encoding(const unsigned char *data, size_t size)
{
	const unsigned char *end, *p, *q;

	if (size < 5 || memcmp(data, "<?xml", 5) != 0)
		return NULL;
	end = find_bytes(data, size, "?>");
	if (end == NULL)
		return NULL;
	p = find_bytes(data, end - data, "encoding");
	if (p == NULL)
		return NULL;
	p += 8;
	while (p < end && is_xml_space(*p)) p++;
	if (p == end || *p++ != '=')
		return NULL;
	while (p < end && is_xml_space(*p)) p++;
	if (p == end || (*p != '"' && *p != '\''))
		return NULL;
	q = memchr(p + 1, *p, end - p - 1);
	if (q == NULL)
		return NULL;
	return t_strndup(p + 1, q - p - 1);
}

/* The filter reads the bytes as ASCII: a declared charset must encode
   ASCII as ASCII, or markup could hide from it (UTF-7 writes '<' as
   "+ADw-"). Reports are UTF-8, Latin-1 or a Windows code page. */
static bool encoding_is_ascii_compatible(const char *encoding)
{
	static const char *const prefixes[] = {
		"us-ascii", "ascii", "iso-8859-", "iso8859-", "latin",
		"windows-125", "cp125", "koi8-",
	};
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(prefixes); i++) {
		if (strncasecmp(encoding, prefixes[i],
				strlen(prefixes[i])) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Look at the start of the document: BOM, leading space, encoding. */
static int filter_prefetch(struct dmarc_xml_filter *filter)
{
	const unsigned char *data;
	const char *encoding;
	size_t skip = 0;
	bool have_bom = FALSE;

	for (;;) {
		data = filter->raw->data;
		skip = 0;
		if (filter->raw->used >= 3 &&
		    memcmp(data, "\xef\xbb\xbf", 3) == 0) {
			have_bom = TRUE;
			skip = 3;
		}
		while (skip < filter->raw->used && is_xml_space(data[skip]))
			skip++;
		/* enough to see the whole XML declaration */
		if ((skip < filter->raw->used &&
		     filter->raw->used - skip >= 1024) ||
		    filter->input_eof)
			break;
		if (skip > PARSE_MAX_LEADING_SPACE) {
			filter_fail(filter, "not an XML document");
			return -1;
		}
		if (filter_read_raw(filter) < 0)
			return -1;
	}
	if (skip == filter->raw->used) {
		filter_fail(filter, "empty document");
		return -1;
	}
	if (data[skip] != '<') {
		/* also UTF-16/32 and EBCDIC: DMARC reports are UTF-8 or an
		   ASCII-compatible charset, and the filter relies on it */
		filter_fail(filter, "not an XML document (it does not start "
			    "with '<' in UTF-8 or an ASCII-compatible "
			    "charset)");
		return -1;
	}
	if (skip > (have_bom ? 3U : 0U) && filter->raw->used - skip >= 5 &&
	    memcmp(data + skip, "<?xml", 5) == 0) {
		/* the XML declaration must come first: drop what precedes */
		filter->leading_space_removed = TRUE;
	}
	encoding = xml_decl_encoding(data + skip, filter->raw->used - skip);
	if (filter->mime_charset != NULL && !have_bom) {
		/* RFC 7303 3.2: a BOM first, then the charset parameter, and
		   the XML declaration only without either. US-ASCII is read
		   as UTF-8, whose subset it is: stray 8-bit bytes are then
		   repaired like invalid UTF-8. A charset nobody knows cannot
		   be honoured: the declaration decides then. */
		const char *charset = filter->mime_charset;

		if (strcasecmp(charset, "us-ascii") == 0 ||
		    strcasecmp(charset, "utf-8") == 0 ||
		    strcasecmp(charset, "utf8") == 0)
			filter->forced_encoding = "utf-8";
		else if ((filter->forced_handler =
			  xmlFindCharEncodingHandler(charset)) != NULL)
			filter->forced_encoding = charset;
		else {
			filter_warning(filter, "unknown MIME charset \"%s\": "
				       "the XML declaration decides",
				       str_sanitize(charset, 40));
		}
		if (filter->forced_encoding != NULL)
			encoding = filter->forced_encoding;
	}
	filter->utf8_mode = have_bom || encoding == NULL ||
		strcasecmp(encoding, "utf-8") == 0 ||
		strcasecmp(encoding, "utf8") == 0;
	if (!filter->utf8_mode && !encoding_is_ascii_compatible(encoding)) {
		filter_fail(filter, "unsupported encoding \"%s\" "
			    "(not ASCII-compatible)", str_sanitize(encoding, 40));
		return -1;
	}
	/* The BOM is dropped as well: libxml2 needs none for UTF-8, and
	   a declared other charset wins anyway. */
	buffer_delete(filter->raw, 0, skip);
	return 0;
}

/* Produce more filtered output. Returns -1 on error. */
static int filter_fill(struct dmarc_xml_filter *filter)
{
	size_t old_used = filter->out->used;

	if (!filter->prefetched) {
		filter->prefetched = TRUE;
		if (filter_prefetch(filter) < 0)
			return -1;
	}
	while (filter->out->used == old_used && !filter->done) {
		if (filter->raw->used < PARSE_READ_BLOCK_SIZE &&
		    filter_read_raw(filter) < 0)
			return -1;
		filter_utf8(filter);
		filter_lex(filter);
		if (filter->error != NULL)
			return -1;
	}
	return 0;
}

struct dmarc_xml_filter *
dmarc_xml_filter_init(struct istream *input, unsigned int max_depth)
{
	struct dmarc_xml_filter *filter;
	pool_t pool;

	byte_class_init();
	pool = pool_alloconly_create("dmarc xml filter", 1024);
	filter = p_new(pool, struct dmarc_xml_filter, 1);
	filter->pool = pool;
	i_assert(max_depth > 0);
	filter->max_depth = max_depth;
	filter->input = input;
	i_stream_ref(input);
	/* small at first: most reports are a few KiB, and the buffers are
	   zeroed when allocated; they grow to a block or two as needed */
	filter->raw = buffer_create_dynamic(default_pool,
					    FILTER_INITIAL_BUFFER_SIZE);
	filter->clean = buffer_create_dynamic(default_pool,
					      FILTER_INITIAL_BUFFER_SIZE);
	filter->out = buffer_create_dynamic(default_pool,
					    FILTER_INITIAL_BUFFER_SIZE);
	p_array_init(&filter->warnings, pool, 2);
	return filter;
}

void dmarc_xml_filter_deinit(struct dmarc_xml_filter **_filter)
{
	struct dmarc_xml_filter *filter = *_filter;

	*_filter = NULL;
	if (filter == NULL)
		return;
	if (filter->forced_handler != NULL)
		(void)xmlCharEncCloseFunc(filter->forced_handler);
	i_stream_unref(&filter->input);
	buffer_free(&filter->raw);
	buffer_free(&filter->clean);
	buffer_free(&filter->out);
	pool_unref(&filter->pool);
}

void dmarc_xml_filter_set_charset(struct dmarc_xml_filter *filter,
				  const char *charset)
{
	i_assert(!filter->prefetched);
	filter->mime_charset = p_strdup(filter->pool, charset);
}

const char *
dmarc_xml_filter_get_forced_encoding(struct dmarc_xml_filter *filter,
				     xmlCharEncodingHandlerPtr *handler_r)
{
	*handler_r = filter->forced_handler;
	filter->forced_handler = NULL;
	return filter->forced_encoding;
}

int dmarc_xml_filter_fill(struct dmarc_xml_filter *filter,
			  const char **error_r)
{
	if (filter_fill(filter) < 0) {
		*error_r = filter->error;
		return -1;
	}
	return 0;
}

int dmarc_xml_filter_read(struct dmarc_xml_filter *filter, size_t max_size,
			  const unsigned char **data_r, size_t *size_r,
			  const char **error_r)
{
	size_t size;

	if (filter->out_pos == filter->out->used) {
		buffer_set_used_size(filter->out, 0);
		filter->out_pos = 0;
		if (!filter->done && filter_fill(filter) < 0) {
			*error_r = filter->error;
			return -1;
		}
	}
	size = I_MIN(filter->out->used - filter->out_pos, max_size);
	if (size == 0) {
		i_assert(filter->done);
		return 0;
	}
	*data_r = CONST_PTR_OFFSET(filter->out->data, filter->out_pos);
	*size_r = size;
	filter->out_pos += size;
	return 1;
}

bool dmarc_xml_filter_root_closed(struct dmarc_xml_filter *filter)
{
	return filter->root_closed;
}

void dmarc_xml_filter_get_warnings(struct dmarc_xml_filter *filter,
				   pool_t pool,
				   ARRAY_TYPE(const_string) *warnings)
{
	const char *msg;

	array_append_array(warnings, &filter->warnings);
#define ADD(fmt, ...) STMT_START { \
	msg = p_strdup_printf(pool, fmt, __VA_ARGS__); \
	array_push_back(warnings, &msg); } STMT_END
	if (filter->leading_space_removed)
		ADD("%s", "removed whitespace before the XML declaration");
	if (filter->n_utf8_repaired > 0)
		ADD("replaced %u invalid UTF-8 or non-XML bytes with U+FFFD",
		    filter->n_utf8_repaired);
	if (filter->n_lt_escaped > 0)
		ADD("kept %u stray '<' as text (not well-formed XML)",
		    filter->n_lt_escaped);
	if (filter->n_amp_escaped > 0)
		ADD("kept %u bare '&' or unknown entity references as text",
		    filter->n_amp_escaped);
	if (filter->n_charref_repaired > 0)
		ADD("replaced %u character references to characters XML "
		    "does not allow with U+FFFD", filter->n_charref_repaired);
	if (filter->trailing_data_ignored)
		ADD("%s", "ignored data after the root element");
#undef ADD
}
