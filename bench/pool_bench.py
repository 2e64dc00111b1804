"""Endpoint pools: the request phase of one model on one replica, and on a pool of three.

Each replica is a fake OpenAI server (``evals.fake_openai.FakeServer``) with a fixed
latency and a capacity: beyond ``--capacity`` requests in flight it answers 429 with
Retry-After 0.1 s, as an overloaded vLLM replica or a rate-limited endpoint does. The
same ``evals run`` (in process: ``evals.run.execute``, the arithmetic task, no cache)
sends ``--requests`` requests at ``--concurrency`` in flight, once against one replica
and once against three (``--base-url`` three times: adaptive concurrency per endpoint).
Reported: the run's wall time, the ideal (requests x latency / (replicas x capacity)),
the 429s the replicas answered, and every generation recorded once.

    python bench/pool_bench.py [--requests 900] [--latency 0.1] [--capacity 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import evals.run as run_module  # noqa: E402
from evals.fake_openai import FakeServer  # noqa: E402
from evals.records import RunLog, iter_records  # noqa: E402
from evals.run import RunConfig, execute  # noqa: E402


def one(replicas: int, args: argparse.Namespace) -> dict:
    servers = [FakeServer(latency=args.latency, capacity=args.capacity, record=False)
               for _ in range(replicas)]
    for s in servers:
        s.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = RunConfig(tasks=["arithmetic"], models=["openai/fake-model"],
                            model_options={"base_url": ",".join(s.url for s in servers)},
                            task_params={"count": str(args.requests)},
                            concurrency=args.concurrency, retries=50, cache=False)
            log = RunLog(Path(tmp) / "r")
            began = time.perf_counter()
            stats = execute(cfg, log, ["bench"])
            wall = time.perf_counter() - began
            keys = Counter((r["sample_id"], r["gen"]) for r in iter_records(log.samples_path))
    finally:
        for s in servers:
            s.stop()
    ideal = args.requests * args.latency / (replicas * args.capacity)
    return {"replicas": replicas, "wall": wall, "ideal": ideal, "errors": stats.errors,
            "overloaded": sum(s.overloaded for s in servers),
            "once": len(keys) == args.requests and set(keys.values()) == {1}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=900)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--capacity", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=48)
    args = ap.parse_args()
    run_module.backoff = lambda attempt, retry_after: retry_after or 0.05  # the server's advice
    print(f"{args.requests} requests, latency {args.latency:g} s, capacity {args.capacity} "
          f"per replica, --concurrency {args.concurrency}")
    for replicas in (1, 3):
        r = one(replicas, args)
        print(f"{r['replicas']} replica(s): {r['wall']:.2f} s (ideal {r['ideal']:.2f} s, "
              f"{r['wall'] / r['ideal']:.2f}x), 429s answered {r['overloaded']}, "
              f"errors {r['errors']}, every generation once: {r['once']}")


if __name__ == "__main__":
    main()
