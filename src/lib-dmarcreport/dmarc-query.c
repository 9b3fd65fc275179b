/* The read side of the report database for doveadm dmarc (list, query,
   summary, and report's aggregates; expire is the store's, see
   dmarc-store-expire.c). The doors
   hand over a filter struct; it becomes a WHERE clause whose values are
   all bound. */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "str.h"
#include "strnum.h"
#include "net.h"
#include "dmarc-store.h"
#include "dmarc-query.h"
#include "dmarc-query-kinds.h"
#include "dmarc-query-private.h"

#include <stdio.h>
#include <sqlite3.h>
#include <time.h>

void dmarc_query_sql_init(struct query_sql *q, const char *start)
{
	q->sql = t_str_new(512);
	str_append(q->sql, start);
	t_array_init(&q->binds, 8);
}

void dmarc_query_bind_int(struct query_sql *q, int64_t num)
{
	struct query_bind *b = array_append_space(&q->binds);

	b->type = QUERY_BIND_INT;
	b->num = num;
}

void dmarc_query_bind_text(struct query_sql *q, const char *text)
{
	struct query_bind *b = array_append_space(&q->binds);

	b->type = QUERY_BIND_TEXT;
	b->text = text;
}

void dmarc_query_bind_blob16(struct query_sql *q, const unsigned char *blob)
{
	struct query_bind *b = array_append_space(&q->binds);

	b->type = QUERY_BIND_BLOB16;
	b->blob = blob;
}

/* One condition: " AND (cond)", or when its field is negated
   " AND NOT coalesce((cond), 0)": a NULL (absent value, invalid source)
   matches no condition, so it does match its negation. */
void dmarc_query_cond(struct query_sql *q, const struct dmarc_query_filter *f,
		      enum dmarc_query_field field, const char *cond)
{
	if ((f->negated & DMARC_QUERY_FIELD_BIT(field)) != 0)
		str_printfa(q->sql, " AND NOT coalesce((%s), 0)", cond);
	else
		str_printfa(q->sql, " AND (%s)", cond);
}

static void
query_add_filter(struct query_sql *q, const struct dmarc_query_filter *f)
{
	if (f->have_report) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_REPORT, "r.id = ?");
		dmarc_query_bind_int(q, f->report);
	}
	if (f->domain != NULL) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_DOMAIN,
				 "r.policy_domain = lower(?)");
		dmarc_query_bind_text(q, f->domain);
	}
	if (f->org != NULL) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_ORG,
				 "r.org_name = ? COLLATE NOCASE");
		dmarc_query_bind_text(q, f->org);
	}
	if (f->have_since) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_SINCE,
				 "r.date_begin >= ?");
		dmarc_query_bind_int(q, f->since);
	}
	if (f->have_until) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_UNTIL,
				 "r.date_begin <= ?");
		dmarc_query_bind_int(q, f->until);
	}
	if (f->have_source) {
		/* an invalid source_ip has no key: never in a network */
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_SOURCE,
				 "rec.source_ip_key BETWEEN ? AND ?");
		dmarc_query_bind_source(q, f);
	}
	if (f->disposition != NULL) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_DISPOSITION,
				 "rec.disposition = lower(?)");
		dmarc_query_bind_text(q, f->disposition);
	}
	if (f->dkim != NULL) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_DKIM,
				 "rec.dkim = lower(?)");
		dmarc_query_bind_text(q, f->dkim);
	}
	if (f->spf != NULL) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_SPF,
				 "rec.spf = lower(?)");
		dmarc_query_bind_text(q, f->spf);
	}
	if (f->result >= 0) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_RESULT,
				 "rec.dmarc_pass = ?");
		dmarc_query_bind_int(q, f->result > 0 ? 1 : 0);
	}
	if (f->header_from != NULL) {
		dmarc_query_cond(q, f, DMARC_QUERY_FIELD_HEADER_FROM,
				 "lower(rec.header_from) = lower(?)");
		dmarc_query_bind_text(q, f->header_from);
	}
}

static const char *const query_sort_names[] = {
	[DMARC_QUERY_SORT_BEGIN] = "begin",
	[DMARC_QUERY_SORT_MESSAGES] = "messages",
	[DMARC_QUERY_SORT_SOURCE] = "source",
};

bool dmarc_query_sort_parse(const char *name, enum dmarc_query_sort *sort_r)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(query_sort_names); i++) {
		if (strcasecmp(name, query_sort_names[i]) == 0) {
			*sort_r = i;
			return TRUE;
		}
	}
	return FALSE;
}

static void query_add_limit(struct query_sql *q,
			    const struct dmarc_query_filter *f)
{
	if (f->limit > 0) {
		str_append(q->sql, " LIMIT ?");
		dmarc_query_bind_int(q, f->limit);
	}
}

static const char *query_db_error(sqlite3 *db, const char *what)
{
	return t_strdup_printf("%s: %s", what, sqlite3_errmsg(db));
}

int dmarc_query_prepare(struct dmarc_store *store, const struct query_sql *q,
	      sqlite3_stmt **stmt_r, const char **error_r)
{
	sqlite3 *db = dmarc_store_get_db(store);
	const struct query_bind *b;
	int i = 0, ret = SQLITE_OK;

	if (sqlite3_prepare_v2(db, str_c(q->sql), -1, stmt_r, NULL) != SQLITE_OK) {
		*error_r = query_db_error(db, "Preparing a query failed");
		return -1;
	}
	array_foreach(&q->binds, b) {
		i++;
		switch (b->type) {
		case QUERY_BIND_INT:
			ret = sqlite3_bind_int64(*stmt_r, i, b->num);
			break;
		case QUERY_BIND_TEXT:
			ret = sqlite3_bind_text(*stmt_r, i, b->text, -1,
						SQLITE_TRANSIENT);
			break;
		case QUERY_BIND_BLOB16:
			ret = sqlite3_bind_blob(*stmt_r, i, b->blob, 16,
						SQLITE_TRANSIENT);
			break;
		}
		if (ret != SQLITE_OK) {
			*error_r = query_db_error(db, "Binding a value failed");
			sqlite3_finalize(*stmt_r);
			*stmt_r = NULL;
			return -1;
		}
	}
	return 0;
}

/* Steps stmt to the next row: 1 row, 0 done, -1 error. */
int dmarc_query_step(sqlite3_stmt *stmt, const char **error_r)
{
	switch (sqlite3_step(stmt)) {
	case SQLITE_ROW:
		return 1;
	case SQLITE_DONE:
		return 0;
	default:
		*error_r = query_db_error(sqlite3_db_handle(stmt),
					  "Reading the database failed");
		return -1;
	}
}

int dmarc_query_rows(struct dmarc_store *store, const struct query_sql *q,
		     dmarc_query_row_func_t *row_func, void *context,
		     const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret;

	if (dmarc_query_prepare(store, q, &stmt, error_r) < 0)
		return -1;
	while ((ret = dmarc_query_step(stmt, error_r)) > 0) {
		T_BEGIN {
			ret = row_func(stmt, context);
		} T_END;
		if (ret < 0) {
			*error_r = dmarc_query_callback_error;
			break;
		}
	}
	sqlite3_finalize(stmt);
	return ret < 0 ? -1 : 0;
}

const char *dmarc_query_col_str(sqlite3_stmt *stmt, int col)
{
	const unsigned char *s = sqlite3_column_text(stmt, col);

	return s == NULL ? NULL : t_strdup((const char *)s);
}

uint64_t dmarc_query_col_u64(sqlite3_stmt *stmt, int col)
{
	sqlite3_int64 n = sqlite3_column_int64(stmt, col);

	return n < 0 ? 0 : (uint64_t)n;
}

/* Sums of counts are SQLite's total(), not sum(): a record's count may be
   anything up to INT64_MAX, and sum() fails the whole query with "integer
   overflow" once they add up past it. total() is a double: exact while the
   sum stays below 2^53, close beyond. As a count it saturates at
   INT64_MAX, the largest a single record can hold (and what every JSON
   reader takes as a 64-bit integer). */
static uint64_t total_to_count(double total)
{
	if (!(total > 0.0))
		return 0;
	if (total >= (double)INT64_MAX)
		return INT64_MAX;
	return (uint64_t)total;
}

uint64_t dmarc_query_col_total(sqlite3_stmt *stmt, int col)
{
	return total_to_count(sqlite3_column_double(stmt, col));
}

/* Rates come from the unsaturated totals: still right past INT64_MAX. */
double dmarc_query_rate(double part, double total)
{
	return total <= 0.0 ? 0.0 : 100.0 * part / total;
}

const char *const dmarc_query_callback_error = "callback failed";

/* --- output --- */

static size_t escape_len(const unsigned char *p)
{
	if (p[0] < 0x20 || p[0] == 0x7f)
		return 1;
	/* U+0080..U+009F: C1 controls, CSI (U+009B) among them */
	if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
		return 2;
	return 0;
}

const char *dmarc_query_escape(const char *value)
{
	const unsigned char *p;
	string_t *str;
	size_t i, len;

	if (value == NULL)
		return NULL;
	for (p = (const unsigned char *)value; *p != '\0'; p++) {
		if (escape_len(p) > 0)
			break;
	}
	if (*p == '\0')
		return value;

	str = t_str_new(strlen(value) + 16);
	str_append_data(str, value, p - (const unsigned char *)value);
	while (*p != '\0') {
		len = escape_len(p);
		if (len == 0) {
			str_append_c(str, *p++);
			continue;
		}
		for (i = 0; i < len; i++, p++) {
			switch (*p) {
			case '\t': str_append(str, "\\t"); break;
			case '\n': str_append(str, "\\n"); break;
			case '\r': str_append(str, "\\r"); break;
			default: str_printfa(str, "\\x%02x", *p); break;
			}
		}
	}
	return str_c(str);
}

void dmarc_query_filter_init(struct dmarc_query_filter *filter_r)
{
	i_zero(filter_r);
	filter_r->result = -1;
}

void dmarc_query_source_range(const struct ip_addr *ip, unsigned int bits,
			      unsigned char min_r[16], unsigned char max_r[16])
{
	unsigned int i;

	/* The key the store gives the address: IPv4 as ::ffff:a.b.c.d, so
	   a.b.c.d/n is ::ffff:a.b.c.d/(96+n) */
	if (!dmarc_store_ip_key(net_ip2addr(ip), min_r))
		i_unreached();
	if (IPADDR_IS_V4(ip))
		bits += 96;
	for (i = 0; i < 16; i++) {
		unsigned int keep = bits >= (i + 1) * 8 ? 8 :
			bits <= i * 8 ? 0 : bits - i * 8;
		unsigned char mask = keep == 0 ? 0 :
			(unsigned char)(0xff << (8 - keep));

		min_r[i] &= mask;
		max_r[i] = min_r[i] | (unsigned char)~mask;
	}
}

void dmarc_query_bind_source(struct query_sql *q,
			     const struct dmarc_query_filter *f)
{
	unsigned char *min = t_malloc0(16), *max = t_malloc0(16);

	dmarc_query_source_range(&f->source_ip, f->source_bits, min, max);
	dmarc_query_bind_blob16(q, min);
	dmarc_query_bind_blob16(q, max);
}

/* --- list --- */

int dmarc_query_list(struct dmarc_store *store,
		     const struct dmarc_query_filter *filter,
		     dmarc_query_report_callback_t *callback, void *context,
		     const char **error_r)
{
	struct query_sql q;
	sqlite3_stmt *stmt;
	int ret = 0;

	if (filter->type != NULL && strcmp(filter->type, "aggregate") != 0)
		return 0;
	dmarc_query_sql_init(&q,
		"SELECT r.id, r.org_name, r.report_id, r.policy_domain,"
		" r.date_begin, r.date_end, r.policy_p, r.policy_sp,"
		" r.policy_np, r.policy_testing, r.policy_pct,"
		" r.archive_path, r.received, count(rec.id),"
		" total(rec.count),"
		" total(CASE WHEN rec.dmarc_pass THEN rec.count END)"
		" FROM reports r LEFT JOIN records rec ON rec.report_ref = r.id"
		" WHERE 1");
	query_add_filter(&q, filter);
	str_append(q.sql, " GROUP BY r.id ORDER BY ");
	switch (filter->sort) {
	case DMARC_QUERY_SORT_MESSAGES:
		str_append(q.sql, "total(rec.count) DESC, ");
		break;
	case DMARC_QUERY_SORT_SOURCE:
		*error_r = "a report has many sources: sort list by begin "
			"or messages";
		return -1;
	case DMARC_QUERY_SORT_BEGIN:
		break;
	}
	str_append(q.sql, "r.date_begin, r.id");
	query_add_limit(&q, filter);
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	while (ret == 0 && (ret = dmarc_query_step(stmt, error_r)) > 0) T_BEGIN {
		struct dmarc_query_report_row row;

		i_zero(&row);
		row.id = sqlite3_column_int64(stmt, 0);
		row.org_name = dmarc_query_col_str(stmt, 1);
		row.report_id = dmarc_query_col_str(stmt, 2);
		row.policy_domain = dmarc_query_col_str(stmt, 3);
		row.date_begin = sqlite3_column_int64(stmt, 4);
		row.date_end = sqlite3_column_int64(stmt, 5);
		row.policy_p = dmarc_query_col_str(stmt, 6);
		row.policy_sp = dmarc_query_col_str(stmt, 7);
		row.policy_np = dmarc_query_col_str(stmt, 8);
		row.policy_testing = dmarc_query_col_str(stmt, 9);
		row.policy_pct = sqlite3_column_type(stmt, 10) == SQLITE_NULL ?
			-1 : sqlite3_column_int(stmt, 10);
		row.archive_path = dmarc_query_col_str(stmt, 11);
		row.received = sqlite3_column_int64(stmt, 12);
		row.records = dmarc_query_col_u64(stmt, 13);
		row.messages = dmarc_query_col_total(stmt, 14);
		row.pass = dmarc_query_col_total(stmt, 15);
		ret = callback(&row, context) < 0 ? -1 : 0;
		if (ret < 0)
			*error_r = dmarc_query_callback_error;
	} T_END;
	sqlite3_finalize(stmt);
	return ret < 0 ? -1 : 0;
}

/* --- query: records --- */

int dmarc_query_records(struct dmarc_store *store,
			const struct dmarc_query_filter *filter,
			dmarc_query_record_callback_t *callback, void *context,
			const char **error_r)
{
	struct query_sql q;
	sqlite3_stmt *stmt;
	int ret = 0;

	dmarc_query_sql_init(&q,
		"SELECT r.policy_domain, r.org_name, r.report_id, r.date_begin,"
		" r.id, r.date_end,"
		" rec.source_ip, rec.count, rec.disposition, rec.dkim, rec.spf,"
		" rec.dmarc_pass, rec.header_from, rec.envelope_from,"
		" (SELECT group_concat(a, ' ') FROM"
		"  (SELECT ar.type || '=' || coalesce(ar.result, '') ||"
		"   CASE WHEN ar.domain IS NULL THEN ''"
		"   ELSE '(' || ar.domain || ')' END AS a"
		"   FROM auth_results ar WHERE ar.record_ref = rec.id"
		"   ORDER BY ar.rowid))"
		" FROM reports r JOIN records rec ON rec.report_ref = r.id"
		" WHERE 1");
	query_add_filter(&q, filter);
	str_append(q.sql, " ORDER BY ");
	switch (filter->sort) {
	case DMARC_QUERY_SORT_MESSAGES:
		str_append(q.sql, "rec.count DESC, ");
		break;
	case DMARC_QUERY_SORT_SOURCE:
		str_append(q.sql, "rec.source_ip_key IS NULL, "
			   "rec.source_ip_key, rec.source_ip, ");
		break;
	case DMARC_QUERY_SORT_BEGIN:
		break;
	}
	str_append(q.sql, "r.date_begin, r.id, rec.id");
	query_add_limit(&q, filter);
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	while (ret == 0 && (ret = dmarc_query_step(stmt, error_r)) > 0) T_BEGIN {
		struct dmarc_query_record_row row;

		i_zero(&row);
		row.policy_domain = dmarc_query_col_str(stmt, 0);
		row.org_name = dmarc_query_col_str(stmt, 1);
		row.report_id = dmarc_query_col_str(stmt, 2);
		row.date_begin = sqlite3_column_int64(stmt, 3);
		row.report = sqlite3_column_int64(stmt, 4);
		row.date_end = sqlite3_column_int64(stmt, 5);
		row.source_ip = dmarc_query_col_str(stmt, 6);
		row.count = dmarc_query_col_u64(stmt, 7);
		row.disposition = dmarc_query_col_str(stmt, 8);
		row.dkim = dmarc_query_col_str(stmt, 9);
		row.spf = dmarc_query_col_str(stmt, 10);
		row.dmarc_pass = sqlite3_column_int(stmt, 11) != 0;
		row.header_from = dmarc_query_col_str(stmt, 12);
		row.envelope_from = dmarc_query_col_str(stmt, 13);
		row.auth = dmarc_query_col_str(stmt, 14);
		ret = callback(&row, context) < 0 ? -1 : 0;
		if (ret < 0)
			*error_r = dmarc_query_callback_error;
	} T_END;
	sqlite3_finalize(stmt);
	return ret < 0 ? -1 : 0;
}

/* --- query --group-by --- */

static const struct {
	const char *name;
	enum dmarc_query_group group;
	/* an SQL expression over r and rec: fixed text, never user input */
	const char *expr;
} query_groups[] = {
	{ "source", DMARC_QUERY_GROUP_SOURCE, "rec.source_ip" },
	{ "domain", DMARC_QUERY_GROUP_DOMAIN, "r.policy_domain" },
	{ "org", DMARC_QUERY_GROUP_ORG, "r.org_name" },
	{ "header_from", DMARC_QUERY_GROUP_HEADER_FROM,
	  "lower(rec.header_from)" },
	{ "day", DMARC_QUERY_GROUP_DAY,
	  "strftime('%Y-%m-%d', r.date_begin, 'unixepoch')" },
	{ "disposition", DMARC_QUERY_GROUP_DISPOSITION, "rec.disposition" },
};

bool dmarc_query_group_parse(const char *name,
			     enum dmarc_query_group *group_r)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(query_groups); i++) {
		if (strcasecmp(query_groups[i].name, name) == 0) {
			*group_r = query_groups[i].group;
			return TRUE;
		}
	}
	return FALSE;
}

static unsigned int query_group_idx(enum dmarc_query_group group)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(query_groups); i++) {
		if (query_groups[i].group == group)
			return i;
	}
	i_unreached();
}

const char *dmarc_query_group_name(enum dmarc_query_group group)
{
	return query_groups[query_group_idx(group)].name;
}

static const char *query_group_expr(enum dmarc_query_group group)
{
	return query_groups[query_group_idx(group)].expr;
}

int dmarc_query_groups(struct dmarc_store *store,
		       const struct dmarc_query_filter *filter,
		       enum dmarc_query_group group,
		       dmarc_query_group_callback_t *callback, void *context,
		       const char **error_r)
{
	struct query_sql q;
	sqlite3_stmt *stmt;
	int ret = 0;

	dmarc_query_sql_init(&q, t_strdup_printf(
		"SELECT coalesce(%s, '') AS k, total(rec.count),"
		" total(CASE WHEN rec.dmarc_pass THEN rec.count END)"
		" FROM reports r JOIN records rec ON rec.report_ref = r.id"
		" WHERE 1", query_group_expr(group)));
	query_add_filter(&q, filter);
	str_append(q.sql, " GROUP BY k ORDER BY 2 DESC, k");
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	while (ret == 0 && (ret = dmarc_query_step(stmt, error_r)) > 0) T_BEGIN {
		struct dmarc_query_group_row row;
		double messages = sqlite3_column_double(stmt, 1);
		double pass = sqlite3_column_double(stmt, 2);

		i_zero(&row);
		row.key = dmarc_query_col_str(stmt, 0);
		row.messages = total_to_count(messages);
		row.pass = total_to_count(pass);
		row.fail = total_to_count(messages - pass);
		row.pass_rate = dmarc_query_rate(pass, messages);
		ret = callback(&row, context) < 0 ? -1 : 0;
		if (ret < 0)
			*error_r = dmarc_query_callback_error;
	} T_END;
	sqlite3_finalize(stmt);
	return ret < 0 ? -1 : 0;
}

/* --- summary --- */

ARRAY_DEFINE_TYPE(query_source_count, struct dmarc_query_source_count);

static int
query_top_failing(struct dmarc_store *store,
		  const struct dmarc_query_filter *filter, const char *domain,
		  ARRAY_TYPE(query_source_count) *top,
		  const char **error_r)
{
	struct dmarc_query_filter dfilter = *filter;
	struct query_sql q;
	sqlite3_stmt *stmt;
	int ret;

	dfilter.domain = domain;
	dmarc_query_sql_init(&q,
		"SELECT rec.source_ip, total(rec.count) AS n"
		" FROM reports r JOIN records rec ON rec.report_ref = r.id"
		" WHERE rec.dmarc_pass = 0");
	query_add_filter(&q, &dfilter);
	str_printfa(q.sql, " GROUP BY rec.source_ip HAVING n > 0"
		    " ORDER BY n DESC, rec.source_ip LIMIT %u",
		    DMARC_QUERY_SUMMARY_TOP_SOURCES);
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	while ((ret = dmarc_query_step(stmt, error_r)) > 0) {
		struct dmarc_query_source_count *src = array_append_space(top);

		src->source_ip = dmarc_query_col_str(stmt, 0);
		src->messages = dmarc_query_col_total(stmt, 1);
	}
	sqlite3_finalize(stmt);
	return ret;
}

static const char *
query_verdict(const struct dmarc_query_summary_row *row)
{
	string_t *str;
	unsigned int i;

	if (row->messages < DMARC_QUERY_SUMMARY_MIN_MESSAGES) {
		return t_strdup_printf("too little data (%"PRIu64" msgs)",
				       row->messages);
	}
	if (row->pass_rate >= DMARC_QUERY_SUMMARY_READY_PASS_RATE)
		return "ready for p=reject";
	str = t_str_new(128);
	str_append(str, "fix first: ");
	for (i = 0; i < row->top_failing_count; i++) {
		if (i > 0)
			str_append(str, ", ");
		str_printfa(str, "%s (%"PRIu64" msgs failing)",
			    row->top_failing[i].source_ip,
			    row->top_failing[i].messages);
	}
	if (row->failing_sources > row->top_failing_count) {
		str_printfa(str, ", and %"PRIu64" more sources",
			    row->failing_sources - row->top_failing_count);
	}
	return str_c(str);
}

int dmarc_query_summary(struct dmarc_store *store,
			const struct dmarc_query_filter *filter,
			dmarc_query_summary_callback_t *callback, void *context,
			const char **error_r)
{
	struct query_sql q;
	sqlite3_stmt *stmt;
	int ret = 0;

	dmarc_query_sql_init(&q,
		"SELECT r.policy_domain, count(DISTINCT r.id), total(rec.count),"
		" total(CASE WHEN rec.dmarc_pass THEN rec.count END),"
		" total(CASE WHEN rec.dkim = 'pass' THEN rec.count END),"
		" total(CASE WHEN rec.spf = 'pass' THEN rec.count END),"
		" count(DISTINCT CASE WHEN NOT rec.dmarc_pass AND rec.count > 0"
		"  THEN rec.source_ip END)"
		" FROM reports r JOIN records rec ON rec.report_ref = r.id"
		" WHERE 1");
	query_add_filter(&q, filter);
	str_append(q.sql, " GROUP BY r.policy_domain ORDER BY r.policy_domain");
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	/* no T_BEGIN per row: an error of query_top_failing() must outlive
	   it, and there is one row per domain only */
	while (ret == 0 && (ret = dmarc_query_step(stmt, error_r)) > 0) {
		struct dmarc_query_summary_row row;
		ARRAY_TYPE(query_source_count) top;
		double messages = sqlite3_column_double(stmt, 2);

		i_zero(&row);
		row.policy_domain = dmarc_query_col_str(stmt, 0);
		row.reports = dmarc_query_col_u64(stmt, 1);
		row.messages = total_to_count(messages);
		row.pass = dmarc_query_col_total(stmt, 3);
		row.dkim_aligned = dmarc_query_col_total(stmt, 4);
		row.spf_aligned = dmarc_query_col_total(stmt, 5);
		row.failing_sources = dmarc_query_col_u64(stmt, 6);
		row.pass_rate = dmarc_query_rate(sqlite3_column_double(stmt, 3), messages);
		row.dkim_rate = dmarc_query_rate(sqlite3_column_double(stmt, 4), messages);
		row.spf_rate = dmarc_query_rate(sqlite3_column_double(stmt, 5), messages);

		t_array_init(&top, DMARC_QUERY_SUMMARY_TOP_SOURCES);
		ret = query_top_failing(store, filter, row.policy_domain,
					&top, error_r);
		if (ret == 0) {
			row.top_failing = array_get(&top,
						    &row.top_failing_count);
			row.verdict = query_verdict(&row);
			ret = callback(&row, context) < 0 ? -1 : 0;
			if (ret < 0)
				*error_r = dmarc_query_callback_error;
		}
	}
	sqlite3_finalize(stmt);
	return ret < 0 ? -1 : 0;
}

/* --- report --- */

int64_t dmarc_query_bucket_start(enum dmarc_query_bucket_size size,
				 int64_t t)
{
	/* 1970-01-01 was a Thursday: Mondays are 4 days after a multiple
	   of 7 days */
	const int64_t day = 24*60*60, monday = 4*day;
	time_t tt = (time_t)t;
	struct tm tm;

	switch (size) {
	case DMARC_QUERY_BUCKET_DAY:
		return t - (t % day + day) % day;
	case DMARC_QUERY_BUCKET_WEEK:
		return t - ((t - monday) % (7*day) + 7*day) % (7*day);
	case DMARC_QUERY_BUCKET_MONTH:
	case DMARC_QUERY_BUCKET_YEAR:
		break;
	}
	if (gmtime_r(&tt, &tm) == NULL)
		return dmarc_query_bucket_start(DMARC_QUERY_BUCKET_DAY, t);
	tm.tm_sec = tm.tm_min = tm.tm_hour = 0;
	tm.tm_mday = 1;
	if (size == DMARC_QUERY_BUCKET_YEAR)
		tm.tm_mon = 0;
	return timegm(&tm);
}

/* start + step, at most INT64_MAX: a report may be dated up to it */
static int64_t bucket_add(int64_t start, int64_t step)
{
	return start > INT64_MAX - step ? INT64_MAX : start + step;
}

int64_t dmarc_query_bucket_next(enum dmarc_query_bucket_size size,
				int64_t start)
{
	time_t tt = (time_t)start, next;
	struct tm tm;

	switch (size) {
	case DMARC_QUERY_BUCKET_DAY:
		return bucket_add(start, 24*60*60);
	case DMARC_QUERY_BUCKET_WEEK:
		return bucket_add(start, 7*24*60*60);
	case DMARC_QUERY_BUCKET_MONTH:
	case DMARC_QUERY_BUCKET_YEAR:
		break;
	}
	/* past the years struct tm holds: a year's worth of seconds */
	if (gmtime_r(&tt, &tm) == NULL)
		return bucket_add(start, 366*24*60*60);
	if (size == DMARC_QUERY_BUCKET_YEAR)
		tm.tm_year++;
	else
		tm.tm_mon++;       /* timegm() carries December into January */
	next = timegm(&tm);
	return next == (time_t)-1 || next <= start ?
		bucket_add(start, 366*24*60*60) : next;
}

/* The span of the filtered reports' date_begin: 1 found, 0 none. The
   report fields select; record fields only narrow it, so a span read
   from the reports alone may be a little wider, never narrower. */
static int
report_data_span(struct dmarc_store *store,
		 const struct dmarc_query_filter *filter,
		 int64_t *min_r, int64_t *max_r, const char **error_r)
{
	struct dmarc_query_filter rfilter;
	struct query_sql q;
	sqlite3_stmt *stmt;
	int ret;

	dmarc_query_filter_init(&rfilter);
	rfilter.domain = filter->domain;
	rfilter.org = filter->org;
	rfilter.have_since = filter->have_since;
	rfilter.since = filter->since;
	rfilter.have_until = filter->have_until;
	rfilter.until = filter->until;
	dmarc_query_sql_init(&q, "SELECT min(r.date_begin), max(r.date_begin)"
		       " FROM reports r WHERE 1");
	query_add_filter(&q, &rfilter);
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	ret = dmarc_query_step(stmt, error_r);
	if (ret > 0) {
		if (sqlite3_column_type(stmt, 0) == SQLITE_NULL)
			ret = 0;
		else {
			*min_r = sqlite3_column_int64(stmt, 0);
			*max_r = sqlite3_column_int64(stmt, 1);
		}
	}
	sqlite3_finalize(stmt);
	return ret;
}

/* Picks the smallest bucket that draws begin..end in at most
   DMARC_QUERY_REPORT_MAX_BUCKETS; when even years do not, the charts
   show the last ones (the first ones when end is past what struct tm
   holds). Returns the bucket starts, one more than buckets (the end of
   the last). */
static const int64_t *
report_set_period(pool_t pool, struct dmarc_query_report *report,
		  int64_t begin, int64_t end)
{
	enum dmarc_query_bucket_size size;
	unsigned int count = 0, i;
	int64_t t, start = 0, *starts;

	if (end < begin)
		end = begin;
	for (size = DMARC_QUERY_BUCKET_DAY; ; size++) {
		start = dmarc_query_bucket_start(size, begin);
		count = 0;
		for (t = start; t <= end && count <= DMARC_QUERY_REPORT_MAX_BUCKETS;
		     t = dmarc_query_bucket_next(size, t))
			count++;
		if (count <= DMARC_QUERY_REPORT_MAX_BUCKETS ||
		    size == DMARC_QUERY_BUCKET_YEAR)
			break;
	}
	if (count > DMARC_QUERY_REPORT_MAX_BUCKETS) {
		/* years: keep the last ones */
		time_t tt = (time_t)dmarc_query_bucket_start(size, end);
		struct tm tm;

		if (gmtime_r(&tt, &tm) != NULL) {
			tm.tm_year -= DMARC_QUERY_REPORT_MAX_BUCKETS - 1;
			start = timegm(&tm);
		}
		report->charts_cut = TRUE;
		count = DMARC_QUERY_REPORT_MAX_BUCKETS;
	}
	report->bucket_size = size;
	report->bucket_count = count;
	report->begin = start;
	starts = p_new(pool, int64_t, count + 1);
	for (i = 0, t = start; i <= count; i++, t = dmarc_query_bucket_next(size, t))
		starts[i] = t;
	report->end = starts[count] - 1;
	return starts;
}

/* One pass over the filtered records in index order (policy domain,
   date_begin, report): no GROUP BY, so SQLite sorts nothing, and one
   domain is summed at a time. Sources and reporters of the current domain
   are summed in hash tables, cleared when the next domain begins; at most
   DMARC_QUERY_REPORT_MAX_DOMAINS finished domains are kept. */
#define REPORT_SQL_COLUMNS \
	"SELECT r.policy_domain, r.id, r.date_begin, r.org_name, r.policy_p," \
	" r.policy_sp, r.policy_np, r.policy_adkim, r.policy_aspf," \
	" r.policy_fo, r.policy_testing, r.policy_pct, rec.source_ip," \
	" rec.count, rec.dmarc_pass, rec.dkim = 'pass', rec.spf = 'pass'," \
	" CASE rec.disposition WHEN 'none' THEN 1 WHEN 'quarantine' THEN 2" \
	" WHEN 'reject' THEN 3 ELSE 0 END" \
	" FROM reports r JOIN records rec ON rec.report_ref = r.id WHERE 1"
enum report_col {
	RCOL_DOMAIN, RCOL_ID, RCOL_BEGIN, RCOL_ORG, RCOL_P, RCOL_SP, RCOL_NP,
	RCOL_ADKIM, RCOL_ASPF, RCOL_FO, RCOL_TESTING, RCOL_PCT, RCOL_SOURCE,
	RCOL_COUNT, RCOL_PASS, RCOL_DKIM, RCOL_SPF, RCOL_DISPOSITION,
};

/* Sums are doubles like SQLite's total(), made counts at the end with
   total_to_count(): they saturate as the other queries' sums do. */
struct report_sum {
	double messages, pass, fail, dkim, spf;
};

struct report_source_agg {
	const char *key;
	struct report_sum sum;
	uint64_t reports;
};

HASH_TABLE_DEFINE_TYPE(source_agg, const char *, struct report_source_agg *);

struct report_bucket_sum {
	struct report_sum sum;
	double disposition[4];    /* other, none, quarantine, reject */
};

struct report_domain_agg {
	/* its own: a domain that does not make the cut frees it */
	pool_t pool;
	struct dmarc_query_report_domain domain;
	/* domain's source tables, writable for their names */
	struct dmarc_query_report_source *top_sources, *failing_sources;
};

struct report_private {
	struct dmarc_query_report report;
	pool_t pool;
	ARRAY(pool_t) domain_pools;
};

struct report_ctx {
	struct report_private *priv;
	const int64_t *bucket_starts;

	/* the domain being summed */
	const char *domain;
	struct report_sum total;
	uint64_t reports;
	int64_t report_id;
	struct report_bucket_sum *buckets;
	unsigned int bucket_idx;
	ARRAY(struct dmarc_query_report_policy) policies;
	struct dmarc_query_report_policy *policy;
	pool_t scratch;
	HASH_TABLE_TYPE(source_agg) sources;
	HASH_TABLE_TYPE(source_agg) orgs;
	struct report_source_agg *org;

	ARRAY(struct report_domain_agg *) kept;
};

static bool str_eq_null(const char *s1, const char *s2)
{
	return null_strcmp(s1, s2) == 0;
}

static const char *col_text(sqlite3_stmt *stmt, int col)
{
	return (const char *)sqlite3_column_text(stmt, col);
}

static void report_domain_begin(struct report_ctx *ctx, const char *domain)
{
	p_clear(ctx->scratch);
	hash_table_clear(ctx->sources, TRUE);
	hash_table_clear(ctx->orgs, TRUE);
	ctx->domain = p_strdup(ctx->scratch, domain);
	i_zero(&ctx->total);
	ctx->reports = 0;
	ctx->report_id = -1;
	ctx->org = NULL;
	ctx->policy = NULL;
	ctx->bucket_idx = 0;
	ctx->buckets = p_new(ctx->scratch, struct report_bucket_sum,
			     ctx->priv->report.bucket_count + 1);
	p_array_init(&ctx->policies, ctx->scratch, 4);
}

static struct report_source_agg *
report_agg(struct report_ctx *ctx,
	   HASH_TABLE_TYPE(source_agg) table, const char *key)
{
	struct report_source_agg *agg;

	agg = hash_table_lookup(table, key);
	if (agg == NULL) {
		agg = p_new(ctx->scratch, struct report_source_agg, 1);
		agg->key = p_strdup(ctx->scratch, key);
		hash_table_insert(table, agg->key, agg);
	}
	return agg;
}

static void report_new_report(struct report_ctx *ctx, sqlite3_stmt *stmt)
{
	const struct report_private *priv = ctx->priv;
	struct dmarc_query_report_policy pol, *p;
	int64_t begin = sqlite3_column_int64(stmt, RCOL_BEGIN);
	const char *org = col_text(stmt, RCOL_ORG);

	ctx->report_id = sqlite3_column_int64(stmt, RCOL_ID);
	ctx->reports++;
	ctx->org = report_agg(ctx, ctx->orgs, org == NULL ? "" : org);
	ctx->org->reports++;

	/* rows come by date_begin: the bucket only moves forward */
	while (ctx->bucket_idx < priv->report.bucket_count &&
	       begin >= ctx->bucket_starts[ctx->bucket_idx + 1])
		ctx->bucket_idx++;

	i_zero(&pol);
	pol.p = col_text(stmt, RCOL_P);
	pol.sp = col_text(stmt, RCOL_SP);
	pol.np = col_text(stmt, RCOL_NP);
	pol.adkim = col_text(stmt, RCOL_ADKIM);
	pol.aspf = col_text(stmt, RCOL_ASPF);
	pol.fo = col_text(stmt, RCOL_FO);
	pol.testing = col_text(stmt, RCOL_TESTING);
	pol.pct = sqlite3_column_type(stmt, RCOL_PCT) == SQLITE_NULL ? -1 :
		sqlite3_column_int(stmt, RCOL_PCT);
	ctx->policy = NULL;
	array_foreach_modifiable(&ctx->policies, p) {
		if (str_eq_null(p->p, pol.p) && str_eq_null(p->sp, pol.sp) &&
		    str_eq_null(p->np, pol.np) &&
		    str_eq_null(p->adkim, pol.adkim) &&
		    str_eq_null(p->aspf, pol.aspf) &&
		    str_eq_null(p->fo, pol.fo) &&
		    str_eq_null(p->testing, pol.testing) && p->pct == pol.pct) {
			ctx->policy = p;
			break;
		}
	}
	if (ctx->policy == NULL &&
	    array_count(&ctx->policies) < DMARC_QUERY_REPORT_MAX_POLICIES) {
		ctx->policy = array_append_space(&ctx->policies);
		ctx->policy->p = p_strdup(ctx->scratch, pol.p);
		ctx->policy->sp = p_strdup(ctx->scratch, pol.sp);
		ctx->policy->np = p_strdup(ctx->scratch, pol.np);
		ctx->policy->adkim = p_strdup(ctx->scratch, pol.adkim);
		ctx->policy->aspf = p_strdup(ctx->scratch, pol.aspf);
		ctx->policy->fo = p_strdup(ctx->scratch, pol.fo);
		ctx->policy->testing = p_strdup(ctx->scratch, pol.testing);
		ctx->policy->pct = pol.pct;
		ctx->policy->first_seen = begin;
	}
	if (ctx->policy != NULL) {
		ctx->policy->last_seen = I_MAX(ctx->policy->last_seen, begin);
		ctx->policy->reports++;
	}
}

static void report_sum_add(struct report_sum *sum, double count, bool pass,
			   bool dkim, bool spf)
{
	sum->messages += count;
	if (pass)
		sum->pass += count;
	else
		sum->fail += count;
	if (dkim)
		sum->dkim += count;
	if (spf)
		sum->spf += count;
}

static void report_row(struct report_ctx *ctx, sqlite3_stmt *stmt)
{
	const struct report_private *priv = ctx->priv;
	const char *source = col_text(stmt, RCOL_SOURCE);
	sqlite3_int64 count = sqlite3_column_int64(stmt, RCOL_COUNT);
	double n = count < 0 ? 0 : (double)count;
	bool pass = sqlite3_column_int(stmt, RCOL_PASS) != 0;
	bool dkim = sqlite3_column_int(stmt, RCOL_DKIM) != 0;
	bool spf = sqlite3_column_int(stmt, RCOL_SPF) != 0;
	int disposition = sqlite3_column_int(stmt, RCOL_DISPOSITION);
	struct report_source_agg *src;

	if (sqlite3_column_int64(stmt, RCOL_ID) != ctx->report_id)
		report_new_report(ctx, stmt);
	report_sum_add(&ctx->total, n, pass, dkim, spf);
	report_sum_add(&ctx->org->sum, n, pass, dkim, spf);
	src = report_agg(ctx, ctx->sources, source == NULL ? "" : source);
	report_sum_add(&src->sum, n, pass, dkim, spf);
	/* reports before the charted period count everywhere but here */
	if (ctx->bucket_idx < priv->report.bucket_count &&
	    sqlite3_column_int64(stmt, RCOL_BEGIN) >= priv->report.begin) {
		struct report_bucket_sum *b = &ctx->buckets[ctx->bucket_idx];

		report_sum_add(&b->sum, n, pass, dkim, spf);
		b->disposition[disposition >= 0 && disposition <= 3 ?
			       disposition : 0] += n;
	}
}

/* most messages first, then by name: the order of summary's SQL */
static int agg_cmp_messages(const struct report_source_agg *a1,
			    const struct report_source_agg *a2)
{
	if (a1->sum.messages != a2->sum.messages)
		return a1->sum.messages > a2->sum.messages ? -1 : 1;
	return strcmp(a1->key, a2->key);
}

static int agg_cmp_failing(const struct report_source_agg *a1,
			   const struct report_source_agg *a2)
{
	if (a1->sum.fail != a2->sum.fail)
		return a1->sum.fail > a2->sum.fail ? -1 : 1;
	return strcmp(a1->key, a2->key);
}

/* Keeps the max best of what is offered in top[0..*count), in order. */
static void
top_offer(const struct report_source_agg **top, unsigned int *count,
	  unsigned int max, const struct report_source_agg *agg,
	  int (*cmp)(const struct report_source_agg *,
		     const struct report_source_agg *))
{
	unsigned int i;

	if (*count == max && cmp(agg, top[max - 1]) >= 0)
		return;
	i = *count < max ? (*count)++ : max - 1;
	for (; i > 0 && cmp(agg, top[i - 1]) < 0; i--)
		top[i] = top[i - 1];
	top[i] = agg;
}

static struct dmarc_query_report_source *
report_sources_export(pool_t pool, const struct report_source_agg *const *top,
		      unsigned int count)
{
	struct dmarc_query_report_source *out;
	unsigned int i;

	out = p_new(pool, struct dmarc_query_report_source, count + 1);
	for (i = 0; i < count; i++) {
		out[i].source_ip = p_strdup(pool, top[i]->key);
		out[i].messages = total_to_count(top[i]->sum.messages);
		out[i].pass = total_to_count(top[i]->sum.pass);
		out[i].dkim_aligned = total_to_count(top[i]->sum.dkim);
		out[i].spf_aligned = total_to_count(top[i]->sum.spf);
	}
	return out;
}

static bool report_domain_better(const struct report_domain_agg *d1,
				 const struct report_domain_agg *d2)
{
	if (d1->domain.summary.messages != d2->domain.summary.messages)
		return d1->domain.summary.messages > d2->domain.summary.messages;
	return strcmp(d1->domain.summary.policy_domain,
		      d2->domain.summary.policy_domain) < 0;
}

static void report_domain_drop(struct report_ctx *ctx,
			       struct report_domain_agg **_dom)
{
	struct report_domain_agg *dom = *_dom;

	*_dom = NULL;
	ctx->priv->report.more_domains++;
	ctx->priv->report.more_domains_messages += dom->domain.summary.messages;
	pool_unref(&dom->pool);
}

static void report_domain_end(struct report_ctx *ctx)
{
	const unsigned int top_max = DMARC_QUERY_REPORT_TOP_SOURCES;
	const struct report_source_agg *top[DMARC_QUERY_REPORT_TOP_SOURCES];
	const struct report_source_agg *failing[DMARC_QUERY_REPORT_TOP_SOURCES];
	const struct report_source_agg *orgs[DMARC_QUERY_REPORT_TOP_REPORTERS];
	unsigned int top_count = 0, failing_count = 0, org_count = 0, i;
	unsigned int n = ctx->priv->report.bucket_count;
	struct report_domain_agg *dom, **kept;
	struct dmarc_query_summary_row *sum;
	struct dmarc_query_source_count *top_failing;
	struct dmarc_query_report_bucket *buckets;
	struct dmarc_query_report_reporter *reporters;
	struct hash_iterate_context *iter;
	struct report_source_agg *agg;
	const char *key;
	pool_t pool;

	if (ctx->domain == NULL)
		return;

	pool = pool_alloconly_create("dmarc report domain", 8192);
	dom = p_new(pool, struct report_domain_agg, 1);
	dom->pool = pool;
	sum = &dom->domain.summary;
	sum->policy_domain = p_strdup(pool, ctx->domain);
	sum->reports = ctx->reports;
	sum->messages = total_to_count(ctx->total.messages);
	sum->pass = total_to_count(ctx->total.pass);
	sum->dkim_aligned = total_to_count(ctx->total.dkim);
	sum->spf_aligned = total_to_count(ctx->total.spf);
	sum->pass_rate = dmarc_query_rate(ctx->total.pass, ctx->total.messages);
	sum->dkim_rate = dmarc_query_rate(ctx->total.dkim, ctx->total.messages);
	sum->spf_rate = dmarc_query_rate(ctx->total.spf, ctx->total.messages);

	iter = hash_table_iterate_init(ctx->sources);
	while (hash_table_iterate(iter, ctx->sources, &key, &agg)) {
		top_offer(top, &top_count, top_max, agg, agg_cmp_messages);
		if (agg->sum.fail > 0) {
			sum->failing_sources++;
			top_offer(failing, &failing_count, top_max, agg,
				  agg_cmp_failing);
		}
	}
	hash_table_iterate_deinit(&iter);
	iter = hash_table_iterate_init(ctx->orgs);
	while (hash_table_iterate(iter, ctx->orgs, &key, &agg)) {
		top_offer(orgs, &org_count, DMARC_QUERY_REPORT_TOP_REPORTERS,
			  agg, agg_cmp_messages);
	}
	hash_table_iterate_deinit(&iter);

	/* the summary's verdict, from the summary's own code */
	sum->top_failing_count = I_MIN(failing_count,
				       DMARC_QUERY_SUMMARY_TOP_SOURCES);
	top_failing = p_new(pool, struct dmarc_query_source_count,
			    sum->top_failing_count + 1);
	for (i = 0; i < sum->top_failing_count; i++) {
		top_failing[i].source_ip = p_strdup(pool, failing[i]->key);
		top_failing[i].messages = total_to_count(failing[i]->sum.fail);
	}
	sum->top_failing = top_failing;
	T_BEGIN {
		sum->verdict = p_strdup(pool, query_verdict(sum));
	} T_END;

	dom->top_sources = report_sources_export(pool, top, top_count);
	dom->domain.top_sources = dom->top_sources;
	dom->domain.top_source_count = top_count;
	dom->failing_sources =
		report_sources_export(pool, failing, failing_count);
	dom->domain.failing_sources = dom->failing_sources;
	dom->domain.failing_source_count = failing_count;

	reporters = p_new(pool, struct dmarc_query_report_reporter,
			  org_count + 1);
	for (i = 0; i < org_count; i++) {
		reporters[i].org_name = p_strdup(pool, orgs[i]->key);
		reporters[i].reports = orgs[i]->reports;
		reporters[i].messages = total_to_count(orgs[i]->sum.messages);
		reporters[i].pass = total_to_count(orgs[i]->sum.pass);
	}
	dom->domain.reporters = reporters;
	dom->domain.reporter_count = org_count;

	buckets = p_new(pool, struct dmarc_query_report_bucket, n + 1);
	for (i = 0; i < n; i++) {
		const struct report_bucket_sum *b = &ctx->buckets[i];

		buckets[i].start = ctx->bucket_starts[i];
		buckets[i].messages = total_to_count(b->sum.messages);
		buckets[i].pass = total_to_count(b->sum.pass);
		buckets[i].dkim_aligned = total_to_count(b->sum.dkim);
		buckets[i].spf_aligned = total_to_count(b->sum.spf);
		buckets[i].other = total_to_count(b->disposition[0]);
		buckets[i].none = total_to_count(b->disposition[1]);
		buckets[i].quarantine = total_to_count(b->disposition[2]);
		buckets[i].reject = total_to_count(b->disposition[3]);
	}
	dom->domain.buckets = buckets;
	dom->domain.bucket_count = n;

	if (array_count(&ctx->policies) > 0) {
		struct dmarc_query_report_policy *pols;
		unsigned int count;

		pols = array_get_modifiable(&ctx->policies, &count);
		for (i = 0; i < count; i++) {
			pols[i].p = p_strdup(pool, pols[i].p);
			pols[i].sp = p_strdup(pool, pols[i].sp);
			pols[i].np = p_strdup(pool, pols[i].np);
			pols[i].adkim = p_strdup(pool, pols[i].adkim);
			pols[i].aspf = p_strdup(pool, pols[i].aspf);
			pols[i].fo = p_strdup(pool, pols[i].fo);
			pols[i].testing = p_strdup(pool, pols[i].testing);
		}
		dom->domain.policies = p_memdup(pool, pols,
						sizeof(*pols) * count);
		dom->domain.policy_count = count;
	}
	ctx->domain = NULL;

	/* keep the busiest domains only */
	if (array_count(&ctx->kept) < DMARC_QUERY_REPORT_MAX_DOMAINS) {
		array_push_back(&ctx->kept, &dom);
		return;
	}
	array_foreach_modifiable(&ctx->kept, kept) {
		if (report_domain_better(dom, *kept)) {
			struct report_domain_agg *worse = *kept;

			*kept = dom;
			dom = worse;
		}
	}
	report_domain_drop(ctx, &dom);
}

/* The cached names of the sources shown (not looked up here: that is
   doveadm dmarc --resolve's work). Only the domains kept, so at most
   MAX_DOMAINS * 2 * TOP_SOURCES cache reads. */
static int report_source_names(struct dmarc_store *store, pool_t pool,
			       struct dmarc_query_report_source *sources,
			       unsigned int count, int64_t now,
			       const char **error_r)
{
	const char *name;
	unsigned int i;
	int ret;

	for (i = 0; i < count; i++) {
		ret = dmarc_query_resolved_get(store, sources[i].source_ip,
					       now, &name, error_r);
		if (ret < 0)
			return -1;
		if (ret > 0)
			sources[i].name = p_strdup(pool, name);
	}
	return 0;
}

static int report_domain_cmp(struct report_domain_agg *const *d1,
			     struct report_domain_agg *const *d2)
{
	return report_domain_better(*d1, *d2) ? -1 :
		report_domain_better(*d2, *d1) ? 1 : 0;
}

static int report_walk(struct report_ctx *ctx, struct dmarc_store *store,
		       const struct dmarc_query_filter *filter,
		       const char **error_r)
{
	struct query_sql q;
	sqlite3_stmt *stmt;
	const char *domain;
	int ret;

	dmarc_query_sql_init(&q, REPORT_SQL_COLUMNS);
	query_add_filter(&q, filter);
	/* reports_domain_begin's order: a scan, not a sort */
	str_append(q.sql, " ORDER BY r.policy_domain, r.date_begin, r.id");
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	while ((ret = dmarc_query_step(stmt, error_r)) > 0) {
		/* a new domain is also a new report: look only then */
		if (sqlite3_column_int64(stmt, RCOL_ID) != ctx->report_id) {
			domain = col_text(stmt, RCOL_DOMAIN);
			if (domain == NULL)
				domain = "";
			if (ctx->domain == NULL ||
			    strcmp(ctx->domain, domain) != 0) {
				report_domain_end(ctx);
				report_domain_begin(ctx, domain);
			}
		}
		report_row(ctx, stmt);
	}
	sqlite3_finalize(stmt);
	if (ret == 0)
		report_domain_end(ctx);
	return ret;
}

/* TLS reports (RFC 8460): their sessions per policy domain, as doveadm
   dmarc tls --group-by policy-domain has them (same filters, most sessions
   first). A database that never had one (or has no such tables: schema
   version 1) gets no TLS section at all. */
struct report_tls_ctx {
	pool_t pool;
	ARRAY(struct dmarc_query_report_tls) rows;
};

static int report_tls_row(const struct dmarc_query_tls_group_row *row,
			  void *context)
{
	struct report_tls_ctx *ctx = context;
	struct dmarc_query_report_tls *tls;

	if (array_count(&ctx->rows) >= DMARC_QUERY_REPORT_MAX_DOMAINS)
		return 0;
	tls = array_append_space(&ctx->rows);
	tls->policy_domain = p_strdup(ctx->pool, row->key);
	tls->failure = row->failures;
	tls->success = row->sessions - I_MIN(row->failures, row->sessions);
	return 0;
}

static int report_tls(pool_t pool, struct dmarc_query_report *report,
		      struct dmarc_store *store,
		      const struct dmarc_query_filter *filter,
		      const char **error_r)
{
	struct report_tls_ctx ctx;
	struct query_sql q;
	sqlite3_stmt *stmt;
	int ret;

	dmarc_query_sql_init(&q, "SELECT count(*) FROM sqlite_master"
			     " WHERE type = 'table' AND name = 'tls_reports'");
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	ret = dmarc_query_step(stmt, error_r);
	if (ret > 0 && sqlite3_column_int(stmt, 0) == 1) {
		sqlite3_finalize(stmt);
		dmarc_query_sql_init(&q, "SELECT EXISTS (SELECT 1 FROM tls_reports)");
		if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
			return -1;
		ret = dmarc_query_step(stmt, error_r);
		if (ret > 0)
			report->have_tls = sqlite3_column_int(stmt, 0) != 0;
	}
	sqlite3_finalize(stmt);
	if (ret < 0 || !report->have_tls)
		return ret < 0 ? -1 : 0;

	i_zero(&ctx);
	ctx.pool = pool;
	p_array_init(&ctx.rows, pool, 8);
	if (dmarc_query_tls_groups(store, filter,
				   DMARC_QUERY_TLS_GROUP_POLICY_DOMAIN,
				   report_tls_row, &ctx, error_r) < 0)
		return -1;
	report->tls = array_get(&ctx.rows, &report->tls_count);
	return 0;
}

int dmarc_query_report(struct dmarc_store *store,
		       const struct dmarc_query_filter *filter, time_t now,
		       struct dmarc_query_report **report_r,
		       const char **error_r)
{
	struct report_private *priv;
	struct report_domain_agg **kept;
	struct dmarc_query_report_domain *domains;
	struct report_ctx ctx;
	int64_t data_min = 0, data_max = 0, begin, end;
	unsigned int i, count;
	pool_t pool;
	int ret;

	pool = pool_alloconly_create("dmarc report", 8192);
	priv = p_new(pool, struct report_private, 1);
	priv->pool = pool;
	p_array_init(&priv->domain_pools, pool, DMARC_QUERY_REPORT_MAX_DOMAINS);
	*report_r = &priv->report;

	i_zero(&ctx);
	ctx.priv = priv;
	ret = report_data_span(store, filter, &data_min, &data_max, error_r);
	if (ret < 0)
		return -1;
	/* the period asked for, else the one the data covers */
	begin = filter->have_since ? filter->since :
		(ret > 0 ? data_min : (int64_t)now);
	end = filter->have_until ? filter->until :
		filter->have_since ? I_MAX((int64_t)now, data_max) :
		(ret > 0 ? data_max : (int64_t)now);
	ctx.bucket_starts = report_set_period(pool, &priv->report, begin, end);
	if (ret > 0 && (data_min < priv->report.begin ||
			data_max > priv->report.end))
		priv->report.charts_cut = TRUE;

	ctx.scratch = pool_alloconly_create("dmarc report scratch", 65536);
	hash_table_create(&ctx.sources, default_pool, 1024, str_hash, strcmp);
	hash_table_create(&ctx.orgs, default_pool, 64, str_hash, strcmp);
	i_array_init(&ctx.kept, DMARC_QUERY_REPORT_MAX_DOMAINS);
	ret = ret == 0 ? 0 : report_walk(&ctx, store, filter, error_r);
	if (ret == 0)
		ret = report_tls(pool, &priv->report, store, filter, error_r);

	array_sort(&ctx.kept, report_domain_cmp);
	count = array_count(&ctx.kept);
	domains = p_new(pool, struct dmarc_query_report_domain, count + 1);
	i = 0;
	array_foreach_modifiable(&ctx.kept, kept) {
		struct report_domain_agg *dom = *kept;

		if (ret == 0 &&
		    (report_source_names(store, dom->pool, dom->top_sources,
					 dom->domain.top_source_count, now,
					 error_r) < 0 ||
		     report_source_names(store, dom->pool, dom->failing_sources,
					 dom->domain.failing_source_count, now,
					 error_r) < 0))
			ret = -1;
		domains[i++] = dom->domain;
		array_push_back(&priv->domain_pools, &dom->pool);
	}
	priv->report.domains = domains;
	priv->report.domain_count = count;

	array_free(&ctx.kept);
	hash_table_destroy(&ctx.sources);
	hash_table_destroy(&ctx.orgs);
	pool_unref(&ctx.scratch);
	return ret < 0 ? -1 : 0;
}

void dmarc_query_report_free(struct dmarc_query_report **_report)
{
	struct report_private *priv =
		container_of(*_report, struct report_private, report);
	pool_t *poolp;

	*_report = NULL;
	array_foreach_modifiable(&priv->domain_pools, poolp)
		pool_unref(poolp);
	pool_unref(&priv->pool);
}

/* --- names of sources --- */

int dmarc_query_resolved_get(struct dmarc_store *store, const char *ip,
			     int64_t now, const char **name_r,
			     const char **error_r)
{
	struct query_sql q;
	sqlite3_stmt *stmt;
	int ret;

	*name_r = NULL;
	dmarc_query_sql_init(&q, "SELECT name FROM resolved_names"
		       " WHERE ip = ? AND expires > ?");
	dmarc_query_bind_text(&q, ip);
	dmarc_query_bind_int(&q, now);
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	ret = dmarc_query_step(stmt, error_r);
	if (ret > 0)
		*name_r = dmarc_query_col_str(stmt, 0);
	sqlite3_finalize(stmt);
	return ret;
}

int dmarc_query_resolved_put(struct dmarc_store *store, const char *ip,
			     const char *name, int64_t expires,
			     const char **error_r)
{
	struct query_sql q;
	sqlite3_stmt *stmt;
	int ret;

	/* a name is never "": that is NULL, no verified name */
	dmarc_query_sql_init(&q, "INSERT OR REPLACE INTO resolved_names"
		       " (ip, name, expires) VALUES (?, nullif(?, ''), ?)");
	dmarc_query_bind_text(&q, ip);
	dmarc_query_bind_text(&q, name == NULL ? "" : name);
	dmarc_query_bind_int(&q, expires);
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	ret = dmarc_query_step(stmt, error_r);
	sqlite3_finalize(stmt);
	return ret < 0 ? -1 : 0;
}
