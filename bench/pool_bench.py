"""Endpoint pools: the request phase of one model on one replica, and on a pool of three.

Each replica is a lean fake OpenAI server (``bench/lean_server.py``) in a process of its
own, with a fixed latency and a capacity: beyond ``--capacity`` requests in flight it
answers 429 with Retry-After 0.1 s, as an overloaded vLLM replica or a rate-limited
endpoint does (0: no limit). The same ``evals run`` (in this process:
``evals.run.execute``, the arithmetic task, no cache) sends ``--requests`` requests at
``--concurrency`` in flight, once against one replica and once against three
(``--base-url`` three times: adaptive concurrency per endpoint), in alternating order for
``--repeats`` rounds. Reported per run: the request phase (the servers' first request to
their last response) against the ideal, requests x latency / min(concurrency, replicas x
capacity); the 429s the replicas answered; errors; every generation recorded once.

    python bench/pool_bench.py [--requests 900] [--latency 0.1] [--capacity 16]
        [--concurrency 48] [--repeats 1]
    python bench/pool_bench.py --requests 10000 --latency 0.2 --capacity 0 --concurrency 1000
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import evals.orchestrator as run_module  # noqa: E402
from evals.records import RunLog, iter_records  # noqa: E402
from evals.run import RunConfig, execute  # noqa: E402
from harness_overhead import Server  # noqa: E402
from harnesses import data_file, write_data  # noqa: E402
from request_phase import Servers  # noqa: E402


def one(servers: Servers, replicas: int, args: argparse.Namespace) -> dict:
    servers.reset()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(tasks=["arithmetic"], models=["openai/fake-model"],
                        model_options={"base_url": servers.url},
                        task_params={"count": str(args.requests)},
                        concurrency=args.concurrency, retries=50, cache=False)
        log = RunLog(Path(tmp) / "r")
        began = time.perf_counter()
        stats = execute(cfg, log, ["bench"])
        wall = time.perf_counter() - began
        keys = Counter((r["sample_id"], r["gen"]) for r in iter_records(log.samples_path))
    served = servers.stats()
    room = min(args.concurrency, replicas * args.capacity) if args.capacity else args.concurrency
    return {"replicas": replicas, "wall": wall,
            "phase": served["last_response_at"] - served["first_request_at"],
            "ideal": args.requests * args.latency / room, "errors": stats.errors,
            "overloaded": served["overloaded"],
            "once": len(keys) == args.requests and set(keys.values()) == {1}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=900)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--capacity", type=int, default=16, help="per replica; 0: no limit")
    ap.add_argument("--concurrency", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    run_module.backoff = lambda attempt, retry_after: retry_after or 0.05  # the server's advice
    print(f"{args.requests} requests, latency {args.latency:g} s, capacity "
          f"{args.capacity or 'unlimited'} per replica, --concurrency {args.concurrency}")
    extra = ("--capacity", str(args.capacity)) if args.capacity else ()
    results: dict[int, list[dict]] = {1: [], 3: []}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        write_data(Path(tmp), [args.requests])
        servers = [stack.enter_context(Server(args.latency, data_file(Path(tmp), args.requests),
                                              Path(tmp) / f"server-{i}.log", "lean", extra))
                   for i in range(3)]
        for rep in range(args.repeats):
            for replicas in ((1, 3) if rep % 2 == 0 else (3, 1)):
                r = one(Servers(servers[:replicas]), replicas, args)
                results[replicas].append(r)
                print(f"{replicas} replica(s): phase {r['phase']:.2f} s (ideal {r['ideal']:.2f} s, "
                      f"{r['phase'] / r['ideal']:.3f}x), wall {r['wall']:.2f} s, 429s answered "
                      f"{r['overloaded']}, errors {r['errors']}, every generation once: "
                      f"{r['once']}", flush=True)
    for replicas, runs in results.items():
        ratios = [r["phase"] / r["ideal"] for r in runs]
        print(f"{replicas} replica(s), median of {len(runs)}: {statistics.median(ratios):.3f}x "
              f"({min(ratios):.3f}x-{max(ratios):.3f}x)")


if __name__ == "__main__":
    main()
