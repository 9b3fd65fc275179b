-- dovecot-dmarcreport database schema, version 1.
-- One SQLite file per mail user (setting dmarcreport_db). Embedded into the
-- binaries at build time; dmarc-store.c applies it to a new database and
-- refuses a database whose schema_version is newer than it knows.
--
-- Times are Unix seconds (UTC). Enumerated values are stored normalised:
-- lower-case words as in the RFCs ("pass", "quarantine", ...).

CREATE TABLE schema_version (
  version INTEGER NOT NULL
);

-- One row per aggregate report, with its policy_published.
-- A report is identified by (org_name, report_id, policy_domain): a resent
-- report hits the UNIQUE constraint and is recorded once.
CREATE TABLE reports (
  id INTEGER PRIMARY KEY,
  org_name TEXT NOT NULL,            -- '' when the reporter left it empty
  report_id TEXT NOT NULL,
  policy_domain TEXT NOT NULL,       -- lower-case
  date_begin INTEGER NOT NULL,
  date_end INTEGER NOT NULL,
  email TEXT,
  extra_contact_info TEXT,
  generator TEXT,                    -- RFC 9990
  errors TEXT,                       -- <error> elements, joined by newlines
  format_version TEXT NOT NULL,      -- '1.0' (RFC 7489) or the <version>
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
  UNIQUE (org_name, report_id, policy_domain)
);
CREATE INDEX reports_domain_begin ON reports (policy_domain, date_begin);
CREATE INDEX reports_begin ON reports (date_begin);

-- One row per <record>. source_ip_key is the address as 16 bytes (IPv4 as
-- ::ffff:a.b.c.d) so CIDR filters are a range scan.
CREATE TABLE records (
  id INTEGER PRIMARY KEY,
  report_ref INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
  source_ip TEXT NOT NULL,
  source_ip_key BLOB,
  count INTEGER NOT NULL,
  disposition TEXT,
  dkim TEXT,                         -- policy_evaluated
  spf TEXT,                          -- policy_evaluated
  dmarc_pass INTEGER NOT NULL,       -- 1 when dkim or spf is 'pass'
  reasons TEXT,                      -- 'type' or 'type: comment', newline-joined
  header_from TEXT,
  envelope_from TEXT,
  envelope_to TEXT
);
CREATE INDEX records_report ON records (report_ref);
CREATE INDEX records_source ON records (source_ip_key);

-- DKIM and SPF results of auth_results; several per record.
CREATE TABLE auth_results (
  record_ref INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
  type TEXT NOT NULL,                -- 'dkim' or 'spf'
  domain TEXT,
  selector TEXT,                     -- dkim
  scope TEXT,                        -- spf
  result TEXT,
  human_result TEXT                  -- dkim
);
CREATE INDEX auth_results_record ON auth_results (record_ref);

INSERT INTO schema_version (version) VALUES (1);
