"""Reptile (Nichol et al., 2018), driven by the same ``loss.backward(); opt.step()`` loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from fewshot.algorithms.gradient.common import GradientAlgorithm
from fewshot.data.episode import Episode
from fewshot.functional import detach
from fewshot.optim.inner import InnerOptimizer, adam, sgd

INNER_OPTIMIZERS = ("sgd", "adam")
INNER_DATA = ("support", "support+query")


def shot_major(y: Tensor) -> Tensor:
    """The order [M] that takes the first example of every class, then the second, ...
    (each class in order of first appearance within a round), for labels y [M]."""
    m = y.shape[0]
    earlier = torch.ones(m, m, dtype=torch.bool, device=y.device).tril(-1)  # [M, M]: j < i
    rank = ((y[:, None] == y[None, :]) & earlier).sum(1)  # [M]: same-class examples before i
    return torch.argsort(rank * m + torch.arange(m, device=y.device))


def in_shot_order(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Examples x [M, ...] and labels y [M] reordered by ``shot_major``."""
    order = shot_major(y)
    return x[order], y[order]


class Reptile(GradientAlgorithm):
    """Per task, train a copy of the parameters for ``inner_steps`` full-batch steps
    (``inner_optimizer="sgd"`` with ``inner_lr``, or ``"adam"`` with ``adam_betas``,
    (0, 0.999) as in the paper) to ``theta'``; the meta-update is
    ``theta <- theta + eps * mean_tasks(theta' - theta)``.

    ``meta_loss`` returns the surrogate ``mean_tasks 0.5 * ||theta - stopgrad(theta')||^2``
    whose gradient is exactly ``mean_tasks(theta - theta')``, so a plain
    ``torch.optim.SGD(lr=eps)`` step is the Reptile step (other optimizers then see the
    Reptile direction as their gradient, as in the paper's Adam outer loop).

    ``inner_data``: what the inner loop trains on - ``"support"`` (default; the query
    set stays held out, so the reported query accuracy is honest) or ``"support+query"``
    (all of the task's labelled examples, as the paper trains on the whole task).
    ``inner_batch``: each inner step sees ``inner_batch`` of those examples instead of
    all (the paper: 10 per step, 5 steps over 5-way 10-shot training tasks); the
    examples are taken shot by shot across the classes (class-balanced minibatches),
    cycling. ``adapt_batch``: the same for ``adapt``'s steps on the support set (None,
    the default: full-batch steps). The paper evaluates on minibatches of 5 (5-way) or
    10 (20-way) that it shuffles; taken shot by shot instead, as here, a minibatch of 10
    holds the same half of the 20 classes every other step. The metrics
    report the query loss and accuracy at ``theta'`` (``loss``) and the surrogate
    (``surrogate``).

    ``carry_adam``: the inner Adam's moments and step count live on as buffers (saved
    with the weights): every task's inner loop, and ``adapt``, starts from them, and each
    training meta-step replaces them by the mean of its tasks' final moments. The
    paper's code never resets its inner Adam, so its state runs on from task to task and
    into evaluation; averaging over the meta-batch is the batched stand-in for that chain.
    """

    adam_step: Tensor  # the carried inner Adam (buffers, with carry_adam)
    adam_m: Tensor
    adam_v: Tensor

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.1,
        inner_steps: int = 5,
        *,
        inner_optimizer: str = "sgd",
        inner_data: str = "support",
        inner_batch: int | None = None,
        adapt_batch: int | None = None,
        adam_betas: tuple[float, float] = (0.0, 0.999),
        carry_adam: bool = False,
        **settings,
    ) -> None:
        if settings.pop("first_order", True) is not True:
            raise ValueError("Reptile is first-order by construction")
        if settings.get("zero_head"):
            raise ValueError("Reptile moves the initialisation towards the adapted weights; zero_head does not apply")
        if settings.get("inner_opt") is not None:
            raise ValueError("Reptile's inner optimizer is inner_optimizer='sgd' or 'adam' (with adam_betas)")
        mamlpp = [k for k in ("lslr", "multi_step_loss", "second_order_from", "per_step_bn") if settings.get(k)]
        if mamlpp:
            raise ValueError(
                f"Reptile has no query loss nor outer gradient through its inner loop; {mamlpp[0]} does not apply"
            )
        if settings.get("adapt_norm") is False:
            raise ValueError("Reptile trains only what its inner loop adapts; adapt_norm=False does not apply")
        if inner_optimizer not in INNER_OPTIMIZERS:
            raise ValueError(f"inner_optimizer must be one of {INNER_OPTIMIZERS}, got {inner_optimizer!r}")
        if inner_data not in INNER_DATA:
            raise ValueError(f"inner_data must be one of {INNER_DATA}, got {inner_data!r}")
        super().__init__(model, inner_lr, inner_steps, first_order=True, **settings)
        for name, batch in (("inner_batch", inner_batch), ("adapt_batch", adapt_batch)):
            if batch is not None and batch < 1:
                raise ValueError(f"{name} must be >= 1, got {batch}")
        self.inner_optimizer, self.inner_data = inner_optimizer, inner_data
        self.adam_betas: tuple[float, float] = (float(adam_betas[0]), float(adam_betas[1]))
        self.inner_batch, self.adapt_batch = inner_batch, adapt_batch
        if carry_adam and inner_optimizer != "adam":
            raise ValueError("carry_adam keeps the inner Adam's moments; it needs inner_optimizer='adam'")
        self.carry_adam = carry_adam
        if carry_adam:
            size = sum(p.numel() for p in model.parameters() if p.requires_grad)
            self.register_buffer("adam_step", torch.zeros(()))
            self.register_buffer("adam_m", torch.zeros(size))  # [P]: every trainable parameter, flattened
            self.register_buffer("adam_v", torch.zeros(size))  # [P]

    def _extra_state(self, detached: bool) -> dict[str, Any]:
        if not self.carry_adam:
            return {}
        if sum(p.numel() for p in self.model.parameters() if p.requires_grad) != self.adam_m.numel():
            raise ValueError("carry_adam: the trainable parameters changed since the Reptile learner was built")
        return {"adam": (self.adam_step, self.adam_m, self.adam_v)}

    def _optimizer(self, state: Mapping[str, Any]) -> InnerOptimizer:
        if self.inner_optimizer == "sgd":
            return sgd(self.inner_lr)
        inner = adam(self.inner_lr, betas=self.adam_betas)
        if "adam" in state:  # start from the carried moments instead of zeros
            return InnerOptimizer(lambda params: state["adam"], inner.step)
        return inner

    def _adapt_data(self, zs: Tensor, y: Tensor) -> tuple[Tensor, Tensor, int | None]:
        if self.adapt_batch is None:
            return zs, y, None
        return *in_shot_order(zs, y), self.adapt_batch

    def _task(self, state: Mapping[str, Any], sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> dict[str, Tensor]:
        """One task: train on the inner data from ``state`` (detached) to ``theta'``.

        sx [N*K, ...], sy [N*K], qx [N*Q, ...], qy [N*Q]
        """
        buffers, slow = state["buffers"], state["slow"]
        x, y = (torch.cat([sx, qx]), torch.cat([sy, qy])) if self.inner_data == "support+query" else (sx, sy)
        if self.inner_batch is not None:
            x, y = in_shot_order(x, y)
        adapted, losses, moments = self._inner(
            state,
            state["fast"],
            x,
            y,
            self.inner_steps,
            first_order=True,
            batch_size=self.inner_batch,
        )
        full = {**slow, **adapted}
        logits = self._predict(full, buffers, qx)  # [N*Q, N]
        after = self._loss(self._predict(full, buffers, x), y)
        return {
            "loss": self._loss(logits, qy),
            "score": self._score(logits, qy),
            "support_before": losses[0] if len(losses) else after,
            "support_after": after,
            "logits": logits,
            "adapted": adapted,
            **({"adam_m": moments[1], "adam_v": moments[2]} if self.carry_adam else {}),
        }

    def meta_loss(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        """The Reptile surrogate (see the class docstring); ``metrics["loss"]`` is the
        query loss at the adapted parameters, ``metrics["surrogate"]`` the returned value."""
        state = self._state()
        with torch.no_grad():
            out = self._run(episode, {**state, "fast": detach(state["fast"]), "slow": detach(state["slow"])})
        if self.carry_adam and self.training:  # as BatchNorm's running statistics: training steps only
            self.adam_step += self.inner_steps
            self.adam_m.copy_(out["adam_m"].mean(0))
            self.adam_v.copy_(out["adam_v"].mean(0))
        b = episode.batch_size
        surrogate = sum(0.5 * (p - out["adapted"][k]).pow(2).sum() for k, p in state["fast"].items()) / b
        return surrogate, self._metrics(out, episode.query_y, surrogate=surrogate)
