#!/usr/bin/env python3
"""End-to-end: report mails delivered over LMTP to a private Dovecot whose
users run `dmarcreport;`. Checks the SQLite database against figures
computed here from the XML, the archive, the log and the mailbox.
One Dovecot serves all tests; each test has its own user."""

import datetime
import os
import re
import sys

sys.dont_write_bytecode = True

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal, skip_test  # noqa: E402

CORPUS = dovetest.CORPUS_DIR

# Files of aggregate-invalid/ the parser accepts, normalised (its documented
# choice: upper-case/PascalCase result words, gzip inside gzip); all others
# must be rejected with a log line.
INVALID_ACCEPTED = {
    "dmarc-report-converter--test.xml.gz.gz",
    "dmarc-report-viewer--invalid_casing.xml",
    "parsedmarc--report_with_upper_cased_pass.xml",
}
# Accepted too (its one record kept, the empty source_ip marked invalid,
# the empty disposition absent), but it carries the key of
# test.xml.gz.gz with other content: delivered after it, a conflicting
# duplicate.
INVALID_CONFLICTING = {
    "dmarc-report-converter--test_empty.xml",
}

USERS = ["agg", "eml", "inv", "dup", "multi", "trav", "conc", "charset"]
delivered = {u: 0 for u in USERS}


def deliver(dc, user, message):
    dc.lmtp_deliver_ok(message, user)
    delivered[user] += 1


def msgid(tag, i):
    return f"<{tag}-{i}@e2e.test>"


def stored_reports(dc, user):
    """{(org, report_id, domain): row} with the figures from both the
    reports row and its records."""
    rows = dc.query(user, """
        SELECT r.org_name, r.report_id, r.policy_domain, r.record_count,
               r.message_count, r.archive_path, r.message_id,
               (SELECT count(*) FROM records WHERE report_ref = r.id),
               (SELECT coalesce(sum(count), 0) FROM records WHERE report_ref = r.id)
        FROM reports r""")
    out = {}
    for org, rid, dom, rc, mc, ap, mid, nrec, nmsg in rows:
        check((org, rid, dom) not in out, f"report stored twice: {(org, rid, dom)}")
        out[(org, rid, dom)] = dict(record_count=rc, message_count=mc, archive_path=ap,
                                    message_id=mid, records=nrec, messages=nmsg)
    return out


def check_reports(dc, user, expected):
    """expected: {key: {records, messages}}."""
    got = stored_reports(dc, user)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    check(not missing and not extra,
          f"{user}: reports missing {missing}, unexpected {extra}")
    for key, exp in expected.items():
        row = got[key]
        for field, value in (("record_count", exp["records"]),
                             ("records", exp["records"]),
                             ("message_count", exp["messages"]),
                             ("messages", exp["messages"])):
            check_equal(row[field], value, f"{user} {key} {field}")
    total_records = dc.query(user, "SELECT count(*), coalesce(sum(count), 0) FROM records")[0]
    check_equal(total_records, (sum(e["records"] for e in expected.values()),
                                sum(e["messages"] for e in expected.values())),
                f"{user}: records in total (rows, sum of count)")
    return got


def check_mailbox(dc, user):
    check_equal(len(dc.all_mail_files(user)), delivered[user],
                f"{user}: mails in the maildir")


def need_corpus():
    if not dovetest.have_corpus():
        skip_test(f"corpus not found at {CORPUS}")


def test_corpus_aggregate(dc):
    """(a) every aggregate/ file in its own mail: one row per distinct
    report with the right figures; repeats logged as duplicates."""
    need_corpus()
    expected = {}
    repeats = []
    mark = dc.log_mark()
    for i, path in enumerate(reportmail.corpus_files(CORPUS, "aggregate")):
        data = open(path, "rb").read()
        name = os.path.basename(path)
        for facts in reportmail.attachment_facts(data):
            if facts["key"] in expected:
                repeats.append((i, name, facts["key"]))
            else:
                expected[facts["key"]] = facts
        deliver(dc, "agg", reportmail.report_mail([(name, data)], msgid("agg", i)))
    check_reports(dc, "agg", expected)
    for i, name, key in repeats:
        # a plain duplicate, or one with other content under the same key
        # (mail-auth--004.xml and the RFC 9990 sample share mail-auth--001's)
        lines = dc.wait_log(re.escape(f"msgid={msgid('agg', i)}") +
                            ".*(Duplicate, already stored|Conflicting duplicate)", mark)
        check(lines, f"{name}: no 'Duplicate' log line (same report as an "
                     f"earlier file: {key})")
    check_mailbox(dc, "agg")
    print(f"# aggregate: {delivered['agg']} mails, {len(expected)} distinct reports, "
          f"{len(repeats)} repeats, "
          f"{sum(e['records'] for e in expected.values())} records")


def email_expectations(path):
    import email
    msg = email.message_from_bytes(open(path, "rb").read())
    facts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_type() in ("text/plain", "text/html") and not part.get_filename():
            continue
        facts += reportmail.attachment_facts(part.get_payload(decode=True))
    return facts


def test_corpus_email(dc):
    """(b) every email/*.eml delivered as it is: one report each."""
    need_corpus()
    expected = {}
    files = [p for p in reportmail.corpus_files(CORPUS, "email") if p.endswith(".eml")]
    for i, path in enumerate(files):
        for facts in email_expectations(path):
            check(facts["key"] not in expected, f"corpus: repeated report {facts['key']}")
            expected[facts["key"]] = facts
        deliver(dc, "eml", open(path, "rb").read())
    check_equal(len(expected), len(files), "reports computed from the .eml files")
    check_reports(dc, "eml", expected)
    check_mailbox(dc, "eml")


def test_corpus_invalid(dc):
    """(c) aggregate-invalid/: the rejected ones give one log line naming
    the message and the attachment, with a reason; the accepted ones are
    stored; every mail is delivered."""
    need_corpus()
    mark = dc.log_mark()
    expected = {}
    rejected = []
    # The rejected ones first, then the accepted, then test_empty.xml,
    # which carries the key of test.xml.gz.gz with other content.
    files = sorted(reportmail.corpus_files(CORPUS, "aggregate-invalid"),
                   key=lambda p: (os.path.basename(p) in INVALID_CONFLICTING,
                                  os.path.basename(p) in INVALID_ACCEPTED))
    conflicting = []
    for i, path in enumerate(files):
        name = os.path.basename(path)
        data = open(path, "rb").read()
        if name in INVALID_ACCEPTED:
            for facts in reportmail.attachment_facts(data):
                expected[facts["key"]] = facts
        elif name in INVALID_CONFLICTING:
            conflicting.append((i, name))
        else:
            rejected.append((i, name))
        deliver(dc, "inv", reportmail.report_mail([(name, data)], msgid("inv", i)))
    check_reports(dc, "inv", expected)
    for i, name in conflicting:
        rx = (re.escape(f"msgid={msgid('inv', i)}") + ".*" + re.escape(f"'{name}'") +
              ".*Conflicting duplicate, not stored")
        check(len(dc.wait_log(rx, mark)) == 1, f"{name}: one conflicting duplicate line")
    for i, name in rejected:
        rx = (re.escape(f"msgid={msgid('inv', i)}") + ".*" +
              re.escape(f"'{name}'") + r".*Not stored: \S")
        lines = dc.wait_log(rx, mark)
        check(len(lines) == 1, f"{name}: expected one 'Not stored: <reason>' line, "
                               f"got {lines}")
        print(f"# {lines[0].split('Not stored: ', 1)[1]}")
    check_mailbox(dc, "inv")


def test_duplicate_delivery(dc):
    """(d) the same report delivered twice: stored once, the second is
    logged as a duplicate, both mails delivered."""
    xml = reportmail.report_xml("dup-1", records=[("192.0.2.7", 3), ("192.0.2.8", 4)])
    mark = dc.log_mark()
    for i in range(2):
        deliver(dc, "dup", reportmail.report_mail([("dup.xml", xml)], msgid("dup", i)))
    check_reports(dc, "dup", {("e2e.example", "dup-1", "example.com"):
                              {"records": 2, "messages": 7}})
    check(dc.wait_log(re.escape(f"msgid={msgid('dup', 1)}") + ".*Duplicate", mark),
          "no 'Duplicate' log line for the second delivery")
    check(not dc.wait_log(re.escape(f"msgid={msgid('dup', 0)}") + ".*Duplicate",
                          mark, timeout=0.5),
          "the first delivery was logged as a duplicate")
    check_mailbox(dc, "dup")


def test_multiple_attachments(dc):
    """(e) three report attachments in one mail: three reports; a zip with
    two XML files: two reports."""
    import gzip
    xml = [reportmail.report_xml(f"multi-{i}", records=[("192.0.2.1", i + 1)])
           for i in range(5)]
    deliver(dc, "multi", reportmail.report_mail([
        ("a.xml", xml[0]),
        ("b.xml.gz", gzip.compress(xml[1])),
        ("c.zip", reportmail.zip_bytes([("c.xml", xml[2])])),
    ], msgid("multi", 0)))
    deliver(dc, "multi", reportmail.report_mail([
        ("two.zip", reportmail.zip_bytes([("d.xml", xml[3]), ("e.xml", xml[4])])),
    ], msgid("multi", 1)))
    got = check_reports(dc, "multi", {
        ("e2e.example", f"multi-{i}", "example.com"): {"records": 1, "messages": i + 1}
        for i in range(5)})
    for i in range(5):
        mid = got[("e2e.example", f"multi-{i}", "example.com")]["message_id"] or ""
        want = f"multi-{0 if i < 3 else 1}@e2e.test"
        check(want in mid, f"multi-{i}: message_id {mid!r}, expected {want}")
    check_mailbox(dc, "multi")


def test_binary_with_charset(dc):
    """A gzip and a zip whose Content-Type carries a charset parameter:
    stored, and archived byte for byte, not converted as text."""
    import gzip
    from email import encoders
    from email.mime.base import MIMEBase
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText
    gz = gzip.compress(reportmail.report_xml("charset-gz"))
    zp = reportmail.zip_bytes([("z.xml", reportmail.report_xml("charset-zip"))])
    msg = MIMEMultipart()
    msg["From"] = "noreply-dmarc@reports.example"
    msg["Message-ID"] = msgid("charset", 0)
    msg.attach(MIMEText("report\n"))
    for name, data, subtype, charset in (("r.xml.gz", gz, "gzip", "utf-8"),
                                         ("r.zip", zp, "zip", "iso-8859-1")):
        part = MIMEBase("application", subtype, charset=charset)
        part.set_payload(data)
        encoders.encode_base64(part)
        part.add_header("Content-Disposition", "attachment", filename=name)
        msg.attach(part)
    deliver(dc, "charset", msg.as_bytes())
    check_reports(dc, "charset", {
        ("e2e.example", "charset-gz", "example.com"): {"records": 1, "messages": 1},
        ("e2e.example", "charset-zip", "example.com"): {"records": 1, "messages": 1}})
    archived = {}
    for root, _dirs, files in os.walk(dc.archive_dir("charset")):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                archived[f] = fh.read()
    check(archived.get("r.xml.gz") == gz, "r.xml.gz not archived byte for byte")
    check(archived.get("r.zip") == zp, "r.zip not archived byte for byte")
    check_mailbox(dc, "charset")


def test_archive_and_hostile_names(dc):
    """(f) attachment and zip entry names with ../ or absolute paths create
    nothing outside the archive; the archive holds the raw attachments
    under YYYY/MM/ and the rows point at them."""
    tag = f"{os.getpid()}"
    outside = [f"/tmp/e2e-evil-{tag}.xml", f"/etc/e2e-evil-{tag}.xml",
               f"/tmp/e2e-evil-entry-{tag}.xml", f"/tmp/e2e-evil-abs-{tag}.xml",
               os.path.join(dc.tmp, f"e2e-evil-{tag}.xml"),
               os.path.join(dc.home("trav"), f"e2e-evil-{tag}.xml")]
    for p in outside:
        check(not os.path.exists(p), f"{p} exists before the test")
    x = [reportmail.report_xml(f"trav-{i}") for i in range(6)]
    zipped = reportmail.zip_bytes([(f"../../../../../../tmp/e2e-evil-entry-{tag}.xml", x[3]),
                                   (f"/tmp/e2e-evil-abs-{tag}.xml", x[4])])
    attachments = [
        (f"../../../../../../tmp/e2e-evil-{tag}.xml", x[0]),
        (f"/etc/e2e-evil-{tag}.xml", x[1]),
        (f"..", x[2]),
        (f"evil.zip", zipped),
        (f"./.././e2e-evil-{tag}.xml", x[5]),
    ]
    before = dc.file_set()
    months = {datetime.datetime.now(datetime.timezone.utc).strftime("%Y/%m")}
    deliver(dc, "trav", reportmail.report_mail(attachments, msgid("trav", 0)))
    months.add(datetime.datetime.now(datetime.timezone.utc).strftime("%Y/%m"))
    new = dc.file_set() - before

    for p in outside:
        check(not os.path.exists(p), f"{p} was created")
    home = os.path.relpath(dc.home("trav"), dc.tmp)
    archive = os.path.relpath(dc.archive_dir("trav"), dc.tmp)
    db = os.path.relpath(dc.db_path("trav"), dc.tmp)
    allowed = (archive + "/", home + "/Maildir/", db, home + "/.dovecot.s",
               "log/", "run/", "state/")
    stray = sorted(f for f in new if not f.startswith(allowed))
    check(not stray, f"files created outside the archive: {stray}")

    archived = {}
    for f in new:
        if f.startswith(archive + "/"):
            rel = f[len(archive) + 1:]
            check(re.fullmatch(r"\d{4}/\d{2}/[^/.][^/]*", rel), f"archive path {rel!r}")
            check(rel[:7] in months, f"archive month of {rel!r}, expected {months}")
            archived[rel] = open(os.path.join(dc.tmp, f), "rb").read()
    for name, data in attachments:
        check(data in archived.values(), f"attachment {name!r}: raw bytes not in the archive "
                                         f"({sorted(archived)})")
    check_equal(len(archived), len(attachments), "archive files")

    got = check_reports(dc, "trav", {
        ("e2e.example", f"trav-{i}", "example.com"): {"records": 1, "messages": 1}
        for i in range(6)})
    for key, row in got.items():
        path = row["archive_path"]
        check(path in archived, f"{key}: archive_path {path!r} not an archived file")
        i = int(key[1].split("-")[1])
        holder = zipped if i in (3, 4) else x[i]
        check_equal(archived[path], holder, f"{key}: bytes at archive_path")
    check_mailbox(dc, "trav")


def test_concurrent_deliveries(dc):
    """Sixteen report mails over four LMTP connections at once, into one
    database: every report is stored, nothing is lost to locking."""
    n = 16
    mark = dc.log_mark()
    msgs = [reportmail.report_mail(
        [(f"c{i}.xml", reportmail.report_xml(f"conc-{i}", records=[("192.0.2.9", i + 1)]))],
        msgid("conc", i)) for i in range(n)]
    failures = dc.lmtp_deliver_many(msgs, "conc", workers=4)
    check(not failures, f"deliveries failed: {failures}")
    delivered["conc"] += n
    check_reports(dc, "conc", {
        ("e2e.example", f"conc-{i}", "example.com"): {"records": 1, "messages": i + 1}
        for i in range(n)})
    errors = [l for l in dc.log_since(mark).splitlines() if "conc" in l and "Error" in l]
    check(not errors, f"errors while delivering concurrently: {errors}")
    check_mailbox(dc, "conc")


def test_every_mail_delivered(dc):
    """(h) every mail delivered is in its maildir, and nothing crashed."""
    for user in USERS:
        check_mailbox(dc, user)
    dc.check_no_crash()


TESTS = [
    test_corpus_aggregate,
    test_corpus_email,
    test_corpus_invalid,
    test_duplicate_delivery,
    test_multiple_attachments,
    test_binary_with_charset,
    test_archive_and_hostile_names,
    test_concurrent_deliveries,
    test_every_mail_delivered,
]

if __name__ == "__main__":
    dovetest.main(TESTS, lambda: dovetest.Dovecot(
        "lmtp", users={u: {} for u in USERS}))
