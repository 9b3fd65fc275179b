#ifndef DMARC_EXTRACT_H
#define DMARC_EXTRACT_H

/* message -> attachments, with Dovecot's lib-mail (message-parser,
   message-decoder, RFC 2231/2047 file names). A leaf MIME part is an
   attachment when it has a file name, or when its type is anything but
   text/plain or text/html (a single-part message whose body is the report
   counts, as Mimecast sends them), or when it is a nameless text/plain
   part whose first bytes the caller claims (claim_text: an ARF part
   labelled text/plain, a text-only failure report). */

struct istream;
struct dmarc_limits;

struct dmarc_attachment {
	/* 1-based position among the message's attachments */
	unsigned int index;
	/* decoded file name (Content-Disposition filename, else Content-Type
	   name), or NULL; untrusted: never use it as a path */
	const char *filename;
	/* lower-case "type/subtype"; "text/plain" when the part had none */
	const char *content_type;
	/* the Content-Type charset parameter as sent, or NULL; the data is
	   never converted */
	const char *charset;
	/* the message's Message-ID header, or NULL */
	const char *message_id;
};

/* Bytes of a nameless text/plain part that claim_text() gets to see. */
#define DMARC_EXTRACT_TEXT_PEEK_SIZE 4096

struct dmarc_extract_callbacks {
	/* Return FALSE to skip this attachment's data (then neither data()
	   nor end() is called for it). */
	bool (*begin)(const struct dmarc_attachment *att, void *context);
	/* The bytes as sent: transfer encoding removed, nothing converted,
	   whatever the Content-Type says. */
	void (*data)(const unsigned char *data, size_t size, void *context);
	/* truncated: the data was cut short, either because the
	   attachment exceeded max_attachment_size, or because reading the
	   message failed inside it (dmarc_extract_message() then returns
	   -1): it is not the whole attachment. */
	void (*end)(const struct dmarc_attachment *att, bool truncated,
		    void *context);
	/* Optional: a header of a message embedded in this one
	   (message/rfc822, as a failure report carries the message it
	   reports), RFC 2047 decoded to UTF-8, unfolded. */
	void (*embedded_header)(const char *name, const char *value,
				void *context);
	/* Optional: a text/plain part without a file name is the mail's
	   own text, unless this returns TRUE for its first bytes (the
	   transfer encoding removed; up to DMARC_EXTRACT_TEXT_PEEK_SIZE
	   of them, fewer only when the part is shorter): then it is an
	   attachment like any other. */
	bool (*claim_text)(const unsigned char *data, size_t size,
			   void *context);
};

struct dmarc_extract_stats {
	/* attachments past limits->max_attachments, not handed out */
	unsigned int skipped;
	/* MIME parts nested deeper than limits->max_mime_depth (or past
	   lib-mail's part count limit) were not looked into */
	bool mime_overflow;
	/* the message has a multipart/report with report-type=
	   feedback-report (RFC 6591), or without a report-type: a failure
	   report, whether or not an ARF part was found in it */
	bool is_feedback_report;
};

/* Walk the whole message. Returns 0 when the message was read to its end,
   -1 on a read error (error_r says why; attachments already handed out
   stay valid). At most limits->max_attachments attachments are handed out.
   stats_r may be NULL. */
int dmarc_extract_message(struct istream *input,
			  const struct dmarc_limits *limits,
			  const struct dmarc_extract_callbacks *callbacks,
			  void *context, struct dmarc_extract_stats *stats_r,
			  const char **error_r);

#endif
