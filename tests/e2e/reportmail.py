"""Report mails for the end-to-end tests, and what they should store.

The expected figures are computed here independently of the plugin: the
attachment is unpacked with Python's gzip/zipfile, parsed with
xml.etree, or, for the files that are not well-formed XML, scanned with
regular expressions.
"""

import gzip
import html
import io
import os
import re
import zipfile
import zlib
import xml.etree.ElementTree as ET
from email import encoders
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate

MIME_TYPES = [
    (".xml.gz", ("application", "gzip")),
    (".gz", ("application", "gzip")),
    (".zip", ("application", "zip")),
    (".xml", ("text", "xml")),
]


def mime_type(filename):
    for suffix, mt in MIME_TYPES:
        if filename.lower().endswith(suffix):
            return mt
    return ("application", "octet-stream")


def report_mail(attachments, message_id, subject="Report Domain: example.com",
                sender="noreply-dmarc@reports.example", to="dmarc@example.com",
                body="This is a DMARC aggregate report.\n"):
    """A multipart mail with the given attachments: [(filename, bytes)] or
    [(filename, bytes, (maintype, subtype))]. Every attachment is base64,
    so its bytes arrive exactly as given."""
    msg = MIMEMultipart()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate()
    msg["Message-ID"] = message_id
    msg.attach(MIMEText(body))
    for att in attachments:
        name, data = att[0], att[1]
        maintype, subtype = att[2] if len(att) > 2 else mime_type(name)
        part = MIMEBase(maintype, subtype)
        part.set_payload(data)
        encoders.encode_base64(part)
        part.add_header("Content-Disposition", "attachment", filename=name)
        msg.attach(part)
    return msg.as_bytes()


def report_xml(report_id, org="e2e.example", domain="example.com",
               records=(("192.0.2.1", 1),), begin=1700000000, end=1700086399):
    """A small valid RFC 7489 aggregate report."""
    rows = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count>"
        "<policy_evaluated><disposition>none</disposition><dkim>pass</dkim>"
        "<spf>pass</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from></identifiers>"
        f"<auth_results><spf><domain>{domain}</domain><result>pass</result></spf>"
        "</auth_results></record>"
        for ip, count in records)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feedback>'
        f"<report_metadata><org_name>{org}</org_name><email>dmarc@{org}</email>"
        f"<report_id>{report_id}</report_id><date_range><begin>{begin}</begin>"
        f"<end>{end}</end></date_range></report_metadata>"
        f"<policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf>"
        "<p>none</p><sp>none</sp><pct>100</pct></policy_published>"
        f"{rows}</feedback>\n").encode()


def zip_bytes(entries, compression=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


# --- expected figures -------------------------------------------------------

def unpack(data):
    """XML documents of an attachment: gzip (also twice), zip (every
    entry); anything else is taken as it is."""
    if data[:2] == b"\x1f\x8b":
        # wbits=47: gzip or zlib with a lenient trailer, as the Mimecast
        # gzip that gzip.decompress() rejects
        d = zlib.decompressobj(47)
        return unpack(d.decompress(data))
    if data[:4] == b"PK\x03\x04":
        docs = []
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                if not info.filename.endswith("/"):
                    docs += unpack(z.read(info))
        return docs
    return [data]


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def _text(elem):
    return (elem.text or "").strip() if elem is not None else ""


def _facts_etree(xml):
    root = ET.fromstring(xml)
    org = report_id = domain = ""
    records = 0
    messages = 0
    for child in root:
        name = _local(child.tag)
        if name == "report_metadata":
            for e in child:
                if _local(e.tag) == "org_name":
                    org = _text(e)
                elif _local(e.tag) == "report_id":
                    report_id = _text(e)
        elif name == "policy_published":
            for e in child:
                if _local(e.tag) == "domain":
                    domain = _text(e)
        elif name == "record":
            records += 1
            for row in child:
                if _local(row.tag) == "row":
                    for e in row:
                        if _local(e.tag) == "count":
                            messages += int(_text(e))
    return org, report_id, domain, records, messages


def _first(rx, data):
    m = re.search(rx, data, re.S)
    if m is None:
        return ""
    return html.unescape(m.group(1).decode("utf-8", "replace")).strip()


def _facts_regex(xml):
    org = _first(rb"<(?:\w+:)?org_name>(.*?)</", xml)
    report_id = _first(rb"<(?:\w+:)?report_id>(.*?)</", xml)
    policy = re.search(rb"<(?:\w+:)?policy_published>(.*?)</(?:\w+:)?policy_published>",
                       xml, re.S)
    domain = _first(rb"<(?:\w+:)?domain>(.*?)</", policy.group(1)) if policy else ""
    records = len(re.findall(rb"<(?:\w+:)?record[\s>]", xml))
    counts = re.findall(rb"<(?:\w+:)?count>\s*(\d+)\s*</(?:\w+:)?count>", xml)
    return org, report_id, domain, records, sum(int(c) for c in counts)


def report_facts(xml):
    """{key, records, messages, how} of one XML document. key is
    (org_name, report_id, policy domain lower-case): the identity a
    resent report is recognised by."""
    try:
        org, report_id, domain, records, messages = _facts_etree(xml)
        how = "etree"
    except (ET.ParseError, ValueError):
        org, report_id, domain, records, messages = _facts_regex(xml)
        how = "regex"
    return {"key": (org, report_id, domain.lower()), "records": records,
            "messages": messages, "how": how}


def attachment_facts(data):
    return [report_facts(doc) for doc in unpack(data)]


def corpus_files(corpus_dir, sub):
    d = os.path.join(corpus_dir, sub)
    return [os.path.join(d, f) for f in sorted(os.listdir(d))
            if not f.endswith(".json")]
