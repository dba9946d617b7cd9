"""The search loop: budget, seed, JSON history of every query, resumable state file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fewshot.files import write_json_atomically
from fewshot.nas.errors import NASError
from fewshot.nas.problem import Problem, regret
from fewshot.nas.strategies.base import Strategy

STATE_FORMAT = "fewshot.nas.search-state/1"
MAX_REPEATS = 1000  # proposals of already evaluated architectures in a row before the search gives up


@dataclass
class SearchResult:
    """The incumbent (best observed metric) and every query's record."""

    problem: str
    strategy: str
    seed: int
    best: str | None
    observed: float | None  # the incumbent's metric as the search saw it (one run)
    metric: float | None  # its report value (mean over runs)
    regret: float | None
    queries: int
    seconds: float
    history: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "problem": self.problem,
            "strategy": self.strategy,
            "seed": self.seed,
            "best": self.best,
            "metric": self.metric,
            "observed": self.observed,
            "regret": self.regret,
            "queries": self.queries,
            "seconds": round(self.seconds, 6),
        }


class _Either:
    """Membership in either of two containers (evaluated or pending architectures)."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __contains__(self, x) -> bool:
        return x in self.a or x in self.b


def _generators(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Separate streams for proposals and for drawing runs, so one never shifts the other."""
    root = np.random.SeedSequence(seed)
    propose, runs = root.spawn(2)
    return np.random.default_rng(propose), np.random.default_rng(runs)


class Search:
    """One search of ``problem`` by ``strategy``: call :meth:`run`; resumable through ``state_path``.

    ``budget``: distinct architectures to evaluate; ``time_budget``: seconds of wall time (either
    ends the search). ``progress(record)`` is called after each query. ``executor`` (see
    :mod:`fewshot.nas.parallel`): evaluate ``batch_size`` proposals at a time, in parallel.
    """

    def __init__(
        self,
        problem: Problem,
        strategy: Strategy,
        budget: int,
        seed: int = 0,
        *,
        time_budget: float | None = None,
        state_path: str | Path | None = None,
        checkpoint_every: int = 1,
        progress: Callable[[dict], None] | None = None,
        executor=None,
        batch_size: int = 1,
    ):
        size = problem.space.size
        if budget < 1:
            raise NASError(f"budget must be at least 1 query, got {budget}")
        if size is not None and budget > size:
            raise NASError(f"budget {budget} is larger than the space {problem.name!r} ({size} architectures)")
        self.problem, self.strategy, self.budget, self.seed = problem, strategy, int(budget), int(seed)
        self.time_budget, self.progress = time_budget, progress
        self.executor, self.batch_size = executor, max(1, int(batch_size))
        self.state_path = Path(state_path) if state_path else None
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.rng, self.run_rng = _generators(self.seed)
        self.history: list[dict] = []
        self.seen: dict = {}  # arch -> (score, record index)
        self.best_index: int | None = None
        self.elapsed = 0.0
        if self.state_path and self.state_path.exists():
            self._load_state()

    # -- state -------------------------------------------------------------------------------------------------------
    def _identity(self) -> dict:
        return {
            "problem": self.problem.name,
            "strategy": self.strategy.name,
            "settings": self.strategy.settings(),
            "seed": self.seed,
        }

    def state(self) -> dict:
        return {
            "format": STATE_FORMAT,
            **self._identity(),
            "budget": self.budget,
            "elapsed": self.elapsed,
            "rng": self.rng.bit_generator.state,
            "run_rng": self.run_rng.bit_generator.state,
            "strategy_state": self.strategy.state_dict(),
            "history": self.history,
        }

    def _load_state(self) -> None:
        assert self.state_path is not None
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise NASError(f"cannot read search state {self.state_path}: {e}") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise NASError(f"{self.state_path} is not a search state file ({STATE_FORMAT})")
        mine = json.loads(json.dumps(self._identity()))
        theirs = {k: state.get(k) for k in mine}
        if theirs != mine:
            diff = ", ".join(f"{k}: {theirs[k]!r} there, {mine[k]!r} here" for k in mine if theirs[k] != mine[k])
            raise NASError(f"{self.state_path} belongs to another search ({diff})")
        self.rng.bit_generator.state = state["rng"]
        self.run_rng.bit_generator.state = state["run_rng"]
        self.strategy.load_state_dict(state["strategy_state"])
        self.elapsed = float(state["elapsed"])
        for record in state["history"]:
            self._record(record, self.problem.space.parse(record["arch"]))

    def save_state(self) -> None:
        if self.state_path:
            write_json_atomically(self.state_path, self.state(), indent=None)

    # -- loop --------------------------------------------------------------------------------------------------------
    def _score(self, metric: float) -> float:
        return metric if self.problem.mode == "max" else -metric

    def _record(self, record: dict, arch) -> None:
        self.history.append(record)
        i = len(self.history) - 1
        self.seen[arch] = (self._score(record["metric"]), i)
        if self.best_index is None or self._score(record["metric"]) > self._score(
            self.history[self.best_index]["metric"]
        ):
            self.best_index = i

    def _finish_query(self, arch, ev, strategy_s: float, evaluate_s: float) -> dict:
        """Tell the strategy, record the query, update the incumbent; returns the record."""
        t = time.perf_counter()
        self.strategy.tell(arch, self._score(ev.metric))
        strategy_s += time.perf_counter() - t
        record = {
            "query": len(self.history) + 1,
            "arch": self.problem.space.to_string(arch),
            "metric": ev.metric,
            "report": ev.report,
            **ev.info,
        }
        self._record(record, arch)
        assert self.best_index is not None  # set by _record
        best = self.history[self.best_index]
        record.update(
            best=best["arch"],
            best_metric=best["metric"],
            best_report=best["report"],
            regret=regret(self.problem, best["report"]),
            strategy_s=strategy_s,
            evaluate_s=evaluate_s,
        )
        return record

    def _ask_new(self, pending: dict):
        """The next proposal not evaluated nor pending (repeats are told their known score), or None when the
        strategy keeps repeating itself."""
        seen = _Either(self.seen, pending) if pending else self.seen
        for _ in range(MAX_REPEATS + 1):
            arch = self.strategy.ask(self.rng, seen)
            if arch in self.seen:
                self.strategy.tell(arch, self.seen[arch][0])
                continue
            if arch in pending:
                continue
            if not self.problem.space.contains(arch):
                raise RuntimeError(f"{self.strategy.name} proposed {arch!r}, outside space {self.problem.space.name!r}")
            return arch
        return None

    def run(self) -> SearchResult:
        """Search until the budget (queries or seconds) is spent; with an executor, in batches."""
        if self.executor is not None:
            return self._run_batched()
        start = time.perf_counter() - self.elapsed
        while len(self.history) < self.budget:
            if self.time_budget is not None and time.perf_counter() - start >= self.time_budget:
                break
            t0 = time.perf_counter()
            arch = self._ask_new({})
            t1 = time.perf_counter()
            if arch is None:
                break
            ev = self.problem.evaluate(arch, self.run_rng)
            record = self._finish_query(arch, ev, t1 - t0, time.perf_counter() - t1)
            self.elapsed = time.perf_counter() - start
            if self.state_path and (len(self.history) % self.checkpoint_every == 0 or len(self.history) == self.budget):
                self.save_state()
            if self.progress:
                self.progress(record)
        self.elapsed = time.perf_counter() - start
        self.save_state()
        return self.result()

    def _run_batched(self) -> SearchResult:
        """Ask ``batch_size`` architectures, evaluate them together on the executor (each with a generator seeded
        from the search's run stream), tell the results in the order asked. The state is saved between batches,
        so a resumed search equals an uninterrupted one with the same batch size, whatever the executor."""
        start = time.perf_counter() - self.elapsed
        self.executor.start(self.problem)
        try:
            while len(self.history) < self.budget:
                if self.time_budget is not None and time.perf_counter() - start >= self.time_budget:
                    break
                t0 = time.perf_counter()
                pending: dict[Hashable, int] = {}  # arch -> seed of its run
                while len(pending) < min(self.batch_size, self.budget - len(self.history)):
                    arch = self._ask_new(pending)
                    if arch is None:
                        break
                    pending[arch] = int(self.run_rng.integers(2**63))
                if not pending:
                    break
                t1 = time.perf_counter()
                evaluations = self.executor.map(list(pending.items()))
                t2 = time.perf_counter()
                for arch, ev in zip(pending, evaluations):
                    record = self._finish_query(arch, ev, (t1 - t0) / len(pending), (t2 - t1) / len(pending))
                    if self.progress:
                        self.progress(record)
                self.elapsed = time.perf_counter() - start
                self.save_state()
        finally:
            self.executor.close()
        self.elapsed = time.perf_counter() - start
        self.save_state()
        return self.result()

    def result(self) -> SearchResult:
        best = self.history[self.best_index] if self.best_index is not None else None
        return SearchResult(
            problem=self.problem.name,
            strategy=self.strategy.name,
            seed=self.seed,
            best=None if best is None else best["arch"],
            observed=None if best is None else best["metric"],
            metric=None if best is None else best["report"],
            regret=None if best is None else regret(self.problem, best["report"]),
            queries=len(self.history),
            seconds=self.elapsed,
            history=self.history,
        )


def search(problem: Problem, strategy: Strategy, budget: int, seed: int = 0, **options) -> SearchResult:
    """Run one search to its budget (see :class:`Search` for the options)."""
    return Search(problem, strategy, budget, seed, **options).run()
