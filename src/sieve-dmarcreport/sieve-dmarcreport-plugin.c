/* Pigeonhole plugin entry points: registers vnd.dovecot.dmarcreport with
   each Sieve instance (sieve_plugins = sieve_dmarcreport). */

#include "lib.h"
#include "sieve-common.h"
#include "sieve-extensions.h"
#include "sieve-config.h"

#include "dmarc-compat.h"
#include "ext-dmarcreport.h"
#include "sieve-dmarcreport-plugin.h"

#include <libxml/parser.h>

const char *sieve_dmarcreport_plugin_version = PIGEONHOLE_ABI_VERSION;

struct dmarcreport_plugin_context {
	const struct sieve_extension *ext;
};

void sieve_dmarcreport_plugin_load(struct sieve_instance *svinst,
				   void **context)
{
	struct dmarcreport_plugin_context *pctx;

	pctx = i_new(struct dmarcreport_plugin_context, 1);
	/* Not loaded by default: an admin enables it with sieve_extensions
	   or sieve_global_extensions, as with vnd.dovecot.pipe. */
	if (dmarc_compat_sieve_extension_register(
		svinst, &sieve_dmarcreport_extension, &pctx->ext) < 0)
		i_error("sieve_dmarcreport: registering %s failed",
			sieve_dmarcreport_extension.name);
	*context = pctx;
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
	/* Only libxml2's global tables: the config process dlopens this
	   module just to list the extension, so nothing else happens here.
	   xmlCleanupParser() is never called: another module of the same
	   process may still be using libxml2. */
	xmlInitParser();
}

void sieve_dmarcreport_plugin_deinit(void)
{
}
