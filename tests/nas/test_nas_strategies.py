"""Every strategy on tiny synthetic tables: valid, distinct proposals; evolution beats random search."""

import numpy as np
import pytest
from nas_tables import write_cell_table

from fewshot.nas import NASError, search
from fewshot.nas.spaces import load_table
from fewshot.nas.strategies import STRATEGIES, make_strategy

FAST = {"bananas": {"steps": 50, "init": 5}, "genetic": {"population": 8, "elite": 2}, "local": {"init": 5}}


@pytest.fixture
def bench(table_3x4):
    return load_table(table_3x4, metric="acc")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_strategy_proposes_distinct_members_within_budget(bench, name):
    result = search(bench, make_strategy(name, bench.space, **FAST.get(name, {})), budget=40, seed=3)
    archs = [r["arch"] for r in result.history]
    assert len(archs) == 40 == len(set(archs))
    assert all(bench.space.contains(bench.space.parse(a)) for a in archs)
    best = max(result.history, key=lambda r: r["metric"])
    assert result.best == best["arch"] and result.regret == pytest.approx(bench.optimum - best["report"])
    regrets = [r["regret"] for r in result.history]
    assert all(a >= b for a, b in zip(regrets, regrets[1:]))  # one run per arch: the incumbent only improves


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_whole_space_is_enumerated_without_repeats(bench, name):
    result = search(bench, make_strategy(name, bench.space, **FAST.get(name, {})), budget=81, seed=0)
    assert result.queries == 81 and result.regret == 0.0


def _hit_rate(bench, name, budget, seeds=30, **settings):
    hits = [search(bench, make_strategy(name, bench.space, **settings), budget, s).regret == 0 for s in range(seeds)]
    return float(np.mean(hits))


def test_evolution_finds_the_optimum_where_random_search_usually_does_not(bench):
    random_rate = _hit_rate(bench, "random", 30)  # 30 of 81 architectures: finds the optimum with p = 0.37
    evolution_rate = _hit_rate(bench, "evolution", 30, population=10, sample=5)
    assert random_rate < 0.6 < 0.8 <= evolution_rate, (random_rate, evolution_rate)


@pytest.mark.parametrize("name", ["genetic", "local", "bananas"])
def test_other_strategies_beat_random_search(bench, name):
    random_rate = _hit_rate(bench, "random", 30, seeds=20)
    rate = _hit_rate(bench, name, 30, seeds=20, **FAST.get(name, {}))
    assert rate > random_rate + 0.2, (name, rate, random_rate)


def test_strategies_work_on_cell_strings(tmp_path):
    bench = load_table(
        write_cell_table(tmp_path / "c.csv", ops=("none", "skip_connect", "nor_conv_3x3")),
        arch_column="arch_str",
        metric="valid_acc",
        report_metric="test_acc",
    )
    for name in STRATEGIES:
        result = search(bench, make_strategy(name, bench.space, **FAST.get(name, {})), budget=60, seed=1)
        assert result.queries == 60 and result.best.count("~") == 6


def test_bad_strategy_budget_and_settings(bench):
    with pytest.raises(NASError, match="unknown strategy 'evo'; valid: random, evolution"):
        make_strategy("evo", bench.space)
    with pytest.raises(NASError, match="takes the settings population, sample"):
        make_strategy("evolution", bench.space, size=3)
    with pytest.raises(NASError, match="budget 82 is larger than the space"):
        search(bench, make_strategy("random", bench.space), budget=82)
