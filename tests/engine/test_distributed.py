"""Two processes on CPU (gloo): they end with the parameters of one process, and stop together."""

import json
import os
import subprocess
import sys

import torch
from cli_args import train_argv
from images import make_tree

from fewshot.engine.checkpoint import read_checkpoint


def train_args(data, out, steps=3):
    """MAML, meta-batch 4, a narrow Conv4 and plain SGD: SGD, not Adam, because Adam turns the float
    noise of gradients that are zero in exact arithmetic (conv biases before BatchNorm) into full-size steps."""
    flags = ("--algorithm", "maml", "--meta-batch", "4", "--seed", "3")
    return train_argv(
        data,
        out,
        *flags,
        steps=steps,
        test_episodes=2,
        backbone_options__hidden=8,
        algorithm_options__task_batching="loop",
        val_split="none",
        grad_clip=10,
        time_limit=1e9,  # never reached, but every step asks all processes whether it is
        optimizer="sgd",
        lr=0.5,
    )


def run(cmd, timeout=600, **env):
    result = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **env}, timeout=timeout
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


# Each process trains the tiny learner; a stop arrives on rank 1 alone after step 2, as when a
# signal reaches one worker first. Both must stop before step 3 and exit cleanly (rank 0 used
# to go on alone and die in the next all-reduce).
ONE_RANK_STOPS = """
import json, sys
from tiny import TinyProto, clustered
from fewshot.engine import TrainConfig, Trainer
from fewshot.engine.distributed import close_world

config = TrainConfig(dataset="arrays", ways=3, shots=2, queries=3, meta_batch=2, steps=50, val_every=1000,
                     test_episodes=4, out=sys.argv[1], quiet=True, tensorboard=False)
trainer = Trainer(config, TinyProto(), clustered(), clustered(seed=1), clustered(seed=2))

def stop_on_rank_1(step, metrics):
    if trainer.world.rank == 1 and step == 2:
        trainer.stop_requested = True

result = trainer.fit(stop_on_rank_1)
print(json.dumps({"rank": trainer.world.rank, "step": result.step, "interrupted": result.interrupted}))
close_world(trainer.world)
"""


def test_a_stop_on_one_process_stops_all_at_the_same_step(tmp_path):
    script = tmp_path / "one_rank_stops.py"
    script.write_text(ONE_RANK_STOPS)
    tests = os.path.dirname(os.path.dirname(__file__))  # tests/, where tiny.py is
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    result = run([*cmd, str(script), str(tmp_path / "run")], timeout=120, PYTHONPATH=tests)  # a hang fails
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    reports.sort(key=lambda r: r["rank"])
    assert reports == [{"rank": r, "step": 2, "interrupted": True} for r in (0, 1)]
