#ifndef SIEVE_DMARCREPORT_PLUGIN_H
#define SIEVE_DMARCREPORT_PLUGIN_H

/* The symbols Pigeonhole's plugin loader looks up in
   lib90_sieve_dmarcreport_plugin.so (sieve_plugins = sieve_dmarcreport). */

struct sieve_instance;

extern const char *sieve_dmarcreport_plugin_version;
/* void on Pigeonhole 0.5, int on 2.4 (see dmarc-compat.h) */
dmarc_compat_sieve_load_ret_t
sieve_dmarcreport_plugin_load(struct sieve_instance *svinst, void **context);
void sieve_dmarcreport_plugin_unload(struct sieve_instance *svinst,
				     void *context);
void sieve_dmarcreport_plugin_init(void);
void sieve_dmarcreport_plugin_deinit(void);

/* The database kept open between the deliveries of this process, or NULL
   when this module cannot stay loaded between them. */
struct dmarc_store_cache *sieve_dmarcreport_store_cache(void);

#endif
