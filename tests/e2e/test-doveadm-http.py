#!/usr/bin/env python3
"""End-to-end: `doveadm dmarc list|show|query|summary` over doveadm's HTTP
API (the doveadm server of a private Dovecot, on 127.0.0.1) give the same
rows as the doveadm command line with -f json."""

import base64
import http.client
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal, skip_test  # noqa: E402

API_KEY = "e2e-dmarc-api-key"
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
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\n"
                    f'unshare -m sh -c \'mount --bind "$1" "$2" || exit 99; '
                    f'shift 2; exec "$@"\' sh "{dovetest.DOVEADM_PLUGIN_DIR}" '
                    f'"{dovetest.SYSTEM_DOVEADM_MODULE_DIR}" "{real}" "$@"\n')
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
    state["list"] = cli(dc, ["dmarc", "list"])
    check_equal(len(state["list"]), len(names), "reports stored")


def test_same_json_over_http(dc):
    rows = state.get("list") or skip_test("nothing delivered")
    cases = [
        ("dmarcList", {}, ["dmarc", "list"]),
        ("dmarcList", {"filter": ["not", "dkim", "pass"]},
         ["dmarc", "list", "not", "dkim", "pass"]),
        ("dmarcQuery", {}, ["dmarc", "query"]),
        ("dmarcQuery", {"groupBy": "source"}, ["dmarc", "query", "--group-by", "source"]),
        ("dmarcSummary", {}, ["dmarc", "summary"]),
    ] + [("dmarcShow", {"report": [str(r["id"])]}, ["dmarc", "show", str(r["id"])])
         for r in rows]
    for command, params, args in cases:
        over_http = api(dc, command, params)
        check(over_http, f"{command} {params}: no rows")
        check_equal(over_http, cli(dc, args), f"{command} {params} = doveadm {' '.join(args)}")
    shown = api(dc, "dmarcShow", {"report": [str(rows[0]["id"])]})[0]
    check(isinstance(json.loads(shown["records"]), list), "show records over HTTP")
    print(f"# {len(cases)} commands over HTTP gave what the command line gives")


TESTS = [test_deliver, test_same_json_over_http]

if __name__ == "__main__":
    if not dovetest.have_doveadm_plugin():
        dovetest.skip("the doveadm plugin is not built")
    if subprocess.run(["which", "unshare"], capture_output=True).returncode != 0:
        dovetest.skip("no unshare")
    dovetest.main(TESTS, HttpDovecot)
