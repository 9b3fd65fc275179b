"""A private Dovecot for the end-to-end tests (Python 3 standard library only).

One Dovecot instance per test file: its own temp dir, config, free LMTP
port, passwd-file users and log; the host's Dovecot is never touched.

    import dovetest
    dovetest.require_root()
    with dovetest.Dovecot("lmtp", users={"alice": {}, "bob": {"dmarcreport_db": "/x"}}) as dc:
        dc.lmtp_deliver(mail_bytes, "alice")
        dc.query("alice", "SELECT count(*) FROM reports")
        dc.doveadm(["dmarc", "list"], user="alice", fmt="json")
    dovetest.run_tests([test_a, test_b], dc)   # or the helpers below

Environment: top_builddir, top_srcdir, CORPUS_DIR (set by `make check`);
KEEP_E2E=1 keeps the temp dir; E2E_DEBUG=1 sets mail_debug = yes;
E2E_UID picks the test uid (default: 5000, or the first free one above);
E2E_INSTALLED=1 loads the installed plugins instead of the build's.
Exit codes follow automake: 0 pass, 1 fail, 77 skip, 99 hard error.
"""

import os
import re
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(HERE))
TOP_BUILDDIR = os.environ.get("top_builddir") or os.path.join(TOP_SRCDIR, "build")
CORPUS_DIR = os.environ.get("CORPUS_DIR") or os.path.join(TOP_SRCDIR, "..", "shared", "corpus")

SYSTEM_MODULE_DIR = "/usr/lib/dovecot/modules"
SYSTEM_DOVEADM_MODULE_DIR = os.path.join(SYSTEM_MODULE_DIR, "doveadm")
SIEVE_PLUGIN_SO = "lib90_sieve_dmarcreport_plugin.so"
DOVEADM_PLUGIN_SO = "lib20_doveadm_dmarcreport_plugin.so"
# E2E_INSTALLED=1 tests the installed package (tools/package-test.sh): the
# plugins come from Dovecot's own module dirs, nothing from the build.
INSTALLED = os.environ.get("E2E_INSTALLED") == "1"
if INSTALLED:
    SIEVE_PLUGIN_DIR = os.path.join(SYSTEM_MODULE_DIR, "sieve")
    DOVEADM_PLUGIN_DIR = SYSTEM_DOVEADM_MODULE_DIR
else:
    SIEVE_PLUGIN_DIR = os.path.join(TOP_BUILDDIR, "src", "sieve-dmarcreport", ".libs")
    DOVEADM_PLUGIN_DIR = os.path.join(TOP_BUILDDIR, "src", "doveadm-dmarcreport", ".libs")
DOVECOT = "dovecot"
DOVEADM = "doveadm"
DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"
SIEVEC = "sievec"

SCRIPT_DMARCREPORT = 'require "vnd.dovecot.dmarcreport";\ndmarcreport;\n'
SCRIPT_DMARCREPORT_FILEINTO = (
    'require ["vnd.dovecot.dmarcreport", "fileinto", "mailbox"];\n'
    'dmarcreport;\n'
    'fileinto :create "DMARC";\n')

EXIT_SKIP = 77
EXIT_HARD_ERROR = 99


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(EXIT_SKIP)


def require_root():
    """The tests start Dovecot, which switches to the test user's uid."""
    if os.geteuid() != 0:
        skip("the end-to-end tests need root (Dovecot must setuid to the "
             "test user); run `make check` as root")
    for prog in (DOVECOT, DOVEADM, DOVECOT_LDA):
        if shutil.which(prog) is None:
            skip(f"{prog} not installed (apt-get install dovecot-core dovecot-lmtpd dovecot-sieve)")
    sieve_plugin = os.path.join(SIEVE_PLUGIN_DIR, SIEVE_PLUGIN_SO)
    if INSTALLED:
        # a package that lacks it is a failure, not a reason to skip
        if not os.path.exists(sieve_plugin):
            print(f"dovetest: E2E_INSTALLED=1 but {sieve_plugin} is not installed")
            sys.exit(EXIT_HARD_ERROR)
        print(f"dovetest: testing the installed plugins in {SYSTEM_MODULE_DIR}")
    elif not os.path.exists(sieve_plugin):
        skip(f"the Sieve plugin is not built: {sieve_plugin} missing")


def have_corpus():
    return os.path.isdir(os.path.join(CORPUS_DIR, "aggregate"))


def have_doveadm_plugin():
    return os.path.exists(os.path.join(DOVEADM_PLUGIN_DIR, DOVEADM_PLUGIN_SO))


def free_port():
    """A free TCP port on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _uid_is_free(uid):
    import grp
    import pwd
    try:
        pwd.getpwuid(uid)
        return False
    except KeyError:
        pass
    try:
        grp.getgrgid(uid)
        return False
    except KeyError:
        return True


def pick_uid():
    if os.environ.get("E2E_UID"):
        return int(os.environ["E2E_UID"])
    for uid in range(5000, 6000):
        if _uid_is_free(uid):
            return uid
    raise RuntimeError("no free uid in 5000..5999")


def wait_for(predicate, timeout=10.0, interval=0.05):
    """Poll until predicate() is true; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def to_crlf(data):
    """SMTP/LMTP carry CRLF lines: what an MTA would send for a mail file."""
    return re.sub(rb"\r?\n", b"\r\n", data)


class TestFailure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def check_equal(actual, expected, what):
    if actual != expected:
        raise TestFailure(f"{what}: expected {expected!r}, got {actual!r}")


# A build with --enable-sanitizers puts ASan/UBSan into the plugins, which
# the (uninstrumented) Dovecot processes load: E2E_PRELOAD names the ASan
# runtime to preload into them (tools/test.sh --sanitizers sets it).
SANITIZER_OPTIONS = ("ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:"
                     "verify_asan_link_order=0 UBSAN_OPTIONS=print_stacktrace=1:"
                     "halt_on_error=1")


def sanitizer_config():
    preload = os.environ.get("E2E_PRELOAD")
    if not preload:
        return ""
    # every process may load the plugins (config does too); ASan reserves
    # terabytes of address space: no vsz limit
    return (f"import_environment = $import_environment LD_PRELOAD={preload} "
            f"{SANITIZER_OPTIONS}\ndefault_vsz_limit = 0\n")


def sanitizer_env():
    preload = os.environ.get("E2E_PRELOAD")
    if not preload:
        return None
    env = dict(os.environ, LD_PRELOAD=preload)
    for kv in SANITIZER_OPTIONS.split():
        k, v = kv.split("=", 1)
        env[k] = v
    return env


CONFIG_TEMPLATE = """\
# Written by tests/e2e/dovetest.py for one test run.
base_dir = {T}/run
state_dir = {T}/state
instance_name = {instance}
log_path = {T}/log/dovecot.log
info_log_path = {T}/log/dovecot.log
debug_log_path = {T}/log/dovecot.log
mail_debug = {mail_debug}

protocols = lmtp
listen = 127.0.0.1
ssl = no
first_valid_uid = {uid}
last_valid_uid = 0
first_valid_gid = {uid}
mail_location = maildir:~/Maildir

passdb {{
  driver = passwd-file
  args = scheme=PLAIN {T}/users
}}
userdb {{
  driver = passwd-file
  args = {T}/users
}}

service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}

protocol lda {{
  mail_plugins = $mail_plugins sieve
  postmaster_address = postmaster@example.org
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
  postmaster_address = postmaster@example.org
}}

plugin {{
  sieve = ~/.dovecot.sieve
  sieve_plugin_dir = {sieve_plugin_dir}
  sieve_plugins = sieve_dmarcreport
{extensions}
{plugin_settings}
}}
{extra_config}
"""


class Dovecot:
    """One private Dovecot: start() ... stop(); a context manager too.

    users: {name: {plugin setting: value}}; the values become userdb
    extra fields, which Dovecot applies as per-user plugin {} settings.
    settings: plugin {} settings for everyone. "{T}" in a value stands for
    the temp dir.
    script: every user's active Sieve script (None: none); scripts: {user:
    script} overrides it.
    global_extensions: enable the extension via sieve_global_extensions
    instead of sieve_extensions.
    """

    def __init__(self, name, users=None, settings=None, script=SCRIPT_DMARCREPORT,
                 scripts=None, global_extensions=False, extra_config=""):
        self.name = name
        self.users = dict(users or {"testuser": {}})
        self.settings = dict(settings or {})
        self.script = script
        self.scripts = dict(scripts or {})
        self.global_extensions = global_extensions
        self.extra_config = extra_config
        self.uid = pick_uid()
        self.tmp = None
        self.conf = None
        self.lmtp_port = None
        self.master_pid = None
        self.failed = False

    # --- set-up and tear-down -------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.failed = True
            self.cleanup()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type, SystemExit):
            self.failed = True
        self.cleanup()
        return False

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def home(self, user):
        return self.path("home", user)

    def maildir(self, user):
        return os.path.join(self.home(user), "Maildir")

    def _expand(self, value):
        """"{T}" in a setting stands for the temp dir."""
        return value.replace("{T}", self.tmp)

    def _user_setting(self, user, name, default):
        value = self.users[user].get(name, self.settings.get(name))
        if value is None:
            return default
        value = self._expand(value)
        if value.startswith("~/"):
            value = os.path.join(self.home(user), value[2:])
        return value

    def db_path(self, user):
        return self._user_setting(user, "dmarcreport_db", os.path.join(
            self.home(user), "dmarcreport", "reports.sqlite"))

    def archive_dir(self, user):
        return self._user_setting(user, "dmarcreport_archive_dir", os.path.join(
            self.home(user), "dmarcreport", "archive"))

    def _write_users(self):
        lines = []
        for user, extra in self.users.items():
            fields = " ".join(f"userdb_{k}={self._expand(v)}" for k, v in extra.items())
            lines.append(f"{user}:{{PLAIN}}secret:{self.uid}:{self.uid}::"
                         f"{self.home(user)}::{fields}\n")
        with open(self.path("users"), "w") as f:
            f.writelines(lines)

    def write_config(self):
        ext = ("  sieve_global_extensions = +vnd.dovecot.dmarcreport"
               if self.global_extensions else
               "  sieve_extensions = +vnd.dovecot.dmarcreport")
        plugin_settings = "\n".join(f"  {k} = {self._expand(v)}"
                                    for k, v in self.settings.items())
        text = CONFIG_TEMPLATE.format(
            T=self.tmp, instance=f"dmarce2e-{self.name}-{os.getpid()}",
            mail_debug="yes" if os.environ.get("E2E_DEBUG") == "1" else "no",
            uid=self.uid, lmtp_port=self.lmtp_port,
            sieve_plugin_dir=SIEVE_PLUGIN_DIR, extensions=ext,
            plugin_settings=plugin_settings,
            extra_config=self.extra_config + sanitizer_config())
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix=f"dmarc-e2e-{self.name}-")
        # the test user must reach its home below the temp dir
        os.chmod(self.tmp, 0o755)
        for d in ("run", "state", "log", "home"):
            os.mkdir(self.path(d), 0o755)
        log = self.path("log", "dovecot.log")
        open(log, "w").close()
        # dovecot-lda writes the log itself, after dropping to the user
        os.chmod(log, 0o666)
        self.conf = self.path("dovecot.conf")
        self.lmtp_port = free_port()
        self._write_users()
        for user in self.users:
            home = self.home(user)
            os.mkdir(home, 0o700)
            os.chown(home, self.uid, self.uid)
            script = self.scripts.get(user, self.script)
            if script is not None:
                self.write_script(user, script)
        self.write_config()
        self._start_master()

    def _start_master(self):
        # Not a pipe: the daemon inherits it and would keep it open.
        out_path = self.path("log", "dovecot-start.out")
        with open(out_path, "w") as out:
            r = subprocess.run([DOVECOT, "-c", self.conf], stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            with open(out_path) as f:
                output = f.read().strip()
            raise RuntimeError(f"dovecot -c {self.conf} failed ({r.returncode}): "
                               f"{output}\n{self.log_tail()}")
        pidfile = self.path("run", "master.pid")

        def read_pid():
            # the file appears before the master has written its pid
            try:
                with open(pidfile) as f:
                    text = f.read().strip()
            except FileNotFoundError:
                return None
            return int(text) if text.isdigit() else None

        if not wait_for(lambda: read_pid() is not None, 10):
            raise RuntimeError(f"Dovecot wrote no {pidfile}\n{self.log_tail()}")
        self.master_pid = read_pid()
        if not wait_for(self._lmtp_listening, 15):
            raise RuntimeError(f"LMTP not listening on port {self.lmtp_port}\n"
                               f"{self.log_tail()}")

    def _lmtp_listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.lmtp_port), timeout=1):
                return True
        except OSError:
            return False

    def reload(self):
        """After a config change: LMTP keeps the old config until then."""
        self.write_config()
        mark = self.log_mark()
        os.kill(self.master_pid, signal.SIGHUP)
        wait_for(lambda: "SIGHUP received" in self.log_since(mark), 5)
        wait_for(self._lmtp_listening, 10)

    @staticmethod
    def _children(pid):
        kids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            # the field after the parenthesised command name is the state,
            # then the parent pid
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 1 and int(fields[1]) == pid:
                kids.append(int(entry))
        return kids

    @staticmethod
    def _alive(pid):
        """Running, and not a zombie waiting for a parent to reap it."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            return False
        return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")

    def stop(self):
        """Stops this instance by its own master pid and waits for all
        of its processes to go."""
        if self.master_pid is None:
            return
        pids = [self.master_pid] + self._children(self.master_pid)
        try:
            os.kill(self.master_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        gone = wait_for(lambda: not any(self._alive(p) for p in pids), 15)
        if not gone:
            for p in pids:
                if self._alive(p):
                    print(f"dovetest: pid {p} still running, SIGKILL")
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            wait_for(lambda: not any(self._alive(p) for p in pids), 5)
        self.master_pid = None

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self.tmp is None:
                return
            if self.failed:
                print("---- last lines of the Dovecot log")
                print(self.log_tail(60))
            if os.environ.get("KEEP_E2E") == "1":
                print(f"dovetest: temp dir kept: {self.tmp}")
            else:
                if self.failed:
                    print(f"dovetest: temp dir was {self.tmp} "
                          "(removed; KEEP_E2E=1 keeps it)")
                shutil.rmtree(self.tmp, ignore_errors=True)

    # --- Sieve ----------------------------------------------------------

    def write_script(self, user, text):
        """The user's active script. Stale binaries go: a .svbin compiled
        under another config can crash Pigeonhole 0.5.19."""
        home = self.home(user)
        for f in os.listdir(home):
            if f.endswith(".svbin"):
                os.unlink(os.path.join(home, f))
        path = os.path.join(home, ".dovecot.sieve")
        with open(path, "w") as f:
            f.write(text)
        os.chown(path, self.uid, self.uid)

    def sievec(self, script_path, out_path):
        """Compiles a script with this config (and thus our extension)."""
        return subprocess.run([SIEVEC, "-c", self.conf, script_path, out_path],
                              capture_output=True, text=True)

    # --- delivery ---------------------------------------------------------

    def lmtp_deliver(self, message, rcpts, sender="reporter@reports.example"):
        """Delivers one message to one or more users over LMTP. Returns
        {rcpt: (code, text)}, one LMTP reply per accepted recipient."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        replies = {}
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=120) as lmtp:
            lmtp.ehlo("e2e.test")
            code, text = lmtp.mail(sender)
            check(code == 250, f"MAIL FROM: {code} {text!r}")
            accepted = []
            for r in rcpts:
                code, text = lmtp.rcpt(r)
                if code == 250:
                    accepted.append(r)
                else:
                    replies[r] = (code, text)
            check(accepted, f"no recipient accepted: {replies}")
            code, text = lmtp.docmd("DATA")
            check(code == 354, f"DATA: {code} {text!r}")
            # dot-stuffing (RFC 5321 4.5.2)
            data = re.sub(rb"(?m)^\.", b"..", to_crlf(message))
            if not data.endswith(b"\r\n"):
                data += b"\r\n"
            lmtp.send(data + b".\r\n")
            # LMTP (RFC 2033 4.2): one reply per accepted recipient
            for r in accepted:
                replies[r] = lmtp.getreply()
        return replies

    def lmtp_deliver_ok(self, message, rcpt):
        replies = self.lmtp_deliver(message, rcpt)
        for r, (code, text) in replies.items():
            check(code == 250, f"LMTP delivery to {r}: {code} {text!r}")

    def lmtp_deliver_many(self, messages, rcpt, workers=4):
        """Delivers messages concurrently over `workers` connections;
        returns the list of failures (empty when all were accepted)."""
        failures = []
        queue = list(enumerate(messages))
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    if not queue:
                        return
                    i, msg = queue.pop(0)
                try:
                    self.lmtp_deliver_ok(msg, rcpt)
                except Exception as e:  # collected, reported by the caller
                    with lock:
                        failures.append((i, str(e)))

        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return failures

    def lda_deliver(self, message, user, sender="reporter@reports.example"):
        """dovecot-lda -d user, as an MTA would run it (needs the master:
        it asks auth for the user)."""
        return subprocess.run([DOVECOT_LDA, "-c", self.conf, "-d", user, "-f", sender],
                              input=message, capture_output=True, timeout=120,
                              env=sanitizer_env())

    # --- doveadm -----------------------------------------------------------

    def doveadm(self, args, user=None, fmt=None):
        """doveadm with the doveadm plugin under test. The build's:
        doveadm loads plugins only from its compiled-in dir, so that dir
        is replaced by the build's .libs in a private mount namespace (the
        host is left untouched). The installed one (E2E_INSTALLED=1) is
        already where doveadm looks."""
        cmd = [DOVEADM, "-c", self.conf]
        if fmt is not None:
            cmd += ["-f", fmt]
        cmd += list(args)
        if user is not None:
            cmd += ["-u", user]
        if INSTALLED:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                                  env=sanitizer_env())
        shell = ('mount --bind "$1" "$2" || exit 99; shift 2; exec "$@"')
        return subprocess.run(["unshare", "-m", "sh", "-c", shell, "sh",
                               DOVEADM_PLUGIN_DIR, SYSTEM_DOVEADM_MODULE_DIR] + cmd,
                              capture_output=True, text=True, timeout=120,
                              env=sanitizer_env())

    # --- what was stored ---------------------------------------------------

    def query(self, user, sql, params=()):
        """Rows from the user's report database, read-only; [] when it
        does not exist."""
        path = self.db_path(user)
        if not os.path.exists(path):
            return []
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def mail_files(self, user, folder=None):
        """Message files of a Maildir folder (None: INBOX), new/ and cur/."""
        base = self.maildir(user)
        if folder is not None:
            base = os.path.join(base, "." + folder)
        files = []
        for sub in ("new", "cur"):
            d = os.path.join(base, sub)
            if os.path.isdir(d):
                files += [os.path.join(d, f) for f in sorted(os.listdir(d))]
        return files

    def all_mail_files(self, user):
        """Message files of every folder."""
        files = self.mail_files(user)
        base = self.maildir(user)
        if os.path.isdir(base):
            for d in sorted(os.listdir(base)):
                if d.startswith(".") and os.path.isdir(os.path.join(base, d, "cur")):
                    files += self.mail_files(user, d[1:])
        return files

    def file_set(self):
        """Every file below the temp dir, relative to it."""
        found = set()
        for root, dirs, files in os.walk(self.tmp):
            for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                found.add(os.path.relpath(os.path.join(root, name), self.tmp))
        return found

    # --- the log -------------------------------------------------------------

    def log_text(self):
        with open(self.path("log", "dovecot.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_mark(self):
        return os.path.getsize(self.path("log", "dovecot.log"))

    def log_since(self, mark):
        with open(self.path("log", "dovecot.log"), "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_log(self, pattern, mark=0, timeout=10, count=1):
        """Waits until the log since mark matches pattern (a regex) at
        least count times; returns the matching lines."""
        rx = re.compile(pattern)

        def found():
            lines = [l for l in self.log_since(mark).splitlines() if rx.search(l)]
            return lines if len(lines) >= count else None

        return wait_for(found, timeout) or [
            l for l in self.log_since(mark).splitlines() if rx.search(l)]


def run_tests(tests, *args):
    """Runs test functions in order, each with *args; prints one TAP-like
    line per test. Returns True when all passed. A test may call skip_test()
    to be counted as skipped."""
    failed = 0
    for test in tests:
        name = test.__name__
        try:
            test(*args)
            print(f"ok - {name}")
        except SkipTest as e:
            print(f"ok - {name} # SKIP {e}")
        except Exception as e:
            failed += 1
            print(f"not ok - {name}: {e}")
            if not isinstance(e, TestFailure):
                traceback.print_exc(file=sys.stdout)
    return failed == 0


class SkipTest(Exception):
    pass


def skip_test(reason):
    raise SkipTest(reason)


def main(tests, dovecot_factory):
    """The usual test file: root check, one Dovecot for all tests, run them,
    exit with automake's code."""
    require_root()
    try:
        with dovecot_factory() as dc:
            ok = run_tests(tests, dc)
            if not ok:
                dc.failed = True
    except SystemExit:
        raise
    except Exception:
        traceback.print_exc(file=sys.stdout)
        sys.exit(EXIT_HARD_ERROR)
    sys.exit(0 if ok else 1)
