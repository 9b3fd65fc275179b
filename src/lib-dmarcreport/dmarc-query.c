/* The read side of the report database for doveadm dmarc (list, query,
   summary) and its one delete (expire). The doors hand over a filter
   struct; it becomes a WHERE clause whose values are all bound. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strnum.h"
#include "net.h"
#include "dmarc-store.h"
#include "dmarc-query.h"
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

/* Appends " AND ..." for every set field; the caller's FROM joins
   reports r and records rec. */
static void
query_add_filter(struct query_sql *q, const struct dmarc_query_filter *f)
{
	if (f->domain != NULL) {
		str_append(q->sql, " AND r.policy_domain = lower(?)");
		dmarc_query_bind_text(q, f->domain);
	}
	if (f->org != NULL) {
		str_append(q->sql, " AND r.org_name = ? COLLATE NOCASE");
		dmarc_query_bind_text(q, f->org);
	}
	if (f->have_since) {
		str_append(q->sql, " AND r.date_begin >= ?");
		dmarc_query_bind_int(q, f->since);
	}
	if (f->have_until) {
		str_append(q->sql, " AND r.date_begin <= ?");
		dmarc_query_bind_int(q, f->until);
	}
	if (f->have_source) {
		str_append(q->sql, " AND rec.source_ip_key BETWEEN ? AND ?");
		dmarc_query_bind_blob16(q, f->source_min);
		dmarc_query_bind_blob16(q, f->source_max);
	}
	if (f->disposition != NULL) {
		str_append(q->sql, " AND rec.disposition = lower(?)");
		dmarc_query_bind_text(q, f->disposition);
	}
	if (f->dkim != NULL) {
		str_append(q->sql, " AND rec.dkim = lower(?)");
		dmarc_query_bind_text(q, f->dkim);
	}
	if (f->spf != NULL) {
		str_append(q->sql, " AND rec.spf = lower(?)");
		dmarc_query_bind_text(q, f->spf);
	}
	if (f->result >= 0) {
		str_append(q->sql, " AND rec.dmarc_pass = ?");
		dmarc_query_bind_int(q, f->result > 0 ? 1 : 0);
	}
	if (f->header_from != NULL) {
		str_append(q->sql, " AND lower(rec.header_from) = lower(?)");
		dmarc_query_bind_text(q, f->header_from);
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

/* --- value parsing --- */

int dmarc_query_parse_date(const char *str, time_t now,
			   int64_t *start_r, int64_t *last_r,
			   const char **error_r)
{
	unsigned int year, month, day;
	uintmax_t num;
	const char *end;
	struct tm tm;
	time_t t;

	unsigned int hour, min, sec;

	/* what list prints: 2024-01-31T00:00:00Z */
	if (strlen(str) == 20 && str[10] == 'T' && str[19] == 'Z' &&
	    sscanf(str, "%4u-%2u-%2uT%2u:%2u:%2u", &year, &month, &day,
		   &hour, &min, &sec) == 6 && str[4] == '-' && str[7] == '-' &&
	    str[13] == ':' && str[16] == ':' && hour < 24 && min < 60 &&
	    sec < 61 && month >= 1 && month <= 12 && day >= 1 &&
	    year >= 1970) {
		i_zero(&tm);
		tm.tm_year = year - 1900;
		tm.tm_mon = month - 1;
		tm.tm_mday = day;
		tm.tm_hour = hour;
		tm.tm_min = min;
		tm.tm_sec = sec;
		t = timegm(&tm);
		if (t == (time_t)-1 || tm.tm_mday != (int)day)
			goto invalid;
		*start_r = *last_r = t;
		return 0;
	}
	if (str_parse_uintmax(str, &num, &end) == 0 && end != str) {
		uintmax_t unit = 0;

		if (*end == '\0') {
			/* Unix seconds */
			if (num > INT64_MAX)
				goto invalid;
			*start_r = *last_r = (int64_t)num;
			return 0;
		}
		if (end[1] == '\0') {
			switch (end[0]) {
			case 's': unit = 1; break;
			case 'm': unit = 60; break;
			case 'h': unit = 60*60; break;
			case 'd': unit = 24*60*60; break;
			case 'w': unit = 7*24*60*60; break;
			}
		}
		if (unit != 0 && num <= (uintmax_t)now / unit) {
			*start_r = *last_r = (int64_t)now - (int64_t)(num * unit);
			return 0;
		}
		if (unit == 0 && sscanf(str, "%4u-%2u-%2u", &year, &month,
					&day) == 3 && strlen(str) == 10 &&
		    str[4] == '-' && str[7] == '-' &&
		    month >= 1 && month <= 12 && day >= 1 && day <= 31 &&
		    year >= 1970) {
			i_zero(&tm);
			tm.tm_year = year - 1900;
			tm.tm_mon = month - 1;
			tm.tm_mday = day;
			t = timegm(&tm);
			/* timegm() normalises 2024-02-31: refuse it */
			if (t == (time_t)-1 || tm.tm_mday != (int)day)
				goto invalid;
			/* year <= 9999: far from any limit */
			*start_r = t;
			*last_r = t + 24*60*60 - 1;
			return 0;
		}
	}
invalid:
	*error_r = t_strdup_printf("Invalid date '%s' "
		"(use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, Unix seconds, "
		"or an interval like 30d)", str);
	return -1;
}

int dmarc_query_parse_source(const char *str, unsigned char min_r[16],
			     unsigned char max_r[16], const char **error_r)
{
	struct in_addr addr4;
	struct ip_addr ip;
	unsigned int bits, i;

	/* Dovecot's parser: an address ("[...]" around IPv6 too) and an
	   optional /bits no longer than the address */
	if (net_parse_range(str, &ip, &bits) < 0) {
		*error_r = t_strdup_printf(
			"Invalid IP address or network '%s'", str);
		return -1;
	}
	/* inet_aton() behind it also takes "192.0.2" or "0x7f.1": an IPv4
	   address must be written out as reports write it */
	if (IPADDR_IS_V4(&ip) &&
	    inet_pton(AF_INET, t_strcut(str, '/'), &addr4) != 1) {
		*error_r = t_strdup_printf(
			"Invalid IP address or network '%s'", str);
		return -1;
	}
	/* The key the store gives the address: IPv4 as ::ffff:a.b.c.d, so
	   a.b.c.d/n is ::ffff:a.b.c.d/(96+n), and an IPv4-mapped filter
	   (::ffff:192.0.2.0/120) is that same range: both match the rows
	   whether they were stored as IPv4 or as IPv4-mapped IPv6. */
	if (!dmarc_store_ip_key(net_ip2addr(&ip), min_r))
		i_unreached();
	if (IPADDR_IS_V4(&ip))
		bits += 96;
	for (i = 0; i < 16; i++) {
		unsigned int keep = bits >= (i + 1) * 8 ? 8 :
			bits <= i * 8 ? 0 : bits - i * 8;
		unsigned char mask = keep == 0 ? 0 :
			(unsigned char)(0xff << (8 - keep));

		min_r[i] &= mask;
		max_r[i] = min_r[i] | (unsigned char)~mask;
	}
	return 0;
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
	str_append(q.sql, " GROUP BY r.id ORDER BY r.date_begin, r.id");
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
	str_append(q.sql, " ORDER BY r.date_begin, r.id, rec.id");
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	while (ret == 0 && (ret = dmarc_query_step(stmt, error_r)) > 0) T_BEGIN {
		struct dmarc_query_record_row row;

		i_zero(&row);
		row.policy_domain = dmarc_query_col_str(stmt, 0);
		row.org_name = dmarc_query_col_str(stmt, 1);
		row.report_id = dmarc_query_col_str(stmt, 2);
		row.date_begin = sqlite3_column_int64(stmt, 3);
		row.source_ip = dmarc_query_col_str(stmt, 4);
		row.count = dmarc_query_col_u64(stmt, 5);
		row.disposition = dmarc_query_col_str(stmt, 6);
		row.dkim = dmarc_query_col_str(stmt, 7);
		row.spf = dmarc_query_col_str(stmt, 8);
		row.dmarc_pass = sqlite3_column_int(stmt, 9) != 0;
		row.header_from = dmarc_query_col_str(stmt, 10);
		row.envelope_from = dmarc_query_col_str(stmt, 11);
		row.auth = dmarc_query_col_str(stmt, 12);
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

/* --- expire --- */

/* Rows of one expired report deleted per statement: a report of a million
   records goes in many short steps, each of which the store's batch may
   commit, so that deliveries get the lock in between. */
#define EXPIRE_CHUNK_RECORDS 2000

/* The records (and their auth results) of reports that are gone: those
   just deleted, or left by an expire that was interrupted. Readers never
   see them: every query joins records to reports. */
static int query_expire_orphans(struct dmarc_store *store,
				const char **error_r)
{
	sqlite3 *db = dmarc_store_get_db(store);
	ARRAY(int64_t) refs;
	struct query_sql q;
	sqlite3_stmt *stmt;
	int64_t ref;
	int ret;

	t_array_init(&refs, 64);
	dmarc_query_sql_init(&q, "SELECT DISTINCT report_ref FROM records"
		       " WHERE report_ref NOT IN (SELECT id FROM reports)");
	if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
		return -1;
	while ((ret = dmarc_query_step(stmt, error_r)) > 0) {
		ref = sqlite3_column_int64(stmt, 0);
		array_push_back(&refs, &ref);
	}
	sqlite3_finalize(stmt);
	if (ret < 0)
		return -1;

	array_foreach_elem(&refs, ref) {
		do {
			if (dmarc_store_batch_continue(store, error_r) < 0)
				return -1;
			/* the same chunk of records, first their auth
			   results (foreign keys are off in a batch) */
			dmarc_query_sql_init(&q, "DELETE FROM auth_results WHERE"
				" record_ref IN (SELECT id FROM records"
				" WHERE report_ref = ? ORDER BY id LIMIT ?)");
			dmarc_query_bind_int(&q, ref);
			dmarc_query_bind_int(&q, EXPIRE_CHUNK_RECORDS);
			if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
				return -1;
			ret = dmarc_query_step(stmt, error_r);
			sqlite3_finalize(stmt);
			if (ret < 0)
				return -1;
			dmarc_query_sql_init(&q, "DELETE FROM records WHERE id IN"
				" (SELECT id FROM records WHERE report_ref = ?"
				" ORDER BY id LIMIT ?)");
			dmarc_query_bind_int(&q, ref);
			dmarc_query_bind_int(&q, EXPIRE_CHUNK_RECORDS);
			if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
				return -1;
			ret = dmarc_query_step(stmt, error_r);
			sqlite3_finalize(stmt);
			if (ret < 0)
				return -1;
		} while (sqlite3_changes(db) > 0);
	}
	return 0;
}

int dmarc_query_expire(struct dmarc_store *store, int64_t before,
		       pool_t pool, ARRAY_TYPE(const_string) *paths_r,
		       unsigned int *deleted_r, const char **error_r)
{
	sqlite3 *db = dmarc_store_get_db(store);
	struct query_sql q;
	sqlite3_stmt *stmt;
	const char *error;
	int ret = 0;

	*deleted_r = 0;
	/* A batch: foreign keys off, so that deleting a report does not
	   cascade to all its records in one long statement; they follow in
	   chunks. Its first transaction is IMMEDIATE: no delivery may add a
	   report using one of the archive files between reading the paths
	   and deleting the rows. */
	if (dmarc_store_batch_begin(store, error_r) < 0)
		return -1;
	if (paths_r != NULL) {
		/* a file that held several reports goes only with the last */
		dmarc_query_sql_init(&q,
			"SELECT DISTINCT archive_path FROM reports"
			" WHERE date_end < ? AND archive_path IS NOT NULL"
			" AND archive_path NOT IN (SELECT archive_path"
			"  FROM reports WHERE date_end >= ?"
			"  AND archive_path IS NOT NULL)"
			" ORDER BY archive_path");
		dmarc_query_bind_int(&q, before);
		dmarc_query_bind_int(&q, before);
		if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
			ret = -1;
		else {
			while ((ret = dmarc_query_step(stmt, error_r)) > 0) {
				const char *path = p_strdup(pool,
					(const char *)sqlite3_column_text(stmt, 0));
				array_push_back(paths_r, &path);
			}
			sqlite3_finalize(stmt);
		}
	}
	if (ret == 0) {
		dmarc_query_sql_init(&q, "DELETE FROM reports WHERE date_end < ?");
		dmarc_query_bind_int(&q, before);
		if (dmarc_query_prepare(store, &q, &stmt, error_r) < 0)
			ret = -1;
		else {
			ret = dmarc_query_step(stmt, error_r);
			if (ret == 0)
				*deleted_r = sqlite3_changes(db);
			sqlite3_finalize(stmt);
		}
	}
	if (ret < 0) {
		(void)dmarc_store_batch_commit(store, &error);
		if (paths_r != NULL)
			array_clear(paths_r);
		*deleted_r = 0;
		return -1;
	}
	/* the reports are gone as one: their rows follow in steps */
	if (dmarc_store_batch_flush(store, error_r) < 0 ||
	    query_expire_orphans(store, error_r) < 0) {
		/* the reports and their archive files are gone already,
		   whatever rows are left go with the next expire */
		(void)dmarc_store_batch_commit(store, &error);
		return -1;
	}
	return dmarc_store_batch_commit(store, error_r);
}
