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


def _ns(tag):
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else None


def _lc(value):
    """The parser's normal form of a word or domain: trimmed,
    lower-case, control characters as spaces (None stays None)."""
    return None if value is None else _clean(value).lower()


def _clean(value):
    return None if value is None else re.sub(r"[\t\r\n]", " ", value).strip()


def full_facts(xml):
    """Every field `doveadm dmarc show` prints, parsed here with etree
    independently of the plugin, in the parser's normal forms; None for
    a document etree cannot read."""
    try:
        root = ET.fromstring(xml)
    except (ET.ParseError, ValueError):
        return None
    ns = _ns(root.tag)
    out = {"format": {None: "rfc7489",
                      "urn:ietf:params:xml:ns:dmarc-2.0": "rfc9990"}.get(ns, "draft"),
           "version": None, "errors": [], "records": [], "policy": {},
           "has_extensions": False}
    known_top = {"version", "report_metadata", "policy_published", "record"}
    for child in root:
        name = _local(child.tag)
        if name == "version":
            out["version"] = _clean(child.text or "") or None
        elif name == "report_metadata":
            for e in child:
                n = _local(e.tag)
                if n == "error" and _clean(e.text or ""):
                    out["errors"].append(_clean(e.text))
                elif n in ("org_name", "email", "extra_contact_info",
                           "report_id", "generator"):
                    out[n] = _clean(e.text or "")
                elif n == "date_range":
                    for d in e:
                        if _local(d.tag) in ("begin", "end"):
                            out[_local(d.tag)] = int(_clean(d.text))
                        else:
                            out["has_extensions"] = True
                else:
                    out["has_extensions"] = True
        elif name == "policy_published":
            for e in child:
                n = _local(e.tag)
                if n in ("domain", "adkim", "aspf", "p", "sp", "np", "pct",
                         "fo", "testing", "discovery_method"):
                    out["policy"][n] = _clean(e.text or "")
                else:
                    out["has_extensions"] = True
        elif name == "record":
            out["records"].append(_record_facts(child))
        elif name not in known_top:
            out["has_extensions"] = True
    return out


def _record_facts(rec):
    r = {"source_ip": None, "count": None, "reasons": [], "dkim": [],
         "spf": [], "header_from": None, "envelope_from": None,
         "envelope_to": None, "has_extensions": False}
    for part in rec:
        pn = _local(part.tag)
        if pn == "row":
            for e in part:
                n = _local(e.tag)
                if n == "source_ip":
                    r["source_ip"] = _clean(e.text or "")
                elif n == "count":
                    r["count"] = int(_clean(e.text))
                elif n == "policy_evaluated":
                    for pe in e:
                        if _local(pe.tag) == "reason":
                            t = c = None
                            for x in pe:
                                if _local(x.tag) == "type":
                                    t = _lc(x.text or "")
                                elif _local(x.tag) == "comment":
                                    c = _clean(x.text or "")
                            if t or c:
                                r["reasons"].append((t or "", c))
                        elif _local(pe.tag) in ("disposition", "dkim", "spf"):
                            r["pe_" + _local(pe.tag)] = _lc(pe.text or "") or None
        elif pn == "identifiers":
            for e in part:
                if _local(e.tag) in ("header_from", "envelope_from", "envelope_to"):
                    r[_local(e.tag)] = _lc(e.text or "")
        elif pn == "auth_results":
            for e in part:
                kind = _local(e.tag)
                vals = {_local(x.tag): _clean(x.text or "") for x in e}
                if not any(vals.values()):
                    continue
                if kind == "dkim":
                    r["dkim"].append((_lc(vals.get("domain")), vals.get("selector"),
                                      _lc(vals.get("result"))))
                elif kind == "spf":
                    r["spf"].append((_lc(vals.get("domain")), _lc(vals.get("scope")),
                                     _lc(vals.get("result"))))
        else:
            r["has_extensions"] = True
    return r


def attachment_facts(data):
    return [report_facts(doc) for doc in unpack(data)]


def corpus_files(corpus_dir, sub):
    d = os.path.join(corpus_dir, sub)
    return [os.path.join(d, f) for f in sorted(os.listdir(d))
            if not f.endswith(".json")]
