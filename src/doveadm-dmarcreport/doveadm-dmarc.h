#ifndef DOVEADM_DMARC_H
#define DOVEADM_DMARC_H

struct module;

/* Exported for doveadm's module loader. */
extern const char *doveadm_dmarcreport_plugin_version;
void doveadm_dmarcreport_plugin_init(struct module *module);
void doveadm_dmarcreport_plugin_deinit(void);

#endif
