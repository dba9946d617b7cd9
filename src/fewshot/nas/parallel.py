"""Executors that evaluate a batch of architectures at once, for :class:`fewshot.nas.runner.Search`.

* ``InProcess``: one after the other in this process (the reference the others must equal);
* ``LocalProcesses``: a pool of local worker processes (the problem is sent once to each worker);
* ``RayWorkers``: Ray tasks, across the machines of a Ray cluster (``pip install ray``; optional).

Each job is ``(arch, seed)``: the evaluation's generator is ``numpy.random.default_rng(seed)``, seeds
drawn by the search, so where a job runs never changes its result.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from fewshot.nas.errors import NASError

_WORKER_PROBLEM = None  # the problem, in a worker process


def evaluate_job(problem, job):
    arch, seed = job
    return problem.evaluate(arch, np.random.default_rng(seed))


def _set_worker_problem(problem) -> None:
    global _WORKER_PROBLEM
    _WORKER_PROBLEM = problem
    if "torch" in sys.modules:  # one thread per worker: the workers are the parallelism
        sys.modules["torch"].set_num_threads(1)


def _evaluate_in_worker(job):
    return evaluate_job(_WORKER_PROBLEM, job)


class InProcess:
    def start(self, problem) -> None:
        self.problem = problem

    def map(self, jobs: list) -> list:
        return [evaluate_job(self.problem, job) for job in jobs]

    def close(self) -> None:
        pass


class LocalProcesses:
    """``workers`` local processes (``spawn`` by default: safe with threads and torch)."""

    def __init__(self, workers: int = 2, start_method: str = "spawn"):
        if workers < 1:
            raise NASError(f"workers must be at least 1, got {workers}")
        self.workers, self.start_method = workers, start_method
        self.pool: ProcessPoolExecutor | None = None

    def start(self, problem) -> None:
        context = multiprocessing.get_context(self.start_method)
        self.pool = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_set_worker_problem, initargs=(problem,)
        )

    def map(self, jobs: list) -> list:
        assert self.pool is not None, "start() first"
        return list(self.pool.map(_evaluate_in_worker, jobs))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


class RayWorkers:
    """Ray tasks on the cluster at ``address`` (None: start or join a local one); needs ``ray`` installed.
    ``resources``: per-task Ray options such as ``{"num_cpus": 1}`` or ``{"num_gpus": 1}``."""

    def __init__(self, address: str | None = None, resources: dict | None = None):
        self.address, self.resources = address, dict(resources or {"num_cpus": 1})

    def start(self, problem) -> None:
        try:
            import ray
        except ImportError:
            raise NASError("the ray executor needs Ray: pip install 'fewshot[nas]' (or ray)") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        self.problem_ref = ray.put(problem)
        self.remote = ray.remote(**self.resources)(evaluate_job)

    def map(self, jobs: list) -> list:
        return self.ray.get([self.remote.remote(self.problem_ref, job) for job in jobs])

    def close(self) -> None:
        pass


EXECUTORS = {"serial": InProcess, "processes": LocalProcesses, "ray": RayWorkers}


def make_executor(name: str, **settings):
    if name not in EXECUTORS:
        raise NASError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")
    return EXECUTORS[name](**settings)
