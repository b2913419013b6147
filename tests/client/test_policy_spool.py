"""The emergency allowance and the spools (no server)."""

from __future__ import annotations

import pytest

from meter import FailurePolicy, FileSpool, MemorySpool, record_request
from meter.policy import EmergencyAllowance


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_allowance_slides_over_one_minute():
    clock = Clock()
    allowance = EmergencyAllowance(FailurePolicy.allowance(calls_per_minute=2, tokens_per_minute=1000), clock=clock)
    assert allowance.admit(600)
    assert not allowance.admit(600)  # 1200 tokens > 1000; a refusal spends nothing
    assert allowance.admit(400)
    assert not allowance.admit(0)  # third call in the minute
    clock.now += 59.9
    assert not allowance.admit(0)
    clock.now += 0.2  # the first call left the window
    assert allowance.admit(600)
    assert EmergencyAllowance(FailurePolicy.open()).admit(10**12)
    assert not EmergencyAllowance(FailurePolicy.closed()).admit(0)
    with pytest.raises(ValueError):
        FailurePolicy.allowance(calls_per_minute=-1)


def req(n: int):
    return record_request("user:1", "openai", "gpt-4.1", call_id=f"c{n}", input_tokens=n)


def test_memory_spool_is_bounded_ordered_and_keyed_by_call_id():
    spool = MemorySpool(max_records=3)
    assert all(spool.append(req(n)) for n in (1, 2, 3))
    assert spool.append(req(2))  # already waiting: kept once
    assert not spool.append(req(4)) and spool.dropped == 1
    assert [r.call_id for r in spool.head(2)] == ["c1", "c2"]
    spool.remove(["c1", "c3"])
    assert [r.call_id for r in spool.head(10)] == ["c2"]


def test_file_spool_survives_a_restart_compacts_and_ignores_a_torn_tail(tmp_path):
    path = tmp_path / "spool" / "records.bin"
    spool = FileSpool(path, max_records=100, fsync=False)
    for n in range(5):
        spool.append(req(n))
    with pytest.raises(RuntimeError, match="in use"):
        FileSpool(path)  # one owner at a time
    spool.remove(["c0", "c1"])  # delivered: the file is rewritten without them
    size_after_compaction = path.stat().st_size
    spool.close()
    with path.open("ab") as f:  # a crash in the middle of an append
        f.write(b"\x00\x00\x01\x00partial")

    again = FileSpool(path, max_records=100)
    assert [r.call_id for r in again.head(10)] == ["c2", "c3", "c4"]
    assert again.head(1)[0].usage.input_tokens == 2 and again.head(1)[0].HasField("occurred_at")
    assert path.stat().st_size == size_after_compaction  # the torn tail is gone
    again.close()
    full = FileSpool(path, max_records=2)
    assert len(full) == 2 and full.dropped == 1
    full.close()
