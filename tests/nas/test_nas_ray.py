"""Ray: a local cluster of two nodes gives the same history as the in-process run (skipped without ray)."""

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from nas_tables import write_choice_table

from fewshot.nas import Search
from fewshot.nas.parallel import InProcess, RayWorkers
from fewshot.nas.spaces import load_table
from fewshot.nas.strategies import make_strategy

ray = pytest.importorskip("ray", reason="Ray is optional (pip install ray); the two-node test needs it")
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args):
    return subprocess.run([RAY, *args, "--disable-usage-stats"], capture_output=True, text=True, timeout=180)


@pytest.fixture
def two_nodes():
    """A head and a second node, both started on 127.0.0.1 by the ``ray`` command."""
    port = _free_port()
    head = _ray(
        "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"
    )
    assert head.returncode == 0, head.stderr[-2000:]
    try:
        ray.init(address="auto", log_to_driver=False)
        address = ray.get_runtime_context().gcs_address
        node = _ray("start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1")
        assert node.returncode == 0, node.stderr[-2000:]
        yield address
    finally:
        ray.shutdown()
        subprocess.run([RAY, "stop"], capture_output=True, timeout=180)


@pytest.mark.slow  # about 20 s of cluster start and stop: run with -m slow
def test_two_node_ray_cluster_equals_in_process_run(tmp_path, two_nodes):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    bench = load_table(write_choice_table(tmp_path / "t.csv", positions=5, choices=3, runs=3, noise=2.0), metric="acc")
    serial = Search(bench, make_strategy("evolution", bench.space), 20, 7, executor=InProcess(), batch_size=4).run()
    remote = Search(
        bench, make_strategy("evolution", bench.space), 20, 7, executor=RayWorkers(two_nodes), batch_size=4
    ).run()
    assert [(r["arch"], r["metric"]) for r in remote.history] == [(r["arch"], r["metric"]) for r in serial.history]
