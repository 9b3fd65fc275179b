#!/usr/bin/env python3
"""Deterministic generator of realistic DMARC aggregate report mails.

Reporter styles after Google (zip), Microsoft (gzip in multipart/related
with an HTML body), Yahoo (gzip, CTE binary style headers), Mail.ru
(gzip labelled application/octet-stream) and a plain-XML reporter. Mostly
1-20 records, a few hundred-record reports, IPv4 and IPv6 sources. Writes
one .eml per report plus manifest.json with the expected figures, so every
consumer can check exactness.

    gen_reports.py OUTDIR [--count N] [--seed S] [--huge RECORDS]
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
    if args.huge:
        manifest["huge"] = huge_report(os.path.join(args.outdir, "huge"),
                                       args.huge, args.seed + 1)
    manifest["total_records"] = sum(r["records"] for r in manifest["reports"])
    manifest["total_messages"] = sum(r["messages"] for r in manifest["reports"])
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"{args.count} mails, {manifest['total_records']} records, "
          f"{manifest['total_messages']} messages in {args.outdir}")


if __name__ == "__main__":
    main()
