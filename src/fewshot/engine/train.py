"""One meta-training loop for every algorithm.

Adam/SGD with a warmup + constant/cosine/linear/step schedule (``optimizers.py``), gradient clipping, bfloat16
autocast (``amp``, ``precision.py``), compiled per-task functions where they pay (``compile``),
validation on a fixed set of episodes, best-checkpoint selection, early stopping, exact resume
(``last/`` is saved every ``val_every`` steps, validated or not, so a killed run loses at most
``val_every`` steps), Ctrl-C or SIGTERM saves and exits cleanly, metrics to ``metrics.jsonl``
(and TensorBoard), and a meta-batch split over ``torchrun`` processes.

Run folder::

    config.json  metrics.jsonl  result.json
    checkpoint/  the deployable weights (best validation, else last)
    last/        resumable state: weights, optimizer, scheduler, RNG states, step
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fewshot.algorithms.base import Algorithm
from fewshot.algorithms.spec import LearnerSpec
from fewshot.data.episode import Episode
from fewshot.engine import distributed as D
from fewshot.engine import runs
from fewshot.engine.batches import BatchSource, batch_source
from fewshot.engine.checkpoint import (
    CheckpointError,
    finish_swap,
    load_state,
    read_checkpoint,
    read_training_state,
    save_checkpoint,
)
from fewshot.engine.config import TrainConfig
from fewshot.engine.devices import resolve_device, to_device
from fewshot.engine.evaluate import EvalResult, evaluate
from fewshot.engine.learners import checkpoint_metadata
from fewshot.engine.memory import keep_freed_memory
from fewshot.engine.optimizers import lr_factor, make_optimizer
from fewshot.engine.precision import autocast_enabled, compile_tasks
from fewshot.engine.signals import stop_on_signals
from fewshot.engine.tracking import Progress, RunLogger


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool
    best_step: int | None
    best_val: float | None
    test: EvalResult | None
    writer: bool = True  # False on the torchrun processes other than rank 0
    finished_before: bool = False  # a resume of a run that had nothing left to do: nothing was trained or written


class Trainer:
    """Meta-trains ``algorithm`` on batches of ``train`` (a ``BatchSource``, or a labelled dataset or task
    family to draw episodes from, see ``engine.batches``) as ``config`` says.

    ``spec`` (the ``LearnerSpec`` of ``algorithm``) goes into every checkpoint so that
    evaluate, predict and serve can rebuild the learner. A folder that
    already holds a run is refused unless ``resume`` (continue it) or ``overwrite``
    (replace it); ``config.out = None`` trains into a new folder linked as ``runs/latest``.
    Under torchrun, a restart of the same job (``--max-restarts``) finds the ``last/`` it saved and
    continues from there by itself (``runs.continues_after_restart``).
    """

    def __init__(
        self,
        config: TrainConfig,
        algorithm: Algorithm,
        train: BatchSource | Any,
        val_data=None,
        test_data=None,
        *,
        spec: LearnerSpec | None = None,
        transform=None,
        resume: bool = False,
        overwrite: bool = False,
    ):
        self.link_latest = config.out is None and not resume
        if config.out is None:  # a new folder, or the latest run's for a resume
            out = (runs.RUNS / runs.LATEST).resolve() if resume else runs.new_run_dir(config)
            config = config.replace(out=str(out))
        for folder in ("last", "checkpoint"):  # a kill mid-save leaves the previous version aside: put it back
            finish_swap(Path(str(config.out)) / folder)
        if not resume and runs.continues_after_restart(Path(str(config.out))):  # torchrun re-ran this command
            config, resume = runs.resume_config(config.out, config.to_dict()), True
        self.config, self.spec, self.transform = config, spec, transform
        self.run_dir = Path(str(config.out))
        if resume and not (self.run_dir / "last").is_dir():
            raise CheckpointError(
                f"{self.run_dir}: no saved state to resume from (last/ is saved every val_every steps); "
                "train it again with --overwrite"
            )
        if not resume and not overwrite and runs.holds_run(self.run_dir):
            raise ValueError(
                f"{self.run_dir} holds a run; continue it with --resume --out {self.run_dir}, "
                "or pass --overwrite to replace it"
            )
        self.device = resolve_device(config.device)
        self.world = D.init_world(str(self.device))
        if self.device.type == "cuda" and self.world.size > 1:
            self.device = torch.device("cuda", self.world.local_rank)
        if config.meta_batch % self.world.size:
            raise ValueError(f"meta_batch {config.meta_batch} does not split over {self.world.size} processes")
        if config.keep_freed_memory and self.device.type == "cpu":
            keep_freed_memory()
        torch.manual_seed(config.seed)
        self.algorithm = algorithm.to(self.device)
        if config.channels_last and getattr(algorithm, "channels_last", True):
            self.algorithm.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # 4-d tensors only
        self.amp = autocast_enabled(config.amp, self.algorithm, self.device)
        if compile_tasks(config.compile, self.algorithm, self.device, config.steps):
            getattr(self.algorithm, "compile_tasks")()  # noqa: B009 (the gradient learners')
        train, self.val_data, self.test_data = (to_device(d, self.device) for d in (train, val_data, test_data))
        self.batches = batch_source(self.algorithm, train, config)
        self.augment_generator = torch.Generator().manual_seed(config.seed + 1)
        self.optimizer = make_optimizer(config, [p for p in self.algorithm.parameters() if p.requires_grad])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(config, s))
        self.step, self.stale = 0, 0
        self.best_step: int | None = None
        self.best_val: float | None = None
        self.stop_requested = False
        self.best_state: dict | None = None  # weights of the best validation, kept for the final test
        self.log_window: list[dict] = []  # training metrics since the last metrics.jsonl record
        self.train_seconds = 0.0  # wall time of the training loop, over resumes
        self.finished = self.stopped_early = False  # as last saved: the run ended (steps, time or early stop)
        self.finished_before = False  # resumed a run with nothing left to do: fit() trains and writes nothing
        if resume:
            self._restore(self.run_dir / "last")
            self.finished_before = self._nothing_left()
        if not D.agree([resume, self.step, self.finished_before], self.world):
            raise CheckpointError(
                f"{self.run_dir}: the processes found different saved states; a resume or restart on several "
                "machines reads last/ on each: put --out on storage that every node sees at the same path"
            )
        if self.finished_before:
            return
        if self.world.is_writer:
            if overwrite and not resume:
                runs.clear_run(self.run_dir)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config.save(self.run_dir / "config.json")
            if self.link_latest:
                runs.link_latest(self.run_dir)
            if runs.torchrun_id() and not resume:  # a restart before the first save continues from step 0
                self._save_last()
        self.logger = RunLogger(
            self.run_dir,
            writer=self.world.is_writer,
            tensorboard=config.tensorboard,
            resume_step=self.step if resume else None,
        )

    # -- one step -------------------------------------------------------------------------
    def train_step(self, batch: Episode | tuple[Tensor, Tensor] | Any) -> dict[str, float]:
        """One meta-update on an ``Episode`` (split over processes), a supervised ``(x, y)`` batch
        (``supervised_loss``), or any other batch the algorithm's ``meta_loss`` takes."""
        self.algorithm.train()
        amp = self.amp
        if isinstance(batch, Episode):
            episode = batch.split(self.world.size)[self.world.rank] if self.world.size > 1 else batch
            episode = episode.to(self.device, non_blocking=True)
            if self.transform is not None:
                from fewshot.data.transforms import augment_episode

                episode = augment_episode(episode, self.transform, self.augment_generator)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                loss, metrics = self.algorithm.meta_loss(episode)
        elif isinstance(batch, tuple):
            x, y = (t.tensor_split(self.world.size)[self.world.rank].to(self.device) for t in batch)
            if self.transform is not None:
                x = self.transform(x, self.augment_generator)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                loss, metrics = getattr(self.algorithm, "supervised_loss")(x, y)  # noqa: B009 (FineTune's)
        else:  # tasks of another kind (rollouts, optimizees): the algorithm's own meta-batch
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                loss, metrics = self.algorithm.meta_loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"meta-loss became {float(loss)} at step {self.step}; lower lr or clip gradients")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        D.average_gradients(self.algorithm, self.world)
        if self.config.grad_clip:
            metrics["grad_norm"] = float(nn.utils.clip_grad_norm_(self.algorithm.parameters(), self.config.grad_clip))
        self.optimizer.step()
        self.scheduler.step()
        D.sync_buffers(self.algorithm, self.world)
        metrics = {k: float(v) for k, v in metrics.items()}
        return {**D.mean_metrics(metrics, self.world), "lr": float(self.scheduler.get_last_lr()[0])}

    # -- the loop -------------------------------------------------------------------------
    def fit(self, callback=None) -> TrainResult:
        """Train to ``config.steps``; ``callback(step, metrics)`` runs after every step."""
        c = self.config
        if self.finished_before:
            best = (self.best_step, self.best_val)
            return TrainResult(self.run_dir, self.step, False, *best, None, self.world.is_writer, finished_before=True)
        progress = Progress(self.step, c.steps, quiet=c.quiet, every=c.log_every * 10, enabled=self.world.is_writer)
        interrupted, window = False, self.log_window
        started = time.monotonic() - self.train_seconds
        restore = stop_on_signals(self)
        try:
            while self.step < c.steps and not self._stop_agreed():
                metrics = self.train_step(self.batches.next())
                self.step += 1
                window.append(metrics)
                progress.update(self.step, metrics)
                out_of_time = self._out_of_time(started)
                last = self.step == c.steps or out_of_time
                if self.step % c.log_every == 0 or last:  # the mean since the last record
                    self.logger.log(self.step, "train", {k: sum(m[k] for m in window) / len(window) for k in metrics})
                    window.clear()
                if self.step % c.val_every == 0 or last:
                    if self.val_data is not None and self._validate(progress):
                        progress.note(f"early stop at step {self.step}: no improvement in {c.patience} validations")
                        self.stopped_early = True
                        break
                    if not last:  # a run killed outright resumes from here, validated or not
                        self.train_seconds = time.monotonic() - started
                        self._save_last()
                if out_of_time:
                    progress.note(f"time limit of {c.time_limit:g} s reached at step {self.step}")
                    break
                if callback is not None:
                    callback(self.step, metrics)
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, without asking the other processes
            interrupted = True
        finally:
            restore()
            progress.close()
            self.train_seconds = time.monotonic() - started
        interrupted = interrupted or self._stop_agreed()
        if interrupted:
            progress.note(f"interrupted at step {self.step}; saved {self.run_dir / 'last'} (resume with --resume)")
        self._save_last(finished=not interrupted)
        if self.best_step is None:  # no validation data: the last weights are the deployable ones
            self._save_deployable({})
        test = None if interrupted else self._test()
        self.logger.close()
        result = TrainResult(
            self.run_dir, self.step, interrupted, self.best_step, self.best_val, test, writer=self.world.is_writer
        )
        if self.world.is_writer and not interrupted:  # a finished run, with or without a test split
            summary = {
                "step": self.step,
                "best_step": self.best_step,
                "best_val": self.best_val,
                "train_seconds": self.train_seconds,
                "amp": self.amp,  # whether it trained under bfloat16 autocast (``amp`` is auto by default)
                "test": None if test is None else test.to_dict(),
            }
            (self.run_dir / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
        return result

    def _stop_agreed(self) -> bool:
        """Whether a stop was asked (a signal, a callback) on any process, so that all stop at the same step."""
        self.stop_requested = D.any_rank(self.stop_requested, self.world)
        return self.stop_requested

    def _nothing_left(self) -> bool:
        """Whether a resumed run has finished and the resume gives it no more steps or time."""
        c = self.config
        out_of_time = c.time_limit is not None and self.train_seconds >= c.time_limit
        return self.finished and (self.stopped_early or self.step >= c.steps or out_of_time)

    def _out_of_time(self, started: float) -> bool:
        """Whether the time limit has passed (on any process, so that all stop at the same step)."""
        limit = self.config.time_limit
        return limit is not None and D.any_rank(time.monotonic() - started >= limit, self.world)

    def _validate(self, progress: Progress) -> bool:
        """Validate, keep the best checkpoint; True when early stopping should stop the run."""
        c = self.config
        ways, shots, queries = c.eval_shape
        res = evaluate(
            self.algorithm,
            self.val_data,
            ways,
            shots,
            queries,
            episodes=c.val_episodes,
            seed=c.seed + 10_000,
            device=self.device,
        )
        self.logger.log(self.step, "val", {res.metric: res.mean, "ci95": res.ci95})
        better = self.best_val is None or (
            res.mean > self.best_val if res.metric == "accuracy" else res.mean < self.best_val
        )
        progress.note(f"step {self.step}: validation {res}{' (best)' if better else ''}")
        if better:
            self.best_step, self.best_val, self.stale = self.step, res.mean, 0
            self.best_state = {k: v.detach().clone() for k, v in self.algorithm.state_dict().items()}
            self._save_deployable({"val": {res.metric: res.mean, "ci95": res.ci95, "step": self.step}})
        else:
            self.stale += 1
        return c.patience is not None and self.stale >= c.patience

    def _test(self) -> EvalResult | None:
        if self.test_data is None or self.config.test_episodes == 0:
            return None
        if self.best_state is not None and self.best_step != self.step:
            self.algorithm.load_state_dict(self.best_state)
        ways, shots, queries = self.config.eval_shape
        res = evaluate(
            self.algorithm,
            self.test_data,
            ways,
            shots,
            queries,
            episodes=self.config.test_episodes,
            seed=self.config.seed + 20_000,
            device=self.device,
        )
        self.logger.log(self.step, "test", {res.metric: res.mean, "ci95": res.ci95, "episodes": res.episodes})
        if self.world.is_writer:
            meta = self._metadata({"test": res.to_dict() | {"per_episode": None}})
            save_checkpoint(self.run_dir / "checkpoint", self.algorithm.state_dict(), meta)
        return res

    # -- checkpoints ----------------------------------------------------------------------
    def _metadata(self, metrics: dict) -> dict:
        return checkpoint_metadata(self.spec, self.config, self.step, metrics)

    def _save_deployable(self, metrics: dict) -> None:
        if self.world.is_writer:
            save_checkpoint(self.run_dir / "checkpoint", self.algorithm.state_dict(), self._metadata(metrics))

    def _save_last(self, finished: bool = False) -> None:
        if not self.world.is_writer:
            return
        state: dict[str, Any] = {
            "step": self.step,
            "finished": finished,
            "stopped_early": self.stopped_early,
            "best_step": self.best_step,
            "best_val": self.best_val,
            "stale": self.stale,
            "log_window": self.log_window,
            "train_seconds": self.train_seconds,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler_rng": self.batches.generator.get_state(),
            "augment_rng": self.augment_generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "elastic_run_id": runs.torchrun_id(),  # a torchrun restart of this job continues from here
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        save_checkpoint(self.run_dir / "last", self.algorithm.state_dict(), self._metadata({}), training_state=state)

    def _restore(self, path: Path) -> None:
        _, weights = read_checkpoint(path)
        state = read_training_state(path)
        load_state(self.algorithm, weights, path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: optimizer state does not fit this run ({e})") from None
        self.scheduler.load_state_dict(state["scheduler"])
        self.batches.generator.set_state(state["sampler_rng"])
        self.augment_generator.set_state(state["augment_rng"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step, self.best_step, self.best_val, self.stale = (
            state["step"],
            state["best_step"],
            state["best_val"],
            state["stale"],
        )
        self.log_window = state["log_window"]
        self.train_seconds = state.get("train_seconds", 0.0)
        self.finished = state.get("finished", (self.run_dir / "result.json").exists())  # older runs: result.json
        self.stopped_early = state.get("stopped_early", False)
        if self.best_step is not None:
            self.best_state = read_checkpoint(self.run_dir / "checkpoint")[1]
