/* DMARC failure report parts -> struct dmarc_failure_report, with
   lib-mail's header parser (folding, CRLF or LF) and RFC 2047 decoder.
   Text-only reports (Exim's) are turned into the ARF fields they carry
   and parsed as ARF.

   Decisions (tested in tests/test-dmarc-failure.c):
   - An ARF part must have Feedback-Type; only auth-failure (RFC 6591) is
     a DMARC failure report, other types (abuse, fraud, ...) are refused.
   - Source-IP must be an IP address when present ("[192.0.2.1]",
     IPv4-mapped forms and a comment after it accepted, stored
     normalised).
   - Fields that may repeat (Reported-Domain, Authentication-Results,
     Original-Rcpt-To, Reported-URI, DKIM-*) are joined by newlines;
     unknown fields are kept in other_fields. Arrival-Date is kept as sent
     and parsed when it is an RFC 5322 date. */

#include "lib.h"
#include "str.h"
#include "istream.h"
#include "net.h"
#include "unichar.h"
#include "message-date.h"
#include "message-header-parser.h"
#include "message-header-decode.h"
#include "str-sanitize.h"
#include "dmarc-settings.h"
#include "dmarc-failure.h"

#include <stddef.h>
#include <ctype.h>

enum field_flags {
	FIELD_LCASE = 0x01,
	FIELD_IP = 0x02,
	FIELD_DATE = 0x04,
};

struct arf_field {
	const char *name;
	size_t offset;
	enum field_flags flags;
};

#define ARF_FIELD(name, field, flags) \
	{ name, offsetof(struct dmarc_failure_report, field), flags }

/* RFC 5965 3.1-3.3, RFC 6591 3.1-3.2 */
static const struct arf_field arf_fields[] = {
	ARF_FIELD("Feedback-Type", feedback_type, FIELD_LCASE),
	ARF_FIELD("User-Agent", user_agent, 0),
	ARF_FIELD("Version", version, 0),
	ARF_FIELD("Arrival-Date", arrival_date, FIELD_DATE),
	ARF_FIELD("Received-Date", arrival_date, FIELD_DATE),
	ARF_FIELD("Source-IP", source_ip, FIELD_IP),
	ARF_FIELD("Original-Envelope-Id", original_envelope_id, 0),
	ARF_FIELD("Original-Mail-From", original_mail_from, 0),
	ARF_FIELD("Original-Rcpt-To", original_rcpt_to, 0),
	ARF_FIELD("Reporting-MTA", reporting_mta, 0),
	ARF_FIELD("Reported-Domain", reported_domain, FIELD_LCASE),
	ARF_FIELD("Incidents", incidents, 0),
	ARF_FIELD("Authentication-Results", authentication_results, 0),
	ARF_FIELD("Auth-Failure", auth_failure, FIELD_LCASE),
	ARF_FIELD("Identity-Alignment", identity_alignment, FIELD_LCASE),
	ARF_FIELD("Delivery-Result", delivery_result, FIELD_LCASE),
	ARF_FIELD("DKIM-Domain", dkim_domain, 0),
	ARF_FIELD("DKIM-Identity", dkim_identity, 0),
	ARF_FIELD("DKIM-Selector", dkim_selector, 0),
	ARF_FIELD("DKIM-Canonicalized-Header", dkim_canonicalized_header, 0),
	ARF_FIELD("DKIM-Canonicalized-Body", dkim_canonicalized_body, 0),
	ARF_FIELD("SPF-DNS", spf_dns, 0),
	ARF_FIELD("Reported-URI", reported_uri, 0),
};

static const struct arf_field original_fields[] = {
	ARF_FIELD("From", orig_from, 0),
	ARF_FIELD("To", orig_to, 0),
	ARF_FIELD("Subject", orig_subject, 0),
	ARF_FIELD("Date", orig_date, 0),
	ARF_FIELD("Message-ID", orig_message_id, 0),
};

static bool is_field_name_char(unsigned char c)
{
	/* the field names reports use; RFC 5322 allows more printable
	   characters, but then '{"a":' would look like a header too */
	return i_isalnum(c) || c == '-' || c == '_';
}

bool dmarc_failure_is_header_block(const unsigned char *data, size_t size)
{
	size_t i = 0;

	while (i < size && (data[i] == '\r' || data[i] == '\n'))
		i++;
	if (i == size || !is_field_name_char(data[i]))
		return FALSE;
	while (i < size && is_field_name_char(data[i]))
		i++;
	while (i < size && (data[i] == ' ' || data[i] == '\t'))
		i++;
	return i < size && data[i] == ':';
}

bool dmarc_failure_is_arf(const unsigned char *data, size_t size)
{
	static const char field[] = "feedback-type:";
	size_t i;

	if (!dmarc_failure_is_header_block(data, size))
		return FALSE;
	for (i = 0; i + sizeof(field) - 1 <= size; i++) {
		if ((i == 0 || data[i - 1] == '\n') &&
		    strncasecmp((const char *)data + i, field,
				sizeof(field) - 1) == 0)
			return TRUE;
		/* only the header block */
		if (data[i] == '\n' && i + 1 < size &&
		    (data[i + 1] == '\n' ||
		     (data[i + 1] == '\r' && i + 2 < size &&
		      data[i + 2] == '\n')))
			return FALSE;
	}
	return FALSE;
}

/* Valid UTF-8 without control characters, at most max_value_length
   bytes, from pool. */
static const char *
failure_value(pool_t pool, const struct dmarc_limits *limits,
	      const char *value)
{
	string_t *str = t_str_new(strlen(value) + 16), *clean;
	const char *p;
	size_t len;

	if (uni_utf8_get_valid_data((const unsigned char *)value,
				    strlen(value), str))
		str_append(str, value);
	clean = t_str_new(str_len(str) + 16);
	for (p = str_c(str); *p != '\0'; p++) {
		if ((unsigned char)*p == '\t')
			str_append_c(clean, ' ');
		else if ((unsigned char)*p < 0x20 || *p == 0x7f)
			str_append(clean, UNICODE_REPLACEMENT_CHAR_UTF8);
		else
			str_append_c(clean, *p);
	}
	p = t_str_trim(str_c(clean), " ");
	len = strlen(p);
	len = uni_utf8_data_truncate((const unsigned char *)p, len,
				     limits->max_value_length);
	return p_strndup(pool, p, len);
}

static const struct arf_field *
field_find(const struct arf_field *fields, unsigned int count,
	   const char *name)
{
	unsigned int i;

	for (i = 0; i < count; i++) {
		if (strcasecmp(fields[i].name, name) == 0)
			return &fields[i];
	}
	return NULL;
}

/* A repeated field: the values joined by newlines, up to
   max_value_length in all (a part of many repeats costs no more). */
static const char *join(pool_t pool, const struct dmarc_limits *limits,
			const char *old, const char *value)
{
	const char *joined;
	size_t len;

	if (old == NULL)
		return value;
	if (strlen(old) >= limits->max_value_length)
		return old;
	joined = t_strconcat(old, "\n", value, NULL);
	len = strlen(joined);
	len = uni_utf8_data_truncate((const unsigned char *)joined, len,
				     limits->max_value_length);
	return p_strndup(pool, joined, len);
}

static int normalise_ip(const char *value, const char **ip_r)
{
	struct ip_addr ip, ip4;
	const char *p = t_str_trim(value, " \t");

	/* "192.0.2.1 (mx.example.org)": a comment after the address */
	p = t_strcut(p, ' ');
	p = t_strcut(p, '(');
	p = t_str_trim(p, "[]");
	if (strncasecmp(p, "ipv6:", 5) == 0)
		p += 5;
	if (net_addr2ip(p, &ip) < 0)
		return -1;
	if (net_ipv6_mapped_ipv4_convert(&ip, &ip4) == 0)
		ip = ip4;
	*ip_r = net_ip2addr(&ip);
	return 0;
}

/* Calls callback for each header of the block at data (unfolded). */
static void
header_block_foreach(const unsigned char *data, size_t size, bool decode,
		     void (*callback)(const char *name, const char *value,
				      void *context), void *context)
{
	struct message_header_parser_ctx *parser;
	struct message_header_line *hdr;
	struct istream *input;
	string_t *decoded;
	const char *value;
	int ret;

	input = i_stream_create_from_data(data, size);
	parser = message_parse_header_init(input, NULL,
		MESSAGE_HEADER_PARSER_FLAG_CLEAN_ONELINE);
	while ((ret = message_parse_header_next(parser, &hdr)) > 0) {
		if (hdr->eoh)
			break;
		if (hdr->continues) {
			hdr->use_full_value = TRUE;
			continue;
		}
		T_BEGIN {
			value = t_strndup(hdr->full_value, hdr->full_value_len);
			if (decode) {
				decoded = t_str_new(hdr->full_value_len + 16);
				message_header_decode_utf8(hdr->full_value,
					hdr->full_value_len, decoded, NULL);
				value = str_c(decoded);
			}
			callback(hdr->name, value, context);
		} T_END;
	}
	message_parse_header_deinit(&parser);
	i_stream_unref(&input);
}

struct arf_parse {
	pool_t pool;
	const struct dmarc_limits *limits;
	struct dmarc_failure_report *report;
	const char *error;
};

static void arf_field(const char *name, const char *value, void *context)
{
	struct arf_parse *ctx = context;
	const struct arf_field *field;
	const char **dest, *ip;
	time_t t;
	int tz;

	field = field_find(arf_fields, N_ELEMENTS(arf_fields), name);
	if (field == NULL) {
		ctx->report->other_fields = join(ctx->pool, ctx->limits,
			ctx->report->other_fields,
			failure_value(ctx->pool, ctx->limits,
				      t_strdup_printf("%s: %s", name, value)));
		return;
	}
	dest = PTR_OFFSET(ctx->report, field->offset);
	if ((field->flags & FIELD_IP) != 0) {
		if (normalise_ip(value, &ip) < 0) {
			if (ctx->error == NULL) {
				ctx->error = p_strdup_printf(ctx->pool,
					"Source-IP \"%s\" is not an IP address",
					str_sanitize(value, 64));
			}
			return;
		}
		value = ip;
	}
	if ((field->flags & FIELD_LCASE) != 0)
		value = t_str_lcase(value);
	value = failure_value(ctx->pool, ctx->limits, value);
	if ((field->flags & FIELD_DATE) != 0 && *dest == NULL &&
	    message_date_parse((const unsigned char *)value, strlen(value),
			       &t, &tz))
		ctx->report->arrival_time = t;
	*dest = join(ctx->pool, ctx->limits, *dest, value);
}

int dmarc_failure_parse_arf(pool_t pool, const unsigned char *data,
			    size_t size, const struct dmarc_limits *limits,
			    struct dmarc_failure_report **report_r,
			    const char **error_r)
{
	struct arf_parse ctx;
	string_t *text;
	size_t i;

	i_zero(&ctx);
	ctx.pool = pool;
	ctx.limits = limits;
	ctx.report = p_new(pool, struct dmarc_failure_report, 1);
	ctx.report->arrival_time = -1;
	header_block_foreach(data, size, FALSE, arf_field, &ctx);
	if (ctx.error != NULL) {
		*error_r = ctx.error;
		return -1;
	}
	if (ctx.report->feedback_type == NULL) {
		*error_r = "not a failure report (no Feedback-Type)";
		return -1;
	}
	if (strcmp(ctx.report->feedback_type, "auth-failure") != 0) {
		*error_r = t_strdup_printf("not a DMARC failure report "
			"(Feedback-Type: %s)",
			str_sanitize(ctx.report->feedback_type, 64));
		return -1;
	}
	text = t_str_new(size);
	for (i = 0; i < size; i++) {
		if (data[i] != '\r')
			str_append_c(text, data[i]);
	}
	ctx.report->arf_text = p_strdup(pool, str_c(text));
	*report_r = ctx.report;
	return 0;
}

void dmarc_failure_add_original_header(struct dmarc_failure_report *report,
				       pool_t pool,
				       const struct dmarc_limits *limits,
				       const char *name, const char *value)
{
	const struct arf_field *field;
	const char **dest;

	field = field_find(original_fields, N_ELEMENTS(original_fields), name);
	if (field == NULL)
		return;
	report->have_original = TRUE;
	dest = PTR_OFFSET(report, field->offset);
	if (*dest == NULL)
		*dest = failure_value(pool, limits, value);
}

struct original_parse {
	struct dmarc_failure_report *report;
	pool_t pool;
	const struct dmarc_limits *limits;
};

static void original_field(const char *name, const char *value, void *context)
{
	struct original_parse *ctx = context;

	dmarc_failure_add_original_header(ctx->report, ctx->pool, ctx->limits,
					  name, value);
}

void dmarc_failure_parse_original(struct dmarc_failure_report *report,
				  pool_t pool,
				  const struct dmarc_limits *limits,
				  const unsigned char *data, size_t size)
{
	struct original_parse ctx = {
		.report = report, .pool = pool, .limits = limits,
	};

	header_block_foreach(data, size, TRUE, original_field, &ctx);
}

/* Exim's text-only failure report (its dmarc.c): a sentence, then
   indented "Name: value" lines, then a "------ This is a copy of the
   headers ..." line and the reported message's header block. */
static const struct {
	const char *name;
	const char *arf_name;
} text_report_fields[] = {
	{ "Sender Domain", "Reported-Domain" },
	{ "Sender IP Address", "Source-IP" },
	{ "Received Date", "Arrival-Date" },
	{ "DMARC Results", "DMARC-Results" },
};

/* The next line of data from *pos, without its line end. */
static bool text_next_line(const unsigned char *data, size_t size,
			   size_t *pos, const char **line_r)
{
	const unsigned char *p, *end;
	size_t len;

	if (*pos >= size)
		return FALSE;
	p = data + *pos;
	end = memchr(p, '\n', size - *pos);
	len = end == NULL ? size - *pos : (size_t)(end - p);
	*pos += len + (end == NULL ? 0 : 1);
	if (len > 0 && p[len - 1] == '\r')
		len--;
	*line_r = t_strndup(p, len);
	return TRUE;
}

/* "  Name: value" -> name and value, trimmed; FALSE for other lines. */
static bool text_field(const char *line, const char **name_r,
		       const char **value_r)
{
	const char *colon = strchr(line, ':');

	if (colon == NULL)
		return FALSE;
	*name_r = t_str_trim(t_strdup_until(line, colon), " \t");
	*value_r = t_str_trim(colon + 1, " \t");
	return **name_r != '\0';
}

bool dmarc_failure_is_text_report(const unsigned char *data, size_t size)
{
	const char *line, *name, *value;
	size_t pos = 0;
	bool have_domain = FALSE, have_ip = FALSE;

	T_BEGIN {
		while (!(have_domain && have_ip) &&
		       text_next_line(data, size, &pos, &line)) {
			if (strncmp(line, "------", 6) == 0)
				break;
			if (!text_field(line, &name, &value))
				continue;
			if (strcasecmp(name, "Sender Domain") == 0)
				have_domain = TRUE;
			else if (strcasecmp(name, "Sender IP Address") == 0)
				have_ip = TRUE;
		}
	} T_END;
	return have_domain && have_ip;
}

int dmarc_failure_parse_text(pool_t pool, const unsigned char *data,
			     size_t size, const struct dmarc_limits *limits,
			     struct dmarc_failure_report **report_r,
			     const char **error_r)
{
	const char *line, *name, *value, *spf = NULL, *dkim = NULL;
	string_t *arf = t_str_new(512);
	size_t pos = 0, headers_pos = size;
	unsigned int i;

	str_append(arf, "Feedback-Type: auth-failure\nAuth-Failure: dmarc\n");
	while (text_next_line(data, size, &pos, &line)) {
		if (strncmp(line, "------", 6) == 0) {
			headers_pos = pos;
			break;
		}
		if (!text_field(line, &name, &value) || *value == '\0')
			continue;
		if (strcasecmp(name, "SPF Alignment") == 0)
			spf = value;
		else if (strcasecmp(name, "DKIM Alignment") == 0)
			dkim = value;
		for (i = 0; i < N_ELEMENTS(text_report_fields); i++) {
			if (strcasecmp(name, text_report_fields[i].name) == 0) {
				str_printfa(arf, "%s: %s\n",
					    text_report_fields[i].arf_name,
					    value);
			}
		}
	}
	/* RFC 6591 3.2: the identities that aligned, or "none" */
	if (spf != NULL && dkim != NULL) {
		bool spf_aligned = strcasecmp(spf, "yes") == 0;
		bool dkim_aligned = strcasecmp(dkim, "yes") == 0;

		str_printfa(arf, "Identity-Alignment: %s\n",
			    spf_aligned && dkim_aligned ? "dkim, spf" :
			    dkim_aligned ? "dkim" : spf_aligned ? "spf" :
			    "none");
	}
	if (dmarc_failure_parse_arf(pool, str_data(arf), str_len(arf), limits,
				    report_r, error_r) < 0)
		return -1;
	if ((*report_r)->reported_domain == NULL ||
	    (*report_r)->source_ip == NULL) {
		*error_r = "not a failure report: a text report without "
			"Sender Domain and Sender IP Address";
		return -1;
	}
	/* the reported message's header block, after blank lines */
	while (headers_pos < size &&
	       (data[headers_pos] == '\n' || data[headers_pos] == '\r'))
		headers_pos++;
	if (headers_pos < size) {
		dmarc_failure_parse_original(*report_r, pool, limits,
					     data + headers_pos,
					     size - headers_pos);
	}
	return 0;
}
