/* message -> attachments, with Dovecot's lib-mail: message-parser splits
   the MIME structure (bounded by its nesting and part-count limits),
   message-decoder decodes RFC 2047 in headers, rfc2231_parse() reads the
   parameters. An attachment's body only loses its transfer encoding here
   (base64 / qp-decoder), whatever its type: the message decoder would
   convert every part with a charset as text, which mangles a gzip
   labelled text/xml, and converts a text/xml report behind its XML
   declaration's back. The MIME charset is handed on instead. Data is
   streamed to the callbacks; nothing is buffered whole (only the first
   4 KiB of a nameless text/plain part wait for claim_text()). */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "istream.h"
#include "rfc822-parser.h"
#include "rfc2231-parser.h"
#include "charset-utf8.h"
#include "hex-dec.h"

#include <ctype.h>
#include "base64.h"
#include "qp-decoder.h"
#include "message-parser.h"
#include "message-decoder.h"
#include "dmarc-settings.h"
#include "dmarc-extract.h"

struct extract_part {
	struct message_part *part;
	const char *content_type;
	const char *ct_name;      /* Content-Type name= */
	const char *ct_charset;   /* Content-Type charset= */
	const char *ct_report_type; /* Content-Type report-type= */
	const char *cd_filename;  /* Content-Disposition filename= */
	enum message_cte cte;
	bool headers_done;
	/* a nameless text/plain part: its first bytes are held in
	   ctx->peek until claim_text() decides whether it is an
	   attachment */
	bool peeking;
	bool is_attachment;
	bool skipped;
	bool truncated;
	uoff_t size;

	bool raw_body_ended;	/* end of base64 data, or broken data */
	struct base64_decoder base64;
	struct qp_decoder *qp;
};

struct extract_ctx {
	pool_t pool;
	const struct dmarc_limits *limits;
	const struct dmarc_extract_callbacks *callbacks;
	void *context;

	const char *message_id;
	unsigned int attachments, skipped;
	/* a failure report's parts: its multipart/report, whether a
	   message/feedback-report part was seen, and the reported messages
	   (message/rfc822), handed out whole when the mail is read */
	struct message_part *report_part;
	bool saw_feedback_report;
	bool is_feedback_report;
	ARRAY(struct message_part *) embedded;
	bool mime_overflow;
	struct extract_part cur;
	struct dmarc_attachment att;
	/* transfer-decoded body data of the current attachment */
	buffer_t *decoded;
	/* the first bytes of a part that is peeked at */
	buffer_t *peek;
};

/* RFC 2231 extended value "charset'lang'%XX..." -> UTF-8. rfc2231_parse()
   merges the continuations but leaves this decoding to us. A NUL ends the
   name; a charset we cannot convert leaves the bytes as they are (the
   archive makes any name safe). */
static const char *rfc2231_decode_value(const char *value)
{
	const char *p, *charset, *quote1, *quote2;
	string_t *raw, *utf8;
	enum charset_result result;

	quote1 = strchr(value, '\'');
	quote2 = quote1 == NULL ? NULL : strchr(quote1 + 1, '\'');
	if (quote2 == NULL)
		return value;
	charset = t_strdup_until(value, quote1);
	raw = t_str_new(strlen(value));
	for (p = quote2 + 1; *p != '\0'; p++) {
		if (*p == '%' && i_isxdigit(p[1]) && i_isxdigit(p[2])) {
			unsigned char c = hex2dec((const unsigned char *)p + 1, 2);

			if (c == '\0')
				break;
			str_append_c(raw, c);
			p += 2;
		} else {
			str_append_c(raw, *p);
		}
	}
	if (*charset == '\0' || charset_is_utf8(charset) ||
	    strcasecmp(charset, "us-ascii") == 0)
		return str_c(raw);
	utf8 = t_str_new(str_len(raw) + 16);
	if (charset_to_utf8_str(charset, NULL, str_c(raw), utf8, &result) < 0 ||
	    result != CHARSET_RET_OK)
		return str_c(raw);
	return str_c(utf8);
}

/* "type/subtype; key=value ..." -> lower-case type and the parameter
   named key (RFC 2231 continuations and charsets merged). */
static void
parse_param_header(const struct message_header_line *hdr, bool is_content_type,
		   const char *key, pool_t pool, const char **type_r,
		   const char **value_r)
{
	struct rfc822_parser_context parser;
	const char *const *params;
	string_t *str = t_str_new(64);

	rfc822_parser_init(&parser, hdr->full_value, hdr->full_value_len, NULL);
	rfc822_skip_lwsp(&parser);
	if (is_content_type) {
		if (rfc822_parse_content_type(&parser, str) < 0)
			str_truncate(str, 0);
	} else {
		if (rfc822_parse_mime_token(&parser, str) < 0)
			str_truncate(str, 0);
	}
	if (type_r != NULL)
		*type_r = p_strdup(pool, t_str_lcase(str_c(str)));
	/* -1 only says some parameter was invalid: the rest are usable */
	(void)rfc2231_parse(&parser, &params);
	for (; *params != NULL; params += 2) {
		const char *pkey = params[0];
		size_t key_len = strlen(key);

		if (strncasecmp(pkey, key, key_len) != 0 ||
		    params[1][0] == '\0')
			continue;
		if (pkey[key_len] == '\0') {
			*value_r = p_strdup(pool, params[1]);
			break;
		}
		if (strcmp(pkey + key_len, "*") == 0) {
			*value_r = p_strdup(pool, rfc2231_decode_value(params[1]));
			break;
		}
	}
	rfc822_parser_deinit(&parser);
}

static void extract_header(struct extract_ctx *ctx,
			   const struct message_header_line *hdr)
{
	const char *type = NULL;

	if (ctx->callbacks->embedded_header != NULL &&
	    ctx->cur.part->parent != NULL &&
	    (ctx->cur.part->parent->flags & MESSAGE_PART_FLAG_MESSAGE_RFC822) != 0) {
		ctx->callbacks->embedded_header(hdr->name,
			t_strndup(hdr->full_value, hdr->full_value_len),
			ctx->context);
	}
	if (strcasecmp(hdr->name, "Content-Type") == 0) {
		parse_param_header(hdr, TRUE, "name", ctx->pool, &type,
				   &ctx->cur.ct_name);
		parse_param_header(hdr, TRUE, "charset", ctx->pool, NULL,
				   &ctx->cur.ct_charset);
		parse_param_header(hdr, TRUE, "report-type", ctx->pool, NULL,
				   &ctx->cur.ct_report_type);
		if (type != NULL && *type != '\0')
			ctx->cur.content_type = type;
	} else if (strcasecmp(hdr->name, "Content-Transfer-Encoding") == 0) {
		ctx->cur.cte = message_decoder_parse_cte(hdr);
	} else if (strcasecmp(hdr->name, "Content-Disposition") == 0) {
		parse_param_header(hdr, FALSE, "filename", ctx->pool, NULL,
				   &ctx->cur.cd_filename);
	} else if (ctx->cur.part->parent == NULL && ctx->message_id == NULL &&
		   strcasecmp(hdr->name, "Message-ID") == 0) {
		ctx->message_id = p_strndup(ctx->pool, hdr->full_value,
					    hdr->full_value_len);
		ctx->message_id = p_strdup(ctx->pool,
					   t_str_trim(ctx->message_id, " \t"));
	}
}

static bool is_container(const char *content_type)
{
	return strncmp(content_type, "multipart/", 10) == 0 ||
		strcmp(content_type, "message/rfc822") == 0 ||
		strcmp(content_type, "message/global") == 0;
}

/* A message/rfc822 part of a failure report (in a multipart/report, or
   after a message/feedback-report part) is the reported message: lib-mail
   descends into it, and it is also handed out as one attachment, its raw
   bytes, once the mail is read (then its size is known), so that it is
   archived whole; the parts inside it are not attachments of the mail.
   Other embedded messages (a forwarded report) are only descended into,
   as before. */
static void extract_embedded_message(struct extract_ctx *ctx)
{
	struct extract_part *cur = &ctx->cur;

	if (strcmp(cur->content_type, "message/rfc822") != 0 &&
	    strcmp(cur->content_type, "message/global") != 0)
		return;
	if ((ctx->report_part == NULL ||
	     cur->part->parent != ctx->report_part) &&
	    !ctx->saw_feedback_report)
		return;
	if (ctx->attachments >= ctx->limits->max_attachments) {
		ctx->skipped++;
		return;
	}
	ctx->attachments++;
	array_push_back(&ctx->embedded, &cur->part);
}

/* Is part inside a reported message that is handed out whole? Its own
   attachments are the reported mail's, not reports. */
static bool extract_in_embedded(struct extract_ctx *ctx,
				const struct message_part *part)
{
	struct message_part *embedded;

	if (array_count(&ctx->embedded) == 0)
		return FALSE;
	for (part = part->parent; part != NULL; part = part->parent) {
		array_foreach_elem(&ctx->embedded, embedded) {
			if (part == embedded)
				return TRUE;
		}
	}
	return FALSE;
}

/* The current part is an attachment: counted, and begun unless past the
   limit or refused by the caller. */
static void extract_attachment_begin(struct extract_ctx *ctx,
				     const char *filename)
{
	struct extract_part *cur = &ctx->cur;

	cur->is_attachment = TRUE;
	if (ctx->attachments >= ctx->limits->max_attachments) {
		ctx->skipped++;
		cur->skipped = TRUE;
		return;
	}
	ctx->attachments++;
	i_zero(&ctx->att);
	ctx->att.index = ctx->attachments;
	ctx->att.filename = filename;
	ctx->att.content_type = cur->content_type;
	ctx->att.charset = cur->ct_charset;
	ctx->att.message_id = ctx->message_id;
	if (!ctx->callbacks->begin(&ctx->att, ctx->context))
		cur->skipped = TRUE;
}

/* At the end of a part's headers: is it an attachment? */
static void extract_headers_done(struct extract_ctx *ctx)
{
	struct extract_part *cur = &ctx->cur;
	const char *filename;

	/* lib-mail did not look inside this part: its nesting or part
	   count limit was reached */
	if ((cur->part->flags & MESSAGE_PART_FLAG_OVERFLOW) != 0)
		ctx->mime_overflow = TRUE;
	if (strcmp(cur->content_type, "multipart/report") == 0) {
		ctx->report_part = cur->part;
		/* Exim's text-only failure reports leave report-type out */
		if (cur->ct_report_type == NULL ||
		    strcasecmp(cur->ct_report_type, "feedback-report") == 0)
			ctx->is_feedback_report = TRUE;
	}
	else if (strcmp(cur->content_type, "message/feedback-report") == 0)
		ctx->saw_feedback_report = TRUE;
	if (extract_in_embedded(ctx, cur->part))
		return;
	if (is_container(cur->content_type)) {
		extract_embedded_message(ctx);
		return;
	}
	filename = cur->cd_filename != NULL ? cur->cd_filename : cur->ct_name;
	if (filename == NULL && strcmp(cur->content_type, "text/html") == 0)
		return;
	if (filename == NULL && strcmp(cur->content_type, "text/plain") == 0) {
		/* the mail's own text, unless its content says otherwise */
		if (ctx->callbacks->claim_text == NULL)
			return;
		cur->peeking = TRUE;
		buffer_set_used_size(ctx->peek, 0);
	} else {
		extract_attachment_begin(ctx, filename);
	}
	if (cur->cte == MESSAGE_CTE_BASE64)
		base64_decode_init(&cur->base64, &base64_scheme, 0);
	else if (cur->cte == MESSAGE_CTE_QP)
		cur->qp = qp_decoder_init(ctx->decoded);
}

static void extract_body(struct extract_ctx *ctx, const unsigned char *data,
			 size_t size);

/* A peeked text part ended or filled the peek buffer: an attachment when
   claim_text() says so, with the bytes held so far as its first data. */
static void extract_text_decide(struct extract_ctx *ctx)
{
	struct extract_part *cur = &ctx->cur;

	cur->peeking = FALSE;
	if (!ctx->callbacks->claim_text(ctx->peek->data, ctx->peek->used,
					ctx->context)) {
		cur->skipped = TRUE;
		return;
	}
	extract_attachment_begin(ctx, NULL);
	extract_body(ctx, ctx->peek->data, ctx->peek->used);
}


/* read_failed: reading the message failed inside this part, so its data
   is cut short as surely as past max_attachment_size. */
static void extract_part_end(struct extract_ctx *ctx, bool read_failed)
{
	struct extract_part *cur = &ctx->cur;
	const char *error;

	if (cur->qp != NULL) {
		/* what the last line held back */
		buffer_set_used_size(ctx->decoded, 0);
		(void)qp_decoder_finish(cur->qp, &error);
		extract_body(ctx, ctx->decoded->data, ctx->decoded->used);
		qp_decoder_deinit(&cur->qp);
	}
	if (cur->peeking)
		extract_text_decide(ctx);
	if (cur->part != NULL && cur->is_attachment && !cur->skipped)
		ctx->callbacks->end(&ctx->att, cur->truncated || read_failed,
				    ctx->context);
	i_zero(cur);
}

static void extract_body(struct extract_ctx *ctx, const unsigned char *data,
			 size_t size)
{
	struct extract_part *cur = &ctx->cur;
	uoff_t max = ctx->limits->max_attachment_size;
	size_t n;

	if (cur->peeking) {
		n = I_MIN(size, DMARC_EXTRACT_TEXT_PEEK_SIZE - ctx->peek->used);
		buffer_append(ctx->peek, data, n);
		if (ctx->peek->used < DMARC_EXTRACT_TEXT_PEEK_SIZE)
			return;
		extract_text_decide(ctx);
		data += n;
		size -= n;
	}
	if (!cur->is_attachment || cur->skipped || cur->truncated)
		return;
	if (cur->size + size > max) {
		size = max - cur->size;
		cur->truncated = TRUE;
	}
	cur->size += size;
	if (size > 0)
		ctx->callbacks->data(data, size, ctx->context);
}

/* A body block of an attachment, still transfer-encoded. Broken base64
   ends the data there (as message-decoder does); the parser then finds
   the report cut short and says so. */
static void extract_raw_body(struct extract_ctx *ctx, const unsigned char *data,
			     size_t size)
{
	struct extract_part *cur = &ctx->cur;
	const char *error;
	size_t pos;
	int ret;

	if ((!cur->is_attachment && !cur->peeking) || cur->skipped ||
	    cur->truncated || cur->raw_body_ended)
		return;
	switch (cur->cte) {
	case MESSAGE_CTE_BASE64:
		buffer_set_used_size(ctx->decoded, 0);
		ret = base64_decode_more(&cur->base64, data, size, &pos,
					 ctx->decoded);
		if (ret <= 0)
			cur->raw_body_ended = TRUE;
		extract_body(ctx, ctx->decoded->data, ctx->decoded->used);
		break;
	case MESSAGE_CTE_QP:
		buffer_set_used_size(ctx->decoded, 0);
		/* invalid sequences are skipped, as message-decoder does */
		(void)qp_decoder_more(cur->qp, data, size, &pos, &error);
		extract_body(ctx, ctx->decoded->data, ctx->decoded->used);
		break;
	default:
		/* 7bit, 8bit, binary, or unknown: as it is */
		extract_body(ctx, data, size);
		break;
	}
}

/* Hand out the reported messages noted by extract_embedded_message():
   the raw body of each message/rfc822 part, read again from the input
   (a mail's stream is seekable; when it is not, they are left out). */
static void extract_embedded_messages(struct extract_ctx *ctx,
				      struct istream *input)
{
	struct message_part *part;
	const unsigned char *data;
	uoff_t start, size, left, max = ctx->limits->max_attachment_size;
	size_t n;
	bool truncated;
	unsigned int i, first;
	int ret = 0;

	/* numbered after the attachments handed out before them */
	first = ctx->attachments - array_count(&ctx->embedded);
	for (i = 0; i < array_count(&ctx->embedded); i++) {
		part = array_idx_elem(&ctx->embedded, i);
		start = part->physical_pos + part->header_size.physical_size;
		size = part->body_size.physical_size;
		i_zero(&ctx->att);
		ctx->att.index = first + i + 1;
		ctx->att.content_type = "message/rfc822";
		ctx->att.message_id = ctx->message_id;
		if (!input->seekable || !ctx->callbacks->begin(&ctx->att,
							       ctx->context))
			continue;
		truncated = size > max;
		left = truncated ? max : size;
		i_stream_seek(input, start);
		while (left > 0 &&
		       (ret = i_stream_read_more(input, &data, &n)) > 0) {
			n = I_MIN(n, left);
			ctx->callbacks->data(data, n, ctx->context);
			i_stream_skip(input, n);
			left -= n;
		}
		/* a read that failed cut it short */
		ctx->callbacks->end(&ctx->att, truncated ||
				    input->stream_errno != 0, ctx->context);
		if (input->stream_errno != 0)
			break;
	}
}

/* The total part count limit may also be hit inside a part's body, after
   its headers were seen. */
static bool parts_overflowed(const struct message_part *part)
{
	for (; part != NULL; part = part->next) {
		if ((part->flags & MESSAGE_PART_FLAG_OVERFLOW) != 0 ||
		    parts_overflowed(part->children))
			return TRUE;
	}
	return FALSE;
}

int dmarc_extract_message(struct istream *input,
			  const struct dmarc_limits *limits,
			  const struct dmarc_extract_callbacks *callbacks,
			  void *context, struct dmarc_extract_stats *stats_r,
			  const char **error_r)
{
	const struct message_parser_settings parser_set = {
		.hdr_flags = MESSAGE_HEADER_PARSER_FLAG_CLEAN_ONELINE,
		/* +1: lib-mail counts the message itself as a level */
		.max_nested_mime_parts = limits->max_mime_depth + 1,
		/* lib-mail's default bounds the part count */
	};
	struct message_parser_ctx *parser;
	struct message_decoder_context *decoder;
	struct message_block raw, block;
	struct message_part *parts;
	struct extract_ctx ctx;
	int ret;

	i_zero(&ctx);
	ctx.pool = pool_alloconly_create("dmarc extract", 1024);
	ctx.limits = limits;
	ctx.callbacks = callbacks;
	ctx.context = context;

	ctx.decoded = buffer_create_dynamic(default_pool, IO_BLOCK_SIZE);
	ctx.peek = buffer_create_dynamic(default_pool,
					 DMARC_EXTRACT_TEXT_PEEK_SIZE);
	p_array_init(&ctx.embedded, ctx.pool, 2);
	parser = message_parser_init(ctx.pool, input, &parser_set);
	decoder = message_decoder_init(NULL, MESSAGE_DECODER_FLAG_RETURN_BINARY);
	while ((ret = message_parser_parse_next_block(parser, &raw)) > 0) {
		if (raw.part != ctx.cur.part) {
			extract_part_end(&ctx, FALSE);
			ctx.cur.part = raw.part;
			ctx.cur.content_type = "text/plain";
		}
		if (raw.hdr == NULL) {
			/* The first block without a header line ends the
			   headers. Once per part: an attachment that began
			   twice counted twice and lost its first copy. */
			if (!ctx.cur.headers_done) {
				ctx.cur.headers_done = TRUE;
				extract_headers_done(&ctx);
			}
			if (raw.size > 0)
				extract_raw_body(&ctx, raw.data, raw.size);
			continue;
		}
		/* header lines only: RFC 2047 decoded, continuations
		   merged */
		if (message_decoder_decode_next_block(decoder, &raw, &block) &&
		    block.hdr != NULL && !block.hdr->eoh)
			extract_header(&ctx, block.hdr);
	}
	extract_part_end(&ctx, input->stream_errno != 0);
	message_decoder_deinit(&decoder);
	message_parser_deinit(&parser, &parts);
	buffer_free(&ctx.decoded);
	buffer_free(&ctx.peek);
	if (input->stream_errno == 0)
		extract_embedded_messages(&ctx, input);

	if (stats_r != NULL) {
		i_zero(stats_r);
		stats_r->skipped = ctx.skipped;
		stats_r->mime_overflow = ctx.mime_overflow ||
			parts_overflowed(parts);
		stats_r->is_feedback_report = ctx.is_feedback_report;
	}
	pool_unref(&ctx.pool);
	if (input->stream_errno != 0) {
		*error_r = t_strdup_printf("read(%s) failed: %s",
					   i_stream_get_name(input),
					   i_stream_get_error(input));
		return -1;
	}
	return 0;
}
