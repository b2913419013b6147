"""A one-line progress bar for the long direct commands (reprice, retention, price sync), on stderr
and only when stderr is a terminal: scripts, pipes and tests see exactly the output they saw before."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

WIDTH = 24


class Progress:
    """`with Progress("reprice") as bar: work(progress=bar)`; the work calls `bar(done, total)` (total
    None when unknown: a count and a rate instead of a bar). Redraws at most every `interval` seconds
    and clears its line at the end, so what the command prints next starts on a clean line."""

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.1,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.interval = interval
        self.started = clock()
        self._drawn_at: float | None = None
        self._width = 0

    def __call__(self, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        now = self.clock()
        final = total is not None and done >= total
        if not final and self._drawn_at is not None and now - self._drawn_at < self.interval:
            return
        self._drawn_at = now
        self._draw(line(self.label, done, total, now - self.started))

    def _draw(self, text: str) -> None:
        pad = max(self._width - len(text), 0)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def line(label: str, done: int, total: int | None, elapsed: float) -> str:
    """`reprice [#########...............]  38% 3,800/10,000` or, total unknown, `reprice 3,800 (950/s)`."""
    if total is None or total <= 0:
        rate = f" ({done / elapsed:,.0f}/s)" if elapsed > 0 else ""
        return f"{label} {done:,}{rate}"
    fraction = min(done / total, 1.0)
    filled = int(fraction * WIDTH)
    return f"{label} [{'#' * filled}{'.' * (WIDTH - filled)}] {fraction:4.0%} {done:,}/{total:,}"
