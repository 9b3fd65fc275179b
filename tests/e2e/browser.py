"""Headless Chromium for the end-to-end tests, driven over the DevTools
protocol on a pipe (--remote-debugging-pipe): Python's standard library
only, no WebDriver, no network port.

    with browser.Chromium() as b:
        page = b.load("file:///tmp/report.html", screenshot="shot.png")
        page.requests        # every request the page attempted
        page.errors          # console/log entries of level error, exceptions
        b.evaluate(...)      # DevTools' Runtime.evaluate in that page

Only the test evaluates JavaScript (through DevTools); the page under test
has none. Every host name resolves to nothing (--host-resolver-rules), so
even a request that slipped through could not leave the machine; the
test asserts that none was attempted at all (Network.requestWillBeSent).
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

CHROMIUM = "chromium"


def find():
    return shutil.which(CHROMIUM)


class DevToolsError(RuntimeError):
    pass


class Page:
    def __init__(self):
        self.requests = []
        self.errors = []
        self.log = []


class Chromium:
    def __init__(self, width=1200, height=900, dark=False, timeout=60):
        self.width = width
        self.height = height
        self.dark = dark
        self.timeout = timeout
        self.proc = None
        self.profile = None
        self.next_id = 0
        self.buf = b""
        self.events = []
        self.session = None

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="dmarc-chromium-")
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()

        def child_fds():
            # --remote-debugging-pipe: Chromium reads fd 3, writes fd 4
            # (through fds above both, which may be 3 or 4 themselves)
            r = os.dup2(to_chrome_r, 100)
            w = os.dup2(from_chrome_w, 101)
            os.dup2(r, 3)
            os.dup2(w, 4)

        args = [CHROMIUM, "--headless=new", "--remote-debugging-pipe",
                # root in a test container: no user namespace sandbox
                "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--metrics-recording-only", "--mute-audio",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--user-data-dir={self.profile}",
                f"--window-size={self.width},{self.height}", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=None if os.environ.get("CHROMIUM_DEBUG") else subprocess.DEVNULL,
                                     preexec_fn=child_fds,
                                     pass_fds=(3, 4))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.wfd = to_chrome_w
        self.rfd = from_chrome_r
        return self

    def __exit__(self, *exc):
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close", session=False, wait=False)
                except OSError:
                    pass
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            os.close(self.wfd)
            os.close(self.rfd)
            shutil.rmtree(self.profile, ignore_errors=True)
        return False

    # --- the protocol ---------------------------------------------------

    def _read_message(self, deadline):
        import select
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DevToolsError("Chromium did not answer in time")
            ready, _, _ = select.select([self.rfd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.rfd, 1 << 20)
            if not chunk:
                raise DevToolsError("Chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=True, wait=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        if not wait:
            return None
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        for i, ev in enumerate(self.events):
            if ev["method"] == method:
                return self.events.pop(i)
        while True:
            ev = self._read_message(deadline)
            if ev.get("method") == method:
                return ev
            if "method" in ev:
                self.events.append(ev)

    def evaluate(self, expression):
        r = self.send("Runtime.evaluate", {"expression": expression,
                                           "returnByValue": True})
        if "exceptionDetails" in r:
            raise DevToolsError(f"evaluate: {r['exceptionDetails']}")
        return r["result"].get("value")

    # --- one page ---------------------------------------------------------

    def load(self, url, screenshot=None, max_height=None):
        """Opens url in a new tab, waits for its load event, collects the
        requests it attempted and the errors it logged; with screenshot, a
        PNG of the whole page (or its top max_height pixels) is written
        there."""
        target = self.send("Target.createTarget", {"url": "about:blank"},
                           session=False)
        attached = self.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True},
                             session=False)
        self.session = attached["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setEmulatedMedia", {"features": [
            {"name": "prefers-color-scheme",
             "value": "dark" if self.dark else "light"}]})
        self.send("Emulation.setDeviceMetricsOverride", {
            "width": self.width, "height": self.height,
            "deviceScaleFactor": 1, "mobile": False})
        self.events = []
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")
        # whatever the page would still do after load (it has nothing to
        # do): one round trip through the renderer first
        self.evaluate("document.readyState")

        page = Page()
        for ev in self.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Network.requestWillBeSent":
                page.requests.append(p["request"]["url"])
            elif m == "Log.entryAdded":
                page.log.append(p["entry"])
                if p["entry"].get("level") == "error":
                    page.errors.append(p["entry"].get("text"))
            elif m == "Runtime.exceptionThrown":
                page.errors.append(str(p.get("exceptionDetails")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                page.errors.append(str(p.get("args")))
        if screenshot:
            # the whole page in the viewport: no scroll bar in the picture
            height = self.evaluate("document.documentElement.scrollHeight")
            self.send("Emulation.setDeviceMetricsOverride", {
                "width": self.width, "height": int(height),
                "deviceScaleFactor": 1, "mobile": False})
            params = {"format": "png"}
            if max_height and height > max_height:
                params["clip"] = {"x": 0, "y": 0, "width": self.width,
                                  "height": max_height, "scale": 1}
            shot = self.send("Page.captureScreenshot", params)
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        return page

    def print_pdf(self, path):
        """The page loaded last, printed (print media, A4) to a PDF file;
        returns its page count as the PDF says it."""
        r = self.send("Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69,
                                          "printBackground": False})
        data = base64.b64decode(r["data"])
        with open(path, "wb") as f:
            f.write(data)
        import re
        return len(re.findall(rb"/Type\s*/Page[^s]", data))
