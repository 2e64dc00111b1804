"""Harness overhead: ``evals`` against inspect-ai and lm-eval on one fake server.

Method
------
Every harness runs the same single-turn prompts, the first N samples of ``evals``' built-in
``arithmetic`` task (``tasks.arithmetic.make_samples(N, seed=0, digits=3)``), against the
same fake OpenAI-compatible server (``bench/timed_server.py``), which runs as its own
process so that its CPU time is never charged to a harness. The server answers each
prompt with the right ``ANSWER: <target>``, so a harness that sends the prompt unchanged
and scores the reply reports accuracy 1.0; each run is checked for that and for the
server having served exactly N chat requests.

* ``evals``: ``evals run arithmetic -T count=N --model openai/fake-model --base-url URL
  --concurrency C --no-cache --no-progress --results-dir TMP``.
* inspect-ai: ``inspect eval bench/peer_tasks/inspect_arith.py -T data=FILE
  --model openai/fake-model --model-base-url URL -M responses_api=false
  --max-connections C --display none --log-dir TMP`` (``responses_api=false``: inspect
  sends unknown model names to the Responses API, which a chat-completions server lacks).
* lm-eval: ``lm_eval --model local-chat-completions --model_args model=fake-model,
  base_url=URL/chat/completions,num_concurrent=C,max_retries=1,tokenized_requests=False
  --tasks arith_bench --include_path TMP --apply_chat_template --output_path TMP``,
  with a task YAML written next to the data (``dataset_path: json``).

The peers read the prompts from a JSONL file this script writes; they run from the venv
given by ``--venv`` and are skipped, with a message, when it lacks them.

A fourth column, ``bare``, is the floor: a ~30-line client (this file, ``--bare-client``)
that posts the same prompts with one ``aiohttp`` session and ``C`` workers, checks the
answers and does nothing else. Its request phase is what this server on this machine
allows at best, so a harness's gap to the ideal can be split into the harness's share
and the server's (a single-threaded Python process answering waves of 100 requests).

Each harness runs as a child process in a new session. Its wall time is taken around
``Popen`` .. ``os.wait4``; its CPU time is the ``ru_utime + ru_stime`` that ``wait4``
returns, which covers the process and every descendant it waited for (not the server).
All harnesses run with one bytecode cache (``PYTHONPYCACHEPREFIX`` under ``bench/out``,
and ``PYTHONDONTWRITEBYTECODE`` removed) and after one untimed warm-up run each, so the
figures are for warm caches, as on a user's second run.

Measurements, each repeated ``--repeats`` times (median reported):

1. start-up: wall time of a 1-sample run at 0 ms server latency;
2. marginal CPU per sample at 0 ms latency: (CPU(N) - CPU(1)) / (N - 1);
3. at ``--latency`` (200 ms) with C in flight: the request phase (server's last response
   minus first request arrival) against the ideal N / C x latency, the most requests the
   server saw in flight, and the whole run's wall time.

Usage (from the repository root; prints a Markdown table, writes bench/out/*.json)::

    python bench/harness_overhead.py [--venv bench/.peers/venv] [--samples 2000]
        [--concurrency 100] [--latency 0.2] [--repeats 3] [--harness ours,inspect,lm-eval,bare]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from a checkout
from harnesses import Harness, bare_client, build, data_file, write_data  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
OUT = BENCH / "out"


# --------------------------------------------------------------------------- server

class Server:
    """The fake server as a child process, with its /stats routes: ``lean_server.py``
    (default) or the aiohttp-based ``timed_server.py``."""

    def __init__(self, latency: float, answers: Path, log: Path, kind: str = "lean",
                 extra: tuple[str, ...] = ()):
        self.latency, self.answers, self.log_path = latency, answers, log
        self.extra = extra  # more of the server's options (lean_server.py --capacity K)
        self.script = "lean_server.py" if kind == "lean" else "timed_server.py"
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Server:  # noqa: PYI034 - a final class
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / self.script), "--port", "0",
             "--latency", str(self.latency), "--answers", str(self.answers), *self.extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=REPO)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()  # "listening on URL", or EOF on failure
        if not line.startswith("listening on "):
            self.__exit__()
            raise RuntimeError(f"timed server failed to start; see {self.log_path}")
        self.url = line.removeprefix("listening on ")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def _call(self, method: str, path: str) -> dict[str, Any]:
        root = self.url.removesuffix("/v1")
        req = urllib.request.Request(root + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        self._call("POST", "/stats/reset")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")


# --------------------------------------------------------------------------- one run

@dataclass
class Run:
    harness: str
    n: int
    latency: float
    wall: float  # seconds, whole process
    cpu: float  # seconds, user + sys of the harness and its waited-for children
    rc: int
    requests: int  # chat requests the server finished
    max_in_flight: int
    request_phase: float | None  # seconds, last response - first request arrival
    server_cpu: float  # seconds of the server's own CPU during the run
    scored: int | None
    accuracy: float | None
    load: float  # 1-minute load average when the run started
    log: str

    @property
    def ok(self) -> bool:
        return (self.rc == 0 and self.requests == self.n and self.scored == self.n
                and self.accuracy == 1.0)


def measure(h: Harness, n: int, server: Server, concurrency: int, work: Path,
            env: dict[str, str], timeout: float) -> Run:
    work.mkdir(parents=True)
    argv = h.command(n, server.url, concurrency, work)
    log = work / "output.log"
    server.reset()
    load = os.getloadavg()[0]
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, env={**env, **h.env}, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        killer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        killer.daemon = True
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C: take the harness down with us
            os.killpg(proc.pid, signal.SIGKILL)
            os.waitpid(proc.pid, 0)
            raise
        wall = time.perf_counter() - start
        killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    stats = server.stats()
    first, last = stats["first_request_at"], stats["last_response_at"]
    check = h.check(work)
    run = Run(h.name, n, server.latency, wall, usage.ru_utime + usage.ru_stime,
              proc.returncode, stats["count"], stats["max_in_flight"],
              None if first is None else last - first, stats["cpu_s"], check.scored,
              check.accuracy, load, str(log))
    flag = "" if run.ok else "  <-- CHECK FAILED"
    print(f"  {h.name:8} n={n:<5} latency={server.latency:<4} wall {wall:7.2f}s  cpu {run.cpu:7.2f}s  "
          f"requests {run.requests}  max in flight {run.max_in_flight}  "
          f"scored {run.scored} acc {run.accuracy}  load {load:.2f}{flag}", flush=True)
    if not run.ok:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print("    | " + "\n    | ".join(tail), flush=True)
    return run


# --------------------------------------------------------------------------- summary

@dataclass
class Summary:
    label: str
    startup_s: float
    startup_cpu_s: float
    marginal_cpu_ms: float
    phase_s: float | None
    phase_ratio: float | None
    max_in_flight: int
    whole_run_s: float
    server_cpu_ms: float  # the server's CPU per request in the latency runs
    all_ok: bool


def summarize(label: str, runs: list[Run], n: int, ideal: float) -> Summary:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    one = [r for r in runs if r.n == 1]
    fast = [r for r in runs if r.n == n and r.latency == 0]
    slow = [r for r in runs if r.n == n and r.latency > 0]
    phases = [r.request_phase for r in slow if r.request_phase is not None]
    phase = med(phases) if phases else None
    return Summary(
        label, med([r.wall for r in one]), med([r.cpu for r in one]),
        (med([r.cpu for r in fast]) - med([r.cpu for r in one])) / (n - 1) * 1000,
        phase, None if phase is None else phase / ideal,
        int(med([r.max_in_flight for r in slow])), med([r.wall for r in slow]),
        med([r.server_cpu / r.n for r in slow]) * 1000, all(r.ok for r in runs))


def table(summaries: list[Summary], n: int, c: int, latency: float, ideal: float) -> str:
    ms = int(latency * 1000)
    rows: list[tuple[str, Callable[[Summary], str], str]] = [
        ("start-up: wall of a 1-sample run, 0 ms (s)", lambda s: f"{s.startup_s:.2f}", "< 1.5"),
        ("CPU of the 1-sample run (s)", lambda s: f"{s.startup_cpu_s:.2f}", ""),
        ("marginal CPU per sample, 0 ms (ms)", lambda s: f"{s.marginal_cpu_ms:.2f}", "<= 0.5"),
        (f"request phase at {ms} ms, {c} in flight (s; ideal {ideal:.1f})",
         lambda s: "-" if s.phase_s is None else f"{s.phase_s:.2f}", ""),
        ("request phase / ideal", lambda s: "-" if s.phase_ratio is None else f"{s.phase_ratio:.3f}x",
         "<= 1.03x"),
        (f"max in flight seen by the server (of {c})", lambda s: str(s.max_in_flight), str(c)),
        (f"whole run at {ms} ms, {n} samples (s)", lambda s: f"{s.whole_run_s:.2f}", "< 6"),
        ("fake server's own CPU per request in that run (ms)",
         lambda s: f"{s.server_cpu_ms:.2f}", ""),
        ("every run checked (N requests, N scored, accuracy 1.0)",
         lambda s: "yes" if s.all_ok else "NO", "yes"),
    ]
    head = "| | " + " | ".join(s.label for s in summaries) + " | target (evals) |"
    lines = [head, "|---" * (len(summaries) + 2) + "|"]
    for name, cell, target in rows:
        lines.append(f"| {name} | " + " | ".join(cell(s) for s in summaries) + f" | {target} |")
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="evals vs inspect-ai vs lm-eval: harness overhead.")
    p.add_argument("--venv", type=Path, default=BENCH / ".peers" / "venv",
                   help="venv holding inspect-ai and lm-eval (default bench/.peers/venv)")
    p.add_argument("--evals-bin", default=str(Path(sys.executable).parent / "evals"),
                   help="our console script (default: next to this Python)")
    p.add_argument("--harness", default="ours,inspect,lm-eval,bare", help="comma-separated subset")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--latency", type=float, default=0.2, help="server latency for benchmark 3 (s)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--server", choices=("lean", "aiohttp"), default="lean",
                   help="fake server: lean (asyncio protocol, ~0.03 ms/request) or aiohttp")
    p.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed")
    p.add_argument("--json-out", type=Path, default=OUT / "harness_overhead.json")
    p.add_argument("--keep", action="store_true", help="keep the temporary run directories")
    p.add_argument("--bare-client", nargs=4, metavar=("URL", "DATA", "C", "OUT"),
                   help=argparse.SUPPRESS)  # the child process of the `bare` column
    a = p.parse_args(argv)
    if a.bare_client:
        url, data, conc, out = a.bare_client
        asyncio.run(bare_client(url, Path(data), int(conc), Path(out)))
        return
    n, c = a.samples, a.concurrency
    ideal = n / c * a.latency

    wanted = [w.strip() for w in a.harness.split(",") if w.strip()]
    harnesses: list[Harness] = []
    for name in wanted:
        built = build(name, a.venv, a.evals_bin)
        if built is None:
            p.error(f"unknown harness {name!r} (ours, inspect, lm-eval, bare)")
        elif isinstance(built, str):
            print(f"SKIP: {built}", flush=True)
        else:
            harnesses.append(built)

    OUT.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(OUT / "pycache")  # one warm bytecode cache for all
    env["NO_COLOR"] = "1"
    print(f"command: python {' '.join(sys.argv)}", flush=True)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"samples {n}, concurrency {c}, latency {a.latency}s (ideal request phase "
          f"{ideal:.2f}s), {a.repeats} repeats", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="harness_overhead-"))
    write_data(tmp, [1, n])
    runs: dict[str, list[Run]] = {}
    counter = iter(range(10**6))
    try:
        with Server(0.0, data_file(tmp, n), tmp / "server-0.log", a.server) as fast, \
                Server(a.latency, data_file(tmp, n), tmp / "server-slow.log", a.server) as slow:
            for h in harnesses:
                print(f"{h.label}: warm-up run (not counted)", flush=True)
                measure(h, 1, fast, c, tmp / f"{h.name}-{next(counter)}", env, a.timeout)
                got = runs.setdefault(h.name, [])
                for count, server in ((1, fast), (n, fast), (n, slow)):
                    for _ in range(a.repeats):
                        got.append(measure(h, count, server, c, tmp / f"{h.name}-{next(counter)}",
                                           env, a.timeout))
    finally:
        if not a.keep:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"run directories kept under {tmp}")

    summaries = [summarize(h.label, runs[h.name], n, ideal) for h in harnesses if h.name in runs]
    a.json_out.write_text(json.dumps({
        "machine": machine(), "command": [sys.executable, *sys.argv], "samples": n,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "concurrency": c, "latency": a.latency, "repeats": a.repeats,
        "summaries": [asdict(s) for s in summaries],
        "runs": {k: [asdict(r) for r in v] for k, v in runs.items()}}, indent=1))
    print(f"\nraw runs: {a.json_out}\n")
    print(table(summaries, n, c, a.latency, ideal))
    loads = [r.load for v in runs.values() for r in v]
    if loads:
        print(f"\n1-minute load average at the start of the timed runs: {min(loads):.2f} to "
              f"{max(loads):.2f} on {os.cpu_count()} cores (other processes share the machine "
              "when it is above ~1)")
    if not all(s.all_ok for s in summaries):
        print("\nWARNING: some runs failed their check (see the lines above).")
        sys.exit(1)


if __name__ == "__main__":
    main()
