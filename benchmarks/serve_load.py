"""Bounded load on a running ``fewshot serve``: latency percentiles and requests per second.

    fewshot serve runs/latest/checkpoint --port 8000 &
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --requests 200 --concurrency 4

Each request is a 5-way 1-shot task with 5 queries (drawn shapes, made here),
sent as base64 JSON, with ``--api-key`` (default: $FEWSHOT_API_KEY) when the server
needs one. Prints what it measured; a refused or failed request is one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from images import SHAPES, draw  # noqa: E402


class Failed(Exception):
    """A request the server refused or never answered: the run stops with its one line."""


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
    ap.add_argument("--api-key", default=os.environ.get("FEWSHOT_API_KEY"), help="default: $FEWSHOT_API_KEY")
    args = ap.parse_args()
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    bodies = [task(args.ways, args.queries, i) for i in range(min(args.requests, 32))]
    with httpx.Client(timeout=60, headers=headers) as client:

        def one(i: int) -> float:
            start = time.perf_counter()
            try:
                r = client.post(f"{args.url}/predict", json=bodies[i % len(bodies)])
            except httpx.HTTPError as e:
                raise Failed(f"{args.url}: {e}") from None
            if r.status_code == 401:
                need = "a different key" if args.api_key else "a key: pass --api-key or set $FEWSHOT_API_KEY"
                raise Failed(f"the server at {args.url} needs {need}")
            if r.status_code != 200:
                raise Failed(f"{args.url}/predict answered {r.status_code}: {r.text[:200]}")
            return time.perf_counter() - start

        pool = ThreadPoolExecutor(args.concurrency)
        try:
            one(0)  # warm-up, and the check of the URL and key
            start = time.perf_counter()
            latencies = sorted(pool.map(one, range(args.requests)))
            wall = time.perf_counter() - start
        except Failed as e:
            ap.exit(2, f"serve_load.py: error: {e}\n")
        finally:
            pool.shutdown(cancel_futures=True)
    pct = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    print(f"{args.requests} requests ({args.ways}-way 1-shot, {args.queries} queries), concurrency {args.concurrency}")
    print(
        f"latency ms: p50 {pct(0.50):.1f}  p90 {pct(0.90):.1f}  p99 {pct(0.99):.1f}  "
        f"mean {1000 * statistics.mean(latencies):.1f}"
    )
    print(f"throughput: {args.requests / wall:.1f} requests/s over {wall:.1f} s")


if __name__ == "__main__":
    main()
