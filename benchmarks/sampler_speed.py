"""Episodes per second of ``EpisodeSampler`` alone: preloaded tensors vs PNG reads per item.

5-way 1-shot 15-query episodes of real Omniglot characters. One set of the release
is extracted to a temporary ``<class>/<image>.png`` tree, then sampled twice with
the same seed: from ``image-folder`` decoded once into a tensor (an index gather per
episode) and from ``image-folder`` with ``lazy=True`` (80 PNG decodes per episode).

    python benchmarks/sampler_speed.py [--data-root ../shared/data/omniglot]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from fewshot.data import EpisodeSampler
from fewshot.data.image_folder import load_image_folder

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = Path(os.environ.get("FEWSHOT_SHARED_DATA", REPO.parent / "shared" / "data")) / "omniglot"


def extract(archive: Path, out: Path) -> int:
    """``set/<Alphabet>/<characterNN>/<x>.png`` -> ``out/<Alphabet>__<characterNN>/<x>.png``."""
    count = 0
    with zipfile.ZipFile(archive) as z:
        for name in z.namelist():
            parts = name.split("/")
            if len(parts) == 4 and parts[3].endswith(".png"):
                folder = out / f"{parts[1]}__{parts[2]}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / parts[3]).write_bytes(z.read(name))
                count += 1
    return count


def episodes_per_second(dataset, episodes: int, seed: int) -> float:
    sampler = EpisodeSampler(dataset, ways=5, shots=1, queries=15, seed=seed)
    sampler.sample()  # warm-up
    start = time.perf_counter()
    for _ in range(episodes):
        episode = sampler.sample()
    elapsed = time.perf_counter() - start
    assert episode.support_x.shape == (1, 5, 1, 28, 28) and episode.query_x.shape == (1, 75, 1, 28, 28)
    return episodes / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT, help="folder with the Omniglot zips")
    parser.add_argument("--set", default="images_evaluation", help="which release zip to sample from")
    parser.add_argument("--episodes", type=int, default=2000, help="episodes timed from preloaded tensors")
    parser.add_argument("--lazy-episodes", type=int, default=100, help="episodes timed from PNG files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    archive = args.data_root / f"{args.set}.zip"
    if not archive.is_file():
        raise SystemExit(f"{archive} not found: pass --data-root <folder with the Omniglot zips>")

    with tempfile.TemporaryDirectory(prefix="fewshot-bench-") as tmp:
        os.environ["FEWSHOT_CACHE"] = str(Path(tmp) / "cache")  # leave the user's cache alone
        tree = Path(tmp) / "tree"
        start = time.perf_counter()
        files = extract(archive, tree)
        print(f"extracted {files} PNG files of {archive.name} in {time.perf_counter() - start:.1f}s")

        start = time.perf_counter()
        preloaded = load_image_folder(tree, channels=1, image_size=28)
        print(f"decoded into one tensor in {time.perf_counter() - start:.1f}s: {preloaded}")
        lazy = load_image_folder(tree, channels=1, image_size=28, lazy=True)

        torch.set_num_threads(1)
        fast = episodes_per_second(preloaded, args.episodes, args.seed)
        slow = episodes_per_second(lazy, args.lazy_episodes, args.seed)
    print("5-way 1-shot 15-query Omniglot episodes, EpisodeSampler alone, 1 thread:")
    print(f"  preloaded tensor : {fast:10.1f} episodes/s ({args.episodes} episodes)")
    print(f"  lazy PNG reads   : {slow:10.1f} episodes/s ({args.lazy_episodes} episodes)")
    print(f"  ratio            : {fast / slow:10.1f}x faster preloaded")


if __name__ == "__main__":
    main()
