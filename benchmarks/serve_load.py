"""Bounded load on a running ``fewshot serve``: latency percentiles and requests per second.

    fewshot serve runs/latest/checkpoint --port 8000 &
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --requests 200 --concurrency 4

Each request is a 5-way 1-shot task with 5 queries (drawn shapes, made here),
sent as base64 JSON. Prints what it measured; fails if any request fails.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from images import SHAPES, draw  # noqa: E402


def task(ways: int, queries: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)

    def b64(shape):
        buf = io.BytesIO()
        draw(shape, rng).save(buf, format="PNG")
        return base64.b64encode(buf.getvalue()).decode()

    shapes = SHAPES[:ways]
    return {
        "support": [{"label": s, "image": b64(s)} for s in shapes],
        "query": [b64(shapes[i % ways]) for i in range(queries)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--queries", type=int, default=5)
    ap.add_argument("--api-key", default=None)
    args = ap.parse_args()
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    bodies = [task(args.ways, args.queries, i) for i in range(min(args.requests, 32))]
    with httpx.Client(timeout=60, headers=headers) as client:
        client.post(f"{args.url}/predict", json=bodies[0]).raise_for_status()  # warm-up

        def one(i: int) -> float:
            start = time.perf_counter()
            r = client.post(f"{args.url}/predict", json=bodies[i % len(bodies)])
            r.raise_for_status()
            return time.perf_counter() - start

        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            latencies = sorted(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - start
    pct = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    print(f"{args.requests} requests ({args.ways}-way 1-shot, {args.queries} queries), concurrency {args.concurrency}")
    print(
        f"latency ms: p50 {pct(0.50):.1f}  p90 {pct(0.90):.1f}  p99 {pct(0.99):.1f}  "
        f"mean {1000 * statistics.mean(latencies):.1f}"
    )
    print(f"throughput: {args.requests / wall:.1f} requests/s over {wall:.1f} s")


if __name__ == "__main__":
    main()
