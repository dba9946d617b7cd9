"""Relation Networks training-step time: the split first convolution against concatenated pairs.

``RelationModule`` convolves the N class maps and the Q query maps with the two halves
of its first kernel and forms the N*Q pairs by a broadcast sum. The peer, timed in the
same run on the same model and episodes, is the paper's layout: every pair concatenated
along channels [N*Q, 2C, h, w] and convolved whole (the authors' code and the usual
ports). One step = forward + backward + Adam on one sampled episode, Conv4Maps on 28x28
Omniglot (channels-last, as the trainer runs metric learners on CPU); the largest score
difference of the two on one episode is printed too (float rounding only).

    python benchmarks/relation_speed.py
    python benchmarks/relation_speed.py --cells 20w5s:15 --threads 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from protonet_speed import load, timed  # the sibling benchmark: dataset fallback, interleaved timing

from fewshot.algorithms.episode_math import embed_episode, one_hot
from fewshot.algorithms.metric import Conv4Maps, RelationNet
from fewshot.data import Episode, EpisodeSampler


def concatenated_pairs(relation, classes: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """The peer: classes [B, N, C, h, w], queries [B, Q, C, h, w] -> [B, Q, N], every pair convolved whole."""
    (b, n), q = classes.shape[:2], queries.shape[1]
    left = classes[:, None].expand(b, q, *classes.shape[1:])  # [B, Q, N, C, h, w]
    right = queries[:, :, None].expand(b, q, n, *queries.shape[2:])  # [B, Q, N, C, h, w]
    pairs = torch.cat([left, right], dim=3).flatten(0, 2)  # [B*Q*N, 2C, h, w]
    return torch.sigmoid(relation.fc(relation.convs(pairs))).view(b, q, n)


def peer_scores(model: RelationNet, episode: Episode) -> torch.Tensor:
    """``model.logits`` with the relation module run the peer's way: [B, NQ, N]."""
    support_z, query_z = embed_episode(model.encoder, episode)
    relation = lambda c, q: concatenated_pairs(model.relation, c, q)  # noqa: E731
    return model.scores(support_z, episode.support_y, query_z, episode.ways, relation)


def peer_loss(model: RelationNet, episode: Episode) -> torch.Tensor:
    scores = peer_scores(model, episode)
    return F.mse_loss(scores, one_hot(episode.query_y, scores.shape[-1], scores.dtype))


def time_cell(dataset, ways: int, shots: int, queries: int, steps: int, rounds: int) -> tuple[float, float, float]:
    """Seconds per step (split conv, concatenated pairs) and their largest score difference."""
    channels, size = dataset.data.shape[1], dataset.data.shape[-1]
    sampler = EpisodeSampler(dataset, ways, shots, queries, seed=0)
    torch.manual_seed(0)
    model = RelationNet(Conv4Maps(in_channels=channels, image_size=size)).train()
    model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(loss_fn) -> None:
        loss = loss_fn(sampler.sample())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    fixed = sampler.sample()
    with torch.no_grad():
        diff = float((model.logits(fixed) - peer_scores(model, fixed)).abs().max())
    fns = {"split": lambda: step(lambda e: model.meta_loss(e)[0]), "pairs": lambda: step(lambda e: peer_loss(model, e))}
    seconds = timed(fns, steps, rounds, torch.device("cpu"))
    return seconds["split"], seconds["pairs"], diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=["5w1s:19", "20w1s:10"], help="WAYSwSHOTSs:QUERIES")
    parser.add_argument("--dataset", default="omniglot", help="omniglot (default) or glyphs")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/omniglot"))
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset, name = load(args.dataset, args.data_root)
    shape = "x".join(str(d) for d in dataset.data.shape[1:])
    print(f"dataset {name} train {shape}; {torch.get_num_threads()} CPU thread(s), torch {torch.__version__}")
    print(f"timing: median of {args.rounds} interleaved rounds of {args.steps} steps each\n")
    header = ("cell", "queries", "split conv", "concat pairs", "speed-up", "max |score diff|")
    print("{:>8} {:>7} {:>12} {:>13} {:>9} {:>17}".format(*header))
    for cell in args.cells:
        setting, queries = cell.split(":")
        ways, shots = (int(v) for v in setting.rstrip("s").split("w"))
        split, pairs, diff = time_cell(dataset, ways, shots, int(queries), args.steps, args.rounds)
        print(
            f"{setting:>8} {queries:>7} {1e3 * split:9.1f} ms {1e3 * pairs:10.1f} ms {pairs / split:8.2f}x {diff:17.1e}"
        )


if __name__ == "__main__":
    main()
