"""Rules that run both in SQL (for atomicity) and in Python, driven over the same generated cases.

* The deny rule (and the window a counter lands in, and the sliding carry): meter_check_v2 in
  migrations/0017_check_cost.sql (0002's meter_check with cheaper plans and writes, the one this
  version calls), inside the transaction that reserves, against domain.quota.blocks
  (what QuotaService reports and the fake store decides with).
* Scope matching: meter_scope_matches (migrations/0005_alerts.sql, used by the CALL_COST triggers)
  against domain.limits.Selector.matches (limits, alert scopes in Python).

Seeded (derandomize) and bounded, so a failure reproduces and the run stays short.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from meter_testing.databases import migrated_database
from meterd.domain.calls import Dimensions
from meterd.domain.limits import Limit, LimitAction, Metric, Partition, Selector
from meterd.domain.quota import Charge, CheckItem, CounterReading, Estimate, blocks, limit_state
from meterd.domain.windows import WindowKind, WindowSpec, window_start
from meterd.store.db import Database
from meterd.store.quota import QuotaStore

BASE = dt.datetime(2031, 5, 6, tzinfo=dt.UTC)
PARITY = settings(max_examples=40, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@pytest.fixture(scope="module")
async def parity_db(postgres) -> AsyncIterator[Database]:
    async with migrated_database(postgres, max_size=2) as db:
        yield db


# ---- the deny rule ---------------------------------------------------------------------------------

WINDOWS = st.sampled_from(
    [WindowSpec(WindowKind.MINUTE), WindowSpec(WindowKind.HOUR), WindowSpec(WindowKind.DAY),
     WindowSpec(WindowKind.MONTH), WindowSpec(WindowKind.FIXED, 90), WindowSpec(WindowKind.SLIDING, 60),
     WindowSpec(WindowKind.SLIDING, 3600)]
)  # fmt: skip


def _near_the_max(case: dict) -> dict:
    """`used` a step or two around max - reserved - amount: where "exactly at the max", "one over"
    and "amount 0 at the max" are decided."""
    return {**case, "used": max(0, case["max"] - case["reserved"] - case["amount"] + case.pop("step"))}


FIGURES = {"window": WINDOWS, "max": st.integers(1, 40), "reserved": st.integers(0, 10), "prev": st.integers(0, 60),
           "amount": st.integers(0, 12), "deny": st.booleans()}  # fmt: skip
CASES = st.lists(
    st.one_of(
        st.fixed_dictionaries({**FIGURES, "used": st.integers(0, 45)}),
        st.fixed_dictionaries({**FIGURES, "step": st.integers(-2, 2)}).map(_near_the_max),
    ),
    min_size=1,
    max_size=12,
)
INSTANTS = st.integers(0, 40 * 86400 * 10**6 - 1).map(lambda us: BASE + dt.timedelta(microseconds=us))


# CHECK_ONLY batches are meter_check_v2's set-based read, RESERVE batches its per-request loop: each
# case has its own counter, so a reservation changes no later case's verdict and both must agree.
@pytest.mark.parametrize("reserve", [False, True], ids=["check_only", "reserve"])
@PARITY
@given(cases=CASES, at=INSTANTS)
async def test_meter_check_denies_exactly_when_the_python_rule_does(parity_db, reserve, cases, at):
    tenant = f"par-{uuid.uuid4().hex[:8]}"
    items, expected, seeded = [], [], []
    for i, case in enumerate(cases):
        spec = case["window"]
        lim = Limit(f"l{i}", Selector(), Metric.REQUESTS, spec, case["max"], Partition.SHARED,
                    LimitAction.DENY if case["deny"] else LimitAction.WARN)  # fmt: skip
        start = window_start(spec, at)
        seeded.append((tenant, lim.id, 1, "", start, case["used"], case["reserved"]))
        if spec.kind is WindowKind.SLIDING:
            seeded.append((tenant, lim.id, 1, "", start - dt.timedelta(seconds=spec.seconds), case["prev"], 0))
        charge = Charge(lim, "", case["amount"])
        reading = CounterReading(start, case["used"], case["reserved"], case["prev"], 0)
        expected.append(not blocks(charge, limit_state(charge, reading, at, denied=False)))
        reservation_id = f"r{i}" if reserve else ""
        items.append(CheckItem(tenant, "k", Dimensions("s", "p", "m", "", {}), reserve, reservation_id, False,
                               dt.timedelta(seconds=60), Estimate(), 0, [charge]))  # fmt: skip
    async with parity_db.connection() as conn:
        await conn.execute("INSERT INTO tenants (id) VALUES (%s)", (tenant,))
        await conn.cursor().executemany(
            "INSERT INTO counters (tenant_id, limit_id, generation, partition_key, window_start, used, reserved)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            seeded,
        )
    outcomes = await QuotaStore(parity_db).check(items, at)
    assert [o.allowed for o in outcomes] == expected, cases


# ---- scope matching --------------------------------------------------------------------------------

# Case variants and prefixes of each other, so matches and near misses both come up.
NAMES = st.sampled_from(["", "gpt-4.1", "GPT-4.1", "gpt-4", "Gpt-4.1-mini", "openai", "OpenAI", "azure"])
SUBJECTS = st.sampled_from(["", "team:a", "team:a/user:1", "team:ab", "Team:a", "team:a/"])
OPERATIONS = st.sampled_from(["", "chat", "Chat", "embed"])
LABELS = st.dictionaries(st.sampled_from(["env", "bot", "Env"]), st.sampled_from(["prod", "dev", "Prod", ""]),
                         max_size=2)  # fmt: skip
SELECTORS = st.builds(
    lambda subject, prefix, provider, model, operation, labels: Selector(
        subject, prefix, provider, model, operation, tuple(labels.items())
    ),
    SUBJECTS, SUBJECTS, NAMES, NAMES, OPERATIONS, LABELS,
)  # fmt: skip
CALLS = st.tuples(SUBJECTS, NAMES, NAMES, OPERATIONS, LABELS)


@PARITY
@given(pairs=st.lists(st.tuples(SELECTORS, CALLS), min_size=1, max_size=30))
async def test_meter_scope_matches_agrees_with_selector_matches(parity_db, pairs):
    async with parity_db.connection() as conn:
        cur = await conn.execute(
            """SELECT meter_scope_matches(sc, s, p, m, op, lb) AS hit
                 FROM unnest(%s::jsonb[], %s::text[], %s::text[], %s::text[], %s::text[], %s::jsonb[])
                      WITH ORDINALITY AS u(sc, s, p, m, op, lb, o) ORDER BY o""",
            (
                [Jsonb(sel.to_json()) for sel, _ in pairs],
                *([c[k] for _, c in pairs] for k in range(4)),
                [Jsonb(c[4]) for _, c in pairs],
            ),
        )
        sql = [row["hit"] for row in await cur.fetchall()]
    python = [sel.matches(*c) for sel, c in pairs]
    assert sql == python, [(p, s) for p, s, q in zip(pairs, sql, python, strict=True) if s != q]
