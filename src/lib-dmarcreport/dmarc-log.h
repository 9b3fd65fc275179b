#ifndef DMARC_LOG_H
#define DMARC_LOG_H

/* Text from a report or a mail on its way to a log line. A report is
   attacker-controlled: a CR or LF in a report_id, a file name or an error
   string quoting them would start a forged line of its own in the server
   log. Every such value goes through one of these (Dovecot's
   str_sanitize_utf8(): control characters become U+FFFD, invalid UTF-8
   too, and the length is bounded). */

#include "str-sanitize.h"

#include <errno.h>

/* Both keep errno: they are called in the argument lists of log lines
   that end in %m. */

/* One value: report_id, org_name, a domain, a file or entry name, a
   message-id (in characters). */
#define DMARC_LOG_VALUE_MAX_CHARS 120
/* A longer text: an error string that may quote the input (libxml2's,
   libarchive's, the parser's, the store's), or a path. */
#define DMARC_LOG_TEXT_MAX_CHARS 300

static inline const char *dmarc_log_value(const char *value)
{
	int old_errno = errno;
	const char *ret = str_sanitize_utf8(value, DMARC_LOG_VALUE_MAX_CHARS);

	errno = old_errno;
	return ret;
}

static inline const char *dmarc_log_text(const char *text)
{
	int old_errno = errno;
	const char *ret = str_sanitize_utf8(text, DMARC_LOG_TEXT_MAX_CHARS);

	errno = old_errno;
	return ret;
}

#endif
