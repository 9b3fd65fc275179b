/* Pigeonhole plugin entry points: registers vnd.dovecot.dmarcreport with
   each Sieve instance (sieve_plugins = sieve_dmarcreport). */

/* dladdr() and RTLD_NODELETE */
#define _GNU_SOURCE
#include "lib.h"
#include "sieve-common.h"
#include "sieve-extensions.h"
#include "sieve-config.h"

#include "dmarc-compat.h"
#include "dmarc-store-cache.h"
#include "ext-dmarcreport.h"
#include "sieve-dmarcreport-plugin.h"

#include <dlfcn.h>

const char *sieve_dmarcreport_plugin_version = PIGEONHOLE_ABI_VERSION;

/* Pigeonhole loads and unloads sieve_plugins around every delivery. The
   module is linked -z nodelete; pinned says that it is indeed still the
   same copy, so that what it keeps between deliveries survives. */
static bool module_pinned;
static struct dmarc_store_cache *store_cache;

/* How long lmtp keeps a database open after a delivery: long enough for
   a burst of reports, short enough that the file is complete again soon
   after it. */
#define STORE_CACHE_IDLE_MSECS (3*1000)

static bool module_pin(void)
{
	Dl_info info;
	void *handle;

	/* RTLD_NODELETE on an object already loaded (RTLD_NOLOAD) makes
	   it stay, whatever it was linked with */
	if (dladdr((void *)sieve_dmarcreport_plugin_init, &info) == 0 ||
	    info.dli_fname == NULL)
		return FALSE;
	handle = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
	if (handle == NULL)
		return FALSE;
	(void)dlclose(handle);
	return TRUE;
}

static void store_cache_atexit(void)
{
	dmarc_store_cache_deinit(&store_cache);
}

struct dmarc_store_cache *sieve_dmarcreport_store_cache(void)
{
	if (!module_pinned)
		return NULL;
	if (store_cache == NULL) {
		store_cache = dmarc_store_cache_init(STORE_CACHE_IDLE_MSECS);
		lib_atexit(store_cache_atexit);
	}
	return store_cache;
}

struct dmarcreport_plugin_context {
	const struct sieve_extension *ext;
};

dmarc_compat_sieve_load_ret_t
sieve_dmarcreport_plugin_load(struct sieve_instance *svinst, void **context)
{
	struct dmarcreport_plugin_context *pctx;
	int ret;

	/* here: Pigeonhole never calls the module's init function */
	if (!module_pinned)
		module_pinned = module_pin();
	pctx = i_new(struct dmarcreport_plugin_context, 1);
	/* Not loaded by default: an admin enables it with sieve_extensions
	   or sieve_global_extensions, as with vnd.dovecot.pipe. */
	ret = dmarc_compat_sieve_extension_register(
		svinst, &sieve_dmarcreport_extension, &pctx->ext);
	if (ret < 0) {
		e_error(svinst->event, "sieve_dmarcreport: registering %s "
			"failed", sieve_dmarcreport_extension.name);
	}
	*context = pctx;
	/* The settings are read by the action, not here: a bad per-user
	   value then costs that user's reports, not the Sieve script. */
	DMARC_COMPAT_SIEVE_LOAD_RETURN(ret);
}

void sieve_dmarcreport_plugin_unload(struct sieve_instance *svinst ATTR_UNUSED,
				     void *context)
{
	struct dmarcreport_plugin_context *pctx = context;

	if (pctx->ext != NULL)
		sieve_extension_unregister(pctx->ext);
	i_free(pctx);
}

void sieve_dmarcreport_plugin_init(void)
{
	/* Dovecot's module loader wants this symbol, but Pigeonhole calls
	   only _load and _unload. libxml2 is set up by the parser itself
	   (xmlInitParser()); xmlCleanupParser() is never called, another
	   module of the same process may still be using libxml2. */
}

void sieve_dmarcreport_plugin_deinit(void)
{
}
