"""`meter` as separate processes, as users and replicas run it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

METER = [sys.executable, "-m", "meterd"]


class ServeProcess:
    """`meter serve` on a free port; its log is a file the test can wait on."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [*METER, "serve", "--listen", "127.0.0.1:0", *args], stdout=out, stderr=subprocess.STDOUT, env=env
            )
        try:
            self.port = int(self.wait_for(r"listening on \S+ \(port (\d+)\)").group(1))
        except BaseException:
            self.kill()
            raise

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log.read_text())
            if match:
                return match
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.05)  # sleep-ok: the poll interval of this wait, which has a deadline
        raise AssertionError(f"{pattern!r} not in log:\n{self.log.read_text()}")

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def create_key(tenant: str, role: str, *args: str) -> str:
    return subprocess.run(
        [*METER, "keys", "create", "--tenant", tenant, "--role", role, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
