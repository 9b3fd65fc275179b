#!/usr/bin/env python3
"""End-to-end: the extension allowed for admin scripts only
(sieve_global_extensions) and run from a sieve_before script, with the
archive turned off (dmarcreport_archive_dir empty)."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal  # noqa: E402

BEFORE = "{T}/before.sieve"


def msgid(tag, i):
    return f"<{tag}-{i}@e2e.test>"


def test_sieve_before_records(dc):
    """A sieve_before script records; no personal script needed."""
    dc.lmtp_deliver_ok(reportmail.report_mail(
        [("g.xml", reportmail.report_xml("glob-1", records=[("192.0.2.4", 4)]))],
        msgid("glob", 0)), "glob")
    check_equal(dc.query("glob", "SELECT report_id, record_count, message_count, "
                                 "archive_path FROM reports"),
                [("glob-1", 1, 4, None)], "reports")
    check_equal(len(dc.mail_files("glob")), 1, "mails in INBOX")


def test_archive_off(dc):
    """dmarcreport_archive_dir empty: nothing archived, nothing left in
    the home but the database and the mail."""
    check(not os.path.exists(os.path.join(dc.home("glob"), "dmarcreport", "archive")),
          "an archive dir was created")
    left = [f for f in os.listdir(os.path.join(dc.home("glob"), "dmarcreport"))
            if not f.startswith("reports.sqlite")]
    check_equal(left, [], "other files next to the database")


def test_personal_script_refused(dc):
    """A personal script requiring the extension does not compile; the
    mail still goes to INBOX and the sieve_before script still records."""
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(reportmail.report_mail(
        [("p.xml", reportmail.report_xml("personal-1"))], msgid("personal", 0)),
        "personal")
    check(dc.wait_log(r"personal.*Failed to compile script", mark),
          "no log line about the personal script")
    with open(os.path.join(dc.home("personal"), ".dovecot.sieve.log")) as f:
        user_log = f.read()
    check("restricted to global scripts" in user_log,
          f"the user's Sieve log does not say why: {user_log!r}")
    check_equal(len(dc.mail_files("personal")), 1, "mails in INBOX")
    check_equal(dc.query("personal", "SELECT report_id FROM reports"), [("personal-1",)],
                "reports (recorded by the sieve_before script)")


def test_no_crash(dc):
    dc.check_no_crash()


TESTS = [
    test_sieve_before_records,
    test_archive_off,
    test_personal_script_refused,
    test_no_crash,
]


class GlobalDovecot(dovetest.Dovecot):
    def write_config(self):
        super().write_config()
        # the admin script must exist, compiled, before deliveries
        before = self._expand(BEFORE)
        with open(before, "w") as f:
            f.write(dovetest.SCRIPT_DMARCREPORT)
        svbin = before[:-len(".sieve")] + ".svbin"
        r = self.sievec(before, svbin)
        if r.returncode != 0:
            raise RuntimeError(f"sievec {before}: {r.stderr.strip()}")
        os.chmod(svbin, 0o644)


if __name__ == "__main__":
    dovetest.main(TESTS, lambda: GlobalDovecot(
        "global", global_extensions=True,
        users={"glob": {}, "personal": {}},
        sieve_before=BEFORE, settings={"dmarcreport_archive_dir": ""},
        script=None, scripts={"personal": dovetest.SCRIPT_DMARCREPORT}))
