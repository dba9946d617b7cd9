"""Run tracking: ``metrics.jsonl``, TensorBoard when installed, a progress bar or log lines."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

log = logging.getLogger("fewshot")

METRICS = "metrics.jsonl"


class RunLogger:
    """Appends ``{"step", "split", **metrics}`` records; only the writing process writes."""

    def __init__(self, run_dir: Path, *, writer: bool = True, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS
        self.writer = writer
        self.board = None
        if not writer:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            self._truncate_after(resume_step)
        elif self.path.exists():
            self.path.unlink()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # optional extra: pip install "fewshot[tensorboard]"
                log.info("tensorboard is not installed; metrics go to %s only", self.path)
            else:
                self.board = SummaryWriter(str(self.path.parent / "tensorboard"), purge_step=resume_step)

    def _truncate_after(self, step: int) -> None:
        """On resume, drop records the interrupted run wrote after its last checkpoint."""
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, step: int, split: str, metrics: dict) -> None:
        if not self.writer:
            return
        record = {"step": step, "split": split, **metrics, "time": round(time.time(), 3)}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.board is not None:
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.board.add_scalar(f"{split}/{name}", value, step)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def read_metrics(run_dir) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics here; is {run_dir} a fewshot run folder?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Progress:
    """A tqdm bar with ETA and live metrics, or (quiet) a log line every ``every`` steps."""

    def __init__(self, start: int, total: int, *, quiet: bool, every: int = 50, enabled: bool = True):
        self.quiet, self.every, self.enabled, self.total = quiet, max(1, every), enabled, total
        self.bar = None
        if enabled and not quiet:
            self.bar = tqdm(
                total=total,
                initial=start,
                desc="meta-train",
                unit="step",
                dynamic_ncols=True,
                mininterval=0.1 if sys.stderr.isatty() else 5.0,
            )  # logs to a file: a line per 5 s

    def update(self, step: int, metrics: dict) -> None:
        if self.bar is not None:
            self.bar.update(1)
            shown = {k: f"{v:.3f}" for k, v in metrics.items() if k in ("loss", "accuracy", "mse")}
            self.bar.set_postfix(shown, refresh=False)  # drawn at the bar's own pace
        elif self.enabled and step % self.every == 0:
            text = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            log.info("step %d/%d %s", step, self.total, text)

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            log.info(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
