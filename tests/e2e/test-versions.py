#!/usr/bin/env python3
"""End-to-end: what an admin writes and runs that differs between Dovecot
2.3 and 2.4. The dmarcreport_* settings (plugin {} on 2.3, top-level
settings declared by the settings module on 2.4): %-variables, per-user
userdb values, and on 2.4 the checks doveconf makes when it reads the
config. doveadm's user selection (-u, -F) and output formats."""

import os
import sqlite3
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal, skip_test  # noqa: E402

# the user's name in a path: %u on 2.3, %{user} on 2.4
USER_VAR = "%{user}" if dovetest.IS_24 else "%u"


def deliver(dc, user, tag):
    dc.lmtp_deliver_ok(reportmail.report_mail(
        [("s.xml", reportmail.report_xml(f"{tag}-1"))], f"<{tag}-0@e2e.test>"), user)


def test_variables_in_paths(dc):
    """dmarcreport_db with the user's name in it: one database per user."""
    deliver(dc, "varuser", "var")
    path = dc.path("dbs", "varuser.sqlite")
    check(os.path.exists(path), f"{path} was not created")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check_equal(con.execute("SELECT report_id FROM reports").fetchall(),
                    [("var-1",)], "reports")
    finally:
        con.close()


def test_userdb_value(dc):
    """userdb_dmarcreport_db overrides the config for that user only."""
    deliver(dc, "own", "own")
    check(os.path.exists(dc.path("own", "own.sqlite")), "the userdb path was not used")
    check(not os.path.exists(dc.path("dbs", "own.sqlite")),
          "the config's path was used despite the userdb value")


def test_doveadm_reads_the_same(dc):
    """doveadm finds the database where delivery put it."""
    if not dovetest.have_doveadm_plugin():
        skip_test("the doveadm plugin is not built")
    r = dc.doveadm(["dmarc", "list"], user="varuser", fmt="tab")
    check(r.returncode == 0, f"doveadm dmarc list: {r.returncode}: {r.stderr.strip()}")
    check("var-1" in r.stdout, f"report not listed: {r.stdout!r}")


def test_doveadm_users_and_formats(dc):
    """-F reads the users from a file; -f table and flow print the same
    report; an unknown user is exit 67."""
    if not dovetest.have_doveadm_plugin():
        skip_test("the doveadm plugin is not built")
    users = dc.path("users.list")
    with open(users, "w") as f:
        f.write("varuser\nown\n")
    r = dc.doveadm(["dmarc", "list", "-F", users], fmt="table")
    check(r.returncode == 0, f"-F: exit {r.returncode}: {r.stderr.strip()}")
    check("var-1" in r.stdout and "own-1" in r.stdout, f"-F output: {r.stdout!r}")
    r = dc.doveadm(["dmarc", "summary"], user="varuser", fmt="flow")
    check(r.returncode == 0 and "Domain=example.com" in r.stdout,
          f"-f flow: exit {r.returncode}: {r.stdout!r} {r.stderr.strip()}")
    r = dc.doveadm(["dmarc", "list"], user="nosuchuser", fmt="json")
    check_equal(r.returncode, 67, f"exit for an unknown user ({r.stderr.strip()})")


def doveconf_with(dc, line):
    """doveconf -n on this config plus one line."""
    conf = dc.path("extra.conf")
    with open(dc.conf) as f, open(conf, "w") as out:
        out.write(f.read() + "\n" + line + "\n")
    return subprocess.run(dc.wrap([dovetest.DOVECONF, "-c", conf, "-n"]),
                          capture_output=True, text=True)


def test_doveconf_knows_the_settings(dc):
    """2.4: doveconf prints a setting with its default and the ones set,
    and rejects a misspelt name, a bad size and a count of 0."""
    if not dovetest.IS_24:
        skip_test("Dovecot 2.3 does not check plugin {} settings")
    r = dc.doveconf(["dmarcreport_max_records", "dmarcreport_max_decompressed_size"])
    check_equal(r.stdout.split("\n")[:2],
                ["dmarcreport_max_records = 1000000",
                 "dmarcreport_max_decompressed_size = 256 M"], "doveconf output")
    r = dc.doveconf(["-n"])
    check(f"dmarcreport_db = {dc.path('dbs')}/{USER_VAR}.sqlite" in r.stdout,
          f"doveconf -n does not show dmarcreport_db: {r.stdout[-500:]}")
    for line, expect in [("dmarcreport_max_recrods = 5", "Unknown setting: dmarcreport_max_recrods"),
                         ("dmarcreport_max_attachment_size = 20Q", "Invalid size: 20Q"),
                         ("dmarcreport_max_records = 0", "dmarcreport_max_records: not a positive number")]:
        r = doveconf_with(dc, line)
        check(r.returncode != 0 and expect in r.stderr,
              f"doveconf with '{line}': exit {r.returncode}, {r.stderr.strip()!r}")


TESTS = [
    test_variables_in_paths,
    test_userdb_value,
    test_doveadm_reads_the_same,
    test_doveadm_users_and_formats,
    test_doveconf_knows_the_settings,
]


class VersionsDovecot(dovetest.Dovecot):
    def start(self):
        super().start()
        # the dirs of the databases belong to the mail users' uid
        for d in ("dbs", "own"):
            os.mkdir(self.path(d), 0o700)
            os.chown(self.path(d), self.uid, self.uid)


if __name__ == "__main__":
    dovetest.main(TESTS, lambda: VersionsDovecot(
        "versions",
        users={"varuser": {}, "own": {"dmarcreport_db": "{T}/own/own.sqlite"}},
        settings={"dmarcreport_db": "{T}/dbs/" + USER_VAR + ".sqlite"}))
