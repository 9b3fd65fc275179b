/* raw attachment -> <archive_dir>/YYYY/MM/<safe name>. The name is the
   sender's: it is cut down to one harmless path component, and files are
   created with O_EXCL|O_NOFOLLOW so nothing is overwritten or followed. */

#include "lib.h"
#include "str.h"
#include "unichar.h"
#include "randgen.h"
#include "mkdir-parents.h"
#include "dmarc-archive.h"

#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <sys/stat.h>

#define ARCHIVE_NAME_MAX_BYTES 200
/* name-1 ... name-9, then a random suffix: a name that many mails share
   (a reporter resending) must not cost one failed open per earlier copy */
#define ARCHIVE_NUMBERED_TRIES 9

static const char *const device_names[] = {
	"con", "prn", "aux", "nul",
	"com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8", "com9",
	"lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
};

static bool is_device_name(const char *name)
{
	const char *dot = strchr(name, '.');
	size_t len = dot == NULL ? strlen(name) : (size_t)(dot - name);
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(device_names); i++) {
		if (strlen(device_names[i]) == len &&
		    strncasecmp(name, device_names[i], len) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Cut str to at most max bytes on a UTF-8 character boundary. */
static size_t utf8_cut(const char *str, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)str[max] & 0xc0) == 0x80)
		max--;
	return max;
}

const char *dmarc_archive_safe_name(const char *filename,
				    const char *fallback)
{
	const char *base, *p, *ext;
	string_t *str;
	size_t len, ext_len;

	if (filename == NULL)
		return fallback;
	/* only the last component, whichever separator the sender used */
	base = filename;
	for (p = filename; *p != '\0'; p++) {
		if (*p == '/' || *p == '\\')
			base = p + 1;
	}
	str = t_str_new(strlen(base) + 1);
	for (p = base; *p != '\0'; p++) {
		unsigned char c = *p;

		if (c < 0x20 || c == 0x7f || c == ':' || c == '*' || c == '?' ||
		    c == '"' || c == '<' || c == '>' || c == '|')
			str_append_c(str, '_');
		else
			str_append_c(str, c);
	}
	/* invalid UTF-8 becomes U+FFFD so the name is printable */
	if (!uni_utf8_str_is_valid(str_c(str))) {
		string_t *valid = t_str_new(str_len(str) + 8);

		if (!uni_utf8_get_valid_data(str_data(str), str_len(str), valid))
			str = valid;
	}
	/* no hidden files, no "." or "..", no trailing dots/spaces */
	while (str_len(str) > 0 &&
	       (str_data(str)[0] == '.' || str_data(str)[0] == ' '))
		str_delete(str, 0, 1);
	while (str_len(str) > 0 &&
	       (str_data(str)[str_len(str)-1] == '.' ||
		str_data(str)[str_len(str)-1] == ' '))
		str_truncate(str, str_len(str) - 1);
	if (str_len(str) == 0)
		return fallback;
	if (is_device_name(str_c(str)))
		str_insert(str, 0, "_");

	len = str_len(str);
	if (len > ARCHIVE_NAME_MAX_BYTES) {
		/* keep a short extension such as ".xml.gz" */
		const char *name = str_c(str);

		ext = strchr(name + len - I_MIN(len, 16), '.');
		ext_len = ext == NULL ? 0 : strlen(ext);
		len = utf8_cut(name, len - ext_len,
			       ARCHIVE_NAME_MAX_BYTES - ext_len);
		return t_strconcat(t_strndup(name, len),
				   ext == NULL ? "" : ext, NULL);
	}
	return str_c(str);
}

/* "name.xml.gz" + n -> "name-n.xml.gz" */
static const char *numbered_name(const char *name, const char *suffix)
{
	const char *ext = strchr(name, '.');

	if (ext == NULL || ext == name)
		return t_strconcat(name, "-", suffix, NULL);
	return t_strconcat(t_strdup_until(name, ext), "-", suffix, ext, NULL);
}

int dmarc_archive_create(const char *archive_dir, time_t when,
			 const char *filename, int *fd_r,
			 const char **relpath_r, const char **error_r)
{
	const char *name, *subdir, *dir, *relpath, *path;
	struct tm tm;
	unsigned int i;
	bool dir_created = FALSE;
	int fd;

	if (gmtime_r(&when, &tm) == NULL) {
		*error_r = t_strdup_printf("invalid time %ld", (long)when);
		return -1;
	}
	subdir = t_strdup_printf("%04d/%02d", tm.tm_year + 1900, tm.tm_mon + 1);
	dir = t_strconcat(archive_dir, "/", subdir, NULL);
	name = dmarc_archive_safe_name(filename, "attachment");
	for (i = 0;; i++) {
		const char *try_name = name;

		if (i > 0 && i <= ARCHIVE_NUMBERED_TRIES)
			try_name = numbered_name(name, dec2str(i));
		else if (i > ARCHIVE_NUMBERED_TRIES) {
			try_name = numbered_name(name, t_strdup_printf(
				"%lx%x", (long)time(NULL), i_rand()));
		}
		relpath = t_strconcat(subdir, "/", try_name, NULL);
		path = t_strconcat(archive_dir, "/", relpath, NULL);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		if (fd == -1 && errno == ENOENT && !dir_created) {
			/* the month's first report: its directory, then
			   again */
			if (mkdir_parents(dir, 0700) < 0 && errno != EEXIST) {
				*error_r = t_strdup_printf(
					"mkdir(%s) failed: %m", dir);
				return -1;
			}
			dir_created = TRUE;
			fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW,
				  0600);
		}
		if (fd != -1)
			break;
		if (errno != EEXIST || i > ARCHIVE_NUMBERED_TRIES + 10) {
			*error_r = t_strdup_printf("open(%s/%s) failed: %m",
						   archive_dir, relpath);
			return -1;
		}
	}
	*fd_r = fd;
	*relpath_r = relpath;
	return 0;
}
