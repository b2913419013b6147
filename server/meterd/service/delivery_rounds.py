"""The loop both alert senders run (channels and the legacy webhooks): deliver whatever is due until
nothing is, then wait for a wake-up (a new alert) or the poll interval (retries coming due)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_delivery_rounds(
    send_due: Callable[[], Awaitable[int]], wake: asyncio.Event, poll: float, what: str
) -> None:
    """Runs until cancelled. send_due() delivers one batch and returns how many rows it took."""
    task = asyncio.current_task()
    while True:
        if task is not None and task.cancelling():
            # A cancellation swallowed below us (seen once, at a stop 14 ms after start) must still
            # end this loop, or the server's shutdown waits for it forever.
            raise asyncio.CancelledError
        wake.clear()
        try:
            while await send_due() > 0:
                pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the database may be down; next round
            log.warning("%s delivery round failed: %s", what, exc)
        try:
            async with asyncio.timeout(poll):
                await wake.wait()
        except TimeoutError:
            pass
