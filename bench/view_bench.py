"""evals view on a large run: how long it takes to open and to page.

Writes a synthetic run once (bench/metrics_bench.py's generator: 100,000 problems x 64
samples by default, about 3.5 GB of records and 650 MB of index in /tmp), starts
``evals view --no-browser`` in a child process as a user does, and times over HTTP:

* ``open``: from the command's start to the first page of samples (the server up, the
  run's index read into columns, the runs list, the filter facets, 50 rows);
* pages: the next pages, sorted pages (score, latency, tokens) at deep offsets, filtered
  pages (a domain, an outcome, no answer), a sample page with its counterparts, and the
  verdicts-that-differ list (the first request of each filter or sort included);
* ``metrics``: until the run's metric rows are computed (a worker process, in the
  background: the page shows them when ready);
* the server's peak resident memory (VmHWM).

    python bench/view_bench.py                          # 100,000 x 64
    python bench/view_bench.py --problems 10000 --samples 16
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from metrics_bench import generate  # noqa: E402


def get(url: str) -> tuple[float, dict]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as res:
        body = json.loads(res.read())
    return time.perf_counter() - start, body


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/evals-view-bench"))
    args = ap.parse_args()
    run_id = f"bench-{args.problems}x{args.samples}"
    run_dir = args.dir / "results" / run_id
    samples = run_dir / "samples.jsonl"
    if not samples.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        generate(samples, args.problems, args.samples)
        print(f"generated {samples} in {time.perf_counter() - t:.0f} s")
    (run_dir / "run.json").write_text(json.dumps(
        {"run_id": run_id, "status": "completed", "started": "2025-01-01T00:00:00",
         "config": None}))
    print(f"records: {samples.stat().st_size / 2**30:.2f} GiB, index "
          f"{(run_dir / 'samples.jsonl.index2').stat().st_size / 2**20:.0f} MiB")

    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "evals.cli", "view", run_id, "--no-browser",
                             "--results-dir", str(args.dir / "results")],
                            cwd=HERE.parent, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    try:
        url = re.search(r"http://\S+/", proc.stdout.readline()).group(0)
        up = time.perf_counter() - start
        get(url + "api/runs")
        base = f"{url}api/runs/{run_id}/"
        _, facets = get(base + "facets")
        _, first = get(base + "samples?limit=50")
        opened = time.perf_counter() - start
        print(f"open: {opened:.2f} s (server up {up:.2f} s), {first['total']:,} records")
        metrics_from = time.perf_counter()

        pages = {
            "next pages (file order)": [f"samples?offset={50 * k}" for k in range(1, 11)],
            "deep page (offset 3,000,000)": ["samples?offset=3000000"],
            "sort by score, desc, deep": [f"samples?sort=score&desc=1&offset={o}"
                                          for o in (0, 50, 1_000_000, 5_000_000)],
            "sort by latency": [f"samples?sort=latency&offset={o}" for o in (0, 50, 3_000_000)],
            "sort by tokens, desc": [f"samples?sort=tokens&desc=1&offset={o}" for o in (0, 50)],
            "filter domain + incorrect": [f"samples?domain={facets['domains'][0]}&outcome="
                                          f"incorrect&offset={o}" for o in (0, 50, 100)],
            "filter no answer, by tokens": [f"samples?no_answer=1&sort=tokens&offset={o}"
                                            for o in (0, 50)],
            "sample page (record + counterparts)": [f"records/{i}" for i in
                                                    (0, 123_457, first["total"] - 1)],
        }
        worst = 0.0
        for name, paths in pages.items():
            times = [get(base + p)[0] for p in paths]
            worst = max(worst, max(times))
            print(f"{name:40s} first {times[0] * 1000:6.0f} ms, median "
                  f"{statistics.median(times) * 1000:6.0f} ms, max {max(times) * 1000:6.0f} ms "
                  f"({len(times)} requests)")
        _, groups = get(url + "api/groups")
        g = groups[0]
        t, d = get(f"{url}api/differ?a={run_id}:{g['group']}&b={run_id}:{g['group']}")
        print(f"{'verdicts that differ (first request)':40s} {t * 1000:6.0f} ms ({d['common']:,} "
              f"problems)")
        print(f"slowest page: {worst * 1000:.0f} ms")
        while get(base + "metrics")[1]["state"] == "computing":
            time.sleep(0.2)
        print(f"metrics ready {time.perf_counter() - metrics_from:.1f} s after the first page "
              "(computed in a worker process)")
        print(f"server peak RSS: {peak_rss_mb(proc.pid):.0f} MB")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
