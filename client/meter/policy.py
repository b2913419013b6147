"""What a client does when Meter cannot answer a check (unreachable, or past the deadline).

* `FailurePolicy.open()`: let every call go ahead unmetered-for-now (records are spooled).
* `FailurePolicy.closed()`: raise `MeterUnavailable`: no call without Meter's yes.
* `FailurePolicy.allowance(calls_per_minute, tokens_per_minute)` (the default, 60 calls and 100,000
  estimated tokens a minute per client): go ahead while a local sliding one-minute allowance lasts,
  then raise `MeterUnavailable`.

Auth errors (`MeterAuthError`) and invalid requests are never covered: they are bugs, not outages.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["open", "closed", "allowance"]


@dataclass(frozen=True)
class FailurePolicy:
    mode: Mode
    calls_per_minute: int = 0
    tokens_per_minute: int = 0

    @classmethod
    def open(cls) -> FailurePolicy:
        return cls("open")

    @classmethod
    def closed(cls) -> FailurePolicy:
        return cls("closed")

    @classmethod
    def allowance(cls, calls_per_minute: int = 60, tokens_per_minute: int = 100_000) -> FailurePolicy:
        if calls_per_minute < 0 or tokens_per_minute < 0:
            raise ValueError("allowance figures must not be negative")
        return cls("allowance", calls_per_minute, tokens_per_minute)


DEFAULT_POLICY = FailurePolicy.allowance()


@dataclass
class EmergencyAllowance:
    """A sliding one-minute budget of calls and estimated tokens, spent only while Meter is unreachable.
    Thread-safe; one per client."""

    policy: FailurePolicy
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _spent: collections.deque = field(default_factory=collections.deque)  # (when, tokens)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, tokens: int) -> bool:
        """True when a call estimated at `tokens` may go ahead without Meter (and counts it)."""
        if self.policy.mode == "open":
            return True
        if self.policy.mode == "closed":
            return False
        with self._lock:
            now = self.clock()
            while self._spent and self._spent[0][0] <= now - self.window:
                self._spent.popleft()
            calls = len(self._spent)
            spent_tokens = sum(t for _, t in self._spent)
            if calls + 1 > self.policy.calls_per_minute or spent_tokens + tokens > self.policy.tokens_per_minute:
                return False
            self._spent.append((now, tokens))
            return True
