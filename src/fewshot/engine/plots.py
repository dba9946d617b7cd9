"""Learning curves of a run folder as a PNG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

from fewshot.engine.tracking import read_metrics


def plot_run(run_dir, out: str | Path | None = None) -> Path:
    """Training loss and accuracy, and validation accuracy with its 95% band -> ``curves.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    if not train:
        raise ValueError(f"{run_dir}: metrics.jsonl holds no training records to plot")
    score = "accuracy" if "accuracy" in train[0] else "mse"
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    ax_loss.set(title="meta-training loss", xlabel="step", ylabel="loss")
    ax_score.plot([r["step"] for r in train], [r[score] for r in train], lw=1, alpha=0.6, label=f"train {score}")
    if val:
        steps, mean, ci = [r["step"] for r in val], [r[score] for r in val], [r["ci95"] for r in val]
        ax_score.plot(steps, mean, marker="o", label=f"validation {score}")
        ax_score.fill_between(
            steps, [m - c for m, c in zip(mean, ci)], [m + c for m, c in zip(mean, ci)], alpha=0.25, label="95% CI"
        )
    ax_score.set(title=score, xlabel="step", ylabel=score)
    ax_score.legend()
    for ax in (ax_loss, ax_score):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
