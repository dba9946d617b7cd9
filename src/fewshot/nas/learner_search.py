"""Search for the few-shot learner itself: the backbone of ProtoNet, on episodes.

* DARTS: a ``Supernet`` inside ``ProtoNet``; network weights trained on the query loss of training
  episodes, architecture weights on the query loss of validation episodes (classes unseen in training).
* Evolution (or any query strategy) over the DARTS cell space: each query trains ProtoNet with the
  genotype's ``DartsNetwork`` for a few episodes and scores it on fixed validation episodes.

Only the core's public API is used (``fewshot.data``, ``fewshot.algorithms.metric.ProtoNet``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from fewshot.nas.darts.network import DartsNetwork
from fewshot.nas.darts.search import DartsResult, DartsSearch
from fewshot.nas.darts.supernet import Supernet
from fewshot.nas.problem import Evaluation
from fewshot.nas.spaces.darts_cells import DartsCellSpace


@dataclass
class EpisodeSettings:
    """Where episodes come from: a dataset name (or ``FewShotDataset`` objects) and the N-way K-shot setting."""

    dataset: object = "glyphs"
    train_split: str = "train"
    val_split: str = "val"
    data_root: str | None = None
    ways: int = 5
    shots: int = 1
    queries: int = 5
    meta_batch: int = 1
    device: str = "cpu"
    _loaded: dict = field(default_factory=dict, repr=False, compare=False)

    def load(self, split: str):
        if not isinstance(self.dataset, str):
            return self.dataset[split] if isinstance(self.dataset, dict) else self.dataset
        if split not in self._loaded:
            from fewshot.data import get_dataset

            self._loaded[split] = get_dataset(self.dataset, root=self.data_root, split=split)
        return self._loaded[split]

    def sampler(self, split: str, seed: int):
        from fewshot.data import EpisodeSampler

        return EpisodeSampler(
            self.load(split),
            ways=self.ways,
            shots=self.shots,
            queries=self.queries,
            seed=seed,
            batch_size=self.meta_batch,
            device=self.device,
        )

    def describe(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "_loaded"}
        d["dataset"] = self.dataset if isinstance(self.dataset, str) else "custom"
        return d


def _protonet(encoder):
    from fewshot.algorithms.metric import ProtoNet

    return ProtoNet(encoder)


def _query_loss(model, episode):
    return model.meta_loss(episode)[0]


def darts_protonet(
    episodes: EpisodeSettings,
    *,
    in_channels: int = 1,
    channels: int = 8,
    layers: int = 3,
    nodes: int = 3,
    stem_stride: int = 2,
    epochs: int = 10,
    steps_per_epoch: int = 50,
    seed: int = 0,
    progress=None,
    **darts_options,
) -> DartsResult:
    """DARTS on ProtoNet's episodic loss; ``darts_options`` go to ``DartsSearch`` (order, alpha_lr, aux_skip, ...)."""
    torch.manual_seed(seed)
    supernet = Supernet(in_channels, channels, layers, nodes, stem_stride=stem_stride, seed=seed)
    model = _protonet(supernet).to(episodes.device)
    search = DartsSearch(model, supernet, _query_loss, **darts_options)
    train = _batches(episodes.sampler(episodes.train_split, seed))
    val = _batches(episodes.sampler(episodes.val_split, seed + 1))
    return search.run(train, val, epochs, steps_per_epoch, progress=progress)


def darts_fomaml(
    episodes: EpisodeSettings,
    *,
    in_channels: int = 1,
    channels: int = 8,
    layers: int = 3,
    nodes: int = 3,
    stem_stride: int = 2,
    inner_lr: float = 0.4,
    inner_steps: int = 1,
    epochs: int = 10,
    steps_per_epoch: int = 50,
    seed: int = 0,
    progress=None,
    **darts_options,
) -> DartsResult:
    """DARTS on first-order MAML's episodic loss: the supernet (with a ``ways``-class head) is MAML's model; its
    architecture weights are kept out of the inner loop and trained on validation episodes' query loss."""
    from fewshot.algorithms.gradient import FOMAML

    torch.manual_seed(seed)
    supernet = Supernet(
        in_channels, channels, layers, nodes, num_classes=episodes.ways, stem_stride=stem_stride, seed=seed
    )
    supernet.move_alphas_out().to(episodes.device)
    model = FOMAML(supernet, inner_lr=inner_lr, inner_steps=inner_steps).to(episodes.device)
    search = DartsSearch(model, supernet, _query_loss, **darts_options)
    train = _batches(episodes.sampler(episodes.train_split, seed))
    val = _batches(episodes.sampler(episodes.val_split, seed + 1))
    return search.run(train, val, epochs, steps_per_epoch, progress=progress)


def _batches(sampler):
    """An endless iterable of episodes from a sampler (re-iterable)."""

    class _Endless:
        def __iter__(self):
            while True:
                yield from sampler

    return _Endless()


def train_protonet(encoder, episodes: EpisodeSettings, steps: int, lr: float, seed: int):
    """ProtoNet with ``encoder`` trained for ``steps`` episodes with Adam; returns the algorithm."""
    torch.manual_seed(seed)
    model = _protonet(encoder).to(episodes.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    it = iter(_batches(episodes.sampler(episodes.train_split, seed)))
    model.train()
    for _ in range(steps):
        loss, _ = model.meta_loss(next(it))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def episode_accuracy(model, episodes: EpisodeSettings, split: str, count: int, seed: int) -> tuple[float, float]:
    """Mean query accuracy (%) and 95% CI half-width over ``count`` fixed episodes of ``split``."""
    model.eval()
    it = iter(_batches(episodes.sampler(split, seed)))
    accs = []
    for _ in range(count):
        _, metrics = model.meta_loss(next(it))
        accs.append(100.0 * metrics["accuracy"])
    model.train()
    values = np.asarray(accs)
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


class FewShotBackboneProblem:
    """A search problem over DARTS genotypes: a query trains ProtoNet with the genotype's network for
    ``train_steps`` episodes and returns its mean accuracy on ``eval_episodes`` fixed validation episodes."""

    mode, optimum = "max", None

    def __init__(
        self,
        episodes: EpisodeSettings,
        space: DartsCellSpace | None = None,
        *,
        in_channels: int = 1,
        channels: int = 8,
        layers: int = 3,
        stem_stride: int = 2,
        train_steps: int = 100,
        eval_episodes: int = 50,
        lr: float = 1e-3,
        name: str = "fewshot-darts-cells",
    ):
        self.episodes, self.space = episodes, space or DartsCellSpace(nodes=3)
        self.network = {"in_channels": in_channels, "channels": channels, "layers": layers, "stem_stride": stem_stride}
        self.train_steps, self.eval_episodes, self.lr, self.name = train_steps, eval_episodes, lr, name

    def evaluate(self, genotype, rng: np.random.Generator) -> Evaluation:
        t0 = time.perf_counter()
        seed = int(rng.integers(2**31))
        torch.manual_seed(seed)
        encoder = DartsNetwork(genotype, **self.network)
        model = train_protonet(encoder, self.episodes, self.train_steps, self.lr, seed)
        acc, ci = episode_accuracy(model, self.episodes, self.episodes.val_split, self.eval_episodes, seed=12345)
        params = sum(p.numel() for p in encoder.parameters())
        return Evaluation(acc, acc, {"ci95": ci, "params": params, "train_s": round(time.perf_counter() - t0, 3)})
