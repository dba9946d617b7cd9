"""MAML (Finn et al., 2017) and first-order MAML, read top to bottom.

Per task, the inner loop adapts the shared initialisation ``theta`` on the support set with
the inner optimizer (plain SGD ``theta - inner_lr * grad`` by default); the outer loss is the
query loss at the adapted parameters, averaged over the episode's tasks and differentiated
through the inner loop: exactly (second order), or with the inner gradients detached
(first order). The machinery shared with the other gradient methods (the functional state,
BatchNorm policy, task axis, ``adapt``) is in ``common.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from fewshot.algorithms.gradient.common import GradientAlgorithm
from fewshot.data.episode import Episode
from fewshot.functional import detach


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
        buffers, full = state["buffers"], {**state["slow"], **state["fast"]}
        zs, zq = self._embed(full, buffers, sx), self._embed(full, buffers, qx)
        # inner loop: inner_steps optimizer steps on the support loss, from theta
        adapted, losses, _ = self._inner(state, state["fast"], zs, sy, self.inner_steps, self.first_order)
        full = {**state["slow"], **adapted}
        logits = self._predict(full, buffers, zq)  # [N*Q, N]: the queries at the adapted parameters
        after = self._loss(self._predict(detach(full), buffers, zs.detach()), sy).detach()
        return {
            "loss": self._loss(logits, qy),
            "score": self._score(logits, qy),
            "support_before": losses[0] if len(losses) else after,
            "support_after": after,
            "logits": logits,
        }

    def meta_loss(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        """Outer loss: the mean over tasks of the query loss at the adapted parameters."""
        out = self._run(episode)  # _task on every task of the episode (a loop or vmap)
        loss = out["loss"].mean()
        return loss, self._metrics(out, episode.query_y)


class FOMAML(MAML):
    """First-order MAML: MAML with the inner gradients detached (``first_order=True``)."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.4, inner_steps: int = 1, **settings) -> None:
        super().__init__(model, inner_lr, inner_steps, first_order=True, **settings)
