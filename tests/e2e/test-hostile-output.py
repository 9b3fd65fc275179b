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
import sqlite3
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
    """Delivers one mail; returns the log since just before it, once the
    action's summary line for it is there."""
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(hostile_inputs.mail(name, attachments, **kwargs), user)
    check(dc.wait_log(rf"<{re.escape(name)}@hostile\.example>.*recorded DMARC reports", mark),
          f"{name}: no summary line; log: {dc.log_since(mark)[-1500:]}")
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


def test_no_crash(dc):
    bad = [l for l in dc.log_text().splitlines()
           if re.search(r"Panic:|Fatal:|killed with signal|dumped core", l)]
    check(not bad, f"crashes in the log: {bad}")


TESTS = [test_log_crlf_raw, test_log_crlf_entities, test_log_rejected_report,
         test_log_names, test_no_crash]

if __name__ == "__main__":
    dovetest.main(TESTS, lambda: dovetest.Dovecot(
        "hostile-output", users={u: {} for u in USERS}))
