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

/* No .load: the settings are read by the action, from the delivery's
   mail user (dmarc-compat.h), not when the extension is loaded. A Sieve
   instance serves one recipient's delivery either way (Pigeonhole makes
   one per recipient); read in .load, a bad per-user value could only
   fail the load, and with it the compiling of the user's script
   (implicit keep, no other action), instead of costing only that user's
   reports. */
const struct sieve_extension_def sieve_dmarcreport_extension = {
	.name = "vnd.dovecot.dmarcreport",
	.validator_load = ext_dmarcreport_validator_load,
	SIEVE_EXT_DEFINE_OPERATION(sieve_dmarcreport_operation),
};
