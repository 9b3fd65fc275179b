#!/usr/bin/env python3
"""Deterministic generator of realistic DMARC aggregate report mails.

Reporter styles after Google (zip), Microsoft (gzip in multipart/related
with an HTML body), Yahoo (gzip, CTE binary style headers), Mail.ru
(gzip labelled application/octet-stream) and a plain-XML reporter. Mostly
1-20 records, a few hundred-record reports, IPv4 and IPv6 sources. Writes
one .eml per report plus manifest.json with the expected figures, so every
consumer can check exactness.

Next to the aggregate reports it writes SMTP TLS report mails (RFC 8460:
multipart/report, gzip'ed JSON, after Google and Microsoft) and DMARC
failure report mails (RFC 6591 ARF, with the reported message's headers),
by default 15% and 3% of --count: what a report mailbox gets in addition.
They come from a random generator of their own, so the aggregate mails
are the same bytes for the same seed with or without them.

    gen_reports.py OUTDIR [--count N] [--seed S] [--huge RECORDS]
                   [--tls-share F] [--failure-share F]
"""

import argparse
import gzip
import io
import ipaddress
import json
import os
import random
import zipfile
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate

DAY = 86400
BASE_TIME = 1760000000  # a fixed day: the output must not depend on today

STYLES = [
    # name, org_name, email, container, mime type, weight
    ("google", "google.com", "noreply-dmarc-support@google.com", "zip",
     "application/zip", 35),
    ("microsoft", "Enterprise Outlook", "dmarcreport@microsoft.com", "gzip",
     "application/gzip", 25),
    ("yahoo", "Yahoo", "dmarchelp@yahooinc.com", "gzip", "application/gzip",
     15),
    ("mailru", "Mail.Ru", "dmarc_support@corp.mail.ru", "gzip",
     "application/octet-stream", 15),
    ("plain", "example-isp.net", "dmarc@example-isp.net", "xml",
     "text/xml", 10),
]

DOMAINS = ["example.com", "example.org", "shop.example.net"]
DISPOSITIONS = ["none"] * 8 + ["quarantine", "reject"]


def source_ip(rnd):
    if rnd.random() < 0.2:
        net = ipaddress.ip_network("2001:db8::/32")
        return str(net[rnd.randrange(1, 2 ** 40)])
    nets = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]
    net = ipaddress.ip_network(rnd.choice(nets))
    return str(net[rnd.randrange(1, 255)])


def record_xml(rnd, domain):
    count = rnd.choice([1, 1, 1, 2, 3, 5, 8, 13, 40, 120])
    dkim = "pass" if rnd.random() < 0.8 else "fail"
    spf = "pass" if rnd.random() < 0.75 else "fail"
    disp = "none" if (dkim == "pass" or spf == "pass") else rnd.choice(
        DISPOSITIONS)
    selector = rnd.choice(["s1", "google", "selector2", "mx"])
    xml = (
        "  <record>\n"
        "    <row>\n"
        f"      <source_ip>{source_ip(rnd)}</source_ip>\n"
        f"      <count>{count}</count>\n"
        "      <policy_evaluated>\n"
        f"        <disposition>{disp}</disposition>\n"
        f"        <dkim>{dkim}</dkim>\n"
        f"        <spf>{spf}</spf>\n"
        "      </policy_evaluated>\n"
        "    </row>\n"
        "    <identifiers>\n"
        f"      <header_from>{domain}</header_from>\n"
        "    </identifiers>\n"
        "    <auth_results>\n"
        "      <dkim>\n"
        f"        <domain>{domain}</domain>\n"
        f"        <selector>{selector}</selector>\n"
        f"        <result>{dkim}</result>\n"
        "      </dkim>\n"
        "      <spf>\n"
        f"        <domain>{domain}</domain>\n"
        f"        <result>{spf}</result>\n"
        "      </spf>\n"
        "    </auth_results>\n"
        "  </record>\n")
    return xml, count, dkim == "pass" or spf == "pass"


def report_xml(rnd, org, email, report_id, domain, begin, n_records):
    head = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        "<feedback>\n"
        "  <report_metadata>\n"
        f"    <org_name>{org}</org_name>\n"
        f"    <email>{email}</email>\n"
        f"    <report_id>{report_id}</report_id>\n"
        "    <date_range>\n"
        f"      <begin>{begin}</begin>\n"
        f"      <end>{begin + DAY - 1}</end>\n"
        "    </date_range>\n"
        "  </report_metadata>\n"
        "  <policy_published>\n"
        f"    <domain>{domain}</domain>\n"
        "    <adkim>r</adkim>\n    <aspf>r</aspf>\n"
        "    <p>quarantine</p>\n    <sp>none</sp>\n    <pct>100</pct>\n"
        "  </policy_published>\n")
    parts = [head]
    total = passed = 0
    for _ in range(n_records):
        xml, count, ok = record_xml(rnd, domain)
        parts.append(xml)
        total += count
        passed += count if ok else 0
    parts.append("</feedback>\n")
    return "".join(parts).encode(), total, passed


def pack(container, name, xml):
    if container == "gzip":
        return gzip.compress(xml, mtime=0), name + ".xml.gz"
    if container == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            info = zipfile.ZipInfo(name + ".xml", date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, xml)
        return buf.getvalue(), name + ".zip"
    return xml, name + ".xml"


def report_mail(style, org, email, domain, report_id, data, filename, mime,
                when, seq):
    subtype = mime.split("/", 1)[1]
    main = mime.split("/", 1)[0]
    if style == "microsoft":
        msg = MIMEMultipart("mixed")
        related = MIMEMultipart("related")
        related.attach(MIMEText(
            "<html><body><p>This is a DMARC aggregate report.</p></body></html>",
            "html"))
        msg.attach(related)
    else:
        msg = MIMEMultipart()
        msg.attach(MIMEText(f"This is an aggregate report from {org}.\n"))
    if main == "text":
        att = MIMEText(data.decode(), subtype)
    else:
        att = MIMEApplication(data, subtype)
    att.add_header("Content-Disposition", "attachment", filename=filename)
    msg.attach(att)
    # fixed boundaries: the output must be the same for the same seed
    msg.set_boundary(f"=_outer_{seq}")
    if style == "microsoft":
        related.set_boundary(f"=_related_{seq}")
    msg["From"] = email
    msg["To"] = "dmarc@" + domain
    msg["Subject"] = f"Report domain: {domain} Submitter: {org} Report-ID: {report_id}"
    msg["Date"] = formatdate(when, usegmt=True)
    msg["Message-ID"] = f"<bench-{seq}.{report_id}@{style}.invalid>"
    return msg.as_bytes()


TLS_STYLES = [
    # org, address, policy type, weight
    ("Google Inc.", "noreply-smtp-tls-reporting@google.com", "sts", 60),
    ("Microsoft Corporation", "tlsrpt-noreply@microsoft.com", "sts", 30),
    ("Mail.Ru", "tlsrpt@corp.mail.ru", "no-policy-found", 10),
]
TLS_RESULTS = ["certificate-expired", "starttls-not-supported",
               "validation-failure", "certificate-host-mismatch",
               "sts-webpki-invalid"]


def tls_mail(rnd, seq):
    """One TLS report mail; returns (bytes, manifest entry)."""
    org, address, ptype, _ = rnd.choices(TLS_STYLES, [t[3] for t in TLS_STYLES])[0]
    begin = BASE_TIME - DAY * rnd.randrange(0, 365)
    report_id = f"{begin}-tls-{seq}-{rnd.randrange(10 ** 9)}"
    policies, details, sessions = [], 0, 0
    for domain in rnd.sample(DOMAINS, rnd.randint(1, 2)):
        ok = rnd.randint(1, 5000)
        failures = []
        for _ in range(rnd.choice([0, 0, 0, 1, 2, 3])):
            failures.append({
                "result-type": rnd.choice(TLS_RESULTS),
                "sending-mta-ip": source_ip(rnd),
                "receiving-mx-hostname": f"mx{rnd.randint(1, 3)}.{domain}",
                "failed-session-count": rnd.randint(1, 50)})
        failed = sum(f["failed-session-count"] for f in failures)
        policy = {"policy-type": ptype, "policy-domain": domain}
        if ptype == "sts":
            policy["policy-string"] = ["version: STSv1", "mode: enforce",
                                       f"mx: *.{domain}", "max_age: 604800"]
            policy["mx-host"] = [f"*.{domain}"]
        entry = {"policy": policy,
                 "summary": {"total-successful-session-count": ok,
                             "total-failure-session-count": failed}}
        if failures:
            entry["failure-details"] = failures
        policies.append(entry)
        details += len(failures)
        sessions += ok + failed
    doc = {"organization-name": org,
           "date-range": {"start-datetime": f"{iso(begin)}",
                          "end-datetime": f"{iso(begin + DAY - 1)}"},
           "contact-info": address, "report-id": report_id,
           "policies": policies}
    data = gzip.compress(json.dumps(doc).encode(), mtime=0)
    msg = MIMEMultipart("report", report_type="tlsrpt")
    msg.attach(MIMEText(f"This is an aggregate TLS report from {org}.\n"))
    att = MIMEApplication(data, "tlsrpt+gzip")
    att.add_header("Content-Disposition", "attachment",
                   filename=f"{org.split()[0].lower()}!{policies[0]['policy']['policy-domain']}"
                   f"!{begin}!{begin + DAY - 1}!{report_id}.json.gz")
    msg.attach(att)
    msg.set_boundary(f"=_tls_{seq}")
    msg["From"] = address
    msg["To"] = "tlsrpt@" + DOMAINS[0]
    msg["Subject"] = f"Report Domain: {DOMAINS[0]} Submitter: {org} Report-ID: <{report_id}>"
    msg["Date"] = formatdate(begin + DAY + 3600, usegmt=True)
    msg["Message-ID"] = f"<bench-tls-{seq}.{report_id}@tls.invalid>"
    return msg.as_bytes(), {"org_name": org, "report_id": report_id,
                            "policies": len(policies), "failure_details": details,
                            "sessions": sessions}


def failure_mail(rnd, seq):
    """One DMARC failure report mail (ARF); returns (bytes, manifest entry)."""
    domain = rnd.choice(DOMAINS)
    ip = source_ip(rnd)
    when = BASE_TIME - DAY * rnd.randrange(0, 365) + rnd.randrange(DAY)
    auth = rnd.choice(["dmarc", "dkim", "spf"])
    arf = (f"Feedback-Type: auth-failure\r\nUser-Agent: bench-reporter/1.0\r\n"
           f"Version: 1\r\nOriginal-Mail-From: <bounce-{seq}@{domain}>\r\n"
           f"Arrival-Date: {formatdate(when, usegmt=True)}\r\nSource-IP: {ip}\r\n"
           f"Reported-Domain: {domain}\r\nAuthentication-Results: mx.receiver.example;"
           f" dmarc=fail header.from={domain}\r\nAuth-Failure: {auth}\r\n"
           f"Delivery-Result: {rnd.choice(['reject', 'delivered', 'spam'])}\r\n")
    headers = (f"From: Billing <billing@{domain}>\r\nTo: <victim@receiver.example>\r\n"
               f"Subject: Invoice {seq}\r\nDate: {formatdate(when - 60, usegmt=True)}\r\n"
               f"Message-ID: <spoof-{seq}@{domain}>\r\n")
    msg = MIMEMultipart("report", report_type="feedback-report")
    msg.attach(MIMEText(f"A message from {ip} failed DMARC for {domain}.\n"))
    part = MIMEBase("message", "feedback-report")
    part.set_payload(arf)
    msg.attach(part)
    orig = MIMEBase("text", "rfc822-headers")
    orig.set_payload(headers)
    msg.attach(orig)
    msg.set_boundary(f"=_ruf_{seq}")
    msg["From"] = "ruf@receiver.example"
    msg["To"] = "dmarc-ruf@" + domain
    msg["Subject"] = f"DMARC failure report for {domain} from {ip}"
    msg["Date"] = formatdate(when + 60, usegmt=True)
    msg["Message-ID"] = f"<bench-ruf-{seq}@receiver.invalid>"
    return msg.as_bytes(), {"domain": domain, "source_ip": ip}


def iso(t):
    import datetime
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def huge_report(path, n_records, seed):
    """One report of n_records records, gzip'ed, streamed to disk."""
    rnd = random.Random(seed)
    domain = "example.com"
    total = passed = 0
    with gzip.open(path + ".xml.gz", "wb", compresslevel=6) as out:
        head, _, _ = report_xml(rnd, "bulk.example", "dmarc@bulk.example",
                                "huge-1", domain, BASE_TIME, 0)
        out.write(head[: head.rindex(b"</feedback>")])
        for _ in range(n_records):
            xml, count, ok = record_xml(rnd, domain)
            out.write(xml.encode())
            total += count
            passed += count if ok else 0
        out.write(b"</feedback>\n")
    return {"file": os.path.basename(path) + ".xml.gz", "records": n_records,
            "messages": total, "pass": passed}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7489)
    ap.add_argument("--huge", type=int, default=0,
                    help="also write huge.xml.gz with this many records")
    ap.add_argument("--tls-share", type=float, default=0.15,
                    help="TLS report mails, as a share of --count")
    ap.add_argument("--failure-share", type=float, default=0.03,
                    help="failure report mails, as a share of --count")
    args = ap.parse_args()

    rnd = random.Random(args.seed)
    os.makedirs(args.outdir, exist_ok=True)
    weights = [s[5] for s in STYLES]
    manifest = {"seed": args.seed, "reports": []}
    for seq in range(args.count):
        style, org, email, container, mime, _ = rnd.choices(STYLES, weights)[0]
        domain = rnd.choice(DOMAINS)
        begin = BASE_TIME - DAY * rnd.randrange(0, 365)
        # mostly 1-20 records, one in fifty a few hundred
        n = rnd.randint(200, 400) if rnd.random() < 0.02 else rnd.randint(1, 20)
        report_id = f"{style}-{seq}-{rnd.randrange(10 ** 9)}"
        xml, total, passed = report_xml(rnd, org, email, report_id, domain,
                                        begin, n)
        name = f"{org.split()[0].lower()}!{domain}!{begin}!{begin + DAY - 1}"
        data, filename = pack(container, name, xml)
        mail = report_mail(style, org, email, domain, report_id, data,
                           filename, mime, begin + DAY + 3600, seq)
        fname = f"{seq:05d}-{style}.eml"
        with open(os.path.join(args.outdir, fname), "wb") as f:
            f.write(mail)
        manifest["reports"].append({
            "file": fname, "org_name": org, "report_id": report_id,
            "domain": domain, "records": n, "messages": total,
            "pass": passed, "container": container})
    # TLS and failure reports: a generator of their own, so the
    # aggregate mails above stay the same bytes
    krnd = random.Random(args.seed + 8460)
    manifest["tls"], manifest["failure"] = [], []
    for i in range(round(args.count * args.tls_share)):
        mail, entry = tls_mail(krnd, i)
        entry["file"] = f"t{i:05d}-tls.eml"
        with open(os.path.join(args.outdir, entry["file"]), "wb") as f:
            f.write(mail)
        manifest["tls"].append(entry)
    for i in range(round(args.count * args.failure_share)):
        mail, entry = failure_mail(krnd, i)
        entry["file"] = f"u{i:05d}-failure.eml"
        with open(os.path.join(args.outdir, entry["file"]), "wb") as f:
            f.write(mail)
        manifest["failure"].append(entry)
    if args.huge:
        manifest["huge"] = huge_report(os.path.join(args.outdir, "huge"),
                                       args.huge, args.seed + 1)
    manifest["total_records"] = sum(r["records"] for r in manifest["reports"])
    manifest["total_messages"] = sum(r["messages"] for r in manifest["reports"])
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"{args.count} aggregate report mails, {manifest['total_records']} records, "
          f"{manifest['total_messages']} messages; {len(manifest['tls'])} TLS and "
          f"{len(manifest['failure'])} failure report mails in {args.outdir}")


if __name__ == "__main__":
    main()
