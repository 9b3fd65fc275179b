#!/usr/bin/env python3
"""End-to-end: the harness's own promise that tests need not depend on
timing. lmtp_deliver() returns only once the Dovecot log holds every line
of the delivery (the log process writes them after lmtp has replied), so
a test may assert at once that a line is there, or that it is not."""

import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovetest  # noqa: E402
import reportmail  # noqa: E402
from dovetest import check, check_equal  # noqa: E402

USER = "logwait"


def test_delivery_returns_after_its_log_lines(dc):
    """wait_session_logged() (which lmtp_deliver() calls) returns only once
    the log holds the session's lines up to its "Disconnect from" line.
    The log is held back by the test, not by stopping Dovecot's log
    process: a log process stopped and continued does not always write
    the lines it got meanwhile until Dovecot stops (seen on 2.3 and 2.4),
    which made that version of this test fail on Dovecot, not on the
    harness. The lines are the real ones of a real delivery."""
    mail = reportmail.report_mail([("w.xml", reportmail.report_xml("logwait-1"))],
                                  "<logwait-0@e2e.test>")
    mark = dc.log_mark()
    replies = dc.lmtp_deliver(mail, USER, wait_logged=False)
    # now the real wait, so that the whole session is in the log
    check(dc.wait_session_logged(replies.values(), mark),
          "the session's lines did not reach the log")
    full = dc.log_since(mark)
    lines = full.splitlines(keepends=True)
    stored = [n for n, l in enumerate(lines)
              if re.search(r"msgid=<logwait-0@e2e\.test>.*Stored report logwait-1 ", l)]
    check_equal(len(stored), 1, "'Stored' lines of the delivery")
    disconnect = [n for n, l in enumerate(lines)
                  if n > stored[0] and "Disconnect from" in l]
    check(disconnect, "no 'Disconnect from' line after the delivery's lines")
    # the log as the waiting harness would see it, growing one line per
    # read: it must keep waiting until the Disconnect line is there
    reads = []

    def growing_log(_mark):
        reads.append(1)
        return "".join(lines[:len(reads)])

    real_log_since = dc.log_since
    dc.log_since = growing_log
    try:
        check(dc.wait_session_logged(replies.values(), mark),
              "wait_session_logged() gave up on a log that got complete")
    finally:
        dc.log_since = real_log_since
    check_equal(len(reads), disconnect[0] + 1,
                "log reads until wait_session_logged() returned (one line more each)")


TESTS = [
    test_delivery_returns_after_its_log_lines,
]


if __name__ == "__main__":
    dovetest.main(TESTS, lambda: dovetest.Dovecot("harness", users={USER: {}}))
