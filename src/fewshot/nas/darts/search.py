"""DARTS (Liu et al., 2019): architecture weights on validation batches, network weights on training batches.

``order=1``: the architecture gradient at the current weights. ``order=2``: the gradient of the
validation loss after one virtual SGD step of the weights, w' = w - xi * (grad_w L_train(w, a) + wd * w),
differentiated through that step exactly by autograd (``hessian="exact"``), or with the paper's
finite-difference Hessian-vector product (``hessian="finite_difference"``).

Against the known collapse to parameter-free operations: ``aux_skip`` adds beta * x to every stride-1
edge, beta decaying linearly from ``aux_skip`` to 0 over the search, so the skip operation loses its
unfair advantage as a gradient highway (DARTS-, Chu et al. 2021); ``stop_skip`` stops the search once
the derived normal cell has that many skip connections and keeps the genotype of the epoch before
(DARTS+, Liang et al. 2019); ``max_skip`` caps skip connections at discretisation (P-DARTS).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor, nn
from torch.func import functional_call

from fewshot.nas.darts.genotype import Genotype, to_string
from fewshot.nas.darts.supernet import Supernet
from fewshot.nas.errors import NASError

LossFn = Callable[[nn.Module, object], Tensor]  # (model, batch) -> scalar loss
HESSIANS = ("exact", "finite_difference")


@dataclass
class DartsResult:
    genotype: Genotype
    epochs: list[dict] = field(default_factory=list)  # per epoch: losses, op weights, derived genotype
    stopped_early: bool = False
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "genotype": to_string(self.genotype),
            "epochs": len(self.epochs),
            "stopped_early": self.stopped_early,
            "seconds": round(self.seconds, 3),
        }


class _Loss(nn.Module):
    """``loss_fn(model, batch)`` as a module forward, so ``functional_call`` can swap the parameters."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch) -> Tensor:
        return self.loss_fn(self.model, batch)


class DartsSearch:
    """Bilevel search over a ``Supernet`` held inside ``model`` (the model may be the supernet itself,
    or e.g. ``ProtoNet(supernet)``); ``loss_fn(model, batch)`` is the loss on one batch or episode."""

    def __init__(
        self,
        model: nn.Module,
        supernet: Supernet,
        loss_fn: LossFn,
        *,
        order: int = 1,
        hessian: str = "exact",
        w_lr: float = 0.025,
        w_momentum: float = 0.9,
        w_weight_decay: float = 3e-4,
        alpha_lr: float = 3e-4,
        alpha_weight_decay: float = 1e-3,
        xi: float | None = None,
        grad_clip: float = 5.0,
        max_skip: int | None = None,
        stop_skip: int | None = None,
        aux_skip: float = 0.0,
    ):
        if order not in (1, 2):
            raise NASError(f"DARTS order must be 1 or 2, got {order}")
        if hessian not in HESSIANS:
            raise NASError(f"unknown hessian {hessian!r}; valid: {', '.join(HESSIANS)}")
        self.model, self.supernet, self.loss_fn = model, supernet, loss_fn
        self.order, self.hessian, self.grad_clip = order, hessian, grad_clip
        self.max_skip, self.stop_skip, self.aux_skip = max_skip, stop_skip, float(aux_skip)
        alpha_ids = {id(p) for p in supernet.arch_parameters()}
        self.alphas = supernet.arch_parameters()
        self.weights = [p for p in model.parameters() if id(p) not in alpha_ids]
        self.xi, self.w_weight_decay = (w_lr if xi is None else xi), w_weight_decay
        self.w_opt = torch.optim.SGD(self.weights, lr=w_lr, momentum=w_momentum, weight_decay=w_weight_decay)
        self.alpha_opt = torch.optim.Adam(self.alphas, lr=alpha_lr, betas=(0.5, 0.999), weight_decay=alpha_weight_decay)
        self._loss_module = _Loss(model, loss_fn)
        self._names = {id(p): n for n, p in self._loss_module.named_parameters()}

    # -- architecture gradient ---------------------------------------------------------------------------------------
    def _call(self, overrides: dict[str, Tensor], batch) -> Tensor:
        return functional_call(self._loss_module, overrides, (batch,), strict=False)

    def arch_gradient(self, train_batch, val_batch) -> list[Tensor]:
        """d L_val / d alpha (first order) or of the unrolled objective (second order); nothing is updated."""
        if self.order == 1:
            return list(torch.autograd.grad(self.loss_fn(self.model, val_batch), self.alphas))
        if self.hessian == "exact":
            return self._unrolled_exact(train_batch, val_batch)
        return self._unrolled_finite_difference(train_batch, val_batch)

    def _virtual_weights(self, train_batch, create_graph: bool) -> list[Tensor]:
        """w' = w - xi * (grad_w L_train(w, alpha) + wd * w)."""
        loss = self.loss_fn(self.model, train_batch)
        grads = torch.autograd.grad(loss, self.weights, create_graph=create_graph, allow_unused=True)
        return [
            w - self.xi * ((g if g is not None else torch.zeros_like(w)) + self.w_weight_decay * w)
            for w, g in zip(self.weights, grads)
        ]

    def _unrolled_exact(self, train_batch, val_batch) -> list[Tensor]:
        virtual = self._virtual_weights(train_batch, create_graph=True)  # depend on alpha through the gradient
        overrides = {self._names[id(w)]: v for w, v in zip(self.weights, virtual)}
        return list(torch.autograd.grad(self._call(overrides, val_batch), self.alphas))

    def _unrolled_finite_difference(self, train_batch, val_batch) -> list[Tensor]:
        """The paper's approximation: grad_a L_val(w', a) - xi * (grad_a L_train(w+, a) - grad_a L_train(w-, a)) / 2eps,
        w+- = w +- eps * grad_w' L_val(w', a), eps = 0.01 / ||grad_w' L_val||."""
        virtual = [v.detach().requires_grad_() for v in self._virtual_weights(train_batch, create_graph=False)]
        overrides = {self._names[id(w)]: v for w, v in zip(self.weights, virtual)}
        grads = torch.autograd.grad(self._call(overrides, val_batch), [*self.alphas, *virtual], allow_unused=True)
        d_alpha = list(grads[: len(self.alphas)])
        d_w = [g if g is not None else torch.zeros_like(v) for g, v in zip(grads[len(self.alphas) :], virtual)]
        squared = cast(Tensor, sum((g * g).sum() for g in d_w))  # a tensor: d_w is not empty
        eps = 0.01 / torch.sqrt(squared).clamp_min(1e-12)

        def train_alpha_grad(sign: float) -> list[Tensor]:
            shifted = {self._names[id(w)]: w.detach() + sign * eps * g for w, g in zip(self.weights, d_w)}
            return list(torch.autograd.grad(self._call(shifted, train_batch), self.alphas))

        plus, minus = train_alpha_grad(1.0), train_alpha_grad(-1.0)
        return [da - self.xi * (p - m) / (2 * eps) for da, p, m in zip(d_alpha, plus, minus)]

    # -- steps -------------------------------------------------------------------------------------------------------
    def step(self, train_batch, val_batch) -> dict[str, float]:
        """One architecture step on ``val_batch`` then one weight step on ``train_batch``."""
        self.alpha_opt.zero_grad(set_to_none=True)
        for a, g in zip(self.alphas, self.arch_gradient(train_batch, val_batch)):
            a.grad = g.detach()
        self.alpha_opt.step()
        self.w_opt.zero_grad(set_to_none=True)
        for a in self.alphas:
            a.requires_grad_(False)
        try:
            loss = self.loss_fn(self.model, train_batch)
            loss.backward()
        finally:
            for a in self.alphas:
                a.requires_grad_(True)
        nn.utils.clip_grad_norm_(self.weights, self.grad_clip)
        self.w_opt.step()
        return {"train_loss": float(loss.detach())}

    def genotype(self) -> Genotype:
        return self.supernet.genotype(max_skip=self.max_skip)

    def run(
        self,
        train_batches: Iterable,
        val_batches: Iterable,
        epochs: int,
        steps_per_epoch: int,
        progress: Callable[[dict], None] | None = None,
    ) -> DartsResult:
        """``epochs`` x ``steps_per_epoch`` steps; after each epoch the derived genotype, op weights and the mean
        training loss are recorded (and checked against ``stop_skip``)."""
        train_it, val_it = _cycle(train_batches), _cycle(val_batches)
        result, start = DartsResult(self.genotype()), time.perf_counter()
        total = epochs * steps_per_epoch
        for epoch in range(1, epochs + 1):
            losses = []
            for k in range(steps_per_epoch):
                done = (epoch - 1) * steps_per_epoch + k
                self.supernet.aux_skip = self.aux_skip * (1 - done / total)  # DARTS-: decays linearly to 0
                losses.append(self.step(next(train_it), next(val_it))["train_loss"])
            self.supernet.aux_skip = 0.0
            raw = self.supernet.genotype()  # without the cap: what DARTS itself would choose now
            skips = _normal_skips(raw)
            record = {
                "epoch": epoch,
                "train_loss": sum(losses) / len(losses),
                **self.supernet.op_weights(),
                "genotype": to_string(raw),
                "skips": skips,
            }
            result.epochs.append(record)
            if progress:
                progress(record)
            if self.stop_skip is not None and skips >= self.stop_skip:
                result.stopped_early = True  # keep the genotype of the epoch before
                break
            result.genotype = self.genotype()
        result.seconds = time.perf_counter() - start
        return result


def _normal_skips(g: Genotype) -> int:
    return sum(op == "skip_connect" for node in g.normal for op, _ in node)


def _cycle(batches: Iterable) -> Iterator:
    """Endless iteration (re-iterating a re-iterable, e.g. a list or a sampler)."""
    while True:
        empty = True
        for b in batches:
            empty = False
            yield b
        if empty:
            raise NASError("DARTS got an empty source of batches")
