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
E2E_UID picks the test uid (default: 5000, or the first free one above).
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

DOVECOT = "dovecot"
DOVEADM = "doveadm"
DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"
SIEVEC = "sievec"
DOVECONF = "doveconf"
# Dovecot's compiled-in MODULEDIR: doveadm plugins and (2.4) settings
# modules are loaded only from there.
SYSTEM_MODULE_DIR = "/usr/lib/dovecot/modules"

# The build's modules: {subdir of MODULEDIR: (build dir, file name)}.
BUILD_MODULES = {
    "sieve": (os.path.join(TOP_BUILDDIR, "src", "sieve-dmarcreport", ".libs"),
              "lib90_sieve_dmarcreport_plugin.so"),
    "doveadm": (os.path.join(TOP_BUILDDIR, "src", "doveadm-dmarcreport", ".libs"),
                "lib20_doveadm_dmarcreport_plugin.so"),
    # Dovecot 2.4 only
    "settings": (os.path.join(TOP_BUILDDIR, "src", "settings", ".libs"),
                 "libdmarcreport_settings.so"),
}


def dovecot_version():
    """(major, minor) of the installed Dovecot, e.g. (2, 3) or (2, 4)."""
    try:
        out = subprocess.run([DOVECOT, "--version"], capture_output=True,
                             text=True).stdout
    except OSError:
        return (0, 0)
    m = re.match(r"(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


DOVECOT_VERSION = dovecot_version()
# 2.4: top-level settings, sieve_script {}, and a settings module that
# must be in MODULEDIR/settings (see write_config)
IS_24 = DOVECOT_VERSION >= (2, 4)


def _build_modules():
    """The build's modules this Dovecot needs: {subdir: path}."""
    return {sub: os.path.join(d, name) for sub, (d, name) in BUILD_MODULES.items()
            if sub != "settings" or IS_24}


def _same_file(a, b):
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read() == fb.read()
    except OSError:
        return False


def use_installed():
    """Test the modules installed in MODULEDIR instead of the build's.
    E2E_INSTALLED=1 asks for it (e.g. after installing a package), and it
    is chosen when the build's .so files are exactly what is installed
    (`make install` was run, as in the Debian 13 chroot of tools/test.sh,
    where no mount namespace can be made). Otherwise the tests make the
    build's modules visible to Dovecot in a private mount namespace (see
    Dovecot.wrap), and the host's installation is never touched."""
    if os.environ.get("E2E_INSTALLED") == "1":
        return True
    return all(_same_file(path, os.path.join(SYSTEM_MODULE_DIR, sub, os.path.basename(path)))
               for sub, path in _build_modules().items())


USE_INSTALLED = use_installed()
SIEVE_PLUGIN_DIR = (os.path.join(SYSTEM_MODULE_DIR, "sieve") if USE_INSTALLED
                    else BUILD_MODULES["sieve"][0])
DOVEADM_PLUGIN_DIR = (os.path.join(SYSTEM_MODULE_DIR, "doveadm") if USE_INSTALLED
                      else BUILD_MODULES["doveadm"][0])

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
    for sub, path in _build_modules().items():
        if USE_INSTALLED:
            path = os.path.join(SYSTEM_MODULE_DIR, sub, os.path.basename(path))
        if sub != "doveadm" and not os.path.exists(path):
            skip(f"{path} missing: " + ("install the package" if USE_INSTALLED
                                        else "not built"))
    if IS_24 and not USE_INSTALLED and subprocess.run(
            ["unshare", "-m", "true"], capture_output=True).returncode != 0:
        # e.g. in a chroot, or without util-linux
        skip("Dovecot 2.4 loads settings modules only from its MODULEDIR, and "
             "no private mount namespace can be made here (unshare -m): "
             "`make install` the build first")
    if USE_INSTALLED:
        # tools/package-test.sh looks for this line in every e2e log
        print(f"dovetest: testing the installed plugins in {SYSTEM_MODULE_DIR}")


def have_corpus():
    return os.path.isdir(os.path.join(CORPUS_DIR, "aggregate"))


def have_doveadm_plugin():
    return os.path.exists(os.path.join(DOVEADM_PLUGIN_DIR, BUILD_MODULES["doveadm"][1]))


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
    """Poll until predicate() is true; returns its last value. The pause
    grows from 1 ms to interval: most states arrive within milliseconds."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(pause)
        pause = min(pause * 2, interval)


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
    if IS_24:
        env = "".join(f"  {kv.split('=', 1)[0]} = {kv.split('=', 1)[1]}\n"
                      for kv in [f"LD_PRELOAD={preload}"] + SANITIZER_OPTIONS.split())
        return (f"import_environment {{\n{env}}}\n"
                "default_vsz_limit = unlimited\n")
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


CONFIG_TEMPLATE_23 = """\
# Written by tests/e2e/dovetest.py for one test run (Dovecot 2.3).
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
{sieve_before}
  sieve_plugin_dir = {sieve_plugin_dir}
  sieve_plugins = sieve_dmarcreport
  {extensions_setting} = +vnd.dovecot.dmarcreport
{settings}
}}
{extra_config}
"""

# Dovecot 2.4: dmarcreport_* are top-level settings; "$mail_plugins" and
# "+extension" pass doveconf here but fail at delivery, so both lists are
# written as blocks.
CONFIG_TEMPLATE_24 = """\
# Written by tests/e2e/dovetest.py for one test run (Dovecot 2.4).
dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
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
mail_driver = maildir
mail_path = ~/Maildir

passdb passwd-file {{
  passwd_file_path = {T}/users
  default_password_scheme = PLAIN
}}
userdb passwd-file {{
  passwd_file_path = {T}/users
}}

service lmtp {{
  inet_listener lmtp {{
    listen = 127.0.0.1
    port = {lmtp_port}
  }}
}}

protocol lda {{
  mail_plugins {{
    sieve = yes
  }}
  postmaster_address = postmaster@example.org
}}
protocol lmtp {{
  mail_plugins {{
    sieve = yes
  }}
  postmaster_address = postmaster@example.org
}}

sieve_script personal {{
  driver = file
  path = ~/.dovecot.sieve
}}
{sieve_before}
sieve_plugin_dir = {sieve_plugin_dir}
sieve_plugins {{
  sieve_dmarcreport = yes
}}
{extensions_setting} {{
  vnd.dovecot.dmarcreport = yes
}}
{settings}
{extra_config}
"""


class Dovecot:
    """One private Dovecot: start() ... stop(); a context manager too.

    users: {name: {setting: value}}; the values become userdb_ extra
    fields, which Dovecot applies as per-user settings.
    settings: dmarcreport_* settings for everyone (plugin {} on 2.3, top
    level on 2.4). "{T}" in a value stands for the temp dir.
    sieve_before: path of an admin script run before the user's.
    script: every user's active Sieve script (None: none); scripts: {user:
    script} overrides it.
    global_extensions: enable the extension via sieve_global_extensions
    instead of sieve_extensions.
    """

    def __init__(self, name, users=None, settings=None, script=SCRIPT_DMARCREPORT,
                 scripts=None, global_extensions=False, extra_config="",
                 sieve_before=None):
        self.name = name
        self.users = dict(users or {"testuser": {}})
        self.settings = dict(settings or {})
        self.script = script
        self.scripts = dict(scripts or {})
        self.global_extensions = global_extensions
        self.extra_config = extra_config
        self.sieve_before = sieve_before
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
        """Writes the config in the syntax of the installed Dovecot."""
        if IS_24:
            template, indent = CONFIG_TEMPLATE_24, ""
            before = ("" if self.sieve_before is None else
                      "sieve_script before {\n  type = before\n  driver = file\n"
                      f"  path = {self._expand(self.sieve_before)}\n}}")
        else:
            template, indent = CONFIG_TEMPLATE_23, "  "
            before = ("" if self.sieve_before is None else
                      f"  sieve_before = {self._expand(self.sieve_before)}")
        settings = "\n".join(f"{indent}{k} = {self._expand(v)}"
                             for k, v in self.settings.items())
        text = template.format(
            T=self.tmp, instance=f"dmarce2e-{self.name}-{os.getpid()}",
            mail_debug="yes" if os.environ.get("E2E_DEBUG") == "1" else "no",
            uid=self.uid, lmtp_port=self.lmtp_port,
            sieve_plugin_dir=SIEVE_PLUGIN_DIR, sieve_before=before,
            extensions_setting=("sieve_global_extensions" if self.global_extensions
                                else "sieve_extensions"),
            settings=settings,
            extra_config=self.extra_config + sanitizer_config())
        with open(self.conf, "w") as f:
            f.write(text)

    def wrap(self, cmd):
        """cmd as run for this instance. Unless the installed modules are
        tested, Dovecot must find the build's modules in its compiled-in
        MODULEDIR: doveadm's plugin (2.3 and 2.4) and, on 2.4, the
        settings module, which every process reading the config needs. A
        private mount namespace (unshare) puts dirs holding the system's
        modules plus the build's over MODULEDIR's subdirs, for this
        process and its children only. (It cannot be made inside a
        chroot: there the build is installed, see use_installed().)"""
        if USE_INSTALLED or (not IS_24 and cmd[0] != DOVEADM):
            return cmd
        mounts = []
        for sub, path in _build_modules().items():
            if sub == "sieve":
                continue        # sieve_plugin_dir points at the build
            overlay = self.path("modules", sub)
            if not os.path.isdir(overlay):
                os.makedirs(overlay)
                system = os.path.join(SYSTEM_MODULE_DIR, sub)
                if os.path.isdir(system):
                    for f in os.listdir(system):
                        if f != os.path.basename(path) and f.endswith(".so"):
                            shutil.copy(os.path.join(system, f), overlay)
                shutil.copy(path, overlay)
            mounts += [overlay, os.path.join(SYSTEM_MODULE_DIR, sub)]
        shell = ('while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 99; '
                 'shift 2; done; shift; exec "$@"')
        return ["unshare", "-m", "sh", "-c", shell, "sh"] + mounts + ["--"] + cmd

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
            r = subprocess.run(self.wrap([DOVECOT, "-c", self.conf]),
                               stdin=subprocess.DEVNULL,
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
        return subprocess.run(self.wrap([SIEVEC, "-c", self.conf, script_path, out_path]),
                              capture_output=True, text=True)

    def doveconf(self, args):
        """doveconf with this config, e.g. doveconf(["-n"])."""
        return subprocess.run(self.wrap([DOVECONF, "-c", self.conf] + list(args)),
                              capture_output=True, text=True)

    # --- delivery ---------------------------------------------------------

    def lmtp_deliver(self, message, rcpts, sender="reporter@reports.example",
                     wait_logged=True):
        """Delivers one message to one or more users over LMTP. Returns
        {rcpt: (code, text)}, one LMTP reply per accepted recipient. Waits
        for the session's log lines unless wait_logged is False (bench/run
        times the delivery, not the log process)."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        replies = {}
        mark = self.log_mark()
        # local_hostname: smtplib would look up this machine's FQDN for
        # every connection, a DNS query where there is no network
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=120,
                          local_hostname="e2e.test") as lmtp:
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
        # QUIT was sent: wait until the log has the session's lines
        if wait_logged:
            self.wait_session_logged(replies.values(), mark)
        return replies

    def lmtp_deliver_ok(self, message, rcpt, wait_logged=True):
        replies = self.lmtp_deliver(message, rcpt, wait_logged=wait_logged)
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
        return subprocess.run(self.wrap([DOVECOT_LDA, "-c", self.conf, "-d", user,
                                         "-f", sender]),
                              input=message, capture_output=True, timeout=120,
                              env=sanitizer_env())

    # --- doveadm -----------------------------------------------------------

    def doveadm(self, args, user=None, fmt=None):
        """doveadm with the build's doveadm plugin (see wrap): doveadm
        loads plugins only from its compiled-in dir."""
        cmd = [DOVEADM, "-c", self.conf]
        if fmt is not None:
            cmd += ["-f", fmt]
        cmd += list(args)
        if user is not None:
            cmd += ["-u", user]
        return subprocess.run(self.wrap(cmd), capture_output=True, text=True,
                              timeout=120, env=sanitizer_env())

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

    def out_dir(self):
        """A directory of the test dir the test user may write to (doveadm
        runs as that user)."""
        d = self.path("out")
        if not os.path.isdir(d):
            os.mkdir(d, 0o755)
            os.chown(d, self.uid, self.uid)
        return d

    def write_db(self, user, statements):
        """Runs [(sql, params)] as root on the user's database, which the
        plugin made; the files stay the user's."""
        path = self.db_path(user)
        con = sqlite3.connect(path, timeout=30)
        try:
            for sql, params in statements:
                con.execute(sql, params)
            con.commit()
        finally:
            con.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.chown(path + suffix, self.uid, self.uid)

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
        """The complete lines logged since mark: a line the log process
        is still writing is left for the next read."""
        with open(self.path("log", "dovecot.log"), "rb") as f:
            f.seek(mark)
            data = f.read()
        return data[:data.rfind(b"\n") + 1].decode("utf-8", "replace")

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # A process of the instance crashed, or was killed, or ran out of
    # memory (Dovecot's lines for each).
    CRASH_RE = re.compile(r"Panic:|Fatal:|killed with signal|dumped core|Out of memory")

    def check_no_crash(self, expected=None):
        """Fails when the log shows a crash anywhere in the run (the check
        every e2e file ends with). expected: a regular expression for
        the lines of what the test did itself (a process it killed)."""
        bad = [l for l in self.log_text().splitlines()
               if self.CRASH_RE.search(l) and not (expected and re.search(expected, l))]
        check(not bad, f"crashes in the log: {bad}")

    def wait_session_logged(self, replies, mark, timeout=60):
        """Waits until the log holds every line of the LMTP session that
        gave these replies, so a test can assert on the log, also that a
        line is absent, without depending on timing. The log process
        writes another process's lines a little later than it sent its
        reply. Each reply names the session ("250 2.0.0 <user> SESSION
        Saved"), the session's lines carry "<pid><SESSION>", and the lmtp
        process logs its "Disconnect from" line after all of them, since
        one process's lines reach the log in order. Returns False on a
        timeout (the test's own assertion then says what is missing)."""
        sessions = set()
        for _, text in replies:
            m = re.search(rb"<[^>]*> ([A-Za-z0-9+/]+)", text)
            if m:
                sessions.add(m.group(1).decode())
        if not sessions:
            return True

        def logged():
            text = self.log_since(mark)
            for session in sessions:
                m = re.search(r"<(\d+)><" + re.escape(session) + r"[:>]", text)
                if not m or not re.search(r"\b[a-z]+\(" + m.group(1) + r"\): .*Disconnect from",
                                          text[m.end():]):
                    return False
            return True

        return wait_for(logged, timeout)

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
