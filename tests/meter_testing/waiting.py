"""Waiting for a condition, never for a guessed duration: the one place tests poll.

tests/unit/test_no_sleep_barriers.py fails on any other `sleep(` in the tests unless its line says
why it is not a barrier (`# sleep-ok: ...`, e.g. a fake server that must be slow)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

POLL = 0.02


async def eventually(predicate: Callable[[], Any], *, within: float = 10.0, what: str = "") -> Any:
    """Polls `predicate` (sync or async) until it returns something truthy, which is returned; fails
    the test after `within` seconds naming `what`."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not reached within {within:g}s: {what or predicate}")
        await asyncio.sleep(POLL)


def eventually_sync(predicate: Callable[[], Any], *, within: float = 10.0, what: str = "") -> Any:
    """`eventually` for synchronous tests."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not reached within {within:g}s: {what or predicate}")
        time.sleep(POLL)
