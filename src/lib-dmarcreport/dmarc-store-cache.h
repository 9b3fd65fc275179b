#ifndef DMARC_STORE_CACHE_H
#define DMARC_STORE_CACHE_H

/* One database kept open from one delivery to the next in a long-running
   process (lmtp): opening a database (its WAL read back, its schema
   parsed, its statements prepared) costs more than storing a report. It
   is reused only for the same path while that path still names the same
   file, and closed (its WAL checkpointed into the file) once idle for
   idle_msecs, or when the ioloop it was kept in is destroyed: between
   bursts of reports the database file alone is complete again. A store
   that failed is closed by its user, never kept. Off with
   dmarcreport_store_cache = no; how it survives Pigeonhole's unloading
   of plugins: dmarc-store-cache.c. */

struct dmarc_store;
struct dmarc_store_cache;

struct dmarc_store_cache *dmarc_store_cache_init(unsigned int idle_msecs);
/* Closes the kept store. */
void dmarc_store_cache_deinit(struct dmarc_store_cache **cache);

/* The kept store of path, now the caller's, or NULL (a kept store of
   another path, or of a file no longer at path, is closed). */
struct dmarc_store *
dmarc_store_cache_take(struct dmarc_store_cache *cache, const char *path);
/* Keep store (opened for path) for the next take, closing the one kept
   before. Sets *store to NULL. */
void dmarc_store_cache_put(struct dmarc_store_cache *cache, const char *path,
			   struct dmarc_store **store);

#endif
