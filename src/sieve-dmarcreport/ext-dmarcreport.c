/* Extension vnd.dovecot.dmarcreport: makes the command `dmarcreport;`
   available to scripts that require it. */

#include "lib.h"
#include "sieve-common.h"
#include "sieve-extensions.h"
#include "sieve-validator.h"

#include "ext-dmarcreport.h"

static bool
ext_dmarcreport_validator_load(const struct sieve_extension *ext,
			       struct sieve_validator *valdtr)
{
	sieve_validator_register_command(valdtr, ext,
					 &sieve_dmarcreport_command);
	return TRUE;
}

/* No .load: the settings are per mail user and read when the action
   runs, so one Sieve instance serves users with different settings. */
const struct sieve_extension_def sieve_dmarcreport_extension = {
	.name = "vnd.dovecot.dmarcreport",
	.validator_load = ext_dmarcreport_validator_load,
	SIEVE_EXT_DEFINE_OPERATION(sieve_dmarcreport_operation),
};
