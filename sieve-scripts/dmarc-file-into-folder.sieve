# For a mailbox that only receives DMARC aggregate reports (the rua=
# address): record every report, then file the mail into the folder
# "DMARC" (created on first use) instead of the INBOX, and stop.
#
# Needs, in dovecot.conf:
#   plugin {
#     sieve_plugins = sieve_dmarcreport
#     sieve_extensions = +vnd.dovecot.dmarcreport
#   }
# See dovecot-dmarcreport(7).

require ["vnd.dovecot.dmarcreport", "fileinto", "mailbox"];

# Stores the reports once the script has finished successfully. A mail
# that holds no report, or a broken one, is only logged: it is filed all
# the same.
dmarcreport;

# :create makes the folder when it does not exist yet (RFC 5490 3.2).
fileinto :create "DMARC";
stop;
