"""Optimizees: the problems a learned optimizer is trained and tested on.

A family (``OPTIMIZEES``, built by name with ``split`` and ``seed``) is a batch source: ``next()``
draws a new ``Optimizee`` and ``generator`` holds its randomness. The ``train``, ``val`` and
``test`` splits draw from disjoint streams, and the data-backed families also use disjoint data
(digits rows, glyphs classes), so ``test`` problems are held out from meta-training.

- ``quadratic``: ``f(x) = ||W x - y||^2`` with ``W`` [d, d], ``y`` [d] and the start ``x0`` [d]
  standard normal (Andrychowicz et al. 2016, d = 10), no noise.
- ``mlp-digits``: an MLP (one hidden layer of 20 sigmoid units by default) on scikit-learn's
  8x8 digits, cross-entropy on minibatches of 128; ``mlp-digits-relu``: the out-of-family
  variant, two hidden layers of 40 ReLU units.
- ``conv-glyphs``: a two-layer conv net on a 10-way task of the built-in ``glyphs`` dataset
  (all 20 images of 10 classes), minibatches of 64.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from fewshot.registry import Registry

Params = dict[str, Tensor]
SPLITS = ("train", "val", "test")
OPTIMIZEES = Registry("optimizee", "fewshot.optimizees")


def _stream(split: str, seed: int) -> torch.Generator:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return torch.Generator().manual_seed(1_000_003 * SPLITS.index(split) + int(seed))


def _draw_seed(generator: torch.Generator) -> int:
    return int(torch.randint(2**62, (), generator=generator))


class Optimizee:
    """One problem: ``module`` at its initial parameters, its data ``(inputs [n, ...], targets [n, ...])``
    and ``criterion(output, targets) -> scalar``. Step ``s`` sees minibatch ``batch(s)`` (all the data
    when ``batch_size`` is None), the same for every optimizer."""

    def __init__(
        self,
        name: str,
        module: nn.Module,
        data: tuple[Tensor, Tensor],
        criterion: Callable[[Tensor, Tensor], Tensor],
        batch_size: int | None,
        seed: int,
    ) -> None:
        self.name, self.module, self.data, self.criterion = name, module, data, criterion
        self.batch_size, self.seed = batch_size, seed
        self.initial = {k: p.detach().clone() for k, p in module.named_parameters()}

    def initial_params(self) -> Params:
        """A fresh copy of the starting point, name -> tensor."""
        return {k: v.clone() for k, v in self.initial.items()}

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        x, y = self.data
        if self.batch_size is None:
            return x, y
        generator = torch.Generator().manual_seed(self.seed + 7919 * step)
        rows = torch.randint(len(y), (self.batch_size,), generator=generator)  # [b]
        return x[rows], y[rows]

    def loss(self, params: Mapping[str, Tensor], step: int) -> Tensor:
        """The loss of minibatch ``step`` at ``params`` (differentiable in them)."""
        x, y = self.batch(step)
        return self.criterion(functional_call(self.module, dict(params), (x,)), y)

    def full_loss(self, params: Mapping[str, Tensor]) -> Tensor:
        """The loss over all of the problem's data: what the benchmarks report."""
        x, y = self.data
        return self.criterion(functional_call(self.module, dict(params), (x,)), y)

    def fresh_module(self) -> nn.Module:
        """A copy of ``module`` at the initial parameters, for a ``torch.optim`` optimizer."""
        import copy

        module = copy.deepcopy(self.module)
        with torch.no_grad():
            for k, p in module.named_parameters():
                p.copy_(self.initial[k])
        return module

    def module_loss(self, module: nn.Module, step: int) -> Tensor:
        x, y = self.batch(step)
        return self.criterion(module(x), y)

    def __repr__(self) -> str:
        count = sum(p.numel() for p in self.initial.values())
        return f"Optimizee({self.name!r}, {count} parameters, seed={self.seed})"


def _init_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """torch's default initialisation of Linear and Conv layers, drawn from ``generator``."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                bound = m.weight[0].numel() ** -0.5  # 1 / sqrt(fan_in)
                m.weight.uniform_(-bound, bound, generator=generator)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=generator)
    return module


class _Family:
    """Abstract: a batch source of optimizees; subclasses define ``_make(seed)``."""

    name: str

    def __init__(self, split: str = "train", seed: int = 0) -> None:
        self.split = split
        self.generator = _stream(split, seed)

    def next(self) -> Optimizee:
        return self._make(_draw_seed(self.generator))

    def _make(self, seed: int) -> Optimizee:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r})"


class _Linear(nn.Module):
    """``x [d]`` as a module: ``forward(W [d, d]) = W x``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.zeros(dim))

    def forward(self, w: Tensor) -> Tensor:
        return w @ self.x  # [d]


def _squared_error(prediction: Tensor, y: Tensor) -> Tensor:
    return (prediction - y).square().sum()


class Quadratics(_Family):
    """Random quadratics ``||W x - y||^2``, everything standard normal (W [dim, dim], y, x0 [dim])."""

    name = "quadratic"

    def __init__(self, split: str = "train", seed: int = 0, *, dim: int = 10) -> None:
        super().__init__(split, seed)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim

    def _make(self, seed: int) -> Optimizee:
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(self.dim, self.dim, generator=g)  # [d, d]
        y = torch.randn(self.dim, generator=g)  # [d]
        module = _Linear(self.dim)
        with torch.no_grad():
            module.x.copy_(torch.randn(self.dim, generator=g))
        return Optimizee(self.name, module, (w, y), _squared_error, None, seed)


ACTIVATIONS: dict[str, type[nn.Module]] = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}
DIGITS_ROWS = {"train": (0, 1000), "val": (1000, 1300), "test": (1300, 1797)}  # of a fixed shuffle


@cache
def _digits() -> tuple[Tensor, Tensor]:
    """scikit-learn's 8x8 digits (shipped with it, no download), shuffled once: x [1797, 64] in [0, 1], y [1797]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError('the digits optimizees need scikit-learn: pip install "fewshot[metaopt]"') from e
    digits = load_digits()
    order = torch.randperm(len(digits.target), generator=torch.Generator().manual_seed(0))
    x = torch.as_tensor(digits.data, dtype=torch.float32)[order] / 16.0
    return x, torch.as_tensor(digits.target, dtype=torch.long)[order]


class DigitsMLP(_Family):
    """An MLP (``layers`` hidden layers of ``hidden`` units) on digits rows of the split, cross-entropy."""

    name = "mlp-digits"

    def __init__(
        self,
        split: str = "train",
        seed: int = 0,
        *,
        hidden: int = 20,
        layers: int = 1,
        activation: str = "sigmoid",
        batch_size: int = 128,
    ) -> None:
        super().__init__(split, seed)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if hidden < 1 or layers < 0 or batch_size < 1:
            raise ValueError("hidden and batch_size must be >= 1, layers >= 0")
        self.hidden, self.layers, self.activation, self.batch_size = hidden, layers, activation, batch_size

    def _make(self, seed: int) -> Optimizee:
        x, y = _digits()
        start, stop = DIGITS_ROWS[self.split]
        sizes = [64] + [self.hidden] * self.layers + [10]
        blocks: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            blocks.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                blocks.append(ACTIVATIONS[self.activation]())
        module = _init_(nn.Sequential(*blocks), torch.Generator().manual_seed(seed))
        return Optimizee(self.name, module, (x[start:stop], y[start:stop]), F.cross_entropy, self.batch_size, seed)


class DigitsReLU(DigitsMLP):
    """The out-of-family digits MLP: two hidden layers of 40 ReLU units."""

    name = "mlp-digits-relu"

    def __init__(self, split: str = "train", seed: int = 0, *, hidden: int = 40, layers: int = 2, **options) -> None:
        super().__init__(split, seed, hidden=hidden, layers=layers, **{"activation": "relu", **options})


@cache
def _glyphs(split: str, image_size: int):
    from fewshot.data import get_dataset

    return get_dataset("glyphs", split=split, image_size=image_size)


class ConvGlyphs(_Family):
    """A conv net (3x3 stride-2 convolutions of ``channels``, ReLU, a linear head) on a ``ways``-way task
    of glyphs classes of the split (all their images), cross-entropy on minibatches."""

    name = "conv-glyphs"

    def __init__(
        self,
        split: str = "train",
        seed: int = 0,
        *,
        ways: int = 10,
        channels: tuple[int, ...] | list[int] = (8, 16),
        batch_size: int = 64,
        image_size: int = 28,
    ) -> None:
        super().__init__(split, seed)
        if ways < 2 or batch_size < 1 or not channels or min(channels) < 1:
            raise ValueError("ways must be >= 2, batch_size >= 1, channels a non-empty list of positive ints")
        self.ways, self.channels, self.batch_size = ways, tuple(channels), batch_size
        self.image_size = image_size

    def _make(self, seed: int) -> Optimizee:
        data = _glyphs(self.split, self.image_size)
        g = torch.Generator().manual_seed(seed)
        classes = torch.randperm(data.num_classes, generator=g)[: self.ways].tolist()
        members = [torch.nonzero(data.labels == c).squeeze(1) for c in classes]  # ways x [20]
        labels = torch.cat([torch.full((len(m),), i) for i, m in enumerate(members)])  # [n]
        x = data.gather(torch.cat(members))  # [n, 1, H, W]
        layers: list[nn.Module] = []
        size, channels = self.image_size, 1
        for c in self.channels:
            layers += [nn.Conv2d(channels, c, 3, stride=2), nn.ReLU()]
            size, channels = (size - 3) // 2 + 1, c
        layers += [nn.Flatten(), nn.Linear(channels * size * size, self.ways)]
        module = _init_(nn.Sequential(*layers), g)
        return Optimizee(self.name, module, (x, labels), F.cross_entropy, self.batch_size, seed)


for _family in (Quadratics, DigitsMLP, DigitsReLU, ConvGlyphs):
    OPTIMIZEES.register(_family.name, _family)


def optimizee_family(name: str, split: str = "train", seed: int = 0, **options) -> _Family:
    """The family ``name`` (``OPTIMIZEES``) for ``split``, with its ``options`` checked."""
    return OPTIMIZEES.build(name, split, seed, **options)
