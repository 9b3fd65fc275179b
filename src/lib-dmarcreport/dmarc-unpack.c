/* attachment bytes (an istream) -> documents (an istream each). The
   container is sniffed from its first bytes. gzip is inflated with zlib,
   which checks each member's CRC32 and ISIZE and steps over its header
   fields without keeping them; zip is read with libarchive's seekable
   reader over the input stream, after its directory was found small
   enough. A document is an istream whose read() inflates or extracts the
   next block; every byte that comes out is counted against the limits as
   it comes, so a bomb stops after max_decompressed_size bytes, in bounded
   memory. */

#include "lib.h"
#include "istream-private.h"
#include "dmarc-settings.h"
#include "dmarc-unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

/* A document stream's buffer, and what one read() of it produces at most:
   the parsers look at what a read gives them, the CPU budget is checked
   per read. */
#define UNPACK_DOC_MAX_BUFFER_SIZE (64*1024)
#define UNPACK_DOC_READ_SIZE (16*1024)
/* Input buffer of one gzip layer. */
#define UNPACK_GZIP_BLOCK_SIZE (16*1024)
/* gzip inside gzip is unwrapped up to this depth; reporters use one. */
#define UNPACK_GZIP_MAX_LAYERS 4
/* RFC 1952 2.3: a member's header with its optional extra field, file
   name and comment. Real ones hold a file name; longer is hostile. */
#define UNPACK_GZIP_MAX_HEADER_SIZE (64*1024)
/* APPNOTE 4.3.12: what each central directory entry starts with */
#define ZIP_CDIR_SIGNATURE "PK\001\002"

struct gzip_layer {
	z_stream zs;
	gz_header head;
	unsigned char in[UNPACK_GZIP_BLOCK_SIZE];
	uoff_t out_total;
	bool in_eof;
	bool member_ended;
};

/* The current document's bytes. */
struct unpack_istream {
	struct istream_private istream;
	/* NULL once the next document was opened (or the unpack freed):
	   reading then fails */
	struct dmarc_unpack *unpack;
};

struct dmarc_unpack {
	/* the container's bytes, from offset 0 */
	struct istream *input;
	const struct dmarc_limits *limits;
	uoff_t *message_budget;

	enum dmarc_container container;

	/* gzip: layer 0 reads the input, each next one the one before */
	struct gzip_layer *gz[UNPACK_GZIP_MAX_LAYERS];
	unsigned int gz_count;
	/* bytes of the innermost layer read while looking for another
	   gzip magic, handed out first */
	unsigned char gz_pending[2];
	unsigned int gz_pending_size;

	/* zip */
	struct archive *archive;
	/* bytes of input handed to libarchive by the last read callback,
	   skipped at the next one */
	size_t zip_handed;
	/* headers read from the zip, directories too */
	unsigned int entries;
	/* reading the current entry failed: the next one is still read */
	bool entry_failed;

	unsigned int documents;
	/* the current document, handed out by dmarc_unpack_next() */
	struct unpack_istream *doc;
	uoff_t decompressed;
	bool finished;
	/* An error is reported once, by the call that hit it (open errors by
	   the first dmarc_unpack_next()); after that everything ends. */
	char *open_error;
	bool failed;
};

static const char *archive_error(struct archive *archive)
{
	const char *error = archive_error_string(archive);

	return error != NULL ? error : "unknown libarchive error";
}

static enum dmarc_container
unpack_sniff(const unsigned char *magic, ssize_t ret)
{
	if (ret >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
		return DMARC_CONTAINER_GZIP;
	if (ret >= 4 && memcmp(magic, "PK\x03\x04", 4) == 0)
		return DMARC_CONTAINER_ZIP;
	return DMARC_CONTAINER_PLAIN;
}

static const char *unpack_input_error(struct istream *input)
{
	return t_strdup_printf("read(%s) failed: %s", i_stream_get_name(input),
			       i_stream_get_error(input));
}

/* The container's own bytes: >0, 0 at the end, -1 on a read error. The
   input is blocking (memory, a file): a read that would block is an
   error, not a wait. */
static ssize_t unpack_source_read(struct dmarc_unpack *unpack, void *buf,
				  size_t size, const char **error_r)
{
	const unsigned char *data;
	size_t n;
	int ret;

	ret = i_stream_read_more(unpack->input, &data, &n);
	if (ret < 0) {
		if (unpack->input->stream_errno == 0)
			return 0;
		*error_r = unpack_input_error(unpack->input);
		return -1;
	}
	if (ret == 0) {
		*error_r = t_strdup_printf("read(%s) failed: the stream would "
			"block", i_stream_get_name(unpack->input));
		return -1;
	}
	n = I_MIN(n, size);
	memcpy(buf, data, n);
	i_stream_skip(unpack->input, n);
	return n;
}

/* ---------------------------------------------------------------------
   zip */

/* libarchive's seekable reader loads the whole central directory when
   the zip is opened, and it walks it up to the end record whatever
   entry count that record claims: 1M entries cost 180 MB before the
   first header is handed out. Each directory entry starts with its own
   signature at its own offset, so the number of signatures in the file
   bounds what it can load. */
static int unpack_zip_count_dir_entries(struct dmarc_unpack *unpack,
					unsigned int max,
					unsigned int *count_r)
{
	const size_t sig_len = sizeof(ZIP_CDIR_SIGNATURE) - 1;
	struct istream *input = unpack->input;
	const unsigned char *data, *p, *end;
	size_t size, keep = 0, scanned;
	unsigned int count = 0;

	i_stream_seek(input, 0);
	while (count <= max &&
	       i_stream_read_bytes(input, &data, &size, keep + 1) > 0) {
		/* a signature may span two blocks: the last sig_len-1 bytes
		   are looked at again with the next ones */
		if (size < sig_len) {
			keep = size;
			continue;
		}
		scanned = size - (sig_len - 1);
		p = data;
		end = data + scanned;
		while (count <= max && p < end &&
		       (p = memchr(p, 'P', end - p)) != NULL) {
			if (memcmp(p, ZIP_CDIR_SIGNATURE, sig_len) == 0) {
				count++;
				p += sig_len;
			} else {
				p++;
			}
		}
		i_stream_skip(input, scanned);
		keep = size - scanned;
	}
	if (input->stream_errno != 0)
		return -1;
	i_stream_seek(input, 0);
	*count_r = count;
	return 0;
}

/* libarchive's read callback: the input's next bytes, valid until the
   next call (they are skipped then). */
static la_ssize_t
unpack_zip_read_cb(struct archive *archive, void *context, const void **buf_r)
{
	struct dmarc_unpack *unpack = context;
	const unsigned char *data;
	size_t size;
	int ret;

	i_stream_skip(unpack->input, unpack->zip_handed);
	unpack->zip_handed = 0;
	ret = i_stream_read_more(unpack->input, &data, &size);
	if (ret < 0) {
		if (unpack->input->stream_errno == 0)
			return 0;
		archive_set_error(archive, unpack->input->stream_errno, "%s",
				  unpack_input_error(unpack->input));
		return ARCHIVE_FATAL;
	}
	if (ret == 0) {
		archive_set_error(archive, EIO, "read(%s) failed: the stream "
				  "would block", i_stream_get_name(unpack->input));
		return ARCHIVE_FATAL;
	}
	unpack->zip_handed = size;
	*buf_r = data;
	return size;
}

/* libarchive's seek callback: the zip reader finds the central directory
   from the end and each entry by its offset. */
static la_int64_t
unpack_zip_seek_cb(struct archive *archive, void *context, la_int64_t offset,
		   int whence)
{
	struct dmarc_unpack *unpack = context;
	uoff_t size;
	la_int64_t target;

	switch (whence) {
	case SEEK_SET:
		target = offset;
		break;
	case SEEK_CUR:
		target = unpack->input->v_offset + unpack->zip_handed + offset;
		break;
	case SEEK_END:
		if (i_stream_get_size(unpack->input, TRUE, &size) <= 0) {
			archive_set_error(archive, EIO, "%s",
					  unpack->input->stream_errno != 0 ?
					  unpack_input_error(unpack->input) :
					  "the zip's size is unknown");
			return ARCHIVE_FATAL;
		}
		target = size + offset;
		break;
	default:
		return ARCHIVE_FATAL;
	}
	if (target < 0) {
		archive_set_error(archive, EINVAL, "seek before the start");
		return ARCHIVE_FATAL;
	}
	unpack->zip_handed = 0;
	i_stream_seek(unpack->input, target);
	return target;
}

static int unpack_zip_open(struct dmarc_unpack *unpack)
{
	int ret;

	i_assert(unpack->archive == NULL);
	unpack->archive = archive_read_new();
	/* Seekable only: entries are found through the central directory,
	   a broken entry's data is skipped by seeking, and nothing is
	   decompressed to find where the next entry starts. */
	ret = archive_read_support_format_zip_seekable(unpack->archive);
	if (ret != ARCHIVE_OK)
		return ret;
	unpack->zip_handed = 0;
	i_stream_seek(unpack->input, 0);
	(void)archive_read_set_read_callback(unpack->archive,
					     unpack_zip_read_cb);
	(void)archive_read_set_seek_callback(unpack->archive,
					     unpack_zip_seek_cb);
	(void)archive_read_set_callback_data(unpack->archive, unpack);
	return archive_read_open1(unpack->archive);
}

static void unpack_zip_init(struct dmarc_unpack *unpack)
{
	unsigned int count;

	if (unpack_zip_count_dir_entries(unpack,
					 unpack->limits->max_zip_entries,
					 &count) < 0) {
		unpack->open_error = i_strdup(unpack_input_error(unpack->input));
		return;
	}
	if (count > unpack->limits->max_zip_entries) {
		unpack->open_error = i_strdup_printf(
			"zip has more than %u entries "
			"(dmarcreport_max_zip_entries): not read",
			unpack->limits->max_zip_entries);
		return;
	}
	if (unpack_zip_open(unpack) != ARCHIVE_OK) {
		unpack->open_error = i_strdup_printf("broken zip: %s",
			archive_error(unpack->archive));
	}
}

/* After an entry whose data was broken libarchive may refuse to go on:
   open the zip again and step over the entries read so far (seeks, no
   decompression). */
static int unpack_zip_reopen(struct dmarc_unpack *unpack)
{
	struct archive_entry *entry;
	unsigned int i;

	(void)archive_read_free(unpack->archive);
	unpack->archive = NULL;
	if (unpack_zip_open(unpack) != ARCHIVE_OK)
		return -1;
	for (i = 0; i < unpack->entries; i++) {
		if (archive_read_next_header(unpack->archive, &entry) < ARCHIVE_WARN)
			return -1;
	}
	return 0;
}

/* The compression method libarchive names in the format of the current
   entry ("ZIP 2.0 (deflation)"): it has no other way to tell. Reporters
   use stored and deflate; the others (LZMA, bzip2, xz, zstd, PPMd) bring
   decoders whose memory the entry itself declares. */
static const char *unpack_zip_bad_method(struct archive *archive)
{
	const char *format = archive_format_name(archive), *method;
	size_t len;

	if (format == NULL)
		return "unknown";
	method = strrchr(format, '(');
	len = strlen(format);
	if (method == NULL || format[len-1] != ')')
		return "unknown";
	method = t_strndup(method + 1, format + len - 1 - (method + 1));
	if (strcmp(method, "uncompressed") == 0 ||
	    strcmp(method, "deflation") == 0)
		return NULL;
	return method;
}

static int unpack_zip_next(struct dmarc_unpack *unpack, const char **name_r,
			   const char **error_r)
{
	struct archive_entry *entry;
	const char *name, *method;
	int ret;

	for (;;) {
		ret = archive_read_next_header(unpack->archive, &entry);
		if (ret == ARCHIVE_FATAL && unpack->entry_failed) {
			unpack->entry_failed = FALSE;
			if (unpack_zip_reopen(unpack) == 0)
				ret = archive_read_next_header(unpack->archive,
							       &entry);
		}
		unpack->entry_failed = FALSE;
		if (ret == ARCHIVE_EOF) {
			unpack->finished = TRUE;
			return 0;
		}
		if (ret != ARCHIVE_OK && ret != ARCHIVE_WARN) {
			*error_r = t_strdup_printf("broken zip: %s",
				archive_error(unpack->archive));
			unpack->failed = TRUE;
			return -1;
		}
		/* the directory was counted before it was opened; this
		   only guards the count */
		if (unpack->entries++ >= unpack->limits->max_zip_entries) {
			*error_r = t_strdup_printf("zip has more than %u entries "
				"(dmarcreport_max_zip_entries): the rest is "
				"not read", unpack->limits->max_zip_entries);
			unpack->failed = TRUE;
			return -1;
		}
		if (archive_entry_filetype(entry) != AE_IFDIR)
			break;
	}
	name = archive_entry_pathname(entry);
	*name_r = name == NULL || *name == '\0' ? "(no name)" : t_strdup(name);
	if (archive_entry_is_encrypted(entry)) {
		*error_r = "encrypted zip entry: not read";
		return -1;
	}
	if ((method = unpack_zip_bad_method(unpack->archive)) != NULL) {
		*error_r = t_strdup_printf("zip entry compressed with %s: "
			"only stored and deflate entries are read", method);
		return -1;
	}
	unpack->documents++;
	return 1;
}

/* ---------------------------------------------------------------------
   gzip */

static int gzip_layer_add(struct dmarc_unpack *unpack,
			  const unsigned char *input, size_t size)
{
	struct gzip_layer *layer;

	i_assert(unpack->gz_count < UNPACK_GZIP_MAX_LAYERS);
	layer = i_new(struct gzip_layer, 1);
	/* 16 + MAX_WBITS: gzip only, with its trailer checked */
	if (inflateInit2(&layer->zs, 16 + MAX_WBITS) != Z_OK) {
		i_free(layer);
		return -1;
	}
	/* no buffers given: zlib steps over the name, comment and extra
	   field without keeping them; head.done says when it is past */
	(void)inflateGetHeader(&layer->zs, &layer->head);
	if (size > 0)
		memcpy(layer->in, input, size);
	layer->zs.next_in = layer->in;
	layer->zs.avail_in = size;
	unpack->gz[unpack->gz_count++] = layer;
	return 0;
}

static void gzip_layers_free(struct dmarc_unpack *unpack)
{
	unsigned int i;

	for (i = 0; i < unpack->gz_count; i++) {
		(void)inflateEnd(&unpack->gz[i]->zs);
		i_free(unpack->gz[i]);
	}
	unpack->gz_count = 0;
}

static ssize_t gzip_read(struct dmarc_unpack *unpack, unsigned int level,
			 void *buf, size_t size, const char **error_r)
{
	struct gzip_layer *layer = unpack->gz[level];
	z_stream *zs = &layer->zs;
	ssize_t ret;
	int zret;

	zs->next_out = buf;
	zs->avail_out = size;
	while (zs->avail_out == size) {
		if (zs->avail_in == 0 && !layer->in_eof) {
			ret = level == 0 ?
				unpack_source_read(unpack, layer->in,
						   sizeof(layer->in), error_r) :
				gzip_read(unpack, level - 1, layer->in,
					  sizeof(layer->in), error_r);
			if (ret < 0)
				return -1;
			layer->in_eof = ret == 0;
			zs->next_in = layer->in;
			zs->avail_in = ret;
		}
		if (layer->member_ended) {
			/* RFC 1952 2.2: members may follow one another;
			   anything else after the last one is ignored, as
			   gzip does */
			if (zs->avail_in == 0 || zs->next_in[0] != 0x1f)
				break;
			if (inflateReset(zs) != Z_OK) {
				*error_r = "broken gzip: inflateReset() failed";
				return -1;
			}
			(void)inflateGetHeader(zs, &layer->head);
			layer->member_ended = FALSE;
		}
		zret = inflate(zs, Z_NO_FLUSH);
		if (layer->head.done == 0 &&
		    zs->total_in > UNPACK_GZIP_MAX_HEADER_SIZE) {
			*error_r = t_strdup_printf("broken gzip: header "
				"(name, comment, extra field) longer than "
				"%u bytes", UNPACK_GZIP_MAX_HEADER_SIZE);
			return -1;
		}
		switch (zret) {
		case Z_OK:
			break;
		case Z_STREAM_END:
			/* the trailer's CRC32 and ISIZE matched */
			layer->member_ended = TRUE;
			break;
		case Z_BUF_ERROR:
			if (zs->avail_in == 0 && layer->in_eof) {
				*error_r = "broken gzip: unexpected end of data";
				return -1;
			}
			break;
		default:
			*error_r = t_strdup_printf("broken gzip: %s",
				zs->msg != NULL ? zs->msg : "inflate() failed");
			return -1;
		}
	}
	ret = size - zs->avail_out;
	if (level + 1 < unpack->gz_count) {
		/* the outer layers of a gzip in a gzip are bounded too:
		   else empty members inside could be inflated without end */
		layer->out_total += ret;
		if (layer->out_total > unpack->limits->max_decompressed_size) {
			*error_r = t_strdup_printf("decompressed size exceeds "
				"%"PRIuUOFF_T" bytes (dmarcreport_max_decompressed_size)",
				unpack->limits->max_decompressed_size);
			return -1;
		}
	}
	return ret;
}

/* Open the layers: while what comes out starts with the gzip magic, it is
   a gzip too (as in a .xml.gz.gz). */
static int gzip_open(struct dmarc_unpack *unpack, const char **error_r)
{
	ssize_t ret;

	if (gzip_layer_add(unpack, NULL, 0) < 0) {
		*error_r = "inflateInit2() failed";
		return -1;
	}
	for (;;) {
		unpack->gz_pending_size = 0;
		while (unpack->gz_pending_size < sizeof(unpack->gz_pending)) {
			ret = gzip_read(unpack, unpack->gz_count - 1,
					unpack->gz_pending + unpack->gz_pending_size,
					sizeof(unpack->gz_pending) -
					unpack->gz_pending_size, error_r);
			if (ret < 0)
				return -1;
			if (ret == 0)
				return 0;
			unpack->gz_pending_size += ret;
		}
		if (unpack_sniff(unpack->gz_pending, 2) != DMARC_CONTAINER_GZIP ||
		    unpack->gz_count == UNPACK_GZIP_MAX_LAYERS)
			return 0;
		if (gzip_layer_add(unpack, unpack->gz_pending, 2) < 0) {
			*error_r = "inflateInit2() failed";
			return -1;
		}
	}
}

static ssize_t gzip_read_document(struct dmarc_unpack *unpack, void *buf,
				  size_t size, const char **error_r)
{
	size_t n;

	if (unpack->gz_pending_size > 0) {
		n = I_MIN(size, unpack->gz_pending_size);
		memcpy(buf, unpack->gz_pending, n);
		memmove(unpack->gz_pending, unpack->gz_pending + n,
			unpack->gz_pending_size - n);
		unpack->gz_pending_size -= n;
		return n;
	}
	return gzip_read(unpack, unpack->gz_count - 1, buf, size, error_r);
}

/* --------------------------------------------------------------------- */

static ssize_t unpack_read(struct dmarc_unpack *unpack, void *buf,
			   size_t size, const char **error_r);

static ssize_t unpack_istream_read(struct istream_private *stream)
{
	struct unpack_istream *ustream =
		container_of(stream, struct unpack_istream, istream);
	const char *error;
	size_t size;
	ssize_t ret;

	if (ustream->unpack == NULL) {
		io_stream_set_error(&stream->iostream,
				    "document read after the next one");
		stream->istream.stream_errno = EINVAL;
		return -1;
	}
	if (!i_stream_try_alloc(stream, UNPACK_DOC_READ_SIZE, &size))
		return -2;
	size = I_MIN(size, UNPACK_DOC_READ_SIZE);
	ret = unpack_read(ustream->unpack, stream->w_buffer + stream->pos,
			  size, &error);
	if (ret < 0) {
		io_stream_set_error(&stream->iostream, "%s", error);
		stream->istream.stream_errno = EINVAL;
		return -1;
	}
	if (ret == 0) {
		stream->istream.eof = TRUE;
		return -1;
	}
	stream->pos += ret;
	return ret;
}

/* The stream of the document dmarc_unpack_next() just moved to. */
static struct istream *unpack_doc_open(struct dmarc_unpack *unpack)
{
	struct unpack_istream *ustream;
	struct istream *input;

	i_assert(unpack->doc == NULL);
	ustream = i_new(struct unpack_istream, 1);
	ustream->unpack = unpack;
	ustream->istream.max_buffer_size = UNPACK_DOC_MAX_BUFFER_SIZE;
	ustream->istream.read = unpack_istream_read;
	ustream->istream.istream.blocking = TRUE;
	ustream->istream.istream.seekable = FALSE;
	input = i_stream_create(&ustream->istream, NULL, -1, 0);
	i_stream_set_name(input, i_stream_get_name(unpack->input));
	unpack->doc = ustream;
	return input;
}

/* The caller's reference to the current document is dropped; one kept
   beyond it only reads an error. */
static void unpack_doc_close(struct dmarc_unpack *unpack)
{
	struct istream *input;

	if (unpack->doc == NULL)
		return;
	unpack->doc->unpack = NULL;
	input = &unpack->doc->istream.istream;
	unpack->doc = NULL;
	i_stream_unref(&input);
}

struct dmarc_unpack *dmarc_unpack_init(struct istream *input,
				       const struct dmarc_limits *limits,
				       uoff_t *message_budget)
{
	struct dmarc_unpack *unpack;
	const unsigned char *magic;
	size_t magic_size;

	unpack = i_new(struct dmarc_unpack, 1);
	unpack->input = input;
	i_stream_ref(input);
	unpack->limits = limits;
	unpack->message_budget = message_budget;
	(void)i_stream_read_bytes(input, &magic, &magic_size, 4);
	if (input->stream_errno != 0) {
		unpack->open_error = i_strdup(unpack_input_error(input));
		return unpack;
	}
	unpack->container = unpack_sniff(magic, magic_size);
	if (unpack->container == DMARC_CONTAINER_ZIP)
		unpack_zip_init(unpack);
	return unpack;
}

void dmarc_unpack_deinit(struct dmarc_unpack **_unpack)
{
	struct dmarc_unpack *unpack = *_unpack;

	*_unpack = NULL;
	unpack_doc_close(unpack);
	if (unpack->archive != NULL)
		(void)archive_read_free(unpack->archive);
	gzip_layers_free(unpack);
	i_stream_unref(&unpack->input);
	i_free(unpack->open_error);
	i_free(unpack);
}

enum dmarc_container dmarc_unpack_get_container(struct dmarc_unpack *unpack)
{
	return unpack->container;
}

int dmarc_unpack_next(struct dmarc_unpack *unpack, const char **name_r,
		      struct istream **input_r, const char **error_r)
{
	int ret;

	unpack_doc_close(unpack);
	*name_r = NULL;
	*input_r = NULL;
	if (unpack->open_error != NULL && !unpack->failed) {
		*error_r = t_strdup(unpack->open_error);
		unpack->failed = TRUE;
		return -1;
	}
	if (unpack->finished || unpack->failed)
		return 0;

	switch (unpack->container) {
	case DMARC_CONTAINER_PLAIN:
		unpack->finished = TRUE;
		unpack->documents++;
		*input_r = unpack_doc_open(unpack);
		return 1;
	case DMARC_CONTAINER_GZIP:
		unpack->finished = TRUE;
		if (gzip_open(unpack, error_r) < 0) {
			unpack->failed = TRUE;
			return -1;
		}
		unpack->documents++;
		*input_r = unpack_doc_open(unpack);
		return 1;
	case DMARC_CONTAINER_ZIP:
		break;
	}
	ret = unpack_zip_next(unpack, name_r, error_r);
	if (ret > 0)
		*input_r = unpack_doc_open(unpack);
	return ret;
}

static ssize_t
unpack_count(struct dmarc_unpack *unpack, ssize_t size, const char **error_r)
{
	const struct dmarc_limits *limits = unpack->limits;

	if (size <= 0)
		return size;
	unpack->decompressed += size;
	if (unpack->decompressed > limits->max_decompressed_size) {
		*error_r = t_strdup_printf("decompressed size exceeds %"PRIuUOFF_T
			" bytes (dmarcreport_max_decompressed_size)",
			limits->max_decompressed_size);
		unpack->failed = TRUE;
		return -1;
	}
	if ((uoff_t)size > *unpack->message_budget) {
		*error_r = t_strdup_printf("decompressed size of the message's "
			"attachments exceeds %"PRIuUOFF_T" bytes "
			"(dmarcreport_max_message_decompressed_size)",
			limits->max_message_decompressed_size);
		*unpack->message_budget = 0;
		unpack->failed = TRUE;
		return -1;
	}
	*unpack->message_budget -= size;
	return size;
}

/* The current document's next decompressed bytes: >0, 0 at its end, -1
   with *error_r. */
static ssize_t unpack_read(struct dmarc_unpack *unpack, void *buf,
			   size_t size, const char **error_r)
{
	ssize_t ret;

	if (unpack->failed || unpack->entry_failed) {
		*error_r = "reading stopped after an earlier error";
		return -1;
	}
	switch (unpack->container) {
	case DMARC_CONTAINER_PLAIN:
		ret = unpack_source_read(unpack, buf, size, error_r);
		if (ret < 0)
			return -1;
		break;
	case DMARC_CONTAINER_GZIP:
		ret = gzip_read_document(unpack, buf, size, error_r);
		if (ret < 0) {
			unpack->failed = TRUE;
			return -1;
		}
		break;
	case DMARC_CONTAINER_ZIP:
		ret = archive_read_data(unpack->archive, buf, size);
		if (ret < 0) {
			/* this entry only: the next one is still read */
			*error_r = t_strdup_printf("broken zip entry: %s",
				archive_error(unpack->archive));
			unpack->entry_failed = TRUE;
			return -1;
		}
		break;
	default:
		i_unreached();
	}
	return unpack_count(unpack, ret, error_r);
}
