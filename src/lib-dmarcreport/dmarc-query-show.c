/* doveadm dmarc show's read side: one report of any kind with everything
   stored of it, handed to the door as a tree of named values. Records
   (TLS: policies) are read one at a time, their lists from statements
   walked beside them, so memory does not grow with the report. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "dmarc-store.h"
#include "dmarc-query.h"
#include "dmarc-query-private.h"

struct show_ctx {
	struct dmarc_store *store;
	const struct dmarc_query_show_output *out;
	void *context;
};

/* The top-level keys of each kind, in the order they are handed over:
   the door can announce them before the first report. */
static const char *const show_aggregate_fields[] = {
	"type", "id", "org", "report_id", "domain", "format", "version",
	"begin", "end", "email", "extra_contact_info", "generator", "errors",
	"adkim", "aspf", "p", "sp", "np", "pct", "fo", "testing",
	"discovery_method", "extensions", "archive", "message_id", "received",
	"record_count", "messages", "dmarc_pass", "records", NULL
};
static const char *const show_tls_fields[] = {
	"type", "id", "org", "report_id", "begin", "end", "contact_info",
	"policy_count", "successful_sessions", "failed_sessions", "archive",
	"message_id", "received", "policies", NULL
};
/* the columns of failure_reports, in the table's order */
static const char *const show_failure_columns[] = {
	"feedback_type", "user_agent", "version", "arrival_date",
	"source_ip", "original_envelope_id", "original_mail_from",
	"original_rcpt_to", "reporting_mta", "reported_domain", "incidents",
	"authentication_results", "auth_failure", "identity_alignment",
	"delivery_result", "dkim_domain", "dkim_identity", "dkim_selector",
	"dkim_canonicalized_header", "dkim_canonicalized_body", "spf_dns",
	"reported_uri", "other_fields", "orig_from", "orig_to",
	"orig_subject", "orig_date", "orig_message_id",
};

/* type, id, arrival_time, the columns, archive, message_id, received */
static const char *const *show_failure_fields(void)
{
	static const char *fields[3 + N_ELEMENTS(show_failure_columns) + 4];
	unsigned int i, n = 0;

	if (fields[0] != NULL)
		return fields;
	fields[n++] = "type";
	fields[n++] = "id";
	fields[n++] = "arrival_time";
	for (i = 0; i < N_ELEMENTS(show_failure_columns); i++)
		fields[n++] = show_failure_columns[i];
	fields[n++] = "archive";
	fields[n++] = "message_id";
	fields[n++] = "received";
	i_assert(n == N_ELEMENTS(fields) - 1);
	return fields;
}

const char *const *dmarc_query_show_fields(enum dmarc_query_kind kind)
{
	switch (kind) {
	case DMARC_QUERY_KIND_AGGREGATE:
		return show_aggregate_fields;
	case DMARC_QUERY_KIND_TLS:
		return show_tls_fields;
	case DMARC_QUERY_KIND_FAILURE:
		return show_failure_fields();
	}
	i_unreached();
}

static const char *col_text(sqlite3_stmt *stmt, int col)
{
	return (const char *)sqlite3_column_text(stmt, col);
}

/* A text column: NULL stays NULL (JSON null) */
static void show_str(struct show_ctx *ctx, const char *key,
		     sqlite3_stmt *stmt, int col)
{
	ctx->out->str(ctx->context, key, col_text(stmt, col));
}

static void show_num(struct show_ctx *ctx, const char *key,
		     sqlite3_stmt *stmt, int col)
{
	if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
		ctx->out->str(ctx->context, key, NULL);
	else
		ctx->out->num(ctx->context, key, sqlite3_column_int64(stmt, col));
}

/* Unix seconds, for the door to print as a date */
static void show_time(struct show_ctx *ctx, const char *key,
		      sqlite3_stmt *stmt, int col)
{
	if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
		ctx->out->str(ctx->context, key, NULL);
	else {
		ctx->out->time(ctx->context, key,
			       sqlite3_column_int64(stmt, col));
	}
}

/* A newline-joined column as a list of strings ([] when NULL or "") */
static void show_lines(struct show_ctx *ctx, const char *key,
		       sqlite3_stmt *stmt, int col)
{
	const char *value = col_text(stmt, col);
	const char *const *lines;

	ctx->out->list_begin(ctx->context, key);
	if (value != NULL && *value != '\0') {
		for (lines = t_strsplit(value, "\n"); *lines != NULL; lines++)
			ctx->out->str(ctx->context, NULL, *lines);
	}
	ctx->out->list_end(ctx->context);
}

static int show_prepare(struct dmarc_store *store, const char *sql,
			sqlite3_stmt **stmt_r, const char **error_r)
{
	struct query_sql q;

	dmarc_query_sql_init(&q, sql);
	return dmarc_query_prepare(store, &q, stmt_r, error_r);
}

/* Binds stmt's one parameter for its next run. */
static void show_rebind(sqlite3_stmt *stmt, int64_t id)
{
	(void)sqlite3_reset(stmt);
	(void)sqlite3_bind_int64(stmt, 1, id);
}

/* A report's object and its first keys: type, id (column 0), and with
   have_key org and report_id (columns 1 and 2). */
static void show_report_begin(struct show_ctx *ctx, const char *type,
			      sqlite3_stmt *stmt, bool have_key)
{
	ctx->out->object_begin(ctx->context, NULL);
	ctx->out->str(ctx->context, "type", type);
	show_num(ctx, "id", stmt, 0);
	if (have_key) {
		show_str(ctx, "org", stmt, 1);
		show_str(ctx, "report_id", stmt, 2);
	}
}

/* --- aggregate --- */

/* A statement over the rows of all records of a report, ordered by
   record id (column 0): walked beside the records, so that each list of
   a record is read in the same pass, with no query per record. */
struct show_cursor {
	sqlite3_stmt *stmt;
	int ret;                  /* 1: at a row, 0: done, -1: error */
};

/* Whether the cursor is at a row of record id (skipping rows of records
   before it). */
static bool show_cursor_at(struct show_cursor *c, int64_t id,
			   const char **error_r)
{
	while (c->ret > 0 && sqlite3_column_int64(c->stmt, 0) < id)
		c->ret = dmarc_query_step(c->stmt, error_r);
	return c->ret > 0 && sqlite3_column_int64(c->stmt, 0) == id;
}

struct show_aggregate {
	sqlite3_stmt *errors, *records;
	struct show_cursor reasons, auth;
};

struct show_auth {
	bool dkim;
	const char *domain, *selector, *scope, *result, *human_result;
};

static void show_auth_list(struct show_ctx *ctx, const struct show_auth *auth,
			   unsigned int count, bool dkim)
{
	unsigned int i;

	/* "dkim" and "spf" alone are the policy_evaluated results */
	ctx->out->list_begin(ctx->context,
			     dkim ? "dkim_results" : "spf_results");
	for (i = 0; i < count; i++) {
		if (auth[i].dkim != dkim)
			continue;
		ctx->out->object_begin(ctx->context, NULL);
		ctx->out->str(ctx->context, "domain", auth[i].domain);
		if (dkim)
			ctx->out->str(ctx->context, "selector", auth[i].selector);
		else
			ctx->out->str(ctx->context, "scope", auth[i].scope);
		ctx->out->str(ctx->context, "result", auth[i].result);
		ctx->out->str(ctx->context, "human_result",
			      auth[i].human_result);
		ctx->out->object_end(ctx->context);
	}
	ctx->out->list_end(ctx->context);
}

static const char *col_tstr(sqlite3_stmt *stmt, int col)
{
	return t_strdup(col_text(stmt, col));
}

/* The auth results of record id, DKIM and SPF ones mixed as stored: a
   record has at most dmarcreport_max_auth_results of them. */
static int show_auths(struct show_ctx *ctx, struct show_cursor *c,
		      int64_t id, const char **error_r)
{
	ARRAY(struct show_auth) auths;
	const struct show_auth *auth;
	struct show_auth *a;
	unsigned int count;

	t_array_init(&auths, 4);
	while (show_cursor_at(c, id, error_r)) {
		a = array_append_space(&auths);
		a->dkim = null_strcmp(col_text(c->stmt, 1), "dkim") == 0;
		a->domain = col_tstr(c->stmt, 2);
		a->selector = col_tstr(c->stmt, 3);
		a->scope = col_tstr(c->stmt, 4);
		a->result = col_tstr(c->stmt, 5);
		a->human_result = col_tstr(c->stmt, 6);
		c->ret = dmarc_query_step(c->stmt, error_r);
	}
	auth = array_get(&auths, &count);
	show_auth_list(ctx, auth, count, TRUE);
	show_auth_list(ctx, auth, count, FALSE);
	return c->ret < 0 ? -1 : 0;
}

static int show_record(struct show_ctx *ctx, struct show_aggregate *agg,
		       const char **error_r)
{
	sqlite3_stmt *rec = agg->records;
	struct show_cursor *reasons = &agg->reasons;
	int64_t id = sqlite3_column_int64(rec, 0);
	int ret;

	ctx->out->object_begin(ctx->context, NULL);
	show_str(ctx, "source_ip", rec, 1);
	ctx->out->boolean(ctx->context, "source_ip_valid",
			  sqlite3_column_int(rec, 2) != 0);
	show_num(ctx, "count", rec, 3);
	show_str(ctx, "disposition", rec, 4);
	show_str(ctx, "dkim", rec, 5);
	show_str(ctx, "spf", rec, 6);
	ctx->out->boolean(ctx->context, "dmarc_pass",
			  sqlite3_column_int(rec, 7) != 0);
	ctx->out->list_begin(ctx->context, "reasons");
	while (show_cursor_at(reasons, id, error_r)) {
		ctx->out->object_begin(ctx->context, NULL);
		show_str(ctx, "type", reasons->stmt, 1);
		show_str(ctx, "comment", reasons->stmt, 2);
		ctx->out->object_end(ctx->context);
		reasons->ret = dmarc_query_step(reasons->stmt, error_r);
	}
	ctx->out->list_end(ctx->context);
	show_str(ctx, "header_from", rec, 8);
	show_str(ctx, "envelope_from", rec, 9);
	show_str(ctx, "envelope_to", rec, 10);
	ret = show_auths(ctx, &agg->auth, id, error_r);
	show_str(ctx, "extensions", rec, 11);
	ctx->out->object_end(ctx->context);
	return reasons->ret < 0 ? -1 : ret;
}

static int show_aggregate_lists(struct show_ctx *ctx, int64_t id,
				struct show_aggregate *agg,
				const char **error_r)
{
	int ret;

	if (show_prepare(ctx->store, "SELECT error FROM report_errors"
			 " WHERE report_ref = ? ORDER BY seq",
			 &agg->errors, error_r) < 0 ||
	    show_prepare(ctx->store, "SELECT id, source_ip, source_ip_valid,"
			 " count, disposition, dkim, spf, dmarc_pass,"
			 " header_from, envelope_from, envelope_to, extensions"
			 " FROM records WHERE report_ref = ? ORDER BY id",
			 &agg->records, error_r) < 0 ||
	    show_prepare(ctx->store, "SELECT r.record_ref, r.type,"
			 " r.comment FROM records rec JOIN record_reasons r"
			 " ON r.record_ref = rec.id WHERE rec.report_ref = ?"
			 " ORDER BY rec.id, r.seq",
			 &agg->reasons.stmt, error_r) < 0 ||
	    show_prepare(ctx->store, "SELECT a.record_ref, a.type, a.domain,"
			 " a.selector, a.scope, a.result, a.human_result"
			 " FROM records rec JOIN auth_results a"
			 " ON a.record_ref = rec.id WHERE rec.report_ref = ?"
			 " ORDER BY rec.id, a.rowid",
			 &agg->auth.stmt, error_r) < 0)
		return -1;

	/* errors come before the policy: the order of the header */
	ctx->out->list_begin(ctx->context, "errors");
	show_rebind(agg->errors, id);
	while ((ret = dmarc_query_step(agg->errors, error_r)) > 0)
		show_str(ctx, NULL, agg->errors, 0);
	ctx->out->list_end(ctx->context);
	return ret;
}

static int show_aggregate_records(struct show_ctx *ctx, int64_t id,
				  struct show_aggregate *agg,
				  const char **error_r)
{
	int ret;

	ctx->out->list_begin(ctx->context, "records");
	show_rebind(agg->records, id);
	show_rebind(agg->reasons.stmt, id);
	agg->reasons.ret = dmarc_query_step(agg->reasons.stmt, error_r);
	show_rebind(agg->auth.stmt, id);
	agg->auth.ret = dmarc_query_step(agg->auth.stmt, error_r);
	while ((ret = dmarc_query_step(agg->records, error_r)) > 0) {
		T_BEGIN {
			ret = show_record(ctx, agg, error_r);
		} T_END_PASS_STR_IF(ret < 0, error_r);
		if (ret < 0)
			break;
	}
	ctx->out->list_end(ctx->context);
	return ret;
}

static int show_aggregate(struct show_ctx *ctx, sqlite3_stmt *stmt,
			  const char **error_r)
{
	struct show_aggregate agg;
	int64_t id = sqlite3_column_int64(stmt, 0);
	int ret;

	i_zero(&agg);
	show_report_begin(ctx, "aggregate", stmt, TRUE);
	show_str(ctx, "domain", stmt, 3);
	show_str(ctx, "format", stmt, 4);
	show_str(ctx, "version", stmt, 5);
	show_time(ctx, "begin", stmt, 10);
	show_time(ctx, "end", stmt, 11);
	show_str(ctx, "email", stmt, 6);
	show_str(ctx, "extra_contact_info", stmt, 7);
	show_str(ctx, "generator", stmt, 8);
	ret = show_aggregate_lists(ctx, id, &agg, error_r);
	show_str(ctx, "adkim", stmt, 12);
	show_str(ctx, "aspf", stmt, 13);
	show_str(ctx, "p", stmt, 14);
	show_str(ctx, "sp", stmt, 15);
	show_str(ctx, "np", stmt, 16);
	show_num(ctx, "pct", stmt, 17);
	show_str(ctx, "fo", stmt, 18);
	show_str(ctx, "testing", stmt, 19);
	show_str(ctx, "discovery_method", stmt, 20);
	show_str(ctx, "extensions", stmt, 9);
	show_str(ctx, "archive", stmt, 21);
	show_str(ctx, "message_id", stmt, 22);
	show_time(ctx, "received", stmt, 23);
	show_num(ctx, "record_count", stmt, 24);
	show_num(ctx, "messages", stmt, 25);
	show_num(ctx, "dmarc_pass", stmt, 26);
	if (ret == 0)
		ret = show_aggregate_records(ctx, id, &agg, error_r);
	else {
		ctx->out->list_begin(ctx->context, "records");
		ctx->out->list_end(ctx->context);
	}
	ctx->out->object_end(ctx->context);
	sqlite3_finalize(agg.errors);
	sqlite3_finalize(agg.records);
	sqlite3_finalize(agg.reasons.stmt);
	sqlite3_finalize(agg.auth.stmt);
	return ret;
}

/* --- tls --- */

static int show_tls_policy(struct show_ctx *ctx, sqlite3_stmt *pol,
			   sqlite3_stmt *fd, const char **error_r)
{
	int ret;

	ctx->out->object_begin(ctx->context, NULL);
	show_str(ctx, "policy_type", pol, 1);
	show_lines(ctx, "policy_strings", pol, 2);
	show_str(ctx, "policy_domain", pol, 3);
	show_lines(ctx, "mx_hosts", pol, 4);
	show_num(ctx, "successful_sessions", pol, 5);
	show_num(ctx, "failed_sessions", pol, 6);
	ctx->out->list_begin(ctx->context, "failure_details");
	show_rebind(fd, sqlite3_column_int64(pol, 0));
	while ((ret = dmarc_query_step(fd, error_r)) > 0) {
		ctx->out->object_begin(ctx->context, NULL);
		show_str(ctx, "result_type", fd, 0);
		show_str(ctx, "sending_mta_ip", fd, 1);
		show_str(ctx, "receiving_mx_hostname", fd, 2);
		show_str(ctx, "receiving_mx_helo", fd, 3);
		show_str(ctx, "receiving_ip", fd, 4);
		show_num(ctx, "failed_session_count", fd, 5);
		show_str(ctx, "additional_information", fd, 6);
		show_str(ctx, "failure_reason_code", fd, 7);
		ctx->out->object_end(ctx->context);
	}
	ctx->out->list_end(ctx->context);
	ctx->out->object_end(ctx->context);
	return ret;
}

static int show_tls_policies(struct show_ctx *ctx, int64_t id,
			     const char **error_r)
{
	sqlite3_stmt *pol = NULL, *fd = NULL;
	int ret = -1;

	if (show_prepare(ctx->store, "SELECT id, policy_type,"
			 " policy_strings, policy_domain, mx_hosts,"
			 " success_count, failure_count FROM tls_policies"
			 " WHERE report_ref = ? ORDER BY id", &pol,
			 error_r) < 0 ||
	    show_prepare(ctx->store, "SELECT result_type, sending_mta_ip,"
			 " receiving_mx_hostname, receiving_mx_helo,"
			 " receiving_ip, failed_session_count,"
			 " additional_information, failure_reason_code"
			 " FROM tls_failures WHERE policy_ref = ?"
			 " ORDER BY rowid", &fd, error_r) < 0) {
		sqlite3_finalize(pol);
		return -1;
	}
	ctx->out->list_begin(ctx->context, "policies");
	show_rebind(pol, id);
	while ((ret = dmarc_query_step(pol, error_r)) > 0) {
		T_BEGIN {
			ret = show_tls_policy(ctx, pol, fd, error_r);
		} T_END_PASS_STR_IF(ret < 0, error_r);
		if (ret < 0)
			break;
	}
	ctx->out->list_end(ctx->context);
	sqlite3_finalize(pol);
	sqlite3_finalize(fd);
	return ret < 0 ? -1 : 0;
}

static int show_tls(struct show_ctx *ctx, sqlite3_stmt *stmt,
		    const char **error_r)
{
	int64_t id = sqlite3_column_int64(stmt, 0);
	int ret;

	show_report_begin(ctx, "tls", stmt, TRUE);
	show_time(ctx, "begin", stmt, 3);
	show_time(ctx, "end", stmt, 4);
	show_str(ctx, "contact_info", stmt, 5);
	show_num(ctx, "policy_count", stmt, 6);
	show_num(ctx, "successful_sessions", stmt, 7);
	show_num(ctx, "failed_sessions", stmt, 8);
	show_str(ctx, "archive", stmt, 9);
	show_str(ctx, "message_id", stmt, 10);
	show_time(ctx, "received", stmt, 11);
	ret = show_tls_policies(ctx, id, error_r);
	ctx->out->object_end(ctx->context);
	return ret;
}

/* --- failure --- */

static int show_failure(struct show_ctx *ctx, sqlite3_stmt *stmt,
			const char **error_r ATTR_UNUSED)
{
	unsigned int i, col = 2;

	show_report_begin(ctx, "failure", stmt, FALSE);
	show_time(ctx, "arrival_time", stmt, 1);
	for (i = 0; i < N_ELEMENTS(show_failure_columns); i++)
		show_str(ctx, show_failure_columns[i], stmt, col++);
	show_str(ctx, "archive", stmt, col++);
	show_str(ctx, "message_id", stmt, col++);
	show_time(ctx, "received", stmt, col);
	ctx->out->object_end(ctx->context);
	return 0;
}

/* --- the reports --- */

static const char *show_failure_sql(void)
{
	string_t *sql = t_str_new(512);
	unsigned int i;

	str_append(sql, "SELECT id, arrival_time");
	for (i = 0; i < N_ELEMENTS(show_failure_columns); i++)
		str_printfa(sql, ", %s", show_failure_columns[i]);
	str_append(sql, ", archive_path, message_id, received"
		   " FROM failure_reports WHERE ");
	return str_c(sql);
}

int dmarc_query_show(struct dmarc_store *store,
		     const struct dmarc_query_show_key *key,
		     const struct dmarc_query_show_output *output,
		     void *context, const char **error_r)
{
	struct show_ctx ctx = {
		.store = store, .out = output, .context = context
	};
	int (*show_one)(struct show_ctx *ctx, sqlite3_stmt *stmt,
			const char **error_r);
	struct query_sql q;
	sqlite3_stmt *stmt;
	unsigned int found = 0;
	int ret;

	switch (key->kind) {
	case DMARC_QUERY_KIND_AGGREGATE:
		show_one = show_aggregate;
		dmarc_query_sql_init(&q,
			"SELECT id, org_name, report_id, policy_domain, format,"
			" version, email, extra_contact_info, generator,"
			" extensions, date_begin, date_end, policy_adkim,"
			" policy_aspf, policy_p, policy_sp, policy_np,"
			" policy_pct, policy_fo, policy_testing,"
			" policy_discovery_method, archive_path, message_id,"
			" received, record_count, message_count, pass_count"
			" FROM reports WHERE ");
		break;
	case DMARC_QUERY_KIND_TLS:
		if (dmarc_store_get_version(store) < 2)
			return 0;
		show_one = show_tls;
		dmarc_query_sql_init(&q,
			"SELECT id, org_name, report_id, date_begin, date_end,"
			" contact_info, policy_count, success_count,"
			" failure_count, archive_path, message_id, received"
			" FROM tls_reports WHERE ");
		break;
	case DMARC_QUERY_KIND_FAILURE:
		if (dmarc_store_get_version(store) < 2)
			return 0;
		/* failure reports have no report_id: by id only */
		if (key->report_id != NULL)
			return 0;
		show_one = show_failure;
		dmarc_query_sql_init(&q, show_failure_sql());
		break;
	default:
		i_unreached();
	}
	if (key->report_id == NULL) {
		str_append(q.sql, "id = ?");
		dmarc_query_bind_int(&q, key->id);
	} else {
		/* the key's comparison: org_name case-insensitively */
		str_append(q.sql, "report_id = ? AND org_name = ?"
			   " COLLATE NOCASE");
		dmarc_query_bind_text(&q, key->report_id);
		dmarc_query_bind_text(&q, key->org_name);
	}
	str_append(q.sql, " ORDER BY id");
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	while ((ret = dmarc_query_step(stmt, error_r)) > 0) {
		found++;
		T_BEGIN {
			ret = show_one(&ctx, stmt, error_r);
		} T_END_PASS_STR_IF(ret < 0, error_r);
		if (ret < 0)
			break;
	}
	sqlite3_finalize(stmt);
	return ret < 0 ? -1 : found > 0 ? 1 : 0;
}
