"""Several strategies over many seeds on one problem: best-so-far and regret curves, regret tables."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fewshot.nas.problem import Problem
from fewshot.nas.runner import search
from fewshot.nas.strategies import make_strategy

Z95 = 1.959964


def _curve(history: list[dict], key: str, budget: int) -> np.ndarray:
    """Per-query values of ``key``, padded with the last value when the search stopped early."""
    values = [np.nan if r.get(key) is None else r[key] for r in history[:budget]]
    values += [values[-1] if values else np.nan] * (budget - len(values))
    return np.asarray(values, dtype=np.float64)


def _mean_ci(rows: np.ndarray) -> tuple[list[float], list[float]]:
    """rows: [seeds, queries] -> mean and 95% half-width per query."""
    n = rows.shape[0]
    half = Z95 * rows.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(rows.shape[1])
    return rows.mean(axis=0).tolist(), half.tolist()


def compare(
    problem: Problem,
    strategies: Mapping[str, Mapping],
    budget: int,
    seeds: Sequence[int],
    progress: Callable[[str, int], None] | None = None,
) -> dict:
    """Run every strategy (name -> settings) once per seed; curves are means over seeds with 95% CIs."""
    out: dict[str, Any] = {
        "problem": problem.name,
        "mode": problem.mode,
        "optimum": problem.optimum,
        "budget": budget,
        "seeds": list(seeds),
        "strategies": {},
    }
    for name, settings in strategies.items():
        make_strategy(name, problem.space, **settings)  # bad names / settings fail before any run
    for name, settings in strategies.items():
        regrets, reports, overhead, t0 = [], [], [], time.perf_counter()
        for seed in seeds:
            result = search(problem, make_strategy(name, problem.space, **settings), budget, seed)
            regrets.append(_curve(result.history, "regret", budget))
            reports.append(_curve(result.history, "best_report", budget))
            overhead.append(sum(r["strategy_s"] for r in result.history) / max(len(result.history), 1))
            if progress:
                progress(name, seed)
        wall = time.perf_counter() - t0
        regret_mean, regret_ci = _mean_ci(np.stack(regrets))
        report_mean, report_ci = _mean_ci(np.stack(reports))
        out["strategies"][name] = {
            "settings": dict(settings),
            "regret_mean": regret_mean,
            "regret_ci": regret_ci,
            "best_report_mean": report_mean,
            "best_report_ci": report_ci,
            "strategy_us_per_query": 1e6 * float(np.mean(overhead)),
            "wall_s": wall,
        }
    return out


def regret_rows(result: dict, checkpoints: Sequence[int]) -> list[dict]:
    """One row per strategy: mean regret and 95% half-width at each checkpoint (queries)."""
    rows = []
    for name, s in result["strategies"].items():
        row: dict[str | int, Any] = {
            "strategy": name,
            "strategy_us_per_query": s["strategy_us_per_query"],
            "wall_s": s["wall_s"],
        }
        for q in checkpoints:
            if q <= result["budget"]:
                row[q] = (s["regret_mean"][q - 1], s["regret_ci"][q - 1])
        rows.append(row)
    return rows


def format_table(result: dict, checkpoints: Sequence[int]) -> str:
    """A markdown table of mean regret +- 95% CI at the checkpoints, with the strategies' own time per query."""
    qs = [q for q in checkpoints if q <= result["budget"]]
    head = "| strategy | " + " | ".join(f"regret @ {q}" for q in qs) + " | strategy time / query | wall (all seeds) |"
    lines = [head, "|" + " --- |" * (len(qs) + 3)]
    for row in regret_rows(result, qs):
        cells = [f"{row[q][0]:.3f} +- {row[q][1]:.3f}" for q in qs]
        lines.append(
            f"| {row['strategy']} | "
            + " | ".join(cells)
            + f" | {_duration(row['strategy_us_per_query'] * 1e-6)} | {row['wall_s']:.1f} s |"
        )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"
