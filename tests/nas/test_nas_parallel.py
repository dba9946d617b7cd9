"""Parallel trials: local processes give the same history as the in-process run of the same batches."""

import pytest
from nas_tables import write_choice_table

from fewshot.nas import Search
from fewshot.nas.parallel import InProcess, LocalProcesses
from fewshot.nas.spaces import load_table
from fewshot.nas.strategies import make_strategy


def _trace(result):
    return [(r["arch"], r["metric"]) for r in result.history]


@pytest.fixture
def noisy(tmp_path):
    return load_table(write_choice_table(tmp_path / "t.csv", positions=5, choices=3, runs=3, noise=2.0), metric="acc")


@pytest.mark.parametrize("name", ["evolution"])
def test_local_processes_equal_the_in_process_run(noisy, name):
    serial = Search(noisy, make_strategy(name, noisy.space), 24, 3, executor=InProcess(), batch_size=4).run()
    parallel = Search(noisy, make_strategy(name, noisy.space), 24, 3, executor=LocalProcesses(2), batch_size=4).run()
    assert _trace(parallel) == _trace(serial) and len(set(a for a, _ in _trace(serial))) == 24


def test_batched_search_resumes_between_batches(noisy, tmp_path):
    whole = Search(
        noisy, make_strategy("genetic", noisy.space, population=8), 30, 1, executor=InProcess(), batch_size=5
    ).run()
    state = tmp_path / "state.json"

    def stop(record):
        if record["query"] == 15:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Search(
            noisy,
            make_strategy("genetic", noisy.space, population=8),
            30,
            1,
            executor=InProcess(),
            batch_size=5,
            state_path=state,
            progress=stop,
        ).run()
    resumed = Search(
        noisy,
        make_strategy("genetic", noisy.space, population=8),
        30,
        1,
        executor=InProcess(),
        batch_size=5,
        state_path=state,
    ).run()
    assert _trace(resumed) == _trace(whole)
