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

With ``per_step_bn`` (MAML++), every BatchNorm layer takes a weight and bias per inner step, and
under ``"running"`` running statistics per step: a training-mode ``meta_loss`` normalises with the
batch's statistics and moves each step's running statistics towards them (one momentum step per
meta-step, towards the mean over the episode's tasks); ``adapt`` and an eval-mode ``meta_loss``
normalise with them. Under ``"batch"`` there are no statistics to keep.

The MAML++ options (``lslr``, ``multi_step_loss``, ``second_order_from``, ``per_step_bn``; see
``mamlpp.py``) are all off by default, and then change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot.algorithms.base import Algorithm, Predictor, backbone_for, checked_options
from fewshot.algorithms.gradient.mamlpp import PerStepNorm, msl_weights
from fewshot.algorithms.spec import LearnerSpec
from fewshot.data.episode import Episode
from fewshot.functional import TaskBatcher, bn_eval, call, detach, functional_buffers, inner_loop
from fewshot.functional.batching import resolve_mode
from fewshot.functional.inner_loop import StepCallback
from fewshot.functional.norm import DecomposedBatchNorm
from fewshot.functional.params import BN_MODES, Params
from fewshot.optim.inner import InnerOptimizer, PerStepRates, get_inner_optimizer

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

    MAML++ (Antoniou et al., 2019), each off by default:

    lslr: learn one inner rate per adapted tensor and per inner step, initialised to ``inner_lr``
        (``fewshot.optim.PerStepRates``, saved as ``inner_opt.lrs.*``); ``adapt`` with more steps than
        ``inner_steps`` reuses the last step's rates.
    multi_step_loss: the outer loss of a training meta-step is the weighted sum of the query losses
        after every inner step, with weights annealed from uniform to the last step's over this many
        meta-steps (``mamlpp.msl_weights``); from then on, and outside training, the last step's alone.
    second_order_from: derivative-order annealing: training meta-steps before this one are first order,
        the later ones second order.
    per_step_bn: a BatchNorm weight and bias per inner step (and running statistics per step under
        ``bn="running"``) in place of each layer's own, learned by the outer loop only (see the module
        docstring); steps past ``inner_steps`` reuse the last step's.

    The annealing options count training meta-steps (``meta_loss`` calls in training mode) in the buffer
    ``meta_step``, saved with the weights, so that a resumed run continues the schedule exactly.
    """

    # Second-order conv backward measured slower channels-last on CPU (7.3 vs 7.9 tasks/s,
    # benchmarks/maml_speed.py), unlike the metric learners' plain backward (1.3-1.75x faster).
    channels_last = False
    fixed_ways = True
    meta_step: Tensor  # training meta-steps taken (a buffer, with multi_step_loss or second_order_from)

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
        lslr: bool = False,
        multi_step_loss: int | None = None,
        second_order_from: int | None = None,
        per_step_bn: bool = False,
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
        for name, value in (("multi_step_loss", multi_step_loss), ("second_order_from", second_order_from)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer (meta-steps) or None, got {value!r}")
        if (lslr or multi_step_loss is not None) and inner_steps < 1:
            raise ValueError("lslr and multi_step_loss need inner_steps >= 1")
        if second_order_from is not None and first_order:
            raise ValueError("second_order_from anneals from first to second order; it does not go with first_order")
        if lslr and inner_opt is not None:
            raise ValueError("lslr is the inner optimizer (learned per-step rates); do not pass inner_opt with it")
        self.model = model
        self.inner_lr, self.inner_steps, self.first_order = float(inner_lr), inner_steps, first_order
        self.task, self.bn, self.task_batching = task, bn, task_batching
        self.adapt_steps, self.zero_head, self.adapt_norm = adapt_steps, zero_head, adapt_norm
        self.outer_only = set() if adapt_norm else _norm_parameters(model)
        self.step_norm = PerStepNorm(model, inner_steps, statistics=bn == "running") if per_step_bn else None
        if self.step_norm is not None:  # the layers' own weights and biases give way to the per-step ones
            self.outer_only |= self.step_norm.names()
        if lslr:
            inner_opt = PerStepRates(self.fast_parameters(), self.inner_lr, inner_steps)
        self.inner_opt = get_inner_optimizer(inner_opt, self.inner_lr)  # a module registers as a submodule
        self.lslr, self.multi_step_loss, self.second_order_from = lslr, multi_step_loss, second_order_from
        self.anneals = multi_step_loss is not None or second_order_from is not None
        if self.anneals:
            self.register_buffer("meta_step", torch.zeros((), dtype=torch.long))  # training meta-steps taken
        self._batcher = TaskBatcher(self._task, num_shared=1, mode=task_batching, compile=compile)

    def compile_tasks(self, options: bool | dict = True) -> None:
        """From now on run the per-task function through ``torch.compile`` (the ``compile`` option,
        switched on after construction, as the trainer does where it pays), or eagerly again with
        ``False``: the same values; the first compiled call compiles."""
        wanted = ({} if options is True else dict(options)) if options else None  # None: eager
        if self._batcher.compile_options != wanted:
            self._batcher = TaskBatcher(self._task, num_shared=1, mode=self.task_batching, compile=options)

    def compile_pays(self) -> bool:
        """Whether compiling is measured to pay for this learner's training steps (see
        ``MAML.compile_pays``); the trainer's ``compile`` setting compiles by default where it does."""
        return False

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
        norm = {} if self.step_norm is None else {"norm": self.step_norm.own(detached), "norm_statistics": False}
        return {
            "fast": fast,
            "slow": slow,
            "buffers": functional_buffers(self.model, self.bn),
            **norm,
            **self._extra_state(detached),
        }

    def _schedule(self) -> dict[str, Any]:
        """This meta-step's MAML++ settings for ``_task``: in training, the derivative order
        (``first_order``), the multi-step loss weights (``step_weights``) and whether to record
        per-step BatchNorm statistics (``record_norm``); outside training, the running statistics
        per step where kept (``norm_statistics``)."""
        out: dict[str, Any] = {}
        if self.step_norm is not None:
            kept = self.step_norm.statistics
            out["norm_statistics" if not self.training else "record_norm"] = kept
        if not self.training or not self.anneals:
            return out
        t = int(self.meta_step)
        if self.second_order_from is not None:
            out["first_order"] = t < self.second_order_from
        if self.multi_step_loss is not None and t < self.multi_step_loss:
            out["step_weights"] = msl_weights(self.inner_steps, t / self.multi_step_loss)
        return out

    def _advance(self, out: Mapping[str, Any]) -> None:
        """After a training meta-step: count it, and move the per-step BatchNorm statistics."""
        if not self.training:
            return
        if self.anneals:
            self.meta_step += 1
        if self.step_norm is not None and "norm_mean" in out:
            self.step_norm.update(
                {k: v.mean(0) for k, v in out["norm_mean"].items()}, {k: v.mean(0) for k, v in out["norm_var"].items()}
            )

    def _norm(self, state: Mapping[str, Any], step: int) -> tuple[Params, dict]:
        """Per-step BatchNorm parameters and buffers at inner step ``step`` (nothing without ``per_step_bn``)."""
        if self.step_norm is None:
            return {}, {}
        return self.step_norm.at_step(state["norm"], step, state["norm_statistics"])

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
        on_step: StepCallback | None = None,
    ) -> tuple[Params, Tensor, Any]:
        """Adapt ``fast`` on one task's embedded support ``z`` [M, ...], labels ``y`` [M] (in minibatches
        of ``batch_size`` rows): the adapted parameters, the loss before each step [steps] and the
        inner optimizer's final state. ``on_step(i, params)`` sees the parameters after step ``i``."""
        slow, buffers = state["slow"], state["buffers"]

        def support_loss(f: Params, z: Tensor, y: Tensor) -> Tensor:
            return self._loss(self._predict({**slow, **f}, buffers, z), y)

        def support_loss_at(f: Params, z: Tensor, y: Tensor, step: int) -> Tensor:  # per-step BatchNorm
            norm, norm_buffers = self._norm(state, step)
            return self._loss(self._predict({**slow, **f, **norm}, {**buffers, **norm_buffers}, z), y)

        return inner_loop(
            support_loss if self.step_norm is None else support_loss_at,
            fast,
            z,
            y,
            steps=steps,
            optimizer=self._optimizer(state),
            first_order=first_order,
            engine=state.get("grad_engine", "func"),
            batch_size=batch_size,
            return_state=True,
            pass_step=self.step_norm is not None,
            on_step=on_step,
        )

    def _task(self, state: Mapping[str, Any], sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> dict[str, Tensor]:
        """One task (sx [N*K, ...], sy [N*K], qx [N*Q, ...], qy [N*Q]) -> ``loss``, ``score``,
        ``support_before``, ``support_after`` and the query ``logits``: each method's own maths."""
        raise NotImplementedError

    def _run(self, episode: Episode, state: Mapping[str, Any] | None = None) -> dict[str, Tensor]:
        """``_task`` over the episode's task axis; every output gets a leading [B]."""
        state = {**self._state(), **self._schedule()} if state is None else state
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

    def _adapt_steps(self, steps: int | None) -> int:
        return steps if steps is not None else self.adapt_steps if self.adapt_steps is not None else self.inner_steps

    def adapted_params(self, support_x: Tensor, support_y: Tensor, steps: int | None = None) -> Params:
        """All of the model's parameters after the inner loop on one task (support_x
        [N*K, ...], support_y [N*K]), detached; the ones the inner loop does not adapt
        are the module's own tensors (detached views). ``steps`` defaults to
        ``adapt_steps`` or ``inner_steps``. Works under ``torch.no_grad``. With ``per_step_bn``
        the BatchNorm weights and biases are the last step's (its statistics: :meth:`adapt`)."""
        steps = self._adapt_steps(steps)
        state = {**self._state(detached=True), "grad_engine": "autograd"}
        if self.step_norm is not None:
            state["norm_statistics"] = self.step_norm.statistics
        buffers, slow = state["buffers"], state["slow"]
        with torch.enable_grad(), self._bn_mode():
            zs = self._embed({**slow, **state["fast"]}, buffers, support_x)
            zs, support_y, batch = self._adapt_data(zs, support_y)
            adapted, _, _ = self._inner(state, state["fast"], zs, support_y, steps, first_order=True, batch_size=batch)
        norm, _ = self._norm(state, steps - 1)
        return {**slow, **detach(adapted), **norm}

    def _adapt_data(self, zs: Tensor, y: Tensor) -> tuple[Tensor, Tensor, int | None]:
        """The embedded support [M, ...] and labels [M] that ``adapt`` trains on, in the
        order its steps take them, and the rows per step (None: all of them)."""
        return zs, y, None

    def adapt(self, support_x: Tensor, support_y: Tensor, steps: int | None = None) -> Predictor:
        """Run the inner loop on one task (support_x [N*K, ...], support_y [N*K]) and return
        ``predictor(query_x [M, ...]) -> logits [M, N]`` over the adapted parameters
        (:meth:`adapted_params`). The module's own parameters are never changed."""
        steps = self._adapt_steps(steps)
        params = self.adapted_params(support_x, support_y, steps)
        buffers = functional_buffers(self.model, self.bn)
        if self.step_norm is not None:  # the last step's running statistics, where kept
            buffers |= self.step_norm.at_step(self.step_norm.own(detached=True), steps - 1, True)[1]

        def predictor(query_x: Tensor) -> Tensor:
            with self._bn_mode():
                return self._predict(params, buffers, self._embed(params, buffers, query_x))

        return predictor

    def extra_repr(self) -> str:
        return (
            f"inner_lr={self.inner_lr}, inner_steps={self.inner_steps}, first_order={self.first_order}, "
            f"task={self.task!r}, bn={self.bn!r}, task_batching={self.task_batching!r}"
            + (", zero_head=True" if self.zero_head else "")
            + (", adapt_norm=False" if not self.adapt_norm else "")
            + (", lslr=True" if self.lslr else "")
            + (f", multi_step_loss={self.multi_step_loss}" if self.multi_step_loss is not None else "")
            + (f", second_order_from={self.second_order_from}" if self.second_order_from is not None else "")
            + (", per_step_bn=True" if self.step_norm is not None else "")
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
