"""A settable clock for servers whose quota windows must be driven by the test."""

from __future__ import annotations

import datetime as dt


class FakeClock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, when: dt.datetime) -> None:
        self.now = when

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)
