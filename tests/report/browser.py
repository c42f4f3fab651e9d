"""A small headless-Chromium driver for the report's browser tests: the DevTools protocol over a pipe.

Chromium started with ``--remote-debugging-pipe`` reads DevTools commands (JSON, each ended by a NUL byte) on file
descriptor 3 and writes replies and events on descriptor 4, so no WebSocket client and no browser download are
needed: the system's Chromium (``/usr/bin/chromium`` or ``$CHROMIUM``) is driven with the standard library alone.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: Flags that make WebGL2 (which NiiVue needs) work in headless Chromium without a GPU, as root in a container.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu-sandbox", "--use-angle=swiftshader",
                  "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist", "--no-first-run",
                  "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                  "--disable-dev-shm-usage", "--window-size=1280,900", "--remote-debugging-pipe")


REPO = Path(__file__).resolve().parents[2]


def chromium_path() -> str:
    """The Chromium to drive: ``$CHROMIUM``, else ``chromium`` / ``chromium-browser`` / ``google-chrome`` on the
    PATH. When there is none the test is skipped; with CI=true ``.ci/ensure-chromium`` installs Debian's package
    first, and the test fails if there is still none."""
    def found() -> str | None:
        for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
            if name and shutil.which(name):
                return str(shutil.which(name))
        return None

    path = found()
    if path:
        return path
    message = ("headless Chromium not found (install Debian's chromium package, e.g. with .ci/ensure-chromium, or "
               "set CHROMIUM to a Chromium or Chrome binary); the review viewer's browser tests need it")
    if os.environ.get("CI", "").lower() == "true":
        done = subprocess.run([str(REPO / ".ci" / "ensure-chromium")], capture_output=True, text=True, timeout=600)
        path = found()
        if path:
            return path
        pytest.fail(f"{message}\n.ci/ensure-chromium: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    pytest.skip(message)


class BrowserError(RuntimeError):
    """A DevTools command failed, or the browser did not answer in time."""


class Browser:
    """One headless Chromium process and one page in it (a DevTools session)."""

    def __init__(self, executable: str, *, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="radiobio-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def _fds() -> None:  # runs in the child (before it closes all but 3 and 4): DevTools on 3 (in), 4 (out)
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen([executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                                         "about:blank"], preexec_fn=_fds, pass_fds=(3, 4),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.console: list[str] = []
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime"):
            self.send(f"{domain}.enable")

    def close(self) -> None:
        """End the browser process and remove its profile."""
        try:
            self.send("Browser.close", session=False)
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- protocol -------------------------------------------------------------------------------------------
    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> dict[str, Any]:
        """Run one DevTools command (in the page's session unless ``session=False``); returns its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        wanted = self._next_id
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline, method)
            if reply.get("id") == wanted:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self, deadline: float, what: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                raise BrowserError(f"no answer from Chromium to {what}")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium closed the DevTools pipe during {what}")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message = json.loads(raw)
        if "method" in message:
            self._event(message)
        return message

    def _event(self, message: dict[str, Any]) -> None:
        self.events.append(message)
        params = message.get("params", {})
        if message["method"] == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif message["method"] == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.console.append("exception: " + str(details.get("exception", {}).get("description")
                                                    or details.get("text")))

    def wait_event(self, method: str, predicate: Callable[[dict[str, Any]], bool] = lambda p: True,
                   timeout: float | None = None) -> dict[str, Any]:
        """The params of the first event ``method`` (seen already or to come) for which ``predicate`` holds."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = 0
        while True:
            for message in self.events[seen:]:
                if message.get("method") == method and predicate(message.get("params", {})):
                    self.events.remove(message)
                    return message["params"]
            seen = len(self.events)
            self._read(deadline, f"waiting for {method}")

    # --- page -----------------------------------------------------------------------------------------------
    def goto(self, url: str) -> None:
        """Open ``url`` and wait for its load event (a fresh load even when only the URL's fragment changes)."""
        for target in ("about:blank", url):
            self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
            self.send("Page.navigate", {"url": target})
            self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression}: {details.get('exception', {}).get('description') or details}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression}; console: {self.console[-10:]}")
            time.sleep(0.1)

    def screenshot(self, selector: str | None = None) -> bytes:
        """A PNG of the page, or of the element ``selector`` (its bounding box)."""
        params: dict[str, Any] = {"format": "png"}
        if selector:
            box = self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                                f".getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }})()")
            params["clip"] = {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])

    def wheel(self, selector: str, delta_y: float, times: int = 1) -> None:
        """Turn the mouse wheel over the centre of the element ``selector``."""
        x, y = self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                             f".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        for _ in range(times):
            self.send("Input.dispatchMouseEvent", {"type": "mouseWheel", "x": x, "y": y, "deltaX": 0,
                                                   "deltaY": delta_y})

    def click(self, selector: str) -> None:
        """A real mouse click on the centre of the element ``selector``."""
        x, y = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                             f"e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); "
                             f"return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                   "clickCount": 1})

    def type_text(self, text: str) -> None:
        """Type ``text`` into the focused element."""
        self.send("Input.insertText", {"text": text})

    def key(self, key: str, code: str, key_code: int) -> None:
        """Press and release one key (e.g. ``"ArrowDown"``, ``"ArrowDown"``, 40) on the focused element."""
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": code,
                                                 "windowsVirtualKeyCode": key_code})

    def downloads_to(self, folder: Path) -> None:
        """Save downloads into ``folder`` (their suggested names) and report their progress as events."""
        self.send("Browser.setDownloadBehavior", {"behavior": "allowAndName", "downloadPath": str(folder),
                                                  "eventsEnabled": True}, session=False)

    def wait_download(self, folder: Path, timeout: float | None = None) -> tuple[str, bytes]:
        """The suggested file name and content of the next download (saved by :meth:`downloads_to`)."""
        begin = self.wait_event("Browser.downloadWillBegin", timeout=timeout)
        self.wait_event("Browser.downloadProgress", lambda p: p.get("guid") == begin["guid"]
                        and p.get("state") == "completed", timeout=timeout)
        return begin["suggestedFilename"], (folder / begin["guid"]).read_bytes()
