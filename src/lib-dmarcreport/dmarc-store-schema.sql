-- dovecot-dmarcreport database schema, version 2.
-- One SQLite file per mail user (setting dmarcreport_db). Embedded into the
-- binaries at build time; dmarc-store.c applies it to a new database and
-- refuses a database whose schema_version is newer than it knows. An older
-- database is upgraded in place by the steps in dmarc-store.c, which end
-- in this same schema.
--
-- Times are Unix seconds (UTC). Enumerated values are stored normalised:
-- lower-case words as in the RFCs ("pass", "quarantine", ...).

CREATE TABLE schema_version (
  version INTEGER NOT NULL
);

-- One row per aggregate report, with its policy_published.
-- A report is identified by (org_name, report_id, policy_domain), org_name
-- compared case-insensitively (ASCII, as SQLite's NOCASE): a resent
-- report is recorded once, the first one kept (dmarc-store.c looks it up
-- before inserting; the UNIQUE constraint is the exact-case backstop).
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
  errors TEXT,                       -- before version 2 only: see report_errors
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
  -- version 2:
  format TEXT,                       -- 'rfc7489' (no namespace), 'rfc9990'
                                     -- (dmarc-2.0 namespace), 'draft' (the
                                     -- dmarc.org draft namespace); NULL for
                                     -- reports stored before version 2
  version TEXT,                      -- <version> as given, NULL when absent
                                     -- (before version 2: format_version)
  extensions TEXT,                   -- <extensions> and unknown elements of
                                     -- the report level, as XML fragments
  content_digest TEXT,               -- SHA-256 of what is stored (hex), to
                                     -- tell a resent copy from a conflict
  UNIQUE (org_name, report_id, policy_domain)
);
CREATE INDEX reports_domain_begin ON reports (policy_domain, date_begin);
CREATE INDEX reports_begin ON reports (date_begin);
CREATE INDEX reports_key ON reports (report_id, policy_domain);

-- <error> elements of report_metadata, in order (seq from 0).
CREATE TABLE report_errors (
  report_ref INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  error TEXT NOT NULL
);
CREATE INDEX report_errors_report ON report_errors (report_ref);

-- One row per <record>. source_ip_key is the address as 16 bytes (IPv4 as
-- ::ffff:a.b.c.d) so CIDR filters are a range scan.
CREATE TABLE records (
  id INTEGER PRIMARY KEY,
  report_ref INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
  source_ip TEXT NOT NULL,           -- as reported when not valid
  source_ip_key BLOB,                -- NULL when not valid
  count INTEGER NOT NULL,
  disposition TEXT,
  dkim TEXT,                         -- policy_evaluated
  spf TEXT,                          -- policy_evaluated
  dmarc_pass INTEGER NOT NULL,       -- 1 when dkim or spf is 'pass'
  reasons TEXT,                      -- before version 2 only: see record_reasons
  header_from TEXT,
  envelope_from TEXT,
  envelope_to TEXT,
  -- version 2:
  source_ip_valid INTEGER NOT NULL DEFAULT 1, -- 0: not an IP address
  extensions TEXT                    -- the record's <extensions> and unknown
                                     -- elements, as XML fragments
);
CREATE INDEX records_report ON records (report_ref);
CREATE INDEX records_source ON records (source_ip_key);

-- policy_evaluated <reason>s of a record, in order (seq from 0).
CREATE TABLE record_reasons (
  record_ref INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,                -- '' when the reporter gave none
  comment TEXT
);
CREATE INDEX record_reasons_record ON record_reasons (record_ref);

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

-- version 2: names of source addresses looked up by doveadm dmarc
-- --resolve (PTR, verified by a forward lookup), kept until expires.
CREATE TABLE resolved_names (
  ip TEXT PRIMARY KEY,               -- as records.source_ip
  name TEXT,                         -- NULL: no verified name
  expires INTEGER NOT NULL
);

INSERT INTO schema_version (version) VALUES (2);
