import itertools
import json
import types

import pytest
import torch
from tiny import TinyProto, clustered, config, trainer

from fewshot.engine import CheckpointError, TrainConfig, Trainer, read_checkpoint
from fewshot.engine.checkpoint import read_training_state, save_checkpoint
from fewshot.engine.optimizers import lr_factor


def params(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def records(root):
    """The run's metrics.jsonl records under ``root``, without their wall-clock times."""
    lines = (root / "run" / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in lines]


def test_run_folder_and_result(tmp_path):
    result = trainer(config(tmp_path)).fit()
    run = tmp_path / "run"
    assert {"config.json", "metrics.jsonl", "result.json", "checkpoint", "last"} <= {p.name for p in run.iterdir()}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4, 6, 8, 10, 12]
    assert [r["step"] for r in records if r["split"] == "val"] == [4, 8, 12]
    assert result.test.episodes == 30 and result.test.accuracy > 0.8  # chance is 1/3: the clusters are learnt
    meta, _ = read_checkpoint(run / "checkpoint")
    assert meta["learner"] is None  # a hand-built module: its weights, without a spec to rebuild it
    assert meta["metrics"]["test"]["accuracy"] == result.test.accuracy and meta["training"]["steps"] == 12
    assert meta["step"] == 12 and json.loads((run / "config.json").read_text())["ways"] == 3


@pytest.mark.parametrize("test_episodes, has_test_data", [(30, False), (0, True)], ids=["no test data", "0 episodes"])
def test_run_without_a_test_still_writes_its_summary(tmp_path, test_episodes, has_test_data):
    torch.manual_seed(0)
    cfg = config(tmp_path, test_episodes=test_episodes)
    test_data = clustered(seed=2) if has_test_data else None
    result = Trainer(cfg, TinyProto(), clustered(), clustered(seed=1), test_data).fit()
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result.test is None and summary["test"] is None
    assert not any('"test"' in line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
    assert summary["step"] == 12 and summary["best_step"] == result.best_step and summary["train_seconds"] > 0


def test_learner_reads_no_test_split_when_it_will_not_test(tmp_path, monkeypatch):
    from fewshot.api import Learner

    settings = {k: v for k, v in vars(config(tmp_path, test_episodes=0)).items() if k != "dataset"}
    learner = Learner(dataset="glyphs", **settings)  # its data: clustered arrays, whatever split is asked
    read = []
    monkeypatch.setattr(learner, "dataset", lambda split: read.append(split) or clustered(seed=len(read)))
    learner._algorithm = TinyProto()
    assert learner.fit().test is None
    assert read == ["train", "val"]


def test_resume_equals_uninterrupted(tmp_path):
    full = trainer(config(tmp_path / "a"))
    full.fit()

    def stop_at_5(step, metrics):
        if step == 5:
            raise KeyboardInterrupt

    first = trainer(config(tmp_path / "b"))
    assert first.fit(callback=stop_at_5).interrupted
    assert read_training_state(tmp_path / "b" / "run" / "last")["step"] == 5
    resumed = trainer(config(tmp_path / "b"), resume=True)
    assert resumed.step == 5
    result = resumed.fit()
    assert result.step == 12 and not result.interrupted
    a, b = params(full.algorithm), params(resumed.algorithm)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert records(tmp_path / "a") == records(tmp_path / "b")


@pytest.mark.parametrize("validate", [True, False], ids=["validated", "no validation data"])
def test_a_run_killed_outright_resumes_from_its_last_save(tmp_path, validate):
    full = trainer(config(tmp_path / "a"), validate=validate)
    full.fit()

    def crash_at_7(step, metrics):  # no clean exit: what SIGKILL or a dead machine leaves
        if step == 7:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        trainer(config(tmp_path / "b"), validate=validate).fit(callback=crash_at_7)
    assert read_training_state(tmp_path / "b" / "run" / "last")["step"] == 4  # saved every 4 steps (val_every)
    resumed = trainer(config(tmp_path / "b"), resume=True, validate=validate)
    assert resumed.step == 4 and resumed.fit().step == 12
    a, b = params(full.algorithm), params(resumed.algorithm)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert records(tmp_path / "a") == records(tmp_path / "b")


def test_early_stopping_and_best_checkpoint(tmp_path):
    cfg = config(tmp_path, lr=0.0, steps=40, val_every=2, patience=2, warmup=0, schedule="constant")
    result = trainer(cfg).fit()
    # lr 0: validation never improves after the first, so the run stops after 2 more validations
    assert result.best_step == 2 and result.step == 6


def test_time_limit_stops_validates_and_tests(tmp_path, monkeypatch):
    clock = itertools.count()  # each reading of the clock is one second later
    monkeypatch.setattr("fewshot.engine.train.time", types.SimpleNamespace(monotonic=lambda: float(next(clock))))
    result = trainer(config(tmp_path, steps=100, time_limit=4.5)).fit()
    # started at 0; steps 1-4 read 1-4, saving last/ after the validation at 4 reads 5, step 5 reads 6: the last
    assert result.step == 5 and not result.interrupted
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "val"] == [4, 5]  # every 4 steps, and the last
    assert result.best_step in (4, 5) and result.test.episodes == 30
    assert read_training_state(tmp_path / "run" / "last")["train_seconds"] == 7.0  # the reading after step 5


def test_lr_schedules():
    cfg = TrainConfig(steps=100, warmup=10, schedule="cosine")
    assert lr_factor(cfg, 0) == pytest.approx(0.1) and lr_factor(cfg, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 55) == pytest.approx(0.5) and lr_factor(cfg, 100) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(TrainConfig(steps=100, schedule="step", gamma=0.5), 60) == 0.25
    linear = TrainConfig(steps=100, warmup=10, schedule="linear")
    assert [lr_factor(linear, s) for s in (0, 10, 55, 100)] == pytest.approx([0.1, 1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor(TrainConfig(schedule="wiggly"), 3)


def test_checkpoint_rejects_damage(tmp_path):
    model = TinyProto()
    path = save_checkpoint(tmp_path / "ck", model.state_dict(), {"algorithm": "tiny"})
    meta, state = read_checkpoint(path)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    raw = bytearray((path / "model.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match the SHA-256"):
        read_checkpoint(path)
    (path / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged JSON"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        read_checkpoint(tmp_path / "missing")
    # a failed write leaves the previous checkpoint and no temporary folders
    good = save_checkpoint(tmp_path / "ck2", model.state_dict(), {"algorithm": "tiny"})
    with pytest.raises(TypeError):
        save_checkpoint(good, model.state_dict(), {"algorithm": "tiny"}, training_state={"bad": object()})
    assert read_checkpoint(good)[0]["algorithm"] == "tiny"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "ck2"]
