#!/usr/bin/env python3
"""Concurrency and faults, through real LMTP delivery to a private Dovecot:
8 parallel LMTP clients delivering 2,000 reports to one user; a delivery
during a long import; a database locked past dmarcreport_lock_timeout, or
not writable (the report is queued as pending and stored later); a
database that cannot be created, a full disk (a tiny tmpfs), a corrupt
database file, an unwritable or full archive dir, symlinks planted in the
archive, and an lmtp process killed in the middle of a report's
transaction. Every mail is delivered (the crash aside: the client sees the
connection drop and would retry), the cause is logged once, and the
report is stored later (pending) or `doveadm dmarc import` recovers it."""

import gzip
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
    "nocache": {"dmarcreport_store_cache": "no"},
    "busyimp": {},
    "pending": {"dmarcreport_lock_timeout": "1s"},
    "roperm": {},
    "archfull": {"dmarcreport_archive_dir": "{T}/archfull"},
    "archlink": {},
}


def report_mail(name, records=1):
    return hostile_inputs.mail(name, [(f"{name}.xml", "text/xml",
                                       hostile_inputs.report_xml(name, records=records))])


def reports(dc, user):
    return dc.query(user, "SELECT report_id, record_count FROM reports ORDER BY report_id")


def errors_since(dc, mark, user, expect=1):
    """The user's lmtp error lines since mark, once there are at least
    expect of them (waited for, bounded): the log process may write a
    line after the delivery's reply."""
    if expect > 0:
        dc.wait_log(rf"lmtp\({re.escape(user)}\).*Error:", mark, count=expect)
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
    check_equal(errors_since(dc, mark, "conc", expect=0), [], "errors")


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
    # room for a new database (schema 3 has some 25 tables and indexes)
    # but not for the report's 3000 records
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700",
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
              "Storing the report failed" in errs[0] and "queued in" in errs[0],
              f"expected one 'Storing the report failed (queued ...) ... full' error, "
              f"got {errs}")
        check_equal(len(pending_entries(dc, "full")), 1, "pending entries")
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


def test_archive_disk_full(dc):
    """The archive is a copy: with its disk full, the report is stored
    anyway (without an archive path), one line says so, and no cut-off
    copy is left."""
    d = dc.path("archfull")
    os.mkdir(d, 0o755)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700",
                        "dmarc-e2e-archfull", d], capture_output=True, text=True)
    if r.returncode != 0:
        dovetest.skip_test(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        os.chown(d, dc.uid, dc.uid)
        # ~300 KB of XML as a plain attachment: more than the tmpfs holds
        xml = hostile_inputs.report_xml("archfull-1", records=600)
        mail = hostile_inputs.mail("archfull-1", [("archfull-1.xml", "text/xml", xml)])
        mark = dc.log_mark()
        dc.lmtp_deliver_ok(mail, "archfull")
        check_equal(len(dc.mail_files("archfull")), 1, "mail delivered")
        errs = errors_since(dc, mark, "archfull")
        check(len(errs) == 1 and "Archiving failed, processing it anyway" in errs[0],
              f"expected one 'Archiving failed' error, got {errs}")
        check_equal(dc.query("archfull", "SELECT report_id, record_count, archive_path"
                                         " FROM reports"), [("archfull-1", 600, None)],
                    "stored without the archive")
        left = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs]
        check_equal(left, [], "files left in the full archive")
    finally:
        subprocess.run(["umount", d], check=False)


def test_archive_symlinks_not_followed(dc):
    """A symlink planted as the archive's YYYY directory: delivery writes
    nothing through it (the report is stored without an archive copy), and
    expire --archive deletes nothing through it."""
    user = "archlink"
    archive = dc.archive_dir(user)
    outside = dc.path("archlink-outside")
    os.mkdir(outside, 0o700)
    os.chown(outside, dc.uid, dc.uid)
    dc.lmtp_deliver_ok(report_mail("archlink-1"), user)
    rows = dc.query(user, "SELECT archive_path FROM reports")
    check(len(rows) == 1 and rows[0][0], f"archived: {rows}")
    year = rows[0][0].split("/")[0]
    # the year's directory moves outside, a link takes its place
    os.rename(os.path.join(archive, year), os.path.join(outside, year))
    os.symlink(os.path.join(outside, year), os.path.join(archive, year))
    victim = os.path.join(outside, rows[0][0])
    check(os.path.isfile(victim), "the archived file is now outside")

    mark = dc.log_mark()
    dc.lmtp_deliver_ok(report_mail("archlink-2"), user)
    errs = errors_since(dc, mark, user)
    check(len(errs) == 1 and "Archiving failed, processing it anyway" in errs[0]
          and "symlink is not followed" in errs[0], f"expected one error, got {errs}")
    check_equal(sorted(os.listdir(os.path.dirname(victim))), [os.path.basename(victim)],
                "files written through the link")
    check_equal(dc.query(user, "SELECT report_id, archive_path FROM reports"
                               " WHERE report_id = 'archlink-2'"), [("archlink-2", None)],
                "stored without the archive")

    r = dc.doveadm(["dmarc", "expire", "--before", "2100-01-01", "--archive"], user=user)
    check_equal(r.returncode, 0, f"expire: {r.stderr!r}")
    check("Not removed" in r.stderr, f"expire does not say what it left: {r.stderr!r}")
    check(os.path.isfile(victim), "expire --archive deleted through the link")
    check_equal(dc.query(user, "SELECT count(*) FROM reports"), [(0,)], "reports expired")


def doveadm_start(dc, args, user):
    """doveadm in the background, as dc.doveadm() runs it."""
    cmd = [dovetest.DOVEADM, "-c", dc.conf, "-f", "json"] + args + ["-u", user]
    return subprocess.Popen(dc.wrap(cmd), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dovetest.sanitizer_env())


def stored_count(dc, user):
    try:
        return dc.query(user, "SELECT count(*) FROM reports")[0][0]
    except sqlite3.OperationalError:
        return 0


def test_delivery_during_import(dc):
    """A delivery while `doveadm dmarc import` runs is stored at once (in
    the database before the import ends), not queued and not held for
    the whole import: the import commits in batches."""
    user = "busyimp"
    src = dc.path("busyimp-src")
    os.mkdir(src)
    n_files = 600
    for i in range(n_files):
        path = os.path.join(src, f"r{i:04d}.xml.gz")
        with open(path, "wb") as f:
            f.write(gzip.compress(hostile_inputs.report_xml(f"busyimp-{i:04d}",
                                                            records=500), 1))
        os.chown(path, dc.uid, dc.uid)
    os.chown(src, dc.uid, dc.uid)
    dc.lmtp_deliver_ok(report_mail("busyimp-first"), user)

    t_start = time.monotonic()
    proc = doveadm_start(dc, ["dmarc", "import", src], user)
    try:
        # the import is under way: its first batches are committed
        check(dovetest.wait_for(lambda: stored_count(dc, user) > 1 or
                                proc.poll() is not None, 60),
              "the import stored nothing")
        check(proc.poll() is None, "the import ended before the delivery could start: "
                                   "make it longer")
        mark = dc.log_mark()
        t0 = time.monotonic()
        dc.lmtp_deliver_ok(report_mail("busyimp-live", records=3), user)
        t_delivery = time.monotonic() - t0
        still_running = proc.poll() is None
        live = dc.query(user, "SELECT record_count FROM reports"
                              " WHERE report_id = 'busyimp-live'")
        stored_lines = dc.wait_log(r"lmtp\(busyimp\).*Stored report busyimp-live", mark)
        queued = [l for l in dc.log_since(mark).splitlines() if "queued" in l]
    finally:
        out, err = proc.communicate(timeout=300)
    t_import = time.monotonic() - t_start
    print(f"# delivery during the import: {t_delivery:.3f} s; import of {n_files} "
          f"reports x 500 records: {t_import:.1f} s; import still running at the "
          f"delivery's reply: {still_running}")
    check(still_running, "the import ended before the delivery's reply: inconclusive")
    check_equal(live, [(3,)], "the delivered report, right after its reply")
    # interleaved: the import went on storing after the delivery's report
    after = dc.query(user, "SELECT count(*) FROM reports WHERE id >"
                           " (SELECT id FROM reports WHERE report_id = 'busyimp-live')")[0][0]
    print(f"# reports the import stored after the delivered one: {after}")
    check(after > 0, "the delivery was stored only after the whole import")
    check(stored_lines and not queued, f"stored lines {stored_lines}, queued {queued}")
    check_equal(proc.returncode, 0, f"import: {err!r}")
    check_equal(json.loads(out)[0]["new"], n_files, "import: new")
    check_equal(stored_count(dc, user), n_files + 2, "reports in the end")


def hold_write_lock(dc, user):
    """Another writer (a long import) holding the user's database."""
    con = sqlite3.connect(dc.db_path(user), timeout=30, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    return con


def pending_entries(dc, user):
    spool = dc.db_path(user) + "-pending"
    if not os.path.isdir(spool):
        return []
    return sorted(f for f in os.listdir(spool) if not f.startswith("."))


def test_busy_queued_next_delivery_stores(dc):
    """The database locked past dmarcreport_lock_timeout (1 s here): the
    delivery gives up, the mail is delivered, one warning says the report
    is queued; the next delivery stores it."""
    user = "pending"
    dc.lmtp_deliver_ok(report_mail("pending-0"), user)
    con = hold_write_lock(dc, user)
    try:
        mark = dc.log_mark()
        t0 = time.monotonic()
        dc.lmtp_deliver_ok(report_mail("pending-1", records=2), user)
        t_delivery = time.monotonic() - t0
    finally:
        con.execute("ROLLBACK")
        con.close()
    print(f"# delivery with the database locked (lock timeout 1 s): {t_delivery:.3f} s")
    check_equal(len(dc.mail_files(user)), 2, "mails delivered")
    lines = [l for l in dc.log_since(mark).splitlines()
             if f"lmtp({user})" in l and ("Warning:" in l or "Error:" in l)]
    check(len(lines) == 1 and "queued in" in lines[0] and "busy" in lines[0]
          and "Warning:" in lines[0], f"expected one 'queued' warning, got {lines}")
    check_equal(len(pending_entries(dc, user)), 1, "pending entries")
    check_equal(dc.query(user, "SELECT count(*) FROM reports"), [(1,)], "before")

    mark = dc.log_mark()
    dc.lmtp_deliver_ok(report_mail("pending-2"), user)
    check(dc.wait_log(rf"lmtp\({user}\).*pending '[^']*': .*Stored report pending-1 ", mark),
          "the next delivery did not store the pending report")
    check_equal(sorted(dc.query(user, "SELECT report_id, record_count FROM reports")),
                [("pending-0", 1), ("pending-1", 2), ("pending-2", 1)], "after")
    check_equal(pending_entries(dc, user), [], "pending entries after")


def test_pending_import(dc):
    """doveadm dmarc import --pending stores what a delivery queued."""
    user = "pending"
    con = hold_write_lock(dc, user)
    try:
        dc.lmtp_deliver_ok(report_mail("pending-3"), user)
    finally:
        con.execute("ROLLBACK")
        con.close()
    check_equal(len(pending_entries(dc, user)), 1, "pending entries")
    r = doveadm_ok(dc, ["dmarc", "import", "--pending"], user)
    check_equal(pending_entries(dc, user), [], "pending entries after import --pending")
    check_equal(dc.query(user, "SELECT count(*) FROM reports"
                               " WHERE report_id = 'pending-3'"), [(1,)], "stored")
    del r


def test_db_unwritable_queued(dc):
    """A database the user cannot write for a while: one error line
    saying the report is queued; once fixed, the next delivery stores
    it."""
    user = "roperm"
    dc.lmtp_deliver_ok(report_mail("roperm-0"), user)
    db = dc.db_path(user)
    # wait until lmtp lets the database go (it keeps it 3 s when idle)
    check(dovetest.wait_for(lambda: not open_by_lmtp(dc, db), 15),
          "lmtp keeps the database open")
    os.chmod(db, 0o400)
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(report_mail("roperm-1"), user)
    errs = errors_since(dc, mark, user)
    check(len(errs) == 1 and "queued in" in errs[0], f"expected one 'queued' error, got {errs}")
    check_equal(len(pending_entries(dc, user)), 1, "pending entries")
    # fixed as an admin would: SQLite made the -wal and -shm it created
    # meanwhile with the database file's mode
    for f in (db, db + "-wal", db + "-shm"):
        if os.path.exists(f):
            os.chmod(f, 0o600)
    check(dovetest.wait_for(lambda: not open_by_lmtp(dc, db), 15),
          "lmtp keeps the database open")
    mark = dc.log_mark()
    dc.lmtp_deliver_ok(report_mail("roperm-2"), user)
    check(dc.wait_log(rf"lmtp\({user}\).*pending '[^']*': .*Stored report roperm-1 ", mark),
          "the next delivery did not store the pending report")
    check_equal(sorted(r[0] for r in dc.query(user, "SELECT report_id FROM reports")),
                ["roperm-0", "roperm-1", "roperm-2"], "reports")


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
    errs = errors_since(dc, mark, "moved", expect=0)
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


def test_store_cache_off(dc):
    """dmarcreport_store_cache = no: lmtp opens and closes the database for
    each delivery; nothing keeps it open once the delivery is answered
    (with the default, test_database_moved_away finds it kept)."""
    db = dc.db_path("nocache")
    for i in range(2):
        dc.lmtp_deliver_ok(report_mail(f"nocache-{i}"), "nocache")
        check_equal(open_by_lmtp(dc, db), [], f"lmtp processes with the database "
                    f"open after delivery {i}")
    check_equal(reports(dc, "nocache"), [("nocache-0", 1), ("nocache-1", 1)],
                "both reports stored")


def test_no_other_crash(dc):
    """Nothing crashed but what test_crash_mid_transaction killed."""
    dc.check_no_crash(expected=r"killed with signal 9")


TESTS = [test_concurrent_2000, test_database_cannot_be_created, test_disk_full,
         test_corrupt_database, test_archive_unwritable, test_archive_disk_full,
         test_archive_symlinks_not_followed, test_delivery_during_import,
         test_busy_queued_next_delivery_stores, test_pending_import,
         test_db_unwritable_queued, test_crash_mid_transaction,
         test_database_moved_away, test_store_cache_off, test_no_other_crash]

if __name__ == "__main__":
    dovetest.main(TESTS, lambda: dovetest.Dovecot("faults", users=USERS))
