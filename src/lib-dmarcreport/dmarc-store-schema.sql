-- dovecot-dmarcreport database schema, version 3.
-- One SQLite file per mail user (setting dmarcreport_db). Embedded into the
-- binaries at build time; dmarc-store.c applies it to a new database and
-- refuses a database whose schema_version is newer than it knows. An older
-- database is upgraded in place by the steps in dmarc-store.c, which end
-- in this same schema.
--
-- Every statement is IF NOT EXISTS: applied to a version 1 database, this
-- same text is the step to version 2 (it adds the TLS and failure report
-- tables and those of version 3; version 1's tables are unchanged). The
-- step to version 3 adds the columns (dmarc-store.c).
-- schema_version keeps one row per version reached; the highest counts.
--
-- Times are Unix seconds (UTC). Enumerated values are stored normalised:
-- lower-case words as in the RFCs ("pass", "quarantine", ...).

CREATE TABLE IF NOT EXISTS schema_version (
  version INTEGER NOT NULL
);

-- One row per DMARC aggregate report, with its policy_published.
-- A report is identified by (org_name, report_id, policy_domain), org_name
-- compared case-insensitively (ASCII, as SQLite's NOCASE): a resent
-- report is recorded once, the first one kept (dmarc-store.c looks it up
-- before inserting; the UNIQUE constraint is the exact-case backstop).
CREATE TABLE IF NOT EXISTS reports (
  id INTEGER PRIMARY KEY,
  org_name TEXT NOT NULL,            -- '' when the reporter left it empty
  report_id TEXT NOT NULL,
  policy_domain TEXT NOT NULL,       -- lower-case
  date_begin INTEGER NOT NULL,
  date_end INTEGER NOT NULL,
  email TEXT,
  extra_contact_info TEXT,
  generator TEXT,                    -- RFC 9990
  errors TEXT,                       -- before version 3 only: see report_errors
  format_version TEXT NOT NULL,      -- <version>, '1.0' when absent (old
                                     -- releases read it; see version)
  policy_adkim TEXT,
  policy_aspf TEXT,
  policy_p TEXT,
  policy_sp TEXT,
  policy_np TEXT,                    -- RFC 9990
  policy_pct INTEGER,                -- RFC 7489; NULL when absent
  policy_fo TEXT,
  policy_testing TEXT,               -- RFC 9990: 'y' or 'n'
  policy_discovery_method TEXT,      -- RFC 9990: 'psl' or 'treewalk'
  record_count INTEGER NOT NULL DEFAULT 0,
  message_count INTEGER NOT NULL DEFAULT 0,  -- sum of record counts
  pass_count INTEGER NOT NULL DEFAULT 0,     -- messages passing DMARC
  archive_path TEXT,                 -- relative to dmarcreport_archive_dir
  message_id TEXT,                   -- of the mail that carried it
  received INTEGER NOT NULL,         -- when it was stored
  -- version 3:
  format TEXT,                       -- 'rfc7489' (no namespace), 'rfc9990'
                                     -- (dmarc-2.0 namespace), 'draft' (the
                                     -- dmarc.org draft namespace); NULL for
                                     -- reports stored before version 3
  version TEXT,                      -- <version> as given, NULL when absent
                                     -- (before version 3: format_version)
  extensions TEXT,                   -- <extensions> and unknown elements of
                                     -- the report level, as XML fragments
  content_digest TEXT,               -- CRC-32 and Adler-32 of what is stored
                                     -- (16 hex digits), to tell a resent
                                     -- copy from a conflict
  UNIQUE (org_name, report_id, policy_domain)
);
CREATE INDEX IF NOT EXISTS reports_domain_begin ON reports (policy_domain, date_begin);
CREATE INDEX IF NOT EXISTS reports_begin ON reports (date_begin);
CREATE INDEX IF NOT EXISTS reports_key ON reports (report_id, policy_domain);

-- Version 3: <error> elements of report_metadata, in order (seq from 0).
CREATE TABLE IF NOT EXISTS report_errors (
  report_ref INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  error TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS report_errors_report ON report_errors (report_ref);

-- One row per <record>. source_ip_key is the address as 16 bytes (IPv4 as
-- ::ffff:a.b.c.d) so CIDR filters are a range scan.
CREATE TABLE IF NOT EXISTS records (
  id INTEGER PRIMARY KEY,
  report_ref INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
  source_ip TEXT NOT NULL,           -- as reported when not valid
  source_ip_key BLOB,                -- NULL when not valid
  count INTEGER NOT NULL,
  disposition TEXT,
  dkim TEXT,                         -- policy_evaluated
  spf TEXT,                          -- policy_evaluated
  dmarc_pass INTEGER NOT NULL,       -- 1 when dkim or spf is 'pass'
  reasons TEXT,                      -- before version 3 only: see record_reasons
  header_from TEXT,
  envelope_from TEXT,
  envelope_to TEXT,
  -- version 3:
  source_ip_valid INTEGER NOT NULL DEFAULT 1, -- 0: not an IP address
  extensions TEXT                    -- the record's <extensions> and unknown
                                     -- elements, as XML fragments
);
CREATE INDEX IF NOT EXISTS records_report ON records (report_ref);
CREATE INDEX IF NOT EXISTS records_source ON records (source_ip_key);

-- policy_evaluated <reason>s of a record, in order (seq from 0).
-- Version 3.
CREATE TABLE IF NOT EXISTS record_reasons (
  record_ref INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,                -- '' when the reporter gave none
  comment TEXT
);
CREATE INDEX IF NOT EXISTS record_reasons_record ON record_reasons (record_ref);

-- DKIM and SPF results of auth_results; several per record.
CREATE TABLE IF NOT EXISTS auth_results (
  record_ref INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
  type TEXT NOT NULL,                -- 'dkim' or 'spf'
  domain TEXT,
  selector TEXT,                     -- dkim
  scope TEXT,                        -- spf
  result TEXT,
  human_result TEXT                  -- dkim
);
CREATE INDEX IF NOT EXISTS auth_results_record ON auth_results (record_ref);

-- Version 2: SMTP TLS reports (RFC 8460). One row per report, identified
-- by (org_name, report_id): a resent report is recorded once.
CREATE TABLE IF NOT EXISTS tls_reports (
  id INTEGER PRIMARY KEY,
  org_name TEXT NOT NULL,            -- '' when the reporter left it out
  report_id TEXT NOT NULL,
  date_begin INTEGER NOT NULL,
  date_end INTEGER NOT NULL,
  contact_info TEXT,
  policy_count INTEGER NOT NULL DEFAULT 0,
  success_count INTEGER NOT NULL DEFAULT 0,  -- sums over its policies
  failure_count INTEGER NOT NULL DEFAULT 0,
  archive_path TEXT,                 -- relative to dmarcreport_archive_dir
  message_id TEXT,                   -- of the mail that carried it
  received INTEGER NOT NULL,
  UNIQUE (org_name, report_id)
);
CREATE INDEX IF NOT EXISTS tls_reports_begin ON tls_reports (date_begin);

-- One row per policy of a TLS report.
CREATE TABLE IF NOT EXISTS tls_policies (
  id INTEGER PRIMARY KEY,
  report_ref INTEGER NOT NULL REFERENCES tls_reports (id) ON DELETE CASCADE,
  policy_type TEXT,                  -- lower-case: 'sts', 'tlsa', ...
  policy_strings TEXT,               -- newline-joined
  policy_domain TEXT NOT NULL,       -- lower-case, no trailing dot; ''
  mx_hosts TEXT,                     -- newline-joined
  success_count INTEGER NOT NULL,
  failure_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tls_policies_report ON tls_policies (report_ref);
CREATE INDEX IF NOT EXISTS tls_policies_domain ON tls_policies (policy_domain);

-- failure-details entries of a policy.
CREATE TABLE IF NOT EXISTS tls_failures (
  policy_ref INTEGER NOT NULL REFERENCES tls_policies (id) ON DELETE CASCADE,
  result_type TEXT,                  -- lower-case, unknown ones kept
  sending_mta_ip TEXT,
  receiving_mx_hostname TEXT,
  receiving_mx_helo TEXT,
  receiving_ip TEXT,
  failed_session_count INTEGER NOT NULL,
  additional_information TEXT,
  failure_reason_code TEXT
);
CREATE INDEX IF NOT EXISTS tls_failures_policy ON tls_failures (policy_ref);

-- Version 2: DMARC failure reports (RFC 6591 ARF). One row per report;
-- report_key (SHA-256 of its feedback-report part and the reported
-- message's Message-ID) records a resent report once. Fields that may
-- repeat are newline-joined.
CREATE TABLE IF NOT EXISTS failure_reports (
  id INTEGER PRIMARY KEY,
  report_key TEXT NOT NULL UNIQUE,
  feedback_type TEXT NOT NULL,
  user_agent TEXT,
  version TEXT,
  arrival_date TEXT,                 -- as sent
  arrival_time INTEGER,              -- parsed, NULL when it did not parse
  source_ip TEXT,
  source_ip_key BLOB,                -- as records.source_ip_key
  original_envelope_id TEXT,
  original_mail_from TEXT,
  original_rcpt_to TEXT,
  reporting_mta TEXT,
  reported_domain TEXT,              -- lower-case
  incidents TEXT,
  authentication_results TEXT,
  auth_failure TEXT,
  identity_alignment TEXT,
  delivery_result TEXT,
  dkim_domain TEXT,
  dkim_identity TEXT,
  dkim_selector TEXT,
  dkim_canonicalized_header TEXT,
  dkim_canonicalized_body TEXT,
  spf_dns TEXT,
  reported_uri TEXT,
  other_fields TEXT,                 -- 'Name: value' per line
  orig_from TEXT,                    -- headers of the reported message
  orig_to TEXT,
  orig_subject TEXT,
  orig_date TEXT,
  orig_message_id TEXT,
  archive_path TEXT,
  message_id TEXT,
  received INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS failure_reports_domain ON failure_reports (reported_domain);
CREATE INDEX IF NOT EXISTS failure_reports_received ON failure_reports (received);

-- Version 3: names of source addresses looked up by doveadm dmarc
-- --resolve (PTR, verified by a forward lookup), kept until expires.
CREATE TABLE IF NOT EXISTS resolved_names (
  ip TEXT PRIMARY KEY,               -- as records.source_ip
  name TEXT,                         -- NULL: no verified name
  expires INTEGER NOT NULL
);

INSERT INTO schema_version (version) VALUES (3);
