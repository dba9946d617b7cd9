"""A search interrupted and resumed from its state file equals the uninterrupted search."""

import json

import pytest
from nas_tables import write_choice_table

from fewshot.nas import NASError, Search
from fewshot.nas.spaces import load_table
from fewshot.nas.strategies import STRATEGIES, make_strategy

SETTINGS = {"bananas": {"steps": 30, "init": 6, "batch": 4}, "genetic": {"population": 8}, "local": {"init": 4}}


class Interrupt(Exception):
    pass


def _stop_at(n):
    def progress(record):
        if record["query"] == n:
            raise Interrupt

    return progress


def _trace(history):
    return [(r["arch"], r["metric"], r.get("run")) for r in history]


@pytest.fixture
def noisy(tmp_path):  # 3 runs per architecture: resuming must also restore the generator that draws them
    return load_table(write_choice_table(tmp_path / "t.csv", positions=5, choices=3, runs=3, noise=2.0), metric="acc")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_resume_equals_uninterrupted(noisy, tmp_path, name):
    settings = SETTINGS.get(name, {})
    whole = Search(noisy, make_strategy(name, noisy.space, **settings), budget=40, seed=5).run()
    state = tmp_path / "state.json"
    first = Search(noisy, make_strategy(name, noisy.space, **settings), 40, 5, state_path=state, progress=_stop_at(17))
    with pytest.raises(Interrupt):
        first.run()
    saved = json.loads(state.read_text())
    assert len(saved["history"]) == 17
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "t.csv"]  # no temporary file left behind
    resumed = Search(noisy, make_strategy(name, noisy.space, **settings), 40, 5, state_path=state).run()
    assert _trace(resumed.history) == _trace(whole.history)
    assert resumed.best == whole.best and resumed.regret == whole.regret


def test_state_of_another_search_is_refused(noisy, tmp_path):
    state = tmp_path / "state.json"
    Search(noisy, make_strategy("random", noisy.space), 5, seed=1, state_path=state).run()
    with pytest.raises(NASError, match="another search.*seed: 1 there, 2 here"):
        Search(noisy, make_strategy("random", noisy.space), 5, seed=2, state_path=state)
    state.write_text("{not json")
    with pytest.raises(NASError, match="cannot read search state"):
        Search(noisy, make_strategy("random", noisy.space), 5, seed=1, state_path=state)
