/* The pipeline both doors call: extract -> archive -> unpack -> the kind
   that recognises the document (dmarc-kinds.h) parses and stores it.
   Bytes travel as istreams: each attachment is written, as it is
   decoded, to the archive and to an iostream-temp that keeps up to
   INGEST_MEMORY_MAX_BYTES in memory; a larger one is unpacked from its
   archive copy, or without an archive moved to an unlinked temp file.
   That istream is unpacked into an istream per document, which the
   kind's parser reads. No large attachment is held in memory whole (a
   TLS report or a failure report part is, bounded by its own setting). */

#include "lib.h"
#include "ioloop.h"
#include "istream.h"
#include "istream-private.h"
#include "ostream.h"
#include "iostream-temp.h"
#include "str.h"
#include "write-full.h"
#include "message-parser.h"
#include "dmarc-log.h"
#include "dmarc-event.h"
#include "time-util.h"
#include "dmarc-settings.h"
#include "dmarc-extract.h"
#include "dmarc-archive.h"
#include "dmarc-unpack.h"
#include "dmarc-parse.h"
#include "dmarc-store.h"
#include "dmarc-store-cache.h"
#include "dmarc-pending.h"
#include "dmarc-kinds.h"
#include "dmarc-ingest-private.h"

/* Attachments up to this size stay in memory (the iostream-temp's
   limit); larger ones spill to an unlinked temp file. Creating a file per
   attachment is what costs most when backfilling thousands of small
   reports. */
#define INGEST_MEMORY_MAX_BYTES (1024*1024)
/* The buffer of a stream read from a file (a spilled attachment, an
   imported report, a pending entry). */
#define INGEST_FILE_BUFFER_SIZE (64*1024)

#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

/* The CPU time one mail (or one imported file) may take:
   dmarcreport_max_processing_time. It is checked where the work loops
   are: on every read of a document's stream (budget_istream_read(): a
   read gives at most 16 KiB of decompressed input, and the parsers bound
   their work per byte), which covers decompression, parsing and storing
   the records, before each document of a container and before each
   attachment, which covers extracting it from the mail. */
struct ingest_budget {
	uint64_t start_usecs;
	uint64_t limit_usecs;
	/* the coarse monotonic clock at the last look at the CPU time */
	uint64_t last_look_usecs;
	/* the limit was reached: nothing more of this mail is processed */
	bool exceeded;
	/* and its one warning was logged */
	bool logged;
};

struct dmarc_ingest {
	pool_t pool;
	struct dmarc_settings set;
	struct event *event;

	struct dmarc_store *store;
	struct dmarc_store_cache *store_cache;
	/* Set once the database could not be used: later reports of this
	   run are not tried again, and the error is logged only once. */
	bool store_failed;
	bool failure_logged;
	/* the first storage failure: what failed, why, and whether only
	   because another writer held the lock */
	const char *failure_prefix;
	char *failure_error;
	bool failure_busy;
	/* a delivery: wait dmarcreport_lock_timeout at most, and queue the
	   reports that could not be stored in the pending spool */
	bool queue_on_failure;
	bool in_batch;
	/* copy attachments into set.archive_dir */
	bool archiving;
	/* "Stored" and "Duplicate" lines at debug level */
	bool quiet;
	/* of the mail or file being ingested */
	struct ingest_budget budget;
};

/* One attachment (or one imported file) on its way through the pipeline. */
struct ingest_attachment {
	struct event *event;
	const char *message_id;
	/* a mail's attachment while it is decoded: the iostream-temp it is
	   written to, and its archive copy (-1 when not archiving) */
	struct ostream *temp;
	int archive_fd;
	/* the bytes to unpack: the iostream-temp's, an imported file's or
	   a pending entry's (seekable, from offset 0) */
	struct istream *input;
	/* relative to the archive dir, NULL when not archived */
	const char *archive_path;
	time_t received;
	/* the MIME type it came with, NULL for a file: what the kinds may
	   use beyond the content (see dmarc_kind_doc) */
	const char *content_type;
	/* the MIME charset, when the part is text or XML: it decides how a
	   plain (uncompressed) document is decoded (RFC 7303) */
	const char *charset;
	/* a mail's attachment: its bytes so far (a cut one is too large
	   only when they reached the limit; else reading the mail failed) */
	uoff_t size;
	/* taken from the pending spool: never queued again */
	bool from_pending;
	bool write_failed;
};

struct ingest_message {
	struct dmarc_ingest *ingest;
	struct dmarc_ingest_counts *counts;
	time_t received;
	uoff_t message_budget;
	struct ingest_attachment att;
	/* what kinds made of several parts keep until the mail ends */
	pool_t pool;
	void *kind_state[DMARC_KIND_COUNT];
	int ret;
};

struct dmarc_ingest *dmarc_ingest_init(const struct dmarc_settings *set,
				       struct event *event)
{
	struct dmarc_ingest *ingest;
	pool_t pool;

	pool = pool_alloconly_create("dmarc ingest", 1024);
	ingest = p_new(pool, struct dmarc_ingest, 1);
	ingest->pool = pool;
	ingest->set = *set;
	ingest->set.db_path = p_strdup(pool, set->db_path);
	ingest->set.archive_dir = p_strdup(pool, set->archive_dir);
	/* no prefix of its own: the caller's event says who is talking
	   ("dmarcreport action: " of the Sieve action, "dmarc import: ") */
	ingest->event = dmarc_event_create(event);
	ingest->archiving = ingest->set.archive_dir != NULL;
	return ingest;
}

void dmarc_ingest_deinit(struct dmarc_ingest **_ingest)
{
	struct dmarc_ingest *ingest = *_ingest;

	*_ingest = NULL;
	if (ingest->in_batch)
		(void)dmarc_ingest_batch_commit(ingest);
	if (ingest->store != NULL && ingest->store_cache != NULL &&
	    !ingest->store_failed) {
		dmarc_store_cache_put(ingest->store_cache, ingest->set.db_path,
				      &ingest->store);
	}
	if (ingest->store != NULL)
		dmarc_store_close(&ingest->store);
	i_free(ingest->failure_error);
	event_unref(&ingest->event);
	pool_unref(&ingest->pool);
}

void dmarc_ingest_set_archiving(struct dmarc_ingest *ingest, bool archive)
{
	ingest->archiving = archive && ingest->set.archive_dir != NULL;
}

void dmarc_ingest_set_store_cache(struct dmarc_ingest *ingest,
				  struct dmarc_store_cache *cache)
{
	i_assert(ingest->store == NULL);
	ingest->store_cache = cache;
}

void dmarc_ingest_set_quiet(struct dmarc_ingest *ingest, bool quiet)
{
	ingest->quiet = quiet;
}

static uint64_t cpu_time_usecs(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		i_fatal("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: %m");
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t coarse_time_usecs(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) < 0)
		i_fatal("clock_gettime(CLOCK_MONOTONIC_COARSE) failed: %m");
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void ingest_budget_start(struct dmarc_ingest *ingest)
{
	i_zero(&ingest->budget);
	ingest->budget.limit_usecs =
		(uint64_t)ingest->set.limits.max_processing_time_msecs * 1000;
	ingest->budget.start_usecs = cpu_time_usecs();
}

static bool ingest_budget_exceeded(struct dmarc_ingest *ingest)
{
	struct ingest_budget *budget = &ingest->budget;
	uint64_t now;

	if (budget->exceeded)
		return TRUE;
	/* The thread's CPU time is a system call (checked on every read,
	   it was 2% of an import); the coarse clock is not. A thread uses
	   no more CPU time than time passes, so looking only when the
	   coarse clock moved (a tick, a few ms) finds the limit as surely,
	   at most a tick late. */
	now = coarse_time_usecs();
	if (now == budget->last_look_usecs)
		return FALSE;
	budget->last_look_usecs = now;
	if (cpu_time_usecs() - budget->start_usecs > budget->limit_usecs)
		budget->exceeded = TRUE;
	return budget->exceeded;
}

static const char *ingest_budget_error(struct dmarc_ingest *ingest)
{
	return t_strdup_printf("the mail took more than %u ms of CPU time "
		"(dmarcreport_max_processing_time); the rest of it is not "
		"processed", ingest->set.limits.max_processing_time_msecs);
}

/* Before more work on the mail: FALSE when the budget is spent. The
   warning is logged once per mail, naming what was about to be
   processed (a failed event); what is skipped after it is counted as
   failed too, but its event says skipped. */
static bool
ingest_budget_check(struct dmarc_ingest *ingest, struct event *event,
		    struct dmarc_ingest_counts *counts)
{
	const char *error;

	if (!ingest_budget_exceeded(ingest))
		return TRUE;
	error = ingest_budget_error(ingest);
	if (!ingest->budget.logged) {
		e_warning(dmarc_event_failed(event, error)->event(),
			  "Not stored: %s", error);
		ingest->budget.logged = TRUE;
	} else {
		e_debug(dmarc_event_skipped(event, error)->event(),
			"Not processed: %s", error);
	}
	counts->failed++;
	return FALSE;
}

void dmarc_ingest_document_failed(struct dmarc_ingest *ingest)
{
	/* the budget's one warning, if that was the cause */
	ingest->budget.logged = ingest->budget.exceeded;
}

void dmarc_ingest_set_queue_on_failure(struct dmarc_ingest *ingest,
				       bool queue)
{
	ingest->queue_on_failure = queue;
}

/* The database failed: remember the first cause; the line about it is
   logged per attachment by ingest_attachment_failed(), which knows
   whether its report was queued. Later reports of this run are not
   tried. */
static void
ingest_store_failed(struct dmarc_ingest *ingest, const char *prefix,
		    const char *error, bool busy)
{
	if (ingest->failure_error == NULL) {
		ingest->failure_prefix = prefix;
		ingest->failure_error = i_strdup(error);
		ingest->failure_busy = busy;
	}
	ingest->store_failed = TRUE;
	if (ingest->store != NULL && ingest->queue_on_failure) {
		/* Closed at once: on a full disk, the last connection's
		   close removes the WAL of what was rolled back, and the
		   space it gives back lets the spool entry be written. */
		dmarc_store_close(&ingest->store);
	}
}

struct dmarc_store *dmarc_ingest_get_store(struct dmarc_ingest *ingest)
{
	const char *error;

	if (ingest->store != NULL || ingest->store_failed)
		return ingest->store;
	if (ingest->store_cache != NULL && !ingest->in_batch) {
		ingest->store = dmarc_store_cache_take(ingest->store_cache,
						       ingest->set.db_path);
	}
	if (ingest->store == NULL &&
	    dmarc_store_open(ingest->set.db_path, DMARC_STORE_OPEN_CREATE,
			     &ingest->store, &error) <= 0) {
		ingest->store = NULL;
		ingest_store_failed(ingest, "Cannot open the report database",
				    error, FALSE);
		return NULL;
	}
	if (ingest->queue_on_failure) {
		dmarc_store_set_busy_timeout(ingest->store,
			ingest->set.limits.lock_timeout_msecs);
	}
	if (ingest->in_batch) {
		if (dmarc_store_batch_begin(ingest->store, &error) < 0) {
			ingest_store_failed(ingest, "Storing the report failed",
				error, dmarc_store_get_error(ingest->store) ==
				DMARC_STORE_ERROR_BUSY);
			return NULL;
		}
		/* deliveries get the lock between two commits */
		dmarc_store_batch_set_max_time(ingest->store,
			DMARC_LOCK_TIMEOUT_BATCH_MSECS(
				ingest->set.limits.lock_timeout_msecs));
	}
	return ingest->store;
}

int dmarc_ingest_report_store_failed(struct dmarc_ingest *ingest,
				     struct event *event, const char *label,
				     const char *error,
				     struct dmarc_ingest_counts *counts)
{
	enum dmarc_store_error code = ingest->store == NULL ?
		DMARC_STORE_ERROR_STORAGE :
		dmarc_store_get_error(ingest->store);

	if (code == DMARC_STORE_ERROR_REPORT) {
		e_warning(dmarc_event_failed(event, error)->event(),
			  "Not stored: %s: %s", label, dmarc_log_text(error));
		counts->failed++;
		return 0;
	}
	ingest_store_failed(ingest, "Storing the report failed", error,
			    code == DMARC_STORE_ERROR_BUSY);
	return -1;
}

int dmarc_ingest_batch_begin(struct dmarc_ingest *ingest)
{
	i_assert(!ingest->in_batch);
	ingest->in_batch = TRUE;
	/* the transaction starts when the store is first opened */
	if (ingest->store != NULL) {
		const char *error;

		if (dmarc_store_batch_begin(ingest->store, &error) < 0) {
			e_error(ingest->event, "Starting the import failed: %s",
				dmarc_log_text(error));
			ingest->failure_logged = TRUE;
			ingest->store_failed = TRUE;
			return -1;
		}
		dmarc_store_batch_set_max_time(ingest->store,
			DMARC_LOCK_TIMEOUT_BATCH_MSECS(
				ingest->set.limits.lock_timeout_msecs));
	}
	return 0;
}

int dmarc_ingest_batch_commit(struct dmarc_ingest *ingest)
{
	unsigned int lost;
	const char *error;

	i_assert(ingest->in_batch);
	ingest->in_batch = FALSE;
	if (ingest->store == NULL)
		return ingest->store_failed ? -1 : 0;
	lost = dmarc_store_batch_uncommitted(ingest->store);
	if (dmarc_store_batch_commit(ingest->store, &error) < 0) {
		/* the reports committed before this batch's last
		   transaction stay stored */
		if (!ingest->failure_logged) {
			e_error(ingest->event, "Storing the reports failed "
				"(the last %u of them are not stored): %s",
				lost, dmarc_log_text(error));
		}
		ingest->failure_logged = TRUE;
		ingest->store_failed = TRUE;
		return -1;
	}
	return 0;
}

enum log_type dmarc_ingest_report_log_type(struct dmarc_ingest *ingest)
{
	return ingest->quiet ? LOG_TYPE_DEBUG : LOG_TYPE_INFO;
}

const struct dmarc_limits *dmarc_ingest_get_limits(struct dmarc_ingest *ingest)
{
	return &ingest->set.limits;
}

void dmarc_ingest_storage_failed(struct dmarc_ingest *ingest,
				 struct event *event, const char *error)
{
	bool busy = ingest->store != NULL &&
		dmarc_store_get_error(ingest->store) == DMARC_STORE_ERROR_BUSY;

	if (error != NULL) {
		ingest_store_failed(ingest, "Storing the report failed",
				    error, busy);
	}
	i_assert(ingest->failure_error != NULL);
	if (!ingest->failure_logged) {
		e_error(dmarc_event_failed(event, ingest->failure_error)->
			event(), "%s (the mail is kept; store its reports "
			"later with `doveadm dmarc import`): %s",
			ingest->failure_prefix,
			dmarc_log_text(ingest->failure_error));
		ingest->failure_logged = TRUE;
	} else {
		/* the line above covers it; the event counts it */
		e_debug(dmarc_event_failed(event, ingest->failure_error)->
			event(), "Not stored: %s",
			dmarc_log_text(ingest->failure_error));
	}
}

int dmarc_ingest_read_all(struct istream *input, uoff_t max_size,
			  const char *limit_name, buffer_t *buf,
			  const char **error_r)
{
	const unsigned char *data;
	size_t size;
	int ret;

	while ((ret = i_stream_read_more(input, &data, &size)) > 0) {
		if (buf->used + size > max_size) {
			/* buf keeps the first max_size bytes (a failure
			   report part may still be usable) */
			buffer_append(buf, data, max_size - buf->used);
			*error_r = t_strdup_printf("larger than %s "
				"(%"PRIuUOFF_T" bytes)", limit_name, max_size);
			return -1;
		}
		buffer_append(buf, data, size);
		i_stream_skip(input, size);
	}
	if (input->stream_errno != 0) {
		*error_r = i_stream_get_error(input);
		return -1;
	}
	if (ret == 0) {
		/* the document streams are blocking */
		*error_r = t_strdup_printf("read(%s) failed: the stream would "
					   "block", i_stream_get_name(input));
		return -1;
	}
	return 0;
}

/* A document's stream as the kinds read it: each read first checks the
   mail's CPU time budget (dmarcreport_max_processing_time), so a parser
   stops with the budget's error once it is spent. */
struct budget_istream {
	struct istream_private istream;
	struct dmarc_ingest *ingest;
};

static ssize_t budget_istream_read(struct istream_private *stream)
{
	struct budget_istream *bstream =
		container_of(stream, struct budget_istream, istream);

	if (ingest_budget_exceeded(bstream->ingest)) {
		io_stream_set_error(&stream->iostream, "%s",
				    ingest_budget_error(bstream->ingest));
		stream->istream.stream_errno = EINVAL;
		return -1;
	}
	i_stream_seek(stream->parent, stream->parent_start_offset +
		      stream->istream.v_offset);
	return i_stream_read_copy_from_parent(&stream->istream);
}

static struct istream *
budget_istream_create(struct dmarc_ingest *ingest, struct istream *input)
{
	struct budget_istream *bstream;

	bstream = i_new(struct budget_istream, 1);
	bstream->ingest = ingest;
	bstream->istream.max_buffer_size = input->real_stream->max_buffer_size;
	bstream->istream.read = budget_istream_read;
	bstream->istream.istream.blocking = input->blocking;
	bstream->istream.istream.seekable = FALSE;
	return i_stream_create(&bstream->istream, input, -1, 0);
}

/* Recognise the document by its first bytes and hand it to its kind.
   Returns -1 only when storage failed; a bad document is logged and
   counted. */
static int
ingest_document(struct ingest_message *msg, struct ingest_attachment *att,
		struct dmarc_unpack *unpack, struct istream *doc_input)
{
	struct dmarc_ingest *ingest = msg->ingest;
	const struct dmarc_kind *kind;
	struct dmarc_kind_doc doc;
	struct istream *input;
	const unsigned char *data;
	size_t size;
	unsigned int i;
	int ret;

	input = budget_istream_create(ingest, doc_input);
	/* the first bytes stay in the stream for the kind's parser */
	(void)i_stream_read_bytes(input, &data, &size, DMARC_KIND_PEEK_SIZE);
	if (input->stream_errno != 0) {
		const char *error = i_stream_get_error(input);

		e_warning(dmarc_event_failed(att->event, error)->event(),
			  "Not stored: %s", dmarc_log_text(error));
		dmarc_ingest_document_failed(ingest);
		msg->counts->failed++;
		i_stream_unref(&input);
		return 0;
	}
	/* the read may give more than asked for, as much as the stream's
	   block (a zip entry, a gzip, a plain part differ): recognisers see
	   the same first bytes whatever the container */
	if (size > DMARC_KIND_PEEK_SIZE)
		size = DMARC_KIND_PEEK_SIZE;
	kind = dmarc_kind_find(data, size);
	for (i = 0; dmarc_kinds[i] != kind; i++) ;
	/* the document's own event (an attachment, or a zip entry's) */
	event_add_str(att->event, "kind", kind->name);

	i_zero(&doc);
	doc.ingest = ingest;
	doc.event = att->event;
	doc.input = input;
	doc.archive_path = att->archive_path;
	doc.message_id = att->message_id;
	doc.content_type = att->content_type;
	/* the label describes the bytes as sent, not what a gzip or zip
	   inside them holds */
	if (att->charset != NULL &&
	    dmarc_unpack_get_container(unpack) == DMARC_CONTAINER_PLAIN)
		doc.charset = att->charset;
	doc.received = att->received;
	doc.counts = msg->counts;
	doc.state = &msg->kind_state[i];
	doc.message_pool = msg->pool;
	ret = kind->ingest(&doc);
	i_stream_unref(&input);
	return ret;
}

/* How the report can still be stored once the cause is fixed. */
static const char *
ingest_recovery_hint(struct dmarc_ingest *ingest,
		     const struct ingest_attachment *att)
{
	if (att->archive_path == NULL) {
		return "the mail is kept; store its reports later with "
			"`doveadm dmarc import --mailbox`";
	}
	return t_strdup_printf("the mail is kept and the attachment is in "
			       "%s/%s; store it later with `doveadm dmarc "
			       "import`", ingest->set.archive_dir,
			       att->archive_path);
}

/* The database failed while this attachment was stored (or before): a
   delivery queues the attachment in the pending spool. One line says
   what failed and where the report is now; only a failure to queue a
   later attachment of the same message adds a line. */
static void
ingest_attachment_failed(struct dmarc_ingest *ingest,
			 struct ingest_attachment *att,
			 struct dmarc_ingest_counts *counts)
{
	struct dmarc_pending_info info;
	const char *error, *hint;
	int ret;

	i_assert(ingest->failure_error != NULL);
	if (!ingest->queue_on_failure || att->from_pending) {
		if (!ingest->failure_logged) {
			e_error(dmarc_event_failed(att->event,
				ingest->failure_error)->event(), "%s: %s",
				ingest->failure_prefix,
				dmarc_log_text(ingest->failure_error));
		} else {
			e_debug(dmarc_event_failed(att->event,
				ingest->failure_error)->event(),
				"Not stored: %s",
				dmarc_log_text(ingest->failure_error));
		}
		ingest->failure_logged = TRUE;
		return;
	}
	i_zero(&info);
	info.archive_path = att->archive_path;
	info.message_id = att->message_id;
	info.received = att->received;
	ret = dmarc_pending_add(ingest->set.db_path,
				ingest->set.limits.max_pending_size, &info,
				att->input, &error);
	if (ret == 0) {
		counts->queued++;
		hint = t_strdup_printf("queued in %s: the next delivery or "
			"`doveadm dmarc import --pending` stores it",
			dmarc_pending_dir(ingest->set.db_path));
	} else {
		hint = t_strdup_printf("not queued: %s; %s", error,
				       ingest_recovery_hint(ingest, att));
	}
	if (!ingest->failure_logged) {
		/* a busy database is not broken: a long import or expire
		   held it */
		e_log(dmarc_event_failed(att->event, ingest->failure_error)->
		      add_str("queued", ret == 0 ? "yes" : "no")->event(),
		      ingest->failure_busy && ret == 0 ?
		      LOG_TYPE_WARNING : LOG_TYPE_ERROR, "%s (%s): %s",
		      ingest->failure_prefix, dmarc_log_text(hint),
		      dmarc_log_text(ingest->failure_error));
		ingest->failure_logged = TRUE;
	} else if (ret < 0) {
		e_error(dmarc_event_failed(att->event, ingest->failure_error)->
			add_str("queued", "no")->event(),
			"Storing the report failed (%s)", dmarc_log_text(hint));
	} else {
		e_debug(dmarc_event_failed(att->event, ingest->failure_error)->
			add_str("queued", "yes")->event(),
			"Not stored (%s)", dmarc_log_text(hint));
	}
}

/* Unpack the attachment (att->input) and ingest each document. */
static int
ingest_attachment_data(struct ingest_message *msg,
		       struct ingest_attachment *att)
{
	struct dmarc_ingest *ingest = msg->ingest;
	struct dmarc_ingest_counts *counts = msg->counts;
	struct dmarc_unpack *unpack;
	struct istream *doc_input;
	const char *entry_name, *error;
	unsigned int documents = 0, bad = 0;
	struct event *parent_event = att->event;
	int ret = 0, result = 0;

	unpack = dmarc_unpack_init(att->input, &ingest->set.limits,
				   &msg->message_budget);
	while (result == 0 && !ingest->budget.exceeded &&
	       (ret = dmarc_unpack_next(unpack, &entry_name, &doc_input,
					&error)) != 0) {
		if (!ingest_budget_check(ingest, att->event, counts))
			break;
		if (entry_name != NULL) {
			att->event = event_create(parent_event);
			entry_name = dmarc_log_value(entry_name);
			event_add_str(att->event, "zip_entry", entry_name);
			event_set_append_log_prefix(att->event, t_strdup_printf(
				"zip entry '%s': ", entry_name));
		}
		if (ret < 0) {
			/* a bad entry, or the container: the entries after
			   a bad one are still read */
			e_warning(dmarc_event_failed(att->event, error)->event(),
				  "Not stored: %s", dmarc_log_text(error));
			counts->failed++;
			bad++;
		} else T_BEGIN {
			documents++;
			result = ingest_document(msg, att, unpack, doc_input);
		} T_END;
		if (entry_name != NULL) {
			event_unref(&att->event);
			att->event = parent_event;
		}
	}
	if (result == 0 && documents == 0 && bad == 0 &&
	    !ingest->budget.exceeded) {
		error = "no document in the container";
		e_warning(dmarc_event_failed(att->event, error)->event(),
			  "Not stored: %s", error);
		counts->failed++;
	}
	dmarc_unpack_deinit(&unpack);
	if (result < 0)
		ingest_attachment_failed(ingest, att, counts);
	return result;
}

/* The archive copy of an attachment or a file, or -1 when not archiving
   or archiving failed (logged: it is processed anyway). */
static int
ingest_open_archive(struct dmarc_ingest *ingest, struct ingest_attachment *att,
		    const char *filename, time_t when)
{
	const char *error;
	int fd;

	att->archive_path = NULL;
	if (!ingest->archiving)
		return -1;
	/* dmarc_archive_create() makes the sender's name safe */
	if (dmarc_archive_create(ingest->set.archive_dir, when, filename, &fd,
				 &att->archive_path, &error) == 0)
		return fd;
	e_error(att->event, "Archiving failed, processing it anyway: %s",
		dmarc_log_text(error));
	att->archive_path = NULL;
	return -1;
}

static const char *ingest_temp_dir(void)
{
	const char *tmpdir = getenv("TMPDIR");

	return tmpdir == NULL || *tmpdir == '\0' ? "/tmp" : tmpdir;
}

/* Where an attachment is kept while it is decoded: in memory, then an
   unlinked temp file in $TMPDIR. */
static struct ostream *ingest_temp_create(void)
{
	return iostream_temp_create_sized(t_strconcat(ingest_temp_dir(),
						      "/dmarcreport.", NULL),
					  0, "attachment",
					  INGEST_MEMORY_MAX_BYTES);
}

static const char *attachment_label(const struct dmarc_attachment *att)
{
	if (att->filename != NULL && *att->filename != '\0')
		return dmarc_log_value(att->filename);
	return t_strdup_printf("#%u (%s, no name)", att->index,
			       dmarc_log_value(att->content_type));
}

/* RFC 7303: the charset parameter of an XML or text type names the
   document's encoding. Other types have no business carrying one. */
static bool content_type_has_charset(const char *content_type)
{
	size_t len = strlen(content_type);

	return strncmp(content_type, "text/", 5) == 0 ||
		strcmp(content_type, "application/xml") == 0 ||
		(len > 4 && strcmp(content_type + len - 4, "+xml") == 0);
}

static bool
ingest_attachment_begin(const struct dmarc_attachment *att, void *context)
{
	struct ingest_message *ctx = context;
	const char *label = attachment_label(att);

	ctx->counts->attachments++;
	i_zero(&ctx->att);
	/* valid until dmarc_extract_message() returns */
	ctx->att.message_id = att->message_id;
	if (att->charset != NULL && content_type_has_charset(att->content_type))
		ctx->att.charset = att->charset;
	ctx->att.event = event_create(ctx->ingest->event);
	event_add_str(ctx->att.event, "attachment", label);
	event_set_append_log_prefix(ctx->att.event,
		t_strdup_printf("attachment '%s': ", label));
	ctx->att.received = ctx->received;
	/* valid until dmarc_extract_message() returns */
	ctx->att.content_type = att->content_type;
	ctx->att.temp = ingest_temp_create();
	ctx->att.archive_fd = ingest_open_archive(ctx->ingest, &ctx->att,
						  att->filename, ctx->received);
	return TRUE;
}

static void ingest_archive_remove(struct dmarc_ingest *ingest,
				  struct ingest_attachment *att);

static void
ingest_attachment_write(const unsigned char *data, size_t size, void *context)
{
	struct ingest_message *ctx = context;
	struct ingest_attachment *att = &ctx->att;

	att->size += size;
	if (att->write_failed)
		return;
	if (att->temp != NULL && att->archive_fd != -1 &&
	    att->temp->offset + size > INGEST_MEMORY_MAX_BYTES) {
		/* more than is kept in memory: it is unpacked from the
		   archive copy, not written a second time to a temp file */
		o_stream_destroy(&att->temp);
	}
	if (att->archive_fd != -1 && write_full(att->archive_fd, data, size) < 0) {
		/* errno taken first: the sanitising calls may change it
		   before %m would be expanded. While the attachment is in
		   memory too the archive is only a copy: it goes on,
		   stored without an archive path. */
		const char *reason = strerror(errno);

		if (att->temp == NULL) {
			/* the archive copy was the one to unpack */
			e_error(att->event, "write(%s/%s) failed: %s",
				dmarc_log_text(ctx->ingest->set.archive_dir),
				dmarc_log_text(att->archive_path), reason);
			att->write_failed = TRUE;
		} else {
			e_error(att->event, "Archiving failed, processing it "
				"anyway: write(%s/%s) failed: %s",
				dmarc_log_text(ctx->ingest->set.archive_dir),
				dmarc_log_text(att->archive_path), reason);
		}
		i_close_fd(&att->archive_fd);
		ingest_archive_remove(ctx->ingest, att);
		if (att->write_failed)
			return;
	}
	if (att->temp == NULL)
		return;
	if (o_stream_send(att->temp, data, size) < 0) {
		e_error(att->event, "write(temp file) failed: %s",
			o_stream_get_error(att->temp));
		att->write_failed = TRUE;
	} else if (att->temp->offset > INGEST_MEMORY_MAX_BYTES &&
		   o_stream_get_fd(att->temp) == -1) {
		/* iostream-temp could not create or write its temp file
		   (logged before): it would keep the whole attachment in
		   memory instead */
		e_error(att->event, "write(temp file) failed: the attachment "
			"is larger than %u bytes and could not be moved to a "
			"temp file in %s", INGEST_MEMORY_MAX_BYTES,
			dmarc_log_text(ingest_temp_dir()));
		att->write_failed = TRUE;
	}
	if (att->write_failed) {
		/* what was kept in memory goes now */
		o_stream_destroy(&att->temp);
	}
}

/* A cut-off copy in the archive would only be re-imported as garbage
   later: the mail is the copy to go back to. */
static void ingest_archive_remove(struct dmarc_ingest *ingest,
				  struct ingest_attachment *att)
{
	const char *error;

	if (att->archive_path == NULL)
		return;
	if (dmarc_archive_remove(ingest->set.archive_dir, att->archive_path,
				 &error) < 0)
		e_error(att->event, "%s", dmarc_log_text(error));
	att->archive_path = NULL;
}

static void
ingest_attachment_end(const struct dmarc_attachment *att ATTR_UNUSED,
		      bool truncated, void *context)
{
	struct ingest_message *ctx = context;
	int fd = -1;

	if (ctx->att.temp == NULL && !ctx->att.write_failed) {
		/* unpacked from the archive copy: read through a dup, so
		   that closing the file checks its writes as before */
		fd = dup(ctx->att.archive_fd);
		if (fd == -1) {
			e_error(ctx->att.event, "dup(%s/%s) failed: %m",
				dmarc_log_text(ctx->ingest->set.archive_dir),
				dmarc_log_text(ctx->att.archive_path));
			ctx->att.write_failed = TRUE;
		}
	}
	if (ctx->att.archive_fd != -1 && close(ctx->att.archive_fd) < 0) {
		if (fd != -1) {
			e_error(ctx->att.event, "close(%s/%s) failed: %m",
				dmarc_log_text(ctx->ingest->set.archive_dir),
				dmarc_log_text(ctx->att.archive_path));
			ctx->att.write_failed = TRUE;
		} else {
			e_error(ctx->att.event, "Archiving failed, processing "
				"it anyway: close(%s/%s) failed: %m",
				dmarc_log_text(ctx->ingest->set.archive_dir),
				dmarc_log_text(ctx->att.archive_path));
		}
		ingest_archive_remove(ctx->ingest, &ctx->att);
	}
	ctx->att.archive_fd = -1;
	if (ctx->att.write_failed) {
		o_stream_destroy(&ctx->att.temp);
		if (fd != -1)
			i_close_fd(&fd);
	} else if (fd != -1) {
		ctx->att.input = i_stream_create_fd_autoclose(&fd,
			INGEST_FILE_BUFFER_SIZE);
	} else {
		ctx->att.input = iostream_temp_finish(&ctx->att.temp,
						      INGEST_FILE_BUFFER_SIZE);
	}
	if (ctx->att.write_failed) {
		/* disk full or similar: the mail itself is the copy left;
		   the cause was logged */
		e_debug(dmarc_event_failed(ctx->att.event,
			"writing the attachment failed")->event(),
			"Not stored: writing the attachment failed");
		ingest_archive_remove(ctx->ingest, &ctx->att);
		ctx->counts->failed++;
		ctx->ret = -1;
	} else if (truncated) {
		uoff_t max_size = ctx->ingest->set.limits.max_attachment_size;
		const char *error = ctx->att.size < max_size ?
			"reading the mail failed inside the attachment" :
			t_strdup_printf("attachment larger than "
				"dmarcreport_max_attachment_size (%"PRIuUOFF_T
				" bytes)", max_size);

		e_warning(dmarc_event_failed(ctx->att.event, error)->event(),
			  "Not stored: %s", error);
		ingest_archive_remove(ctx->ingest, &ctx->att);
		ctx->counts->failed++;
	} else if (!ingest_budget_check(ctx->ingest, ctx->att.event,
					ctx->counts)) {
		/* kept in the archive (and the mail) for a later import */
	} else if (ingest_attachment_data(ctx, &ctx->att) < 0) {
		ctx->ret = -1;
	}
	i_stream_unref(&ctx->att.input);
	event_unref(&ctx->att.event);
}

static void
ingest_embedded_header(const char *name, const char *value, void *context)
{
	struct ingest_message *ctx = context;
	unsigned int i;

	for (i = 0; dmarc_kinds[i] != NULL; i++) {
		if (dmarc_kinds[i]->embedded_header != NULL) {
			dmarc_kinds[i]->embedded_header(&ctx->kind_state[i],
							name, value);
		}
	}
}

static bool
ingest_claim_text(const unsigned char *data, size_t size,
		  void *context ATTR_UNUSED)
{
	return dmarc_kind_claims_text(data, size);
}

static const struct dmarc_extract_callbacks ingest_extract_callbacks = {
	.begin = ingest_attachment_begin,
	.data = ingest_attachment_write,
	.end = ingest_attachment_end,
	.embedded_header = ingest_embedded_header,
	.claim_text = ingest_claim_text,
};

static void ingest_message_init(struct ingest_message *ctx,
				struct dmarc_ingest *ingest,
				struct dmarc_ingest_counts *counts,
				time_t received)
{
	i_zero(ctx);
	ctx->ingest = ingest;
	ctx->counts = counts;
	ctx->received = received;
	ctx->message_budget = ingest->set.limits.max_message_decompressed_size;
	ctx->pool = pool_alloconly_create("dmarc ingest message", 1024);
}

/* Kinds made of several parts store what they collected. */
static void ingest_message_end(struct ingest_message *ctx)
{
	unsigned int i;

	for (i = 0; dmarc_kinds[i] != NULL; i++) {
		if (dmarc_kinds[i]->message_end == NULL)
			continue;
		T_BEGIN {
			if (dmarc_kinds[i]->message_end(ctx->ingest,
					&ctx->kind_state[i], ctx->counts) < 0)
				ctx->ret = -1;
		} T_END;
	}
	pool_unref(&ctx->pool);
}

int dmarc_ingest_message(struct dmarc_ingest *ingest, struct istream *input,
			 time_t received, struct dmarc_ingest_counts *counts)
{
	struct ingest_message ctx;
	struct dmarc_extract_stats stats;
	struct dmarc_ingest_counts before;
	const char *error;

	/* the caller may add up several messages in counts */
	before = *counts;
	ingest_message_init(&ctx, ingest, counts, received);
	ingest_budget_start(ingest);

	if (dmarc_extract_message(input, &ingest->set.limits,
				  &ingest_extract_callbacks, &ctx,
				  &stats, &error) < 0) {
		e_error(dmarc_event_failed(ingest->event, error)->event(),
			"Reading the message failed: %s", dmarc_log_text(error));
		ctx.ret = -1;
	}
	if (stats.skipped > 0) {
		error = t_strdup_printf("%u attachments past "
			"dmarcreport_max_attachments=%u not processed",
			stats.skipped, ingest->set.limits.max_attachments);
		e_warning(dmarc_event_skipped(ingest->event, error)->
			  add_int("attachments", stats.skipped)->event(),
			  "%s", error);
		counts->failed += stats.skipped;
	}
	if (stats.mime_overflow) {
		/* what lies below is not looked at: a report there would
		   be lost without a word */
		error = t_strdup_printf("MIME parts nested deeper than "
			"dmarcreport_max_mime_depth=%u (or more than %u parts) "
			"not processed", ingest->set.limits.max_mime_depth,
			MESSAGE_PARSER_DEFAULT_MAX_TOTAL_MIME_PARTS);
		e_warning(dmarc_event_skipped(ingest->event, error)->event(),
			  "%s", error);
		counts->failed++;
	}
	ingest_message_end(&ctx);
	if (stats.is_feedback_report &&
	    counts->reports_new == before.reports_new &&
	    counts->reports_duplicate == before.reports_duplicate &&
	    counts->failed == before.failed) {
		/* nothing in it was taken for a report: neither an ARF
		   part nor a text-only report (as Exim sends them) */
		error = "not a report: a multipart/report (report-type "
			"feedback-report or none) without a part with a "
			"Feedback-Type field or the Sender Domain and Sender IP "
			"Address lines of a text-only failure report";
		e_warning(dmarc_event_failed(ingest->event, error)->
			  add_str("kind", dmarc_kind_failure.name)->event(),
			  "Not stored: %s", error);
		counts->failed++;
	} else if (counts->attachments == before.attachments) {
		e_info(dmarc_event_skipped(ingest->event, "no attachment")->
		       event(), "No attachment in the message: nothing to store");
	}
	return ctx.ret;
}

/* If path lies inside the archive dir, its path relative to it. */
static const char *
archive_relative_path(struct dmarc_ingest *ingest, const char *path)
{
	const char *dir = ingest->set.archive_dir;
	size_t len;

	if (dir == NULL)
		return NULL;
	len = strlen(dir);
	while (len > 1 && dir[len-1] == '/')
		len--;
	if (strncmp(path, dir, len) != 0 || path[len] != '/')
		return NULL;
	return path + len + 1;
}

/* Copies input from its offset 0 to fd; input is left at offset 0. */
static int copy_stream(struct istream *input, int fd, const char **error_r)
{
	const unsigned char *data;
	size_t size;
	int ret = 0;

	i_stream_seek(input, 0);
	while (i_stream_read_more(input, &data, &size) > 0) {
		if (write_full(fd, data, size) < 0) {
			*error_r = t_strdup_printf("write() failed: %m");
			ret = -1;
			break;
		}
		i_stream_skip(input, size);
	}
	if (ret == 0 && input->stream_errno != 0) {
		*error_r = t_strdup_printf("read(%s) failed: %s",
					   i_stream_get_name(input),
					   i_stream_get_error(input));
		ret = -1;
	}
	i_stream_seek(input, 0);
	return ret;
}

int dmarc_ingest_file_stream(struct dmarc_ingest *ingest, const char *path,
			     struct istream *input, time_t mtime,
			     struct dmarc_ingest_counts *counts)
{
	struct ingest_attachment att;
	struct ingest_message msg;
	const char *error, *base;
	uoff_t size;
	int fd, ret;

	i_zero(&att);
	att.archive_fd = -1;
	base = strrchr(path, '/');
	base = base == NULL ? path : base + 1;
	ingest_budget_start(ingest);
	att.event = event_create(ingest->event);
	event_add_str(att.event, "file", dmarc_log_value(path));
	event_set_append_log_prefix(att.event, t_strdup_printf(
		"file '%s': ", dmarc_log_value(path)));
	counts->attachments++;

	if (i_stream_get_size(input, TRUE, &size) > 0 &&
	    size > ingest->set.limits.max_attachment_size) {
		error = "larger than dmarcreport_max_attachment_size";
		e_warning(dmarc_event_failed(att.event, error)->event(),
			  "Not stored: %s", error);
		counts->failed++;
		event_unref(&att.event);
		return 0;
	}

	att.archive_path = archive_relative_path(ingest, path);
	if (att.archive_path == NULL && ingest->archiving) {
		/* backfilled reports go to the archive like delivered ones,
		   dated by the file's modification time */
		fd = ingest_open_archive(ingest, &att, base, mtime);
		if (fd != -1) {
			if (copy_stream(input, fd, &error) < 0) {
				/* the file itself is processed instead */
				e_error(att.event, "Archiving failed: %s",
					dmarc_log_text(error));
				ingest_archive_remove(ingest, &att);
			}
			i_close_fd(&fd);
		}
	}
	att.input = input;
	att.received = mtime;
	ingest_message_init(&msg, ingest, counts, mtime);
	ret = ingest_attachment_data(&msg, &att);
	ingest_message_end(&msg);
	if (msg.ret < 0)
		ret = -1;
	event_unref(&att.event);
	return ret;
}

int dmarc_ingest_file(struct dmarc_ingest *ingest, const char *path,
		      struct dmarc_ingest_counts *counts)
{
	struct istream *input;
	struct event *event;
	const char *error = NULL;
	struct stat st;
	int fd, ret;

	/* O_NONBLOCK: a FIFO must not hang the import */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd == -1 || fstat(fd, &st) < 0)
		error = t_strdup_printf("open() failed: %m");
	else if (!S_ISREG(st.st_mode))
		error = "Not a regular file";
	if (error != NULL) {
		event = event_create(ingest->event);
		event_set_append_log_prefix(event, t_strdup_printf(
			"file '%s': ", dmarc_log_value(path)));
		e_error(event, "%s", error);
		event_unref(&event);
		counts->attachments++;
		counts->failed++;
		if (fd != -1)
			i_close_fd(&fd);
		return 0;
	}
	input = i_stream_create_fd_autoclose(&fd, INGEST_FILE_BUFFER_SIZE);
	i_stream_set_name(input, path);
	ret = dmarc_ingest_file_stream(ingest, path, input, st.st_mtime,
				       counts);
	i_stream_unref(&input);
	return ret;
}

/* One entry of the pending spool: 0 done (stored, duplicate or no
   report: remove it), -1 storage failed again (keep it). */
static int
ingest_pending_entry(struct dmarc_ingest *ingest,
		     const struct dmarc_pending_entry *entry,
		     struct dmarc_ingest_counts *counts)
{
	struct ingest_attachment att;
	struct ingest_message msg;
	const char *error;
	struct stat st;
	int fd = -1, ret;

	i_zero(&att);
	att.archive_fd = -1;
	att.from_pending = TRUE;
	att.message_id = entry->info.message_id;
	att.received = entry->info.received;
	att.event = event_create(ingest->event);
	event_add_str(att.event, "pending", entry->name);
	if (entry->info.message_id != NULL)
		event_add_str(att.event, "message_id", entry->info.message_id);
	event_set_append_log_prefix(att.event, t_strdup_printf(
		"pending '%s': ", dmarc_log_value(entry->name)));
	counts->attachments++;

	if (entry->info.archive_path != NULL) {
		if (ingest->set.archive_dir == NULL) {
			error = t_strdup_printf("its attachment is in the "
				"archive (%s), but dmarcreport_archive_dir is "
				"not set", entry->info.archive_path);
			e_error(dmarc_event_failed(att.event, error)->event(),
				"Kept: %s", dmarc_log_text(error));
			event_unref(&att.event);
			return -1;
		}
		att.archive_path = entry->info.archive_path;
		ret = dmarc_archive_open(ingest->set.archive_dir,
					 att.archive_path, &fd, &error);
	} else {
		fd = open(entry->data_path, O_RDONLY | O_NOFOLLOW);
		ret = fd != -1 ? 1 : errno == ENOENT ? 0 : -1;
		if (ret < 0) {
			error = t_strdup_printf("open(%s) failed: %m",
						entry->data_path);
		}
	}
	if (ret <= 0) {
		if (ret == 0) {
			error = t_strdup_printf("its attachment is gone (%s)",
				entry->info.archive_path != NULL ?
				entry->info.archive_path : entry->data_path);
			e_warning(dmarc_event_failed(att.event, error)->event(),
				  "Not stored: %s; entry removed",
				  dmarc_log_text(error));
			counts->failed++;
		} else {
			e_error(dmarc_event_failed(att.event, error)->event(),
				"%s", dmarc_log_text(error));
		}
		event_unref(&att.event);
		return ret == 0 ? 0 : -1;
	}
	if (fstat(fd, &st) == 0 &&
	    (uoff_t)st.st_size > ingest->set.limits.max_attachment_size) {
		error = "larger than dmarcreport_max_attachment_size";
		e_warning(dmarc_event_failed(att.event, error)->event(),
			  "Not stored: %s", error);
		counts->failed++;
		ret = 0;
	} else {
		/* each entry is one mail's attachment: a CPU budget of its
		   own */
		ingest_budget_start(ingest);
		att.input = i_stream_create_fd(fd, INGEST_FILE_BUFFER_SIZE);
		ingest_message_init(&msg, ingest, counts, att.received);
		ret = ingest_attachment_data(&msg, &att);
		ingest_message_end(&msg);
		if (msg.ret < 0)
			ret = -1;
		i_stream_unref(&att.input);
	}
	i_close_fd(&fd);
	event_unref(&att.event);
	return ret;
}

void dmarc_ingest_counts_add(struct dmarc_ingest_counts *dest,
			     const struct dmarc_ingest_counts *src)
{
	dest->attachments += src->attachments;
	dest->reports_new += src->reports_new;
	dest->reports_duplicate += src->reports_duplicate;
	dest->failed += src->failed;
	dest->records += src->records;
	dest->queued += src->queued;
}

int dmarc_ingest_pending(struct dmarc_ingest *ingest, bool include_failed,
			 unsigned int max_msecs,
			 struct dmarc_ingest_counts *counts)
{
	struct dmarc_ingest_counts pcounts;
	struct dmarc_pending_iter *iter;
	const struct dmarc_pending_entry *entry;
	struct timeval start, now;
	const char *error;
	int ret, result = 0;

	i_assert(!ingest->in_batch);
	if (ingest->store_failed)
		return -1;
	i_zero(&pcounts);
	i_gettimeofday(&start);
	iter = dmarc_pending_iter_init(ingest->set.db_path, include_failed);
	/* a database that cannot be opened now must not cost the entries
	   one of their attempts each */
	if (dmarc_pending_iter_count(iter) > 0 &&
	    dmarc_ingest_get_store(ingest) == NULL) {
		e_warning(ingest->event, "%u pending reports wait: %s: %s",
			  dmarc_pending_iter_count(iter),
			  ingest->failure_prefix,
			  dmarc_log_text(ingest->failure_error));
		ingest->failure_logged = TRUE;
		(void)dmarc_pending_iter_deinit(&iter, &error);
		return -1;
	}
	while ((ret = dmarc_pending_iter_next(iter, &entry, &error)) != 0) {
		if (ret < 0) {
			/* an entry that cannot be taken, or is set aside */
			e_error(dmarc_event_failed(ingest->event, error)->event(),
				"Pending: %s", dmarc_log_text(error));
			continue;
		}
		T_BEGIN {
			ret = ingest_pending_entry(ingest, entry, &pcounts);
		} T_END;
		dmarc_pending_iter_done(iter, ret == 0);
		if (ret < 0 && ingest->store_failed) {
			/* the database again: the rest waits too */
			result = -1;
			break;
		}
		i_gettimeofday(&now);
		if (max_msecs > 0 &&
		    timeval_diff_msecs(&now, &start) >= (int)max_msecs)
			break;
	}
	if (dmarc_pending_iter_deinit(&iter, &error) < 0) {
		e_error(ingest->event, "Pending: %s", dmarc_log_text(error));
		result = -1;
	}
	if (pcounts.attachments > 0) {
		/* each entry has a line of its own already */
		e_debug(ingest->event, "Pending reports: %u stored, "
			"%u duplicate, %u not stored (%"PRIu64" records), "
			"%u entries", pcounts.reports_new,
			pcounts.reports_duplicate, pcounts.failed,
			pcounts.records, pcounts.attachments);
	}
	dmarc_ingest_counts_add(counts, &pcounts);
	return result;
}
