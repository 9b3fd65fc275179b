/* SMTP TLS and DMARC failure reports -> SQLite. These reports are small
   and rare next to aggregate ones: statements are prepared per report. */

#include "lib.h"
#include "str.h"
#include "hex-binary.h"
#include "sha2.h"
#include "dmarc-tls.h"
#include "dmarc-failure.h"
#include "dmarc-store-kinds.h"

#include <sqlite3.h>

static const char *kinds_error(struct dmarc_store *store, const char *what)
{
	return dmarc_store_db_error(store, what);
}

static int kinds_exec(struct dmarc_store *store, const char *sql,
		      const char *what, const char **error_r)
{
	if (sqlite3_exec(dmarc_store_get_db(store), sql, NULL, NULL,
			 NULL) != SQLITE_OK) {
		*error_r = kinds_error(store, what);
		return -1;
	}
	return 0;
}

/* Outside a batch a transaction, inside one a savepoint. */
static int kinds_begin(struct dmarc_store *store, const char **error_r)
{
	return kinds_exec(store, dmarc_store_in_batch(store) ?
			  "SAVEPOINT report" : "BEGIN IMMEDIATE",
			  "starting a transaction", error_r);
}

static int kinds_commit(struct dmarc_store *store, const char **error_r)
{
	return kinds_exec(store, dmarc_store_in_batch(store) ?
			  "RELEASE report" : "COMMIT",
			  "committing the report", error_r);
}

static void kinds_rollback(struct dmarc_store *store)
{
	(void)sqlite3_exec(dmarc_store_get_db(store),
			   dmarc_store_in_batch(store) ?
			   "ROLLBACK TO report; RELEASE report" : "ROLLBACK",
			   NULL, NULL, NULL);
}

static sqlite3_stmt *
kinds_prepare(struct dmarc_store *store, const char *sql, const char **error_r)
{
	sqlite3_stmt *stmt;

	if (sqlite3_prepare_v2(dmarc_store_get_db(store), sql, -1, &stmt,
			       NULL) != SQLITE_OK) {
		*error_r = kinds_error(store, "preparing a statement");
		return NULL;
	}
	return stmt;
}

static void bind_text(sqlite3_stmt *stmt, int idx, const char *value)
{
	if (value == NULL)
		sqlite3_bind_null(stmt, idx);
	else
		sqlite3_bind_text(stmt, idx, value, -1, SQLITE_TRANSIENT);
}

/* Step to the end; 1 = a row was changed, 0 = none (a conflict ignored),
   -1 = error. The statement is reset for the next use. */
static int kinds_step(struct dmarc_store *store, sqlite3_stmt *stmt,
		      const char *what, const char **error_r)
{
	int ret = sqlite3_step(stmt);

	if (ret != SQLITE_DONE)
		*error_r = kinds_error(store, what);
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	if (ret != SQLITE_DONE)
		return -1;
	return sqlite3_changes(dmarc_store_get_db(store)) > 0 ? 1 : 0;
}

static int64_t sat_add(int64_t a, int64_t b)
{
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int
store_tls_policies(struct dmarc_store *store, int64_t report_ref,
		   const struct dmarc_tls_report *report,
		   int64_t *success_r, int64_t *failure_r, const char **error_r)
{
	static const char *policy_sql =
		"INSERT INTO tls_policies (report_ref, policy_type,"
		" policy_strings, policy_domain, mx_hosts, success_count,"
		" failure_count) VALUES (?,?,?,?,?,?,?)";
	static const char *failure_sql =
		"INSERT INTO tls_failures (policy_ref, result_type,"
		" sending_mta_ip, receiving_mx_hostname, receiving_mx_helo,"
		" receiving_ip, failed_session_count, additional_information,"
		" failure_reason_code) VALUES (?,?,?,?,?,?,?,?,?)";
	const struct dmarc_tls_policy *policy;
	const struct dmarc_tls_failure *failure;
	sqlite3_stmt *pstmt, *fstmt;
	int64_t policy_ref;
	int ret = 0;

	*success_r = *failure_r = 0;
	if ((pstmt = kinds_prepare(store, policy_sql, error_r)) == NULL)
		return -1;
	if ((fstmt = kinds_prepare(store, failure_sql, error_r)) == NULL) {
		sqlite3_finalize(pstmt);
		return -1;
	}
	array_foreach(&report->policies, policy) {
		sqlite3_bind_int64(pstmt, 1, report_ref);
		bind_text(pstmt, 2, policy->policy_type);
		bind_text(pstmt, 3, policy->policy_strings);
		bind_text(pstmt, 4, policy->policy_domain);
		bind_text(pstmt, 5, policy->mx_hosts);
		sqlite3_bind_int64(pstmt, 6, policy->success_count);
		sqlite3_bind_int64(pstmt, 7, policy->failure_count);
		if (kinds_step(store, pstmt, "storing a TLS policy",
			       error_r) < 0) {
			ret = -1;
			break;
		}
		*success_r = sat_add(*success_r, policy->success_count);
		*failure_r = sat_add(*failure_r, policy->failure_count);
		policy_ref = sqlite3_last_insert_rowid(dmarc_store_get_db(store));
		array_foreach(&policy->failures, failure) {
			sqlite3_bind_int64(fstmt, 1, policy_ref);
			bind_text(fstmt, 2, failure->result_type);
			bind_text(fstmt, 3, failure->sending_mta_ip);
			bind_text(fstmt, 4, failure->receiving_mx_hostname);
			bind_text(fstmt, 5, failure->receiving_mx_helo);
			bind_text(fstmt, 6, failure->receiving_ip);
			sqlite3_bind_int64(fstmt, 7,
					   failure->failed_session_count);
			bind_text(fstmt, 8, failure->additional_information);
			bind_text(fstmt, 9, failure->failure_reason_code);
			if (kinds_step(store, fstmt, "storing a TLS failure",
				       error_r) < 0) {
				ret = -1;
				break;
			}
		}
		if (ret < 0)
			break;
	}
	sqlite3_finalize(pstmt);
	sqlite3_finalize(fstmt);
	return ret;
}

int dmarc_store_tls_report(struct dmarc_store *store,
			   const struct dmarc_tls_report *report,
			   const struct dmarc_store_report_info *info,
			   const char **error_r)
{
	static const char *report_sql =
		"INSERT INTO tls_reports (org_name, report_id, date_begin,"
		" date_end, contact_info, policy_count, archive_path,"
		" message_id, received) VALUES (?,?,?,?,?,?,?,?,?)"
		" ON CONFLICT (org_name, report_id) DO NOTHING";
	static const char *update_sql =
		"UPDATE tls_reports SET success_count = ?, failure_count = ?"
		" WHERE id = ?";
	sqlite3_stmt *stmt;
	int64_t report_ref, success, failure;
	int ret;

	if (kinds_begin(store, error_r) < 0)
		return -1;
	if ((stmt = kinds_prepare(store, report_sql, error_r)) == NULL) {
		kinds_rollback(store);
		return -1;
	}
	bind_text(stmt, 1, report->org_name);
	bind_text(stmt, 2, report->report_id);
	sqlite3_bind_int64(stmt, 3, report->date_begin);
	sqlite3_bind_int64(stmt, 4, report->date_end);
	bind_text(stmt, 5, report->contact_info);
	sqlite3_bind_int64(stmt, 6, array_count(&report->policies));
	bind_text(stmt, 7, info->archive_path);
	bind_text(stmt, 8, info->message_id);
	sqlite3_bind_int64(stmt, 9, info->received);
	ret = kinds_step(store, stmt, "storing the TLS report", error_r);
	sqlite3_finalize(stmt);
	if (ret <= 0) {
		kinds_rollback(store);
		return ret;
	}
	report_ref = sqlite3_last_insert_rowid(dmarc_store_get_db(store));
	if (store_tls_policies(store, report_ref, report, &success, &failure,
			       error_r) < 0) {
		kinds_rollback(store);
		return -1;
	}
	if ((stmt = kinds_prepare(store, update_sql, error_r)) == NULL) {
		kinds_rollback(store);
		return -1;
	}
	sqlite3_bind_int64(stmt, 1, success);
	sqlite3_bind_int64(stmt, 2, failure);
	sqlite3_bind_int64(stmt, 3, report_ref);
	ret = kinds_step(store, stmt, "updating the TLS report", error_r);
	sqlite3_finalize(stmt);
	if (ret < 0 || kinds_commit(store, error_r) < 0) {
		kinds_rollback(store);
		return -1;
	}
	return 1;
}

/* SHA-256 of the feedback-report part and the reported Message-ID: the
   same report sent (or imported) again has the same key. */
static const char *
failure_report_key(const struct dmarc_failure_report *report)
{
	struct sha256_ctx ctx;
	unsigned char digest[SHA256_RESULTLEN];

	sha256_init(&ctx);
	sha256_loop(&ctx, report->arf_text, strlen(report->arf_text));
	sha256_loop(&ctx, "\0", 1);
	if (report->orig_message_id != NULL) {
		sha256_loop(&ctx, report->orig_message_id,
			    strlen(report->orig_message_id));
	}
	sha256_result(&ctx, digest);
	return binary_to_hex(digest, sizeof(digest));
}

int dmarc_store_failure_report(struct dmarc_store *store,
			       const struct dmarc_failure_report *report,
			       const struct dmarc_store_report_info *info,
			       const char **error_r)
{
	static const char *sql =
		"INSERT INTO failure_reports (report_key, feedback_type,"
		" user_agent, version, arrival_date, arrival_time, source_ip,"
		" source_ip_key, original_envelope_id, original_mail_from,"
		" original_rcpt_to, reporting_mta, reported_domain, incidents,"
		" authentication_results, auth_failure, identity_alignment,"
		" delivery_result, dkim_domain, dkim_identity, dkim_selector,"
		" dkim_canonicalized_header, dkim_canonicalized_body, spf_dns,"
		" reported_uri, other_fields, orig_from, orig_to, orig_subject,"
		" orig_date, orig_message_id, archive_path, message_id,"
		" received) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
		"?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
		" ON CONFLICT (report_key) DO NOTHING";
	unsigned char key[16];
	sqlite3_stmt *stmt;
	int i = 1, ret;

	if (kinds_begin(store, error_r) < 0)
		return -1;
	if ((stmt = kinds_prepare(store, sql, error_r)) == NULL) {
		kinds_rollback(store);
		return -1;
	}
	bind_text(stmt, i++, failure_report_key(report));
	bind_text(stmt, i++, report->feedback_type);
	bind_text(stmt, i++, report->user_agent);
	bind_text(stmt, i++, report->version);
	bind_text(stmt, i++, report->arrival_date);
	if (report->arrival_time < 0)
		sqlite3_bind_null(stmt, i++);
	else
		sqlite3_bind_int64(stmt, i++, report->arrival_time);
	bind_text(stmt, i++, report->source_ip);
	if (report->source_ip != NULL &&
	    dmarc_store_ip_key(report->source_ip, key))
		sqlite3_bind_blob(stmt, i++, key, sizeof(key), SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(stmt, i++);
	bind_text(stmt, i++, report->original_envelope_id);
	bind_text(stmt, i++, report->original_mail_from);
	bind_text(stmt, i++, report->original_rcpt_to);
	bind_text(stmt, i++, report->reporting_mta);
	bind_text(stmt, i++, report->reported_domain);
	bind_text(stmt, i++, report->incidents);
	bind_text(stmt, i++, report->authentication_results);
	bind_text(stmt, i++, report->auth_failure);
	bind_text(stmt, i++, report->identity_alignment);
	bind_text(stmt, i++, report->delivery_result);
	bind_text(stmt, i++, report->dkim_domain);
	bind_text(stmt, i++, report->dkim_identity);
	bind_text(stmt, i++, report->dkim_selector);
	bind_text(stmt, i++, report->dkim_canonicalized_header);
	bind_text(stmt, i++, report->dkim_canonicalized_body);
	bind_text(stmt, i++, report->spf_dns);
	bind_text(stmt, i++, report->reported_uri);
	bind_text(stmt, i++, report->other_fields);
	bind_text(stmt, i++, report->orig_from);
	bind_text(stmt, i++, report->orig_to);
	bind_text(stmt, i++, report->orig_subject);
	bind_text(stmt, i++, report->orig_date);
	bind_text(stmt, i++, report->orig_message_id);
	bind_text(stmt, i++, info->archive_path);
	bind_text(stmt, i++, info->message_id);
	sqlite3_bind_int64(stmt, i++, info->received);
	ret = kinds_step(store, stmt, "storing the failure report", error_r);
	sqlite3_finalize(stmt);
	if (ret <= 0) {
		kinds_rollback(store);
		return ret;
	}
	if (kinds_commit(store, error_r) < 0) {
		kinds_rollback(store);
		return -1;
	}
	return 1;
}
