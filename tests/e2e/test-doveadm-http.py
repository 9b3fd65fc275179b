#!/usr/bin/env python3
"""End-to-end: `doveadm dmarc list|show|query|summary|tls|failures` over
doveadm's HTTP API (the doveadm server of a private Dovecot, on 127.0.0.1) give the same
rows as the doveadm command line with -f json; and `--resolve` names
sources through Dovecot's dns-client, without the network: the master
runs in a mount namespace where /etc/hosts and /etc/nsswitch.conf are the
test's own ("hosts: files")."""

import base64
import http.client
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal, skip_test  # noqa: E402

API_KEY = "e2e-dmarc-api-key"
# the RFC 9990 sample's source and the hardfail report's failing one have
# a name; mail-auth--003's none
HOSTS = ("127.0.0.1 localhost\n192.0.2.123 mail.example.test\n"
         "42.42.42.42 failing.example.test\n")
USER = "http"
state = {}


class HttpDovecot(dovetest.Dovecot):
    """A Dovecot whose doveadm server listens for HTTP and loads the
    freshly built doveadm plugin: the master runs in a mount namespace of
    its own where doveadm's module dir is the build's .libs (as
    Dovecot.doveadm() does for the command line)."""

    def __init__(self):
        self.http_port = dovetest.free_port()
        super().__init__("http", users={USER: {}}, extra_config=(
            f"doveadm_api_key = {API_KEY}\n"
            "service doveadm {\n"
            "  inet_listener http {\n"
            "    address = 127.0.0.1\n"
            f"    port = {self.http_port}\n"
            "  }\n"
            "}\n"))

    def _start_master(self):
        real = dovetest.DOVECOT
        wrapper = self.path("dovecot-in-namespace.sh")
        with open(self.path("hosts"), "w") as f:
            f.write(HOSTS)
        with open(self.path("nsswitch.conf"), "w") as f:
            f.write("hosts: files\n")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\n"
                    f'unshare -m sh -c \'mount --bind "$1" "$2" && '
                    f'mount --bind "$3" /etc/hosts && '
                    f'mount --bind "$4" /etc/nsswitch.conf || exit 99; '
                    f'shift 4; exec "$@"\' sh "{dovetest.DOVEADM_PLUGIN_DIR}" '
                    f'"{os.path.join(dovetest.SYSTEM_MODULE_DIR, "doveadm")}" "{self.path("hosts")}" '
                    f'"{self.path("nsswitch.conf")}" "{real}" "$@"\n')
        os.chmod(wrapper, 0o755)
        dovetest.DOVECOT = wrapper
        try:
            super()._start_master()
        finally:
            dovetest.DOVECOT = real


def api(dc, command, params):
    """One doveadm HTTP API command: its rows, or raises with the error."""
    body = json.dumps([[command, dict(params, user=USER), "t1"]])
    conn = http.client.HTTPConnection("127.0.0.1", dc.http_port, timeout=60)
    try:
        auth = base64.b64encode(API_KEY.encode()).decode()
        conn.request("POST", "/doveadm/v1", body=body, headers={
            "Authorization": f"X-Dovecot-API {auth}",
            "Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read().decode()
    finally:
        conn.close()
    check_equal(resp.status, 200, f"HTTP status of {command}: {data}")
    reply = json.loads(data)
    check(reply and reply[0][0] == "doveadmResponse",
          f"{command} {params}: {data}")
    return reply[0][1]


def cli(dc, args):
    r = dc.doveadm(args, user=USER, fmt="json")
    check_equal(r.returncode, 0, f"doveadm {' '.join(args)}: {r.stderr}")
    out = r.stdout.strip()
    return json.loads(out) if out else []


def test_deliver(dc):
    if not dovetest.have_corpus():
        skip_test("no corpus")
    names = ["parsedmarc--rfc9990-sample.xml", "mail-auth--003.xml",
             "dmarc-report-viewer--hardfail.xml"]
    for i, name in enumerate(names):
        data = open(os.path.join(dovetest.CORPUS_DIR, "aggregate", name), "rb").read()
        dc.lmtp_deliver_ok(reportmail.report_mail([(name, data)], f"<http-{i}@e2e.test>"),
                           USER)
    # and a TLS report and a failure report
    tls = open(os.path.join(dovetest.CORPUS_DIR, "tlsrpt", "parsedmarc--rfc8460.json"),
               "rb").read()
    dc.lmtp_deliver_ok(reportmail.report_mail(
        [("rfc8460.json", tls, ("application", "tlsrpt+json"))], "<http-tls@e2e.test>",
        subject="Report Domain: TLS"), USER)
    dc.lmtp_deliver_ok(open(os.path.join(dovetest.CORPUS_DIR, "failure",
                                         "mail-auth--004.eml"), "rb").read(), USER)
    state["list"] = cli(dc, ["dmarc", "list"])
    check_equal(sorted(r["type"] for r in state["list"]),
                ["aggregate"] * len(names) + ["failure", "tls"], "reports stored")


def test_same_json_over_http(dc):
    rows = state.get("list") or skip_test("nothing delivered")
    cases = [
        ("dmarcList", {}, ["dmarc", "list"]),
        ("dmarcList", {"filter": ["not", "dkim", "pass"]},
         ["dmarc", "list", "not", "dkim", "pass"]),
        ("dmarcQuery", {}, ["dmarc", "query"]),
        ("dmarcQuery", {"groupBy": "source"}, ["dmarc", "query", "--group-by", "source"]),
        ("dmarcSummary", {}, ["dmarc", "summary"]),
        ("dmarcList", {"filter": ["type", "tls"]}, ["dmarc", "list", "type", "tls"]),
        ("dmarcTls", {}, ["dmarc", "tls"]),
        ("dmarcTls", {"groupBy": "result-type"}, ["dmarc", "tls", "--group-by", "result-type"]),
        ("dmarcFailures", {}, ["dmarc", "failures"]),
    ] + [("dmarcShow", {"type": r["type"], "report": [str(r["id"])]},
          ["dmarc", "show", "--type", r["type"], str(r["id"])])
         for r in rows]
    for command, params, args in cases:
        over_http = api(dc, command, params)
        check(over_http, f"{command} {params}: no rows")
        check_equal(over_http, cli(dc, args), f"{command} {params} = doveadm {' '.join(args)}")
    check_equal({r["type"] for r in api(dc, "dmarcList", {"filter": ["type", "tls"]})},
                {"tls"}, "list type tls over HTTP")
    for kind, lists in (("tls", ("policies",)), ("failure", ())):
        row = [r for r in rows if r["type"] == kind][0]
        shown = api(dc, "dmarcShow", {"type": kind, "report": [str(row["id"])]})
        check(len(shown) == 1 and shown[0]["type"] == kind and
              all(isinstance(shown[0][k], list) for k in lists),
              f"show --type {kind} over HTTP: {shown}")
    tls_shown = api(dc, "dmarcShow", {"type": "tls", "report": [
        str([r for r in rows if r["type"] == "tls"][0]["id"])]})[0]
    check(isinstance(tls_shown["policies"][0]["failure_details"], list) and
          isinstance(tls_shown["policies"][0]["successful_sessions"], int),
          f"TLS policies over HTTP: {tls_shown}")
    # a filter that cannot match the kind: a usage error, which doveadm's
    # server answers as for its own commands (it logs the usage and ends
    # the connection)
    try:
        api(dc, "dmarcTls", {"filter": ["dkim", "pass"]})
        check(False, "tls dkim pass over HTTP answered")
    except http.client.RemoteDisconnected:
        pass
    dc.wait_log(r"doveadm\(\d+\): Error: dmarc tls: Filter dkim does not apply to tls reports")
    shown = api(dc, "dmarcShow", {"report": [str(rows[0]["id"])]})[0]
    check(isinstance(shown["records"], list) and isinstance(shown["records"][0]["reasons"], list)
          and isinstance(shown["errors"], list), f"show: real lists over HTTP: {shown}")
    print(f"# {len(cases)} commands over HTTP gave what the command line gives")


def test_resolve(dc):
    """query/show --resolve: the sources' names from the dns-client
    service (the test's /etc/hosts), cached in the user's database; a
    source without a name stays empty."""
    if not state.get("list"):
        skip_test("nothing delivered")
    t0 = time.monotonic()
    rows = cli(dc, ["dmarc", "query", "--resolve"])
    elapsed = time.monotonic() - t0
    names = {r["source_ip"]: r["source_name"] for r in rows}
    check_equal(names.get("192.0.2.123"), "mail.example.test", "a named source")
    check_equal(names.get("64.147.108.117"), "", "a source without a name")
    plain = cli(dc, ["dmarc", "query"])
    check_equal([{k: v for k, v in r.items() if k != "source_name"} for r in rows], plain,
                "--resolve only adds source_name")
    cached = dict(dc.query(USER, "SELECT ip, name FROM resolved_names"))
    check_equal(cached.get("192.0.2.123"), "mail.example.test", "the name is cached")
    check("64.147.108.117" in cached and cached["64.147.108.117"] is None,
          f"no name is cached too: {cached}")
    expires = dc.query(USER, "SELECT min(expires) FROM resolved_names")[0][0]
    check(abs(expires - (time.time() + 86400)) < 600, f"cached for a day: {expires}")
    # the cache answers: a changed hosts file is not asked again
    with open(dc.path("hosts"), "r+") as f:
        f.seek(0)
        f.write(HOSTS.replace("mail.example.test", "else.example.test"))
        f.truncate()
    again = cli(dc, ["dmarc", "query", "--resolve", "source", "192.0.2.123"])
    check_equal({r["source_name"] for r in again}, {"mail.example.test"}, "from the cache")
    sample = [r for r in state["list"] if r["org"] == "Sample Reporter"][0]
    shown = cli(dc, ["dmarc", "show", "--resolve", str(sample["id"])])
    check_equal(shown[0]["records"][0]["source_name"], "mail.example.test",
                "show --resolve")
    summary = cli(dc, ["dmarc", "summary", "--resolve"])
    plain = cli(dc, ["dmarc", "summary"])
    check_equal(len(summary), len(plain), "summary --resolve rows")
    for r, p in zip(summary, plain):
        check_equal(r["top_failing"].replace(" failing.example.test", ""), p["top_failing"],
                    "summary --resolve adds the names to the failing sources")
    check(any("42.42.42.42 failing.example.test (" in r["top_failing"] for r in summary),
          f"a failing source named: {summary}")
    print(f"# query --resolve over {len(rows)} records: {elapsed:.2f} s (first, uncached)")


TESTS = [test_deliver, test_same_json_over_http, test_resolve]

if __name__ == "__main__":
    if not dovetest.have_doveadm_plugin():
        dovetest.skip("the doveadm plugin is not built")
    if subprocess.run(["which", "unshare"], capture_output=True).returncode != 0:
        dovetest.skip("no unshare")
    if dovetest.USE_INSTALLED:
        # the Debian 13 chroot stage: no mount namespace can be made there
        dovetest.skip("runs the master in a mount namespace, not possible here")
    dovetest.main(TESTS, HttpDovecot)
