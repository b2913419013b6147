"""meter_sparse_hist_add_v2 (migration 0016), which the record path now merges sparse histograms with,
returns exactly what meter_sparse_hist_add (0004) returns, and its aggregate what the old one does:
rows written before and after the migration hold the same figures."""

from __future__ import annotations

import json
import random

import psycopg

from meterd.store.migrate import migrate

EDGES = [(None, None), (None, {}), ({}, None), ({}, {}), ({"3": 1}, None), (None, {"3": 1}), ({}, {"127": 2}),
         ({"0": 1, "60": 9}, {"60": 1}), ({"60": 1}, {"0": 5, "60": 2, "127": 1}),
         ({"5": 2**40}, {"5": 2**40, "6": 0})]  # fmt: skip


def random_hist(rng: random.Random) -> dict[str, int]:
    return {str(rng.randrange(128)): rng.randrange(1, 10**6) for _ in range(rng.randrange(0, 12))}


async def test_the_cheaper_sparse_sum_equals_the_old_one(fresh_database_url):
    await migrate(fresh_database_url)
    rng = random.Random(16)
    pairs = EDGES + [(random_hist(rng), random_hist(rng)) for _ in range(500)]
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT meter_sparse_hist_add(a, b) AS old, meter_sparse_hist_add_v2(a, b) AS new
                 FROM jsonb_to_recordset(%s::jsonb) AS u(a jsonb, b jsonb)""",
            (json.dumps([{"a": a, "b": b} for a, b in pairs]),),
        ).fetchall()
        assert len(rows) == len(pairs)
        for (a, b), (old, new) in zip(pairs, rows, strict=True):
            assert new == old, (a, b)
            expected = dict(a or {})
            for k, v in (b or {}).items():
                expected[k] = expected.get(k, 0) + v
            assert new == expected, (a, b)
        groups = conn.execute(
            """SELECT g, meter_sparse_hist_sum(h) AS old, meter_sparse_hist_sum_v2(h) AS new
                 FROM jsonb_to_recordset(%s::jsonb) AS u(g int, h jsonb) GROUP BY g""",
            (json.dumps([{"g": i % 7, "h": h} for i, pair in enumerate(pairs) for h in pair]),),
        ).fetchall()
        assert len(groups) == 7 and all(old == new for _, old, new in groups)
