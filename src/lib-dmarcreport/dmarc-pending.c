/* The pending spool next to the database; see dmarc-pending.h. Entry
   names: <secs>.<usecs>.<pid>.<random>.<attempts> (or .failed once set
   aside),
   <...>.data for the bytes; names starting with a dot are being written. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strescape.h"
#include "hostpid.h"
#include "randgen.h"
#include "write-full.h"
#include "time-util.h"
#include "read-full.h"
#include "istream.h"
#include "dmarc-pending.h"

#include <stdio.h>
#include <time.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

/* An entry's own file is a few short lines. */
#define PENDING_ENTRY_MAX_BYTES 8192
#define PENDING_FAILED_SUFFIX "failed"
#define PENDING_DATA_SUFFIX ".data"

struct dmarc_pending_iter {
	pool_t pool;
	const char *dir;
	ARRAY_TYPE(const_string) names;
	unsigned int idx;
	bool include_failed;
	char *error;

	/* the entry taken */
	int fd;
	const char *cur_path;
	struct dmarc_pending_entry entry;
};

const char *dmarc_pending_dir(const char *db_path)
{
	return t_strconcat(db_path, "-pending", NULL);
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t len = strlen(name), slen = strlen(suffix);

	return len >= slen && strcmp(name + len - slen, suffix) == 0;
}

/* Disk space the spool takes now, in bytes. */
static int pending_usage(const char *dir, uoff_t *usage_r,
			 const char **error_r)
{
	struct dirent *d;
	struct stat st;
	DIR *dirp;
	int dir_fd;

	*usage_r = 0;
	if ((dirp = opendir(dir)) == NULL) {
		*error_r = t_strdup_printf("opendir(%s) failed: %m", dir);
		return -1;
	}
	dir_fd = dirfd(dirp);
	while ((d = readdir(dirp)) != NULL) {
		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (fstatat(dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			*usage_r += (uoff_t)st.st_blocks * 512;
	}
	(void)closedir(dirp);
	return 0;
}

/* Write a new file in dir under name, through a dot-name, so that no
   reader sees it half written. */
static int
pending_write_file(const char *dir, const char *name, const void *data,
		   size_t size, struct istream *input, const char **error_r)
{
	const char *tmp_path = t_strdup_printf("%s/.%s.tmp", dir, name);
	const char *path = t_strdup_printf("%s/%s", dir, name);
	const unsigned char *idata;
	size_t isize;
	ssize_t ret = 0;
	int fd;

	fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (fd == -1) {
		*error_r = t_strdup_printf("open(%s) failed: %m", tmp_path);
		return -1;
	}
	if (data != NULL) {
		if (write_full(fd, data, size) < 0)
			ret = -1;
	} else {
		i_stream_seek(input, 0);
		while (i_stream_read_more(input, &idata, &isize) > 0) {
			if (write_full(fd, idata, isize) < 0) {
				ret = -1;
				break;
			}
			i_stream_skip(input, isize);
		}
		if (ret == 0 && input->stream_errno != 0) {
			*error_r = t_strdup_printf("read(%s) failed: %s",
						   i_stream_get_name(input),
						   i_stream_get_error(input));
			i_close_fd(&fd);
			i_unlink_if_exists(tmp_path);
			return -1;
		}
	}
	if (ret < 0) {
		*error_r = t_strdup_printf("write(%s) failed: %m", tmp_path);
		i_close_fd(&fd);
		i_unlink_if_exists(tmp_path);
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = t_strdup_printf("close(%s) failed: %m", tmp_path);
		i_unlink_if_exists(tmp_path);
		return -1;
	}
	if (rename(tmp_path, path) < 0) {
		*error_r = t_strdup_printf("rename(%s, %s) failed: %m",
					   tmp_path, path);
		i_unlink_if_exists(tmp_path);
		return -1;
	}
	return 0;
}

int dmarc_pending_add(const char *db_path, uoff_t max_size,
		      const struct dmarc_pending_info *info,
		      struct istream *input, const char **error_r)
{
	const char *dir = dmarc_pending_dir(db_path);
	const char *id;
	string_t *str;
	struct timeval tv;
	uoff_t usage, need, size;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*error_r = t_strdup_printf("mkdir(%s) failed: %m", dir);
		return -1;
	}
	need = PENDING_ENTRY_MAX_BYTES;
	if (info->archive_path == NULL) {
		if (i_stream_get_size(input, TRUE, &size) <= 0) {
			*error_r = t_strdup_printf("size of %s unknown: %s",
				i_stream_get_name(input),
				input->stream_errno == 0 ? "not seekable" :
				i_stream_get_error(input));
			return -1;
		}
		need += size;
	}
	if (pending_usage(dir, &usage, error_r) < 0)
		return -1;
	if (usage + need > max_size) {
		*error_r = t_strdup_printf("%s is full (%"PRIuUOFF_T" bytes "
			"used, dmarcreport_max_pending_size=%"PRIuUOFF_T")",
			dir, usage, max_size);
		return -1;
	}

	/* oldest first by name: microseconds tell apart entries of one
	   second, the pid and a random number those of one microsecond */
	i_gettimeofday(&tv);
	id = t_strdup_printf("%ld.%06ld.%s.%08x", (long)tv.tv_sec,
			     (long)tv.tv_usec, my_pid, i_rand());
	if (info->archive_path == NULL &&
	    pending_write_file(dir, t_strconcat(id, PENDING_DATA_SUFFIX, NULL),
			       NULL, 0, input, error_r) < 0)
		return -1;
	str = t_str_new(256);
	if (info->archive_path != NULL) {
		str_append(str, "archive\t");
		str_append_tabescaped(str, info->archive_path);
		str_append_c(str, '\n');
	}
	if (info->message_id != NULL) {
		str_append(str, "message-id\t");
		str_append_tabescaped(str, info->message_id);
		str_append_c(str, '\n');
	}
	str_printfa(str, "received\t%ld\n", (long)info->received);
	if (str_len(str) > PENDING_ENTRY_MAX_BYTES) {
		/* values are capped long before this */
		str_truncate(str, 0);
		str_printfa(str, "received\t%ld\n", (long)info->received);
	}
	if (pending_write_file(dir, t_strconcat(id, ".0", NULL), str_data(str),
			       str_len(str), NULL, error_r) < 0) {
		if (info->archive_path == NULL) {
			i_unlink_if_exists(t_strconcat(dir, "/", id,
				PENDING_DATA_SUFFIX, NULL));
		}
		return -1;
	}
	return 0;
}

static int pending_name_cmp(const char *const *n1, const char *const *n2)
{
	return strcmp(*n1, *n2);
}

struct dmarc_pending_iter *
dmarc_pending_iter_init(const char *db_path, bool include_failed)
{
	struct dmarc_pending_iter *iter;
	struct dirent *d;
	const char *name;
	DIR *dirp;
	pool_t pool;

	pool = pool_alloconly_create("dmarc pending iter", 1024);
	iter = p_new(pool, struct dmarc_pending_iter, 1);
	iter->pool = pool;
	iter->fd = -1;
	iter->include_failed = include_failed;
	iter->dir = p_strdup(pool, dmarc_pending_dir(db_path));
	p_array_init(&iter->names, pool, 8);
	if ((dirp = opendir(iter->dir)) == NULL) {
		if (errno != ENOENT) {
			iter->error = i_strdup_printf("opendir(%s) failed: %m",
						      iter->dir);
		}
		return iter;
	}
	while ((d = readdir(dirp)) != NULL) {
		if (d->d_name[0] == '.' ||
		    has_suffix(d->d_name, PENDING_DATA_SUFFIX))
			continue;
		name = p_strdup(pool, d->d_name);
		array_push_back(&iter->names, &name);
	}
	if (closedir(dirp) < 0) {
		iter->error = i_strdup_printf("closedir(%s) failed: %m",
					      iter->dir);
	}
	/* <time>. first: oldest first */
	array_sort(&iter->names, pending_name_cmp);
	return iter;
}

static int
pending_parse(struct dmarc_pending_iter *iter, const char *text,
	      const char **error_r)
{
	const char *const *lines, *const *args;
	struct dmarc_pending_info *info = &iter->entry.info;
	long long received;

	i_zero(info);
	for (lines = t_strsplit(text, "\n"); *lines != NULL; lines++) {
		if (**lines == '\0')
			continue;
		args = t_strsplit_tabescaped(*lines);
		if (args[0] == NULL || args[1] == NULL)
			continue;
		if (strcmp(args[0], "archive") == 0)
			info->archive_path = p_strdup(iter->pool, args[1]);
		else if (strcmp(args[0], "message-id") == 0)
			info->message_id = p_strdup(iter->pool, args[1]);
		else if (strcmp(args[0], "received") == 0 &&
			 str_to_llong(args[1], &received) == 0)
			info->received = (time_t)received;
	}
	if (info->received == 0) {
		*error_r = "not a pending entry (no received time)";
		return -1;
	}
	return 0;
}

/* Take the entry name: open, lock, check that it is still there under
   that name, count the attempt. Returns 1 taken, 0 skip it, -1 error. */
static int
pending_take(struct dmarc_pending_iter *iter, const char *name,
	     const char **error_r)
{
	const char *path = t_strconcat(iter->dir, "/", name, NULL);
	const char *id, *suffix, *new_path;
	char buf[PENDING_ENTRY_MAX_BYTES + 1];
	struct stat st1, st2;
	unsigned int attempts;
	bool failed;
	ssize_t ret;

	suffix = strrchr(name, '.');
	if (suffix == NULL)
		return 0;
	id = p_strdup_until(iter->pool, name, suffix);
	suffix++;
	failed = strcmp(suffix, PENDING_FAILED_SUFFIX) == 0;
	if (!failed && str_to_uint(suffix, &attempts) < 0)
		return 0;
	if (failed && !iter->include_failed)
		return 0;

	iter->fd = open(path, O_RDONLY | O_NOFOLLOW);
	if (iter->fd == -1)
		return errno == ENOENT ? 0 : (*error_r = t_strdup_printf(
			"open(%s) failed: %m", path), -1);
	if (flock(iter->fd, LOCK_EX | LOCK_NB) < 0) {
		/* another process is storing it right now */
		i_close_fd(&iter->fd);
		return 0;
	}
	if (fstat(iter->fd, &st1) < 0 || stat(path, &st2) < 0 ||
	    st1.st_ino != st2.st_ino || st1.st_dev != st2.st_dev) {
		/* stored and removed, or renamed, since we listed it */
		i_close_fd(&iter->fd);
		return 0;
	}
	ret = pread(iter->fd, buf, sizeof(buf) - 1, 0);
	if (ret < 0) {
		*error_r = t_strdup_printf("read(%s) failed: %m", path);
		i_close_fd(&iter->fd);
		return -1;
	}
	buf[ret] = '\0';
	if (pending_parse(iter, buf, error_r) < 0) {
		*error_r = t_strdup_printf("%s: %s", path, *error_r);
		i_close_fd(&iter->fd);
		return -1;
	}
	iter->entry.data_path = iter->entry.info.archive_path != NULL ? NULL :
		p_strconcat(iter->pool, iter->dir, "/", id,
			    PENDING_DATA_SUFFIX, NULL);
	if (failed) {
		iter->entry.attempts = DMARC_PENDING_MAX_ATTEMPTS + 1;
		iter->entry.name = p_strdup(iter->pool, name);
		iter->cur_path = p_strdup(iter->pool, path);
		return 1;
	}
	/* counted before the try: a try that kills the process counts */
	attempts++;
	if (attempts > DMARC_PENDING_MAX_ATTEMPTS) {
		new_path = t_strconcat(iter->dir, "/", id, ".",
				       PENDING_FAILED_SUFFIX, NULL);
		*error_r = rename(path, new_path) < 0 ?
			t_strdup_printf("rename(%s, %s) failed: %m",
					path, new_path) :
			t_strdup_printf("%s: not stored after %u attempts, "
				"set aside (`doveadm dmarc import --pending` "
				"tries it again)", new_path,
				DMARC_PENDING_MAX_ATTEMPTS);
		i_close_fd(&iter->fd);
		return -1;
	}
	new_path = t_strdup_printf("%s/%s.%u", iter->dir, id, attempts);
	if (rename(path, new_path) < 0) {
		*error_r = t_strdup_printf("rename(%s, %s) failed: %m",
					   path, new_path);
		i_close_fd(&iter->fd);
		return -1;
	}
	iter->cur_path = p_strdup(iter->pool, new_path);
	iter->entry.name = p_strdup_printf(iter->pool, "%s.%u", id, attempts);
	iter->entry.attempts = attempts;
	return 1;
}

unsigned int dmarc_pending_iter_count(struct dmarc_pending_iter *iter)
{
	return array_count(&iter->names) - iter->idx;
}

int dmarc_pending_iter_next(struct dmarc_pending_iter *iter,
			    const struct dmarc_pending_entry **entry_r,
			    const char **error_r)
{
	const char *name;
	int ret;

	i_assert(iter->fd == -1);
	while (iter->idx < array_count(&iter->names)) {
		name = array_idx_elem(&iter->names, iter->idx++);
		if ((ret = pending_take(iter, name, error_r)) != 0) {
			*entry_r = &iter->entry;
			return ret;
		}
	}
	return 0;
}

void dmarc_pending_iter_done(struct dmarc_pending_iter *iter, bool remove)
{
	i_assert(iter->fd != -1);
	if (remove) {
		/* the data first: an entry without data is an error later,
		   data without an entry would be left forever */
		if (iter->entry.data_path != NULL)
			i_unlink_if_exists(iter->entry.data_path);
		i_unlink_if_exists(iter->cur_path);
	}
	i_close_fd(&iter->fd);
}

int dmarc_pending_iter_deinit(struct dmarc_pending_iter **_iter,
			      const char **error_r)
{
	struct dmarc_pending_iter *iter = *_iter;
	int ret = 0;

	*_iter = NULL;
	if (iter->fd != -1)
		i_close_fd(&iter->fd);
	if (iter->error != NULL) {
		*error_r = t_strdup(iter->error);
		i_free(iter->error);
		ret = -1;
	}
	pool_unref(&iter->pool);
	return ret;
}
