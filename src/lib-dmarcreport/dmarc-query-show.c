/* doveadm dmarc show's read side: one report of any kind with everything
   stored of it, handed to the door as a tree of named values. Records
   (TLS: policies) are read one at a time, each with its own small lists,
   so memory does not grow with the report. */

#include "lib.h"
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
static const char *const show_failure_fields[] = {
	"type", "id", "arrival_time",
	"feedback_type", "user_agent", "version", "arrival_date",
	"source_ip", "original_envelope_id", "original_mail_from",
	"original_rcpt_to", "reporting_mta", "reported_domain", "incidents",
	"authentication_results", "auth_failure", "identity_alignment",
	"delivery_result", "dkim_domain", "dkim_identity", "dkim_selector",
	"dkim_canonicalized_header", "dkim_canonicalized_body", "spf_dns",
	"reported_uri", "other_fields", "orig_from", "orig_to",
	"orig_subject", "orig_date", "orig_message_id",
	"archive", "message_id", "received", NULL
};

const char *const *dmarc_query_show_fields(enum dmarc_query_kind kind)
{
	switch (kind) {
	case DMARC_QUERY_KIND_AGGREGATE:
		return show_aggregate_fields;
	case DMARC_QUERY_KIND_TLS:
		return show_tls_fields;
	case DMARC_QUERY_KIND_FAILURE:
		return show_failure_fields;
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

/* Rebinds stmt's first parameter (and the second, when text is not NULL)
   for its next run. */
static void show_rebind(sqlite3_stmt *stmt, int64_t id, const char *text)
{
	(void)sqlite3_reset(stmt);
	(void)sqlite3_bind_int64(stmt, 1, id);
	if (text != NULL)
		(void)sqlite3_bind_text(stmt, 2, text, -1, SQLITE_STATIC);
}

/* --- aggregate --- */

struct show_aggregate {
	sqlite3_stmt *errors, *records, *reasons, *auth;
};

static int show_auth_list(struct show_ctx *ctx, sqlite3_stmt *stmt,
			  int64_t record_id, const char *type,
			  const char **error_r)
{
	bool dkim = strcmp(type, "dkim") == 0;
	int ret;

	/* "dkim" and "spf" alone are the policy_evaluated results */
	ctx->out->list_begin(ctx->context,
			     dkim ? "dkim_results" : "spf_results");
	show_rebind(stmt, record_id, type);
	while ((ret = dmarc_query_step(stmt, error_r)) > 0) {
		ctx->out->object_begin(ctx->context, NULL);
		show_str(ctx, "domain", stmt, 0);
		if (dkim)
			show_str(ctx, "selector", stmt, 1);
		else
			show_str(ctx, "scope", stmt, 2);
		show_str(ctx, "result", stmt, 3);
		show_str(ctx, "human_result", stmt, 4);
		ctx->out->object_end(ctx->context);
	}
	ctx->out->list_end(ctx->context);
	return ret;
}

static int show_record(struct show_ctx *ctx, struct show_aggregate *agg,
		       const char **error_r)
{
	sqlite3_stmt *rec = agg->records;
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
	show_rebind(agg->reasons, id, NULL);
	while ((ret = dmarc_query_step(agg->reasons, error_r)) > 0) {
		ctx->out->object_begin(ctx->context, NULL);
		show_str(ctx, "type", agg->reasons, 0);
		show_str(ctx, "comment", agg->reasons, 1);
		ctx->out->object_end(ctx->context);
	}
	ctx->out->list_end(ctx->context);
	show_str(ctx, "header_from", rec, 8);
	show_str(ctx, "envelope_from", rec, 9);
	show_str(ctx, "envelope_to", rec, 10);
	if (ret == 0)
		ret = show_auth_list(ctx, agg->auth, id, "dkim", error_r);
	if (ret == 0)
		ret = show_auth_list(ctx, agg->auth, id, "spf", error_r);
	show_str(ctx, "extensions", rec, 11);
	ctx->out->object_end(ctx->context);
	return ret;
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
	    show_prepare(ctx->store, "SELECT type, comment FROM"
			 " record_reasons WHERE record_ref = ? ORDER BY seq",
			 &agg->reasons, error_r) < 0 ||
	    show_prepare(ctx->store, "SELECT domain, selector, scope,"
			 " result, human_result FROM auth_results"
			 " WHERE record_ref = ? AND type = ? ORDER BY rowid",
			 &agg->auth, error_r) < 0)
		return -1;

	/* errors come before the policy: the order of the header */
	ctx->out->list_begin(ctx->context, "errors");
	show_rebind(agg->errors, id, NULL);
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
	show_rebind(agg->records, id, NULL);
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
	ctx->out->object_begin(ctx->context, NULL);
	ctx->out->str(ctx->context, "type", "aggregate");
	ctx->out->num(ctx->context, "id", id);
	show_str(ctx, "org", stmt, 1);
	show_str(ctx, "report_id", stmt, 2);
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
	sqlite3_finalize(agg.reasons);
	sqlite3_finalize(agg.auth);
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
	show_rebind(fd, sqlite3_column_int64(pol, 0), NULL);
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
	show_rebind(pol, id, NULL);
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

	ctx->out->object_begin(ctx->context, NULL);
	ctx->out->str(ctx->context, "type", "tls");
	ctx->out->num(ctx->context, "id", id);
	show_str(ctx, "org", stmt, 1);
	show_str(ctx, "report_id", stmt, 2);
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

	ctx->out->object_begin(ctx->context, NULL);
	ctx->out->str(ctx->context, "type", "failure");
	show_num(ctx, "id", stmt, 0);
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
