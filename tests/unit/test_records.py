"""domain.records: the rollup sums and the columns they are written to."""

from __future__ import annotations

from meterd.domain.pricing import PARTS
from meterd.domain.records import FIGURE_NAMES, RollupSums
from meterd.store.rollups import FIGURES, PART_COLUMNS, fold, upsert_rows


def test_rollup_sums_name_the_rollup_columns_in_their_order():
    assert FIGURE_NAMES == tuple(column for column, _ in FIGURES)
    assert PART_COLUMNS == tuple(f"cost_{p}_nanos" if p != "cache_savings" else "cache_savings_nanos" for p in PARTS)


def test_fold_sums_figures_and_histograms_without_touching_its_input():
    a = RollupSums(calls=1, cost_nanos=5, latency_hist={"3": 1})
    b = RollupSums(calls=2, cost_nanos=7, latency_hist={"3": 2, "9": 1})
    folded = fold({("t", 1): a, ("t", 2): b}, lambda key: key[0])
    assert folded["t"].calls == 3 and folded["t"].cost_nanos == 12 and folded["t"].latency_hist == {"3": 3, "9": 1}
    assert a.latency_hist == {"3": 1} and a.calls == 1
    (row,) = upsert_rows(folded)
    assert row[0] == "t" and row[1:-1] == folded["t"].figures() and row[-1] == {"3": 3, "9": 1}


def test_fold_copies_only_a_coarse_key_that_sums_several_rows():
    # One fine row per coarse key (a batch's calls within one hour, folded to days) shares its sums;
    # a second row makes a copy first, so no input is ever changed, however many rows follow.
    a, b, c, d = (RollupSums(calls=n, latency_hist={"1": n}) for n in (1, 2, 4, 8))
    folded = fold({("x", 1): a, ("x", 2): b, ("x", 3): c, ("y", 1): d}, lambda key: key[0])
    assert folded["x"].calls == 7 and folded["x"].latency_hist == {"1": 7}
    assert folded["y"] is d
    assert [s.calls for s in (a, b, c, d)] == [1, 2, 4, 8] and a.latency_hist == {"1": 1}


def test_adding_sums_every_figure():
    a = RollupSums(*range(1, len(FIGURE_NAMES) + 1))
    a.add(RollupSums(*range(1, len(FIGURE_NAMES) + 1)))
    assert a.figures() == tuple(2 * i for i in range(1, len(FIGURE_NAMES) + 1))
    assert a.copy() == a and a.copy() is not a
