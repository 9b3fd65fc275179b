/* doveadm dmarc import's file side: report files and whole mails, and
   directories of them, walked in name order, each file once, through the
   ingest pipeline. Each file is opened once: one istream is sniffed (mail
   or report) and then ingested. In the core rather than the doveadm door
   so that the unit tests and the fuzzer can drive it. */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "istream.h"
#include "read-full.h"
#include "dmarc-log.h"
#include "dmarc-event.h"
#include "dmarc-ingest.h"
#include "dmarc-import.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

/* Files up to this size are read whole: one read() instead of a pread()
   and an fstat() per block. */
#define IMPORT_READ_WHOLE_MAX_BYTES (1024*1024)

struct dmarc_import {
	pool_t pool;
	struct dmarc_ingest *ingest;
	struct event *event;
	struct dmarc_ingest_counts *counts;
	/* the current file when read whole */
	buffer_t *file_buf;
	/* files and directories read in this run: each once, whatever
	   symlinks lead to them again (a loop too) */
	HASH_TABLE(struct import_inode *, struct import_inode *) seen;
	unsigned int inputs;
	unsigned int unreadable;
};

struct import_inode {
	dev_t dev;
	ino_t ino;
};

static unsigned int import_inode_hash(const struct import_inode *inode)
{
	return (unsigned int)inode->ino ^ (unsigned int)inode->dev;
}

static int import_inode_cmp(const struct import_inode *i1,
			    const struct import_inode *i2)
{
	if (i1->ino != i2->ino)
		return i1->ino < i2->ino ? -1 : 1;
	if (i1->dev != i2->dev)
		return i1->dev < i2->dev ? -1 : 1;
	return 0;
}

/* TRUE the first time st's file is seen in this run. */
static bool import_first_visit(struct dmarc_import *import,
			       const struct stat *st)
{
	struct import_inode key, *inode;

	key.dev = st->st_dev;
	key.ino = st->st_ino;
	if (hash_table_lookup(import->seen, &key) != NULL)
		return FALSE;
	inode = p_new(import->pool, struct import_inode, 1);
	*inode = key;
	hash_table_insert(import->seen, inode, inode);
	return TRUE;
}

/* An input that could not be read: counted, and said to the caller
   (doveadm sets its exit status from it). */
static void import_input_failed(struct dmarc_import *import)
{
	import->counts->failed++;
	import->unreadable++;
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t len = strlen(name), slen = strlen(suffix);

	return len >= slen && strcasecmp(name + len - slen, suffix) == 0;
}

/* Is this file a whole mail rather than a bare report? By the extension
   first, then by its first bytes (peeked: they stay in the stream): gzip,
   zip, XML and JSON (TLS reports) are reports; a first line that is a
   header field is a mail. */
static bool import_file_is_message(const char *path, struct istream *input)
{
	const unsigned char *buf;
	size_t len, i;

	if (has_suffix(path, ".eml") || has_suffix(path, ".msg"))
		return TRUE;
	if (has_suffix(path, ".xml") || has_suffix(path, ".gz") ||
	    has_suffix(path, ".zip") || has_suffix(path, ".zlib") ||
	    has_suffix(path, ".json"))
		return FALSE;

	/* a read error shows again when the file is ingested */
	(void)i_stream_read_bytes(input, &buf, &len, 256);
	len = I_MIN(len, 256);
	if (len < 2)
		return FALSE;
	if ((buf[0] == 0x1f && buf[1] == 0x8b) ||
	    (buf[0] == 'P' && buf[1] == 'K') || buf[0] == '{')
		return FALSE;
	/* RFC 5322 2.2: field-name is printable ASCII except ':' */
	for (i = 0; i < len; i++) {
		if (buf[i] == ':')
			return i > 0;
		if (buf[i] < 33 || buf[i] > 126)
			return FALSE;
	}
	return FALSE;
}

/* A file as a stream: read whole when small (one read instead of a pread
   and an fstat per block, which add up over thousands of files), else
   streamed. The stream takes fd. */
static struct istream *
import_file_stream(struct dmarc_import *import, const char *path,
		   int *fd, const struct stat *st)
{
	struct istream *input;
	ssize_t ret;

	if (st->st_size > 0 && st->st_size <= IMPORT_READ_WHOLE_MAX_BYTES) {
		if (import->file_buf == NULL)
			import->file_buf = buffer_create_dynamic(default_pool, 65536);
		buffer_set_used_size(import->file_buf, 0);
		ret = read_full(*fd, buffer_append_space_unsafe(
			import->file_buf, st->st_size), st->st_size);
		if (ret > 0) {
			i_close_fd(fd);
			input = i_stream_create_from_data(import->file_buf->data,
							  import->file_buf->used);
			i_stream_set_name(input, path);
			return input;
		}
		/* changed meanwhile, or an error: the stream reports it */
		if (lseek(*fd, 0, SEEK_SET) < 0)
			e_error(import->event, "lseek(%s) failed: %m",
				dmarc_log_text(path));
	}
	input = i_stream_create_fd_autoclose(fd, IO_BLOCK_SIZE);
	i_stream_set_name(input, path);
	return input;
}

static int import_file(struct dmarc_import *import, const char *path)
{
	struct dmarc_ingest_counts counts;
	struct istream *input;
	struct stat st;
	int fd, ret;

	i_zero(&counts);
	/* O_NONBLOCK: a FIFO put here since the directory was read must
	   not hang the run */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd == -1 || fstat(fd, &st) < 0) {
		e_error(import->event, "open(%s) failed: %m",
			dmarc_log_text(path));
		import->inputs++;
		import_input_failed(import);
		if (fd != -1)
			i_close_fd(&fd);
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		e_error(import->event, "%s: not a regular file",
			dmarc_log_text(path));
		import->inputs++;
		import_input_failed(import);
		i_close_fd(&fd);
		return 0;
	}
	if (!import_first_visit(import, &st)) {
		/* a second name (a symlink) of a file read already */
		i_close_fd(&fd);
		return 0;
	}
	import->inputs++;
	input = import_file_stream(import, path, &fd, &st);
	if (!import_file_is_message(path, input)) {
		ret = dmarc_ingest_file_stream(import->ingest, path, input,
					       st.st_mtime, &counts);
	} else {
		ret = dmarc_ingest_message(import->ingest, input, st.st_mtime,
					   &counts);
	}
	i_stream_unref(&input);
	dmarc_ingest_counts_add(import->counts, &counts);
	return ret;
}

struct import_dir_entry {
	const char *path;
	/* DT_* from readdir(), DT_UNKNOWN when it did not say */
	unsigned char type;
};

static int import_dir_entry_cmp(const struct import_dir_entry *e1,
				const struct import_dir_entry *e2)
{
	return strcmp(e1->path, e2->path);
}

/* A directory: its files and subdirectories in name order, dot files
   left out (Maildir's tmp/ files are not finished mails either). */
static int import_dir(struct dmarc_import *import, const char *dir);

/* named: given on the command line, where anything but a readable file
   or directory is an error; found in a directory, a FIFO, device or
   socket is skipped with a warning (and counted). */
static int import_path(struct dmarc_import *import, const char *path,
		       bool named)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno == ENOENT && !named) {
			/* removed since the directory was read, or a
			   dangling symlink */
			e_warning(import->event, "%s: %m: skipped",
				dmarc_log_text(path));
			import->counts->failed++;
			return 0;
		}
		e_error(import->event, "stat(%s) failed: %m",
			dmarc_log_text(path));
		import_input_failed(import);
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		return import_dir(import, path);
	if (S_ISREG(st.st_mode))
		return import_file(import, path);
	if (named) {
		e_error(import->event, "%s: not a regular file or directory",
			dmarc_log_text(path));
		import_input_failed(import);
	} else {
		e_warning(import->event, "%s: not a regular file or directory: "
			  "skipped", dmarc_log_text(path));
		import->counts->failed++;
	}
	return 0;
}

static int import_dir(struct dmarc_import *import, const char *dir)
{
	ARRAY(struct import_dir_entry) entries;
	const struct import_dir_entry *entry;
	struct import_dir_entry *new_entry;
	struct dirent *d;
	struct stat st;
	DIR *dirp;
	int ret = 0;

	dirp = opendir(dir);
	if (dirp == NULL) {
		/* a directory that cannot be read is not an empty one */
		e_error(import->event, "opendir(%s) failed: %m",
			dmarc_log_text(dir));
		import_input_failed(import);
		return 0;
	}
	if (fstat(dirfd(dirp), &st) < 0) {
		e_error(import->event, "fstat(%s) failed: %m",
			dmarc_log_text(dir));
		import_input_failed(import);
		(void)closedir(dirp);
		return 0;
	}
	if (!import_first_visit(import, &st)) {
		/* reached again through a symlink: a loop, or a second
		   name of a directory read already */
		(void)closedir(dirp);
		return 0;
	}
	t_array_init(&entries, 64);
	while ((d = readdir(dirp)) != NULL) {
		if (d->d_name[0] == '.' || strcmp(d->d_name, "tmp") == 0)
			continue;
		new_entry = array_append_space(&entries);
		new_entry->path = t_strconcat(dir, "/", d->d_name, NULL);
		new_entry->type = d->d_type;
	}
	if (closedir(dirp) < 0)
		e_error(import->event, "closedir(%s) failed: %m",
			dmarc_log_text(dir));
	array_sort(&entries, import_dir_entry_cmp);
	array_foreach(&entries, entry) {
		T_BEGIN {
			/* a regular file needs no stat() of its own: the
			   open file is looked at */
			if (entry->type == DT_REG)
				ret = import_file(import, entry->path);
			else
				ret = import_path(import, entry->path, FALSE);
		} T_END;
		if (ret < 0)
			break;
	}
	return ret;
}


struct dmarc_import *
dmarc_import_init(struct dmarc_ingest *ingest, struct event *event,
		  struct dmarc_ingest_counts *counts)
{
	struct dmarc_import *import;
	pool_t pool;

	pool = pool_alloconly_create("dmarc import", 1024);
	import = p_new(pool, struct dmarc_import, 1);
	import->pool = pool;
	import->ingest = ingest;
	import->counts = counts;
	import->event = dmarc_event_create(event);
	event_set_append_log_prefix(import->event, "dmarc import: ");
	hash_table_create(&import->seen, pool, 0, import_inode_hash,
			  import_inode_cmp);
	return import;
}

void dmarc_import_deinit(struct dmarc_import **_import)
{
	struct dmarc_import *import = *_import;

	*_import = NULL;
	hash_table_destroy(&import->seen);
	if (import->file_buf != NULL)
		buffer_free(&import->file_buf);
	event_unref(&import->event);
	pool_unref(&import->pool);
}

int dmarc_import_path(struct dmarc_import *import, const char *path,
		      bool named)
{
	int ret;

	T_BEGIN {
		ret = import_path(import, path, named);
	} T_END;
	return ret;
}

unsigned int dmarc_import_get_inputs(struct dmarc_import *import)
{
	return import->inputs;
}

unsigned int dmarc_import_get_unreadable(struct dmarc_import *import)
{
	return import->unreadable;
}
