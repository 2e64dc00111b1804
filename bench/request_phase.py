"""Where a request phase goes: evals against the best peer, same server, same invocation.

Each harness of ``--harness`` runs N samples with C in flight against the lean fake
server (``bench/lean_server.py``) at ``--latency``; the order of the harnesses rotates
at every repeat, so that a change in the machine's load does not favour one of them.
``ours-pool`` is evals against ``--replicas`` servers at once (``--base-url`` given
each: an endpoint pool); every other harness talks to the first server. ``before`` and
``before-pool`` are the same with the code of another checkout (``--baseline DIR``,
e.g. ``git archive REV | tar -x -C DIR``) on ``PYTHONPATH``: a change measured
against what it changed, in the same invocation. ``ours-cache`` is evals with its
response cache on, as users run it (a fresh cache: every request a miss and written).

Beyond the phase itself (the server's last response minus its first request's arrival,
as in ``bench/harness_overhead.py``), the servers' trace of every chat request
(``[connection, arrival, response]``, ``GET /trace``) splits the phase's excess over
the ideal N / C x latency exactly::

    phase - ideal = (lateness + empty slots) / C

* **lateness**: the sum over requests of (response - arrival - latency), the time the
  server's own event loop held answers back;
* **empty slots**: the integral over the phase of (C - requests in flight), time in
  which the harness had fewer than C requests at the server, split at the C-th
  arrival and at the last arrival into the **ramp** (before C were in flight), the
  **steady** part and the **tail** (after the last request went out: the slots that
  finish early wait for the last ones).

The **turnaround** is what a client spends between a response and its next request on
the same connection (median and 99th percentile over the run): the harness's CPU
between answers, as seen from the server.

    python bench/request_phase.py [--harness ours,lm-eval,bare] [--samples 2000]
        [--concurrency 100] [--latency 0.2] [--repeats 3] [--replicas 1]
        [--capacity 0] [--baseline DIR] [--venv bench/.peers/venv]

Prints one line per run and a Markdown table of medians (with min-max); writes the
raw runs to ``bench/out/request_phase.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from a checkout
from harness_overhead import OUT, Server, machine, measure  # noqa: E402
from harnesses import Harness, build, data_file, write_data  # noqa: E402

BENCH = Path(__file__).resolve().parent


class Servers:
    """Several lean servers seen as one by ``measure``: summed counts, the earliest
    first arrival, the latest last response, every request's trace."""

    def __init__(self, servers: list[Server]):
        self.servers = servers
        self.latency = servers[0].latency
        self.url = ",".join(s.url for s in servers)  # evals takes several as a pool

    def reset(self) -> None:
        for s in self.servers:
            s.reset()

    def stats(self) -> dict[str, Any]:
        each = [s.stats() for s in self.servers]
        firsts = [e["first_request_at"] for e in each if e["first_request_at"] is not None]
        lasts = [e["last_response_at"] for e in each if e["last_response_at"] is not None]
        return {"count": sum(e["count"] for e in each),
                "max_in_flight": sum(e["max_in_flight"] for e in each),
                "overloaded": sum(e["overloaded"] for e in each),
                "first_request_at": min(firsts, default=None),
                "last_response_at": max(lasts, default=None),
                "cpu_s": sum(e["cpu_s"] for e in each)}

    def trace(self) -> list[tuple[str, float, float]]:
        out = []
        for i, s in enumerate(self.servers):
            with urllib.request.urlopen(s.url.removesuffix("/v1") + "/trace", timeout=30) as r:
                out += [(f"{i}:{conn}", arrival, response)
                        for conn, arrival, response in json.loads(r.read())]
        return out


@dataclass
class Split:
    """One run's request phase, taken apart (seconds unless named otherwise)."""

    harness: str
    phase: float
    ideal: float
    lateness: float  # / C: the server's share of the excess
    ramp: float  # empty slots before the C-th arrival, / C
    steady: float  # empty slots between the C-th and the last arrival, / C
    tail: float  # empty slots after the last arrival, / C
    turnaround_ms: float  # median, between a response and the next request on a connection
    turnaround_p99_ms: float
    ramp_s: float  # first arrival to the C-th
    max_in_flight: int
    connections: int
    overloaded: int  # 429s the servers answered (--capacity)
    load: float
    wall: float
    cpu: float
    ok: bool

    @property
    def ratio(self) -> float:
        return self.phase / self.ideal


def split(trace: list[tuple[str, float, float]], c: int, latency: float,
          ideal: float) -> dict[str, float]:
    """The excess of the traced phase over ``ideal``, in the parts the docstring names."""
    arrivals = sorted(a for _, a, _ in trace)
    start, end = arrivals[0], max(r for _, _, r in trace)
    full_at = arrivals[min(c, len(arrivals)) - 1]
    last_arrival = arrivals[-1]
    events = sorted([(a, 1) for _, a, _ in trace] + [(r, -1) for _, _, r in trace])
    empty = {"ramp": 0.0, "steady": 0.0, "tail": 0.0}
    in_flight, at, most = 0, start, 0
    for t, step in events:
        for part, lo, hi in (("ramp", start, full_at), ("steady", full_at, last_arrival),
                             ("tail", last_arrival, end)):
            a, b = max(at, lo), min(t, hi)
            if b > a:
                empty[part] += (c - in_flight) * (b - a)
        in_flight += step
        most = max(most, in_flight)
        at = t
    lateness = sum(r - a - latency for _, a, r in trace)
    by_conn: dict[str, list[tuple[float, float]]] = {}
    for conn, a, r in trace:
        by_conn.setdefault(conn, []).append((a, r))
    gaps = []
    for pairs in by_conn.values():
        pairs.sort()
        gaps += [nxt[0] - prev[1] for prev, nxt in zip(pairs, pairs[1:]) if nxt[0] >= prev[1]]
    gaps.sort()
    pick = (lambda q: gaps[min(len(gaps) - 1, int(q * len(gaps)))] * 1000) if gaps else (
        lambda q: float("nan"))
    return {"phase": end - start, "ideal": ideal, "lateness": lateness / c,
            **{k: v / c for k, v in empty.items()},
            "turnaround_ms": pick(0.5), "turnaround_p99_ms": pick(0.99),
            "ramp_s": full_at - start, "max_in_flight": most, "connections": len(by_conn)}


def with_cache(command):
    """evals' command line with the response cache on, in the run's own folder (every
    request a miss, and written to the cache: a first run)."""
    def cached(n: int, url: str, c: int, work: Path) -> list[str]:
        argv = [arg for arg in command(n, url, c, work) if arg != "--no-cache"]
        return ["env", f"EVALS_CACHE_DIR={work / 'cache'}", *argv]
    return cached


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--harness", default="ours,lm-eval,bare",
                   help="comma-separated: ours, ours-pool, lm-eval, inspect, bare")
    p.add_argument("--venv", type=Path, default=BENCH / ".peers" / "venv")
    p.add_argument("--evals-bin", default=str(Path(sys.executable).parent / "evals"))
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--replicas", type=int, default=1, help="servers for ours-pool")
    p.add_argument("--capacity", type=int, default=0,
                   help="each server answers 429 beyond this many in flight (0: no limit)")
    p.add_argument("--baseline", type=Path,
                   help="a checkout of evals as it was, for the before and before-pool runs")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--json-out", type=Path, default=OUT / "request_phase.json")
    a = p.parse_args(argv)
    n, c = a.samples, a.concurrency
    ideal = n / c * a.latency

    harnesses: list[tuple[str, Harness, bool]] = []  # (label, harness, against the pool)
    for name in [w.strip() for w in a.harness.split(",") if w.strip()]:
        kind, pooled = name.removesuffix("-pool"), name.endswith("-pool")
        ours_like = kind in ("ours", "ours-cache", "before")
        built = build("ours" if ours_like else kind, a.venv, a.evals_bin)
        if built is None or (pooled and not ours_like):
            p.error(f"unknown harness {name!r} (ours, ours-cache, ours-pool, before, "
                    "before-pool, lm-eval, inspect, bare)")
        if isinstance(built, str):
            print(f"SKIP: {built}", flush=True)
            continue
        label = built.label
        if kind == "ours-cache":  # as users run it: the response cache on (a fresh one)
            built.command = with_cache(built.command)
            label += ", cache on"
        if kind == "before":  # evals as it was: another checkout's code on PYTHONPATH
            if a.baseline is None:
                p.error("before and before-pool need --baseline DIR")
            built.env = {**built.env, "PYTHONPATH": str(a.baseline.resolve())}
            label += f" ({a.baseline.name})"
        if pooled:
            label += f", {a.replicas} replicas"
        harnesses.append((label, built, pooled))

    OUT.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(OUT / "pycache")
    env["NO_COLOR"] = "1"
    print(f"command: python {' '.join(sys.argv)}", flush=True)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"samples {n}, concurrency {c}, latency {a.latency}s (ideal {ideal:.2f}s), "
          f"{a.repeats} repeats, {a.replicas} replica(s), capacity {a.capacity or 'unlimited'}",
          flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="request_phase-"))
    write_data(tmp, [1, n])
    extra = ("--capacity", str(a.capacity)) if a.capacity else ()
    splits: list[Split] = []
    counter = iter(range(10**6))
    try:
        with contextlib.ExitStack() as stack:
            servers = [stack.enter_context(Server(a.latency, data_file(tmp, n),
                                                  tmp / f"server-{i}.log", "lean", extra))
                       for i in range(max(1, a.replicas))]
            pool, single = Servers(servers), Servers(servers[:1])
            for label, h, pooled in harnesses:  # one untimed run each: warm caches
                measure(h, 1, pool if pooled else single, c, tmp / f"warm-{next(counter)}",
                        env, a.timeout)
            for rep in range(a.repeats):
                turn = rep % len(harnesses)
                for label, h, pooled in harnesses[turn:] + harnesses[:turn]:
                    group = pool if pooled else single
                    run = measure(h, n, group, c, tmp / f"run-{next(counter)}", env, a.timeout)
                    parts = split(group.trace(), c, a.latency, ideal)
                    s = Split(label, **parts, overloaded=group.stats()["overloaded"],
                              load=run.load, wall=run.wall, cpu=run.cpu, ok=run.ok)
                    splits.append(s)
                    print(f"    {label}: phase {s.phase:.3f}s = {s.ratio:.4f}x ideal; excess: "
                          f"lateness {s.lateness * 1000:.0f} ms, ramp {s.ramp * 1000:.0f}, "
                          f"steady {s.steady * 1000:.0f}, tail {s.tail * 1000:.0f} ms; "
                          f"turnaround {s.turnaround_ms:.2f} ms (p99 {s.turnaround_p99_ms:.2f}); "
                          f"{s.connections} connections", flush=True)
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)

    a.json_out.write_text(json.dumps({
        "machine": machine(), "command": [sys.executable, *sys.argv],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "samples": n, "concurrency": c,
        "latency": a.latency, "replicas": a.replicas, "capacity": a.capacity,
        "runs": [asdict(s) | {"ratio": s.ratio} for s in splits]}, indent=1))
    print(f"\nraw runs: {a.json_out}\n")
    print(summary(splits, [label for label, _, _ in harnesses]))
    loads = [s.load for s in splits]
    print(f"\n1-minute load average at the start of the runs: {min(loads):.2f} to "
          f"{max(loads):.2f} on {os.cpu_count()} cores")
    if not all(s.ok for s in splits):
        print("\nWARNING: some runs failed their check (see the lines above).")
        sys.exit(1)


def summary(splits: list[Split], labels: list[str]) -> str:
    def cell(values: list[float], fmt: str) -> str:
        return (f"{fmt.format(statistics.median(values))} "
                f"({fmt.format(min(values))}-{fmt.format(max(values))})")

    rows = ["| harness | phase / ideal | lateness ms | ramp ms | steady ms | tail ms "
            "| turnaround ms (p99) | runs |", "|---|---|---|---|---|---|---|---|"]
    for label in labels:
        mine = [s for s in splits if s.harness == label]
        if not mine:
            continue
        rows.append(
            f"| {label} | {cell([s.ratio for s in mine], '{:.3f}x')} "
            f"| {cell([s.lateness * 1000 for s in mine], '{:.0f}')} "
            f"| {cell([s.ramp * 1000 for s in mine], '{:.0f}')} "
            f"| {cell([s.steady * 1000 for s in mine], '{:.0f}')} "
            f"| {cell([s.tail * 1000 for s in mine], '{:.0f}')} "
            f"| {statistics.median(s.turnaround_ms for s in mine):.2f} "
            f"({statistics.median(s.turnaround_p99_ms for s in mine):.2f}) | {len(mine)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
