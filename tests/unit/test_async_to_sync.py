"""tools/async_to_sync.py: the blocking client is generated from the async one (`make sync`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("async_to_sync", ROOT / "tools" / "async_to_sync.py")
assert _spec is not None and _spec.loader is not None
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

SOURCE = '''"""Kept as written: AsyncMeterClient, await."""

if True:  # ASYNC
    import asyncio
else:
    import threading


class AsyncMeterClient:
    # ASYNC: only in the async file.
    async def close(self) -> None:
        """`async with AsyncMeterClient(...)` awaits this."""
        if True:  # ASYNC
            await asyncio.sleep(0)  # sleep-ok: source text for the tool, never run
        else:
            if True:  # ASYNC
                nested = "async"
            else:
                nested = "sync"
            threading.Event().wait(0)
        await self._channel.close()

    async def __aenter__(self) -> AsyncMeterClient:
        return self
'''


def test_translate_keeps_the_blocking_branches_and_renames():
    out = tool.translate(SOURCE)
    assert out.startswith(tool.HEADER + '"""Kept as written: AsyncMeterClient, await."""')
    body = out.split('"""\n', 1)[1]
    assert "import threading\n" in body and "asyncio" not in body
    assert "class MeterClient:" in body and "Async" not in body
    assert "    def close(self) -> None:\n" in body and "await " not in body
    assert '"""`with MeterClient(...)` awaits this."""' in body  # the word "awaits" is not the keyword
    assert '        nested = "sync"\n        threading.Event().wait(0)\n        self._channel.close()\n' in body
    assert "def __enter__(self) -> MeterClient:" in body
    assert "only in the async file" not in body


def test_an_async_branch_without_its_blocking_twin_is_refused():
    with pytest.raises(tool.SourceError, match="needs an `else:`"):
        tool.translate("if True:  # ASYNC\n    import asyncio\nx = 1\n")


def test_the_committed_sync_client_is_what_the_async_one_generates():
    assert (ROOT / "client/meter/_sync.py").read_text() == tool.generate(tool.SOURCE.read_text()), "run make sync"
