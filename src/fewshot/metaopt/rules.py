"""Learned update rules: modules whose ``functional(own_params)`` is an ``InnerOptimizer``.

Both rules act on the flat vector of every coordinate, [P] = all parameters of the params dict
concatenated in its order, and keep their state per coordinate (tensors with a leading [P]):

- ``LSTMRule``: the coordinate-wise LSTM of Andrychowicz et al. 2016 ("Learning to learn by
  gradient descent by gradient descent"): two LSTM layers of 20 units shared by all
  coordinates, fed with the preprocessed gradient (log-magnitude and sign, ``p = 10``), with a
  hidden state per coordinate and a linear output scaled by 0.1: ``theta + 0.1 * out``.
- ``MLPRule``: a small per-coordinate MLP after Metz et al. (2022, "Practical tradeoffs between
  memory, compute, and performance in learned optimizers"), fed with the gradient, the parameter
  and momenta at four timescales (each divided by its root mean square over the tensor), the
  Adam directions ``m / sqrt(v)`` and time features. A linear skip initialised to Adam's direction
  makes the untrained rule exactly Adam with rate ``lr``; the MLP learns a correction.

Guard rail (both rules): where an update or the gradient it came from is not finite (NaN or inf),
the coordinate falls back to ``-fallback_lr * grad`` (0 by default: the step is skipped) when that
is finite, else to no move, and its state is reset to the initial zeros. The state counts those
coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot.optim import InnerOptimizer
from fewshot.registry import Registry

Params = dict[str, Tensor]
Coords = tuple[Tensor, ...]
"""Per-coordinate state tensors, each [P, ...]."""

RULES = Registry("learned optimizer rule", "fewshot.metaopt_rules")


def flatten(tensors: Mapping[str, Tensor], order: Sequence[str]) -> Tensor:
    """The tensors named in ``order``, flattened and concatenated: [P]."""
    return torch.cat([tensors[k].reshape(-1) for k in order])


def unflatten(flat: Tensor, like: Mapping[str, Tensor]) -> Params:
    """``flat`` [P] split back into tensors shaped like ``like`` (in its order)."""
    sizes = [p.numel() for p in like.values()]
    return {k: v.view_as(p) for (k, p), v in zip(like.items(), flat.split(sizes))}


def preprocess_gradients(g: Tensor, p: float = 10.0) -> Tensor:
    """Andrychowicz et al.'s preprocessing, g [P] -> [P, 2]: ``(log|g| / p, sign g)`` where
    ``|g| >= e^-p``, else ``(-1, e^p g)``."""
    big = g.abs() >= math.exp(-p)
    log_magnitude = torch.where(big, g.abs().clamp_min(math.exp(-p)).log() / p, -torch.ones_like(g))
    sign = torch.where(big, torch.sign(g), g * math.exp(p))
    return torch.stack([log_magnitude, sign], dim=-1)  # [P, 2]


def lstm_cell(x: Tensor, h: Tensor, c: Tensor, own: Mapping[str, Tensor], prefix: str) -> tuple[Tensor, Tensor]:
    """One ``nn.LSTMCell`` step written out (x [P, I], h, c [P, H]) with the weights ``own[prefix.*]``."""
    gates = F.linear(x, own[f"{prefix}.weight_ih"], own[f"{prefix}.bias_ih"])  # [P, 4H]: input, forget,
    gates = gates + F.linear(h, own[f"{prefix}.weight_hh"], own[f"{prefix}.bias_hh"])  # cell, output gates
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


class LearnedRule(nn.Module):
    """Abstract: a learned update rule over flat coordinates; subclasses define ``init_coords``,
    ``update`` and ``settings``."""

    kind: ClassVar[str]

    def __init__(self, fallback_lr: float = 0.0) -> None:
        super().__init__()
        if not math.isfinite(fallback_lr) or fallback_lr < 0:
            raise ValueError(f"fallback_lr must be a finite number >= 0, got {fallback_lr!r}")
        self.fallback_lr = float(fallback_lr)

    def settings(self) -> dict[str, Any]:
        """The constructor's keyword arguments, JSON-able (stored with the weights)."""
        raise NotImplementedError

    def init_coords(self, flat: Tensor) -> Coords:
        """The initial state of coordinates ``flat`` [P]: zeros, each [P, ...]."""
        raise NotImplementedError

    def update(
        self, own: Mapping[str, Tensor], p: Tensor, g: Tensor, coords: Coords, t: Any, sizes: list[int]
    ) -> tuple[Tensor, Coords]:
        """The raw update [P] of parameters p [P] with gradients g [P] at step ``t`` (1, 2, ...), and the
        new state; ``sizes`` are the numbers of coordinates of each tensor, in order."""
        raise NotImplementedError

    def functional(self, own: Mapping[str, Tensor]) -> InnerOptimizer:
        """The rule with its parameters ``own`` (``dict(self.named_parameters())``, possibly detached).

        State: ``(t, coords, nonfinite)``: steps taken, per-coordinate tensors [P, ...], and the number
        of coordinate updates replaced by the fallback so far (a scalar tensor)."""
        own = dict(own)
        fallback_lr = self.fallback_lr

        def init(params: Params) -> tuple[int, Coords, Tensor]:
            flat = flatten(params, list(params)).detach()  # [P]
            return 0, self.init_coords(flat), flat.new_zeros(())

        def step(params: Params, grads: Params, state: tuple[Any, Coords, Tensor]) -> tuple[Params, Any]:
            t, coords, nonfinite = state
            order = list(params)
            p, g = flatten(params, order), flatten(grads, order)  # [P], [P]
            sizes = [v.numel() for v in params.values()]
            delta, new = self.update(own, p, g, coords, t + 1, sizes)  # [P]
            delta, new, bad = guard(delta, new, g, fallback_lr)
            return unflatten(p + delta, params), (t + 1, new, nonfinite + bad)

        return InnerOptimizer(init, step)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.settings().items())


def guard(delta: Tensor, coords: Coords, g: Tensor, fallback_lr: float) -> tuple[Tensor, Coords, Tensor]:
    """Coordinates whose update delta [P] or gradient g [P] is not finite -> ``-fallback_lr * g`` (or no move
    where that is not finite either), their state reset to zeros; also returns how many (a scalar tensor)."""
    finite = torch.isfinite(delta) & torch.isfinite(g)  # [P]
    fallback = -fallback_lr * g if fallback_lr else torch.zeros_like(g)
    fallback = torch.where(torch.isfinite(fallback), fallback, torch.zeros_like(fallback))
    delta = torch.where(finite, delta, fallback)
    coords = tuple(
        torch.where(finite.view(-1, *([1] * (c.dim() - 1))), c, torch.zeros_like(c))  # [P, ...]
        for c in coords
    )
    return delta, coords, (~finite).sum().to(g.dtype)


@RULES.register("lstm")
class LSTMRule(LearnedRule):
    """The coordinate-wise LSTM optimizer (Andrychowicz et al. 2016): ``theta + output_scale * W h_top``."""

    kind = "lstm"

    def __init__(
        self,
        hidden: int = 20,
        layers: int = 2,
        preprocess: float = 10.0,
        output_scale: float = 0.1,
        fallback_lr: float = 0.0,
    ) -> None:
        super().__init__(fallback_lr)
        if hidden < 1 or layers < 1 or preprocess <= 0 or output_scale <= 0:
            raise ValueError("hidden and layers must be >= 1, preprocess and output_scale > 0")
        self.hidden, self.layers = int(hidden), int(layers)
        self.preprocess, self.output_scale = float(preprocess), float(output_scale)
        self.cells = nn.ModuleList(nn.LSTMCell(2 if i == 0 else hidden, hidden) for i in range(layers))
        self.head = nn.Linear(hidden, 1)

    def settings(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "layers": self.layers,
            "preprocess": self.preprocess,
            "output_scale": self.output_scale,
            "fallback_lr": self.fallback_lr,
        }

    def init_coords(self, flat: Tensor) -> Coords:
        zeros = flat.new_zeros(flat.numel(), self.layers, self.hidden)  # [P, L, H]
        return zeros, zeros  # h, c

    def update(
        self, own: Mapping[str, Tensor], p: Tensor, g: Tensor, coords: Coords, t: Any, sizes: list[int]
    ) -> tuple[Tensor, Coords]:
        h, c = coords  # [P, L, H] each
        x = preprocess_gradients(g, self.preprocess)  # [P, 2]
        hs, cs = [], []
        for layer in range(self.layers):
            x, c_new = lstm_cell(x, h[:, layer], c[:, layer], own, f"cells.{layer}")  # [P, H]
            hs.append(x)
            cs.append(c_new)
        out = F.linear(x, own["head.weight"], own["head.bias"]).squeeze(-1)  # [P]
        return self.output_scale * out, (torch.stack(hs, 1), torch.stack(cs, 1))


BETAS = (0.5, 0.9, 0.99, 0.999)  # momentum timescales of the MLP rule
BETA2 = 0.999  # its second moment
EPS = 1e-8  # as Adam's
TIMESCALES = (10.0, 100.0, 1000.0)  # its time features tanh(t / s)
ADAM_FEATURE = 2 + len(BETAS) + BETAS.index(0.9)  # the column of Adam's direction m_0.9 / (sqrt(v) + eps)


@RULES.register("mlp")
class MLPRule(LearnedRule):
    """A per-coordinate MLP on gradient, parameter, momenta and time (after Metz et al. 2022):
    ``theta - lr * (skip . features + d * exp(exp_mult * m))`` with ``(d, m) = MLP(features)``;
    untrained (skip on Adam's direction, MLP output zero) it is Adam with rate ``lr``."""

    kind = "mlp"

    def __init__(
        self,
        hidden: int = 32,
        layers: int = 2,
        lr: float = 0.01,
        exp_mult: float = 0.1,
        fallback_lr: float = 0.0,
    ) -> None:
        super().__init__(fallback_lr)
        if hidden < 1 or layers < 1 or not lr > 0 or not exp_mult > 0:
            raise ValueError("hidden and layers must be >= 1, lr and exp_mult > 0")
        self.hidden, self.layers, self.lr, self.exp_mult = int(hidden), int(layers), float(lr), float(exp_mult)
        features = 2 + 2 * len(BETAS) + 1 + len(TIMESCALES)
        sizes = [features] + [hidden] * layers
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(hidden, 2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.skip = nn.Parameter(torch.zeros(features))
        with torch.no_grad():
            self.skip[ADAM_FEATURE] = 1.0
        self.log_lr = nn.Parameter(torch.tensor(math.log(lr)))

    def settings(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "layers": self.layers,
            "lr": self.lr,
            "exp_mult": self.exp_mult,
            "fallback_lr": self.fallback_lr,
        }

    def init_coords(self, flat: Tensor) -> Coords:
        return (flat.new_zeros(flat.numel(), len(BETAS) + 1),)  # [P, 5]: the momenta, then v

    def update(
        self, own: Mapping[str, Tensor], p: Tensor, g: Tensor, coords: Coords, t: Any, sizes: list[int]
    ) -> tuple[Tensor, Coords]:
        (moments,) = coords  # [P, 5]
        decay = p.new_tensor([*BETAS, BETA2])  # [5]
        target = torch.cat([g.unsqueeze(-1).expand(-1, len(BETAS)), (g * g).unsqueeze(-1)], dim=-1)  # [P, 5]
        moments = decay * moments + (1 - decay) * target  # [P, 5]
        corrected = moments / (1 - decay**t)  # [P, 5], Adam's bias correction
        m, v = corrected[:, : len(BETAS)], corrected[:, len(BETAS)]  # [P, 4], [P]
        inverse = 1 / (v.sqrt() + EPS).unsqueeze(-1)  # [P, 1]
        # g, theta and the momenta depend on the problem's scale: divided by their root mean square over
        # each tensor; m / sqrt(v) and g / sqrt(v) (Adam's directions) are scale-free already
        scaled = torch.cat([g[:, None], p[:, None], m], dim=-1)  # [P, 6]
        scaled = torch.cat([f * torch.rsqrt(f.square().mean(0, keepdim=True) + 1e-16) for f in scaled.split(sizes)])
        time = torch.tanh(t / p.new_tensor(TIMESCALES)).expand(p.numel(), -1)  # [P, 3]
        x = torch.cat([scaled, m * inverse, g[:, None] * inverse, time], dim=-1)  # [P, 14]
        h = x
        for i in range(self.layers):
            h = torch.relu(F.linear(h, own[f"mlp.{i}.weight"], own[f"mlp.{i}.bias"]))  # [P, hidden]
        d, magnitude = F.linear(h, own["out.weight"], own["out.bias"]).unbind(-1)  # [P], [P]
        direction = x @ own["skip"] + d * torch.exp((self.exp_mult * magnitude).clamp(max=20.0))  # [P]
        return -torch.exp(own["log_lr"]) * direction, (moments,)


def learned_mlp(lr: float, **settings: Any) -> MLPRule:
    """An untrained ``MLPRule`` (Adam with rate ``lr``) as an inner optimizer by name: the gradient
    algorithm's outer loop then meta-learns it with the initialisation (``inner_opt="learned-mlp"``)."""
    return MLPRule(lr=lr, **settings)


def learned_lstm(lr: float, **settings: Any) -> LSTMRule:
    """An untrained ``LSTMRule`` as an inner optimizer by name (``lr`` is unused: the LSTM sets its own steps)."""
    return LSTMRule(**settings)
