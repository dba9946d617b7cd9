"""MAML (Finn et al., 2017) and first-order MAML, read top to bottom.

Per task, the inner loop adapts the shared initialisation ``theta`` on the support set with
the inner optimizer (plain SGD ``theta - inner_lr * grad`` by default); the outer loss is the
query loss at the adapted parameters, averaged over the episode's tasks and differentiated
through the inner loop: exactly (second order), or with the inner gradients detached
(first order). The machinery shared with the other gradient methods (the functional state,
BatchNorm policy, task axis, ``adapt``) is in ``common.py``; the MAML++ options that change
this file's maths (the multi-step loss, derivative-order annealing, per-step BatchNorm) are
read from ``state`` (``GradientAlgorithm._schedule``) and are no-ops when off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from fewshot.algorithms.gradient.common import GradientAlgorithm
from fewshot.data.episode import Episode
from fewshot.functional import detach
from fewshot.functional.params import Params


class MAML(GradientAlgorithm):
    """Model-Agnostic Meta-Learning.

    Per task: ``inner_steps`` steps of the inner optimizer (SGD ``theta <- theta - inner_lr * grad``
    by default) on the mean support loss (cross-entropy, or MSE for float targets), then the mean
    query loss at the adapted parameters; ``meta_loss`` is its mean over tasks. The gradient of that
    loss with respect to the model's parameters is the exact second-order meta-gradient
    (``first_order=True`` detaches the inner gradients). See ``GradientAlgorithm`` for ``inner_opt``,
    ``task``, ``bn``, ``task_batching``, ``compile`` and ``adapt_steps``.
    """

    def __init__(
        self, model: nn.Module, inner_lr: float = 0.4, inner_steps: int = 1, first_order: bool = False, **settings
    ) -> None:
        super().__init__(model, inner_lr, inner_steps, first_order=first_order, **settings)

    def _task(self, state: Mapping[str, Any], sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> dict[str, Tensor]:
        """One task: adapt on the support set, score the query set at the adapted params.

        sx [N*K, ...], sy [N*K], qx [N*Q, ...], qy [N*Q]
        """
        buffers, slow, full = state["buffers"], state["slow"], {**state["slow"], **state["fast"]}
        zs, zq = self._embed(full, buffers, sx), self._embed(full, buffers, qx)
        weights: list[float] | None = state.get("step_weights")  # MAML++'s multi-step loss, a weight per step
        record = state.get("record_norm", False)  # MAML++'s per-step BatchNorm statistics, in training
        step_losses: list[Tensor] = []  # weight * query loss after each step but the last
        stats = [self._support_statistics(state, state["fast"], zs, 0)] if record else []

        def after_step(i: int, fast: Params) -> None:
            if weights is not None and weights[i] and i < self.inner_steps - 1:
                norm, norm_buffers = self._norm(state, i)
                q = self._predict({**slow, **fast, **norm}, {**buffers, **norm_buffers}, zq)  # [N*Q, N]
                step_losses.append(weights[i] * self._loss(q, qy))
            if record and i + 1 < self.inner_steps:
                stats.append(self._support_statistics(state, fast, zs, i + 1))

        # inner loop: inner_steps optimizer steps on the support loss, from theta
        first_order = state.get("first_order", self.first_order)
        hook = after_step if weights is not None or record else None
        adapted, losses, _ = self._inner(state, state["fast"], zs, sy, self.inner_steps, first_order, on_step=hook)
        norm, norm_buffers = self._norm(state, self.inner_steps - 1)  # the last step's (per-step BatchNorm)
        full, buffers = {**slow, **adapted, **norm}, {**buffers, **norm_buffers}
        logits = self._predict(full, buffers, zq)  # [N*Q, N]: the queries at the adapted parameters
        loss = self._loss(logits, qy)
        if weights is not None:  # sum_i w_i * query loss after step i
            loss = torch.stack([*step_losses, weights[-1] * loss]).sum()
        after = self._loss(self._predict(detach(full), buffers, zs.detach()), sy).detach()
        out: dict[str, Any] = {
            "loss": loss,
            "score": self._score(logits, qy),
            "support_before": losses[0] if len(losses) else after,
            "support_after": after,
            "logits": logits,
        }
        if record:  # {layer: [inner_steps, C]}
            out["norm_mean"] = {k: torch.stack([s[k][0] for s in stats]) for k in stats[0]}
            out["norm_var"] = {k: torch.stack([s[k][1] for s in stats]) for k in stats[0]}
        return out

    def compile_pays(self) -> bool:
        """Second-order MAML with its plain options (batch-statistics BatchNorm, no MAML++ options,
        no learned inner optimizer): its compiled step was the faster path in benchmarks/maml_speed.py
        (docs/speed.md). Other settings are not measured, so they stay eager unless asked."""
        plain = self.step_norm is None and not self.anneals and not self.zero_head and self.bn == "batch"
        return type(self) is MAML and not self.first_order and plain and not isinstance(self.inner_opt, nn.Module)

    def _support_statistics(self, state: Mapping[str, Any], fast: Params, zs: Tensor, step: int) -> dict:
        """The batch statistics that every BatchNorm layer sees in step ``step``'s support forward
        at ``fast``: ``{layer: (mean [C], var [C])}``, detached (per-step BatchNorm statistics)."""
        assert self.step_norm is not None
        norm, norm_buffers = self._norm(state, step)
        with torch.no_grad(), self.step_norm.recording(self.model) as seen:
            self._predict({**state["slow"], **detach(fast), **norm}, {**state["buffers"], **norm_buffers}, zs.detach())
        return dict(seen)

    def meta_loss(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        """Outer loss: the mean over tasks of the query loss at the adapted parameters (with
        ``multi_step_loss``, in training: of the weighted sum over the inner steps)."""
        out = self._run(episode)  # _task on every task of the episode (a loop or vmap)
        loss = out["loss"].mean()
        self._advance(out)  # MAML++: count the training meta-step, update per-step statistics
        return loss, self._metrics(out, episode.query_y)


class FOMAML(MAML):
    """First-order MAML: MAML with the inner gradients detached (``first_order=True``)."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.4, inner_steps: int = 1, **settings) -> None:
        super().__init__(model, inner_lr, inner_steps, first_order=True, **settings)
