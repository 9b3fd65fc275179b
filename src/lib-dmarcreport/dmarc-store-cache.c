/* One open store kept between deliveries; see dmarc-store-cache.h.

   Its one user is the Sieve door, and there it leans on how Pigeonhole
   loads plugins: sieve_plugins are dlopen()ed for every delivery (every
   Sieve instance) and dlclose()d after it, and the module's _init and
   _deinit are never called. A cache in an unloaded module's memory would
   be gone, its timeout pointing into unmapped code. So the module is
   linked -z nodelete and pins itself with RTLD_NODELETE on its first
   _load (sieve-dmarcreport-plugin.c); only a pinned module hands out a
   cache (sieve_dmarcreport_store_cache() returns NULL otherwise, and
   each delivery opens and closes the database). It is closed at exit
   through lib_atexit() or when its ioloop is destroyed, never by the
   module's _deinit. dmarcreport_store_cache = no turns it off. */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "dmarc-store.h"
#include "dmarc-store-cache.h"

struct dmarc_store_cache {
	unsigned int idle_msecs;
	struct dmarc_store *store;
	char *path;
	/* closes the kept store once idle; in ioloop */
	struct timeout *to_idle;
	struct ioloop *ioloop;
};

/* Caches with a timeout, for store_cache_ioloop_destroyed(). */
static ARRAY(struct dmarc_store_cache *) store_caches;

static void store_cache_clear(struct dmarc_store_cache *cache)
{
	timeout_remove(&cache->to_idle);
	cache->ioloop = NULL;
	if (cache->store != NULL) {
		/* lmtp may be serving another user now, who cannot remove
		   this user's -wal: leave it empty at least */
		dmarc_store_checkpoint(cache->store);
		dmarc_store_close(&cache->store);
	}
	i_free_and_null(cache->path);
}

/* A process that exits (dovecot-lda) destroys its ioloop with our
   timeout still in it: close the store then, not leak the timeout. */
static void store_cache_ioloop_destroyed(struct ioloop *ioloop)
{
	struct dmarc_store_cache *cache;

	array_foreach_elem(&store_caches, cache) {
		if (cache->ioloop == ioloop)
			store_cache_clear(cache);
	}
}

struct dmarc_store_cache *dmarc_store_cache_init(unsigned int idle_msecs)
{
	struct dmarc_store_cache *cache;

	cache = i_new(struct dmarc_store_cache, 1);
	cache->idle_msecs = idle_msecs;
	if (!array_is_created(&store_caches)) {
		i_array_init(&store_caches, 2);
		io_loop_add_destroy_callback(store_cache_ioloop_destroyed);
	}
	array_push_back(&store_caches, &cache);
	return cache;
}

void dmarc_store_cache_deinit(struct dmarc_store_cache **_cache)
{
	struct dmarc_store_cache *cache = *_cache;
	struct dmarc_store_cache *const *caches;
	unsigned int i, count;

	*_cache = NULL;
	store_cache_clear(cache);
	caches = array_get(&store_caches, &count);
	for (i = 0; i < count; i++) {
		if (caches[i] == cache) {
			array_delete(&store_caches, i, 1);
			break;
		}
	}
	if (array_count(&store_caches) == 0) {
		io_loop_remove_destroy_callback(store_cache_ioloop_destroyed);
		array_free(&store_caches);
	}
	i_free(cache);
}

struct dmarc_store *
dmarc_store_cache_take(struct dmarc_store_cache *cache, const char *path)
{
	struct dmarc_store *store;

	if (cache->store == NULL)
		return NULL;
	if (strcmp(cache->path, path) != 0 ||
	    !dmarc_store_is_current(cache->store)) {
		/* another user's database, or the admin moved this one
		   away: writing on would write into a file nobody reads */
		store_cache_clear(cache);
		return NULL;
	}
	timeout_remove(&cache->to_idle);
	cache->ioloop = NULL;
	store = cache->store;
	cache->store = NULL;
	return store;
}

static void store_cache_idle(struct dmarc_store_cache *cache)
{
	store_cache_clear(cache);
}

void dmarc_store_cache_put(struct dmarc_store_cache *cache, const char *path,
			   struct dmarc_store **store)
{
	store_cache_clear(cache);
	cache->store = *store;
	cache->path = i_strdup(path);
	*store = NULL;
	if (current_ioloop != NULL) {
		cache->ioloop = current_ioloop;
		cache->to_idle = timeout_add(cache->idle_msecs,
					     store_cache_idle, cache);
	}
}
