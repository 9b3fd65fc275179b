/* Unit tests for dmarc-extract.c: the corpus mails and generated MIME. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "istream.h"
#include "istream-private.h"
#include "base64.h"
#include "test-dmarc-common.h"
#include "dmarc-settings.h"
#include "dmarc-extract.h"
#include "dmarc-kinds.h"

#include <fcntl.h>

struct extracted {
	ARRAY_TYPE(const_string) names, types;
	const char *message_id;
	unsigned int ends, truncated;
	size_t first_size;
	unsigned char first_bytes[4];
	/* all of the first attachment, when not NULL */
	buffer_t *first_data;
	ARRAY_TYPE(const_string) charsets;
	bool mime_overflow;
};

static bool test_begin_cb(const struct dmarc_attachment *att, void *context)
{
	struct extracted *ex = context;
	const char *name = att->filename == NULL ? "" : t_strdup(att->filename);
	const char *type = t_strdup(att->content_type);

	array_push_back(&ex->names, &name);
	array_push_back(&ex->types, &type);
	if (array_is_created(&ex->charsets)) {
		const char *charset = t_strdup(att->charset);

		array_push_back(&ex->charsets, &charset);
	}
	if (att->message_id != NULL)
		ex->message_id = t_strdup(att->message_id);
	return TRUE;
}

static void test_data_cb(const unsigned char *data, size_t size, void *context)
{
	struct extracted *ex = context;

	if (array_count(&ex->names) == 1) {
		if (ex->first_size < sizeof(ex->first_bytes))
			memcpy(ex->first_bytes + ex->first_size, data,
			       I_MIN(size, sizeof(ex->first_bytes) - ex->first_size));
		ex->first_size += size;
		if (ex->first_data != NULL)
			buffer_append(ex->first_data, data, size);
	}
}

static void test_end_cb(const struct dmarc_attachment *att ATTR_UNUSED,
			bool truncated, void *context)
{
	struct extracted *ex = context;

	ex->ends++;
	if (truncated)
		ex->truncated++;
}

static const struct dmarc_extract_callbacks test_callbacks = {
	.begin = test_begin_cb,
	.data = test_data_cb,
	.end = test_end_cb,
};

static int extract(struct istream *input, const struct dmarc_limits *limits,
		   struct extracted *ex_r, unsigned int *skipped_r)
{
	struct dmarc_extract_stats stats;
	const char *error;
	int ret;

	i_zero(ex_r);
	t_array_init(&ex_r->names, 4);
	t_array_init(&ex_r->types, 4);
	ret = dmarc_extract_message(input, limits, &test_callbacks, ex_r,
				    &stats, &error);
	ex_r->mime_overflow = stats.mime_overflow;
	if (skipped_r != NULL)
		*skipped_r = stats.skipped;
	return ret;
}

static int extract_str(const char *mail, const struct dmarc_limits *limits,
		       struct extracted *ex_r, unsigned int *skipped_r)
{
	struct istream *input = i_stream_create_from_data(mail, strlen(mail));
	int ret = extract(input, limits, ex_r, skipped_r);

	i_stream_unref(&input);
	return ret;
}

static void test_extract_corpus(void)
{
	static const struct {
		const char *file, *name, *type;
	} tests[] = {
		/* single-part bodies that are the attachment */
		{ "mail-auth--100.eml", "google.com!stalw.art!1669507200!1669593599.zip",
		  "application/zip" },
		{ "parsedmarc--mimecast-weird-gzip.eml", NULL, "application/gzip" },
		/* .xml.gz labelled application/octet-stream */
		{ "mail-auth--104.eml", "amazonses.com!stalw.art!1663545600!1663632000.xml.gz",
		  "application/octet-stream" },
		/* multipart/related with an HTML body: only the gzip */
		{ "mox--outlook.eml", "protection.outlook.com!ueber.net!1634256000!1634342400.xml.gz",
		  "application/gzip" },
	};
	const char *const *names = test_corpus_list("email");
	struct extracted ex;
	unsigned int i, j, skipped;

	if (test_corpus_dir() == NULL)
		return;
	test_begin("extract: each corpus mail has exactly one report attachment");
	for (i = 0; names[i] != NULL; i++) {
		const char *path = t_strconcat(test_corpus_dir(), "/email/",
					       names[i], NULL);
		int fd = open(path, O_RDONLY);
		struct istream *input = i_stream_create_fd_autoclose(&fd, 4096);

		test_assert_idx(extract(input, test_default_limits(), &ex,
					&skipped) == 0, i);
		i_stream_unref(&input);
		test_assert_idx(array_count(&ex.names) == 1 && ex.ends == 1, i);
		test_assert_idx(ex.message_id != NULL && ex.message_id[0] == '<', i);
		/* decoded: gzip or zip magic, not base64 text */
		test_assert_idx(ex.first_size > 4 &&
				((ex.first_bytes[0] == 0x1f && ex.first_bytes[1] == 0x8b) ||
				 memcmp(ex.first_bytes, "PK\x03\x04", 4) == 0), i);
		for (j = 0; j < N_ELEMENTS(tests); j++) {
			if (strcmp(tests[j].file, names[i]) != 0)
				continue;
			if (tests[j].name != NULL) {
				test_assert_strcmp_idx(array_idx_elem(&ex.names, 0),
						       tests[j].name, j);
			}
			test_assert_strcmp_idx(array_idx_elem(&ex.types, 0),
					       tests[j].type, j);
		}
	}
	test_end();
}

static const char multi_mail[] =
	"From: r@example.com\n"
	"Message-ID: <multi@example.com>\n"
	"Content-Type: multipart/mixed; boundary=\"b\"\n"
	"\n"
	"--b\n"
	"Content-Type: text/plain\n"
	"\n"
	"the body, not an attachment\n"
	"--b\n"
	"Content-Type: text/html\n"
	"\n"
	"<p>neither is this</p>\n"
	"--b\n"
	"Content-Type: application/gzip\n"
	"Content-Disposition: attachment;\n"
	" filename*0*=UTF-8''r%C3%A9port%2F..%2F;\n"
	" filename*1=\"x.xml.gz\"\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"H4sIAAAAAAAAAwMAAAAAAAAAAAA=\n"
	"--b\n"
	"Content-Type: text/xml; name=\"=?UTF-8?B?csOpcG9ydC54bWw=?=\"\n"
	"\n"
	"<feedback/>\n"
	"--b\n"
	"Content-Type: application/zip\n"
	"\n"
	"PK\x03\x04\n"
	"--b--\n";

static void test_extract_names_and_parts(void)
{
	struct extracted ex;
	unsigned int skipped;

	test_begin("extract: text bodies skipped, RFC 2231 and 2047 names");
	test_assert(extract_str(multi_mail, test_default_limits(), &ex,
				&skipped) == 0);
	test_assert(array_count(&ex.names) == 3 && ex.ends == 3 && skipped == 0);
	/* decoded, untrusted: the archive makes it safe, not the extractor */
	test_assert_strcmp(array_idx_elem(&ex.names, 0), "r\xc3\xa9port/../x.xml.gz");
	test_assert_strcmp(array_idx_elem(&ex.names, 1), "r\xc3\xa9port.xml");
	test_assert_strcmp(array_idx_elem(&ex.names, 2), "");
	test_assert_strcmp(array_idx_elem(&ex.types, 2), "application/zip");
	test_assert_strcmp(ex.message_id, "<multi@example.com>");
	/* base64 decoded: the gzip magic */
	test_assert(ex.first_bytes[0] == 0x1f && ex.first_bytes[1] == 0x8b);
	test_end();
}

/* Bytes that are no text in any charset: a gzip header and invalid
   UTF-8. */
static const unsigned char binary_bytes[] = {
	0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, 0x80, 0x81, 0xc3, 0x28, 0x00,
	0x0a, 0x0d, 0xe2, 0x82, 0xf0, 0x9f, 0x92, 0x3d, 0x20, 0x09, 0x7f,
};

static void test_extract_binary_with_charset(void)
{
	static const char *const headers[] = {
		"Content-Type: application/gzip; charset=\"us-ascii\";\n"
		" name=\"r.xml.gz\"\nContent-Transfer-Encoding: base64\n",
		"Content-Type: application/octet-stream; charset=utf-8\n"
		"Content-Disposition: attachment; filename=r.zip\n"
		"Content-Transfer-Encoding: quoted-printable\n",
		"Content-Type: application/gzip; charset=iso-8859-1\n"
		"Content-Disposition: attachment; filename=r.gz\n"
		"Content-Transfer-Encoding: binary\n",
	};
	unsigned int i, j;

	test_begin("extract: binary attachments with a charset parameter "
		   "come out byte for byte");
	for (i = 0; i < N_ELEMENTS(headers); i++) T_BEGIN {
		string_t *mail = t_str_new(1024), *body = t_str_new(256);
		struct extracted ex;

		if (i == 0) {
			base64_encode(binary_bytes, sizeof(binary_bytes), body);
			str_append_c(body, '\n');
		} else if (i == 1) {
			for (j = 0; j < sizeof(binary_bytes); j++)
				str_printfa(body, "=%02X", binary_bytes[j]);
			str_append(body, "\n");
		} else {
			str_append_data(body, binary_bytes,
					sizeof(binary_bytes));
			str_append_c(body, '\n');
		}
		str_append(mail, "From: a@example.com\nMessage-ID: <b@x>\n"
			   "MIME-Version: 1.0\n"
			   "Content-Type: multipart/mixed; boundary=\"B\"\n\n"
			   "--B\nContent-Type: text/plain\n\nreport\n--B\n");
		str_append(mail, headers[i]);
		str_append_c(mail, '\n');
		str_append_str(mail, body);
		str_append(mail, "--B--\n");

		struct istream *input;
		const char *error;

		i_zero(&ex);
		t_array_init(&ex.names, 4);
		t_array_init(&ex.types, 4);
		ex.first_data = t_buffer_create(64);
		input = i_stream_create_from_data(str_data(mail), str_len(mail));
		test_assert_idx(dmarc_extract_message(input,
			test_default_limits(), &test_callbacks, &ex, NULL,
			&error) == 0, i);
		i_stream_unref(&input);
		test_assert_idx(array_count(&ex.names) == 1, i);
		/* binary: the trailing line break of the MIME body stays */
		test_assert_idx(ex.first_data->used >= sizeof(binary_bytes) &&
				memcmp(ex.first_data->data, binary_bytes,
				       sizeof(binary_bytes)) == 0, i);
	} T_END;
	test_end();
}

/* A mail with one attachment: headers, then the body as it is. */
static const char *
one_part_mail(const char *part_headers, const char *body, bool closed)
{
	return t_strconcat("From: a@example.com\nMessage-ID: <p@x>\n"
		"MIME-Version: 1.0\n"
		"Content-Type: multipart/mixed; boundary=\"B\"\n\n"
		"--B\nContent-Type: text/plain\n\nreport\n--B\n",
		part_headers, "\n", body, closed ? "--B--\n" : "", NULL);
}

/* Everything of each attachment: names, types, charsets, the first's
   bytes. */
static void extract_collect(const char *mail, struct extracted *ex_r)
{
	struct istream *input = i_stream_create_from_data(mail, strlen(mail));
	const char *error;

	i_zero(ex_r);
	t_array_init(&ex_r->names, 4);
	t_array_init(&ex_r->types, 4);
	t_array_init(&ex_r->charsets, 4);
	ex_r->first_data = t_buffer_create(256);
	test_assert(dmarc_extract_message(input, test_default_limits(),
					  &test_callbacks, ex_r, NULL,
					  &error) == 0);
	i_stream_unref(&input);
}

static void test_extract_base64_text_without_closing_boundary(void)
{
	static const char *const types[] = {
		"text/xml", "text/plain; name=\"report.xml\"",
		"text/xml; charset=utf-8", "application/xml",
	};
	const char *xml = "<?xml version=\"1.0\"?>\n<feedback>"
		"<report_metadata><report_id>unclosed</report_id>"
		"</report_metadata></feedback>\n";
	unsigned int i, closed;

	test_begin("extract: a base64 text part without its closing "
		   "boundary is one whole attachment");
	for (i = 0; i < N_ELEMENTS(types); i++) {
		for (closed = 0; closed < 2; closed++) T_BEGIN {
			string_t *body = t_str_new(256);
			struct extracted ex;
			buffer_t *data = t_buffer_create(256);

			base64_encode(xml, strlen(xml), body);
			/* lines of 76, as mailers write them */
			for (size_t pos = 76; pos < str_len(body); pos += 77)
				str_insert(body, pos, "\n");
			str_append_c(body, '\n');
			i_zero(&ex);
			t_array_init(&ex.names, 4);
			t_array_init(&ex.types, 4);
			ex.first_data = data;
			struct istream *input;
			const char *mail = one_part_mail(t_strconcat(
				"Content-Type: ", types[i], "\n"
				"Content-Disposition: attachment; filename=r.xml\n"
				"Content-Transfer-Encoding: base64\n", NULL),
				str_c(body), closed == 1);
			struct dmarc_extract_stats stats;
			const char *error;

			input = i_stream_create_from_data(mail, strlen(mail));
			test_assert_idx(dmarc_extract_message(input,
				test_default_limits(), &test_callbacks, &ex,
				&stats, &error) == 0, i);
			i_stream_unref(&input);
			test_assert_idx(array_count(&ex.names) == 1, i*2 + closed);
			test_assert_idx(ex.ends == 1, i*2 + closed);
			test_assert_idx(data->used == strlen(xml) &&
					memcmp(data->data, xml, data->used) == 0,
					i*2 + closed);
		} T_END;
	}
	test_end();
}

static void test_extract_binary_labelled_text(void)
{
	static const char *const types[] = {
		"text/xml", "text/plain; name=\"report.xml.gz\"",
		"text/xml; charset=utf-8",
		"text/plain; charset=us-ascii; name=r.xml.gz",
	};
	static const char *const ctes[] = { "base64", "quoted-printable",
					    "8bit" };
	unsigned int i, j, k;

	test_begin("extract: a gzip labelled as text comes out byte for byte");
	for (i = 0; i < N_ELEMENTS(types); i++) {
		for (j = 0; j < N_ELEMENTS(ctes); j++) T_BEGIN {
			string_t *body = t_str_new(256);
			struct extracted ex;

			if (j == 0) {
				base64_encode(binary_bytes,
					      sizeof(binary_bytes), body);
			} else if (j == 1) {
				for (k = 0; k < sizeof(binary_bytes); k++)
					str_printfa(body, "=%02X",
						    binary_bytes[k]);
			} else {
				/* 8bit: no NUL, no line breaks */
				str_append_data(body, binary_bytes, 3);
				str_append_data(body, binary_bytes + 4, 6);
			}
			str_append_c(body, '\n');
			i_zero(&ex);
			t_array_init(&ex.names, 4);
			t_array_init(&ex.types, 4);
			ex.first_data = t_buffer_create(64);
			struct istream *input;
			const char *error, *mail = one_part_mail(t_strconcat(
				"Content-Type: ", types[i], "\n"
				"Content-Transfer-Encoding: ", ctes[j], "\n",
				NULL), str_c(body), TRUE);

			input = i_stream_create_from_data(mail, strlen(mail));
			test_assert(dmarc_extract_message(input,
				test_default_limits(), &test_callbacks, &ex,
				NULL, &error) == 0);
			i_stream_unref(&input);
			test_assert_idx(array_count(&ex.names) == 1, i*10 + j);
			if (j < 2) {
				test_assert_idx(ex.first_data->used >= sizeof(binary_bytes) &&
					memcmp(ex.first_data->data, binary_bytes,
					       sizeof(binary_bytes)) == 0, i*10 + j);
			} else {
				test_assert_idx(ex.first_data->used >= 9 &&
					memcmp(ex.first_data->data, binary_bytes, 3) == 0 &&
					memcmp(CONST_PTR_OFFSET(ex.first_data->data, 3),
					       binary_bytes + 4, 6) == 0, i*10 + j);
			}
		} T_END;
	}
	test_end();
}

static void test_extract_charset_handed_on(void)
{
	/* "caf\xe9" in ISO-8859-1: converted it would be "caf\xc3\xa9" */
	const char *mail = one_part_mail(
		"Content-Type: text/xml; charset=\"ISO-8859-1\"\n"
		"Content-Disposition: attachment; filename=r.xml\n"
		"Content-Transfer-Encoding: quoted-printable\n",
		"<feedback>caf=E9</feedback>\n", TRUE);
	struct extracted ex;

	test_begin("extract: a text/xml charset is handed on, the bytes kept");
	extract_collect(mail, &ex);
	test_assert(array_count(&ex.names) == 1);
	test_assert_strcmp(array_idx_elem(&ex.charsets, 0), "ISO-8859-1");
	test_assert(ex.first_data->used >= 25 &&
		    memcmp(ex.first_data->data, "<feedback>caf\xe9</feedback>",
			   25) == 0);
	test_end();
}

static void test_extract_mime_depth_limit(void)
{
	struct dmarc_limits limits = *test_default_limits();
	unsigned int depth, levels, i, skipped;

	test_begin("extract: a report below dmarcreport_max_mime_depth "
		   "is found, one deeper is reported");
	limits.max_mime_depth = 5;
	for (levels = 1; levels <= 7; levels++) T_BEGIN {
		string_t *mail = t_str_new(4096);
		struct extracted ex;

		/* the message is multipart level 1, each nested one more */
		str_append(mail, "Message-ID: <deep@x>\nContent-Type: "
			   "multipart/mixed; boundary=\"b0\"\n\n");
		for (depth = 1; depth < levels; depth++) {
			str_printfa(mail, "--b%u\nContent-Type: multipart/mixed; "
				    "boundary=\"b%u\"\n\n", depth - 1, depth);
		}
		str_printfa(mail, "--b%u\nContent-Type: application/gzip; "
			    "name=\"deep.gz\"\n\nx\n", levels - 1);
		for (i = levels; i > 0; i--)
			str_printfa(mail, "--b%u--\n", i - 1);
		test_assert_idx(extract_str(str_c(mail), &limits, &ex,
					    &skipped) == 0, levels);
		test_assert_idx(array_count(&ex.names) ==
				(levels <= limits.max_mime_depth ? 1U : 0U), levels);
		test_assert_idx(ex.mime_overflow ==
				(levels > limits.max_mime_depth), levels);
	} T_END;
	test_end();
}

static void test_extract_limits(void)
{
	struct dmarc_limits limits = *test_default_limits();
	struct extracted ex;
	unsigned int skipped;

	test_begin("extract: attachment size and count limits");
	limits.max_attachment_size = 3;
	test_assert(extract_str(multi_mail, &limits, &ex, &skipped) == 0);
	test_assert(ex.truncated == 3 && ex.first_size == 3);

	limits = *test_default_limits();
	limits.max_attachments = 2;
	test_assert(extract_str(multi_mail, &limits, &ex, &skipped) == 0);
	test_assert(array_count(&ex.names) == 2 && ex.ends == 2 && skipped == 1);
	test_end();
}

static void test_extract_deep_nesting(void)
{
	string_t *mail = t_str_new(65536);
	struct extracted ex;
	unsigned int i, skipped;

	test_begin("extract: deep nesting and many parts stay bounded");
	str_append(mail, "Content-Type: multipart/mixed; boundary=\"b0\"\n\n");
	for (i = 1; i < 500; i++) {
		str_printfa(mail, "--b%u\nContent-Type: multipart/mixed; "
			    "boundary=\"b%u\"\n\n", i - 1, i);
	}
	str_printfa(mail, "--b499\nContent-Type: application/gzip; "
		    "name=\"deep.gz\"\n\nx\n");
	for (i = 500; i > 0; i--)
		str_printfa(mail, "--b%u--\n", i - 1);
	test_assert(extract_str(str_c(mail), test_default_limits(), &ex,
				&skipped) == 0);
	/* lib-mail stops nesting at its limit: whatever comes out is few */
	test_assert(array_count(&ex.names) <= 1);

	str_truncate(mail, 0);
	str_append(mail, "Content-Type: multipart/mixed; boundary=\"b\"\n\n");
	for (i = 0; i < 20000; i++)
		str_printfa(mail, "--b\nContent-Type: application/zip\n\nPK\n");
	str_append(mail, "--b--\n");
	test_assert(extract_str(str_c(mail), test_default_limits(), &ex,
				&skipped) == 0);
	test_assert(array_count(&ex.names) ==
		    test_default_limits()->max_attachments);
	test_assert(skipped > 0);
	test_end();
}

static const char *joined_types(const struct extracted *ex)
{
	string_t *str = t_str_new(64);
	const char *type;

	array_foreach_elem(&ex->types, type) {
		if (str_len(str) > 0)
			str_append_c(str, ' ');
		str_append(str, type);
	}
	return str_c(str);
}

static void test_extract_reported_message(void)
{
	static const char report[] =
		"Content-Type: multipart/report; report-type=feedback-report;"
		" boundary=b\n\n"
		"--b\nContent-Type: text/plain\n\nhuman\n"
		"--b\nContent-Type: message/feedback-report\n\n"
		"Feedback-Type: auth-failure\n\n"
		"--b\nContent-Type: message/rfc822\n\n"
		"From: a@example.com\nSubject: s\n"
		"Content-Type: application/zip; name=x.zip\n\nPK\n"
		"--b--\n";
	static const char forwarded[] =
		"Content-Type: multipart/mixed; boundary=b\n\n"
		"--b\nContent-Type: text/plain\n\nsee attached\n"
		"--b\nContent-Type: message/rfc822\n\n"
		"From: a@example.com\nSubject: s\n"
		"Content-Type: application/zip; name=x.zip\n\nPK\n"
		"--b--\n";
	struct extracted ex;
	unsigned int skipped;

	test_begin("extract: a failure report's reported message, whole");
	test_assert(extract_str(report, test_default_limits(), &ex,
				&skipped) == 0);
	/* the zip inside it is not one of the mail's attachments: the
	   message is handed out whole, after the mail was read */
	test_assert_strcmp(joined_types(&ex),
			   "message/feedback-report message/rfc822");
	test_assert(ex.ends == 2);
	/* a forwarded message is descended into, as before */
	test_assert(extract_str(forwarded, test_default_limits(), &ex,
				&skipped) == 0);
	test_assert_strcmp(joined_types(&ex), "application/zip");
	test_end();
}

/* A seekable istream over data that reads as it is until it is sought
   back: from then on a read past fail_offset fails (a disk that fails
   when the reported message is read again). */
struct reread_fail_istream {
	struct istream_private istream;
	const unsigned char *data;
	size_t size;
	uoff_t fail_offset;
	bool sought_back;
};

static ssize_t reread_fail_istream_read(struct istream_private *stream)
{
	struct reread_fail_istream *rstream =
		container_of(stream, struct reread_fail_istream, istream);
	uoff_t offset = stream->istream.v_offset + (stream->pos - stream->skip);
	uoff_t end = rstream->sought_back ? rstream->fail_offset :
		rstream->size;
	size_t avail, n;

	if (offset >= end) {
		if (rstream->sought_back) {
			io_stream_set_error(&stream->iostream,
					    "test: reading again failed");
			stream->istream.stream_errno = EIO;
		} else {
			stream->istream.eof = TRUE;
		}
		return -1;
	}
	if (!i_stream_try_alloc(stream, 256, &avail))
		return -2;
	n = I_MIN(I_MIN(avail, 256), end - offset);
	memcpy(stream->w_buffer + stream->pos, rstream->data + offset, n);
	stream->pos += n;
	return n;
}

static void reread_fail_istream_seek(struct istream_private *stream,
				     uoff_t v_offset, bool mark ATTR_UNUSED)
{
	struct reread_fail_istream *rstream =
		container_of(stream, struct reread_fail_istream, istream);

	if (v_offset < stream->istream.v_offset)
		rstream->sought_back = TRUE;
	stream->istream.v_offset = v_offset;
	stream->skip = stream->pos = 0;
}

static struct istream *
reread_fail_istream_create(const char *data, uoff_t fail_offset)
{
	struct reread_fail_istream *rstream;

	rstream = i_new(struct reread_fail_istream, 1);
	rstream->data = (const unsigned char *)data;
	rstream->size = strlen(data);
	rstream->fail_offset = fail_offset;
	rstream->istream.max_buffer_size = 64 * 1024;
	rstream->istream.read = reread_fail_istream_read;
	rstream->istream.seek = reread_fail_istream_seek;
	rstream->istream.istream.blocking = TRUE;
	rstream->istream.istream.seekable = TRUE;
	return i_stream_create(&rstream->istream, NULL, -1, 0);
}

/* A read that fails inside an attachment cuts it short: end() says
   truncated, as past max_attachment_size, so that no part of it is taken
   for the whole. The same for a reported message read again. */
static void test_extract_read_error_truncates(void)
{
	static const char mail[] =
		"Content-Type: multipart/mixed; boundary=b\n\n"
		"--b\nContent-Type: text/plain\n\nhuman\n"
		"--b\nContent-Type: text/xml; name=r.xml\n\n"
		"<feedback><report_metadata><org_name>o</org_name>"
		"</report_metadata></feedback>\n"
		"--b--\n";
	static const char report[] =
		"Content-Type: multipart/report; report-type=feedback-report;"
		" boundary=b\n\n"
		"--b\nContent-Type: text/plain\n\nhuman\n"
		"--b\nContent-Type: message/feedback-report\n\n"
		"Feedback-Type: auth-failure\n\n"
		"--b\nContent-Type: message/rfc822\n\n"
		"From: a@example.com\nSubject: the reported message\n\n"
		"its body\n"
		"--b--\n";
	struct test_fail_reader reader = {
		.mem = { .data = (const void *)mail, .size = strlen(mail) },
		.fail_offset = strstr(mail, "</report_metadata>") - mail,
	};
	struct istream *input;
	struct extracted ex;

	test_begin("extract: a read error inside an attachment truncates it");
	input = test_istream_create_func(test_fail_read, &reader, 64);
	test_assert(extract(input, test_default_limits(), &ex, NULL) < 0);
	test_assert(input->stream_errno == EIO);
	test_assert(array_count(&ex.names) == 1 && ex.ends == 1 &&
		    ex.truncated == 1);
	i_stream_unref(&input);

	/* the reported message is read again after the whole mail: that
	   read fails in its body */
	input = reread_fail_istream_create(report,
		strstr(report, "its body") - report + 3);
	test_assert(extract(input, test_default_limits(), &ex, NULL) < 0);
	test_assert_strcmp(joined_types(&ex),
			   "message/feedback-report message/rfc822");
	test_assert(ex.ends == 2 && ex.truncated == 1);
	i_stream_unref(&input);

	/* read whole, the same mail has nothing truncated */
	input = reread_fail_istream_create(report, strlen(report));
	test_assert(extract(input, test_default_limits(), &ex, NULL) == 0);
	test_assert(ex.ends == 2 && ex.truncated == 0);
	i_stream_unref(&input);
	test_end();
}

static bool test_claim_text_cb(const unsigned char *data, size_t size,
			       void *context ATTR_UNUSED)
{
	return size >= 14 && memcmp(data, "Feedback-Type:", 14) == 0;
}

static const struct dmarc_extract_callbacks test_claim_callbacks = {
	.begin = test_begin_cb,
	.data = test_data_cb,
	.end = test_end_cb,
	.claim_text = test_claim_text_cb,
};

static void test_extract_claimed_text(void)
{
	string_t *mail = t_str_new(16384), *arf = t_str_new(12000);
	struct istream *input;
	struct extracted ex;
	const char *error;
	unsigned int i;

	test_begin("extract: a nameless text/plain part claimed by content");
	/* longer than the peek: the bytes past it follow in order */
	str_append(arf, "Feedback-Type: auth-failure\n");
	for (i = 0; i < 300; i++)
		str_printfa(arf, "Reported-URI: http://example.org/%05u\n", i);
	str_append(mail, "Content-Type: multipart/report; boundary=b\n\n"
		   "--b\nContent-Type: text/plain\n\nFeedback-Type is what "
		   "this human text talks about\n"
		   "--b\nContent-Type: text/plain\n"
		   "Content-Transfer-Encoding: base64\n\n");
	base64_encode(str_data(arf), str_len(arf), mail);
	str_append(mail, "\n--b\nContent-Type: text/plain\n\n"
		   "Feedback-Type: short\n--b--\n");

	i_zero(&ex);
	t_array_init(&ex.names, 4);
	t_array_init(&ex.types, 4);
	ex.first_data = t_buffer_create(256);
	input = i_stream_create_from_data(str_data(mail), str_len(mail));
	test_assert(dmarc_extract_message(input, test_default_limits(),
		&test_claim_callbacks, &ex, NULL, &error) == 0);
	i_stream_unref(&input);
	test_assert(array_count(&ex.names) == 2 && ex.ends == 2);
	test_assert_strcmp(joined_types(&ex), "text/plain text/plain");
	test_assert(ex.first_data->used == str_len(arf) &&
		    memcmp(ex.first_data->data, str_data(arf),
			   str_len(arf)) == 0);
	/* without claim_text, text bodies stay the mail's own */
	test_assert(extract_str(str_c(mail), test_default_limits(), &ex,
				NULL) == 0);
	test_assert(array_count(&ex.names) == 0);
	test_end();
}

/* Every attachment of a mail, its bytes and the embedded headers, as
   one string: what two walks of the same mail must agree on. */
static bool summary_begin(const struct dmarc_attachment *att, void *context)
{
	string_t *str = context;

	str_printfa(str, "begin %u %s|%s|%s|%s\n", att->index,
		    att->filename == NULL ? "" : att->filename,
		    att->content_type,
		    att->charset == NULL ? "" : att->charset,
		    att->message_id == NULL ? "" : att->message_id);
	return TRUE;
}

static void summary_data(const unsigned char *data, size_t size,
			 void *context)
{
	/* the blocks may be cut anywhere: only the bytes count */
	str_append_data(context, data, size);
}

static void summary_end(const struct dmarc_attachment *att, bool truncated,
			void *context)
{
	str_printfa(context, "\nend %u %d\n", att->index, truncated);
}

static void summary_embedded_header(const char *name, const char *value,
				    void *context)
{
	str_printfa(context, "header %s: %s\n", name, value);
}

static bool summary_claim_text(const unsigned char *data, size_t size,
			       void *context ATTR_UNUSED)
{
	/* the ingest's claim: ARF parts and text-only failure reports */
	return dmarc_kind_claims_text(data, size);
}

static const struct dmarc_extract_callbacks summary_callbacks = {
	.begin = summary_begin,
	.data = summary_data,
	.end = summary_end,
	.embedded_header = summary_embedded_header,
	.claim_text = summary_claim_text,
};

static const char *extract_summary(struct istream *input,
				   const struct dmarc_limits *limits)
{
	struct dmarc_extract_stats stats;
	string_t *str = t_str_new(65536);
	const char *error;
	int ret;

	ret = dmarc_extract_message(input, limits, &summary_callbacks, str,
				    &stats, &error);
	str_printfa(str, "ret %d skipped %u overflow %d feedback %d\n", ret,
		    stats.skipped, stats.mime_overflow,
		    stats.is_feedback_report);
	return str_c(str);
}

/* Issue 13 point 6: the extractor is also fed in small blocks (a read
   gives 1 byte up to a few KiB; lib-mail needs a whole header line in
   the buffer, so the buffer may hold more, see
   test_istream_create_trickle()) with identical results: every mail of
   the corpus (aggregate, TLS and failure reports), and the built mails
   of the tests above (base64 and quoted-printable across blocks, a
   claimed text part across its 4 KiB peek). */
static void test_extract_small_blocks(void)
{
	static const size_t block_sizes[] = { 1, 2, 3, 7, 64, 1000, 4096 };
	const char *const dirs[] = { "email", "tlsrpt", "failure" };
	struct dmarc_limits limits = *test_default_limits();
	ARRAY(const buffer_t *) mails;
	ARRAY_TYPE(const_string) labels;
	const char *whole, *label, *const *names;
	const buffer_t *data;
	struct istream *input;
	buffer_t *buf;
	string_t *qp;
	unsigned int i, k;

	test_begin("extract: fed in small blocks, the same results");
	t_array_init(&mails, 32);
	t_array_init(&labels, 32);
	for (i = 0; i < N_ELEMENTS(dirs) && test_corpus_dir() != NULL; i++) {
		for (names = test_corpus_list(dirs[i]); *names != NULL; names++) {
			if (!str_ends_with(*names, ".eml"))
				continue;
			data = test_read_file(t_strconcat(test_corpus_dir(),
				"/", dirs[i], "/", *names, NULL));
			if (data == NULL)
				continue;
			array_push_back(&mails, &data);
			array_push_back(&labels, names);
		}
	}
	buf = t_buffer_create(1024);
	buffer_append(buf, multi_mail, strlen(multi_mail));
	array_push_back(&mails, (const buffer_t **)&buf);
	label = "multi_mail";
	array_push_back(&labels, &label);
	/* quoted-printable with soft line breaks and escapes */
	qp = t_str_new(1024);
	str_append(qp, "Content-Type: multipart/mixed; boundary=b\n\n"
		   "--b\nContent-Type: text/xml; name=q.xml\n"
		   "Content-Transfer-Encoding: quoted-printable\n\n"
		   "<feedback a=3D\"x\">=C3=A9t=C3=A9 long line that goes =\n"
		   "on and on</feedback>=\n\n--b--\n");
	buf = t_buffer_create(str_len(qp));
	buffer_append(buf, str_data(qp), str_len(qp));
	array_push_back(&mails, (const buffer_t **)&buf);
	label = "quoted-printable";
	array_push_back(&labels, &label);

	/* truncation at the attachment size limit must cut at the same
	   byte whatever the blocks */
	limits.max_attachment_size = 1000;
	for (i = 0; i < array_count(&mails); i++) T_BEGIN {
		data = array_idx_elem(&mails, i);
		input = i_stream_create_from_data(data->data, data->used);
		whole = extract_summary(input, &limits);
		i_stream_unref(&input);
		for (k = 0; k < N_ELEMENTS(block_sizes); k++) {
			input = test_istream_create_trickle(data->data,
				data->used, block_sizes[k]);
			if (strcmp(extract_summary(input, &limits), whole) != 0) {
				i_error("%s: %zu-byte blocks differ",
					array_idx_elem(&labels, i),
					block_sizes[k]);
				test_assert_idx(FALSE, i);
			}
			i_stream_unref(&input);
		}
	} T_END;
	if (test_corpus_dir() != NULL)
		test_assert(array_count(&mails) >= 25);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_extract_corpus,
		test_extract_names_and_parts,
		test_extract_binary_with_charset,
		test_extract_base64_text_without_closing_boundary,
		test_extract_binary_labelled_text,
		test_extract_charset_handed_on,
		test_extract_mime_depth_limit,
		test_extract_limits,
		test_extract_deep_nesting,
		test_extract_reported_message,
		test_extract_read_error_truncates,
		test_extract_claimed_text,
		test_extract_small_blocks,
		NULL
	};
	return test_run(test_functions);
}
