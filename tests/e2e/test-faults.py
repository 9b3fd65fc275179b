#!/usr/bin/env python3
"""Concurrency and faults, through real LMTP delivery to a private Dovecot:
8 parallel LMTP clients delivering 2,000 reports to one user; a database
that cannot be created, a full disk (a tiny tmpfs), a corrupt database
file, an unwritable archive dir, and an lmtp process killed in the middle
of a report's transaction. Every mail is delivered (the crash aside: the
client sees the connection drop and would retry), the cause is logged once,
and `doveadm dmarc import` recovers the reports afterwards."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import hostile_inputs  # noqa: E402
from dovetest import check, check_equal  # noqa: E402

GEN = os.path.join(dovetest.TOP_SRCDIR, "bench", "gen_reports.py")
CONCURRENT_REPORTS = 2000
CONCURRENT_CLIENTS = 8

USERS = {
    "conc": {},
    "rodb": {"dmarcreport_db": "{T}/rodb/reports.sqlite"},
    "full": {"dmarcreport_db": "{T}/full/reports.sqlite"},
    "corrupt": {},
    "noarch": {"dmarcreport_archive_dir": "{T}/noarch-archive"},
    "crash": {},
    "moved": {},
}


def report_mail(name, records=1):
    return hostile_inputs.mail(name, [(f"{name}.xml", "text/xml",
                                       hostile_inputs.report_xml(name, records=records))])


def reports(dc, user):
    return dc.query(user, "SELECT report_id, record_count FROM reports ORDER BY report_id")


def errors_since(dc, mark, user):
    return [l for l in dc.log_since(mark).splitlines()
            if f"lmtp({user})" in l and "Error:" in l]


def doveadm_ok(dc, args, user):
    r = dc.doveadm(args, user=user)
    check(r.returncode == 0, f"doveadm {' '.join(args)} -u {user}: exit "
                             f"{r.returncode}: {r.stderr.strip()}")
    return r


def test_concurrent_2000(dc):
    """8 LMTP clients, 2,000 reports, one database: exact totals, no
    'database is locked', no duplicates."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, GEN, tmp, "--count", str(CONCURRENT_REPORTS),
                        "--seed", "9990"], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(tmp, "manifest.json")) as f:
            manifest = json.load(f)
        mails = []
        for rep in manifest["reports"]:
            with open(os.path.join(tmp, rep["file"]), "rb") as f:
                mails.append(f.read())
    mark = dc.log_mark()
    failures = dc.lmtp_deliver_many(mails, "conc", workers=CONCURRENT_CLIENTS)
    check(not failures, f"{len(failures)} deliveries failed: {failures[:3]}")
    check_equal(len(dc.mail_files("conc")), CONCURRENT_REPORTS, "mails delivered")
    row = dc.query("conc", "SELECT count(*), sum(record_count), sum(message_count),"
                           " count(DISTINCT report_id) FROM reports")[0]
    check_equal(row, (CONCURRENT_REPORTS, manifest["total_records"],
                      manifest["total_messages"], CONCURRENT_REPORTS), "report totals")
    rec = dc.query("conc", "SELECT count(*), sum(count) FROM records")[0]
    check_equal(rec, (manifest["total_records"], manifest["total_messages"]),
                "record totals")
    locked = [l for l in dc.log_since(mark).splitlines() if "locked" in l or "busy" in l]
    check(not locked, f"lock errors: {locked[:3]}")
    check_equal(errors_since(dc, mark, "conc"), [], "errors")


def test_database_cannot_be_created(dc):
    d = dc.path("rodb")
    os.mkdir(d, 0o755)          # root's: the user cannot create the file
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(report_mail("rodb-1"), "rodb")
    check_equal(len(dc.mail_files("rodb")), 1, "mail delivered")
    errs = errors_since(dc, mark, "rodb")
    check(len(errs) == 1 and "Cannot open the report database" in errs[0],
          f"expected one 'Cannot open' error, got {errs}")
    check(any("rodb-1@hostile.example" in e for e in errs), f"no message-id in {errs}")
    # fixed by the admin: the archive has the report
    os.chown(d, dc.uid, dc.uid)
    doveadm_ok(dc, ["dmarc", "import", dc.archive_dir("rodb")], "rodb")
    check_equal(reports(dc, "rodb"), [("rodb-1", 1)], "recovered from the archive")


def test_disk_full(dc):
    d = dc.path("full")
    os.mkdir(d, 0o755)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700",
                        "dmarc-e2e-full", d], capture_output=True, text=True)
    if r.returncode != 0:
        dovetest.skip_test(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        os.chown(d, dc.uid, dc.uid)
        mark = dc.log_mark()
        dc.lmtp_deliver_ok(report_mail("full-1", records=3000), "full")
        check_equal(len(dc.mail_files("full")), 1, "mail delivered")
        errs = errors_since(dc, mark, "full")
        check(len(errs) == 1 and "full" in errs[0].lower() and
              "Storing the report failed" in errs[0],
              f"expected one 'Storing the report failed ... full' error, got {errs}")
        check(reports(dc, "full") in ([], None) or
              ("full-1", 3000) not in reports(dc, "full"), "a partial report was stored")
    finally:
        subprocess.run(["umount", d], check=False)
    os.chown(d, dc.uid, dc.uid)
    doveadm_ok(dc, ["dmarc", "import", dc.archive_dir("full")], "full")
    check_equal(reports(dc, "full"), [("full-1", 3000)], "recovered from the archive")


def test_corrupt_database(dc):
    db = dc.db_path("corrupt")
    os.makedirs(os.path.dirname(db), 0o700)
    with open(db, "wb") as f:
        f.write(b"this is not an SQLite database" * 100)
    subprocess.run(["chown", "-R", f"{dc.uid}:{dc.uid}", os.path.dirname(db)], check=True)
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(report_mail("corrupt-1"), "corrupt")
    check_equal(len(dc.mail_files("corrupt")), 1, "mail delivered")
    errs = errors_since(dc, mark, "corrupt")
    check(len(errs) == 1 and "not a database" in errs[0],
          f"expected one 'not a database' error, got {errs}")
    # the admin moves the broken file away and re-imports from the mailbox
    os.rename(db, db + ".broken")
    doveadm_ok(dc, ["dmarc", "import", "--mailbox", "INBOX"], "corrupt")
    check_equal(reports(dc, "corrupt"), [("corrupt-1", 1)], "recovered from the mailbox")


def test_archive_unwritable(dc):
    os.mkdir(dc.path("noarch-archive"), 0o755)   # root's
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(report_mail("noarch-1"), "noarch")
    check_equal(len(dc.mail_files("noarch")), 1, "mail delivered")
    errs = errors_since(dc, mark, "noarch")
    check(len([e for e in errs if "Archiving failed" in e]) == 1,
          f"expected one 'Archiving failed' error, got {errs}")
    check_equal(reports(dc, "noarch"), [("noarch-1", 1)], "stored without the archive")
    check_equal(dc.query("noarch", "SELECT archive_path FROM reports"), [(None,)],
                "no archive path")


def lmtp_pids(dc):
    pids = []
    for pid in dovetest.Dovecot._children(dc.master_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0].endswith(b"lmtp"):
                    pids.append(pid)
        except OSError:
            pass
    return pids


def try_deliver(dc, mail, user):
    try:
        dc.lmtp_deliver_ok(mail, user)
        return True
    except Exception:
        return False


def test_crash_mid_transaction(dc):
    """kill -9 of the delivering lmtp process while a 200,000-record report
    is being written: the database stays consistent, holds no part of the
    report, and takes the next report normally."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "huge.xml.gz")
        hostile_inputs.huge_report_gz(path, 200000)
        with open(path, "rb") as f:
            mail = hostile_inputs.mail("crash-huge", [("huge.xml.gz", "application/gzip",
                                                       f.read())])
    dc.lmtp_deliver_ok(report_mail("crash-before"), "crash")
    wal = dc.db_path("crash") + "-wal"
    result = {}

    def deliver():
        try:
            result["reply"] = dc.lmtp_deliver(mail, "crash")
        except Exception as e:  # the connection drops: expected
            result["error"] = str(e)

    t = threading.Thread(target=deliver)
    t.start()
    # mid-transaction: the WAL grows with the report's uncommitted pages
    in_tx = dovetest.wait_for(lambda: os.path.exists(wal) and
                              os.path.getsize(wal) > 2 * 1024 * 1024, 60, 0.01)
    killed = []
    if in_tx:
        for pid in lmtp_pids(dc):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    t.join(120)
    check(in_tx and killed, "the delivery was not caught mid-transaction")
    con_rows = dc.query("crash", "PRAGMA integrity_check")
    check_equal(con_rows, [("ok",)], "integrity_check")
    check_equal(reports(dc, "crash"), [("crash-before", 1)], "reports after the crash")
    check_equal(dc.query("crash", "SELECT count(*) FROM records")[0][0], 1,
                "records after the crash")
    # the master throttles a service whose children died: retry a while,
    # as an MTA would
    after = report_mail("crash-after")
    check(dovetest.wait_for(lambda: try_deliver(dc, after, "crash"), 30, 0.5),
          "no delivery possible after the crash")
    check_equal(reports(dc, "crash"), [("crash-after", 1), ("crash-before", 1)],
                "the next delivery after the crash")


def open_by_lmtp(dc, path):
    """lmtp processes that have path open."""
    found = []
    for pid in lmtp_pids(dc):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    found.append(pid)
                    break
            except OSError:
                pass
    return found


def test_database_moved_away(dc):
    """lmtp keeps the database open between deliveries. The file moved
    away right after a delivery loses nothing: it gets its reports when
    the keeping process notices or goes idle. The next delivery starts a
    new database, or, when another lmtp process still keeps the old one,
    logs why and leaves the report in the archive. Once idle, new
    deliveries start the new database."""
    db = dc.db_path("moved")
    dc.lmtp_deliver_ok(report_mail("moved-1"), "moved")
    check(open_by_lmtp(dc, db), "no lmtp process keeps the database open")
    os.rename(db, db + ".old")
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(report_mail("moved-2"), "moved")
    errs = errors_since(dc, mark, "moved")
    # the keeping process closes the moved file when idle
    check(dovetest.wait_for(lambda: not open_by_lmtp(dc, db + ".old"), 15),
          "the moved database is still open")
    with sqlite3.connect(f"file:{db}.old?mode=ro", uri=True) as old:
        check_equal(old.execute("SELECT report_id FROM reports").fetchall(),
                    [("moved-1",)], "the moved database")
        check_equal(old.execute("PRAGMA integrity_check").fetchall(), [("ok",)],
                    "the moved database's integrity")
    if errs:
        check(len(errs) == 1 and "-wal exists without its database" in errs[0],
              f"expected one error about the old -wal, got {errs}")
    dc.lmtp_deliver_ok(report_mail("moved-3"), "moved")
    doveadm_ok(dc, ["dmarc", "import", dc.archive_dir("moved")], "moved")
    check_equal(reports(dc, "moved"), [("moved-1", 1), ("moved-2", 1), ("moved-3", 1)],
                "the new database after importing the archive")


def test_no_other_crash(dc):
    """Nothing crashed but what test_crash_mid_transaction killed."""
    bad = [l for l in dc.log_text().splitlines()
           if re.search(r"Panic:|Fatal:|dumped core", l)
           and "killed with signal 9" not in l]
    check(not bad, f"crashes in the log: {bad}")


TESTS = [test_concurrent_2000, test_database_cannot_be_created, test_disk_full,
         test_corrupt_database, test_archive_unwritable, test_crash_mid_transaction,
         test_database_moved_away, test_no_other_crash]

if __name__ == "__main__":
    dovetest.main(TESTS, lambda: dovetest.Dovecot("faults", users=USERS))
