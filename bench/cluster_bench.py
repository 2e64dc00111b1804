"""The driver's CPU per sample: a run in one process, and the same run on a local Ray
cluster of two worker nodes (``--cluster``), where the nodes do the model calls and
the grading and the driver only plans, sends units and writes records.

Starts a head (no CPUs) and two worker nodes (one CPU each) on 127.0.0.1, and one fake
OpenAI server (``--latency``, no capacity limit). Each run is ``evals.run.execute`` in
this process (the arithmetic task, ``--samples`` problems, no cache); the driver's CPU
is this process's user+system time over the run (``resource.getrusage``), which under
``--cluster`` excludes the nodes' work. Ray is stopped at the end.

    python bench/cluster_bench.py [--samples 2000] [--latency 0.05] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals.fake_openai import FakeServer  # noqa: E402
from evals.records import RunLog  # noqa: E402
from evals.run import RunConfig, execute  # noqa: E402

RAY = str(Path(sys.executable).parent / "ray")


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(args, server, cluster: str | None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(tasks=["arithmetic"], models=["openai/fake-model"],
                        model_options={"base_url": server.url},
                        task_params={"count": str(args.samples)},
                        concurrency=args.concurrency, cache=False, cluster=cluster)
        c0, t0 = cpu(), time.perf_counter()
        stats = execute(cfg, RunLog(Path(tmp) / "r"), ["bench"])
        assert stats.done == args.samples and stats.errors == 0
        return cpu() - c0, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=0",
                    "--node-ip-address=127.0.0.1", "--include-dashboard=false"],
                   env=env, check=True, capture_output=True)
    try:
        for name in ("a", "b"):
            subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1",
                            "--node-ip-address=127.0.0.1"], env=env, check=True,
                           capture_output=True)
        with FakeServer(latency=args.latency, record=False) as server:
            run(args, server, None)  # warm-up: imports, task build
            local = run(args, server, None)
            on_ray = run(args, server, f"127.0.0.1:{port}")
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True)
    for name, (spent, wall) in (("one process", local), ("Ray, 2 worker nodes", on_ray)):
        print(f"{name:22s} driver CPU {1e3 * spent / args.samples:.3f} ms/sample, "
              f"wall {wall:.1f} s ({args.samples} samples, latency {args.latency:g} s)")


if __name__ == "__main__":
    main()
