#!/usr/bin/env python3
"""End-to-end: delivery through dovecot-lda, the example scripts of
sieve-scripts/, and what happens on errors (bad settings, a database that
cannot be written): the mail is always delivered and the log says why no
report was recorded."""

import os
import re
import stat
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal, skip_test  # noqa: E402

SCRIPTS_DIR = os.path.join(dovetest.TOP_SRCDIR, "sieve-scripts")
SCRIPT_ADDRESS = os.path.join(SCRIPTS_DIR, "dmarc-report-address.sieve")
SCRIPT_FILEINTO = os.path.join(SCRIPTS_DIR, "dmarc-file-into-folder.sieve")

READONLY_DIR = "{T}/readonly"


def read(path):
    with open(path) as f:
        return f.read()


def report_count(dc, user):
    rows = dc.query(user, "SELECT count(*) FROM reports")
    return rows[0][0] if rows else 0


def msgid(tag, i):
    return f"<{tag}-{i}@e2e.test>"


def test_lda_delivery(dc):
    """(g) dovecot-lda -d: reports stored as over LMTP, mails delivered."""
    msgs = [reportmail.report_mail(
        [("lda.xml", reportmail.report_xml(f"lda-{i}", records=[("192.0.2.3", 2)]))],
        msgid("lda", i)) for i in range(2)]
    if dovetest.have_corpus():
        emails = sorted(f for f in os.listdir(os.path.join(dovetest.CORPUS_DIR, "email"))
                        if f.endswith(".eml"))[:2]
        msgs += [open(os.path.join(dovetest.CORPUS_DIR, "email", f), "rb").read()
                 for f in emails]
    for m in msgs:
        r = dc.lda_deliver(m, "lda")
        check_equal(r.returncode, 0, f"dovecot-lda exit code ({r.stderr!r})")
    check_equal(report_count(dc, "lda"), len(msgs), "reports stored via dovecot-lda")
    check_equal(dc.query(user="lda", sql="SELECT record_count, message_count FROM reports "
                                         "WHERE report_id = 'lda-1'"), [(1, 2)],
                "figures of lda-1")
    check_equal(len(dc.all_mail_files("lda")), len(msgs), "mails in the maildir")
    # the same report again through LDA: a duplicate, the mail delivered
    mark = dc.log_mark()
    r = dc.lda_deliver(msgs[0].replace(b"lda-0@", b"lda-again@"), "lda")
    check_equal(r.returncode, 0, "dovecot-lda exit code")
    check(dc.wait_log(r"msgid=<lda-again@e2e\.test>.*Duplicate", mark), "no duplicate line")
    check_equal(report_count(dc, "lda"), len(msgs), "reports after a repeat")
    check_equal(len(dc.all_mail_files("lda")), len(msgs) + 1, "mails in the maildir")


def test_example_scripts_compile(dc):
    """sieve-scripts/*.sieve compile with the extension enabled."""
    for script in (SCRIPT_ADDRESS, SCRIPT_FILEINTO):
        out = dc.path(os.path.basename(script) + ".svbin")
        r = dc.sievec(script, out)
        check(r.returncode == 0 and os.path.exists(out),
              f"sievec {script}: rc {r.returncode}: {r.stderr.strip()}")


def test_fileinto_script(dc):
    """dmarc-file-into-folder.sieve: report recorded, mail in DMARC."""
    xml = reportmail.report_xml("filer-1")
    dc.lmtp_deliver_ok(reportmail.report_mail([("f.xml", xml)], msgid("filer", 0)), "filer")
    check_equal(report_count(dc, "filer"), 1, "reports")
    check_equal(len(dc.mail_files("filer", "DMARC")), 1, "mails in DMARC")
    check_equal(len(dc.mail_files("filer")), 0, "mails in INBOX")


def test_address_script(dc):
    """dmarc-report-address.sieve: only mail to dmarc@example.com is
    recorded; both are kept in INBOX."""
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(reportmail.report_mail(
        [("a.xml", reportmail.report_xml("addr-1"))], msgid("addr", 0),
        to="dmarc@example.com"), "addr")
    dc.lmtp_deliver_ok(reportmail.report_mail(
        [("b.xml", reportmail.report_xml("addr-2"))], msgid("addr", 1),
        to="someone@example.com"), "addr")
    check_equal(dc.query("addr", "SELECT report_id FROM reports"), [("addr-1",)],
                "reports recorded")
    check_equal(len(dc.mail_files("addr")), 2, "mails in INBOX")
    check(not dc.wait_log(r"msgid=<addr-1@e2e\.test>.*dmarcreport", mark, timeout=0.5),
          "the action ran for a mail not sent to the report address")


def test_action_twice(dc):
    """`dmarcreport; dmarcreport;` is one ingest, not a script error."""
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(reportmail.report_mail(
        [("t.xml", reportmail.report_xml("twice-1"))], msgid("twice", 0)), "twice")
    check_equal(report_count(dc, "twice"), 1, "reports")
    # one ingest: one line for the report, no "Duplicate" line after it
    lines = dc.wait_log(r"msgid=<twice-0@e2e\.test>.*dmarcreport", mark)
    check(len(lines) == 1 and "Stored report twice-1 " in lines[0],
          f"the action's lines: {lines}")
    # the action's prefix ("dmarcreport action: ") names it once
    check(re.search(r": attachment 't\.xml': Stored", lines[0]) and
          "dmarcreport: attachment" not in lines[0],
          f"the line's prefix: {lines[0]}")
    check(not dc.wait_log(r"twice.*(Error|failed)", mark, timeout=0.3), "errors logged")
    check_equal(len(dc.mail_files("twice")), 1, "mails in INBOX")


def test_sieve_test_lists_action(dc):
    """sieve-test without -e shows the action and its trace line, and
    records nothing (the work is done at commit)."""
    # sieve-test runs as the user and writes trace.svbin beside the script
    script = os.path.join(dc.home("trace"), "trace.sieve")
    with open(script, "w") as f:
        f.write(dovetest.SCRIPT_DMARCREPORT)
    os.chown(script, dc.uid, dc.uid)
    mail = dc.path("trace.eml")
    with open(mail, "wb") as f:
        f.write(reportmail.report_mail([("t.xml", reportmail.report_xml("trace-1"))],
                                       msgid("trace", 0)))
    os.chmod(mail, 0o644)
    r = subprocess.run(["sieve-test", "-c", dc.conf, "-u", "trace",
                        "-t", "-", "-T", "level=actions", script, mail],
                       capture_output=True, text=True, timeout=60)
    check_equal(r.returncode, 0, f"sieve-test exit code ({r.stderr.strip()})")
    check("record the DMARC and SMTP TLS reports of this message" in r.stdout,
          f"action not listed: {r.stdout!r}")
    check("dmarcreport action" in r.stdout, f"no trace line: {r.stdout!r}")
    check_equal(report_count(dc, "trace"), 0, "reports recorded by a dry run")


def test_bad_settings(dc):
    """An invalid setting: one error line, no report, the mail delivered
    as the rest of the Sieve script says."""
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(reportmail.report_mail(
        [("s.xml", reportmail.report_xml("badset-1"))], msgid("badset", 0)), "badset")
    lines = dc.wait_log(r"badset.*Error: .*msgid=<badset-0@e2e\.test>.*"
                        r"invalid settings.*dmarcreport_max_records", mark)
    check_equal(len(lines), 1, "error lines")
    check(not os.path.exists(dc.db_path("badset")), "a database was created")
    # the rest of the script still ran: its fileinto, no implicit keep
    check_equal(len(dc.mail_files("badset", "DMARC")), 1, "mails in DMARC")
    check_equal(len(dc.mail_files("badset")), 0, "mails in INBOX")


def test_storage_failure(dc):
    """A database that cannot be created: the mail is delivered, the log
    says the report is in the archive for `doveadm dmarc import`, and the
    archive has the raw attachment."""
    xml = reportmail.report_xml("nodb-1", records=[("192.0.2.5", 5)])
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(reportmail.report_mail([("n.xml", xml)], msgid("nodb", 0)), "nodb")
    lines = dc.wait_log(r"nodb.*Error: .*msgid=<nodb-0@e2e\.test>.*"
                        r"doveadm dmarc import", mark)
    check(lines, "no error line pointing to `doveadm dmarc import`")
    check_equal(len(dc.mail_files("nodb")), 1, "mails in INBOX")
    archived = []
    for root, _, files in os.walk(dc.archive_dir("nodb")):
        archived += [open(os.path.join(root, f), "rb").read() for f in files]
    check_equal(archived, [xml], "archive contents")
    check(not os.path.exists(dc.db_path("nodb")), "the database exists after all")

    # recovery: make the database writable, import the archive
    if not dovetest.have_doveadm_plugin():
        skip_test("doveadm plugin not built: recovery not tested")
    ro = dc._expand(READONLY_DIR)
    os.chown(ro, dc.uid, dc.uid)
    r = dc.doveadm(["dmarc", "import", dc.archive_dir("nodb")], user="nodb")
    if "Unknown command" in r.stderr or r.returncode == 64:
        skip_test(f"`doveadm dmarc import` not available: {r.stderr.strip()}")
    check_equal(r.returncode, 0, f"doveadm dmarc import ({r.stderr.strip()})")
    check_equal(dc.query("nodb", "SELECT report_id, record_count, message_count "
                                 "FROM reports"), [("nodb-1", 1, 5)],
                "reports after the import")


def test_no_crash(dc):
    dc.check_no_crash()


TESTS = [
    test_lda_delivery,
    test_example_scripts_compile,
    test_fileinto_script,
    test_address_script,
    test_action_twice,
    test_sieve_test_lists_action,
    test_bad_settings,
    test_storage_failure,
    test_no_crash,
]


class LdaDovecot(dovetest.Dovecot):
    def start(self):
        # the directory of nodb's database exists, but is root's 0755:
        # the user cannot create the database there
        super().start()
        ro = self._expand(READONLY_DIR)
        os.mkdir(ro)
        os.chmod(ro, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)


if __name__ == "__main__":
    dovetest.main(TESTS, lambda: LdaDovecot(
        "lda",
        users={
            "lda": {}, "filer": {}, "addr": {}, "twice": {}, "trace": {},
            "badset": {"dmarcreport_max_records": "many"},
            "nodb": {"dmarcreport_db": READONLY_DIR + "/nodb.sqlite"},
        },
        scripts={
            "filer": read(SCRIPT_FILEINTO),
            "badset": read(SCRIPT_FILEINTO),
            "addr": read(SCRIPT_ADDRESS),
            "twice": 'require "vnd.dovecot.dmarcreport";\ndmarcreport;\ndmarcreport;\n',
        }))
