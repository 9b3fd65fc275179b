# Record the DMARC aggregate reports sent to the address published in
# your DMARC record (rua=mailto:dmarc@example.com), and keep the mails in
# the INBOX as usual.
#
# Needs, in dovecot.conf:
#   plugin {
#     sieve_plugins = sieve_dmarcreport
#     sieve_extensions = +vnd.dovecot.dmarcreport
#   }
# See dovecot-dmarcreport(7).

require "vnd.dovecot.dmarcreport";

# Reporters put the rua address into To:. (With the "envelope" extension,
# `envelope :is "to" "dmarc@example.com"` tests the delivery address
# instead, which also works when To: says something else.)
if address :is "to" "dmarc@example.com" {
	# Stores the reports when the script has finished successfully. It
	# does not cancel the implicit keep: the mail still lands in INBOX.
	# A broken report is logged and never costs the mail.
	dmarcreport;
}
