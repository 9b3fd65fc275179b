#!/usr/bin/env python3
"""End-to-end: `doveadm dmarc list|query|summary|import|expire` with the
freshly built doveadm plugin against a private Dovecot. Reports arrive over
LMTP (the Sieve action) or by import; the figures doveadm prints are
checked against figures computed here from the XML, and between the
commands (group totals = list totals, import = delivery)."""

import ipaddress
import json
import os
import re
import shutil
import sqlite3
import sys

sys.dont_write_bytecode = True

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import hostile_inputs  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal, skip_test  # noqa: E402

CORPUS = dovetest.CORPUS_DIR

# lmtp: corpus delivered over LMTP; imp: the same files imported;
# eml: corpus mails imported as files; mbox: mails kept in INBOX without
# the action, then imported from there; exp: expire; nodb: never gets a
# database; newer: a database of a future schema; arch: import --archive;
# robust: imports of bad inputs; show: the RFC 9990 sample alone
USERS = ["lmtp", "imp", "eml", "mbox", "exp", "nodb", "newer", "arch", "robust",
         "show", "anomaly"]
KEEP_ONLY = "keep;\n"

EX_USAGE = 64
EX_NOINPUT = 66
EX_DATAERR = 65  # DOVEADM_EX_NOTPOSSIBLE
EX_NOTFOUND = 68  # doveadm's DOVEADM_EX_NOTFOUND

state = {}


def need_corpus():
    if not dovetest.have_corpus():
        skip_test(f"corpus not found at {CORPUS}")


def doveadm_ok(dc, args, user=None, fmt="json"):
    r = dc.doveadm(args, user=user, fmt=fmt)
    check(r.returncode == 0,
          f"doveadm {' '.join(args)} -u {user}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def doveadm_json(dc, args, user=None):
    out = doveadm_ok(dc, args, user).stdout.strip()
    return json.loads(out) if out else []


def report_key(row):
    return (row["org"], row["report_id"], row["domain"])


def comparable(rows):
    """List rows without what differs between two users' copies (the
    archive path, the row id)."""
    return sorted(tuple((k, v) for k, v in sorted(row.items())
                        if k not in ("archive", "id"))
                  for row in rows)


def corpus_expectations():
    """{key: facts} of the distinct reports of aggregate/, and how many
    files repeat a report seen in an earlier one."""
    expected, repeats = {}, 0
    for path in reportmail.corpus_files(CORPUS, "aggregate"):
        for facts in reportmail.attachment_facts(open(path, "rb").read()):
            if facts["key"] in expected:
                repeats += 1
            else:
                expected[facts["key"]] = facts
    return expected, repeats


def copy_for_user(dc, sources, name):
    """The files, readable by the test user (doveadm runs as it)."""
    d = dc.path(name)
    os.makedirs(d, exist_ok=True)
    for src in sources:
        dst = os.path.join(d, os.path.basename(src))
        shutil.copyfile(src, dst)
        os.chown(dst, dc.uid, dc.uid)
    os.chown(d, dc.uid, dc.uid)
    return d


def totals(rows, *fields):
    return tuple(sum(r[f] for r in rows) for f in fields)


# --- delivery, then list --------------------------------------------------------

def test_list_after_lmtp(dc):
    """Every aggregate/ file delivered in its own mail: list has one row
    per distinct report, with its record and message counts."""
    need_corpus()
    expected, repeats = corpus_expectations()
    for i, path in enumerate(reportmail.corpus_files(CORPUS, "aggregate")):
        name = os.path.basename(path)
        mail = reportmail.report_mail([(name, open(path, "rb").read())],
                                      f"<doveadm-{i}@e2e.test>")
        dc.lmtp_deliver_ok(mail, "lmtp")
    rows = doveadm_json(dc, ["dmarc", "list"], "lmtp")
    got = {report_key(r): r for r in rows}
    check_equal(len(rows), len(got), "list rows with a distinct key")
    check_equal(sorted(got), sorted(expected), "reports listed")
    for key, facts in expected.items():
        check_equal(got[key]["records"], facts["records"], f"{key} records")
        check_equal(got[key]["messages"], facts["messages"], f"{key} messages")
        check(0 <= got[key]["dmarc_pass"] <= got[key]["messages"], f"{key} dmarc_pass")
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got[key]["begin"]),
              f"{key}: begin {got[key]['begin']!r} is not ISO 8601 UTC")
        check(got[key]["archive"] == "" or os.path.isfile(got[key]["archive"]),
              f"{key}: archive {got[key]['archive']!r} is not a file")
    check_equal(totals(rows, "records", "messages"),
                (sum(f["records"] for f in expected.values()),
                 sum(f["messages"] for f in expected.values())),
                "list totals (records, messages)")
    state["lmtp_rows"] = rows
    state["repeats"] = repeats
    print(f"# list: {len(rows)} reports, {totals(rows, 'records')[0]} records, "
          f"{totals(rows, 'messages')[0]} messages, "
          f"{totals(rows, 'dmarc_pass')[0]} passing DMARC")


def test_list_tab(dc):
    """-f tab: a header line, then one line of 12 fields per report (the
    first is the id, the last the type)."""
    rows = state.get("lmtp_rows") or skip_test("no deliveries")
    out = doveadm_ok(dc, ["dmarc", "list"], "lmtp", fmt="tab").stdout
    lines = out.rstrip("\n").split("\n")
    header = lines[0].split("\t")
    check_equal(len(header), 12, "tab header fields")
    check_equal(header[-1], "Type", "the last column")
    parsed = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    check_equal(len(parsed), len(rows), "tab rows")
    for line in lines[1:]:
        check_equal(len(line.split("\t")), 12, f"fields of {line!r}")
        check_equal(line.split("\t")[-1], "aggregate", f"type of {line!r}")
    by_id = sorted((p["Report-ID"], int(p["Messages"])) for p in parsed)
    check_equal(by_id, sorted((r["report_id"], r["messages"]) for r in rows),
                "tab report ids and messages")


def norm_ip(value):
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return value
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def check_show_against_xml(key, got, facts):
    """One report as `show -f json` prints it against the independent
    parse of its XML (reportmail.full_facts)."""
    check_equal(got["format"], facts["format"], f"{key} format")
    # one JSON object: lists are lists, an absent value is null
    check_equal(got["type"], "aggregate", f"{key} type")
    check(isinstance(got["id"], int) and isinstance(got["records"], list) and
          isinstance(got["errors"], list), f"{key}: numbers and lists: {got}")
    check_equal(got["version"], facts["version"], f"{key} version as given")
    check_equal(got["errors"], facts["errors"], f"{key} errors")
    for f in ("email", "extra_contact_info", "generator"):
        if f in facts:
            check_equal(got[f], facts[f], f"{key} {f}")
    pol = facts["policy"]
    for f in ("adkim", "aspf", "fo", "testing", "discovery_method", "p", "sp", "np"):
        if pol.get(f):
            check_equal(got[f], pol[f].lower(), f"{key} {f}")
    if pol.get("pct", "").isdigit():
        check_equal(got["pct"], int(pol["pct"]), f"{key} pct")
    elif not pol.get("pct"):
        check_equal(got["pct"], None, f"{key} pct absent")
    check_equal(got["extensions"] is not None, facts["has_extensions"],
                f"{key} report-level extensions kept: {got['extensions']!r}")
    records = got["records"]
    check_equal(len(records), len(facts["records"]), f"{key} records")
    check_equal(got["record_count"], len(records), f"{key} record_count")
    check_equal(got["messages"], sum(r["count"] for r in records), f"{key} messages")
    for i, (r, x) in enumerate(zip(records, facts["records"])):
        where = f"{key} record {i}"
        check_equal(r["source_ip"], norm_ip(x["source_ip"]), f"{where} source_ip")
        check_equal(r["count"], x["count"], f"{where} count")
        for f in ("disposition", "dkim", "spf"):
            check_equal(r[f], x.get("pe_" + f), f"{where} {f}")
        # present but empty is "", absent is null: as in the XML
        check_equal([(z["type"], z["comment"]) for z in r["reasons"]],
                    x["reasons"], f"{where} reasons")
        for f in ("header_from", "envelope_from", "envelope_to"):
            check_equal(r[f], x[f], f"{where} {f}")
        check_equal([(a["domain"], a["selector"], a["result"]) for a in r["dkim_results"]],
                    x["dkim"], f"{where} dkim")
        check_equal([(a["domain"], a["scope"], a["result"]) for a in r["spf_results"]],
                    x["spf"], f"{where} spf")
        check_equal(r["extensions"] is not None, x["has_extensions"],
                    f"{where} extensions kept")


def test_show_every_report(dc):
    """show <id> prints each listed report completely: every field
    against an independent parse of its XML; show <org> <report_id>
    gives the same; an unknown id is "not found"."""
    need_corpus()
    rows = state.get("lmtp_rows") or skip_test("no deliveries")
    by_key = {report_key(r): r for r in rows}
    compared = 0
    seen = set()
    for path in reportmail.corpus_files(CORPUS, "aggregate"):
        for doc in reportmail.unpack(open(path, "rb").read()):
            facts = reportmail.full_facts(doc)
            key = reportmail.report_facts(doc)["key"]
            # a later file with the same key is a duplicate: the first
            # delivered (in this order) is the one kept
            if key in seen:
                continue
            seen.add(key)
            if facts is None or key not in by_key:
                continue
            shown = doveadm_json(dc, ["dmarc", "show", str(by_key[key]["id"])], "lmtp")
            check_equal(len(shown), 1, f"{key}: one report")
            got = shown[0]
            check_equal((got["org"], got["report_id"], got["domain"]), key, f"{key}: key")
            check_show_against_xml(key, got, facts)
            by_org = doveadm_json(dc, ["dmarc", "show", key[0].upper(), key[1]], "lmtp")
            check(got in by_org, f"{key}: show <org> <report_id> gives it too")
            compared += 1
    check(compared >= 30, f"only {compared} reports compared")
    r = dc.doveadm(["dmarc", "show", "999999"], user="lmtp", fmt="json")
    check_equal(r.returncode, EX_NOTFOUND, f"show of an unknown id: {r.stderr}")
    print(f"# show: {compared} reports compared field by field with their XML")
    # mail-auth--001.xml, --004.xml and parsedmarc--rfc9990-sample.xml share
    # their key (Sample Reporter, 3v98abbp8ya9n3va8yr8oa3ya, example.com)
    # but not their content: the first stays, each later one is a
    # conflicting duplicate, one warning naming both archive files
    log = [l for l in dc.log_text().splitlines()
           if "Conflicting duplicate" in l and "3v98abbp8ya9n3va8yr8oa3ya" in l]
    check_equal(len(log), 2, f"a conflicting duplicate warning each: {log}")
    for line, later in zip(log, ("mail-auth--004.xml", "parsedmarc--rfc9990-sample.xml")):
        check("Warning:" in line and "stored from 2026" in line and
              "/mail-auth--001.xml, this one archived as " in line and later in line,
              f"both archive files named: {line}")
    # the RFC 9990 sample alone, for the record
    path = os.path.join(CORPUS, "aggregate", "parsedmarc--rfc9990-sample.xml")
    dc.lmtp_deliver_ok(reportmail.report_mail(
        [(os.path.basename(path), open(path, "rb").read())], "<rfc9990@e2e.test>"), "show")
    shown = doveadm_json(dc, ["dmarc", "show", "1"], "show")
    check_equal((len(shown), shown[0]["format"], shown[0]["version"]), (1, "rfc9990", "1.0"),
                "the RFC 9990 sample: format and version")
    check_show_against_xml("rfc9990-sample", shown[0],
                           reportmail.full_facts(open(path, "rb").read()))
    print("# show -f json of parsedmarc--rfc9990-sample.xml: " +
          json.dumps(shown, separators=(",", ":")))


def test_query_totals(dc):
    """query rows, and every --group-by, add up to the list totals."""
    rows = state.get("lmtp_rows") or skip_test("no deliveries")
    want_msgs, want_pass, want_records = totals(rows, "messages", "dmarc_pass", "records")
    records = doveadm_json(dc, ["dmarc", "query"], "lmtp")
    check_equal(len(records), want_records, "query rows = records")
    check_equal(sum(r["count"] for r in records), want_msgs, "query counts")
    check_equal(sum(r["count"] for r in records if r["dmarc"] == "pass"), want_pass,
                "query counts passing")
    for group in ("source", "domain", "org", "header_from", "day", "disposition"):
        groups = doveadm_json(dc, ["dmarc", "query", "--group-by", group], "lmtp")
        check_equal(totals(groups, "messages", "pass"), (want_msgs, want_pass),
                    f"--group-by {group}: messages, pass")
        for g in groups:
            check_equal(g["pass"] + g["fail"], g["messages"], f"{group} {g[group]!r}")
            check(0 <= g["pass_rate"] <= 100, f"{group} {g[group]!r} pass_rate")
        keys = [g[group] for g in groups]
        check_equal(len(keys), len(set(keys)), f"--group-by {group}: distinct keys")


def test_summary(dc):
    """summary: one row per policy domain, its messages as in list, a
    verdict of the documented forms."""
    rows = state.get("lmtp_rows") or skip_test("no deliveries")
    per_domain = {}
    for r in rows:
        per_domain[r["domain"]] = per_domain.get(r["domain"], 0) + r["messages"]
    summary = doveadm_json(dc, ["dmarc", "summary"], "lmtp")
    check_equal({s["domain"]: s["messages"] for s in summary}, per_domain,
                "summary messages per domain")
    for s in summary:
        check(re.fullmatch(r"ready for p=reject|too little data \(\d+ msgs\)|"
                           r"fix first: [^ ]+ \(\d+ msgs failing\)(, [^ ]+ \(\d+ msgs failing\))*"
                           r"(, and \d+ more sources)?",
                           s["verdict"]), f"{s['domain']}: verdict {s['verdict']!r}")
        if s["messages"] < 100:
            check(s["verdict"].startswith("too little data"), f"{s['domain']}: {s}")
        for f in ("pass_rate", "dkim_aligned_rate", "spf_aligned_rate"):
            check(0 <= s[f] <= 100, f"{s['domain']} {f}")


def test_filters(dc):
    """Filters select what they say; a bad one is a usage error naming it."""
    rows = state.get("lmtp_rows") or skip_test("no deliveries")
    domain = rows[0]["domain"]
    got = doveadm_json(dc, ["dmarc", "list", "domain", domain.upper()], "lmtp")
    check_equal(comparable(got), comparable([r for r in rows if r["domain"] == domain]),
                f"list domain {domain}")
    v4 = doveadm_json(dc, ["dmarc", "query", "source", "0.0.0.0/0"], "lmtp")
    v6 = doveadm_json(dc, ["dmarc", "query", "source", "::/0"], "lmtp")
    check(all(":" not in r["source_ip"] for r in v4), "source 0.0.0.0/0 gave IPv6 rows")
    check_equal(sum(r["count"] for r in v6), totals(rows, "messages")[0],
                "::/0 covers IPv4 (as ::ffff:0:0/96) and IPv6")
    fails = doveadm_json(dc, ["dmarc", "query", "result", "fail"], "lmtp")
    check(all(r["dmarc"] == "fail" for r in fails), "result fail")
    passes = doveadm_json(dc, ["dmarc", "list", "result", "pass"], "lmtp")
    check_equal(totals(passes, "messages")[0], totals(rows, "dmarc_pass")[0],
                "list result pass counts the passing messages")
    check_equal(doveadm_json(dc, ["dmarc", "list", "since", "2090-01-01"], "lmtp"), [],
                "since a future day")
    # not, report, --limit, --sort; query rows name their report and its end
    notpass = doveadm_json(dc, ["dmarc", "query", "not", "result", "pass"], "lmtp")
    check_equal(sorted(map(json.dumps, notpass)), sorted(map(json.dumps, fails)),
                "not result pass = result fail")
    allrecs = doveadm_json(dc, ["dmarc", "query"], "lmtp")
    by_report = {r["id"]: r for r in rows}
    for rec in allrecs:
        check(rec["report"] in by_report and rec["end"] == by_report[rec["report"]]["end"],
              f"query row names its report and the end of the period: {rec}")
    one = rows[0]
    got = doveadm_json(dc, ["dmarc", "query", "report", str(one["id"])], "lmtp")
    check_equal((len(got), {r["report"] for r in got}), (one["records"], {one["id"]}),
                "query report <id>")
    top = doveadm_json(dc, ["dmarc", "query", "--sort", "messages", "--limit", "3"], "lmtp")
    check_equal([r["count"] for r in top],
                sorted((r["count"] for r in allrecs), reverse=True)[:3],
                "query --sort messages --limit 3")
    biggest = doveadm_json(dc, ["dmarc", "list", "--sort", "messages", "--limit", "1"], "lmtp")
    check_equal(biggest[0]["messages"], max(r["messages"] for r in rows),
                "list --sort messages --limit 1")
    for args, word in ((["dmarc", "list", "colour", "red"], "colour"),
                       (["dmarc", "list", "--sort", "colour"], "colour"),
                       (["dmarc", "query", "--limit", "0"], "limit"),
                       (["dmarc", "query", "not"], "not"),
                       (["dmarc", "list", "since", "tomorrow"], "tomorrow"),
                       (["dmarc", "query", "source", "192.0.2.0/40"], "192.0.2.0/40"),
                       (["dmarc", "query", "--group-by", "ip"], "ip"),
                       (["dmarc", "summary", "domain"], "domain")):
        r = dc.doveadm(args, user="lmtp")
        check_equal(r.returncode, EX_USAGE, f"exit of {args}")
        check(word in r.stderr, f"{args}: error does not name {word!r}: {r.stderr!r}")


# --- import ---------------------------------------------------------------------

def import_counts(dc, args, user):
    rows = doveadm_json(dc, ["dmarc", "import"] + args, user)
    check_equal(len(rows), 1, "import output rows")
    return rows[0]


def test_import_dir_same_as_lmtp(dc):
    """The aggregate/ files imported from a directory give the same list
    as their delivery over LMTP."""
    rows = state.get("lmtp_rows") or skip_test("no deliveries")
    src = copy_for_user(dc, reportmail.corpus_files(CORPUS, "aggregate"), "import-src")
    counts = import_counts(dc, [src], "imp")
    check_equal(counts["new"], len(rows), "import: new")
    check_equal(counts["duplicate"], state["repeats"], "import: duplicates")
    check_equal(counts["records"], totals(rows, "records")[0], "import: records")
    check_equal(counts["failed"], 0, "import: failed")
    check_equal(comparable(doveadm_json(dc, ["dmarc", "list"], "imp")), comparable(rows),
                "list after import = list after delivery")


def test_import_twice(dc):
    """Importing the same files again adds nothing."""
    rows = state.get("lmtp_rows") or skip_test("no deliveries")
    counts = import_counts(dc, [dc.path("import-src")], "imp")
    check_equal((counts["new"], counts["records"]), (0, 0), "second import: new, records")
    check_equal(counts["duplicate"], len(rows) + state["repeats"], "second import: duplicates")
    check_equal(comparable(doveadm_json(dc, ["dmarc", "list"], "imp")), comparable(rows),
                "list after the second import")


def eml_expectations(paths):
    import email
    expected = {}
    for path in paths:
        msg = email.message_from_bytes(open(path, "rb").read())
        for part in msg.walk():
            if part.is_multipart() or (part.get_content_type() in ("text/plain", "text/html")
                                       and not part.get_filename()):
                continue
            for facts in reportmail.attachment_facts(part.get_payload(decode=True)):
                expected[facts["key"]] = facts
    return expected


def test_import_missing_path(dc):
    """A path that does not exist: named in the error, exit 66; the other
    paths are still imported (here: nothing new)."""
    rows = state.get("lmtp_rows") or skip_test("no deliveries")
    r = dc.doveadm(["dmarc", "import", dc.path("no-such-dir"), dc.path("import-src")],
                   user="imp", fmt="json")
    check_equal(r.returncode, EX_NOINPUT, f"import of a missing path: {r.stderr!r}")
    check("no-such-dir" in r.stderr, f"the error does not name the path: {r.stderr!r}")
    counts = json.loads(r.stdout)[0]
    check_equal((counts["new"], counts["duplicate"]), (0, len(rows) + state["repeats"]),
                "the existing path was imported")


def test_import_eml_files(dc):
    """Whole mails (.eml) given as files: each report attachment is taken."""
    need_corpus()
    paths = [p for p in reportmail.corpus_files(CORPUS, "email") if p.endswith(".eml")]
    expected = eml_expectations(paths)
    src = copy_for_user(dc, paths, "import-eml")
    counts = import_counts(dc, [src], "eml")
    check_equal(counts["inputs"], len(paths), "eml import: inputs")
    check_equal(counts["new"], len(expected), "eml import: new")
    got = {report_key(r): r for r in doveadm_json(dc, ["dmarc", "list"], "eml")}
    check_equal(sorted(got), sorted(expected), "eml import: reports")
    for key, facts in expected.items():
        check_equal((got[key]["records"], got[key]["messages"]),
                    (facts["records"], facts["messages"]), f"{key}")


def test_import_mailbox(dc):
    """import --mailbox INBOX from a user whose INBOX holds report mails
    that the Sieve action never saw; a search query picks some of them."""
    need_corpus()
    paths = [p for p in reportmail.corpus_files(CORPUS, "email") if p.endswith(".eml")]
    for path in paths:
        dc.lmtp_deliver_ok(open(path, "rb").read(), "mbox")
    chosen = reportmail.report_mail(
        [("chosen.xml", reportmail.report_xml("mbox-chosen", domain="chosen.example"))],
        "<mbox-chosen@e2e.test>", subject="e2e-chosen report")
    dc.lmtp_deliver_ok(chosen, "mbox")
    check_equal(doveadm_json(dc, ["dmarc", "list"], "mbox"), [],
                "list before import (the script only keeps)")
    counts = import_counts(dc, ["--mailbox", "INBOX", "subject", "e2e-chosen"], "mbox")
    check_equal((counts["inputs"], counts["new"]), (1, 1), "import of the chosen mail")
    counts = import_counts(dc, ["--mailbox", "INBOX"], "mbox")
    expected = eml_expectations(paths)
    check_equal(counts["inputs"], len(paths) + 1, "import --mailbox INBOX: inputs")
    check_equal((counts["new"], counts["duplicate"]), (len(expected), 1),
                "import --mailbox INBOX: new, duplicate")
    listed = doveadm_json(dc, ["dmarc", "list"], "mbox")
    check_equal(len(listed), len(expected) + 1, "reports after import --mailbox")
    r = dc.doveadm(["dmarc", "import", "--mailbox", "NoSuchBox"], user="mbox")
    check_equal(r.returncode, EX_NOTFOUND, "import from a missing mailbox")
    check("NoSuchBox" in r.stderr, f"the error does not name the mailbox: {r.stderr!r}")


def archived_files(dc, user):
    found = []
    for root, _dirs, files in os.walk(dc.archive_dir(user)):
        found += [os.path.join(root, f) for f in files]
    return sorted(found)


def test_import_archive_only_on_request(dc):
    """import copies nothing into the archive dir; with --archive it copies
    each report file and each attachment of a mail, as delivery does."""
    need_corpus()
    for user in ("imp", "eml"):
        listed = doveadm_json(dc, ["dmarc", "list"], user)
        check(listed, f"{user}: nothing imported")
        check_equal([r["archive"] for r in listed if r["archive"]], [],
                    f"{user}: archive paths after import without --archive")
        check_equal(archived_files(dc, user), [], f"{user}: files in the archive dir")

    bare = copy_for_user(dc, reportmail.corpus_files(CORPUS, "aggregate")[:3], "import-arch")
    mails = dc.path("import-eml")
    counts = import_counts(dc, ["--archive", bare, mails], "arch")
    check(counts["new"] > 0, f"import --archive stored nothing: {counts}")
    listed = doveadm_json(dc, ["dmarc", "list"], "arch")
    prefix = dc.archive_dir("arch") + "/"
    paths = [r["archive"] for r in listed]
    check(all(p.startswith(prefix) and os.path.isfile(p) for p in paths),
          f"import --archive: archive paths {paths}")
    check(set(paths) <= set(archived_files(dc, "arch")), "archive paths are the copies")
    for name in os.listdir(bare):
        with open(os.path.join(bare, name), "rb") as f:
            data = f.read()
        copies = [p for p in archived_files(dc, "arch") if os.path.basename(p) == name]
        check(len(copies) == 1 and open(copies[0], "rb").read() == data,
              f"{name}: not copied byte for byte into the archive: {copies}")


def write_user_file(dc, path, data):
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, dc.uid, dc.uid)


def test_import_anomalies_warn(dc):
    """import: what is stored as reported although wrong (pct 150, begin
    after end, a source that is no address) is one warning each, as in
    delivery; the report is stored with those values."""
    src = dc.path("anomaly-src")
    os.mkdir(src, 0o755)
    os.chown(src, dc.uid, dc.uid)
    xml = reportmail.report_xml("anomaly-1", begin=1700086399, end=1700000000,
                                records=(("192.0.2.1", 2), ("999.300.1.1", 3)))
    write_user_file(dc, os.path.join(src, "a.xml"), xml.replace(b"<pct>100<", b"<pct>150<"))
    r = dc.doveadm(["dmarc", "import", src], user="anomaly", fmt="json")
    check_equal(r.returncode, 0, f"import: {r.stderr}")
    warnings = [l for l in r.stderr.splitlines() if "Warning:" in l]
    for what in ("<pct> 150 is not 0..100", "begin 1700086399 is after end 1700000000",
                 "1 records with a source_ip that is not an IP address"):
        check(sum(what in l for l in warnings) == 1, f"one warning '{what}': {r.stderr}")
    check_equal(dc.query("anomaly", "SELECT policy_pct, date_begin, record_count FROM reports"),
                [(150, 1700086399, 2)], "stored as reported")
    check_equal(dc.query("anomaly", "SELECT source_ip, source_ip_valid, count FROM records"
                         " ORDER BY id"),
                [("192.0.2.1", 1, 2), ("999.300.1.1", 0, 3)], "the invalid source kept, marked")


def test_import_goes_on_after_bad_inputs(dc):
    """One bad input does not stop an import: a report whose counts
    overflow is one failure and the files after it are read; a symlink
    loop is walked once; a FIFO, and a directory the user cannot read,
    named on the command line are errors that count and give exit 66
    (not a hang, not exit 0)."""
    src = dc.path("robust-src")
    os.makedirs(os.path.join(src, "sub"))
    big = str(2**63 - 1)
    write_user_file(dc, os.path.join(src, "a-overflow.xml"),
                    hostile_inputs.report_xml("robust-overflow", records=2, count=big))
    write_user_file(dc, os.path.join(src, "b-good.xml"),
                    hostile_inputs.report_xml("robust-b"))
    write_user_file(dc, os.path.join(src, "sub", "c-good.xml"),
                    hostile_inputs.report_xml("robust-c"))
    # a loop back to the top, and a second name of a file
    os.symlink("..", os.path.join(src, "sub", "loop"))
    os.symlink("b-good.xml", os.path.join(src, "d-link.xml"))
    for d in (src, os.path.join(src, "sub")):
        os.chown(d, dc.uid, dc.uid)
    fifo = dc.path("robust-fifo")
    os.mkfifo(fifo)
    os.chown(fifo, dc.uid, dc.uid)
    unreadable = dc.path("robust-unreadable")
    os.mkdir(unreadable, 0o700)          # root's: the user cannot read it
    write_user_file(dc, os.path.join(unreadable, "e.xml"),
                    hostile_inputs.report_xml("robust-e"))

    r = dc.doveadm(["dmarc", "import", src, fifo, unreadable], user="robust", fmt="json")
    check_equal(r.returncode, EX_NOINPUT, f"import with bad inputs: {r.stderr!r}")
    counts = json.loads(r.stdout)[0]
    check_equal(counts["new"], 2, f"reports stored after the bad one: {counts}")
    check_equal(counts["failed"], 3, f"failed: overflow, FIFO, unreadable dir: {counts}")
    check_equal(sorted(x[0] for x in dc.query(
        "robust", "SELECT report_id FROM reports")), ["robust-b", "robust-c"], "reports")
    check("robust-fifo" in r.stderr and "robust-unreadable" in r.stderr,
          f"the errors do not name the paths: {r.stderr!r}")

    # an unreadable directory alone is not "nothing to do"
    r = dc.doveadm(["dmarc", "import", unreadable], user="robust", fmt="json")
    check_equal(r.returncode, EX_NOINPUT, f"import of an unreadable dir: {r.stderr!r}")


# --- expire ---------------------------------------------------------------------

def test_expire(dc):
    """expire --before removes the reports that ended before the date,
    their records, and with --archive their files."""
    days = {"old1": 1577836800, "old2": 1609459200, "new": 4102444800}  # 2020, 2021, 2100
    for rid, begin in days.items():
        xml = reportmail.report_xml(f"exp-{rid}", records=(("192.0.2.9", 3), ("2001:db8::9", 4)),
                                    begin=begin, end=begin + 86399)
        dc.lmtp_deliver_ok(reportmail.report_mail([(f"exp-{rid}.xml", xml)],
                                                  f"<exp-{rid}@e2e.test>"), "exp")
    before = doveadm_json(dc, ["dmarc", "list"], "exp")
    check_equal(len(before), 3, "reports before expire")
    archives = {r["report_id"]: r["archive"] for r in before}
    check(all(os.path.isfile(a) for a in archives.values()), f"archive files: {archives}")
    r = dc.doveadm(["dmarc", "expire"], user="exp")
    check_equal(r.returncode, EX_USAGE, "expire without --before")
    out = doveadm_json(dc, ["dmarc", "expire", "--before", "2022-01-01", "--archive"], "exp")
    check_equal(out, [{"reports": 2, "archive_files": 2}], "expire output")
    after = doveadm_json(dc, ["dmarc", "list"], "exp")
    check_equal([r["report_id"] for r in after], ["exp-new"], "reports after expire")
    check(not os.path.exists(archives["exp-old1"]) and not os.path.exists(archives["exp-old2"]),
          "expired archive files still there")
    check(os.path.isfile(archives["exp-new"]), "the kept report's file was removed")
    check_equal(dc.query("exp", "SELECT count(*) FROM records")[0][0], 2,
                "records left (ON DELETE CASCADE)")
    check_equal(dc.query("exp", "SELECT count(*) FROM auth_results WHERE record_ref NOT IN "
                                "(SELECT id FROM records)")[0][0], 0, "orphan auth_results")
    out = doveadm_json(dc, ["dmarc", "expire", "--before", "2022-01-01"], "exp")
    check_equal(out, [{"reports": 0, "archive_files": 0}], "expire again")


# --- no database, a newer database, all users ---------------------------------------

def test_no_database(dc):
    """A user without a database has no reports: empty output, exit 0."""
    for cmd in (["dmarc", "list"], ["dmarc", "query"], ["dmarc", "summary"],
                ["dmarc", "query", "--group-by", "day"]):
        check_equal(doveadm_json(dc, cmd, "nodb"), [], f"{cmd} without a database")
    check(not os.path.exists(dc.db_path("nodb")), "a read created the database")


def test_newer_schema(dc):
    """A database of a newer schema is refused with the store's error."""
    path = dc.db_path("newer")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    schema = open(os.path.join(dovetest.TOP_SRCDIR, "src", "lib-dmarcreport",
                               "dmarc-store-schema.sql")).read()
    con = sqlite3.connect(path)
    con.executescript(schema)
    con.execute("UPDATE schema_version SET version = 999")
    con.commit()
    con.close()
    for p in (os.path.dirname(path), path):
        os.chown(p, dc.uid, dc.uid)
    r = dc.doveadm(["dmarc", "list"], user="newer", fmt="json")
    check_equal(r.returncode, EX_DATAERR, f"a newer database: {r.stdout!r}")
    check("newer" in r.stderr.lower() or "999" in r.stderr or "schema" in r.stderr.lower(),
          f"the error does not say why: {r.stderr!r}")


def test_all_users(dc):
    """-A: a username column; every user's rows; users without a database
    are empty, not an error. The user with a newer database fails (exit
    65), the others are still listed."""
    r = dc.doveadm(["dmarc", "list", "-A"], fmt="json")
    check_equal(r.returncode, EX_DATAERR, f"-A with one newer database: {r.stderr!r}")
    check("newer" in r.stderr, f"-A: the error does not name the user: {r.stderr!r}")
    rows = json.loads(r.stdout)
    by_user = {}
    for r in rows:
        by_user.setdefault(r["username"], []).append(r)
    check("nodb" not in by_user, "rows for a user without a database")
    for user in ("lmtp", "imp", "exp"):
        check_equal(len(by_user.get(user, [])),
                    len(doveadm_json(dc, ["dmarc", "list"], user)), f"-A rows of {user}")
    # show writes its JSON itself: still one array, each object with its
    # username; a user without the report is "not found"
    r = dc.doveadm(["dmarc", "show", "-A", "1"], fmt="json")
    shown = json.loads(r.stdout)
    check(isinstance(shown, list) and shown, f"show -A: {r.stdout[:300]!r}")
    for user in ("lmtp", "imp", "exp"):
        mine = [s for s in shown if s["username"] == user]
        r = dc.doveadm(["dmarc", "show", "1"], user=user, fmt="json")
        alone = json.loads(r.stdout)
        check_equal(r.returncode, 0 if alone else EX_NOTFOUND, f"show 1 of {user}")
        check_equal([{k: v for k, v in s.items() if k != "username"} for s in mine], alone,
                    f"show -A of {user}")
    # the text formatters: one field per line (pager), one row (tab)
    r = dc.doveadm(["dmarc", "show", "1"], user="lmtp")
    check(r.returncode == 0 and re.search(r"(?m)^records:\n  source_ip=\S+ source_ip_valid=",
                                          r.stdout), f"show as text: {r.stdout[:2000]}")
    r = dc.doveadm(["dmarc", "show", "1"], user="lmtp", fmt="tab")
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and len(lines) == 2 and lines[0].startswith("type\tid\torg"),
          f"show -f tab: {r.stdout[:2000]}")


def test_no_crash(dc):
    dc.check_no_crash()


TESTS = [
    test_list_after_lmtp,
    test_list_tab,
    test_show_every_report,
    test_query_totals,
    test_summary,
    test_filters,
    test_import_dir_same_as_lmtp,
    test_import_twice,
    test_import_missing_path,
    test_import_eml_files,
    test_import_mailbox,
    test_import_archive_only_on_request,
    test_import_goes_on_after_bad_inputs,
    test_import_anomalies_warn,
    test_expire,
    test_no_database,
    test_newer_schema,
    test_all_users,
    test_no_crash,
]


class DoveadmDovecot(dovetest.Dovecot):
    def start(self):
        super().start()
        # mbox keeps its report mails untouched: import --mailbox reads them
        self.write_script("mbox", KEEP_ONLY)


if __name__ == "__main__":
    if not dovetest.have_doveadm_plugin():
        dovetest.skip("the doveadm plugin is not built")
    dovetest.main(TESTS, lambda: DoveadmDovecot("doveadm", users={u: {} for u in USERS}))
