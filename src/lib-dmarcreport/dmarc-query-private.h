#ifndef DMARC_QUERY_PRIVATE_H
#define DMARC_QUERY_PRIVATE_H

/* What the read modules (dmarc-query.c, dmarc-query-kinds.c) share:
   statements built with bound values, row helpers. */

#include "array.h"
#include <sqlite3.h>

#include "dmarc-query.h"

struct dmarc_store;

enum query_bind_type {
	QUERY_BIND_INT,
	QUERY_BIND_TEXT,
	QUERY_BIND_BLOB16,
};

struct query_bind {
	enum query_bind_type type;
	int64_t num;
	const char *text;
	const unsigned char *blob;
};
ARRAY_DEFINE_TYPE(query_bind, struct query_bind);

/* A statement under construction: SQL text plus its bound values. */
struct query_sql {
	string_t *sql;
	ARRAY_TYPE(query_bind) binds;
};


void dmarc_query_sql_init(struct query_sql *q, const char *start);
void dmarc_query_bind_int(struct query_sql *q, int64_t num);
void dmarc_query_bind_text(struct query_sql *q, const char *text);
void dmarc_query_bind_blob16(struct query_sql *q, const unsigned char *blob);
int dmarc_query_prepare(struct dmarc_store *store, const struct query_sql *q,
			sqlite3_stmt **stmt_r, const char **error_r);
/* Steps stmt to the next row: 1 row, 0 done, -1 error. */
int dmarc_query_step(sqlite3_stmt *stmt, const char **error_r);

/* One filter condition: " AND (cond)", or when its field is negated
   " AND NOT coalesce((cond), 0)". */
void dmarc_query_cond(struct query_sql *q, const struct dmarc_query_filter *f,
		      enum dmarc_query_field field, const char *cond);
/* Binds the two ends of f's source network as source_ip_key values. */
void dmarc_query_bind_source(struct query_sql *q,
			     const struct dmarc_query_filter *f);

/* Runs q and hands each row to row_func (in a data stack frame of its
   own); -1 when the query or a callback failed (then *error_r is
   dmarc_query_callback_error). */
typedef int dmarc_query_row_func_t(sqlite3_stmt *stmt, void *context);
int dmarc_query_rows(struct dmarc_store *store, const struct query_sql *q,
		     dmarc_query_row_func_t *row_func, void *context,
		     const char **error_r);

const char *dmarc_query_col_str(sqlite3_stmt *stmt, int col);
uint64_t dmarc_query_col_u64(sqlite3_stmt *stmt, int col);
/* a total() column as a count, saturating at INT64_MAX */
uint64_t dmarc_query_col_total(sqlite3_stmt *stmt, int col);
/* percent; 0 when total is 0 */
double dmarc_query_rate(double part, double total);

extern const char *const dmarc_query_callback_error;

#endif
