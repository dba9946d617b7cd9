"""Several machines, tested on one: two torchrun agents act as two nodes on 127.0.0.1 (c10d rendezvous,
gloo), started as the README says (``examples/slurm/train.sbatch`` and the plain two-machine command),
and an elastic restart after a worker is killed ends where an uninterrupted run ends.

Every launch runs in its own session and is stopped past ``TIMEOUT`` (SIGTERM, on which torchrun stops its
workers, then SIGKILL); the rendezvous and every worker address are loopback only."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_args import train_argv
from images import make_tree
from tiny import config as tiny_config
from tiny import trainer as tiny_trainer

from fewshot import Learner
from fewshot.cli.main import main
from fewshot.engine import distributed as D
from fewshot.engine import read_checkpoint, runs
from fewshot.engine.checkpoint import read_training_state

ROOT = Path(__file__).resolve().parents[2]
SBATCH = ROOT / "examples" / "slurm" / "train.sbatch"
TIMEOUT = 240  # seconds for one launch: four interpreters start on a busy 2-core machine
# loopback only; a fresh rendezvous store for each restarted group (see README, pytorch/pytorch#135712)
ENV = {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
STEPS = 4

# srun on one machine: its own flags are dropped and the command runs once per node, side by side
FAKE_SRUN = """#!/bin/bash
while [[ $1 == -* ]]; do shift; done
pids=()
for ((node = 0; node < SLURM_NNODES; node++)); do
    SLURM_NODEID=$node SLURM_PROCID=$node "$@" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
"""
FAKE_SCONTROL = "#!/bin/bash\necho 127.0.0.1\n"  # `scontrol show hostnames`: the first node is this one

# `fewshot train ...`, except that the worker of rank 1 kills itself (SIGKILL: no clean-up) as it starts
# step 4, once; every worker notes the step it starts from, so that the test sees the restart resume.
KILL_ONCE = """
import json, os, signal, sys
from pathlib import Path
from fewshot.cli.main import main
from fewshot.engine.train import Trainer

killed, starts = Path(sys.argv[1]), Path(sys.argv[2])
train_step, started = Trainer.train_step, []

def dying_train_step(self, batch):
    if not started:
        started.append(self.step)
        record = {"rank": self.world.rank, "restart": int(os.environ["TORCHELASTIC_RESTART_COUNT"]), "from": self.step}
        with open(starts, "a") as f:
            f.write(json.dumps(record) + "\\n")
    if self.step == 3 and self.world.rank == 1 and not killed.exists():
        killed.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return train_step(self, batch)

Trainer.train_step = dying_train_step
sys.exit(main(sys.argv[3:]))
"""


def maml_argv(data, out) -> list[str]:
    """A few steps of MAML as in ``test_distributed`` (SGD, see there), ``last/`` saved every 2 steps."""
    flags = ("--algorithm", "maml", "--meta-batch", "4", "--seed", "3")
    return train_argv(
        data,
        out,
        *flags,
        steps=STEPS,
        test_episodes=2,
        backbone_options__hidden=8,
        algorithm_options__task_batching="loop",
        val_split="none",
        val_every=2,
        log_every=1,
        grad_clip=10,
        optimizer="sgd",
        lr=0.5,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(commands: list[list[str]], logs: Path, timeout: float = TIMEOUT, ok: bool = True, **env: str) -> str:
    """Run ``commands`` side by side, each in its own session; fail with their output if they run past
    ``timeout`` seconds (then SIGTERM, on which torchrun stops its workers, then SIGKILL), and unless all
    succeed (``ok``) or not all do (not ``ok``)."""
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i, cmd in enumerate(commands):
        with open(logs / f"{i}.log", "w") as log:
            env_i = {**os.environ, **ENV, **env}
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env_i, start_new_session=True))
    timed_out = False
    try:
        for proc in procs:
            proc.wait(timeout=timeout)  # a shared bound would be tighter; this one is loose enough
    except subprocess.TimeoutExpired:
        timed_out = True
        workers = [pid for proc in procs for pid in descendants(proc.pid)]  # torchrun starts them in new sessions
        for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, sig)
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)
        for pid in workers:  # any that an agent killed outright left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    output = "\n".join((logs / f"{i}.log").read_text() for i in range(len(commands)))
    codes = [proc.returncode for proc in procs]
    assert not timed_out, f"ran past {timeout} s, stopped\n{output[-8000:]}"
    assert (codes == [0] * len(procs)) is ok, f"exit codes {codes}\n{output[-8000:]}"
    return output


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc; none where there is no /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def weights(run: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run / "last")[1]


def records(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock times."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in lines]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="module")
def two_nodes(data, tmp_path_factory) -> Path:
    """The uninterrupted run: the SLURM script with srun and scontrol stood in for, on two nodes of one process."""
    tmp = tmp_path_factory.mktemp("slurm")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    out = tmp / "run"
    launch(
        [["bash", str(SBATCH), *maml_argv(data, out)[1:]]],  # the script adds `train`
        tmp / "logs",
        PATH=f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        SLURM_JOB_ID="4242",
        SLURM_NNODES="2",
        SLURM_JOB_NODELIST="node[1-2]",
        MASTER_PORT=str(free_port()),
        MAX_RESTARTS="0",
        TORCHRUN_ARGS="--local-addr 127.0.0.1",
    )
    return out


def test_two_nodes_end_like_one_process(two_nodes, data, tmp_path):
    """SLURM script, two nodes x one process, each half the meta-batch == one process: float tolerance,
    since the all-reduce adds the halves' gradients in another order than one process's mean."""
    assert json.loads((two_nodes / "result.json").read_text())["step"] == STEPS
    assert main(maml_argv(data, tmp_path / "single")) == 0
    one, two = weights(tmp_path / "single"), weights(two_nodes)
    assert one.keys() == two.keys()
    for k in one:
        assert torch.allclose(one[k], two[k], atol=1e-5, rtol=1e-4), k
    assert read_checkpoint(two_nodes / "checkpoint")[0]["step"] == STEPS
    # both moved away from the initialisation, so their equality is not trivial
    start = Learner(**json.loads((two_nodes / "config.json").read_text())).algorithm.state_dict()
    assert any(not torch.allclose(two[k], start[k]) for k in two if two[k].is_floating_point())


def test_a_killed_worker_restarts_the_group_which_ends_like_an_uninterrupted_run(two_nodes, data, tmp_path):
    """The plain two-machine command with --max-restarts 1; rank 1 is killed as it starts step 4, after
    last/ was saved at step 2. The restarted group continues from step 2 and ends bit-identical to the
    uninterrupted run (same processes, same order of float operations), with a complete run folder."""
    script, killed, starts, out = (tmp_path / name for name in ("kill_once.py", "killed", "starts.jsonl", "run"))
    script.write_text(KILL_ONCE)
    port = free_port()
    agent = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1"]
    agent += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "restart-test"]
    agent += ["--max-restarts", "1", "--local-addr", "127.0.0.1", str(script), str(killed), str(starts)]
    launch([agent + maml_argv(data, out)] * 2, tmp_path / "logs")

    assert killed.exists()
    begun = sorted((r["from"], r["rank"], r["restart"]) for r in map(json.loads, starts.read_text().splitlines()))
    assert [(step, rank) for step, rank, _ in begun] == [(0, 0), (0, 1), (2, 0), (2, 1)]  # then from last/ at 2
    # torchrun counts the restart on the node whose worker failed; the other may restart it as a membership change
    assert any(count > 0 for step, _, count in begun if step == 2)
    # a complete run folder, with the expected step count and every step logged once
    assert json.loads((out / "result.json").read_text())["step"] == STEPS
    state = read_training_state(out / "last")
    assert (state["step"], state["finished"], state["elastic_run_id"]) == (STEPS, True, "restart-test")
    assert read_checkpoint(out / "checkpoint")[0]["step"] == STEPS
    assert [r["step"] for r in records(out) if r["split"] == "train"] == list(range(1, STEPS + 1))
    assert records(out) == records(two_nodes)
    a, b = weights(out), weights(two_nodes)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the restart decision, in one process --------------------------------------------------------


def crash_at(step_to_die: int):
    def crash(step, metrics):  # no clean exit: what SIGKILL or a dead machine leaves
        if step == step_to_die:
            raise RuntimeError("killed")

    return crash


@pytest.mark.parametrize("die_at, resumes_from", [(3, 0), (7, 4)], ids=["before the first save", "after it"])
def test_a_restart_of_the_same_job_continues_by_itself(tmp_path, monkeypatch, die_at, resumes_from):
    """The same command again under the same TORCHELASTIC_RUN_ID: no --resume, yet it continues from
    last/ (saved at step 0 too under torchrun) and ends bit-identical to an uninterrupted run."""
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-1")
    full = tiny_trainer(tiny_config(tmp_path / "a"))
    full.fit()
    with pytest.raises(RuntimeError, match="killed"):
        tiny_trainer(tiny_config(tmp_path / "b")).fit(callback=crash_at(die_at))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    again = tiny_trainer(tiny_config(tmp_path / "b"))
    assert again.step == resumes_from
    assert again.fit().step == 12
    a, b = full.algorithm.state_dict(), again.algorithm.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "saved_by, run_id, restarts, continues",
    [
        ("job-1", "job-1", "0", True),  # the same job started again (a SLURM requeue keeps the id)
        ("job-1", "job-2", "1", False),  # another job's run is never taken over, restart or not
        ("none", "none", "0", False),  # torchrun's default id names no job: a new start is refused
        ("none", "none", "1", True),
        (None, "job-1", "1", False),  # saved outside torchrun
    ],
)
def test_only_a_restart_of_the_job_that_saved_last_continues_it(
    tmp_path, monkeypatch, saved_by, run_id, restarts, continues
):
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    if saved_by is not None:
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", saved_by)
    with pytest.raises(RuntimeError, match="killed"):
        tiny_trainer(tiny_config(tmp_path, val_every=2)).fit(callback=crash_at(3))
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", run_id)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", restarts)
    assert runs.continues_after_restart(tmp_path / "run") is continues
    if continues:
        assert tiny_trainer(tiny_config(tmp_path, val_every=2)).step == 2
    else:
        with pytest.raises(ValueError, match="holds a run"):
            tiny_trainer(tiny_config(tmp_path, val_every=2))


# Each process trains the tiny learner into a folder of its own, as on machines without shared storage
PER_NODE_FOLDERS = """
import os, sys
from pathlib import Path
from tiny import TinyProto, clustered, config
from fewshot.engine import Trainer

Trainer(config(Path(sys.argv[1]) / f"node{os.environ['RANK']}", val_every=2), TinyProto(), clustered())
"""


def test_a_restart_without_shared_storage_is_one_error_on_every_process(tmp_path, monkeypatch):
    """Rank 0 finds last/ of this job in its folder, rank 1 an empty one: they stop with one error
    (no hang, no rank training from another state)."""
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "per-node-test")
    with pytest.raises(RuntimeError, match="killed"):
        tiny_trainer(tiny_config(tmp_path / "node0", val_every=2)).fit(callback=crash_at(3))
    script = tmp_path / "per_node.py"
    script.write_text(PER_NODE_FOLDERS)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2"]
    cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "per-node-test"]
    cmd += ["--local-addr", "127.0.0.1", str(script), str(tmp_path)]
    tests = str(Path(__file__).resolve().parents[1])  # tiny.py
    output = launch([cmd], tmp_path / "logs", ok=False, PYTHONPATH=tests)
    # both raise it; torchrun may stop the second before it prints
    assert "the processes found different saved states" in output, output[-8000:]
    assert read_training_state(tmp_path / "node0" / "run" / "last")["step"] == 2  # left as it was


def test_restarts_through_a_shared_rendezvous_store_are_warned_about(monkeypatch, caplog):
    env = {"WORLD_SIZE": "2", "RANK": "0", "TORCHELASTIC_MAX_RESTARTS": "3", "TORCHELASTIC_USE_AGENT_STORE": "True"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for name, value in (("is_initialized", True), ("get_rank", 0), ("get_world_size", 2)):
        monkeypatch.setattr(D.dist, name, lambda value=value: value)  # a process group already joined
    assert D.init_world("cpu") == D.World(0, 2, 0)
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in caplog.text
    caplog.clear()
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")
    D.init_world("cpu")
    assert not caplog.text
