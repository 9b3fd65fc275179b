"""Hostile report mails, generated at test time (nothing big is committed).

Each case is a Case(name, mail bytes, expected reports stored, a regular
expression the server log must match for it). Bombs are built streaming, so
generating them needs no memory to speak of.
"""

import gzip
import lzma
import os
import struct
import tempfile
import zipfile
import zlib
from collections import namedtuple
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from reportmail import zip_bytes

Case = namedtuple("Case", "name mail stored log_re")

GIB = 1024 ** 3


def report_xml(report_id="hostile-1", records=1, count="1", org="hostile.example",
               domain="example.com", extra_record=""):
    rec = (
        "<record><row><source_ip>192.0.2.1</source_ip>"
        f"<count>{count}</count><policy_evaluated><disposition>none</disposition>"
        "<dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from></identifiers>"
        f"<auth_results><dkim><domain>{domain}</domain><result>pass</result></dkim>"
        f"<spf><domain>{domain}</domain><result>fail</result></spf></auth_results>"
        f"{extra_record}</record>\n")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feedback>\n'
        f"<report_metadata><org_name>{org}</org_name>"
        f"<email>dmarc@{org}</email><report_id>{report_id}</report_id>"
        "<date_range><begin>1700000000</begin><end>1700086399</end></date_range>"
        "</report_metadata>\n"
        f"<policy_published><domain>{domain}</domain><p>none</p></policy_published>\n"
        + rec * records + "</feedback>\n").encode()


def mail(name, attachments, body="DMARC report\n", raw_filename_params=None):
    """attachments: list of (filename, mime type, bytes). raw_filename_params
    replaces the Content-Disposition parameters of the first attachment with
    the given raw text (for RFC 2231 tricks Python would escape)."""
    msg = MIMEMultipart()
    msg["From"] = "reporter@hostile.example"
    msg["To"] = "dmarc@example.com"
    msg["Subject"] = f"hostile case {name}"
    msg["Message-ID"] = f"<{name}@hostile.example>"
    msg.set_boundary(f"=_hostile_{name}")
    msg.attach(MIMEText(body))
    for i, (filename, mime, data) in enumerate(attachments):
        maintype, subtype = mime.split("/", 1)
        part = MIMEApplication(data, subtype)
        if maintype != "application":
            part.replace_header("Content-Type", mime)
        if i == 0 and raw_filename_params is not None:
            part["Content-Disposition"] = "attachment; " + raw_filename_params
        else:
            part.add_header("Content-Disposition", "attachment",
                            filename=filename)
        msg.attach(part)
    return msg.as_bytes()


# Bomb content that stays well-formed XML, so that what stops it is the
# decompressed-size limit and not the parser.
BOMB_HEAD = b'<?xml version="1.0"?><feedback>'
BOMB_CHUNK = b"<a/>" * (256 * 1024)


def gzip_bomb(size):
    """gzip of about `size` bytes of XML, compressed in 1 MiB steps."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = BOMB_CHUNK
    out = [comp.compress(BOMB_HEAD)]
    for _ in range(size // len(chunk)):
        out.append(comp.compress(chunk))
    out.append(comp.flush())
    return b"".join(out)


def zip_bomb(size):
    with tempfile.TemporaryFile() as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            with z.open("bomb.xml", "w", force_zip64=True) as f:
                chunk = BOMB_CHUNK
                f.write(BOMB_HEAD)
                for _ in range(size // len(chunk)):
                    f.write(chunk)
        tmp.seek(0)
        return tmp.read()


def huge_report_gz(path, records):
    """A valid gzip'ed report of `records` records, streamed to path."""
    head = report_xml("huge-200k", records=0).decode()
    head = head[: head.rindex("</feedback>")]
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(head.encode())
        for i in range(records):
            ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            out.write(
                ("<record><row><source_ip>%s</source_ip><count>2</count>"
                 "<policy_evaluated><disposition>none</disposition><dkim>pass</dkim>"
                 "<spf>pass</spf></policy_evaluated></row><identifiers>"
                 "<header_from>example.com</header_from></identifiers>"
                 "<auth_results><spf><domain>example.com</domain>"
                 "<result>pass</result></spf></auth_results></record>\n"
                 % ip).encode())
        out.write(b"</feedback>\n")


def namespace_bomb_gz(levels=30, declarations=118000, elements=10_000_000):
    """Issue 9 item 1: about `declarations` xmlns: declarations spread over
    `levels` nested start tags (each under the 64 KiB tag limit), then
    `elements` empty elements: libxml2 compares every start tag with the
    namespaces in scope. Well-formed, within the depth and size limits;
    about 335 KB of gzip, 43 MB of XML."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [comp.compress(b'<?xml version="1.0"?><feedback>')]
    digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def prefix(n):  # unique and short: the tags stay under 64 KiB
        return "n" + digits[n // 3844] + digits[n // 62 % 62] + digits[n % 62]

    per_level = -(-declarations // levels)
    n = 0
    for level in range(levels):
        decls = "".join(f' xmlns:{prefix(n + i)}="u"' for i in range(per_level))
        n += per_level
        out.append(comp.compress(f"<l{level}{decls}>".encode()))
    chunk = b"<a/>" * 100_000
    for _ in range(elements // 100_000):
        out.append(comp.compress(chunk))
    for level in reversed(range(levels)):
        out.append(comp.compress(f"</l{level}>".encode()))
    out.append(comp.compress(b"</feedback>"))
    out.append(comp.flush())
    return b"".join(out)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<feedback><report_metadata><org_name>&lol9;</org_name><report_id>laughs</report_id>
<date_range><begin>1</begin><end>2</end></date_range></report_metadata>
<policy_published><domain>example.com</domain><p>none</p></policy_published>
<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated>
<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>
</row><identifiers><header_from>example.com</header_from></identifiers></record>
</feedback>
"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<feedback><report_metadata><org_name>&xxe;</org_name><report_id>xxe</report_id>
<date_range><begin>1</begin><end>2</end></date_range></report_metadata>
<policy_published><domain>example.com</domain><p>none</p></policy_published>
<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated>
<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>
</row><identifiers><header_from>example.com</header_from></identifiers></record>
</feedback>
"""


def unclosed_mail(name, filename, mime, data):
    """mail() without its closing boundary: the last part runs to the
    end of the message."""
    raw = mail(name, [(filename, mime, data)])
    closing = f"--=_hostile_{name}--".encode()
    i = raw.rindex(closing)
    return raw[:i]


def zip_many_directory_entries(n):
    """One real entry, then n central directory entries that all point at
    it, and an end record that claims a single entry: what libarchive
    loads is what the directory holds, not what the end record says."""
    single = zip_bytes([("r.xml", report_xml("many-cd"))])
    cd = single.index(b"PK\x01\x02")
    eocd = single.index(b"PK\x05\x06")
    entry = single[cd:eocd]
    cd_data = entry * n
    end = bytearray(single[eocd:])
    struct.pack_into("<HHII", end, 8, 1, 1, len(cd_data) & 0xffffffff, cd)
    return single[:cd] + cd_data + bytes(end)


def zip_lzma_big_dictionary(dict_size=128 * 1024 ** 2, size=140 * 1024 ** 2):
    """A small zip whose LZMA entry declares a dict_size dictionary and
    decodes to `size` bytes, enough to touch all of it."""
    with tempfile.TemporaryFile() as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_LZMA) as z:
            with z.open("lzma.xml", "w") as f:
                f.write(BOMB_HEAD)
                chunk = BOMB_CHUNK
                for _ in range(size // len(chunk)):
                    f.write(chunk)
        tmp.seek(0)
        data = bytearray(tmp.read())
    # APPNOTE 5.8.8: version (2), properties size (2), properties (5:
    # lc/lp/pb, then the dictionary size)
    local = data.index(b"PK\x03\x04")
    name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
    props = local + 30 + name_len + extra_len + 4
    struct.pack_into("<I", data, props + 1, dict_size)
    return bytes(data)


def gzip_header_comment(size):
    """A valid gzip of a report whose FCOMMENT is `size` bytes long."""
    body = gzip.compress(report_xml("gz-comment"))
    # FLG.FCOMMENT; no FNAME in what gzip.compress() writes
    head = bytearray(body[:10])
    head[3] |= 0x10
    return bytes(head) + b"C" * size + b"\0" + body[10:]


def gzip_zeroed_trailer():
    gz = bytearray(gzip.compress(report_xml("zero-trailer")))
    gz[-8:] = b"\0" * 8
    return bytes(gz)


def zip_with_bad_entries():
    """good, encrypted-flagged, LZMA-labelled, CRC-broken, good: the bad
    ones in the middle must not stop the last good one."""
    entries = [("good-1.xml", report_xml("zip-good-1")),
               ("enc.xml", report_xml("zip-enc")),
               ("lzma.xml", report_xml("zip-lzma")),
               ("crc.xml", report_xml("zip-crc")),
               ("good-2.xml", report_xml("zip-good-2"))]
    data = bytearray(zip_bytes(entries, compression=zipfile.ZIP_STORED))
    locals_ = [i for i in range(len(data) - 3) if data[i:i + 4] == b"PK\x03\x04"]
    centrals = [i for i in range(len(data) - 3) if data[i:i + 4] == b"PK\x01\x02"]
    data[locals_[1] + 6] |= 1
    data[centrals[1] + 8] |= 1
    struct.pack_into("<H", data, locals_[2] + 8, 14)
    struct.pack_into("<H", data, centrals[2] + 10, 14)
    name_len, extra_len = struct.unpack_from("<HH", data, locals_[3] + 26)
    data[locals_[3] + 30 + name_len + extra_len + 100] ^= 0x20
    return bytes(data)


def deep_multipart_mail(name, levels, attachment):
    """The report `levels` multiparts deep."""
    filename, mime, data = attachment
    import base64
    lines = [f"From: reporter@hostile.example", "To: dmarc@example.com",
             f"Subject: hostile case {name}", f"Message-ID: <{name}@hostile.example>",
             "MIME-Version: 1.0",
             'Content-Type: multipart/mixed; boundary="b0x"', ""]
    # "bNx": no boundary is a prefix of another (MIME matches prefixes)
    for i in range(1, levels):
        lines += [f"--b{i - 1}x", f'Content-Type: multipart/mixed; boundary="b{i}x"', ""]
    lines += [f"--b{levels - 1}x", f'Content-Type: {mime}; name="{filename}"',
              "Content-Transfer-Encoding: base64", ""]
    lines += base64.encodebytes(data).decode().splitlines()
    for i in range(levels, 0, -1):
        lines.append(f"--b{i - 1}x--")
    return ("\n".join(lines) + "\n").encode()


def cases(tmpdir):
    """All cases but the big ones that have their own tests."""
    deep = (b'<?xml version="1.0"?><feedback>' + b"<a>" * 100000 +
            b"</a>" * 100000 + b"</feedback>")
    bad_utf8 = report_xml("bad-utf8").replace(
        b"<email>dmarc@hostile.example</email>",
        b"<email>dmarc@hostile\xff\xfe.example</email>")
    many_entries = zip_bytes([(f"r{i}.xml", report_xml(f"entry-{i}"))
                           for i in range(5000)])
    gz = gzip.compress(report_xml("truncated-gz"))
    empty_dkim = report_xml("empty-dkim", records=100,
                            extra_record="<auth_results>" + "<dkim/>" * 1000 +
                            "</auth_results>")
    many_dkim = report_xml("many-dkim", extra_record="<auth_results>" + "".join(
        f"<dkim><domain>d{i}.example</domain><result>pass</result></dkim>"
        for i in range(30)) + "</auth_results>")
    latin1_nul = report_xml("latin1-nul", org="caf\xe9\x00\x01.example").replace(
        b'encoding="UTF-8"', b'encoding="ISO-8859-1"').replace(b"\xc3\xa9", b"\xe9")
    full = report_xml("truncated-xml", records=3)
    traversal_zip = zip_bytes([("../../../../tmp/evil-entry.xml",
                             report_xml("traversal-entry")),
                            ("/etc/evil-abs.xml", report_xml("traversal-abs"))])
    return [
        Case("gzip-bomb", mail("gzip-bomb", [("bomb.xml.gz", "application/gzip",
                                              gzip_bomb(GIB + 64 * 1024 ** 2))]),
             0, r"attachment 'bomb\.xml\.gz'.*decompressed size exceeds"),
        Case("zip-bomb", mail("zip-bomb", [("bomb.zip", "application/zip",
                                            zip_bomb(GIB + 64 * 1024 ** 2))]),
             0, r"attachment 'bomb\.zip'.*decompressed size exceeds"),
        Case("entity-expansion", mail("entity-expansion", [
            ("laughs.xml", "text/xml", BILLION_LAUGHS)]),
             0, r"attachment 'laughs\.xml'.*DOCTYPE"),
        Case("external-entity", mail("external-entity", [
            ("xxe.xml", "text/xml", XXE)]),
             0, r"attachment 'xxe\.xml'.*DOCTYPE"),
        Case("deep-nesting", mail("deep-nesting", [
            ("deep.xml", "text/xml", deep)]),
             0, r"attachment 'deep\.xml'.*(depth|nest)"),
        Case("count-overflow", mail("count-overflow", [
            ("overflow.xml", "text/xml",
             report_xml("overflow", count="99999999999999999999"))]),
             0, r"attachment 'overflow\.xml'.*count"),
        Case("count-sum-overflow", mail("count-sum-overflow", [
            ("sum.xml", "text/xml",
             report_xml("sum-overflow", records=2, count="9223372036854775807"))]),
             0, r"attachment 'sum\.xml'.*<count> .* is more than 1000000000000 messages"),
        Case("count-total-bound", mail("count-total-bound", [
            ("total.xml", "text/xml",
             report_xml("total-bound", records=3, count="400000000000"))]),
             0, r"attachment 'total\.xml'.*add up to more than 1000000000000"),
        Case("namespace-bomb", mail("namespace-bomb", [
            ("ns.xml.gz", "application/gzip", namespace_bomb_gz())]),
             0, r"attachment 'ns\.xml\.gz'.*more than 64 XML namespace declarations"),
        Case("empty-dkim", mail("empty-dkim", [
            ("empty-dkim.xml", "text/xml", empty_dkim)]),
             1, r"attachment 'empty-dkim\.xml'.*Stored report empty-dkim"),
        Case("many-dkim", mail("many-dkim", [
            ("many-dkim.xml", "text/xml", many_dkim)]),
             0, r"attachment 'many-dkim\.xml'.*more than 20 auth_results"
                r".*dmarcreport_max_auth_results"),
        Case("latin1-nul", mail("latin1-nul", [
            # the MIME charset names the document's encoding (RFC 7303)
            ("latin1.xml", "text/xml; charset=iso-8859-1", latin1_nul)]),
             1, r"attachment 'latin1\.xml'.*Stored report latin1-nul"),
        Case("truncated-xml", mail("truncated-xml", [
            ("truncated.xml", "text/xml", full[: len(full) * 2 // 3])]),
             0, r"attachment 'truncated\.xml'.*truncated: premature end of data"),
        Case("crlf-values", mail("crlf-values", [
            ("crlf.xml", "text/xml",
             report_xml("crlf&#13;&#10;lmtp: Error: FORGED-LOG-LINE",
                        org="crlf\r\nFORGED.example"))]),
             1, r"attachment 'crlf\.xml'.*Stored report crlf"),
        Case("ipv4-mapped", mail("ipv4-mapped", [
            ("mapped.xml", "text/xml", report_xml("ipv4-mapped").replace(
                b"<source_ip>192.0.2.1<", b"<source_ip>::ffff:192.0.2.1<"))]),
             1, r"attachment 'mapped\.xml'.*Stored report ipv4-mapped"),
        Case("negative-count", mail("negative-count", [
            ("negative.xml", "text/xml", report_xml("negative", count="-5"))]),
             0, r"attachment 'negative\.xml'.*count"),
        Case("invalid-utf8", mail("invalid-utf8", [
            ("badutf8.xml", "text/xml", bad_utf8)]),
             1, r"attachment 'badutf8\.xml'.*Stored report bad-utf8"),
        Case("truncated-gzip", mail("truncated-gzip", [
            ("trunc.xml.gz", "application/gzip", gz[: len(gz) // 2])]),
             0, r"attachment 'trunc\.xml\.gz'.*Not stored"),
        Case("corrupt-zip", mail("corrupt-zip", [
            ("corrupt.zip", "application/zip",
             b"PK\x03\x04" + os.urandom(64) + b"garbage" * 50)]),
             0, r"attachment 'corrupt\.zip'.*Not stored"),
        Case("not-a-report", mail("not-a-report", [],
                                  body="Hello, just a normal mail.\n"),
             0, r"No attachment in the message"),
        Case("html-as-xml", mail("html-as-xml", [
            ("report.xml", "text/xml",
             b"<!DOCTYPE html><html><body>nope</body></html>")]),
             0, r"attachment 'report\.xml'.*Not stored"),
        Case("html-no-doctype", mail("html-no-doctype", [
            ("page.xml", "text/xml", b"<html><body>nope</body></html>")]),
             0, r"attachment 'page\.xml'.*Not stored.*(root|not a DMARC)"),
        # counted before the directory is loaded: nothing is read
        Case("many-zip-entries", mail("many-zip-entries", [
            ("many.zip", "application/zip", many_entries)]),
             0, r"attachment 'many\.zip'.*more than 100 entries"),
        Case("zip-directory-1m", mail("zip-directory-1m", [
            ("huge-dir.zip", "application/zip",
             zip_many_directory_entries(600000))]),
             0, r"attachment 'huge-dir\.zip'.*more than 100 entries"),
        Case("zip-lzma-dictionary", mail("zip-lzma-dictionary", [
            ("lzma.zip", "application/zip", zip_lzma_big_dictionary())]),
             0, r"attachment 'lzma\.zip'.*compressed with lzma"),
        Case("gzip-header-comment", mail("gzip-header-comment", [
            ("comment.xml.gz", "application/gzip",
             gzip_header_comment(45 * 1024 ** 2))]),
             0, r"attachment 'comment\.xml\.gz'.*header .*longer than"),
        Case("gzip-zeroed-trailer", mail("gzip-zeroed-trailer", [
            ("zero.xml.gz", "application/gzip", gzip_zeroed_trailer())]),
             0, r"attachment 'zero\.xml\.gz'.*incorrect data check"),
        # the warnings are per entry: no "one warning" rule for this one
        Case("zip-bad-entries", mail("zip-bad-entries", [
            ("entries.zip", "application/zip", zip_with_bad_entries())]),
             2, r"Stored report zip-good-2"),
        Case("deep-multipart", deep_multipart_mail("deep-multipart", 200, (
            "deep.xml", "text/xml", report_xml("deep-multipart"))),
             0, r"Warning: .*dmarcreport_max_mime_depth=20"),
        Case("gzip-as-text-xml", mail("gzip-as-text-xml", [
            ("r.xml.gz", "text/xml", gzip.compress(report_xml("gz-as-text")))]),
             1, r"Stored report gz-as-text"),
        Case("gzip-as-text-plain", mail("gzip-as-text-plain", [
            ("report.xml.gz", "text/plain; name=report.xml.gz",
             gzip.compress(report_xml("gz-as-plain")))]),
             1, r"Stored report gz-as-plain"),
        Case("latin1-text-xml", mail("latin1-text-xml", [
            ("latin1.xml", "text/xml; charset=iso-8859-1",
             report_xml("latin1", org="caf\xe9.example").replace(
                 b'encoding="UTF-8"', b'encoding="ISO-8859-1"').replace(
                 "caf\xe9".encode(), b"caf\xe9"))]),
             1, r"Stored report latin1"),
        Case("base64-text-unclosed", unclosed_mail(
            "base64-text-unclosed", "unclosed.xml", "text/xml",
            report_xml("unclosed")),
             1, r"Stored report unclosed"),
        Case("path-traversal-names", mail("path-traversal-names", [
            ("../../../../tmp/evil.xml", "text/xml", report_xml("traversal-1")),
            ("/etc/cron.d/evil.xml", "text/xml", report_xml("traversal-2")),
            ("traversal.zip", "application/zip", traversal_zip)]),
             4, r"Stored report traversal-abs"),
        Case("rfc2231-traversal", mail("rfc2231-traversal", [
            ("x.xml", "text/xml", report_xml("traversal-2231"))],
            raw_filename_params="filename*=UTF-8''..%2F..%2F..%2Fevil%00.xml"),
             1, r"Stored report traversal-2231"),
    ]
