"""Two processes on CPU (gloo) end with the parameters of one process with the same meta-batch."""

import os
import subprocess
import sys

import torch
from images import make_tree

from fewshot.engine.checkpoint import read_checkpoint


def train_args(data, out, steps=3):
    return [
        "train",
        "--algorithm",
        "maml",
        "--dataset",
        "image-folder",
        "--data-root",
        str(data),
        "--ways",
        "3",
        "--shots",
        "1",
        "--queries",
        "2",
        "--meta-batch",
        "4",
        "--steps",
        str(steps),
        "--out",
        str(out),
        "--quiet",
        "--test-episodes",
        "2",
        "--seed",
        "3",
        "--set",
        "dataset_options.image_size=28",
        "--set",
        "dataset_options.channels=1",
        "--set",
        "backbone_options.hidden=8",
        "--set",
        "algorithm_options.task_batching=loop",
        "--set",
        "val_split=none",
        "--set",
        "tensorboard=false",
        "--set",
        "grad_clip=10",
        "--set",
        "time_limit=1e9",  # never reached, but every step asks all processes whether it is
        # SGD, not Adam: Adam turns the float noise of gradients that are zero in exact
        # arithmetic (conv biases before BatchNorm) into full-size steps
        "--set",
        "optimizer=sgd",
        "--set",
        "lr=0.5",
    ]


def run(cmd, **env):
    result = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **env}, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_two_processes_match_one(tmp_path):
    data = make_tree(tmp_path / "shapes")
    run([sys.executable, "-m", "fewshot", *train_args(data, tmp_path / "single")])
    run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "fewshot",
            *train_args(data, tmp_path / "double"),
        ]
    )
    _, one = read_checkpoint(tmp_path / "single" / "last")
    _, two = read_checkpoint(tmp_path / "double" / "last")
    assert one.keys() == two.keys()
    for k in one:
        assert torch.allclose(one[k], two[k], atol=1e-5, rtol=1e-4), k
    # both moved away from the initialisation, so their equality is not trivial
    run([sys.executable, "-m", "fewshot", *train_args(data, tmp_path / "init", steps=0)])
    _, init = read_checkpoint(tmp_path / "init" / "last")
    assert any(not torch.allclose(one[k], init[k]) for k in one if one[k].is_floating_point())
