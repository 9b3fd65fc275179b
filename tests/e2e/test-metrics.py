#!/usr/bin/env python3
"""End-to-end: the plugin's named events as Dovecot metrics. A private
Dovecot with the stats service, its OpenMetrics listener and the metric
{} blocks the README shows; the corpus's aggregate reports and a few bad
ones are delivered over LMTP, one report is imported with doveadm (whose
"Stored" lines are at debug level), and `doveadm stats dump` (and the
OpenMetrics endpoint) must count what was stored, found again and not
stored, per policy domain, and one outcome event per document."""

import os
import re
import sys
import urllib.request
from collections import Counter

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal, skip_test  # noqa: E402

USER = "metrics"
FAILED_DOMAIN = "failed.example"
HTTP_PORT = dovetest.free_port()

# The metrics as README and dovecot-dmarcreport(7) show them; 2.4 writes
# group_by as a block per field.
METRICS = [
    ("dmarcreport_stored", "event=dmarcreport_report_stored", "records messages"),
    ("dmarcreport_duplicate", "event=dmarcreport_report_duplicate", None),
    ("dmarcreport_failed", "event=dmarcreport_report_failed", None),
    # every outcome: one per document
    ("dmarcreport_outcome",
     "category=dmarcreport AND (event=dmarcreport_report_stored OR "
     "event=dmarcreport_report_duplicate OR event=dmarcreport_report_failed OR "
     "event=dmarcreport_report_skipped)", None),
]


def stats_config():
    lines = ["service stats {", "  inet_listener http {",
             f"    port = {HTTP_PORT}", "  }", "}"]
    for name, event_filter, fields in METRICS:
        lines += [f"metric {name} {{", f"  filter = {event_filter}"]
        if fields:
            lines.append(f"  fields = {fields}")
        if name != "dmarcreport_outcome":
            if dovetest.IS_24:
                lines += ["  group_by policy_domain {", "  }"]
            else:
                lines.append("  group_by = policy_domain")
        lines.append("}")
    return "\n".join(lines) + "\n"


state = {"mails": 0, "documents": 0, "records": 0, "messages": 0}
expected = {"stored": Counter(), "duplicate": Counter(), "failed": Counter()}


def deliver(dc, attachments, tag):
    dc.lmtp_deliver_ok(reportmail.report_mail(
        attachments, f"<metrics-{tag}-{state['mails']}@e2e.test>"), USER)
    state["mails"] += 1


def stats_dump(dc, field="duration", column=2):
    """{metric name: count} from `doveadm stats dump` (every event has a
    duration); a sub-metric of group_by is named <metric>_<value>. With
    a field of fields and column 3: its sum."""
    r = dc.doveadm(["stats", "dump"])
    check(r.returncode == 0, f"doveadm stats dump: exit {r.returncode}: {r.stderr}")
    counts = {}
    for line in r.stdout.splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) > column and cols[1] == field:
            counts[cols[0]] = int(cols[column])
    return counts


def label(domain):
    """A group_by value as Dovecot's stats name its sub-metric: 2.3 cuts
    it to 32 characters; 2.4 keeps it, and gives the events without the
    field a sub-metric with an empty value (2.3 counts them only in the
    metric). None: no sub-metric."""
    if domain is None:
        return "" if dovetest.IS_24 else None
    if not dovetest.IS_24 and len(domain) > 32:
        return domain[:31] + "\u2026"
    return domain


def expected_dump():
    out = {}
    for what, counter in expected.items():
        if counter:
            out[f"dmarcreport_{what}"] = sum(counter.values())
        for domain, n in counter.items():
            if label(domain) is not None:
                out[f"dmarcreport_{what}_{label(domain)}"] = n
    out["dmarcreport_outcome"] = state["documents"]
    return out


def test_deliver(dc):
    """The corpus's aggregate reports, each in its own mail (its repeats
    are duplicates), then reports that are not stored: two cut short
    after their header (their policy domain is known) and one attachment
    that is no report."""
    if not dovetest.have_corpus():
        skip_test(f"corpus not found at {dovetest.CORPUS_DIR}")
    seen = set()
    for path in reportmail.corpus_files(dovetest.CORPUS_DIR, "aggregate"):
        data = open(path, "rb").read()
        for facts in reportmail.attachment_facts(data):
            domain = facts["key"][2]
            if facts["key"] in seen:
                expected["duplicate"][domain] += 1
            else:
                seen.add(facts["key"])
                expected["stored"][domain] += 1
                state["records"] += facts["records"]
                state["messages"] += facts["messages"]
            state["documents"] += 1
        deliver(dc, [(os.path.basename(path), data)], "corpus")
    for i in range(2):
        xml = reportmail.report_xml(f"cut-{i}", domain=FAILED_DOMAIN)
        deliver(dc, [("cut.xml", xml[:len(xml) * 2 // 3])], "cut")
        expected["failed"][FAILED_DOMAIN] += 1
        state["documents"] += 1
    deliver(dc, [("notes.xml", b"not a report\n")], "none")
    expected["failed"][None] += 1
    state["documents"] += 1
    rows = dc.query(USER, "SELECT policy_domain, count(*) FROM reports GROUP BY 1")
    check_equal(dict(rows), dict(expected["stored"]), "reports stored per domain")


def test_stats_dump(dc):
    """`doveadm stats dump`: the counts per metric and per policy domain
    (the stats process may lag a little behind the delivery)."""
    want = expected_dump()

    def counted():
        got = stats_dump(dc)
        return got if all(got.get(k) == v for k, v in want.items()) else None

    got = dovetest.wait_for(counted, 10, 0.1) or stats_dump(dc)
    wrong = {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}
    check(not wrong, f"metric: (expected, counted): {wrong}; dump: {got}")
    # no sub-metric beyond the domains reported
    extra = sorted(k for k in got if k.startswith("dmarcreport_") and k not in want)
    check(not extra, f"unexpected metrics: {extra}")
    # the fields of the stored reports add up to what the reports hold
    for field in ("records", "messages"):
        check_equal(stats_dump(dc, field, 3).get("dmarcreport_stored"), state[field],
                    f"sum of {field} of dmarcreport_stored")


def test_import_counted(dc):
    """doveadm dmarc import logs "Stored" at debug level; its events reach
    the metric all the same."""
    path = os.path.join(dc.home(USER), "imported.xml")
    with open(path, "wb") as f:
        f.write(reportmail.report_xml("imported-1", domain="import.example"))
    os.chown(path, dc.uid, dc.uid)
    r = dc.doveadm(["dmarc", "import", path], user=USER)
    check(r.returncode == 0, f"import: exit {r.returncode}: {r.stderr}")
    expected["stored"]["import.example"] += 1
    state["documents"] += 1
    want = expected_dump()
    got = dovetest.wait_for(lambda: stats_dump(dc).get("dmarcreport_stored_import.example"),
                            10, 0.1)
    check_equal(got, 1, "stored reports of import.example counted")
    got = stats_dump(dc)
    check_equal(got.get("dmarcreport_stored"), want["dmarcreport_stored"],
                "stored reports counted")


def test_openmetrics(dc):
    """The same counts from the OpenMetrics endpoint, labelled by domain."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}/metrics",
                                    timeout=10) as resp:
            text = resp.read().decode()
    except OSError as e:
        skip_test(f"the OpenMetrics endpoint cannot be reached: {e}")
    got = {}
    for m in re.finditer(r'^dovecot_dmarcreport_(\w+)_total\{policy_domain="([^"]*)"\} (\d+)$',
                         text, re.M):
        got[(m.group(1), m.group(2))] = int(m.group(3))
    for m in re.finditer(r"^dovecot_dmarcreport_(\w+)_count (\d+)$", text, re.M):
        got[(m.group(1), None)] = int(m.group(2))
    want = {}
    for what, counter in expected.items():
        want[(what, None)] = sum(counter.values())
        for domain, n in counter.items():
            if label(domain) is not None:
                want[(what, label(domain))] = n
    wrong = {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}
    check(not wrong, f"(expected, exported): {wrong}\n{text}")


def test_no_crash(dc):
    dc.check_no_crash()


TESTS = [test_deliver, test_stats_dump, test_import_counted, test_openmetrics,
         test_no_crash]

if __name__ == "__main__":
    dovetest.main(TESTS, lambda: dovetest.Dovecot(
        "metrics", users={USER: {}}, extra_config=stats_config()))
