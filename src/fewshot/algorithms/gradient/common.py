"""What every gradient-based meta-learner shares: the functional state, the inner loop on
one task with the inner optimizer it was given, the task axis, the BatchNorm policy,
``adapt`` and the metrics. Each method's own maths (``_task`` and ``meta_loss``: MAML's
inner and outer loop, Reptile's) is in its own file.

BatchNorm (``bn``), the same in ``meta_loss`` and ``adapt``:

- ``"batch"`` (default, the MAML convention): every forward normalises with the
  statistics of the batch it sees - the task's support set in the inner loop, its
  query set for the query predictions (transductive, as in MAML) - whatever the
  module's train/eval mode. The running statistics are handed to
  ``functional_call`` as ``None``, so they are never read nor written; nothing
  in-place happens, which keeps ``vmap`` and ``torch.compile`` happy, and the
  user's module is not modified. Under ``vmap`` these layers run as primitive ops
  (``fewshot.functional.norm``), whose second derivatives are exact there.
- ``"running"``: BatchNorm layers run as in eval mode (normalise with the module's
  running statistics, never update them). Their ``training`` flags are switched off
  for the duration of each call and restored afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot.algorithms.base import Algorithm, Predictor, backbone_for, checked_options
from fewshot.algorithms.spec import LearnerSpec
from fewshot.data.episode import Episode
from fewshot.functional import TaskBatcher, bn_eval, call, detach, functional_buffers, inner_loop
from fewshot.functional.batching import resolve_mode
from fewshot.functional.norm import DecomposedBatchNorm
from fewshot.functional.params import BN_MODES, Params
from fewshot.optim.inner import InnerOptimizer, get_inner_optimizer

TASKS = ("auto", "classification", "regression")


class GradientAlgorithm(Algorithm):
    """Abstract base of MAML, FOMAML, ANIL, Meta-SGD and Reptile.

    model: the network, ``model(x [M, ...]) -> logits [M, N]`` (or values [M, D]).
    inner_lr, inner_steps: the inner loop, plain SGD ``theta - inner_lr * grad`` by default.
    inner_opt: another inner optimizer (``fewshot.optim``): a value such as ``adam(0.01)``, a
        registered name (built with ``inner_lr``), or a module with meta-learned parameters
        (``LearnedRates``, a learned update rule) that the outer loop trains.
    first_order: detach the inner gradients (FOMAML).
    task: ``"classification"`` (cross-entropy, accuracy), ``"regression"`` (MSE) or
        ``"auto"`` (regression when the targets are floats).
    bn: ``"batch"`` or ``"running"`` (see the module docstring).
    task_batching: ``"auto"`` (loop on CPU, vmap on accelerators), ``"vmap"``, ``"loop"``.
    compile: wrap the per-task computation in ``torch.compile`` (``True`` or its options).
    adapt_steps: inner steps at ``adapt`` time (default ``inner_steps``).
    zero_head: start every task's inner loop from a zero linear head (the parameters
        named ``head.*``), the "zeroing trick" of Kao et al. (ICLR 2022): one step from
        zero makes each class's weights its mean support embedding minus the task
        mean, whatever order the labels come in. Not part of the published recipes.
    adapt_norm: adapt the normalisation layers' affine parameters in the inner loop
        (default). ``False`` leaves them to the outer loop, as MAML's reference code does.
    """

    # Second-order conv backward measured slower channels-last on CPU (7.3 vs 7.9 tasks/s,
    # benchmarks/maml_speed.py), unlike the metric learners' plain backward (1.3-1.75x faster).
    channels_last = False
    fixed_ways = True

    @classmethod
    def from_spec(cls, spec: LearnerSpec) -> GradientAlgorithm:
        """The spec's backbone with a head of ``spec.outputs`` units, adapted by this method."""
        options = checked_options(cls, spec, "model", "task")
        return cls(backbone_for(spec, num_classes=spec.outputs), task=spec.task, **options)

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        *,
        first_order: bool = False,
        task: str = "auto",
        bn: str = "batch",
        task_batching: str = "auto",
        compile: bool | dict = False,
        adapt_steps: int | None = None,
        zero_head: bool = False,
        adapt_norm: bool = True,
        inner_opt: str | InnerOptimizer | nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(inner_steps, int) or inner_steps < 0:
            raise ValueError(f"inner_steps must be a non-negative integer, got {inner_steps!r}")
        if adapt_steps is not None and (not isinstance(adapt_steps, int) or adapt_steps < 0):
            raise ValueError(f"adapt_steps must be a non-negative integer or None, got {adapt_steps!r}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if bn not in BN_MODES:
            raise ValueError(f"bn must be one of {BN_MODES}, got {bn!r}")
        resolve_mode(task_batching, "cpu")
        if zero_head and not any(_in_head(k) for k, _ in model.named_parameters()):
            raise ValueError("zero_head needs a linear head: parameters named head.weight / head.bias")
        self.model = model
        self.inner_lr, self.inner_steps, self.first_order = float(inner_lr), inner_steps, first_order
        self.task, self.bn, self.task_batching = task, bn, task_batching
        self.adapt_steps, self.zero_head = adapt_steps, zero_head
        self.outer_only = set() if adapt_norm else _norm_parameters(model)
        self.inner_opt = get_inner_optimizer(inner_opt, self.inner_lr)  # a module registers as a submodule
        self._batcher = TaskBatcher(self._task, num_shared=1, mode=task_batching, compile=compile)

    # -- pieces subclasses override -------------------------------------------------

    def _is_fast(self, name: str) -> bool:
        """Whether parameter ``name`` is adapted in the inner loop (default: all)."""
        return True

    def _optimizer(self, state: Mapping[str, Any]) -> InnerOptimizer:
        """The inner optimizer for one task; a learned one gets its parameters from ``state``."""
        if isinstance(self.inner_opt, nn.Module):
            return self.inner_opt.functional(state["inner_opt"])  # type: ignore[operator]  # see fewshot.optim
        return self.inner_opt

    def fast_parameters(self) -> dict[str, Tensor]:
        """The model's parameters that the inner loop adapts."""
        return {
            k: p
            for k, p in self.model.named_parameters()
            if p.requires_grad and self._is_fast(k) and k not in self.outer_only
        }

    def _embed(self, params: Params, buffers: Mapping, x: Tensor) -> Tensor:
        """The part of the forward that the inner loop never changes (default: none)."""
        return x

    def _predict(self, params: Params, buffers: Mapping, z: Tensor) -> Tensor:
        """The rest of the forward, from ``_embed``'s output to logits."""
        return call(self.model, params, buffers, z)

    def _extra_state(self, detached: bool) -> dict[str, Any]:
        if not isinstance(self.inner_opt, nn.Module):
            return {}
        own = dict(self.inner_opt.named_parameters())
        return {"inner_opt": detach(own) if detached else own}

    # -- the functional core ----------------------------------------------------------

    def _state(self, detached: bool = False) -> dict[str, Any]:
        """Everything a task needs besides its data: trainable and frozen parameters,
        buffers under the BatchNorm policy, a learned inner optimizer's parameters, and extras."""
        params: dict[str, Tensor] = dict(self.model.named_parameters())
        fast = self.fast_parameters()
        if not fast:
            raise ValueError(f"{type(self).__name__}: no trainable parameters to adapt in the inner loop")
        slow = {k: p for k, p in params.items() if k not in fast}
        if self.zero_head:  # p * 0 keeps each tensor's graph, dtype and device
            fast = {k: p * 0 if _in_head(k) else p for k, p in fast.items()}
        if detached:
            fast, slow = detach(fast), detach(slow)
        return {
            "fast": fast,
            "slow": slow,
            "buffers": functional_buffers(self.model, self.bn),
            **self._extra_state(detached),
        }

    def _bn_mode(self):
        return bn_eval(self.model, enabled=self.bn == "running")

    def _regression(self, y: Tensor) -> bool:
        return self.task == "regression" or (self.task == "auto" and y.is_floating_point())

    def _loss(self, prediction: Tensor, y: Tensor) -> Tensor:
        if self._regression(y):
            if prediction.numel() != y.numel():
                raise ValueError(
                    f"regression targets {tuple(y.shape)} do not match predictions {tuple(prediction.shape)}"
                )
            return F.mse_loss(prediction, y.reshape(prediction.shape).to(prediction.dtype))
        return F.cross_entropy(prediction, y)

    def _score(self, prediction: Tensor, y: Tensor) -> Tensor:
        """Accuracy (classification) or MSE (regression), detached."""
        prediction = prediction.detach()
        if self._regression(y):
            return F.mse_loss(prediction, y.reshape(prediction.shape).to(prediction.dtype))
        return (prediction.argmax(-1) == y).to(prediction.dtype).mean()

    def _inner(
        self,
        state: Mapping[str, Any],
        fast: Params,
        z: Tensor,
        y: Tensor,
        steps: int,
        first_order: bool,
        batch_size: int | None = None,
    ) -> tuple[Params, Tensor, Any]:
        """Adapt ``fast`` on one task's embedded support ``z`` [M, ...], labels ``y`` [M] (in minibatches
        of ``batch_size`` rows): the adapted parameters, the loss before each step [steps] and the
        inner optimizer's final state."""
        slow, buffers = state["slow"], state["buffers"]

        def support_loss(f: Params, z: Tensor, y: Tensor) -> Tensor:
            return self._loss(self._predict({**slow, **f}, buffers, z), y)

        return inner_loop(
            support_loss,
            fast,
            z,
            y,
            steps=steps,
            optimizer=self._optimizer(state),
            first_order=first_order,
            engine=state.get("grad_engine", "func"),
            batch_size=batch_size,
            return_state=True,
        )

    def _task(self, state: Mapping[str, Any], sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> dict[str, Tensor]:
        """One task (sx [N*K, ...], sy [N*K], qx [N*Q, ...], qy [N*Q]) -> ``loss``, ``score``,
        ``support_before``, ``support_after`` and the query ``logits``: each method's own maths."""
        raise NotImplementedError

    def _run(self, episode: Episode, state: Mapping[str, Any] | None = None) -> dict[str, Tensor]:
        """``_task`` over the episode's task axis; every output gets a leading [B]."""
        state = self._state() if state is None else state
        vmapped = resolve_mode(self.task_batching, episode.support_x.device) == "vmap"
        if not vmapped and self._batcher.compile_options is None:
            state = {**state, "grad_engine": "autograd"}  # same values, less overhead in an eager loop
        with self._bn_mode(), DecomposedBatchNorm() if vmapped and self.bn == "batch" else nullcontext():
            return self._batcher(state, episode.support_x, episode.support_y, episode.query_x, episode.query_y)

    def _metrics(self, out: Mapping[str, Tensor], y: Tensor, **extra: Tensor) -> dict[str, float]:
        names = {
            "loss": out["loss"],
            "mse" if self._regression(y) else "accuracy": out["score"],
            "support_loss_before": out["support_before"],
            "support_loss_after": out["support_after"],
        }
        names.update(extra)
        values = torch.stack([v.detach().float().mean() for v in names.values()]).tolist()
        return dict(zip(names, values))

    # -- the Algorithm interface --------------------------------------------------------

    def query_predictions(self, episode: Episode) -> Tensor:
        """The query logits [B, N*Q, N] at the adapted parameters, as ``meta_loss`` sees them."""
        return self._run(episode)["logits"]

    def adapted_params(self, support_x: Tensor, support_y: Tensor, steps: int | None = None) -> Params:
        """All of the model's parameters after the inner loop on one task (support_x
        [N*K, ...], support_y [N*K]), detached; the ones the inner loop does not adapt
        are the module's own tensors (detached views). ``steps`` defaults to
        ``adapt_steps`` or ``inner_steps``. Works under ``torch.no_grad``."""
        steps = steps if steps is not None else self.adapt_steps if self.adapt_steps is not None else self.inner_steps
        state = {**self._state(detached=True), "grad_engine": "autograd"}
        buffers, slow = state["buffers"], state["slow"]
        with torch.enable_grad(), self._bn_mode():
            zs = self._embed({**slow, **state["fast"]}, buffers, support_x)
            zs, support_y, batch = self._adapt_data(zs, support_y)
            adapted, _, _ = self._inner(state, state["fast"], zs, support_y, steps, first_order=True, batch_size=batch)
        return {**slow, **detach(adapted)}

    def _adapt_data(self, zs: Tensor, y: Tensor) -> tuple[Tensor, Tensor, int | None]:
        """The embedded support [M, ...] and labels [M] that ``adapt`` trains on, in the
        order its steps take them, and the rows per step (None: all of them)."""
        return zs, y, None

    def adapt(self, support_x: Tensor, support_y: Tensor, steps: int | None = None) -> Predictor:
        """Run the inner loop on one task (support_x [N*K, ...], support_y [N*K]) and return
        ``predictor(query_x [M, ...]) -> logits [M, N]`` over the adapted parameters
        (:meth:`adapted_params`). The module's own parameters are never changed."""
        params = self.adapted_params(support_x, support_y, steps)
        buffers = functional_buffers(self.model, self.bn)

        def predictor(query_x: Tensor) -> Tensor:
            with self._bn_mode():
                return self._predict(params, buffers, self._embed(params, buffers, query_x))

        return predictor

    def extra_repr(self) -> str:
        return (
            f"inner_lr={self.inner_lr}, inner_steps={self.inner_steps}, first_order={self.first_order}, "
            f"task={self.task!r}, bn={self.bn!r}, task_batching={self.task_batching!r}"
            + (", zero_head=True" if self.zero_head else "")
            + (", adapt_norm=False" if self.outer_only else "")
        )


def _in_head(name: str) -> bool:
    return name.startswith("head.")


NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _norm_parameters(model: nn.Module) -> set[str]:
    """Names of the normalisation layers' parameters in ``model``."""
    return {
        f"{name}.{p}" if name else p
        for name, m in model.named_modules()
        if isinstance(m, NORMS)
        for p, _ in m.named_parameters(recurse=False)
    }
