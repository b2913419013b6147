"""The content fingerprint behind idempotency: stored with each first record, compared on every retry."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.calls import CallInput, Dimensions

CALL = CallInput(
    call_id="c-1", reservation_id="r", dims=Dimensions("team:a/u1", "openai", "gpt-4.1", "chat", {"f": "x", "a": "ü"}),
    usage_given=True, input_tokens=1, output_tokens=2, cached_read_tokens=3, cache_write_tokens=4, reasoning_tokens=5,
    requests=1, units=0, latency_us=1234, ttft_us=None, retry_count=2, success=False, error_code="rate_limit",
    error_message="boom", occurred_at=dt.datetime(2026, 3, 10, 12, 0, 1, 5, tzinfo=dt.UTC), client_cost_nanos=None,
    metadata={"k": "v"},
)  # fmt: skip


def test_fingerprint_is_pinned_so_retries_of_calls_recorded_by_older_versions_still_match():
    # Digests of the original definition (every field, sorted, as JSON); a change here would turn a
    # retry of a call recorded before an upgrade into ALREADY_EXISTS.
    assert CALL.fingerprint().hex() == "f78a07fba537dc7644084e99d91dd4b70d29ad32df466ed9bacecf0684b6c224"
    bare = dataclasses.replace(CALL, occurred_at=None, reservation_id="")
    assert bare.fingerprint().hex() == "e50f5738bcf32e17e5671870ff4b560008e25503060504c5552fb438f6e32fd1"


def test_every_field_and_label_is_part_of_the_content():
    changed = [
        dataclasses.replace(CALL, **{f.name: value})
        for f, value in zip(dataclasses.fields(CallInput), (
            "c-2", "r2", dataclasses.replace(CALL.dims, model="gpt-4o"), False, 9, 9, 9, 9, 9, 2, 1, 1, 1, 3, True,
            "x", "boom!", CALL.occurred_at + dt.timedelta(microseconds=1), 7, {"k": "w"}, "flex",
        ), strict=True)
    ]  # fmt: skip
    changed.append(dataclasses.replace(CALL, dims=dataclasses.replace(CALL.dims, labels={"f": "y", "a": "ü"})))
    digests = {c.fingerprint() for c in changed}
    assert len(digests) == len(changed) and CALL.fingerprint() not in digests
