"""Learning curves of an RL run folder as a PNG (matplotlib's Agg backend, no display needed).

Drawn from the run's ``metrics.jsonl`` (one line per iteration, written by ``RLTrainer``): the mean return
before and after adaptation, the outer step's surrogate objective before and after, the KL divergence of
the step from the acting policy (with TRPO's ``max_kl`` bound), and environment steps per second of the
whole iteration (sampling and update).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fewshot.rl.config import RLConfig
from fewshot.rl.errors import RLError


def read_run(run_dir: str | Path) -> tuple[RLConfig, list[dict[str, Any]]]:
    """(config, one metrics record per iteration) of an RL run folder; one clear error for a folder that is
    not one, or that has no iteration logged yet."""
    run = Path(run_dir)
    config_path, metrics_path = run / "config.json", run / "metrics.jsonl"
    if not run.is_dir():
        raise RLError(f"{run}: no such run folder")
    if not (config_path.is_file() and metrics_path.is_file()):
        raise RLError(f"{run}: not an rl run folder (no config.json and metrics.jsonl; make one with fewshot rl train)")
    try:
        config = RLConfig.from_dict(json.loads(config_path.read_text()))
        rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    except (json.JSONDecodeError, TypeError, AttributeError, RLError) as e:
        raise RLError(f"{run}: not an rl run folder ({type(e).__name__}: {e})") from None
    if any(not isinstance(r, dict) or not {"iteration", "return_pre", "return_post"} <= set(r) for r in rows):
        raise RLError(f"{run}: not an rl run folder (metrics.jsonl has no return_pre/return_post records)")
    if not rows:
        raise RLError(f"{run}: no iterations logged yet (metrics.jsonl is empty); plot once one has finished")
    return config, rows


def plot_learning_curves(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """The run's training curves -> ``out`` (default ``RUN/curves.png``); returns the path written."""
    config, rows = read_run(run_dir)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    its = [r["iteration"] for r in rows]

    def series(key: str) -> list[float] | None:
        return [float(r[key]) for r in rows] if all(key in r for r in rows) else None

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax_ret, ax_obj, ax_kl, ax_speed = axes.ravel()
    ax_ret.plot(its, series("return_pre"), marker=".", label="before adaptation")
    if config.train_inner_steps > 0:
        ax_ret.plot(its, series("return_post"), marker=".", label=f"after {config.train_inner_steps} inner step(s)")
    ax_ret.set(title=f"mean return ({config.family}, {config.method})", xlabel="iteration", ylabel="mean return")
    ax_ret.legend()

    before, after = series("surrogate_before"), series("surrogate_after")
    if before is not None and after is not None:
        ax_obj.plot(its, before, marker=".", label="before the step")
        ax_obj.plot(its, after, marker=".", label="after the step")
        ax_obj.legend()
    ax_obj.set(title=f"outer surrogate objective ({config.outer})", xlabel="iteration", ylabel="objective")

    kl = series("kl")
    if kl is not None:
        ax_kl.plot(its, kl, marker=".", label="KL of the step")
        if config.outer == "trpo":
            ax_kl.axhline(config.max_kl, color="grey", ls="--", label=f"max_kl {config.max_kl:g}")
        ax_kl.legend()
    ax_kl.set(title="KL divergence from the acting policy", xlabel="iteration", ylabel="KL")

    steps, seconds = series("env_steps"), series("seconds")
    if steps is not None and seconds is not None:
        ax_speed.plot(its, [s / max(t, 1e-9) for s, t in zip(steps, seconds)], marker=".")
    ax_speed.set(title="environment steps / s (whole iteration)", xlabel="iteration", ylabel="steps / s")
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    path = Path(out) if out is not None else Path(run_dir) / "curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
