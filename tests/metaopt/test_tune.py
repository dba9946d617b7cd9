"""``fewshot tune`` on Optuna: the space file's checks, a bad storage URL, and two workers on one SQLite
study that is killed and resumed."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from fewshot.metaopt.tune import budgeted, fail_orphans, main, open_storage  # noqa: E402

FAST = ["--config", "sinusoid-maml-k5", "--set", "steps=2", "--set", "val_every=1", "--set", "val_episodes=2"]
FAST += ["--set", "meta_batch=1", "--set", "test_episodes=0"]
SPACE = "lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\nalgorithm_options.inner_lr: [0.001, 0.01, 0.1]\n"


def one_line_error(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("fewshot tune: error:"), err
    for word in words:
        assert word in err, err


@pytest.mark.parametrize(
    "space, words",
    [
        ("lr: {type: float, low: 0.1, high: 0.01}", ["impossible range", "lr"]),
        ("lr: {type: float, low: 0, high: 0.01, log: true}", ["log range needs low > 0"]),
        ("lr: {type: float, lo: 0.1, high: 0.2}", ["unknown key(s) lo"]),
        ("nonsense: [1, 2]", ["unknown setting 'nonsense'"]),
        ("algorithm_options.nonsense: [1, 2]", ["nonsense"]),
        ("meta_batch: {type: int, low: 0, high: 4}", ["meta_batch=0"]),
        ("optimizer: []", ["non-empty list"]),
        ("steps: [1, 2]", ["set by fewshot tune"]),
    ],
)
def test_bad_space_is_one_clear_error(space, words, tmp_path, capsys):
    path = tmp_path / "space.yaml"
    path.write_text(space)
    out = tmp_path / "out"
    one_line_error(capsys, [*FAST, "--space", str(path), "--trials", "1", "--out", str(out)], *words)
    assert not out.exists()


def test_bad_storage_and_missing_space(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    base = [*FAST, "--space", str(space), "--trials", "1", "--out", str(tmp_path / "out")]
    one_line_error(capsys, [*base, "--storage", "nosuchdb://x/y"], "cannot open storage 'nosuchdb://x/y'")
    one_line_error(capsys, [*base, "--storage", f"sqlite:///{tmp_path}/missing/dir/s.db"], "cannot open storage")
    one_line_error(capsys, [*FAST, "--space", str(tmp_path / "nope.yaml"), "--trials", "1", "--out", "x"], "not found")
    assert not (tmp_path / "out").exists()


def _counts(db: Path) -> dict:
    with sqlite3.connect(db) as c:
        return dict(c.execute("select state, count(*) from trials group by state").fetchall())


def test_budget_counts_queued_and_stale_trials_but_not_own_failures():
    from optuna.trial import TrialState, create_trial

    study = optuna.create_study()
    add = lambda state, **kw: study.add_trial(create_trial(state=state, **kw))  # noqa: E731
    add(TrialState.COMPLETE, value=1.0)  # 0
    add(TrialState.PRUNED)  # 1
    add(TrialState.FAIL)  # 2: its worker died; the rerun is not queued yet
    add(TrialState.FAIL, user_attrs={"surplus": True})  # 3
    add(TrialState.FAIL, user_attrs={"error": "ValueError: x"})  # 4
    add(TrialState.RUNNING)  # 5
    assert budgeted(study.get_trials(), 6) == 4  # 0, 1, 2, 5
    add(TrialState.WAITING, system_attrs={"failed_trial": 2, "retry_history": [2]})  # 6: 2 queued again
    assert budgeted(study.get_trials(), 6) == 3  # trial 2 holds no place below 6 any more ...
    assert budgeted(study.get_trials(), 7) == 4  # ... its rerun does


def test_a_trial_whose_worker_died_before_its_first_heartbeat_runs_again(tmp_path):
    from optuna.trial import TrialState, create_trial

    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=1, grace=2)
    study = optuna.create_study(storage=storage)
    study.add_trial(create_trial(state=TrialState.RUNNING))  # 0: created, then its worker was killed
    study.add_trial(create_trial(state=TrialState.RUNNING, user_attrs={"alive": "123:1"}))  # 1: alive
    study.add_trial(create_trial(state=TrialState.RUNNING, user_attrs={"alive": "123:0"}))  # 2: a copied mark
    assert fail_orphans(study, storage, grace=60) == 0  # younger than the grace period: left alone
    assert fail_orphans(study, storage, grace=0) == 2
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {0: TrialState.FAIL, 1: TrialState.RUNNING, 2: TrialState.FAIL, 3: TrialState.WAITING,
                      4: TrialState.WAITING}  # fmt: skip
    assert sorted(t.system_attrs["retry_history"] for t in study.get_trials()[3:]) == [[0], [2]]
    assert fail_orphans(study, storage, grace=0) == 0  # failed once, queued once


def test_two_workers_killed_and_resumed_hold_n_trials_without_duplicates(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "out"
    argv = [*FAST, "--space", str(space), "--trials", "6", "--jobs", "2", "--out", str(out)]
    argv += ["--heartbeat", "1", "--grace", "8", "--sampler", "random"]  # a loaded machine beats late
    code = f"import sys; from fewshot.metaopt.tune import main; sys.exit(main({argv!r}))"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    db = out / "study.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if db.exists() and _counts(db).get("COMPLETE", 0) >= 1:
            break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the command and both its workers, mid-study
    process.wait()
    assert _counts(db).get("COMPLETE", 0) < 6
    resumed = f"import sys; from fewshot.metaopt.tune import main; sys.exit(main({[*argv, '--json']!r}))"
    # the same command again finishes the study; in its own process group, so that a hang fails the test
    process = subprocess.Popen([sys.executable, "-c", resumed], env=env, start_new_session=True, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"the resumed study did not finish in 300 s; trials by state: {_counts(db)}")
    assert process.returncode == 0, stderr[-2000:]
    summary = json.loads(stdout)
    study = optuna.load_study(study_name="fewshot-tune", storage=f"sqlite:///{db}")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6 and summary["trials"]["complete"] + summary["trials"].get("pruned", 0) == 6
    assert len({t.number for t in finished}) == 6
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == 6  # no configuration twice
    assert (out / "best.yaml").is_file() and (out / "history.png").is_file() and (out / "importance.png").is_file()
    from fewshot.engine.config import load_config

    best = load_config(str(out / "best.yaml"))  # what `fewshot train --config` reads
    assert best.lr == pytest.approx(summary["best"]["params"]["lr"])
