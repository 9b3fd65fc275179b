#!/usr/bin/env python3
"""End-to-end: the exit code of every `doveadm dmarc` command over several
users (-F, in the file's order) follows doveadm's rule: EX_TEMPFAIL (75)
wins over every other code and is never overwritten by a later user's
error; otherwise the first error's code stays. The users fail in three
ways: a database that every statement fails on (75), a database of a newer
schema (65), an invalid setting (78). And import --mailbox looks the
mailbox up as doveadm's own commands do."""

import json
import os
import sqlite3
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal  # noqa: E402

EX_DATAERR = 65  # DOVEADM_EX_NOTPOSSIBLE: a newer schema
EX_TEMPFAIL = 75  # the database failed
EX_CONFIG = 78  # invalid settings
USERS = {"temp": {}, "newer": {}, "badset": {"dmarcreport_max_records": "many"},
         "mbox": {}, "has": {}, "lacks": {}, "nodb": {}}
EX_NOTFOUND = 68  # DOVEADM_EX_NOTFOUND
# each user's own exit code; import, which writes, takes a database it
# cannot open for a failed database (as a full disk), so that a later run
# tries again
CODES = {"temp": EX_TEMPFAIL, "newer": EX_DATAERR, "badset": EX_CONFIG}
IMPORT_CODES = dict(CODES, newer=EX_TEMPFAIL)
ORDERS = [["temp", "newer"], ["newer", "temp"], ["badset", "newer"],
          ["newer", "badset"]]


def expected_code(codes):
    """doveadm's rule (doveadm_mail_failed_error()): EX_TEMPFAIL over all
    others, else the first error's code."""
    return EX_TEMPFAIL if EX_TEMPFAIL in codes else codes[0]


def make_db(dc, user, statements):
    path = dc.db_path(user)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(statements)
    con.commit()
    con.close()
    for p in (os.path.dirname(path), path):
        os.chown(p, dc.uid, dc.uid)


def commands(dc):
    report = os.path.join(dc.out_dir(), "r.xml")
    with open(report, "wb") as f:
        f.write(reportmail.report_xml("exit-1"))
    os.chown(report, dc.uid, dc.uid)
    return [["dmarc", "list"], ["dmarc", "show", "1"], ["dmarc", "query"],
            ["dmarc", "summary"], ["dmarc", "tls"], ["dmarc", "failures"],
            ["dmarc", "report", "--output", os.path.join(dc.out_dir(), "%u.html")],
            ["dmarc", "import", report], ["dmarc", "expire", "--before", "2000-01-01"]]


def test_worst_code_wins(dc):
    schema = open(os.path.join(dovetest.TOP_SRCDIR, "src", "lib-dmarcreport",
                               "dmarc-store-schema.sql")).read()
    # ours by its schema_version, but without a table to read or write
    make_db(dc, "temp", "CREATE TABLE schema_version (version INTEGER NOT NULL);"
            "INSERT INTO schema_version VALUES (3);")
    make_db(dc, "newer", schema + "UPDATE schema_version SET version = 999;")
    runs = 0
    for cmd in commands(dc):
        for users in ORDERS:
            codes = IMPORT_CODES if cmd[1] == "import" else CODES
            expected = expected_code([codes[u] for u in users])
            listfile = dc.path("users-" + "-".join(users))
            with open(listfile, "w") as f:
                f.write("".join(u + "\n" for u in users))
            r = dc.doveadm(cmd + ["-F", listfile])
            check_equal(r.returncode, expected,
                        f"doveadm {' '.join(cmd)} -F {users}: {r.stderr.strip()}")
            for user in users:
                check(user in r.stderr, f"{' '.join(cmd)}: no error names {user}: "
                      f"{r.stderr.strip()}")
            runs += 1
    print(f"# {runs} runs, each with its exit code")


def test_import_mailbox_lookup(dc):
    """import --mailbox finds the mailbox as doveadm's own commands do
    (doveadm_mailbox_find()): a name that is not UTF-8 is EX_DATAERR with
    doveadm's words; a missing one is EX_NOTFOUND; one that exists but has
    no mail imports nothing."""
    r = subprocess.run(dc.wrap([dovetest.DOVEADM, "-c", dc.conf, "dmarc", "import",
                                "--mailbox", b"Bad\xffName", "-u", "mbox"]),
                       capture_output=True, timeout=120, env=dovetest.sanitizer_env())
    err = r.stderr.decode(errors="replace")
    check_equal(r.returncode, EX_DATAERR, f"not UTF-8: {err.strip()}")
    check("not valid UTF-8" in err, f"says why: {err.strip()}")
    r = dc.doveadm(["dmarc", "import", "--mailbox", "NoSuchBox"], user="mbox")
    check_equal(r.returncode, EX_NOTFOUND, f"missing: {r.stderr.strip()}")
    check("NoSuchBox" in r.stderr, f"names it: {r.stderr.strip()}")
    r = dc.doveadm(["dmarc", "import", "--mailbox", "INBOX"], user="mbox", fmt="json")
    check_equal(r.returncode, 0, f"empty INBOX: {r.stderr.strip()}")
    check_equal(json.loads(r.stdout)[0]["inputs"], 0, "inputs of an empty INBOX")


def test_show_not_found_across_users(dc):
    """show <org> <report_id> over several users is "not found" (68) only
    when no user has the report: a user whose database lacks it, or who
    has no database, does not make a found report an error, nor does a
    user without a database hide that nobody has it. An error of a user
    still wins, and an unknown user keeps doveadm's own code."""
    def import_report(user, report_id):
        path = os.path.join(dc.out_dir(), f"{report_id}.xml")
        with open(path, "wb") as f:
            f.write(reportmail.report_xml(report_id, org="show.example"))
        os.chown(path, dc.uid, dc.uid)
        r = dc.doveadm(["dmarc", "import", path], user=user)
        check_equal(r.returncode, 0, f"import for {user}: {r.stderr.strip()}")

    import_report("has", "show-wanted")
    import_report("lacks", "show-other")
    if not os.path.exists(dc.db_path("temp")):  # test_worst_code_wins made it
        make_db(dc, "temp", "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                "INSERT INTO schema_version VALUES (3);")
    cases = [(["lacks", "has"], 0), (["has", "lacks"], 0), (["nodb", "has"], 0),
             (["has", "nodb"], 0), (["nodb"], EX_NOTFOUND),
             (["nodb", "lacks"], EX_NOTFOUND), (["lacks", "nodb"], EX_NOTFOUND),
             (["lacks", "temp"], EX_TEMPFAIL), (["has", "temp"], EX_TEMPFAIL)]
    for users, expected in cases:
        listfile = dc.path("show-users-" + "-".join(users))
        with open(listfile, "w") as f:
            f.write("".join(u + "\n" for u in users))
        for fmt in ("json", None):
            r = dc.doveadm(["dmarc", "show", "-F", listfile, "SHOW.example",
                            "show-wanted"], fmt=fmt)
            check_equal(r.returncode, expected,
                        f"show -F {users} (-f {fmt}): {r.stderr.strip()}")
            if fmt == "json":
                shown = json.loads(r.stdout)
                check_equal([s["username"] for s in shown],
                            ["has"] if "has" in users else [],
                            f"show -F {users}: whose reports")
    for user, expected in (("has", 0), ("lacks", EX_NOTFOUND), ("nodb", EX_NOTFOUND)):
        r = dc.doveadm(["dmarc", "show", "show.example", "show-wanted"], user=user)
        check_equal(r.returncode, expected, f"show -u {user}: {r.stderr.strip()}")
    check(not os.path.exists(dc.db_path("nodb")), "show created a database")
    r = dc.doveadm(["dmarc", "show", "show.example", "show-wanted"], user="nosuchuser")
    check_equal(r.returncode, 67, f"show -u of an unknown user: {r.stderr.strip()}")


if __name__ == "__main__":
    dovetest.require_root()
    if not dovetest.have_doveadm_plugin():
        dovetest.skip("the doveadm plugin is not built")
    dovetest.main([test_worst_code_wins, test_import_mailbox_lookup,
                   test_show_not_found_across_users],
                  lambda: dovetest.Dovecot("exitcodes", users=USERS))
