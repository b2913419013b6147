"""Meter goes down mid-run (a real `meter serve` process is stopped) and comes back on the same port:
calls go ahead within the emergency allowance, their records wait in the spool (in memory of a live
client, or in a file across a client restart) and every record is counted exactly once."""

from __future__ import annotations

import pytest

from meter import FailurePolicy, FileSpool, MeterClient, MeterUnavailable, record_request
from meter_testing.processes import ServeProcess
from meter_testing.waiting import eventually_sync

from .sdk_responses import openai_chat

pytestmark = pytest.mark.slow

# Long deadlines: a slow (loaded) Meter must not look like an outage. They cost nothing here, since a
# stopped Meter is a refused connection, which fails at once.
FAST = {
    "check_timeout": 5.0,
    "record_timeout": 5.0,
    "record_retries": 1,
    "retry_backoff": 0.05,
    "flush_interval": 0.1,
    "probe_interval": 0.3,
}
ALLOWANCE = FailurePolicy.allowance(calls_per_minute=4, tokens_per_minute=1_000_000)


class Expected:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.input = self.output = 0

    def guarded(self, meter: MeterClient, i: int, subject: str):
        with meter.guard(subject, "openai", "gpt-4.1", estimate_tokens=500) as call:
            call.record_openai(openai_chat(prompt=100 + i, completion=10 + i))
        self.ids.append(call.call_id)
        self.input, self.output = self.input + 100 + i, self.output + 10 + i
        return call

    def direct(self, meter: MeterClient, i: int, subject: str):
        result = meter.record(subject, "openai", "gpt-4.1", input_tokens=100 + i, output_tokens=10 + i)
        self.ids.append(result.call_id)
        self.input, self.output = self.input + 100 + i, self.output + 10 + i
        return result


def all_call_ids(meter: MeterClient) -> list[str]:
    ids, token = [], ""
    while True:
        page = meter.list_calls(page_size=1000, page_token=token)
        ids += [c.call_id for c in page.calls]
        token = page.next_page_token
        if not token:
            return ids


def test_records_made_during_an_outage_are_delivered_exactly_once(tmp_path, database_url, fresh_tenant):
    key = fresh_tenant.keys["admin"]
    server = ServeProcess(tmp_path / "before.log", "--database-url", database_url, "--grace-period", "1")
    server.wait_for("SERVING")  # listening comes first: an earlier call is UNAVAILABLE and spends the allowance
    port, expected = server.port, Expected()
    live = MeterClient(server.address, api_key=key, policy=ALLOWANCE, spool=FileSpool(tmp_path / "live.spool"), **FAST)
    leaving = MeterClient(
        server.address, api_key=key, policy=ALLOWANCE, spool=FileSpool(tmp_path / "left.spool"), **FAST
    )
    try:
        for i in range(3):
            assert not expected.guarded(live, i, "svc/live").result.spooled
        answer_lost = record_request("svc/live", "openai", "gpt-4.1", input_tokens=7, output_tokens=3)
        assert not live.record_request(answer_lost).duplicate
        expected.ids.append(answer_lost.call_id)
        expected.input, expected.output = expected.input + 7, expected.output + 3

        assert server.stop() == 0  # Meter is down

        for i in range(3, 7):  # within the allowance: the calls go ahead, records are spooled
            call = expected.guarded(live, i, "svc/live")
            assert call.check.degraded and call.result.spooled
        with pytest.raises(MeterUnavailable, match="allowance exhausted"):
            with live.guard("svc/live", "openai", "gpt-4.1", estimate_tokens=500):
                pytest.fail("the allowance is spent: the call must not run")
        assert expected.direct(live, 7, "svc/live").spooled
        # A record delivered before the outage whose answer was lost is spooled again: still counted once.
        assert live.spool.append(answer_lost)
        assert len(live.spool) == 6

        for i in range(10, 13):
            assert expected.direct(leaving, i, "svc/left").spooled
        leaving.close(flush_timeout=0)  # the process exits with 3 records in its spool file
        assert (tmp_path / "left.spool").stat().st_size > 0

        server = ServeProcess(
            tmp_path / "after.log",
            "--listen",
            f"127.0.0.1:{port}",
            "--database-url",
            database_url,
            "--grace-period",
            "1",
        )
        # The live client's background flusher delivers its spool by itself (no flush() call).
        eventually_sync(lambda: not len(live.spool), within=20, what="the live client's spool delivered")
        restarted = MeterClient(server.address, api_key=key, spool=FileSpool(tmp_path / "left.spool"), **FAST)
        with restarted:  # a new process finds the file and delivers it
            assert restarted.flush(timeout=20) == 0
            assert restarted.core.delivered_from_spool == 3
            assert not expected.guarded(restarted, 20, "svc/left").result.spooled
            ids = all_call_ids(restarted)
            totals = restarted.usage().totals
        assert live.core.delivered_from_spool == 6 and live.core.rejected_from_spool == 0
        assert sorted(ids) == sorted(expected.ids) and len(set(ids)) == len(ids) == 13
        assert (totals.calls, totals.input_tokens, totals.output_tokens, totals.errors) == (
            13,
            expected.input,
            expected.output,
            0,
        )
    finally:
        live.close(flush_timeout=0)
        leaving.close(flush_timeout=0)
        server.stop()
