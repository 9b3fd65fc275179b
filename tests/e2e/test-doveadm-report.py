#!/usr/bin/env python3
"""End-to-end: `doveadm dmarc report` with the freshly built doveadm plugin
against a private Dovecot. Known reports arrive over LMTP; the HTML file
and the digest mail's HTML part are rendered in headless Chromium: no
request attempted, no console error, the charts there (SVG in the file,
tables of bars in the mail) with as many bars and points as the data has
days. A PNG of each is kept in the build dir
(tests/report-artifacts/report-*.png). The digest is read back with `doveadm fetch`
and its MIME structure checked."""

import calendar
import email
import json
import os
import re
import subprocess
import sys
import time
from email import policy
from xml.sax.saxutils import escape

sys.dont_write_bytecode = True

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402
import dovetest  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal  # noqa: E402

DAY = 86400
D0 = calendar.timegm((2025, 3, 3, 0, 0, 0))  # a Monday
PERIOD = ["since", "2025-03-03", "until", "2025-03-07"]  # five days
# not below tests/e2e: EXTRA_DIST takes that directory whole into a tarball
ARTIFACTS = os.path.join(dovetest.TOP_BUILDDIR, "tests", "report-artifacts")
os.makedirs(ARTIFACTS, exist_ok=True)

HOSTILE_ORG = '<img src="http://evil.example/x.png"><script>alert(1)</script>'
# (domain, day, org, p, records: (ip, count, disposition, dkim, spf))
REPORTS = [
    ("a.example", 0, "big.example", "none",
     [("192.0.2.1", 50, "none", "pass", "pass"),
      ("198.51.100.7", 10, "none", "fail", "fail")]),
    ("a.example", 1, "big.example", "none",
     [("192.0.2.1", 40, "none", "pass", "fail"),
      ("198.51.100.7", 5, "none", "fail", "fail")]),
    ("a.example", 1, "small.example", "none",
     [("2001:db8::25", 7, "none", "fail", "pass")]),
    ("a.example", 2, "big.example", "none",
     [("192.0.2.1", 60, "none", "pass", "pass")]),
    # day 3: no report; day 4: the policy changed to quarantine
    ("a.example", 4, "big.example", "quarantine",
     [("192.0.2.1", 30, "none", "pass", "pass"),
      ("198.51.100.7", 20, "quarantine", "fail", "fail"),
      ("203.0.113.9", 3, "reject", "fail", "fail")]),
    # a reporter's name is the sender's text: shown, never loaded or run
    ("b.example", 1, HOSTILE_ORG, "reject",
     [("192.0.2.2", 8, "none", "pass", "pass")]),
]
# per domain: days with data
DAYS_WITH_DATA = {"a.example": 4, "b.example": 1}
# <rect>s of the messages chart: one per non-zero pass/fail value
MESSAGE_SEGMENTS = {"a.example": 2 + 2 + 1 + 2, "b.example": 1}
# <rect>s of the dispositions chart: non-zero none/quarantine/reject/other
DISPOSITION_SEGMENTS = {"a.example": 1 + 1 + 1 + 3, "b.example": 1}


def report_xml(n, domain, day, org, p, records):
    rows = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count>"
        f"<policy_evaluated><disposition>{disp}</disposition><dkim>{dkim}</dkim>"
        f"<spf>{spf}</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from></identifiers>"
        f"<auth_results><spf><domain>{domain}</domain><result>{spf}</result></spf>"
        "</auth_results></record>"
        for ip, count, disp, dkim, spf in records)
    begin = D0 + day * DAY
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feedback>'
        f"<report_metadata><org_name>{escape(org)}</org_name>"
        "<email>dmarc@reports.example</email>"
        f"<report_id>r{n}</report_id><date_range><begin>{begin}</begin>"
        f"<end>{begin + DAY - 1}</end></date_range></report_metadata>"
        f"<policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf>"
        f"<p>{p}</p><sp>none</sp><pct>100</pct></policy_published>"
        f"{rows}</feedback>\n").encode()


# SMTP TLS reports (RFC 8460) in the period: (domain, successful, failed)
TLS_REPORTS = [("a.example", 95, 5), ("b.example", 10, 0)]


def tls_json(n, domain, ok, failed):
    return json.dumps({
        "organization-name": "tls.example", "report-id": f"tls-{n}",
        "date-range": {"start-datetime": "2025-03-04T00:00:00Z",
                       "end-datetime": "2025-03-04T23:59:59Z"},
        "contact-info": "tls@tls.example",
        "policies": [{
            "policy": {"policy-type": "sts", "policy-domain": domain,
                       "policy-string": ["version: STSv1", "mode: enforce"],
                       "mx-host": ["mx." + domain]},
            "summary": {"total-successful-session-count": ok,
                        "total-failure-session-count": failed}}]}).encode()


# the --resolve cache (resolved_names) as doveadm dmarc query --resolve
# leaves it: a verified name, a source without one, a name expired
RESOLVED = [("192.0.2.1", "mail.a.example", DAY),
            ("198.51.100.7", "<b>mx</b>.sender.example", DAY),
            ("2001:db8::25", None, DAY),
            ("203.0.113.9", "gone.example", -DAY)]
# the names the report shows: cached and not expired
SOURCE_NAMES = {"192.0.2.1": "mail.a.example",
                "198.51.100.7": "<b>mx</b>.sender.example",
                "2001:db8::25": "", "203.0.113.9": ""}


def seed_resolved_names(dc):
    now = int(time.time())
    dc.write_db("rep", [("INSERT INTO resolved_names (ip, name, expires)"
                         " VALUES (?, ?, ?)", (ip, name, now + ttl))
                        for ip, name, ttl in RESOLVED])


def deliver_reports(dc):
    for n, (domain, day, org, p, records) in enumerate(REPORTS):
        xml = report_xml(n, domain, day, org, p, records)
        mail = reportmail.report_mail([(f"report!{domain}!{n}.xml", xml)],
                                      f"<report-{n}@e2e.test>")
        dc.lmtp_deliver_ok(mail, "rep")
    check_equal(dc.query("rep", "SELECT count(*) FROM reports"),
                [(len(REPORTS),)], "stored reports")
    for n, (domain, ok, failed) in enumerate(TLS_REPORTS):
        mail = reportmail.report_mail(
            [(f"tls-{n}.json", tls_json(n, domain, ok, failed),
              ("application", "tlsrpt+json"))], f"<tls-{n}@e2e.test>")
        dc.lmtp_deliver_ok(mail, "rep")
    check_equal(dc.query("rep", "SELECT count(*) FROM tls_reports"),
                [(len(TLS_REPORTS),)], "stored TLS reports")


def doveadm_ok(dc, args, user=None):
    r = dc.doveadm(args, user=user)
    check(r.returncode == 0, f"doveadm {' '.join(args)}: exit {r.returncode}: "
          f"{r.stderr.strip()}")
    return r


MAIL_COUNT_JS = """
(() => {
  const r = {};
  for (const s of document.querySelectorAll('section.domain')) {
    const d = s.querySelector('h2').textContent;
    const c = n => s.querySelector(`table.mailchart[data-chart="${n}"]`);
    const rows = n => c(n).querySelectorAll(':scope > tbody > tr.bar').length;
    const segs = n => [...c(n).querySelectorAll('td.seg')]
      .filter(e => e.getBoundingClientRect().width > 0).length;
    r[d] = {
      messages_rows: rows('messages'), messages_segs: segs('messages'),
      rate_rows: rows('rates'), rate_segs: segs('rates'),
      disp_rows: rows('dispositions'), disp_segs: segs('dispositions'),
      widest: Math.max(...[...c('messages').querySelectorAll('td.seg')]
        .map(e => e.getBoundingClientRect().width)),
    };
  }
  r._svgs = document.querySelectorAll('svg').length;
  r._scripts = document.querySelectorAll('script').length;
  r._external = [...document.querySelectorAll('[src],link[href],[srcset]')].length;
  const tls = document.querySelector('table.mailchart[data-chart="tls"]');
  r._tls_rows = tls ? tls.querySelectorAll(':scope > tbody > tr.bar').length : 0;
  return r;
})()
"""

COUNT_JS = """
(() => {
  const r = {};
  for (const s of document.querySelectorAll('section.domain')) {
    const d = s.querySelector('h2').textContent;
    const c = n => s.querySelector(`svg[data-chart="${n}"]`);
    r[d] = {
      messages_bars: c('messages').querySelectorAll('g.bar').length,
      messages_rects: c('messages').querySelectorAll('g.bar rect').length,
      rate_points: c('rates').querySelectorAll('.point').length,
      rate_lines: c('rates').querySelectorAll('path.line').length,
      disp_bars: c('dispositions').querySelectorAll('g.bar').length,
      disp_rects: c('dispositions').querySelectorAll('g.bar rect').length,
      tables: s.querySelectorAll('figure.chart table').length,
      charts: s.querySelectorAll('figure.chart svg').length,
      titled: s.querySelectorAll('figure.chart svg > title').length,
      verdict: s.querySelector('.verdict').textContent,
      reporters: [...s.querySelectorAll('table[data-table="reporters"] tbody td:first-child')].map(e => e.textContent),
      // [source, name] of each row of the two source tables
      sources: Object.fromEntries(['top-sources', 'failing-sources'].map(t =>
        [t, [...s.querySelectorAll(`table[data-table="${t}"] tbody tr`)].map(
          tr => [...tr.querySelectorAll('td')].slice(0, 2).map(e => e.textContent))])),
      policies: s.querySelectorAll('table[data-table="policy"] tbody tr').length,
      chart_width: c('messages').getBoundingClientRect().width,
    };
  }
  r._scripts = document.querySelectorAll('script').length;
  r._external = [...document.querySelectorAll('[src],link[href],[srcset]')].length;
  r._empty = [...document.querySelectorAll('.empty')].map(e => e.textContent);
  r._svgs = document.querySelectorAll('svg').length;
  const tls = document.querySelector('svg[data-chart="tls"]');
  r._tls_bars = tls ? tls.querySelectorAll('g.bar').length : 0;
  r._tls_rects = tls ? tls.querySelectorAll('g.bar rect').length : 0;
  return r;
})()
"""


def render(path, shot, js=COUNT_JS):
    """Loads the page in Chromium; returns the counts of js."""
    with browser.Chromium() as b:
        page = b.load("file://" + path, screenshot=shot)
        check_equal([u for u in page.requests if u != "file://" + path], [],
                    "requests attempted besides the page itself")
        check_equal(page.errors, [], "console errors")
        counts = b.evaluate(js)
    check(os.path.getsize(shot) > 10000, f"screenshot {shot} written")
    return counts


def check_counts(counts):
    check_equal(counts["_scripts"], 0, "script elements")
    check_equal(counts["_external"], 0, "elements loading a resource")
    check_equal(sorted(k for k in counts if not k.startswith("_")),
                ["a.example", "b.example"], "domain sections")
    for domain, days in DAYS_WITH_DATA.items():
        c = counts[domain]
        check_equal(c["charts"], 3, f"{domain}: charts")
        check_equal(c["tables"], 3, f"{domain}: a table beside each chart")
        check_equal(c["titled"], 3, f"{domain}: a title in each chart")
        check_equal(c["messages_bars"], 5, f"{domain}: one bar per day")
        check_equal(c["messages_rects"], MESSAGE_SEGMENTS[domain],
                    f"{domain}: pass/fail segments")
        check_equal(c["rate_lines"], 3, f"{domain}: DMARC, DKIM, SPF lines")
        check_equal(c["rate_points"], 3 * days, f"{domain}: a point per day with data")
        check_equal(c["disp_bars"], 5, f"{domain}: disposition bars")
        check_equal(c["disp_rects"], DISPOSITION_SEGMENTS[domain],
                    f"{domain}: disposition segments")
        check(c["chart_width"] > 300, f"{domain}: chart drawn ({c['chart_width']} px)")
    check_equal(counts["a.example"]["policies"], 2, "a.example: policy change shown")
    check("fix first: 198.51.100.7" in counts["a.example"]["verdict"],
          f"a.example verdict: {counts['a.example']['verdict']}")
    # TLS sessions per policy domain: a bar each, successful and failed
    check_equal(counts["_tls_bars"], len(TLS_REPORTS), "TLS bars")
    check_equal(counts["_tls_rects"], sum(1 + (f > 0) for _, _, f in TLS_REPORTS),
                "TLS segments")
    check("too little data" in counts["b.example"]["verdict"],
          f"b.example verdict: {counts['b.example']['verdict']}")
    check_equal(counts["b.example"]["reporters"], [HOSTILE_ORG],
                "the hostile reporter name shown as text")
    sources = counts["a.example"]["sources"]
    check_equal(dict(sources["top-sources"]), SOURCE_NAMES,
                "top sources: the cached names (as text), none when expired")
    check_equal(sources["failing-sources"],
                [["198.51.100.7", SOURCE_NAMES["198.51.100.7"]], ["203.0.113.9", ""]],
                "failing sources with their names")


def test_report_file(dc):
    deliver_reports(dc)
    seed_resolved_names(dc)
    path = os.path.join(dc.out_dir(), "report.html")
    doveadm_ok(dc, ["dmarc", "report", "--output", path] + PERIOD, user="rep")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    check(text.startswith("<!DOCTYPE html>"), "an HTML document")
    # the summary's verdict, word for word
    summary = json.loads(doveadm_ok(dc, ["-f", "json", "dmarc", "summary"] + PERIOD,
                                    user="rep").stdout)
    verdict_a = [row["verdict"] for row in summary if row["domain"] == "a.example"][0]
    check(verdict_a in text, f"summary verdict {verdict_a!r} in the page")
    counts = render(path, os.path.join(ARTIFACTS, "report-file.png"))
    check_counts(counts)
    # printed: one page per domain section at least (each starts a page)
    with browser.Chromium() as b:
        b.load("file://" + path)
        pages = b.print_pdf(os.path.join(ARTIFACTS, "report-file.pdf"))
        check(pages >= 3, f"printed on {pages} pages")
    # dark mode renders too
    with browser.Chromium(dark=True) as b:
        page = b.load("file://" + path,
                      screenshot=os.path.join(ARTIFACTS, "report-file-dark.png"))
        check_equal(page.errors, [], "console errors (dark)")
        bg = b.evaluate("getComputedStyle(document.body).backgroundColor")
        check(bg != "rgb(255, 255, 255)", f"dark background: {bg}")


def test_report_empty_period(dc):
    path = os.path.join(dc.out_dir(), "empty.html")
    doveadm_ok(dc, ["dmarc", "report", "--output", path, "since", "2020-01-01",
                    "until", "2020-01-31"], user="rep")
    counts = render(path, os.path.join(ARTIFACTS, "report-empty.png"))
    # the TLS section says so too (the database holds TLS reports)
    check_equal(counts["_svgs"], 0, "no charts for an empty period")
    check(len(counts["_empty"]) == 2 and "No TLS reports" in counts["_empty"][1],
          f"TLS: {counts['_empty']}")
    check(counts["_empty"] and "No DMARC aggregate reports" in counts["_empty"][0],
          f"says so plainly: {counts['_empty']}")


def test_report_digest_mail(dc):
    # -A: the user without a database gets no digest
    doveadm_ok(dc, ["dmarc", "report", "-A", "--mailbox", "DMARC digest"] + PERIOD)
    check_equal(len(dc.mail_files("rep", "DMARC digest")), 1, "digest saved")
    check_equal(dc.mail_files("nodb", "DMARC digest"), [], "no digest without reports")
    r = doveadm_ok(dc, ["fetch", "text", "mailbox", "DMARC digest", "all"],
                   user="rep")
    raw = re.sub(r"^text:\n", "", r.stdout, count=1)
    msg = email.message_from_string(raw, policy=policy.default)
    check_equal(msg.get_content_type(), "multipart/alternative", "top type")
    parts = [p.get_content_type() for p in msg.iter_parts()]
    check_equal(parts, ["text/plain", "text/html"], "parts in order of richness")
    check(msg["Subject"].startswith("DMARC report 2025-03-03 to 2025-03-07"),
          f"subject {msg['Subject']!r}")
    check(msg["Auto-Submitted"] == "auto-generated", "Auto-Submitted")
    text = msg.get_body(("plain",)).get_content()
    check("a.example: 225 messages" in text, f"text summary: {text[:300]!r}")
    check("198.51.100.7 <b>mx</b>.sender.example (35 of 35 failing)" in text,
          f"the failing source's name in the text: {text!r}")
    html = msg.get_body(("html",)).get_content()
    path = os.path.join(dc.out_dir(), "digest.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(html)
    # Gmail and Outlook drop inline SVG: the mail's charts are tables
    counts = render(path, os.path.join(ARTIFACTS, "report-digest.png"),
                    MAIL_COUNT_JS)
    check_equal(counts["_svgs"], 0, "no SVG in the mail")
    check_equal(counts["_tls_rows"], len(TLS_REPORTS), "TLS rows in the mail")
    check_equal(counts["_scripts"], 0, "script elements")
    check_equal(counts["_external"], 0, "elements loading a resource")
    for domain, days in DAYS_WITH_DATA.items():
        c = counts[domain]
        check_equal((c["messages_rows"], c["rate_rows"], c["disp_rows"]),
                    (5, 5, 5), f"{domain}: a row per day in each chart")
        check_equal(c["messages_segs"], MESSAGE_SEGMENTS[domain],
                    f"{domain}: pass/fail bars drawn")
        check_equal(c["rate_segs"], 3 * days, f"{domain}: a rate bar per day with data")
        check_equal(c["disp_segs"], DISPOSITION_SEGMENTS[domain],
                    f"{domain}: disposition bars drawn")
        check(c["widest"] > 100, f"{domain}: bars drawn wide ({c['widest']} px)")


def test_report_all_users_files(dc):
    """-A --output with %u: a file per user who has reports."""
    pattern = os.path.join(dc.out_dir(), "all-%u.html")
    doveadm_ok(dc, ["dmarc", "report", "-A", "--output", pattern] + PERIOD)
    check(os.path.exists(pattern.replace("%u", "rep")), "rep's page written")
    check(not os.path.exists(pattern.replace("%u", "nodb")),
          "no page for the user without a database")
    check_equal(oct(os.stat(pattern.replace("%u", "rep")).st_mode & 0o777), "0o600",
                "page mode")
    check_equal([f for f in os.listdir(dc.out_dir()) if ".tmp." in f], [],
                "no temp file left")


def test_report_usage(dc):
    r = dc.doveadm(["dmarc", "report"], user="rep")
    check_equal(r.returncode, 64, "neither --output nor --mailbox")
    check("--output" in r.stderr, f"says why: {r.stderr.strip()}")
    r = dc.doveadm(["dmarc", "report", "--output", "/x.html", "--mailbox", "X"],
                   user="rep")
    check_equal(r.returncode, 64, "both --output and --mailbox")
    # doveadm's own mailbox lookup: a name that is not UTF-8 is EX_DATAERR
    r = subprocess.run(dc.wrap([dovetest.DOVEADM, "-c", dc.conf, "dmarc", "report",
                                "--mailbox", b"Bad\xffName", "-u", "rep"]),
                       capture_output=True, timeout=120, env=dovetest.sanitizer_env())
    err = r.stderr.decode(errors="replace")
    check_equal(r.returncode, 65, f"--mailbox not UTF-8: {err.strip()}")
    check("not valid UTF-8" in err, f"says why: {err.strip()}")


def test_report_unwritable(dc):
    """The page is written as the mail user: a directory it may not write
    to is EX_CANTCREAT, with the reason, and leaves nothing behind."""
    d = dc.path("root-only")
    os.mkdir(d, 0o755)
    r = dc.doveadm(["dmarc", "report", "--output", os.path.join(d, "r.html")],
                   user="rep")
    check_equal(r.returncode, 73, "exit status")
    check("Permission denied" in r.stderr, f"says why: {r.stderr.strip()}")
    check_equal(os.listdir(d), [], "nothing written")


def main():
    dovetest.require_root()
    if not dovetest.have_doveadm_plugin():
        dovetest.skip("the doveadm plugin is not built")
    if browser.find() is None:
        dovetest.skip("chromium is not installed (tools/deps.sh chromium)")
    dovetest.main([test_report_file, test_report_empty_period,
                   test_report_digest_mail, test_report_all_users_files,
                   test_report_usage, test_report_unwritable],
                  lambda: dovetest.Dovecot("report",
                                           users={"rep": {}, "nodb": {}}))


if __name__ == "__main__":
    main()
