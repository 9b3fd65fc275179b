#ifndef EXT_DMARCREPORT_H
#define EXT_DMARCREPORT_H

/* vnd.dovecot.dmarcreport: the extension, its one command and operation. */

extern const struct sieve_extension_def sieve_dmarcreport_extension;
extern const struct sieve_command_def sieve_dmarcreport_command;
extern const struct sieve_operation_def sieve_dmarcreport_operation;

#endif
