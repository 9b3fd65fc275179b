#ifndef DMARC_UNPACK_H
#define DMARC_UNPACK_H

/* attachment bytes -> documents (XML, JSON, header blocks: the report
   kinds tell them apart, see dmarc-kinds.h), an istream in and an istream
   per document out. The container is sniffed from the content (gzip
   magic, zip magic, else plain), never from the MIME label or the name:
   gzip is inflated with zlib, zip read with libarchive once its entry
   count is known to be within the limit. Memory stays bounded whatever
   the sizes. A zip yields each of its entries in turn. */

struct istream;
struct dmarc_limits;
struct dmarc_unpack;

enum dmarc_container {
	DMARC_CONTAINER_PLAIN,  /* no compression: XML, JSON or anything */
	DMARC_CONTAINER_GZIP,
	DMARC_CONTAINER_ZIP,
};

/* Read the container from input, from its offset 0 (input is referenced
   and must be blocking and seekable: memory, a file, an iostream-temp's
   stream). *message_budget is the number of decompressed bytes the whole
   message may still produce; it is decremented as data is read. */
struct dmarc_unpack *dmarc_unpack_init(struct istream *input,
				       const struct dmarc_limits *limits,
				       uoff_t *message_budget);
void dmarc_unpack_deinit(struct dmarc_unpack **unpack);

enum dmarc_container dmarc_unpack_get_container(struct dmarc_unpack *unpack);

/* Move to the next document: 1 = there is one: *input_r is its bytes,
   decompressed (owned by the unpack: valid until the next call or deinit;
   reading it after that fails), and *name_r its name for a zip entry,
   else NULL. 0 = no more. -1 = this one cannot be read (error_r says why):
   an encrypted zip entry or one compressed with a method other than stored
   or deflate (*name_r is its name), or the container itself is broken or
   over a limit (*name_r is NULL). Call it again after -1: the next entry
   follows, or 0 when nothing more can be read.

   Reading *input_r fails (stream_errno set, i_stream_get_error() says
   why) on corrupt data, a gzip trailer that does not match, or a size
   limit. A broken zip entry ends only itself. */
int dmarc_unpack_next(struct dmarc_unpack *unpack, const char **name_r,
		      struct istream **input_r, const char **error_r);

#endif
