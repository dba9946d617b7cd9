"""Figures: best-so-far and regret against queries with 95% bands; DARTS' architecture weights over epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fewshot.files import write_atomically


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_compare(result: dict, path: str | Path) -> None:
    """Two panels from :func:`fewshot.nas.compare.compare`: best report value so far, and regret (log scale)."""
    plt = _pyplot()
    has_regret = result.get("optimum") is not None
    fig, axes = plt.subplots(1, 2 if has_regret else 1, figsize=(11 if has_regret else 6, 4), squeeze=False)
    q = np.arange(1, result["budget"] + 1)
    for name, s in result["strategies"].items():
        panels = [("best_report_mean", "best_report_ci")] + ([("regret_mean", "regret_ci")] if has_regret else [])
        for ax, (mean_key, ci_key) in zip(axes[0], panels):
            mean, ci = np.asarray(s[mean_key]), np.asarray(s[ci_key])
            (line,) = ax.plot(q, mean, label=name)
            ax.fill_between(q, mean - ci, mean + ci, color=line.get_color(), alpha=0.2)
    axes[0][0].set(xlabel="queries", ylabel="report metric of the incumbent", title=result["problem"])
    if has_regret:
        axes[0][1].set(
            xlabel="queries", ylabel="regret", yscale="symlog", title=f"{len(result['seeds'])} seeds, 95% CI"
        )
        axes[0][1].set_yscale("symlog", linthresh=1e-2)
    axes[0][0].legend()
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def plot_alphas(epochs: list[dict], path: str | Path) -> None:
    """Softmaxed architecture weights per operation (mean over edges) against epochs, one panel per cell type.

    ``epochs``: [{"epoch": e, "normal": {op: weight}, "reduce": {op: weight}}, ...].
    """
    plt = _pyplot()
    kinds = [k for k in ("normal", "reduce") if epochs and k in epochs[0]]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), squeeze=False)
    x = [e["epoch"] for e in epochs]
    for ax, kind in zip(axes[0], kinds):
        for op in epochs[0][kind]:
            ax.plot(x, [e[kind][op] for e in epochs], label=op)
        ax.set(xlabel="epoch", ylabel="mean softmax weight over edges", title=f"{kind} cell")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
