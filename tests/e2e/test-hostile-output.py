#!/usr/bin/env python3
"""What a hostile report can do to the server log and to doveadm's output
(issue 9, items 2, 3 and 12's query parts).

  * CR/LF in report_id, org_name, file and zip entry names, raw or as
    &#10;/&#13;, must not start a line of its own in the server log;
  * whatever the database holds (control characters from a database an
    older version wrote), `doveadm -f tab|table|flow dmarc ...` prints one
    line per row and one cell per value;
  * counts that add up past INT64_MAX must not make list, summary or
    query --group-by fail: the sums saturate;
  * filters at the extremes: until 9223372036854775807, disposition pass
    (RFC 9990), IPv4-mapped IPv6 sources.

Old-database cases write the rows directly into a database the plugin
created, as a database from an older version (or hand-edited) would be."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import hostile_inputs  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal, skip_test  # noqa: E402

INT64_MAX = 9223372036854775807
# inject: log injection; olddb: control characters written into the
# database; big: counts of INT64_MAX; rfc9990: filters at the extremes
USERS = ["inject", "olddb", "big", "rfc9990"]
FORMATS = ("tab", "table", "flow")


def need_doveadm():
    if not dovetest.have_doveadm_plugin():
        skip_test("doveadm plugin not built")


def xml(report_id, org, records=(("192.0.2.1", "1", "none"),),
        domain="example.com", begin="1700000000"):
    rows = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count>"
        f"<policy_evaluated><disposition>{disp}</disposition><dkim>pass</dkim>"
        "<spf>fail</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from></identifiers>"
        f"<auth_results><dkim><domain>{domain}</domain><result>pass</result></dkim>"
        "</auth_results></record>"
        for ip, count, disp in records)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<feedback>'
            f"<report_metadata><org_name>{org}</org_name>"
            f"<email>dmarc@reporter.example</email><report_id>{report_id}</report_id>"
            f"<date_range><begin>{begin}</begin><end>1700086399</end></date_range>"
            "</report_metadata>"
            f"<policy_published><domain>{domain}</domain><p>none</p></policy_published>"
            f"{rows}</feedback>\n").encode()


def deliver(dc, user, name, attachments, **kwargs):
    """Delivers one mail; returns the log since just before it (which
    lmtp_deliver() waited for), with a line of the action for it."""
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(hostile_inputs.mail(name, attachments, **kwargs), user)
    check(dc.wait_log(rf"<{re.escape(name)}@hostile\.example>: dmarcreport action: ", mark),
          f"{name}: no line of the action; log: {dc.log_since(mark)[-1500:]}")
    return dc.log_since(mark)


def doveadm_ok(dc, args, user, fmt):
    r = dc.doveadm(args, user=user, fmt=fmt)
    check(r.returncode == 0,
          f"doveadm -f {fmt} {' '.join(args)} -u {user}: exit {r.returncode}: "
          f"{r.stderr.strip()}")
    return r.stdout


# --- the log -----------------------------------------------------------------

FORGED = "FORGED-LOG-LINE"


def check_no_forged_line(log, name):
    """Each line holding the injected text is the plugin's own line about
    that mail (Pigeonhole's msgid=<...> prefix), not one of its own."""
    lines = [l for l in log.splitlines() if FORGED in l]
    bad = [l for l in lines if f"<{name}@hostile.example>" not in l]
    check(not bad, f"{name}: forged log lines: {bad}")
    return lines


def test_log_crlf_raw(dc):
    """Raw CR/LF in report_id and org_name: the 'Stored' line stays one."""
    data = xml(f"inj-raw\nlmtp(inject): Error: {FORGED}-1",
               f"org-raw\r\nlmtp(inject): Error: {FORGED}-2")
    log = deliver(dc, "inject", "inj-raw", [("raw.xml", "text/xml", data)])
    lines = check_no_forged_line(log, "inj-raw")
    check(any("Stored report inj-raw" in l for l in lines), f"no Stored line: {log}")


def test_log_crlf_entities(dc):
    """&#10; and &#13; (libxml2 turns them into the characters)."""
    data = xml(f"inj-ent&#10;lmtp(inject): Error: {FORGED}-3",
               f"org-ent&#13;&#10;lmtp(inject): Error: {FORGED}-4")
    log = deliver(dc, "inject", "inj-ent", [("ent.xml", "text/xml", data)])
    lines = check_no_forged_line(log, "inj-ent")
    check(any("Stored report inj-ent" in l for l in lines), f"no Stored line: {log}")


def test_log_rejected_report(dc):
    """A report rejected after its header: the warning names it (report_id
    with a LF) and quotes the bad value (with a LF)."""
    data = xml(f"inj-bad&#10;{FORGED}-5", "org-bad",
               records=(("192.0.2.1", f"1&#10;lmtp(inject): Error: {FORGED}-6", "none"),))
    log = deliver(dc, "inject", "inj-bad", [("bad.xml", "text/xml", data)])
    check_no_forged_line(log, "inj-bad")
    check(re.search(r"Warning: .*Not stored", log), f"no warning: {log}")


def test_log_names(dc):
    """A file name (RFC 2231, %0A) and a zip entry name with a LF."""
    zipped = reportmail.zip_bytes([(f"entry\nlmtp(inject): Error: {FORGED}-7.xml",
                                    b"not a report")])
    log = deliver(dc, "inject", "inj-names",
                  [("x.xml", "text/xml", b"not a report either"),
                   ("r.zip", "application/zip", zipped)],
                  raw_filename_params=f"filename*=utf-8''name%0D%0A{FORGED}-8.xml")
    lines = check_no_forged_line(log, "inj-names")
    check(any(f"{FORGED}-7" in l for l in lines), f"zip entry not named: {log}")
    check(any(f"{FORGED}-8" in l for l in lines), f"file name not named: {log}")


# --- doveadm output ----------------------------------------------------------

def check_one_line_per_row(dc, user, args, rows, columns):
    """tab: a title line and one line per row with `columns` cells; table:
    a title line and one line per row; flow: one line per row. No control
    character but the separators; json: the same rows."""
    for fmt in FORMATS:
        out = doveadm_ok(dc, args, user, fmt)
        lines = out.rstrip("\n").split("\n") if out.strip() else []
        expected = rows + (0 if fmt == "flow" else 1)
        check_equal(len(lines), expected, f"-f {fmt} {' '.join(args)} lines: {out!r}")
        for line in lines:
            check(not re.search(r"[\x00-\x08\x0a-\x1f\x7f\x80-\x9f]", line),
                  f"-f {fmt} {' '.join(args)}: control character in {line!r}")
            if fmt == "tab":
                check_equal(len(line.split("\t")), columns,
                            f"-f tab {' '.join(args)} cells in {line!r}")
    out = json.loads(doveadm_ok(dc, args, user, "json") or "[]")
    check_equal(len(out), rows, f"-f json {' '.join(args)} rows")


def report_count(dc, user):
    return dc.query(user, "SELECT count(*) FROM reports")[0][0]


def test_tab_output_of_delivered(dc):
    """The reports delivered above: one row each, whatever they held."""
    need_doveadm()
    n = report_count(dc, "inject")
    check(n >= 2, f"{n} reports stored for inject")
    check_one_line_per_row(dc, "inject", ["dmarc", "list"], n, 12)
    check_one_line_per_row(dc, "inject", ["dmarc", "query"], n, 14)
    check_one_line_per_row(dc, "inject", ["dmarc", "query", "--group-by", "org"], n, 5)


def test_control_characters_in_database(dc):
    """A database written before values were cleaned at parse time: every
    text column the commands print holds CR, LF, TAB, ESC, DEL or a C1."""
    need_doveadm()
    deliver(dc, "olddb", "old-1", [("old.xml", "text/xml", xml("old-1", "old.example"))])
    deliver(dc, "olddb", "old-2", [("old2.xml", "text/xml",
                                    xml("old-2", "old.example", domain="example.org"))])
    bad = "\r\nFORGED\trow\x1b[2J\x7f\u009b"
    dc.write_db("olddb", [
        ("UPDATE reports SET org_name = org_name || ?, report_id = report_id || ?,"
         " policy_domain = policy_domain || ?, policy_p = ?, policy_np = ?,"
         " archive_path = archive_path || ?", (bad, bad, bad, "none" + bad, bad, bad)),
        ("UPDATE records SET source_ip = source_ip || ?, disposition = ?,"
         " header_from = header_from || ?, envelope_from = ?", (bad, "none" + bad, bad, bad)),
        ("UPDATE auth_results SET domain = domain || ?, result = ?", (bad, "pass" + bad)),
    ])
    check_one_line_per_row(dc, "olddb", ["dmarc", "list"], 2, 12)
    check_one_line_per_row(dc, "olddb", ["dmarc", "query"], 2, 14)
    for group in ("source", "domain", "org", "header_from", "disposition", "day"):
        rows = 2 if group in ("domain", "header_from") else 1
        check_one_line_per_row(dc, "olddb", ["dmarc", "query", "--group-by", group],
                               rows, 5)
    check_one_line_per_row(dc, "olddb", ["dmarc", "summary"], 2, 9)
    # the escaped form, and json holds the same text as tab
    out = doveadm_ok(dc, ["dmarc", "list"], "olddb", "tab")
    check("old-1\\r\\nFORGED\\trow\\x1b[2J\\x7f\\xc2\\x9b" in out, f"escaped form: {out!r}")
    rows = json.loads(doveadm_ok(dc, ["dmarc", "list"], "olddb", "json"))
    check(rows[0]["report_id"].startswith("old-1\\r\\nFORGED"), f"json: {rows}")


# --- sums past INT64_MAX -----------------------------------------------------

def test_sums_saturate(dc):
    """Two reports of two records, every count INT64_MAX: list, summary and
    every --group-by still answer, with the sums saturated at INT64_MAX."""
    need_doveadm()
    recs = (("192.0.2.1", "1", "none"), ("192.0.2.2", "1", "reject"))
    deliver(dc, "big", "big-1", [("b1.xml", "text/xml", xml("big-1", "big.example",
                                                           records=recs))])
    deliver(dc, "big", "big-2", [("b2.xml", "text/xml", xml("big-2", "big.example",
                                                           records=recs))])
    dc.write_db("big", [("UPDATE records SET count = ?", (INT64_MAX,))])

    rows = json.loads(doveadm_ok(dc, ["dmarc", "list"], "big", "json"))
    check_equal([(r["report_id"], r["messages"], r["dmarc_pass"]) for r in rows],
                [("big-1", INT64_MAX, INT64_MAX), ("big-2", INT64_MAX, INT64_MAX)],
                "list figures")
    rows = json.loads(doveadm_ok(dc, ["dmarc", "summary"], "big", "json"))
    check_equal(len(rows), 1, "summary rows")
    check_equal((rows[0]["reports"], rows[0]["messages"], rows[0]["pass_rate"]),
                (2, INT64_MAX, 100.0), "summary figures")
    for group in ("source", "domain", "org", "header_from", "day", "disposition"):
        rows = json.loads(doveadm_ok(dc, ["dmarc", "query", "--group-by", group],
                                     "big", "json"))
        check(rows and all(r["messages"] == INT64_MAX and r["fail"] == 0
                           for r in rows), f"--group-by {group}: {rows}")
    # a failing source: the summary names it, with the saturated figure
    dc.write_db("big", [("UPDATE records SET dkim = 'fail', dmarc_pass = 0"
                          " WHERE source_ip = '192.0.2.2'", ())])
    rows = json.loads(doveadm_ok(dc, ["dmarc", "summary"], "big", "json"))
    check_equal(rows[0]["top_failing"], f"192.0.2.2 ({INT64_MAX})", "top failing")
    check_equal(rows[0]["pass_rate"], 50.0, "pass rate of saturated sums")


# --- filters at the extremes -------------------------------------------------

def test_filters_at_extremes(dc):
    """until INT64_MAX, disposition pass (RFC 9990), IPv4-mapped sources."""
    need_doveadm()
    recs = (("192.0.2.1", "3", "pass"), ("2001:db8::1", "2", "none"))
    deliver(dc, "rfc9990", "r9990", [("r.xml", "text/xml", xml("r9990", "new.example",
                                                              records=recs))])

    def ids(args):
        rows = json.loads(doveadm_ok(dc, ["dmarc", "list"] + args, "rfc9990", "json"))
        return [r["report_id"] for r in rows]

    def sources(args):
        rows = json.loads(doveadm_ok(dc, ["dmarc", "query"] + args, "rfc9990", "json"))
        return [(r["source_ip"], r["count"]) for r in rows]

    check_equal(ids(["until", str(INT64_MAX)]), ["r9990"], f"until {INT64_MAX}")
    check_equal(ids(["since", "0", "until", "1700000000"]), ["r9990"], "until its begin")
    check_equal(ids(["until", "1699999999"]), [], "until before its begin")
    check_equal(ids(["since", str(INT64_MAX)]), [], f"since {INT64_MAX}")
    check_equal(sources(["disposition", "pass"]), [("192.0.2.1", 3)], "disposition pass")
    check_equal(sources(["disposition", "PASS"]), [("192.0.2.1", 3)], "disposition PASS")
    for src in ("::ffff:192.0.2.1", "::ffff:192.0.2.0/120", "[::ffff:192.0.2.1]",
                "192.0.2.1", "192.0.2.0/24"):
        check_equal(sources(["source", src]), [("192.0.2.1", 3)], f"source {src}")
    r = dc.doveadm(["dmarc", "query", "disposition", "bogus"], user="rfc9990", fmt="json")
    check_equal(r.returncode, 64, "an unknown disposition is a usage error")
    check("pass" in r.stderr, f"the error lists the values: {r.stderr!r}")
    # expire at the extremes: nothing ended before 0, all before INT64_MAX
    out = json.loads(doveadm_ok(dc, ["dmarc", "expire", "--before", "0"], "rfc9990", "json"))
    check_equal(out, [{"reports": 0, "archive_files": 0}], "expire --before 0")
    out = json.loads(doveadm_ok(dc, ["dmarc", "expire", "--before", str(INT64_MAX)],
                                "rfc9990", "json"))
    check_equal(out[0]["reports"], 1, f"expire --before {INT64_MAX}")


def test_no_crash(dc):
    dc.check_no_crash()


TESTS = [test_log_crlf_raw, test_log_crlf_entities, test_log_rejected_report,
         test_log_names, test_tab_output_of_delivered,
         test_control_characters_in_database, test_sums_saturate,
         test_filters_at_extremes, test_no_crash]

if __name__ == "__main__":
    dovetest.main(TESTS, lambda: dovetest.Dovecot(
        "hostile-output", users={u: {} for u in USERS}))
