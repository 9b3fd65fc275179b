#ifndef SIEVE_DMARCREPORT_PLUGIN_H
#define SIEVE_DMARCREPORT_PLUGIN_H

struct sieve_instance;

/* Exported for Pigeonhole's plugin loader. */
extern const char *sieve_dmarcreport_plugin_version;
void sieve_dmarcreport_plugin_load(struct sieve_instance *svinst,
				   void **context);
void sieve_dmarcreport_plugin_unload(struct sieve_instance *svinst,
				     void *context);
void sieve_dmarcreport_plugin_init(void);
void sieve_dmarcreport_plugin_deinit(void);

#endif
