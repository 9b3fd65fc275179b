/* The read side of SMTP TLS and failure reports (see dmarc-query-kinds.h).
   Every filter value is bound. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "dmarc-store.h"
#include "dmarc-query-kinds.h"
#include "dmarc-query-private.h"

/* How the filter fields map to a kind's tables: each a condition with
   one "?" per bound value (the same value each time). */
struct kind_filter {
	const char *kind;
	const char *id;
	const char *domain;
	unsigned int domain_binds;
	const char *org;
	unsigned int org_binds;
	const char *time;         /* since/until compare it */
	const char *source;       /* NULL: the kind has no source */
};

/* tls_reports r and tls_policies p */
static const struct kind_filter tls_filter = {
	.kind = "tls",
	.id = "r.id = ?",
	.domain = "p.policy_domain = lower(?)", .domain_binds = 1,
	.org = "r.org_name = ? COLLATE NOCASE", .org_binds = 1,
	.time = "r.date_begin",
};

#define FAILURE_TIME "coalesce(f.arrival_time, f.received)"

/* failure_reports f */
static const struct kind_filter failure_filter = {
	.kind = "failure",
	.id = "f.id = ?",
	/* Reported-Domain may list several, one per line */
	.domain = "f.reported_domain = lower(?) OR"
		" instr(char(10) || f.reported_domain || char(10),"
		" char(10) || lower(?) || char(10)) > 0",
	.domain_binds = 2,
	.org = "f.reporting_mta = ? COLLATE NOCASE OR"
		" f.user_agent = ? COLLATE NOCASE",
	.org_binds = 2,
	.time = FAILURE_TIME,
	.source = "f.source_ip_key BETWEEN ? AND ?",
};

/* Whether reports of kf's kind may match f. */
static bool kinds_filter_allows(struct dmarc_store *store,
				const struct dmarc_query_filter *f,
				const struct kind_filter *kf)
{
	if (dmarc_store_get_version(store) < 2)
		return FALSE;
	if (f->type != NULL && strcmp(f->type, kf->kind) != 0)
		return FALSE;
	/* a filter these reports cannot match selects aggregate ones; the
	   door refuses it when the kind is named (doveadm-dmarc-filter.c) */
	if (f->disposition != NULL || f->dkim != NULL || f->spf != NULL ||
	    f->result >= 0 || f->header_from != NULL)
		return FALSE;
	if (f->have_source && kf->source == NULL)
		return FALSE;
	/* ids are per kind: without a type, report is an aggregate id */
	if (f->have_report && f->type == NULL &&
	    (f->negated & DMARC_QUERY_FIELD_BIT(DMARC_QUERY_FIELD_REPORT)) == 0)
		return FALSE;
	return TRUE;
}

static void
kind_cond_text(struct query_sql *q, const struct dmarc_query_filter *f,
	       enum dmarc_query_field field, const char *cond,
	       unsigned int binds, const char *value)
{
	dmarc_query_cond(q, f, field, cond);
	while (binds-- > 0)
		dmarc_query_bind_text(q, value);
}

/* " AND ..." for f on kf's tables */
static void
kind_add_filter(struct query_sql *q, const struct dmarc_query_filter *f,
		const struct kind_filter *kf)
{
	if (f->have_report && f->type != NULL) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_REPORT, kf->id);
		dmarc_query_bind_int(q, f->report);
	}
	if (f->domain != NULL) {
		kind_cond_text(q, f, DMARC_QUERY_FIELD_DOMAIN, kf->domain,
			       kf->domain_binds, f->domain);
	}
	if (f->org != NULL) {
		kind_cond_text(q, f, DMARC_QUERY_FIELD_ORG, kf->org,
			       kf->org_binds, f->org);
	}
	if (f->have_since) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_SINCE,
				 t_strconcat(kf->time, " >= ?", NULL));
		dmarc_query_bind_int(q, f->since);
	}
	if (f->have_until) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_UNTIL,
				 t_strconcat(kf->time, " <= ?", NULL));
		dmarc_query_bind_int(q, f->until);
	}
	if (f->have_source && kf->source != NULL) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_SOURCE, kf->source);
		dmarc_query_bind_source(q, f);
	}
}

/* --- list --- */

struct list_context {
	dmarc_query_kind_callback_t *callback;
	void *context;
};

static int list_tls_row(sqlite3_stmt *stmt, void *context)
{
	struct list_context *ctx = context;
	struct dmarc_query_kind_row row;

	i_zero(&row);
	row.type = "tls";
	row.org_name = dmarc_query_col_str(stmt, 0);
	row.report_id = dmarc_query_col_str(stmt, 1);
	row.domain = dmarc_query_col_str(stmt, 2);
	row.date_begin = sqlite3_column_int64(stmt, 3);
	row.date_end = sqlite3_column_int64(stmt, 4);
	row.records = dmarc_query_col_u64(stmt, 5);
	row.messages = dmarc_query_col_total(stmt, 6);
	row.pass = dmarc_query_col_total(stmt, 7);
	row.policy = dmarc_query_col_str(stmt, 8);
	row.archive_path = dmarc_query_col_str(stmt, 9);
	row.id = sqlite3_column_int64(stmt, 10);
	return ctx->callback(&row, ctx->context);
}

static int list_failure_row(sqlite3_stmt *stmt, void *context)
{
	struct list_context *ctx = context;
	struct dmarc_query_kind_row row;
	const char *incidents;
	uint64_t n;

	i_zero(&row);
	row.type = "failure";
	row.org_name = dmarc_query_col_str(stmt, 0);
	row.report_id = dmarc_query_col_str(stmt, 1);
	row.domain = dmarc_query_col_str(stmt, 2);
	row.date_begin = row.date_end = sqlite3_column_int64(stmt, 3);
	row.records = 1;
	incidents = dmarc_query_col_str(stmt, 4);
	row.messages = incidents != NULL && str_to_uint64(incidents, &n) == 0 &&
		n > 0 ? n : 1;
	row.policy = dmarc_query_col_str(stmt, 5);
	row.archive_path = dmarc_query_col_str(stmt, 6);
	row.id = sqlite3_column_int64(stmt, 7);
	return ctx->callback(&row, ctx->context);
}

int dmarc_query_list_kinds(struct dmarc_store *store,
			   const struct dmarc_query_filter *filter,
			   dmarc_query_kind_callback_t *callback, void *context,
			   const char **error_r)
{
	struct list_context ctx = { .callback = callback, .context = context };
	struct query_sql q;

	if (kinds_filter_allows(store, filter, &tls_filter)) {
		/* the report's figures over its policies matching the
		   filter */
		dmarc_query_sql_init(&q,
			"SELECT r.org_name, r.report_id,"
			" group_concat(DISTINCT p.policy_domain),"
			" r.date_begin, r.date_end, count(p.id),"
			" total(p.success_count + p.failure_count),"
			" total(p.success_count),"
			" group_concat(DISTINCT p.policy_type), r.archive_path,"
			" r.id FROM tls_reports r JOIN tls_policies p"
			" ON p.report_ref = r.id WHERE 1");
		kind_add_filter(&q, filter, &tls_filter);
		str_append(q.sql, " GROUP BY r.id ORDER BY r.date_begin, r.id");
		if (dmarc_query_rows(store, &q, list_tls_row, &ctx,
				     error_r) < 0)
			return -1;
	}
	if (kinds_filter_allows(store, filter, &failure_filter)) {
		dmarc_query_sql_init(&q,
			"SELECT coalesce(f.reporting_mta, f.user_agent, ''),"
			" f.orig_message_id, f.reported_domain, "FAILURE_TIME","
			" f.incidents, f.auth_failure, f.archive_path, f.id"
			" FROM failure_reports f WHERE 1");
		kind_add_filter(&q, filter, &failure_filter);
		str_append(q.sql, " ORDER BY "FAILURE_TIME", f.id");
		if (dmarc_query_rows(store, &q, list_failure_row, &ctx,
				     error_r) < 0)
			return -1;
	}
	return 0;
}

/* --- tls --- */

struct tls_context {
	dmarc_query_tls_callback_t *callback;
	dmarc_query_tls_group_callback_t *group_callback;
	void *context;
};

static int tls_row(sqlite3_stmt *stmt, void *context)
{
	struct tls_context *ctx = context;
	struct dmarc_query_tls_row row;
	double success, failure;

	i_zero(&row);
	row.org_name = dmarc_query_col_str(stmt, 0);
	row.report_id = dmarc_query_col_str(stmt, 1);
	row.date_begin = sqlite3_column_int64(stmt, 2);
	row.date_end = sqlite3_column_int64(stmt, 3);
	row.policy_type = dmarc_query_col_str(stmt, 4);
	row.policy_domain = dmarc_query_col_str(stmt, 5);
	row.mx_hosts = dmarc_query_col_str(stmt, 6);
	success = sqlite3_column_double(stmt, 7);
	failure = sqlite3_column_double(stmt, 8);
	row.sessions = dmarc_query_col_total(stmt, 9);
	row.failures = dmarc_query_col_u64(stmt, 8);
	row.success_rate = dmarc_query_rate(success, success + failure);
	row.failure_details = dmarc_query_col_str(stmt, 10);
	return ctx->callback(&row, ctx->context);
}

int dmarc_query_tls(struct dmarc_store *store,
		    const struct dmarc_query_filter *filter,
		    dmarc_query_tls_callback_t *callback, void *context,
		    const char **error_r)
{
	struct tls_context ctx = { .callback = callback, .context = context };
	struct query_sql q;

	if (!kinds_filter_allows(store, filter, &tls_filter))
		return 0;
	dmarc_query_sql_init(&q,
		"SELECT r.org_name, r.report_id, r.date_begin, r.date_end,"
		" p.policy_type, p.policy_domain, p.mx_hosts,"
		" p.success_count, p.failure_count,"
		" total(p.success_count) + total(p.failure_count),"
		" (SELECT group_concat(coalesce(fd.result_type, '') || ':' ||"
		"  fd.failed_session_count, ' ') FROM tls_failures fd"
		"  WHERE fd.policy_ref = p.id)"
		" FROM tls_reports r JOIN tls_policies p ON p.report_ref = r.id"
		" WHERE 1");
	kind_add_filter(&q, filter, &tls_filter);
	str_append(q.sql, " GROUP BY p.id ORDER BY r.date_begin, r.id, p.id");
	return dmarc_query_rows(store, &q, tls_row, &ctx, error_r);
}

static const char *const tls_group_names[] = {
	[DMARC_QUERY_TLS_GROUP_POLICY_DOMAIN] = "policy-domain",
	[DMARC_QUERY_TLS_GROUP_MX] = "mx",
	[DMARC_QUERY_TLS_GROUP_RESULT_TYPE] = "result-type",
	[DMARC_QUERY_TLS_GROUP_SENDING_IP] = "sending-ip",
	[DMARC_QUERY_TLS_GROUP_DAY] = "day",
};

bool dmarc_query_tls_group_parse(const char *name,
				 enum dmarc_query_tls_group *group_r)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(tls_group_names); i++) {
		if (strcasecmp(name, tls_group_names[i]) == 0) {
			*group_r = i;
			return TRUE;
		}
	}
	return FALSE;
}

static int tls_group_row(sqlite3_stmt *stmt, void *context)
{
	struct tls_context *ctx = context;
	struct dmarc_query_tls_group_row row;
	double sessions, failures;

	i_zero(&row);
	row.key = dmarc_query_col_str(stmt, 0);
	if (row.key == NULL)
		row.key = "";
	sessions = sqlite3_column_double(stmt, 1);
	failures = sqlite3_column_double(stmt, 2);
	row.sessions = dmarc_query_col_total(stmt, 1);
	row.failures = dmarc_query_col_total(stmt, 2);
	row.success_rate = dmarc_query_rate(sessions - failures, sessions);
	return ctx->group_callback(&row, ctx->context);
}

int dmarc_query_tls_groups(struct dmarc_store *store,
			   const struct dmarc_query_filter *filter,
			   enum dmarc_query_tls_group group,
			   dmarc_query_tls_group_callback_t *callback,
			   void *context, const char **error_r)
{
	struct tls_context ctx = {
		.group_callback = callback, .context = context
	};
	struct query_sql q;
	const char *key;

	if (!kinds_filter_allows(store, filter, &tls_filter))
		return 0;
	switch (group) {
	case DMARC_QUERY_TLS_GROUP_RESULT_TYPE:
	case DMARC_QUERY_TLS_GROUP_SENDING_IP:
		key = group == DMARC_QUERY_TLS_GROUP_RESULT_TYPE ?
			"fd.result_type" : "fd.sending_mta_ip";
		dmarc_query_sql_init(&q, t_strdup_printf(
			"SELECT %s, total(fd.failed_session_count),"
			" total(fd.failed_session_count)"
			" FROM tls_reports r JOIN tls_policies p"
			" ON p.report_ref = r.id JOIN tls_failures fd"
			" ON fd.policy_ref = p.id WHERE 1", key));
		break;
	default:
		key = group == DMARC_QUERY_TLS_GROUP_POLICY_DOMAIN ?
			"p.policy_domain" : group == DMARC_QUERY_TLS_GROUP_MX ?
			"p.mx_hosts" :
			"strftime('%Y-%m-%d', r.date_begin, 'unixepoch')";
		dmarc_query_sql_init(&q, t_strdup_printf(
			"SELECT %s, total(p.success_count) +"
			" total(p.failure_count), total(p.failure_count)"
			" FROM tls_reports r JOIN tls_policies p"
			" ON p.report_ref = r.id WHERE 1", key));
		break;
	}
	kind_add_filter(&q, filter, &tls_filter);
	str_printfa(q.sql, " GROUP BY 1 ORDER BY 2 DESC, 1");
	return dmarc_query_rows(store, &q, tls_group_row, &ctx, error_r);
}

/* --- failures --- */

struct failure_query_context {
	dmarc_query_failure_callback_t *callback;
	void *context;
};

static int failure_row(sqlite3_stmt *stmt, void *context)
{
	struct failure_query_context *ctx = context;
	struct dmarc_query_failure_row row;

	i_zero(&row);
	row.arrival = sqlite3_column_int64(stmt, 0);
	row.reported_domain = dmarc_query_col_str(stmt, 1);
	row.source_ip = dmarc_query_col_str(stmt, 2);
	row.auth_failure = dmarc_query_col_str(stmt, 3);
	row.delivery_result = dmarc_query_col_str(stmt, 4);
	row.original_mail_from = dmarc_query_col_str(stmt, 5);
	row.orig_from = dmarc_query_col_str(stmt, 6);
	row.orig_subject = dmarc_query_col_str(stmt, 7);
	row.orig_message_id = dmarc_query_col_str(stmt, 8);
	row.user_agent = dmarc_query_col_str(stmt, 9);
	row.archive_path = dmarc_query_col_str(stmt, 10);
	return ctx->callback(&row, ctx->context);
}

int dmarc_query_failures(struct dmarc_store *store,
			 const struct dmarc_query_filter *filter,
			 dmarc_query_failure_callback_t *callback,
			 void *context, const char **error_r)
{
	struct failure_query_context ctx = { .callback = callback, .context = context };
	struct query_sql q;

	if (!kinds_filter_allows(store, filter, &failure_filter))
		return 0;
	dmarc_query_sql_init(&q,
		"SELECT "FAILURE_TIME", f.reported_domain, f.source_ip,"
		" f.auth_failure, f.delivery_result, f.original_mail_from,"
		" f.orig_from, f.orig_subject, f.orig_message_id,"
		" f.user_agent, f.archive_path FROM failure_reports f WHERE 1");
	kind_add_filter(&q, filter, &failure_filter);
	str_append(q.sql, " ORDER BY "FAILURE_TIME", f.id");
	return dmarc_query_rows(store, &q, failure_row, &ctx, error_r);
}

/* --- summary --- */

int dmarc_query_tls_domain_rate(struct dmarc_store *store,
				const struct dmarc_query_filter *filter,
				const char *domain, uint64_t *sessions_r,
				double *success_rate_r, const char **error_r)
{
	struct dmarc_query_filter f = *filter;
	struct query_sql q;
	sqlite3_stmt *stmt;
	double sessions = 0, success = 0;
	int ret;

	*sessions_r = 0;
	*success_rate_r = 0;
	if (!kinds_filter_allows(store, filter, &tls_filter))
		return 0;
	f.domain = domain;
	f.negated &= ~DMARC_QUERY_FIELD_BIT(DMARC_QUERY_FIELD_DOMAIN);
	dmarc_query_sql_init(&q,
		"SELECT total(p.success_count) + total(p.failure_count),"
		" total(p.success_count) FROM tls_reports r"
		" JOIN tls_policies p ON p.report_ref = r.id WHERE 1");
	kind_add_filter(&q, &f, &tls_filter);
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	if ((ret = dmarc_query_step(stmt, error_r)) > 0) {
		sessions = sqlite3_column_double(stmt, 0);
		success = sqlite3_column_double(stmt, 1);
		*sessions_r = dmarc_query_col_total(stmt, 0);
	}
	sqlite3_finalize(stmt);
	if (ret < 0)
		return -1;
	*success_rate_r = dmarc_query_rate(success, sessions);
	return 0;
}
