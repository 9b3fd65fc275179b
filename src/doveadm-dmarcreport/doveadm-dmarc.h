#ifndef DOVEADM_DMARC_H
#define DOVEADM_DMARC_H

/* The doveadm door: doveadm dmarc
   list|show|query|summary|report|import|expire|tls|failures.
   Shared by the command files: the common context, settings and database
   opening per user, and output helpers. */

#include "doveadm-mail.h"
#include "doveadm-print.h"
#include "dmarc-settings.h"
#include "dmarc-store.h"
#include "dmarc-query.h"

struct module;

/* Exported for doveadm's module loader. */
extern const char *doveadm_dmarcreport_plugin_version;
void doveadm_dmarcreport_plugin_init(struct module *module);
void doveadm_dmarcreport_plugin_deinit(void);

/* The command table: one per file. */
extern struct doveadm_cmd_ver2 doveadm_dmarc_cmd_list;
extern struct doveadm_cmd_ver2 doveadm_dmarc_cmd_show;
extern struct doveadm_cmd_ver2 doveadm_dmarc_cmd_query;
extern struct doveadm_cmd_ver2 doveadm_dmarc_cmd_summary;
extern struct doveadm_cmd_ver2 doveadm_dmarc_cmd_import;
extern struct doveadm_cmd_ver2 doveadm_dmarc_cmd_expire;
extern struct doveadm_cmd_ver2 doveadm_dmarc_cmd_report;
extern struct doveadm_cmd_ver2 doveadm_dmarc_cmd_tls;
extern struct doveadm_cmd_ver2 doveadm_dmarc_cmd_failures;

/* A command's init, with its positional words (on any Dovecot version). */
typedef void doveadm_dmarc_init_func_t(struct doveadm_mail_cmd_context *ctx,
				       const char *const args[]);

/* A read command's work on the user's open database. */
typedef int doveadm_dmarc_read_func_t(struct doveadm_mail_cmd_context *ctx,
				      struct dmarc_store *store,
				      const struct dmarc_settings *set,
				      const char **error_r);

/* Every dmarc command's context starts with this. */
struct doveadm_dmarc_cmd_context {
	struct doveadm_mail_cmd_context ctx;
	struct dmarc_query_filter filter;
	/* the one kind of report the command shows ("aggregate", "tls",
	   "failure"; NULL: list's type filter says) */
	const char *kind;
	/* --resolve: the database is opened for writing (the name cache) */
	bool resolve;
	/* set instead of ctx.v.init, whose signature is version dependent */
	doveadm_dmarc_init_func_t *init;
	/* a read command's work on the user's database (see
	   doveadm_dmarc_read_cmd_alloc()) */
	doveadm_dmarc_read_func_t *read;
};

#define doveadm_dmarc_cmd_alloc(type, getopt_args) \
	(type *)doveadm_dmarc_cmd_alloc_size(sizeof(type), getopt_args)
/* Allocates the context, sets the defaults all commands share (no
   namespaces, options read with doveadm_cmd_param_*()), and getopt_args
   for the command's own short options. */
struct doveadm_dmarc_cmd_context *
doveadm_dmarc_cmd_alloc_size(size_t size, const char *getopt_args);

/* Whether doveadm prints JSON: -f json on the command line, or the HTTP
   API. */
bool doveadm_dmarc_output_is_json(struct doveadm_mail_cmd_context *ctx);

#define doveadm_dmarc_read_cmd_alloc(type, getopt_args, init, read, formatter) \
	(type *)doveadm_dmarc_read_cmd_alloc_size(sizeof(type), getopt_args, \
						  init, read, formatter)
/* A read command (list, show, query, summary, tls, failures): its run
   reads each user's database with read (doveadm_dmarc_read()), its
   output goes through formatter unless -f says another. */
struct doveadm_dmarc_cmd_context *
doveadm_dmarc_read_cmd_alloc_size(size_t size, const char *getopt_args,
				  doveadm_dmarc_init_func_t *init,
				  doveadm_dmarc_read_func_t *read,
				  const char *formatter);

/* A column of a command's output. */
struct doveadm_dmarc_column {
	const char *key, *title;
	enum doveadm_print_header_flags flags;
};
/* The headers of a table of columns, in order. */
void doveadm_dmarc_print_headers(const struct doveadm_dmarc_column *columns,
				 unsigned int count);

/* Prints the usage of the running command after the error; exits 64. */
void doveadm_dmarc_usage_error(struct doveadm_mail_cmd_context *ctx,
			       const char *fmt, ...)
	ATTR_FORMAT(2, 3) ATTR_NORETURN;

/* Parses the positional filter words into dctx->filter; a bad word, or
   one that does not apply to the command's kind of report, is a usage
   error. */
void doveadm_dmarc_parse_filter(struct doveadm_dmarc_cmd_context *dctx,
				const char *const *args);

/* The user's plugin {} settings. -1 (logged, exit code set) on error. */
int doveadm_dmarc_user_settings(struct doveadm_mail_cmd_context *ctx,
				struct mail_user *user,
				struct dmarc_settings *set_r);

/* Opens the user's database: 1 opened, 0 the user has none (an empty
   result, not an error), -1 error (logged, exit code set). */
int doveadm_dmarc_store_open(struct doveadm_mail_cmd_context *ctx,
			     struct mail_user *user,
			     enum dmarc_store_open_flags flags,
			     struct dmarc_settings *set_r,
			     struct dmarc_store **store_r);

/* The read commands' one sequence: open the user's database read-only,
   run read_func on it, close it. A user without a database reads as
   empty. Returns 0, or -1 with the error logged and the exit code set. */
int doveadm_dmarc_read(struct doveadm_mail_cmd_context *ctx,
		       struct mail_user *user,
		       doveadm_dmarc_read_func_t *read_func);

/* Set ctx's exit code as doveadm does: an EX_TEMPFAIL is never
   overwritten, otherwise the first error's code stays. */
void doveadm_dmarc_set_exit_code(struct doveadm_mail_cmd_context *ctx,
				 int exit_code);

/* A query failed: log it and set the exit code. Returns -1. */
int doveadm_dmarc_query_failed(struct doveadm_mail_cmd_context *ctx,
			       struct mail_user *user, const char *error);

/* --resolve (doveadm-dmarc-resolve.c): names of source addresses through
   Dovecot's dns-client, cached in the user's database (open for
   writing). doveadm_dmarc_resolve() returns the verified name or "". */
struct doveadm_dmarc_resolver *
doveadm_dmarc_resolver_init(struct dmarc_store *store,
			    const struct dmarc_settings *set);
void doveadm_dmarc_resolver_deinit(struct doveadm_dmarc_resolver **resolver);
const char *doveadm_dmarc_resolve(struct doveadm_dmarc_resolver *resolver,
				  const char *ip);

/* ISO 8601 UTC: 2024-01-31T00:00:00Z */
const char *doveadm_dmarc_time(int64_t t);
/* Print helpers for numeric columns (DOVEADM_PRINT_HEADER_FLAG_NUMBER). */
void doveadm_dmarc_print_num(uint64_t num);
void doveadm_dmarc_print_rate(double percent);
/* A text cell, escaped with dmarc_query_escape(): whatever the database
   holds, one value is one cell. NULL prints as "". Every text cell goes
   through this. */
void doveadm_dmarc_print_str(const char *str);

/* An archive file's cell: path (relative, as stored; NULL prints "")
   below the user's archive_dir when it has one. */
void doveadm_dmarc_print_archive(const char *archive_dir, const char *path);

#define DOVEADM_DMARC_NUMBER_FLAGS \
	(DOVEADM_PRINT_HEADER_FLAG_NUMBER | \
	 DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY)

#endif
