#!/usr/bin/env python3
"""Demo: a private Dovecot with the plugin, sample reports over LMTP, and
doveadm dmarc's view of them. Run through tools/demo.sh."""

import glob
import os
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "e2e"))
import dovetest  # noqa: E402

USER = "dmarc"


def show(title, result):
    print(f"\n$ {title}")
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        sys.stdout.write(result.stderr)
        raise SystemExit(f"demo: command failed with exit code {result.returncode}")


def main():
    dovetest.require_root()
    with tempfile.TemporaryDirectory(prefix="dmarc-demo-") as samples:
        # Sample reports from the benchmark's generator: Google-style zip,
        # Microsoft-style gzip with an HTML body, Mail.ru's gzip labelled
        # application/octet-stream, plain XML.
        subprocess.run([sys.executable, os.path.join(TOP, "bench", "gen_reports.py"),
                        samples, "--count", "12", "--seed", "2026"],
                       check=True, stdout=subprocess.DEVNULL)
        mails = sorted(glob.glob(os.path.join(samples, "*.eml")))
        corpus_mails = sorted(glob.glob(os.path.join(dovetest.CORPUS_DIR, "email", "*.eml")))

        with dovetest.Dovecot("demo", users={USER: {}}) as dc:
            print(f"A private Dovecot is listening for LMTP on 127.0.0.1:{dc.lmtp_port}"
                  f" (config {dc.conf}).")
            print(f"Delivering {len(mails)} generated report mails"
                  + (f" and {len(corpus_mails)} real ones from the corpus"
                     if corpus_mails else "") + f" to {USER}@ over LMTP ...")
            for path in mails + corpus_mails:
                with open(path, "rb") as f:
                    dc.lmtp_deliver_ok(f.read(), USER)
            print(f"{len(dc.mail_files(USER))} mails in the INBOX, "
                  f"{dc.query(USER, 'SELECT count(*) FROM reports')[0][0]} reports "
                  f"stored in {dc.db_path(USER)}.")

            show(f"doveadm dmarc list -u {USER}",
                 dc.doveadm(["dmarc", "list"], user=USER))
            show(f"doveadm dmarc query -u {USER} --group-by source",
                 dc.doveadm(["dmarc", "query", "--group-by", "source"], user=USER))
            show(f"doveadm dmarc summary -u {USER}",
                 dc.doveadm(["dmarc", "summary"], user=USER))
            show(f"doveadm -f json dmarc query -u {USER} domain example.com dkim fail",
                 dc.doveadm(["dmarc", "query", "domain", "example.com",
                             "dkim", "fail"], user=USER, fmt="json"))
            print("\nThe server log's lines about the reports:")
            for line in dc.log_text().splitlines():
                if "dmarcreport" in line and ("Stored" in line or "Not stored" in line
                                              or "Duplicate" in line):
                    print("  " + line[:200])
    return 0


if __name__ == "__main__":
    sys.exit(main())
