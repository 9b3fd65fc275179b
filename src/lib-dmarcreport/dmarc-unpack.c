/* attachment bytes -> XML documents. The container is sniffed from its
   first bytes; gzip and zip are read with libarchive as a stream, and every
   byte that comes out is counted against the limits as it comes, so a bomb
   stops after max_decompressed_size bytes, in bounded memory. */

#include "lib.h"
#include "dmarc-settings.h"
#include "dmarc-unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>

#define UNPACK_READ_BLOCK_SIZE (64*1024)

struct dmarc_unpack {
	/* the source: an fd, or bytes in memory (fd == -1) */
	int fd;
	const unsigned char *data;
	size_t data_size, data_pos;
	const struct dmarc_limits *limits;
	uoff_t *message_budget;

	enum dmarc_container container;
	struct archive *archive;

	unsigned int documents, entries;
	uoff_t decompressed;
	bool finished;
	/* An error is reported once, by the call that hit it (open errors by
	   the first dmarc_unpack_next()); after that everything ends. */
	char *open_error;
	bool failed;
};

static const char *archive_error(struct archive *archive)
{
	const char *error = archive_error_string(archive);

	return error != NULL ? error : "unknown libarchive error";
}

static enum dmarc_container
unpack_sniff(const unsigned char *magic, ssize_t ret)
{
	if (ret >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
		return DMARC_CONTAINER_GZIP;
	if (ret >= 4 && memcmp(magic, "PK\x03\x04", 4) == 0)
		return DMARC_CONTAINER_ZIP;
	return DMARC_CONTAINER_PLAIN;
}

static struct dmarc_unpack *
unpack_init(int fd, const unsigned char *data, size_t size,
	    const struct dmarc_limits *limits, uoff_t *message_budget)
{
	struct dmarc_unpack *unpack;
	unsigned char magic[4];
	ssize_t magic_size;
	int ret;

	unpack = i_new(struct dmarc_unpack, 1);
	unpack->fd = fd;
	unpack->data = data;
	unpack->data_size = size;
	unpack->limits = limits;
	unpack->message_budget = message_budget;
	if (fd == -1) {
		magic_size = I_MIN(size, sizeof(magic));
		memcpy(magic, data, magic_size);
	} else {
		magic_size = read(fd, magic, sizeof(magic));
		if (magic_size > 0 && lseek(fd, -magic_size, SEEK_CUR) < 0)
			i_error("lseek() failed: %m");
	}
	unpack->container = unpack_sniff(magic, magic_size);

	if (unpack->container == DMARC_CONTAINER_PLAIN)
		return unpack;

	unpack->archive = archive_read_new();
	if (unpack->container == DMARC_CONTAINER_GZIP) {
		/* A gzip inside a gzip is unwrapped too (libarchive stacks
		   the filter); the size limits apply to the final bytes. */
		ret = archive_read_support_filter_gzip(unpack->archive);
		if (ret == ARCHIVE_OK)
			ret = archive_read_support_format_raw(unpack->archive);
	} else {
		ret = archive_read_support_format_zip(unpack->archive);
	}
	if (ret == ARCHIVE_OK) {
		/* a regular file or memory: libarchive may seek, so a zip is
		   read from its central directory (entries with data
		   descriptors and empty names too) */
		ret = fd == -1 ?
			archive_read_open_memory(unpack->archive, data, size) :
			archive_read_open_fd(unpack->archive, fd,
					     UNPACK_READ_BLOCK_SIZE);
	}
	if (ret != ARCHIVE_OK) {
		unpack->open_error = i_strdup(t_strdup_printf("%s: %s",
			unpack->container == DMARC_CONTAINER_GZIP ?
			"broken gzip" : "broken zip",
			archive_error(unpack->archive)));
	}
	return unpack;
}

struct dmarc_unpack *dmarc_unpack_init_fd(int fd,
					  const struct dmarc_limits *limits,
					  uoff_t *message_budget)
{
	i_assert(fd != -1);
	return unpack_init(fd, NULL, 0, limits, message_budget);
}

struct dmarc_unpack *dmarc_unpack_init_data(const void *data, size_t size,
					    const struct dmarc_limits *limits,
					    uoff_t *message_budget)
{
	return unpack_init(-1, data, size, limits, message_budget);
}

void dmarc_unpack_deinit(struct dmarc_unpack **_unpack)
{
	struct dmarc_unpack *unpack = *_unpack;

	*_unpack = NULL;
	if (unpack->archive != NULL)
		(void)archive_read_free(unpack->archive);
	i_free(unpack->open_error);
	i_free(unpack);
}

enum dmarc_container dmarc_unpack_get_container(struct dmarc_unpack *unpack)
{
	return unpack->container;
}

static ssize_t
unpack_count(struct dmarc_unpack *unpack, ssize_t size, const char **error_r);

static int unpack_drain(struct dmarc_unpack *unpack, const char **error_r)
{
	unsigned char buf[IO_BLOCK_SIZE];
	ssize_t ret;

	while ((ret = archive_read_data(unpack->archive, buf, sizeof(buf))) > 0) {
		if (unpack_count(unpack, ret, error_r) < 0)
			return -1;
	}
	if (ret < 0) {
		*error_r = t_strdup_printf("broken zip: %s",
					   archive_error(unpack->archive));
		unpack->failed = TRUE;
		return -1;
	}
	return 0;
}

int dmarc_unpack_next(struct dmarc_unpack *unpack, const char **name_r,
		      const char **error_r)
{
	struct archive_entry *entry;
	const char *name;
	int ret;

	*name_r = NULL;
	if (unpack->open_error != NULL && !unpack->failed) {
		*error_r = t_strdup(unpack->open_error);
		unpack->failed = TRUE;
		return -1;
	}
	if (unpack->finished || unpack->failed)
		return 0;

	switch (unpack->container) {
	case DMARC_CONTAINER_PLAIN:
		unpack->finished = TRUE;
		unpack->documents++;
		return 1;
	case DMARC_CONTAINER_GZIP:
		if (unpack->documents > 0) {
			unpack->finished = TRUE;
			return 0;
		}
		ret = archive_read_next_header(unpack->archive, &entry);
		if (ret == ARCHIVE_EOF) {
			unpack->finished = TRUE;
			return 0;
		}
		if (ret != ARCHIVE_OK) {
			*error_r = t_strdup_printf("broken gzip: %s",
				archive_error(unpack->archive));
			unpack->failed = TRUE;
			return -1;
		}
		unpack->documents++;
		return 1;
	case DMARC_CONTAINER_ZIP:
		break;
	}

	/* libarchive would skip the rest of an entry the parser left
	   unread by decompressing it uncounted: a bomb entry would cost
	   unbounded time. Drain it here, under the limits. */
	if (unpack->documents > 0 && unpack_drain(unpack, error_r) < 0)
		return -1;
	for (;;) {
		ret = archive_read_next_header(unpack->archive, &entry);
		if (ret == ARCHIVE_EOF) {
			unpack->finished = TRUE;
			return 0;
		}
		if (ret != ARCHIVE_OK && ret != ARCHIVE_WARN) {
			*error_r = t_strdup_printf("broken zip: %s",
				archive_error(unpack->archive));
			unpack->failed = TRUE;
			return -1;
		}
		/* every entry counts, directories too: a zip of nothing but
		   directory entries is no cheaper to walk */
		if (unpack->entries++ >= unpack->limits->max_zip_entries) {
			*error_r = t_strdup_printf("zip has more than %u entries "
				"(dmarcreport_max_zip_entries): the rest is "
				"not read", unpack->limits->max_zip_entries);
			unpack->failed = TRUE;
			return -1;
		}
		if (archive_entry_filetype(entry) != AE_IFDIR)
			break;
	}
	unpack->documents++;
	name = archive_entry_pathname(entry);
	*name_r = name == NULL || *name == '\0' ? "(no name)" : t_strdup(name);
	return 1;
}

static ssize_t
unpack_count(struct dmarc_unpack *unpack, ssize_t size, const char **error_r)
{
	const struct dmarc_limits *limits = unpack->limits;

	if (size <= 0)
		return size;
	unpack->decompressed += size;
	if (unpack->decompressed > limits->max_decompressed_size) {
		*error_r = t_strdup_printf("decompressed size exceeds %"PRIuUOFF_T
			" bytes (dmarcreport_max_decompressed_size)",
			limits->max_decompressed_size);
		unpack->failed = TRUE;
		return -1;
	}
	if ((uoff_t)size > *unpack->message_budget) {
		*error_r = t_strdup_printf("decompressed size of the message's "
			"attachments exceeds %"PRIuUOFF_T" bytes "
			"(dmarcreport_max_message_decompressed_size)",
			limits->max_message_decompressed_size);
		*unpack->message_budget = 0;
		unpack->failed = TRUE;
		return -1;
	}
	*unpack->message_budget -= size;
	return size;
}

ssize_t dmarc_unpack_read(void *context, void *buf, size_t size,
			  const char **error_r)
{
	struct dmarc_unpack *unpack = context;
	ssize_t ret;

	if (unpack->failed) {
		*error_r = "reading stopped after an earlier error";
		return -1;
	}
	if (unpack->container == DMARC_CONTAINER_PLAIN && unpack->fd == -1) {
		ret = I_MIN(size, unpack->data_size - unpack->data_pos);
		memcpy(buf, unpack->data + unpack->data_pos, ret);
		unpack->data_pos += ret;
	} else if (unpack->container == DMARC_CONTAINER_PLAIN) {
		ret = read(unpack->fd, buf, size);
		if (ret < 0) {
			*error_r = t_strdup_printf("read() failed: %m");
			return -1;
		}
	} else {
		ret = archive_read_data(unpack->archive, buf, size);
		if (ret < 0) {
			*error_r = t_strdup_printf("%s: %s",
				unpack->container == DMARC_CONTAINER_GZIP ?
				"broken gzip" : "broken zip",
				archive_error(unpack->archive));
			unpack->failed = TRUE;
			return -1;
		}
	}
	return unpack_count(unpack, ret, error_r);
}
