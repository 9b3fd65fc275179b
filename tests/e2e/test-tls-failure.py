#!/usr/bin/env python3
"""End-to-end: SMTP TLS reports (RFC 8460) and DMARC failure reports
(RFC 6591) through the same `dmarcreport;` action and doveadm.

Every file of the corpus's tlsrpt/ and failure/ goes through LMTP delivery
(a bare .json in a mail of its own) and through `doveadm dmarc import`;
every stored field is compared with a parse written here with Python's
json and email modules, and with the shipped .expected.json files. Then
doveadm's list/tls/failures/summary/expire on those reports, and hostile
JSON and ARF: each is delivered, gives one log line naming the mail, the
attachment and the reason, and the lmtp process stays small; times and
sizes are printed, not asserted."""

import base64
import datetime
import email
import email.policy
import gzip
import ipaddress
import json
import os
import quopri
import re
import shutil
import sys
import time

sys.dont_write_bytecode = True

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import hostile_inputs  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal, skip_test  # noqa: E402

CORPUS = dovetest.CORPUS_DIR
USERS = ["lmtp", "imp", "exp", "hostile"]
LMTP_RSS_LIMIT_KIB = 64 * 1024
MAX_VALUE_LENGTH = 1024


def need_corpus():
    if not dovetest.have_corpus():
        skip_test(f"corpus not found at {CORPUS}")


def corpus_paths(sub):
    d = os.path.join(CORPUS, sub)
    return [os.path.join(d, f) for f in sorted(os.listdir(d))
            if not f.endswith(".expected.json") and not f.endswith(".md")]


# --- the independent parse: TLS ---------------------------------------------------

def norm_domain(v):
    return str(v).strip().lower().rstrip(".")


def norm_ip(v):
    v = str(v).strip()
    if v == "":
        return None
    # "192.0.2.1 (mx.example.org)": a comment after the address
    v = v.split(" ")[0].split("(")[0].strip("[]")
    if v.lower().startswith("ipv6:"):
        v = v[5:]
    ip = ipaddress.ip_address(v)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def cut(v):
    """What the plugin stores of a text value: control characters as
    U+FFFD, at most MAX_VALUE_LENGTH bytes of UTF-8."""
    if v is None:
        return None
    v = re.sub(r"[\x00-\x1f\x7f]", "\ufffd", str(v))
    b = v.encode()[:MAX_VALUE_LENGTH]
    return b.decode("utf-8", "ignore")


def tls_date(v):
    v = v.strip()
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", v):
        v += "Z"  # Microsoft leaves the zone out: UTC
    return int(datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp())


def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def tls_expected(doc):
    """The rows the plugin should store for one TLS report JSON."""
    policies = []
    for p in doc["policies"]:
        pol = p.get("policy", {})
        summ = p.get("summary", {})
        fails = []
        for f in p.get("failure-details", []):
            fails.append((
                cut(f["result-type"].strip().lower()) if "result-type" in f else None,
                norm_ip(f["sending-mta-ip"]) if "sending-mta-ip" in f else None,
                cut(norm_domain(f["receiving-mx-hostname"]))
                if "receiving-mx-hostname" in f else None,
                cut(f.get("receiving-mx-helo")),
                norm_ip(f["receiving-ip"]) if "receiving-ip" in f else None,
                int(str(f.get("failed-session-count", 0)).strip()),
                cut(f.get("additional-information")),
                cut(f.get("failure-reason-code")),
            ))
        strings = as_list(pol.get("policy-string"))
        mxs = as_list(pol.get("mx-host"))
        policies.append((
            cut(pol["policy-type"].strip().lower()) if "policy-type" in pol else None,
            "\n".join(cut(s) for s in strings) if strings else None,
            cut(norm_domain(pol["policy-domain"])) if "policy-domain" in pol else "",
            "\n".join(cut(norm_domain(m)) for m in mxs) if mxs else None,
            int(str(summ.get("total-successful-session-count", 0)).strip()),
            int(str(summ.get("total-failure-session-count", 0)).strip()),
            fails,
        ))
    report = (cut(doc.get("organization-name", "")), cut(doc["report-id"].strip()),
              tls_date(doc["date-range"]["start-datetime"]),
              tls_date(doc["date-range"]["end-datetime"]),
              cut(doc.get("contact-info")))
    return report, policies


def tls_documents(path):
    """The TLS report JSON documents a corpus file holds."""
    data = open(path, "rb").read()
    if not path.endswith(".eml"):
        return [json.loads(data)]
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    docs = []
    for part in msg.walk():
        if part.get_content_type().startswith("application/tlsrpt"):
            body = part.get_payload(decode=True)
            if body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            docs.append(json.loads(body))
    return docs


def tls_stored(dc, user):
    """{(org, report_id): (report, policies)} as stored."""
    out = {}
    for rid, org, report_id, begin, end, contact in dc.query(
            user, "SELECT id, org_name, report_id, date_begin, date_end,"
                  " contact_info FROM tls_reports ORDER BY id"):
        policies = []
        for pid, ptype, strings, domain, mxs, succ, fail in dc.query(
                user, "SELECT id, policy_type, policy_strings, policy_domain,"
                      " mx_hosts, success_count, failure_count FROM tls_policies"
                      " WHERE report_ref = ? ORDER BY id", (rid,)):
            fails = [tuple(r) for r in dc.query(
                user, "SELECT result_type, sending_mta_ip, receiving_mx_hostname,"
                      " receiving_mx_helo, receiving_ip, failed_session_count,"
                      " additional_information, failure_reason_code"
                      " FROM tls_failures WHERE policy_ref = ? ORDER BY rowid", (pid,))]
            policies.append((ptype, strings, domain, mxs, succ, fail, fails))
        out[(org, report_id)] = ((org, report_id, begin, end, contact), policies)
    return out


# --- the independent parse: failure reports ---------------------------------------

ARF_COLUMNS = {
    "feedback-type": ("feedback_type", True), "user-agent": ("user_agent", False),
    "version": ("version", False), "arrival-date": ("arrival_date", False),
    "received-date": ("arrival_date", False), "source-ip": ("source_ip", False),
    "original-envelope-id": ("original_envelope_id", False),
    "original-mail-from": ("original_mail_from", False),
    "original-rcpt-to": ("original_rcpt_to", False),
    "reporting-mta": ("reporting_mta", False),
    "reported-domain": ("reported_domain", True), "incidents": ("incidents", False),
    "authentication-results": ("authentication_results", False),
    "auth-failure": ("auth_failure", True),
    "identity-alignment": ("identity_alignment", True),
    "delivery-result": ("delivery_result", True),
    "dkim-domain": ("dkim_domain", False), "dkim-identity": ("dkim_identity", False),
    "dkim-selector": ("dkim_selector", False),
    "dkim-canonicalized-header": ("dkim_canonicalized_header", False),
    "dkim-canonicalized-body": ("dkim_canonicalized_body", False),
    "spf-dns": ("spf_dns", False), "reported-uri": ("reported_uri", False),
}
ORIG_COLUMNS = {"from": "orig_from", "to": "orig_to", "subject": "orig_subject",
                "date": "orig_date", "message-id": "orig_message_id"}
FAILURE_COLUMNS = sorted(set(c for c, _ in ARF_COLUMNS.values())) + \
    ["other_fields"] + sorted(ORIG_COLUMNS.values())


def unfold(v):
    """A header value as lib-mail's one-line form: line breaks dropped,
    TABs as spaces, trimmed."""
    return re.sub(r"\r?\n", "", v).replace("\t", " ").strip()


def header_block(text):
    """[(name, raw value)] of an RFC 5322 header block."""
    out = []
    for line in re.split(r"\r?\n", text):
        if line == "":
            break
        if line[0] in " \t" and out:
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
        elif ":" in line:
            name, value = line.split(":", 1)
            out.append((name.strip(), value))
    return out


ENCODED_WORD = re.compile(r"=\?([^?]+)\?([BbQq])\?([^?]*)\?=")


def decode_2047(v):
    """RFC 2047 encoded words decoded where they stand (also inside a
    quoted string, as lib-mail does), the space between two of them
    dropped (RFC 2047 6.2)."""
    v = re.sub(r"(\?=)\s+(?==\?)", r"\1", v)

    def word(m):
        charset, enc, text = m.group(1).split("*")[0], m.group(2).upper(), m.group(3)
        if enc == "B":
            raw = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            raw = quopri.decodestring(text.replace("_", " ").encode(), header=True)
        return raw.decode(charset, "replace")
    return ENCODED_WORD.sub(word, v)


def part_body(part):
    """A part's body as sent, without its transfer encoding (Python parses
    message/* bodies as messages, base64 or not)."""
    raw = part.as_bytes()
    body = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[1]
    cte = (part.get("Content-Transfer-Encoding") or "").strip().lower()
    if cte == "base64":
        body = base64.b64decode(body)
    elif cte == "quoted-printable":
        body = quopri.decodestring(body)
    return body.decode("utf-8", "replace")


# Exim's text-only failure report: its summary lines and the ARF
# fields they stand for
EXIM_FIELDS = {"sender domain": "Reported-Domain", "sender ip address": "Source-IP",
               "received date": "Arrival-Date", "dmarc results": "DMARC-Results"}


def exim_report(text):
    """(ARF text, original headers) of a text-only report, or (None, None)."""
    m = re.search(r"(?m)^------.*$", text)
    summary, rest = (text[:m.start()], text[m.end():]) if m else (text, "")
    fields = {}
    for line in summary.splitlines():
        m = re.fullmatch(r"\s*([^:]+?)\s*:\s*(.*?)\s*", line)
        if m:
            fields.setdefault(m.group(1).lower(), m.group(2))
    if "sender domain" not in fields or "sender ip address" not in fields:
        return None, None
    lines = ["Feedback-Type: auth-failure", "Auth-Failure: dmarc"]
    lines += [f"{name}: {fields[k]}" for k, name in EXIM_FIELDS.items() if fields.get(k)]
    spf, dkim = fields.get("spf alignment"), fields.get("dkim alignment")
    if spf and dkim:
        aligned = [n for n, v in (("dkim", dkim), ("spf", spf)) if v.lower() == "yes"]
        lines.append("Identity-Alignment: " + (", ".join(aligned) or "none"))
    orig = [(k, decode_2047(unfold(v))) for k, v in header_block(rest.lstrip("\r\n"))]
    return "\n".join(lines) + "\n", orig


def failure_expected(path):
    """{column: value} of the failure report a corpus mail carries (an
    ARF part, whatever its label, or a text-only report), or None when
    it has none."""
    msg = email.message_from_bytes(open(path, "rb").read(),
                                   policy=email.policy.compat32)
    arf_text, orig = None, None
    for part in msg.walk():
        ct = part.get_content_type()
        if ct == "message/feedback-report":
            arf_text = part_body(part)
        elif ct == "text/plain" and arf_text is None and \
                part.get_filename() is None:
            body = part_body(part)
            if re.match(r"(?i)Feedback-Type\s*:", body):
                arf_text = body
            elif orig is None:
                arf_text, orig = exim_report(body)
        elif ct == "text/rfc822-headers" and orig is None:
            orig = [(k, decode_2047(unfold(v))) for k, v in
                    header_block(part.get_payload(decode=True).decode("utf-8", "replace"))]
        elif ct == "message/rfc822" and orig is None:
            inner = part.get_payload()[0]
            orig = [(k, decode_2047(unfold(v))) for k, v in inner.items()]
    if arf_text is None:
        return None
    row = {c: None for c in FAILURE_COLUMNS}
    other = []
    for name, value in header_block(arf_text):
        value = unfold(value)
        col = ARF_COLUMNS.get(name.lower())
        if col is None:
            other.append(f"{name}: {value}")
            continue
        col, lower = col
        if col == "source_ip":
            value = norm_ip(value)
        if lower:
            value = value.lower()
        value = cut(value)
        row[col] = value if row[col] is None else cut(row[col] + "\n" + value)
    row["other_fields"] = cut("\n".join(other)) if other else None
    for name, value in orig or []:
        col = ORIG_COLUMNS.get(name.lower())
        if col is not None and row[col] is None:
            row[col] = cut(value.strip())
    return row


def failure_stored(dc, user):
    cols = ", ".join(FAILURE_COLUMNS)
    return [dict(zip(FAILURE_COLUMNS, r)) for r in
            dc.query(user, f"SELECT {cols} FROM failure_reports ORDER BY id")]


# --- corpus through LMTP and import ----------------------------------------------------

def corpus_mail(path, i):
    """The mail a corpus file arrives in: itself for a .eml, else a mail
    with it attached."""
    data = open(path, "rb").read()
    if path.endswith(".eml"):
        return data
    return reportmail.report_mail(
        [(os.path.basename(path), data, ("application", "tlsrpt+json"))],
        f"<tls-{i}@e2e.test>", subject="Report Domain: TLS")


def deliver_corpus(dc, user):
    for i, path in enumerate(corpus_paths("tlsrpt") + corpus_paths("failure")):
        dc.lmtp_deliver_ok(corpus_mail(path, i), user)


def import_corpus(dc, user):
    d = dc.path("import-" + user)
    os.makedirs(d, exist_ok=True)
    for src in corpus_paths("tlsrpt") + corpus_paths("failure"):
        dst = os.path.join(d, os.path.basename(src))
        shutil.copyfile(src, dst)
        os.chown(dst, dc.uid, dc.uid)
    os.chown(d, dc.uid, dc.uid)
    r = dc.doveadm(["dmarc", "import", d], user=user)
    check_equal(r.returncode, 0, f"import: {r.stderr.strip()}")


def check_tls_user(dc, user):
    expected = {}
    for path in corpus_paths("tlsrpt"):
        docs = tls_documents(path)
        check(docs, f"{path}: no TLS report found by the test's own parse")
        for doc in docs:
            report, policies = tls_expected(doc)
            expected.setdefault(report[:2], []).append((report, policies))
    stored = tls_stored(dc, user)
    check_equal(sorted(stored), sorted(expected), f"{user}: TLS reports stored")
    for key, (report, policies) in stored.items():
        # a resent report (rpt01.eml and rfc8460.json) is stored once: as
        # one of the documents that carry it
        candidates = [(r, [p[:6] + (p[6],) for p in ps]) for r, ps in expected[key]]
        check((report, policies) in candidates,
              f"{user}: {key} stored as {report} {policies}; "
              f"expected one of {candidates}")


def check_failure_user(dc, user):
    expected = [e for e in (failure_expected(p) for p in corpus_paths("failure"))
                if e is not None]
    # the LinkedIn report comes with CRLF and LF line ends: stored once
    distinct = []
    for e in expected:
        if e not in distinct:
            distinct.append(e)
    stored = failure_stored(dc, user)
    check_equal(len(stored), len(distinct), f"{user}: failure reports stored")
    for row in stored:
        check(row in distinct, f"{user}: stored {row}\nnot among the expected "
                               f"{[d for d in distinct if d['source_ip'] == row['source_ip']]}")


def test_corpus_lmtp(dc):
    """Every tlsrpt/ and failure/ file delivered over LMTP: every field
    as the test's own parse says."""
    need_corpus()
    deliver_corpus(dc, "lmtp")
    check_tls_user(dc, "lmtp")
    check_failure_user(dc, "lmtp")
    # the raw attachments are in the archive
    rows = dc.query("lmtp", "SELECT archive_path FROM tls_reports UNION ALL"
                            " SELECT archive_path FROM failure_reports")
    for (p,) in rows:
        check(p is not None and os.path.isfile(os.path.join(dc.archive_dir("lmtp"), p)),
              f"archive file {p!r} missing")
    # the reported message of a failure report is archived whole, its raw
    # bytes as they are in the mail (message/rfc822 and
    # text/rfc822-headers alike; LMTP made the line ends CRLF)
    archived = []
    for root, _, files in os.walk(dc.archive_dir("lmtp")):
        for f in files:
            archived.append(open(os.path.join(root, f), "rb").read()
                            .replace(b"\r\n", b"\n"))
    for path in corpus_paths("failure"):
        raw = open(path, "rb").read().replace(b"\r\n", b"\n")
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        cts = [p.get_content_type() for p in msg.walk()]
        if "message/feedback-report" not in cts:
            continue
        want = "message/rfc822" if "message/rfc822" in cts else "text/rfc822-headers"
        orig = [a for a in archived if len(a) > 100 and a in raw and
                re.match(rb"[A-Za-z-]+:", a) and b"Feedback-Type" not in a]
        check(orig, f"{os.path.basename(path)}: its {want} part is not in the archive")
    # the Exim report without an ARF part is stored from its text
    check(re.search(r"msgid=<E1u1tpB-00AA5u-ED@node04\.mailgate\.example"
                    r"\.net>.*Stored failure report for example\.com from "
                    r"203\.0\.113\.68 \(dmarc\)", dc.log_text()),
          "the Exim text-only report is not stored")


def test_corpus_import(dc):
    """The same files through doveadm dmarc import: the same rows."""
    need_corpus()
    import_corpus(dc, "imp")
    check_tls_user(dc, "imp")
    check_failure_user(dc, "imp")


def test_expected_json(dc):
    """The shipped .expected.json files agree with what was stored."""
    need_corpus()
    stored = tls_stored(dc, "lmtp")
    for name in ("mail-auth--rpt01", "mail-auth--rpt02"):
        doc = json.load(open(os.path.join(CORPUS, "tlsrpt", name + ".expected.json")))
        report, policies = tls_expected(doc)
        got = stored.get(report[:2])
        check(got is not None, f"{name}: {report[:2]} not stored")
        check_equal(got[0][2:4], report[2:4], f"{name}: date range")
        check_equal([p[:6] for p in got[1]], [p[:6] for p in policies],
                    f"{name}: policies")
        check_equal([len(p[6]) for p in got[1]], [len(p[6]) for p in policies],
                    f"{name}: failure-details entries")
    rows = failure_stored(dc, "lmtp")
    for name in ("mail-auth--004", "mail-auth--005"):
        exp = json.load(open(os.path.join(CORPUS, "failure", name + ".expected.json")))
        match = [r for r in rows if r["source_ip"] == exp["source_ip"]]
        check_equal(len(match), 1, f"{name}: reports from {exp['source_ip']}")
        r = match[0]
        for key in ("user_agent", "original_mail_from", "original_envelope_id"):
            check_equal(r[key], exp[key], f"{name}: {key}")
        check_equal(r["reported_domain"].split("\n"), exp["reported_domain"],
                    f"{name}: reported_domain")
        check_equal(r["auth_failure"], exp["auth_failure"].lower(), f"{name}: auth_failure")
        if exp.get("headers"):
            check(r["orig_subject"] in decode_2047(exp["headers"]) or
                  r["orig_subject"] in exp["headers"], f"{name}: subject")


# --- doveadm ------------------------------------------------------------------------

def doveadm_json(dc, args, user):
    r = dc.doveadm(args, user=user, fmt="json")
    check_equal(r.returncode, 0, f"doveadm {' '.join(args)}: {r.stderr.strip()}")
    out = r.stdout.strip()
    return json.loads(out) if out else []


def check_show_kinds(dc, rows):
    """Every TLS and failure row of list has an id that show --type takes;
    show prints the report completely (against the database, which the
    corpus tests compare with an independent parse), as JSON with lists
    and as text."""
    tls = tls_stored(dc, "lmtp")
    failures = {f["id"]: f for f in
                [dict(zip(["id"] + FAILURE_COLUMNS, r)) for r in dc.query(
                    "lmtp", "SELECT id, " + ", ".join(FAILURE_COLUMNS) +
                    " FROM failure_reports")]}
    ids = {"tls": set(), "failure": set()}
    for row in rows:
        if row["type"] == "aggregate":
            continue
        check(isinstance(row["id"], int) and row["id"] > 0, f"list id of {row}")
        ids[row["type"]].add(row["id"])
        shown = doveadm_json(dc, ["dmarc", "show", "--type", row["type"], str(row["id"])],
                             "lmtp")
        check_equal(len(shown), 1, f"show --type {row['type']} {row['id']}")
        got = shown[0]
        check_equal((got["type"], got["id"]), (row["type"], row["id"]), "show: type and id")
        if row["type"] == "tls":
            (org, report_id, begin, end, contact), policies = tls[(got["org"], got["report_id"])]
            check_equal((got["org"], got["report_id"], got["contact_info"]),
                        (org, report_id, contact), "show tls: report fields")
            check_equal(len(got["policies"]), len(policies), "show tls: policies")
            for p, (ptype, strings, domain, mxs, succ, fail, fails) in zip(got["policies"],
                                                                           policies):
                check_equal((p["policy_type"], p["policy_strings"], p["policy_domain"],
                             p["mx_hosts"], p["successful_sessions"], p["failed_sessions"]),
                            (ptype, strings.split("\n") if strings else [], domain,
                             mxs.split("\n") if mxs else [], succ, fail),
                            f"show tls policy of {report_id}")
                check_equal([tuple(d.values()) for d in p["failure_details"]], fails,
                            f"show tls failure details of {report_id}")
        else:
            want = failures[row["id"]]
            check_equal({c: got[c] for c in FAILURE_COLUMNS},
                        {c: want[c] for c in FAILURE_COLUMNS},
                        f"show failure {row['id']}: every ARF field")
        r = dc.doveadm(["dmarc", "show", "--type", row["type"], str(row["id"])], user="lmtp")
        check(r.returncode == 0 and f"\ntype: {row['type']}\n" in "\n" + r.stdout,
              f"show --type {row['type']} as text: {r.stdout[:500]}")
    check_equal((len(ids["tls"]), len(ids["failure"])), (len(tls), len(failures)),
                "list: one id per TLS and failure report")
    r = dc.doveadm(["dmarc", "show", "--type", "tls", "999999"], user="lmtp", fmt="json")
    check_equal((r.returncode, r.stdout.strip()), (68, "[]"), "show of an unknown TLS id")
    r = dc.doveadm(["dmarc", "show", "--type", "nothing", "1"], user="lmtp")
    check_equal(r.returncode, 64, "show --type nothing: usage error")


def test_doveadm(dc):
    """list with a type column and filter, tls (per policy and grouped),
    failures, summary's TLS rate, for the LMTP user."""
    need_corpus()
    # an aggregate report for a domain that also has TLS reports
    xml = reportmail.report_xml("agg-tls-1", domain="company-y.example")
    dc.lmtp_deliver_ok(reportmail.report_mail([("agg.xml", xml)], "<agg-tls@e2e.test>"),
                       "lmtp")
    n_tls = dc.query("lmtp", "SELECT count(*) FROM tls_reports")[0][0]
    n_fail = dc.query("lmtp", "SELECT count(*) FROM failure_reports")[0][0]
    n_pol = dc.query("lmtp", "SELECT count(*) FROM tls_policies")[0][0]
    rows = doveadm_json(dc, ["dmarc", "list"], "lmtp")
    types = [r["type"] for r in rows]
    check_equal((types.count("aggregate"), types.count("tls"), types.count("failure")),
                (1, n_tls, n_fail), "list rows per type")
    for t, n in (("tls", n_tls), ("failure", n_fail), ("aggregate", 1)):
        got = doveadm_json(dc, ["dmarc", "list", "type", t], "lmtp")
        check_equal(len(got), n, f"list type {t}")
        check(all(r["type"] == t for r in got), f"list type {t}: other types")
    r = dc.doveadm(["dmarc", "list", "type", "bogus"], user="lmtp")
    check_equal(r.returncode, 64, "list type bogus: usage error")
    check_show_kinds(dc, rows)

    pol = doveadm_json(dc, ["dmarc", "tls"], "lmtp")
    check_equal(len(pol), n_pol, "tls: one row per policy")
    sessions = dc.query("lmtp", "SELECT total(success_count + failure_count),"
                                " total(failure_count) FROM tls_policies")[0]
    check_equal((sum(int(p["sessions"]) for p in pol), sum(int(p["failures"]) for p in pol)),
                (int(sessions[0]), int(sessions[1])), "tls: session totals")
    for group in ("policy-domain", "mx", "day"):
        g = doveadm_json(dc, ["dmarc", "tls", "--group-by", group], "lmtp")
        check_equal((sum(int(x["sessions"]) for x in g), sum(int(x["failures"]) for x in g)),
                    (int(sessions[0]), int(sessions[1])), f"tls --group-by {group} totals")
    failed = dc.query("lmtp", "SELECT total(failed_session_count) FROM tls_failures")[0][0]
    for group in ("result-type", "sending-ip"):
        g = doveadm_json(dc, ["dmarc", "tls", "--group-by", group], "lmtp")
        check_equal(sum(int(x["failures"]) for x in g), int(failed),
                    f"tls --group-by {group}: failed sessions")
    g = doveadm_json(dc, ["dmarc", "tls", "--group-by", "result-type"], "lmtp")
    check("quantum-handshake-flux" in [x["key"] for x in g],
          "an unknown result-type is kept as reported")
    dom = doveadm_json(dc, ["dmarc", "tls", "domain", "company-y.example"], "lmtp")
    check(dom and all(p["policy_domain"] == "company-y.example" for p in dom),
          f"tls domain filter: {dom}")
    r = dc.doveadm(["dmarc", "tls", "--group-by", "nothing"], user="lmtp")
    check_equal(r.returncode, 64, "tls --group-by nothing: usage error")

    fails = doveadm_json(dc, ["dmarc", "failures"], "lmtp")
    check_equal(len(fails), n_fail, "failures: one row per report")
    one = doveadm_json(dc, ["dmarc", "failures", "source", "148.163.85.0/24"], "lmtp")
    check_equal([f["source_ip"] for f in one], ["148.163.85.135"], "failures source filter")
    one = doveadm_json(dc, ["dmarc", "failures", "domain", "interpublication.org"], "lmtp")
    check_equal(len(one), 1, "failures domain filter")
    check_equal(one[0]["subject"], "Wir kaufen dein Auto!", "failures: subject")

    summ = doveadm_json(dc, ["dmarc", "summary"], "lmtp")
    row = [s for s in summ if s["domain"] == "company-y.example"]
    check_equal(len(row), 1, "summary row of company-y.example")
    succ, total = dc.query("lmtp", "SELECT total(success_count),"
                                   " total(success_count + failure_count) FROM"
                                   " tls_policies WHERE policy_domain = 'company-y.example'")[0]
    check_equal(row[0]["tls_success_rate"], f"{100.0 * succ / total:.1f}",
                "summary: TLS success rate")
    # a domain with TLS reports only has a row for its TLS rate too
    tls_domains = {d for (d,) in dc.query("lmtp", "SELECT DISTINCT policy_domain"
                                                  " FROM tls_policies WHERE policy_domain != ''")}
    check_equal({s["domain"] for s in summ}, tls_domains | {"company-y.example"},
                "summary domains")
    for s_row in summ:
        if s_row["domain"] == "company-y.example":
            continue
        check_equal(s_row["verdict"], "no aggregate reports, TLS reports only",
                    f"summary verdict of {s_row['domain']}")
        succ, total = dc.query("lmtp", "SELECT total(success_count), total(success_count"
                                       " + failure_count) FROM tls_policies WHERE"
                                       " policy_domain = ?", (s_row["domain"],))[0]
        check_equal(s_row["tls_success_rate"],
                    f"{(100.0 * succ / total if total else 0.0):.1f}",
                    f"summary TLS rate of {s_row['domain']}")
    # tab output: one value per cell
    r = dc.doveadm(["dmarc", "tls"], user="lmtp", fmt="tab")
    lines = r.stdout.rstrip("\n").split("\n")
    check(all(len(l.split("\t")) == len(lines[0].split("\t")) for l in lines),
          "tls -f tab: a value split a row")
    # record filters select aggregate records only: without a type they
    # list aggregate reports, with another kind named they are refused
    check_equal({r["type"] for r in doveadm_json(dc, ["dmarc", "list", "dkim", "pass"],
                                                 "lmtp")},
                {"aggregate"}, "a record filter lists aggregate reports only")
    for args, word, kind in ((["list", "dkim", "pass", "type", "tls"], "dkim", "tls"),
                             (["list", "type", "failure", "not", "spf", "fail"], "spf",
                              "failure"),
                             (["list", "type", "tls", "source", "192.0.2.1"], "source", "tls"),
                             (["tls", "disposition", "none"], "disposition", "tls"),
                             (["failures", "header_from", "a.example"], "header_from",
                              "failure")):
        r = dc.doveadm(["dmarc"] + args, user="lmtp")
        check_equal(r.returncode, 64, f"{args}: usage error")
        check(f"Filter {word} does not apply to {kind} reports" in r.stderr,
              f"{args}: says why: {r.stderr}")
    r = dc.doveadm(["dmarc", "tls", "type", "failure"], user="lmtp")
    check_equal(r.returncode, 64, "tls type failure: usage error")
    # not, report and type apply to TLS and failure reports too
    tls_rows = doveadm_json(dc, ["dmarc", "list", "type", "tls"], "lmtp")
    first = tls_rows[0]
    others = doveadm_json(dc, ["dmarc", "list", "type", "tls", "not", "report",
                               str(first["id"])], "lmtp")
    check_equal(sorted(r["id"] for r in others),
                sorted(r["id"] for r in tls_rows if r["id"] != first["id"]),
                "list type tls not report <id>")
    check_equal(doveadm_json(dc, ["dmarc", "list", "type", "tls", "report", str(first["id"])],
                             "lmtp"), [first], "list type tls report <id>")
    not_y = doveadm_json(dc, ["dmarc", "tls", "not", "domain", "company-y.example"], "lmtp")
    check(not_y and all(p["policy_domain"] != "company-y.example" for p in not_y),
          f"tls not domain: {not_y}")
    check_equal(len(not_y) + len(dom), n_pol, "tls: domain and not domain split the policies")


def test_expire(dc):
    """expire deletes TLS and failure reports with the rest, and their
    archive files with --archive."""
    need_corpus()
    deliver_corpus(dc, "exp")
    before = dc.query("exp", "SELECT count(*) FROM tls_reports")[0][0] + \
        dc.query("exp", "SELECT count(*) FROM failure_reports")[0][0]
    paths = [p for (p,) in dc.query("exp", "SELECT archive_path FROM tls_reports UNION"
                                           " SELECT archive_path FROM failure_reports")]
    r = dc.doveadm(["dmarc", "expire", "--before", "2099-01-01", "--archive"],
                   user="exp", fmt="json")
    check_equal(r.returncode, 0, f"expire: {r.stderr}")
    out = json.loads(r.stdout)
    check_equal(int(out[0]["reports"]), before, "reports deleted")
    for t in ("tls_reports", "tls_policies", "tls_failures", "failure_reports"):
        check_equal(dc.query("exp", f"SELECT count(*) FROM {t}")[0][0], 0, f"{t} after expire")
    for p in paths:
        check(not os.path.exists(os.path.join(dc.archive_dir("exp"), p)),
              f"archive file {p} kept")


# --- hostile JSON and ARF -----------------------------------------------------------

def lmtp_peak_kib(dc):
    peak = 0
    for pid in dovetest.Dovecot._children(dc.master_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if not f.read().split(b"\0")[0].endswith(b"lmtp"):
                    continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
    return peak


TLS_HEAD = ('{"organization-name": "hostile", "report-id": "%s",'
            ' "date-range": {"start-datetime": "2024-01-01T00:00:00Z",'
            ' "end-datetime": "2024-01-02T00:00:00Z"},')


def tls_json(rid, rest):
    return (TLS_HEAD % rid + rest).encode()


def arf_mail(name, arf, original=None, original_type="text/rfc822-headers"):
    atts = [("report", "message/feedback-report", arf)]
    if original is not None:
        atts.append(("original", original_type, original))
    return hostile_inputs.mail(name, atts)


def hostile_cases():
    """(name, mail, stored rows of (table, where), log regex)"""
    million = b"[" + b",".join([b"{}"] * 1_000_000) + b"]"
    cases = [
        ("tls-deep", [("deep.json", "application/tlsrpt+json",
                       tls_json("deep", '"x": ' + "[" * 200000))],
         0, r"Not stored: JSON nested deeper than 32"),
        ("tls-huge-number", [("num.json", "application/tlsrpt+json",
                              tls_json("num", '"policies": [{"summary":'
                                       ' {"total-successful-session-count":'
                                       ' 1' + '0' * 400 + '}}]}'))],
         # Dovecot 2.4's JSON parser refuses the number itself
         0, r"Not stored: (total-successful-session-count .* is not a count|"
            r"not valid JSON: Number overflow)"),
        ("tls-huge-string", [("str.json.gz", "application/tlsrpt+gzip",
                              gzip.compress(tls_json("str", '"contact-info": "' +
                                                     "x" * (4 << 20) +
                                                     '", "policies": []}')))],
         1, r"Stored TLS report str"),
        ("tls-too-big", [("big.json.gz", "application/tlsrpt+gzip",
                          gzip.compress(tls_json("big", '"contact-info": "' +
                                                 "x" * (100 << 20) + '", "policies": []}')))],
         0, r"Not stored: TLS report: larger than dmarcreport_max_tls_report_size"),
        ("tls-million", [("million.json.gz", "application/tlsrpt+gzip",
                          gzip.compress(tls_json("million", '"policies": [{'
                                                 '"failure-details": ' +
                                                 million.decode() + '}]}')))],
         0, r"Not stored: more than 10000 policies and failure-details entries"),
        ("tls-bad-utf8", [("utf8.json", "application/tlsrpt+json",
                           tls_json("utf8", '"contact-info": "a\xffb",'
                                    ' "policies": []}'.replace("\xff", "@@")
                                    ).replace(b"@@", b"\xff\xfe"))],
         1, r"Stored TLS report utf8"),
        ("tls-dup-keys", [("dup.json", "application/tlsrpt+json",
                           tls_json("dup-1", '"report-id": "dup-2", "policies": []}'))],
         1, r"Stored TLS report dup-2"),
        ("tls-missing", [("miss.json", "application/tlsrpt+json",
                          b'{"organization-name": "x", "policies": []}')],
         0, r"Not stored: not a TLS report \(no report-id\)"),
        ("tls-not-json", [("bad.json", "application/tlsrpt+json",
                           b'{"report-id": "x", "policies": [1, 2')],
         0, r"Not stored: not valid JSON"),
        ("arf-10mb-headers", None, 1,
         r"Not stored: failure report part: larger than dmarcreport_max_failure_report_size"),
        ("arf-many-fields", None, 1, r"Stored failure report for many\.example"),
        ("arf-bad-ip", None, 0, r"Not stored: Source-IP .* is not an IP address"),
        ("arf-abuse", None, 0, r"Not stored: not a DMARC failure report \(Feedback-Type: abuse\)"),
        ("arf-no-type", None, 0, None),
        # a report with 40 big parts it does not keep: each is read and
        # dropped in turn, none stays in memory until the mail's end
        ("arf-many-big-parts", None, 1, r"Stored failure report for parts\.example"),
    ]
    arf = (b"Feedback-Type: auth-failure\nUser-Agent: hostile/1\nVersion: 1\n"
           b"Source-IP: 192.0.2.9\nReported-Domain: big.example\n")
    huge_headers = b"".join(b"X-Filler-%d: %s\n" % (i, b"y" * 990)
                            for i in range(10 * 1024)) + b"From: a@big.example\n\n"
    many = (b"Feedback-Type: auth-failure\nReported-Domain: many.example\n" +
            b"Reported-URI: http://many.example/\n" * 25000)
    out = []
    for name, atts, stored, rx in cases:
        if name == "arf-10mb-headers":
            mail = arf_mail(name, arf, huge_headers)
        elif name == "arf-many-fields":
            mail = arf_mail(name, many)
        elif name == "arf-bad-ip":
            mail = arf_mail(name, b"Feedback-Type: auth-failure\nSource-IP: 999.1.1.1\n")
        elif name == "arf-abuse":
            mail = arf_mail(name, b"Feedback-Type: abuse\nUser-Agent: x\n")
        elif name == "arf-many-big-parts":
            mail = many_big_parts_mail(name)
        elif name == "arf-no-type":
            # a header block and no Feedback-Type anywhere: not a report
            mail = arf_mail(name, b"User-Agent: x\nVersion: 1\n")
            rx = r"Not stored: a header block without a failure report"
            stored = 0
        else:
            mail = hostile_inputs.mail(name, atts)
        out.append((name, mail, stored, rx))
    return out


def many_big_parts_mail(name):
    """A failure report with 40 parts just under
    dmarcreport_max_failure_report_size, sent as real reporters do (8bit,
    no file names): header blocks before the report (the first is its
    original, the others are dropped) and reported messages after it
    (archived only)."""
    block = b"".join(b"X-Filler-%d: %s\n" % (i, b"y" * 980) for i in range(1000))
    body = b"z" * 999 + b"\n"
    parts = [b"Content-Type: text/plain\n\nA DMARC failure report\n"]
    parts += [b"Content-Type: text/rfc822-headers\n\n" + block +
              b"From: a@parts.example\n\n"] * 20
    parts.append(b"Content-Type: message/feedback-report\n\n"
                 b"Feedback-Type: auth-failure\nVersion: 1\n"
                 b"Source-IP: 192.0.2.9\nReported-Domain: parts.example\n")
    parts += [b"Content-Type: message/rfc822\n\nFrom: a@parts.example\n"
              b"Subject: s\n\n" + body * 1000] * 20
    boundary = b"=_hostile_" + name.encode()
    return (b"From: reporter@hostile.example\nTo: dmarc@example.com\n"
            b"Subject: hostile case " + name.encode() + b"\n"
            b"Message-ID: <" + name.encode() + b"@hostile.example>\n"
            b"MIME-Version: 1.0\nContent-Type: multipart/report;"
            b" report-type=feedback-report; boundary=\"" + boundary + b"\"\n\n" +
            b"".join(b"--" + boundary + b"\n" + p + b"\n" for p in parts) +
            b"--" + boundary + b"--\n")


# Cases whose parts must not add up in memory: the lmtp peak RSS may
# grow by this much at most while one is delivered (the 40 parts of 1 MB
# kept until the mail's end grew it by about 26 MB).
RSS_GROWTH_LIMIT_KIB = {"arf-many-big-parts": 12 * 1024}


def stored_count(dc):
    rows = dc.query("hostile", "SELECT (SELECT count(*) FROM tls_reports) +"
                               " (SELECT count(*) FROM failure_reports)")
    return rows[0][0] if rows else 0


def test_hostile(dc):
    """Each hostile case: delivered, the expected reports stored, one
    warning naming the mail and the reason; the lmtp process stays
    under 64 MiB."""
    failures = []
    for name, mail, stored, rx in hostile_cases():
        mark = dc.log_mark()
        before = stored_count(dc)
        peak_before = lmtp_peak_kib(dc)
        t0 = time.monotonic()
        dc.lmtp_deliver_ok(mail, "hostile")
        elapsed = time.monotonic() - t0
        got = stored_count(dc) - before
        if stored is not None and got != stored:
            failures.append(f"{name}: {got} stored, expected {stored}")
        lines = dc.wait_log(rx, mark)
        if not lines:
            failures.append(f"{name}: no log line matching {rx!r}; "
                            f"log: {dc.log_since(mark)[-600:]}")
        for line in dc.log_since(mark).splitlines():
            if "dmarcreport:" in line and f"<{name}@hostile.example>" not in line:
                failures.append(f"{name}: a log line without the message-id: {line}")
                break
        # one warning at most, and it is the expected one
        warnings = [l for l in dc.log_since(mark).splitlines()
                    if "Warning:" in l and "Not stored" in l]
        if len(warnings) > 1 or any(not re.search(rx, w) for w in warnings):
            failures.append(f"{name}: warnings other than {rx!r}: {warnings}")
        peak = lmtp_peak_kib(dc)
        print(f"# {name}: {len(mail)} bytes mailed, delivered in {elapsed:.2f} s, "
              f"lmtp peak RSS so far {peak} KiB")
        if name in RSS_GROWTH_LIMIT_KIB and not os.environ.get("E2E_PRELOAD") and \
                peak - peak_before > RSS_GROWTH_LIMIT_KIB[name]:
            failures.append(f"{name}: lmtp peak RSS grew from {peak_before} to {peak} KiB")
    check(not failures, "\n".join(failures))
    peak = lmtp_peak_kib(dc)
    print(f"# lmtp peak RSS: {peak / 1024:.1f} MiB")
    if os.environ.get("E2E_PRELOAD"):
        # ASan's shadow memory and quarantine make RSS meaningless; the
        # plain build of the same suite checks it
        print("# (sanitizer build: RSS not compared with the limit)")
    else:
        check(0 < peak < LMTP_RSS_LIMIT_KIB, f"lmtp peak RSS {peak} KiB")
    check_equal(len(dc.mail_files("hostile")), len(hostile_cases()), "mails in the INBOX")
    rows = dc.query("hostile", "SELECT length(contact_info) FROM tls_reports"
                               " WHERE report_id = 'str'")
    check_equal(rows, [(MAX_VALUE_LENGTH,)], "a 4 MB string is cut")
    rows = dc.query("hostile", "SELECT contact_info FROM tls_reports WHERE report_id = 'utf8'")
    check_equal(rows, [("a\ufffdb",)], "invalid UTF-8 replaced on every Dovecot version")
    # no stored text holds a control character other than the newline
    # that joins repeated values
    for table, cols in (("tls_reports", ("org_name", "report_id", "contact_info")),
                        ("failure_reports", ("reported_domain", "reported_uri",
                                             "orig_from", "other_fields"))):
        for col in cols:
            rows = dc.query("hostile", f"SELECT count(*) FROM {table} WHERE {col} GLOB"
                                       " '*[' || char(1,9,13,27,127) || ']*'")
            check_equal(rows[0][0], 0, f"{table}.{col} with control characters")


def test_no_crash(dc):
    dc.check_no_crash()


TESTS = [
    test_corpus_lmtp,
    test_corpus_import,
    test_expected_json,
    test_doveadm,
    test_expire,
    test_hostile,
    test_no_crash,
]


if __name__ == "__main__":
    if not dovetest.have_doveadm_plugin():
        dovetest.skip("the doveadm plugin is not built")
    dovetest.main(TESTS, lambda: dovetest.Dovecot("tlsfail", users={u: {} for u in USERS}))
