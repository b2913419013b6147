"""Just enough of Firefox's Marionette protocol (its built-in remote control: length-prefixed JSON over
TCP) to drive Debian's firefox-esr headless without geckodriver, which is not packaged for Debian and
whose installers download it from GitHub (Playwright's Firefox is a patched build from its CDN)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox") or "/usr/bin/firefox-esr"


class MarionetteError(Exception):
    pass


class Firefox:
    """A headless Firefox with one WebDriver session; `close()` ends the process and its profile."""

    def __init__(self, proc: subprocess.Popen, sock: socket.socket, profile: str) -> None:
        self.proc, self.sock, self.profile = proc, sock, profile
        self.file = sock.makefile("rb")
        self.next_id = 0
        self.version = "?"

    @classmethod
    def start(cls) -> Firefox:
        """Blocking (call it in a thread from async code)."""
        profile = tempfile.mkdtemp(prefix="meter-firefox-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # No first-run pages, updates or telemetry calls on this closed network.
        prefs = {"marionette.port": port, "browser.shell.checkDefaultBrowser": False, "app.update.enabled": False,
                 "datareporting.policy.dataSubmissionEnabled": False, "toolkit.telemetry.enabled": False,
                 "browser.startup.homepage_override.mstone": "ignore", "network.captive-portal-service.enabled": False}  # fmt: skip
        Path(profile, "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items())
        )
        env = {**os.environ, "MOZ_HEADLESS": "1"}
        proc = subprocess.Popen([FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", profile],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise MarionetteError(f"firefox exited with {proc.returncode}")
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise MarionetteError("Firefox's Marionette port did not open within 60 s") from None
                time.sleep(0.2)  # sleep-ok: polling a port that opens once Firefox has started, with a deadline
        sock.settimeout(90)
        browser = cls(proc, sock, profile)
        browser._read()  # the greeting
        session = browser.command(
            "WebDriver:NewSession", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}}
        )
        browser.version = session.get("capabilities", {}).get("browserVersion", "?")
        return browser

    def _read(self) -> Any:
        size = b""
        while (c := self.file.read(1)) != b":":
            if not c:
                raise MarionetteError("Marionette closed the connection")
            size += c
        return json.loads(self.file.read(int(size)))

    def command(self, name: str, params: dict | None = None) -> Any:
        self.next_id += 1
        body = json.dumps([0, self.next_id, name, params or {}]).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body)
        _, _, error, result = self._read()
        if error:
            raise MarionetteError(f"{name}: {error.get('error')}: {str(error.get('message'))[:300]}")
        return result.get("value", result) if isinstance(result, dict) else result

    def goto(self, url: str) -> None:
        self.command("WebDriver:Navigate", {"url": url})

    def js(self, script: str, *args: Any) -> Any:
        return self.command("WebDriver:ExecuteScript", {"script": script, "args": list(args)})

    def url(self) -> str:
        return self.command("WebDriver:GetCurrentURL")

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(base64.b64decode(self.command("WebDriver:TakeScreenshot", {"full": True})))

    def close(self) -> None:
        try:
            self.command("Marionette:Quit")
        except (MarionetteError, OSError):
            pass
        self.sock.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
