"""meter usage / limits / calls / report against the real server holding the known calls: the
figures printed are GetUsage's, in every format; every subcommand's --help works."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json

import pytest
from google.protobuf import duration_pb2, json_format

from meter.v1 import meter_pb2
from meterd.cli import main
from meterd.console import fmt, limits_view

from .conftest import T0, _ts

RANGE = ["--range", "custom", "--start", "2026-03-03T12:00", "--end", "2026-03-10T12:00"]


@pytest.mark.parametrize(
    "command",
    ["console", "usage", "limits", "limits list", "limits set", "limits delete", "calls", "recommend", "report"],
)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command.split(), "--help"])
    assert done.value.code == 0
    assert f"usage: meter {command}" in capsys.readouterr().out


async def run(capsys, *argv) -> str:
    await asyncio.to_thread(main, list(argv))
    return capsys.readouterr().out


def _conn(meter_env, role="read"):
    server, tenant = meter_env[0], meter_env[1]
    return ["--address", f"127.0.0.1:{server.port}", "--api-key", tenant.keys[role]]


async def _usage(meter_env, **request):
    return await meter_env[2].GetUsage(
        meter_pb2.GetUsageRequest(start=_ts(T0 - dt.timedelta(days=7)), end=_ts(T0), **request),
        metadata=meter_env[1].auth("read"),
    )


async def test_usage_by_model_in_every_format(meter_env, capsys):
    expected = await _usage(
        meter_env, group_by=[meter_pb2.GROUP_BY_MODEL], order_by=meter_pb2.USAGE_ORDER_COST, descending=True, limit=2
    )
    base = ["usage", *_conn(meter_env), *RANGE, "--group-by", "model", "--top", "2"]
    table = await run(capsys, *base)
    lines = table.splitlines()
    assert lines[1].split()[:2] == ["model", "cost"]
    first = lines[3].split()
    assert first[:3] == [
        expected.rows[0].key.model,
        fmt.usd(expected.rows[0].stats.cost_nanos),
        str(expected.rows[0].stats.calls),
    ]
    assert lines[-1].split()[:2] == ["TOTAL", fmt.usd(expected.totals.cost_nanos)]
    data = json.loads(await run(capsys, *base, "--format", "json"))
    assert data[0]["model"] == expected.rows[0].key.model and data[0]["cost_nanos"] == expected.rows[0].stats.cost_nanos
    assert data[0]["cost_usd"] == f"{fmt.dollars(expected.rows[0].stats.cost_nanos):f}"
    rows = list(csv.DictReader(io.StringIO(await run(capsys, *base, "--format", "csv"))))
    assert [r["model"] for r in rows] == [r.key.model for r in expected.rows] + ["TOTAL"]
    markdown = await run(capsys, *base, "--format", "markdown")
    assert markdown.startswith("| model | cost |") and "| ---: |" in markdown


async def test_usage_filters_and_projection(meter_env, capsys):
    expected = await _usage(meter_env, filter=meter_pb2.UsageFilter(provider="openai", subject="user:1"))
    out = await run(
        capsys, "usage", *_conn(meter_env), *RANGE, "--provider", "openai", "--subject", "user:1", "--projection"
    )
    assert fmt.usd(expected.totals.cost_nanos) in out.splitlines()[3]
    assert "projected month" in out
    with pytest.raises(SystemExit, match="needs --label-key"):
        await run(capsys, "usage", *_conn(meter_env), "--group-by", "label")


async def test_usage_limits_section_prints_the_servers_statuses(meter_env, capsys):
    expected = await _usage(meter_env, include_limits=True, filter=meter_pb2.UsageFilter(subject="user:1"))
    assert expected.limits
    out = await run(capsys, "usage", *_conn(meter_env), *RANGE, "--subject", "user:1", "--limits")
    section = out[out.index("limits (now") :].splitlines()
    assert section[1].split()[:4] == ["limit", "partition", "metric", "window"]
    printed = {line.split()[0]: line for line in section[3:]}
    assert sorted(printed) == sorted(s.limit_id for s in expected.limits)
    for s in expected.limits:
        assert limits_view.amount(s.metric, s.remaining) in printed[s.limit_id]
        if s.HasField("projected_exhausted_at"):
            assert fmt.utc(s.projected_exhausted_at) in printed[s.limit_id]
    markdown = await run(capsys, "usage", *_conn(meter_env), *RANGE, "--limits", "--format", "markdown")
    assert "| limit | partition |" in markdown
    with pytest.raises(SystemExit, match="--limits adds a section"):
        await run(capsys, "usage", *_conn(meter_env), "--limits", "--format", "json")


async def test_limits_and_calls(meter_env, capsys):
    limits = json.loads(await run(capsys, "limits", *_conn(meter_env, "admin"), "--format", "json"))
    assert sorted(item["id"] for item in limits) == ["daily-spend", "user-requests"]
    calls = list(
        csv.DictReader(
            io.StringIO(
                await run(
                    capsys,
                    "calls",
                    *_conn(meter_env),
                    "--model",
                    "gpt-4.1",
                    "--outcome",
                    "error",
                    "--limit",
                    "3",
                    "--format",
                    "csv",
                )
            )
        )
    )
    assert (
        len(calls) == 3
        and {c["model"] for c in calls} == {"gpt-4.1"}
        and all(c["outcome"].startswith("error") for c in calls)
    )
    with pytest.raises(SystemExit, match="PERMISSION_DENIED"):
        await run(capsys, "limits", *_conn(meter_env, "read"))


async def test_calls_search_flags_ask_list_calls_for_the_same_search(meter_env, capsys):
    """--min-cost in dollars, --min-latency in seconds, --order and --last become ListCalls' fields."""
    expected = await meter_env[2].ListCalls(
        meter_pb2.ListCallsRequest(
            start=_ts(T0 - dt.timedelta(days=2)),
            end=_ts(T0),
            min_cost_nanos=10_000_000,
            min_latency=duration_pb2.Duration(nanos=300_000_000),
            min_cached_read_tokens=100,
            order_by=meter_pb2.CALL_ORDER_COST,
            page_size=1000,
        ),
        metadata=meter_env[1].auth("read"),
    )
    assert len(expected.calls) > 1
    got = json.loads(
        await run(capsys, "calls", *_conn(meter_env), "--end", "2026-03-10T12:00", "--last", "2d",
                  "--min-cost", "0.01", "--min-latency", "0.3", "--min-cached-tokens", "100", "--order", "cost",
                  "--limit", "1000", "--format", "json")
    )  # fmt: skip
    assert [c["call_id"] for c in got] == [c.call_id for c in expected.calls]
    costs = [c["cost_nanos"] for c in got]
    assert costs == sorted(costs, reverse=True) and min(costs) >= 10_000_000
    with pytest.raises(SystemExit, match="--min-cost"):
        await run(capsys, "calls", *_conn(meter_env), "--min-cost", "-1")
    with pytest.raises(SystemExit, match="--last"):
        await run(capsys, "calls", *_conn(meter_env), "--last", "soon")


async def test_recommend_prints_the_servers_figures(meter_env, capsys):
    request = meter_pb2.GetRecommendationsRequest(
        start=_ts(T0 - dt.timedelta(days=7)),
        end=_ts(T0),
        candidate_models=["openai/gpt-4.1-mini", "anthropic/claude-3-5-haiku-latest"],
        target_cache_hit_rate_bp=1250,
    )
    expected = await meter_env[2].GetRecommendations(request, metadata=meter_env[1].auth("read"))
    assert expected.models and expected.models[0].alternatives
    base = ["recommend", *_conn(meter_env), *RANGE, "--candidate", "openai/gpt-4.1-mini",
            "--candidate", "anthropic/claude-3-5-haiku-latest", "--target-hit-rate", "12.5"]  # fmt: skip
    got = json.loads(await run(capsys, *base, "--format", "json"))
    assert got == json_format.MessageToDict(expected, preserving_proto_field_name=True)
    table = await run(capsys, *base)
    top = expected.models[0]
    assert f"{top.provider}/{top.model}" in table and fmt.usd(top.alternatives[0].saving_nanos) in table
    assert "at 12.5% it would save " + fmt.usd(expected.cache.target_cache_saving_nanos) in table
    rows = list(csv.DictReader(io.StringIO(await run(capsys, *base, "--format", "csv"))))
    assert rows[0]["model"] == f"{top.provider}/{top.model}"
    with pytest.raises(SystemExit, match="--target-hit-rate"):
        await run(capsys, *base[:-1], "101")


async def test_report_formats(meter_env, capsys):
    expected = await meter_env[2].GetUsage(
        meter_pb2.GetUsageRequest(
            start=_ts(dt.datetime(2026, 3, 2, tzinfo=dt.UTC)), end=_ts(dt.datetime(2026, 3, 9, tzinfo=dt.UTC))
        ),
        metadata=meter_env[1].auth("read"),
    )
    base = ["report", *_conn(meter_env), "--period", "week", "--at", "2026-03-10T12:00"]
    markdown = await run(capsys, *base)
    assert markdown.startswith("# Meter week report: 2026-03-02 00:00 – 2026-03-09 00:00 UTC")
    assert f"| Cost | {fmt.usd(expected.totals.cost_nanos)} |" in markdown
    for section in (
        "## By model",
        "## By provider",
        "## Top users",
        "## Errors",
        "## Trend",
        "## Projection",
        "## Recommendations",
    ):
        assert section in markdown
    html = await run(capsys, *base, "--format", "html", "--label-key", "conversation")
    assert html.startswith("<!doctype html>") and "Top conversation values" in html
    rows = list(csv.reader(io.StringIO(await run(capsys, *base, "--format", "csv"))))
    assert rows[1][:3] == ["totals", "week", f"{fmt.dollars(expected.totals.cost_nanos):f}"]


async def test_limits_set_and_delete(meter_env, capsys):
    from meter.v1 import admin_pb2, common_pb2

    _, tenant, _, admin = meter_env
    base = ["limits", "set", *_conn(meter_env, "admin")]
    out = await run(capsys, *base[:2], "cli-made", *base[2:], "--metric", "cost", "--max", "2.50", "--window", "month",
                    "--subject-prefix", "team:", "--alert-at", "80,100")  # fmt: skip
    assert out == "created limit cli-made\n"
    stored = (await admin.GetLimit(admin_pb2.GetLimitRequest(id="cli-made"), metadata=tenant.auth())).limit
    assert (stored.max, stored.metric, stored.window.kind) == (
        2_500_000_000,
        common_pb2.METRIC_COST_NANOS,
        common_pb2.WINDOW_KIND_MONTH,
    )
    assert stored.selector.subject_prefix == "team:" and list(stored.alert_thresholds_percent) == [80, 100]
    assert "replaced" in await run(
        capsys, *base[:2], "cli-made", *base[2:], "--metric", "input_tokens", "--max", "1000"
    )
    listed = json.loads(await run(capsys, "limits", "list", *_conn(meter_env, "admin"), "--format", "json"))
    assert "cli-made" in [item["id"] for item in listed]
    assert await run(capsys, "limits", "delete", *_conn(meter_env, "admin"), "cli-made") == "deleted limit cli-made\n"
    with pytest.raises(SystemExit, match="NOT_FOUND"):
        await run(capsys, "limits", "delete", *_conn(meter_env, "admin"), "cli-made")
    with pytest.raises(SystemExit, match="whole"):
        await run(capsys, *base[:2], "bad", *base[2:], "--metric", "requests", "--max", "1.5")


def test_building_the_cli_needs_no_web_libraries():
    """`meter serve` must work without the console extra: only `meter console` imports them."""
    import subprocess
    import sys

    code = "import sys, meterd.cli; meterd.cli.build_parser(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'jinja2', 'uvicorn')))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )
