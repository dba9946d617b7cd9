import json
import shutil

import numpy as np
import pytest
from cli_args import train_argv
from images import draw, make_runs, make_tree

from fewshot.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A ProtoNet checkpoint trained for a few steps on a tree of drawn shapes."""
    root = tmp_path_factory.mktemp("cli")
    data = make_tree(root / "shapes")
    out = root / "run"
    code = main(train_argv(data, out, test_episodes=20, val_every=3, val_episodes=10))
    assert code == 0
    return root, data, out


def test_train_writes_run_folder(trained, capsys):
    _, _, out = trained
    assert {"config.json", "metrics.jsonl", "checkpoint", "last", "result.json", "curves.png"} <= {
        p.name for p in out.iterdir()
    }


def test_evaluate_json_is_reproducible(trained, capsys):
    _, data, out = trained
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint"), "--episodes", "30", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert {"accuracy", "ci95", "episodes", "ways", "shots"} <= set(first)
    assert first["episodes"] == 30 and first["ways"] == 3 and first["accuracy"] > 0.5  # chance: 1/3
    assert main(["evaluate", str(out), "--episodes", "30", "--json"]) == 0  # a run folder works too
    again = json.loads(capsys.readouterr().out)
    assert again.pop("checkpoint") != first.pop("checkpoint") and again == first


def test_evaluate_with_test_time_options(trained, capsys):
    _, _, out = trained
    capsys.readouterr()
    base = ["evaluate", str(out), "--episodes", "30", "--json"]
    cosine = [*base, "--set", "algorithm_options.distance=cosine", "--set", "algorithm_options.learn_scale=false"]
    assert main(cosine) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["options"] == {"distance": "cosine", "learn_scale": False}
    assert main(base) == 0
    stored = json.loads(capsys.readouterr().out)
    assert "options" not in stored and stored["accuracy"] != result["accuracy"]
    for changes, error in [
        (["algorithm_options.distance=cosine"], "scale"),  # a learned scale the checkpoint does not hold
        (["steps=5"], "algorithm_options.KEY=VALUE only"),
        (["algorithm_options.nonsense=1"], "nonsense"),
    ]:
        assert main([*base, *(a for c in changes for a in ("--set", c))]) == 2
        assert error in capsys.readouterr().err


def test_predict(trained, capsys, tmp_path):
    _, data, out = trained
    support = tmp_path / "support"
    for shape in ("circle", "cross", "hline"):
        (support / shape).mkdir(parents=True)
        shutil.copy(data / shape / "0.png", support / shape / "a.png")
    query = tmp_path / "query"
    query.mkdir()
    for shape in ("circle", "cross"):
        shutil.copy(data / shape / "0.png", query / f"{shape}.png")  # the support image itself
    capsys.readouterr()
    assert main(["predict", str(out / "checkpoint"), "--support", str(support), "--query", str(query), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["classes"] == ["circle", "cross", "hline"]
    by_file = {p["file"].rsplit("/", 1)[1]: p for p in result["predictions"]}
    assert by_file["circle.png"]["class"] == "circle" and by_file["cross.png"]["class"] == "cross"
    assert all(0 < p["probability"] <= 1 for p in result["predictions"])


def test_predict_refuses_one_class_and_bad_images(trained, capsys, tmp_path):
    _, data, out = trained
    support = tmp_path / "support"
    (support / "circle").mkdir(parents=True)
    shutil.copy(data / "circle" / "0.png", support / "circle" / "a.png")
    query = tmp_path / "query"
    query.mkdir()
    shutil.copy(data / "circle" / "1.png", query / "q.png")
    assert main(["predict", str(out / "checkpoint"), "--support", str(support), "--query", str(query)]) == 2
    assert "at least 2 classes" in capsys.readouterr().err
    (support / "cross").mkdir()
    draw("cross", np.random.default_rng(0)).save(support / "cross" / "b.png")
    (query / "notes.png").write_text("not an image")
    assert main(["predict", str(out / "checkpoint"), "--support", str(support), "--query", str(query)]) == 2
    err = capsys.readouterr().err
    assert "notes.png" in err and "not a readable image" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--algorithm", "nope"], "unknown algorithm 'nope'; valid names: "),
        (["train", "--dataset", "imagenet"], "unknown dataset 'imagenet'; valid names: "),
        (["train", "--dataset", "omniglot", "--data-root", "/nonexistent/omniglot"], "/nonexistent/omniglot"),
        (["train", "--set", "bogus=1"], "unknown setting(s) bogus"),
        (["evaluate", "/nonexistent/ckpt"], "no checkpoint folder"),
        (["plot", "/nonexistent/run"], "no metrics here"),
    ],
)
def test_bad_input_gives_one_clear_line(argv, message, capsys, tmp_path):
    assert main(argv + (["--out", str(tmp_path / "o")] if argv[0] == "train" else [])) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_damaged_or_foreign_checkpoint(trained, capsys, tmp_path):
    _, _, out = trained
    copy = tmp_path / "ck"
    shutil.copytree(out / "checkpoint", copy)
    meta = json.loads((copy / "checkpoint.json").read_text())
    meta["learner"]["algorithm"] = "maml"  # claims another algorithm
    (copy / "checkpoint.json").write_text(json.dumps(meta))
    assert main(["evaluate", str(copy), "--episodes", "2"]) == 2
    assert "weights do not fit" in capsys.readouterr().err
    (copy / "model.safetensors").write_bytes(b"\0" * 100)
    assert main(["evaluate", str(copy), "--episodes", "2"]) == 2
    assert "SHA-256" in capsys.readouterr().err


def test_list_and_plot(trained, capsys):
    _, _, out = trained
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "protonet" in listed and "maml" in listed and "conv4" in listed and "omniglot" in listed
    (out / "curves.png").unlink()
    assert main(["plot", str(out)]) == 0
    assert (out / "curves.png").stat().st_size > 1000


def test_evaluate_omniglot_runs(trained, capsys, tmp_path):
    _, _, out = trained
    make_runs(tmp_path / "runs", runs=3, ways=5)
    capsys.readouterr()
    assert (
        main(["evaluate", str(out), "--dataset", "omniglot-runs", "--data-root", str(tmp_path / "runs"), "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["runs"] == 3 and result["ways"] == 5 and result["shots"] == 1 and result["episodes"] == 3
    assert result["error"] == pytest.approx(1 - result["accuracy"])


def test_finetune_pretrains_on_global_labels(trained, tmp_path):
    _, data, _ = trained
    out = tmp_path / "ft"
    argv = train_argv(data, out, "--algorithm", "finetune", steps=4, batch_size=8, val_split="none", log_every=1)
    assert main(argv) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    # supervised batches over all 8 classes: the classifier's loss starts near log(8), not log(3)
    assert len(train) == 4 and abs(train[0]["loss"] - np.log(8)) < 0.5


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])  # Ctrl-C; a scheduler's preemption notice
def test_ctrl_c_or_sigterm_saves_and_resume_finishes(trained, tmp_path, sig):
    import signal
    import subprocess
    import sys
    import time

    _, data, _ = trained
    out = tmp_path / "run"

    def args(steps):
        return train_argv(data, out, steps=steps, val_split="none", log_every=1)

    proc = subprocess.Popen(
        [sys.executable, "-m", "fewshot", *args(100_000)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "resume with: fewshot train --resume" in output
    step = json.loads((out / "last" / "checkpoint.json").read_text())["step"]
    assert step >= 3
    assert main([*args(step + 2), "--resume"]) == 0
    assert json.loads((out / "result.json").read_text())["step"] == step + 2


def test_download_from_a_local_source(tmp_path, capsys, omniglot_root):
    assert main(["download", "omniglot", str(tmp_path / "og"), "--source", str(omniglot_root)]) == 0
    assert (tmp_path / "og" / "images_background.zip").stat().st_size == (
        omniglot_root / "images_background.zip"
    ).stat().st_size
    assert main(["download", "omniglot", str(tmp_path / "og2"), "--source", str(tmp_path / "nowhere")]) == 2
    assert "source folder not found" in capsys.readouterr().err


GENOTYPE = "normal=sep_conv_3x3~0,skip_connect~1|max_pool_3x3~0,sep_conv_3x3~2;reduce=max_pool_3x3~0,avg_pool_3x3~1|skip_connect~2,max_pool_3x3~0"  # noqa: E501


def test_a_searched_darts_cell_trains_by_name_as_a_backbone(trained, tmp_path, capsys):
    _, data, _ = trained
    out = tmp_path / "darts"
    small = {"backbone_options__channels": 4, "backbone_options__layers": 2, "val_split": "none"}
    argv = train_argv(data, out, "--backbone", "darts", steps=2, backbone_options__genotype=GENOTYPE, **small)
    assert main(argv) == 0
    assert main(["evaluate", str(out), "--episodes", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["episodes"] == 4
    assert main(train_argv(data, tmp_path / "none", "--backbone", "darts", steps=2, **small)) == 2
    assert "backbone 'darts' needs option(s) genotype" in capsys.readouterr().err
