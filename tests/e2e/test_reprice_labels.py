"""RepriceCalls corrects the label and error-code rollups too: after a reprice, GetUsage by a declared
label or by error code (answered from rollups, hourly and daily rows) sums to what the raw calls
(ListCalls) now cost, values folded into __other__ included."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from meter.v1 import admin_pb2, common_pb2, meter_pb2
from meter_testing.requests import record
from meterd.api.convert import ts

from .conftest import T0

OK, ERR = common_pb2.OUTCOME_SUCCESS, common_pb2.OUTCOME_ERROR
DAY0 = T0.replace(hour=0) - dt.timedelta(days=2)  # 8 March: a whole day, answered from daily rows
# The range starts and ends inside a day, so its edges are answered from hourly rows.
START, END = DAY0 - dt.timedelta(hours=3), T0
# (id, occurred_at, labels, outcome, error code). conversation admits 2 values a day: on 8 March "c"
# (its third new value) folds into __other__; a call without the label is "".
CALLS = [
    ("p1", DAY0 - dt.timedelta(hours=2), {"conversation": "a", "bot": "x"}, OK, ""),
    ("p2", DAY0 - dt.timedelta(hours=1), {"conversation": "z"}, ERR, "429"),
    ("d1", DAY0 + dt.timedelta(hours=1), {"conversation": "a", "bot": "x"}, OK, ""),
    ("d2", DAY0 + dt.timedelta(hours=2), {"conversation": "b", "bot": "y"}, ERR, "429"),
    ("d3", DAY0 + dt.timedelta(hours=3), {"conversation": "c", "bot": "y"}, OK, ""),
    ("d4", DAY0 + dt.timedelta(hours=3, minutes=5), {"conversation": "c"}, ERR, "500"),
    ("d5", DAY0 + dt.timedelta(hours=9), {"bot": "x"}, ERR, ""),
    ("t1", T0 - dt.timedelta(hours=2), {"conversation": "a", "bot": "x"}, OK, ""),
    ("t2", T0 - dt.timedelta(hours=1), {}, ERR, "500"),
]
FOLDED = {("d3", "conversation"), ("d4", "conversation")}  # calls whose value went to __other__


def parts(b: common_pb2.CostBreakdown) -> tuple[int, ...]:
    return (b.input_nanos, b.output_nanos, b.cached_read_nanos, b.cache_write_nanos, b.requests_nanos,
            b.units_nanos, b.other_nanos, b.cache_savings_nanos)  # fmt: skip


async def raw_by(meter, auth, value_of) -> dict[str, tuple[int, ...]]:
    """(calls, cost, *cost parts) per value, summed over the raw calls ListCalls returns."""
    out: dict[str, list[int]] = defaultdict(lambda: [0] * 10)
    token = ""
    while True:
        page = await meter.ListCalls(
            meter_pb2.ListCallsRequest(start=ts(START), end=ts(END), page_size=1000, page_token=token), metadata=auth
        )
        for c in page.calls:
            sums = out[value_of(c)]
            for i, v in enumerate((1, c.cost_nanos, *parts(c.cost_breakdown))):
                sums[i] += v
        token = page.next_page_token
        if not token:
            return {k: tuple(v) for k, v in out.items()}


async def rolled_up_by(meter, auth, **fields) -> dict[str, tuple[int, ...]]:
    reply = await meter.GetUsage(meter_pb2.GetUsageRequest(start=ts(START), end=ts(END), **fields), metadata=auth)
    out = {}
    for r in reply.rows:
        value = r.key.error_code if fields["group_by"] == [meter_pb2.GROUP_BY_ERROR_CODE] else r.key.label_value
        out[value] = (r.stats.calls, r.stats.cost_nanos, *parts(r.stats.cost_breakdown))
    return out


def label_value(key: str):
    def value_of(c) -> str:
        return "__other__" if (c.call_id, key) in FOLDED else c.labels.get(key, "")

    return value_of


def error_value(c) -> str:
    return "" if c.outcome == OK else c.error_code


async def test_reprice_corrects_label_and_error_code_rollups(env, clocked):
    _, meter, _, tenant, _ = env
    admin = clocked[2]
    auth = tenant.auth()
    for key, bound in (("conversation", 2), ("bot", 0)):
        await admin.SetLabelDimension(
            admin_pb2.SetLabelDimensionRequest(label_key=key, max_values_per_day=bound), metadata=auth
        )
    for call_id, at, labels, outcome, code in CALLS:
        request = record(call_id, occurred_at=ts(at), labels=labels, outcome=outcome, error_code=code,
                         cost_nanos=None, usage=common_pb2.Usage(input_tokens=1000, output_tokens=500))  # fmt: skip
        assert (await meter.RecordCall(request, metadata=tenant.auth("record"))).cost_source == (
            common_pb2.COST_SOURCE_CATALOG
        )
    questions = [
        (label_value("conversation"), dict(group_by=[meter_pb2.GROUP_BY_LABEL], label_key="conversation")),
        (label_value("bot"), dict(group_by=[meter_pb2.GROUP_BY_LABEL], label_key="bot")),
        (error_value, dict(group_by=[meter_pb2.GROUP_BY_ERROR_CODE])),
    ]
    before = await raw_by(meter, auth, error_value)
    for value_of, fields in questions:  # the rollups agree with the raw calls before the reprice
        assert await rolled_up_by(meter, auth, **fields) == await raw_by(meter, auth, value_of)

    await admin.SetPrice(admin_pb2.SetPriceRequest(price=admin_pb2.Price(
        provider="openai", model_pattern="gpt-4.1", effective_from=ts(START - dt.timedelta(days=30)),
        input_nanos_per_mtok=1_000_000_000, output_nanos_per_mtok=2_000_000_000,
    )), metadata=auth)  # fmt: skip
    reply = await admin.RepriceCalls(admin_pb2.RepriceCallsRequest(start=ts(START), end=ts(END)), metadata=auth)
    assert reply.calls_changed == len(CALLS)

    after = await raw_by(meter, auth, error_value)
    assert after != before and after[""][1] == 5 * 2_000_000  # (1000 * 1e9 + 500 * 2e9) / 1e6 per call
    for value_of, fields in questions:
        expected = await raw_by(meter, auth, value_of)
        assert await rolled_up_by(meter, auth, **fields) == expected, fields
        # Filtered on one value, too (conversation's __other__ among them).
        for value, sums in expected.items():
            if value and "label_key" in fields:
                f = meter_pb2.UsageFilter(labels={fields["label_key"]: value})
                got = await meter.GetUsage(
                    meter_pb2.GetUsageRequest(start=ts(START), end=ts(END), filter=f), metadata=auth
                )
                assert (got.totals.calls, got.totals.cost_nanos) == sums[:2], (fields, value)
