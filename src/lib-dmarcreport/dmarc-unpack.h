#ifndef DMARC_UNPACK_H
#define DMARC_UNPACK_H

/* attachment bytes -> documents (XML, JSON, header blocks: the report
   kinds tell them apart, see dmarc-kinds.h). The container is sniffed
   from the content (gzip magic, zip magic, else plain), never from the
   MIME label or the name: gzip is inflated with zlib, zip read with
   libarchive once its entry count is known to be within the limit. Memory stays
   bounded whatever the sizes. A zip yields each of its entries in turn. */

struct dmarc_limits;
struct dmarc_unpack;

enum dmarc_container {
	DMARC_CONTAINER_PLAIN,  /* no compression: XML, JSON or anything */
	DMARC_CONTAINER_GZIP,
	DMARC_CONTAINER_ZIP,
};

/* Read from fd (from its current offset: the caller rewinds it), which
   stays owned by the caller. *message_budget is the number of decompressed
   bytes the whole message may still produce; it is decremented as data is
   read. */
struct dmarc_unpack *dmarc_unpack_init_fd(int fd,
					  const struct dmarc_limits *limits,
					  uoff_t *message_budget);
/* The same over bytes in memory, which must stay valid until deinit. */
struct dmarc_unpack *dmarc_unpack_init_data(const void *data, size_t size,
					    const struct dmarc_limits *limits,
					    uoff_t *message_budget);
void dmarc_unpack_deinit(struct dmarc_unpack **unpack);

enum dmarc_container dmarc_unpack_get_container(struct dmarc_unpack *unpack);

/* Move to the next document: 1 = there is one (its name, for a zip entry,
   else NULL, in *name_r), 0 = no more, -1 = this one cannot be read
   (error_r says why): an encrypted zip entry or one compressed with a
   method other than stored or deflate (*name_r is its name), or the
   container itself is broken or over a limit (*name_r is NULL). Call it
   again after -1: the next entry follows, or 0 when nothing more can be
   read. */
int dmarc_unpack_next(struct dmarc_unpack *unpack, const char **name_r,
		      const char **error_r);

/* Read decompressed bytes of the current document: >0 bytes, 0 at its end,
   -1 on error (corrupt data, a gzip trailer that does not match, or a size
   limit: the error says which). A broken zip entry ends only itself.
   Matches dmarc_read_func_t of dmarc-parse.h. */
ssize_t dmarc_unpack_read(void *unpack, void *buf, size_t size,
			  const char **error_r);

#endif
