"""A small driver for headless Chromium over the DevTools protocol, with no package and no driver download.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands on its file descriptor 3 and
writes replies and events on 4: JSON messages, each ended by a NUL byte. This opens one page (a target,
attached with a flat session) and offers what the site tests need: go to a ``file://`` URL, evaluate
JavaScript, type and click as a user does (``Input`` events, not ``element.click()``), screenshots, and a
record of console errors, exceptions and every network request the page made.

Offline by construction: the browser runs with the flags PITFALLS.md lists, an empty profile, a host
resolver that resolves nothing, and no proxy; requests are recorded (``Network``) so a test can assert
that the page asked for nothing outside ``file:``/``data:``.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
SKIP_REASON = "headless chromium is not installed (apt-get install -y chromium); browser checks skipped"

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--no-default-browser-check", "--host-resolver-rules=MAP * ~NOTFOUND", "--no-proxy-server",
         "--hide-scrollbars", "--font-render-hinting=none")


class BrowserError(RuntimeError):
    """The browser did not answer, or answered a command with an error."""


class Browser:
    """One headless Chromium with one page: ``with Browser() as b: b.goto(url); b.evaluate("1+1")``."""

    def __init__(self, *, width: int = 1280, height: int = 900, timeout: float = 90.0):
        if CHROMIUM is None:
            raise BrowserError(SKIP_REASON)
        self.timeout = timeout
        self.width, self.height = width, height
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []
        self._profile = tempfile.mkdtemp(prefix="healthscore-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire() -> None:  # in the child: the protocol's fixed descriptors 3 (commands) and 4 (replies)
            commands, replies = os.dup(to_browser_r), os.dup(from_browser_w)  # either may be 3 or 4 now
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, pass_fds=(3, 4), close_fds=True,  # closing happens after preexec_fn
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable", session=True)
            self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                             "deviceScaleFactor": 1, "mobile": False},
                      session=True)
        except BaseException:
            self.close()
            raise

    # ---- the protocol ---------------------------------------------------------------------------------

    def _read(self, deadline: float) -> dict | None:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed the DevTools pipe (it exited)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, *, session: bool = False,
             timeout: float | None = None) -> dict:
        """Send one command and wait for its reply (events that arrive meanwhile are kept in ``events``)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read(deadline)
            if reply is None:
                raise BrowserError(f"no reply to {method} within {timeout or self.timeout:.0f} s")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, *, after: int = 0, timeout: float | None = None) -> dict:
        """The first event ``method`` at or after position ``after`` of ``events`` (waiting for it)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for event in self.events[after:]:
                if event.get("method") == method:
                    return event
            message = self._read(deadline)
            if message is None:
                raise BrowserError(f"no {method} within {timeout or self.timeout:.0f} s")
            if "method" in message:
                self.events.append(message)

    def pump(self, seconds: float = 0.05) -> None:
        """Collect the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (message := self._read(deadline)) is not None:
            if "method" in message:
                self.events.append(message)

    # ---- what a test does -----------------------------------------------------------------------------

    def goto(self, url: str, *, ready: str | None = None) -> float:
        """Open ``url``, wait for its load event (and for JS expression ``ready`` to be true); return seconds."""
        mark = len(self.events)
        start = time.monotonic()
        reply = self.send("Page.navigate", {"url": url}, session=True)
        if reply.get("errorText"):
            raise BrowserError(f"cannot open {url}: {reply['errorText']}")
        self.wait_event("Page.loadEventFired", after=mark)
        if ready is not None:
            self.wait_for(ready)
        return time.monotonic() - start

    def wait_for(self, expression: str, *, timeout: float | None = None, interval: float = 0.01) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise BrowserError(f"{expression} still false after {timeout or self.timeout:.0f} s")
            self.pump(interval)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited); a thrown error raises."""
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True}, session=True)
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression}: {reply['exceptionDetails'].get('text')} "
                               f"{reply['exceptionDetails'].get('exception', {}).get('description', '')}")
        return reply.get("result", {}).get("value")

    def click(self, selector: str) -> None:
        """Scroll ``selector`` into view and click it with the mouse: the centre of its first box (a link that
        wraps over two lines has nothing of its own at the centre of its bounding rectangle)."""
        box = self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: 'center'}});
            const r = e.getClientRects()[0] || e.getBoundingClientRect();
            const x = r.left + r.width / 2, y = r.top + r.height / 2, hit = document.elementFromPoint(x, y);
            return [x, y, !!hit && e.contains(hit), hit ? hit.tagName : '']; }})()""")
        if box is None:
            raise BrowserError(f"nothing matches {selector}")
        x, y, reachable, other = box
        if not reachable:
            raise BrowserError(f"{selector} is not under the mouse at its centre ({other or 'nothing'} is): a user "
                               "could not click it there")
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "none",
                                               "buttons": 0}, session=True)
        self.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x, "y": y, "button": "left",
                                               "buttons": 1, "clickCount": 1}, session=True)
        self.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x, "y": y, "button": "left",
                                               "buttons": 0, "clickCount": 1}, session=True)

    def select_option(self, selector: str, value: str) -> None:
        """Choose ``value`` in a ``<select>`` as a keyboard user does: focus it, set it, fire ``change``."""
        ok = self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e || ![...e.options].some(o => o.value === {json.dumps(value)})) return false;
            e.focus(); e.value = {json.dumps(value)}; e.dispatchEvent(new Event('change', {{bubbles: true}}));
            return true; }})()""")
        if not ok:
            raise BrowserError(f"{selector} has no option {value!r}")

    def type(self, selector: str, text: str) -> None:
        """Focus ``selector`` and type ``text`` into it (as the keyboard would insert it)."""
        self.click(selector)
        self.send("Input.insertText", {"text": text}, session=True)

    def screenshot(self, path: str | Path, *, full_page: bool = False) -> Path:
        """A PNG of the page (the viewport, or the whole page up to 8,000 px tall) written to ``path``."""
        params: dict = {"format": "png"}
        if full_page:
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size[0], "height": min(size[1], 8000), "scale": 1})
        data = self.send("Page.captureScreenshot", params, session=True)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    # ---- what the page did ----------------------------------------------------------------------------

    def console_errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and browser log errors (CSP, failed loads)."""
        self.pump()
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(f"{d.get('text')} {d.get('exception', {}).get('description', '')}")
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
                out.append(p["entry"].get("text", ""))
        return out

    def requests(self) -> list[str]:
        """Every URL the page requested (documents, scripts, images, fetches), in order."""
        self.pump()
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def clear(self) -> None:
        self.events.clear()

    # ---- lifetime -------------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                try:
                    self.send("Browser.close", timeout=5)
                except (BrowserError, OSError):
                    pass
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
