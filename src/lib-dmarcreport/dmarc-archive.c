/* raw attachment -> <archive_dir>/YYYY/MM/<safe name>. The name is the
   sender's: it is cut down to one harmless path component, and files are
   created with O_EXCL|O_NOFOLLOW so nothing is overwritten or followed. */

#include "lib.h"
#include "str.h"
#include "unichar.h"
#include "randgen.h"
#include "mkdir-parents.h"
#include "strfuncs.h"
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
	NULL
};

/* "CON", "con.xml", "Lpt1.xml.gz": a device on Windows, whatever the
   extension */
static bool is_device_name(const char *name)
{
	return str_array_icase_find(device_names, t_strcut(name, '.'));
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
		len = uni_utf8_data_truncate((const unsigned char *)name,
					     len - ext_len,
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

/* The relative path's components, or NULL when it could point outside the
   archive dir (absolute, empty, "." or ".." components). */
static const char *const *archive_path_split(const char *relpath)
{
	const char *const *parts, *const *p;

	if (*relpath == '\0' || *relpath == '/')
		return NULL;
	parts = t_strsplit(relpath, "/");
	for (p = parts; *p != NULL; p++) {
		if (**p == '\0' || strcmp(*p, ".") == 0 || strcmp(*p, "..") == 0)
			return NULL;
	}
	return parts;
}

/* Open archive_dir, then each of the count directories of parts below it
   without following a symlink (a link planted at 2024/ or 2024/01/ must
   not send a delivery's writes, or an expire's deletes, elsewhere),
   making the missing ones (0700) when create. The archive dir itself is
   the admin's setting and may be a link. Returns the fd, or -1 with
   errno set and *error_r naming the path. */
static int
archive_open_dir(const char *archive_dir, const char *const *parts,
		 unsigned int count, bool create, const char **error_r)
{
	const char *path = archive_dir;
	unsigned int i;
	int fd, new_fd, saved_errno;

	fd = open(archive_dir, O_RDONLY | O_DIRECTORY);
	if (fd == -1 && errno == ENOENT && create) {
		if (mkdir_parents(archive_dir, 0700) < 0 && errno != EEXIST) {
			*error_r = t_strdup_printf("mkdir(%s) failed: %m",
						   archive_dir);
			return -1;
		}
		fd = open(archive_dir, O_RDONLY | O_DIRECTORY);
	}
	if (fd == -1) {
		saved_errno = errno;
		*error_r = t_strdup_printf("open(%s) failed: %m", archive_dir);
		errno = saved_errno;
		return -1;
	}
	for (i = 0; i < count; i++) {
		path = t_strconcat(path, "/", parts[i], NULL);
		new_fd = openat(fd, parts[i],
				O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		if (new_fd == -1 && errno == ENOENT && create) {
			if (mkdirat(fd, parts[i], 0700) < 0 && errno != EEXIST) {
				saved_errno = errno;
				*error_r = t_strdup_printf(
					"mkdir(%s) failed: %m", path);
				i_close_fd(&fd);
				errno = saved_errno;
				return -1;
			}
			new_fd = openat(fd, parts[i],
					O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		}
		saved_errno = errno;
		i_close_fd(&fd);
		if (new_fd == -1) {
			errno = saved_errno;
			*error_r = errno == ELOOP || errno == ENOTDIR ?
				t_strdup_printf("%s is not a directory (a "
						"symlink is not followed)", path) :
				t_strdup_printf("open(%s) failed: %m", path);
			errno = saved_errno;
			return -1;
		}
		fd = new_fd;
	}
	return fd;
}

int dmarc_archive_create(const char *archive_dir, time_t when,
			 const char *filename, int *fd_r,
			 const char **relpath_r, const char **error_r)
{
	const char *name, *subdir, *relpath, *parts[3];
	char year[16], month[8];
	struct tm tm;
	unsigned int i;
	int dir_fd, fd;

	if (gmtime_r(&when, &tm) == NULL) {
		*error_r = t_strdup_printf("invalid time %ld", (long)when);
		return -1;
	}
	i_snprintf(year, sizeof(year), "%04d", tm.tm_year + 1900);
	i_snprintf(month, sizeof(month), "%02d", tm.tm_mon + 1);
	parts[0] = year; parts[1] = month; parts[2] = NULL;
	subdir = t_strdup_printf("%s/%s", year, month);
	dir_fd = archive_open_dir(archive_dir, parts, 2, TRUE, error_r);
	if (dir_fd == -1)
		return -1;
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
		fd = openat(dir_fd, try_name,
			    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		if (fd != -1)
			break;
		if (errno != EEXIST || i > ARCHIVE_NUMBERED_TRIES + 10) {
			*error_r = t_strdup_printf("open(%s/%s) failed: %m",
						   archive_dir, relpath);
			i_close_fd(&dir_fd);
			return -1;
		}
	}
	i_close_fd(&dir_fd);
	*fd_r = fd;
	*relpath_r = relpath;
	return 0;
}

/* The directory fd of relpath's parent and its last component. */
static int
archive_open_parent(const char *archive_dir, const char *relpath,
		    const char **name_r, const char **error_r)
{
	const char *const *parts = archive_path_split(relpath);
	unsigned int count;

	if (parts == NULL) {
		*error_r = t_strdup_printf("'%s' is not a path inside the "
					   "archive dir", relpath);
		errno = EINVAL;
		return -1;
	}
	count = str_array_length(parts);
	*name_r = parts[count - 1];
	return archive_open_dir(archive_dir, parts, count - 1, FALSE, error_r);
}

int dmarc_archive_open(const char *archive_dir, const char *relpath,
		       int *fd_r, const char **error_r)
{
	const char *name;
	int dir_fd, saved_errno;

	*fd_r = -1;
	if ((dir_fd = archive_open_parent(archive_dir, relpath, &name,
					  error_r)) == -1)
		return errno == ENOENT ? 0 : -1;
	*fd_r = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW);
	saved_errno = errno;
	i_close_fd(&dir_fd);
	if (*fd_r != -1)
		return 1;
	errno = saved_errno;
	if (errno == ENOENT)
		return 0;
	*error_r = errno == ELOOP ?
		t_strdup_printf("%s/%s is a symlink: not followed",
				archive_dir, relpath) :
		t_strdup_printf("open(%s/%s) failed: %m", archive_dir, relpath);
	return -1;
}

int dmarc_archive_remove(const char *archive_dir, const char *relpath,
			 const char **error_r)
{
	const char *name;
	int dir_fd, ret;

	if ((dir_fd = archive_open_parent(archive_dir, relpath, &name,
					  error_r)) == -1)
		return errno == ENOENT ? 0 : -1;
	/* a symlink itself is removed, never what it points at */
	ret = unlinkat(dir_fd, name, 0);
	if (ret < 0 && errno != ENOENT) {
		*error_r = t_strdup_printf("unlink(%s/%s) failed: %m",
					   archive_dir, relpath);
	}
	i_close_fd(&dir_fd);
	if (ret == 0)
		return 1;
	return errno == ENOENT ? 0 : -1;
}
