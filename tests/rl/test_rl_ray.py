"""``vector=ray``: environments stepped by Ray actors give the same rollouts as the in-process sampler for a
seed; on one local node (fast) and on a local two-node cluster (slow). Skipped without Ray."""

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fewshot.rl.config import RLConfig
from fewshot.rl.errors import RLError
from fewshot.rl.policy import GaussianMLPPolicy
from fewshot.rl.rollouts import Rollouts, Sampler
from fewshot.rl.tasks import get_family
from fewshot.rl.train import RLTrainer, read_metrics

pytest.importorskip("gymnasium", reason="fewshot.rl needs gymnasium: pip install 'fewshot[rl]'")
ray = pytest.importorskip("ray", reason="vector=ray needs Ray: pip install 'fewshot[nas]'")
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
FIELDS = ("obs", "actions", "rewards", "mask", "mean", "log_std")


def collect(family, mode: str, num_envs: int, tasks, episodes: int, **ray_options) -> tuple[Rollouts, list[str]]:
    """One seeded batch of ``tasks x episodes`` episodes, and the Ray nodes of the actors (empty in-process)."""
    sampler = Sampler(family, num_envs, mode, **ray_options)
    try:
        torch.manual_seed(0)
        policy = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, [16])
        params = dict(policy.named_parameters())
        batch = sampler.collect(policy, params, tasks, episodes, torch.Generator().manual_seed(3))
        return batch, sampler.env.nodes() if mode == "ray" else []
    finally:
        sampler.close()


def assert_same(a: Rollouts, b: Rollouts) -> None:
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_vector_ray_is_a_setting_and_checked():
    assert RLConfig(vector="ray").vector == "ray"
    with pytest.raises(RLError, match="vector must be one of"):
        RLConfig(vector="dask")


def test_ray_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(RLError, match=r"pip install 'fewshot\[nas\]'"):
        Sampler(get_family("pointnav", horizon=5), 4, "ray")


@pytest.fixture
def one_node():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_one_local_node_gives_the_in_process_rollouts(one_node):
    family = get_family("pointnav", horizon=15)
    tasks = family.sample_tasks(3, torch.Generator().manual_seed(1))
    # 8 environments over 3 actors (3 + 3 + 2), 6 of them used: uneven shares and padding
    local, _ = collect(family, "sync", 8, tasks, 2)
    remote, nodes = collect(family, "ray", 8, tasks, 2, envs_per_actor=3)
    assert len(nodes) == 3
    assert_same(remote, local)


def assert_same_training(tmp_path) -> None:
    """Two tiny training runs, ``vector=sync`` and ``vector=ray``, log the same metrics (time aside)."""
    small = {"iterations": 2, "meta_batch": 2, "episodes": 2, "hidden": [8], "family_options": {"horizon": 10}}
    logged = {}
    for vector in ("sync", "ray"):
        RLTrainer.create(RLConfig.from_dict({**small, "vector": vector}), tmp_path / vector, quiet=True).run()
        logged[vector] = [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(tmp_path / vector)]
    assert logged["ray"] == logged["sync"] and len(logged["ray"]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args):
    return subprocess.run([RAY, *args, "--disable-usage-stats"], capture_output=True, text=True, timeout=180)


@pytest.fixture
def two_nodes(monkeypatch):
    """A head and a second node with one CPU each, both started on 127.0.0.1 by the ``ray`` command (token
    authentication off: Ray >= 2.5x turns it on, and the throwaway cluster is reachable from this host only)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    port = _free_port()
    head = _ray(
        "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"
    )
    assert head.returncode == 0, head.stderr[-2000:]
    try:
        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
        node = _ray("start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", "--num-cpus=1")
        assert node.returncode == 0, node.stderr[-2000:]
        for _ in range(100):  # until the second node has registered
            if len([n for n in ray.nodes() if n["Alive"]]) == 2 and ray.available_resources().get("CPU") == 2:
                break
            __import__("time").sleep(0.2)
        yield
    finally:
        ray.shutdown()
        subprocess.run([RAY, "stop"], capture_output=True, timeout=180)


@pytest.mark.slow  # about 25 s of cluster start and stop: run with -m slow
def test_two_node_cluster_gives_the_in_process_rollouts_and_training(two_nodes, tmp_path):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    family = get_family("pointnav", horizon=20)
    tasks = family.sample_tasks(4, torch.Generator().manual_seed(2))
    local, _ = collect(family, "sync", 20, tasks, 5)
    remote, nodes = collect(family, "ray", 20, tasks, 5)  # one actor per free CPU: one on each node
    assert len(nodes) == 2 and len(set(nodes)) == 2
    assert_same(remote, local)
    pytest.importorskip("mujoco", reason="the HalfCheetah check needs MuJoCo: pip install 'fewshot[rl]'")
    cheetah = get_family("cheetah-vel", horizon=10)  # random initial states: the per-actor seeds matter
    tasks = cheetah.sample_tasks(2, torch.Generator().manual_seed(2))
    local, _ = collect(cheetah, "sync", 6, tasks, 3)
    remote, nodes = collect(cheetah, "ray", 6, tasks, 3)
    assert len(set(nodes)) == 2
    assert_same(remote, local)
    assert_same_training(tmp_path)  # fewshot rl train --set vector=ray, on the two nodes
