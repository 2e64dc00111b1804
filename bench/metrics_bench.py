"""Metrics at scale: every metric of 100,000 problems x 64 samples, read from disk.

Writes a realistic samples.jsonl once (answers that split votes, scores, usage,
cost, latency, a few errors, length cut-offs and unanswered generations), then,
each in a fresh child process so that peak RSS is the step's own:

* ``read``: ``iter_records`` alone (JSON parsing: the floor),
* ``metrics``: one ``Aggregator`` pass (what ``summarize`` + ``cost_summary``
  compute, in one read), then ``metric_rows`` (accuracy, pass@k, maj@k for
  k = 1, 2, 4, ..., 64, with intervals) and ``cost_rows``.

Prints wall time, CPU time (user + sys) and peak RSS of each.

    python bench/metrics_bench.py                       # 100,000 x 64, about 2 GB in /tmp
    python bench/metrics_bench.py --problems 10000 --samples 16 --profile
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOMAINS = ("Physics", "Chemistry", "Biology")


LEAN = ("task", "model", "setting", "sample_id", "gen", "status", "score", "answer", "usage",
        "latency", "cost", "finish_reason", "settings")  # what the metrics read


def generate(path: Path, problems: int, samples: int, seed: int = 0, lean: bool = False) -> None:
    """One (task, model, setting) of ``problems`` x ``samples`` generations.

    ``lean`` keeps only the fields the metrics read: the parse-cost floor.
    """
    import orjson

    rng = random.Random(seed)
    settings = {"effort": "high", "thinking_budget": None, "max_tokens": 16384,
                "samples": samples}
    setting = f"effort=high,max_tokens=16384,n={samples}"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for p in range(problems):
            # Problem difficulty: a model's chance of the right answer, spread over [0, 1]
            # (many easy problems, some hard ones), and 1-4 distractors that split votes.
            skill = rng.betavariate(2.0, 1.2)
            target = str(rng.randint(0, 9999))
            wrong = [str(rng.randint(0, 9999)) for _ in range(rng.randint(1, 4))]
            prompt = rng.randint(150, 1200)
            meta = {"domain": DOMAINS[p % 3], "difficulty": round(1 - skill, 2)}
            sid = f"bench-{p:06d}"
            lines = []
            for g in range(samples):
                rec = {"task": "bench", "model": "openai/bench-model", "setting": setting,
                       "sample_id": sid, "gen": g}
                if rng.random() < 0.005:  # a failed call
                    rec.update(status="error", score=None, error="HTTP 500 (fake)",
                               settings=settings)
                    lines.append(orjson.dumps(rec))
                    continue
                completion = int(rng.lognormvariate(7.0, 0.6))
                length = completion > 16384
                if length or rng.random() < 0.02:
                    answer, status, score = None, "no_answer", 0.0
                elif rng.random() < skill:
                    answer, status, score = target, "ok", 1.0
                else:
                    answer, status, score = rng.choice(wrong), "ok", 0.0
                completion = min(completion, 16384)
                reasoning = int(completion * 0.8)
                rec.update(status=status, score=score, answer=answer, target=target,
                           completion=f"... ANSWER: {answer}", reasoning=None,
                           finish_reason="length" if length else "stop", explanation=None,
                           usage={"prompt": prompt / samples,  # one request for all N: its share
                                  "completion": float(completion),
                                  "reasoning": float(reasoning)},
                           latency=round(completion / 80.0 + rng.random(), 3),
                           cost=(prompt * 1.1 + completion * 4.4) / 1e6, cached=False,
                           metadata=meta, score_metadata=None, settings=settings)
                if lean:
                    rec = {k: rec[k] for k in LEAN}
                lines.append(orjson.dumps(rec))
            f.write(b"\n".join(lines) + b"\n")
    os.replace(tmp, path)


def measure(mode: str, path: Path, profile: bool) -> dict:
    """Run in a child: one step, with its own getrusage figures."""
    from evals.metrics import Aggregator
    from evals.records import iter_records

    start, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    out: dict = {"mode": mode}
    if mode == "read":
        out["records"] = sum(1 for _ in iter_records(path))
    else:
        prof = None
        if profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        # Phases in CPU seconds: wall time is at the mercy of whatever else runs.
        t = time.process_time()
        agg = Aggregator().update(iter_records(path))
        out["update_s"] = time.process_time() - t
        t = time.process_time()
        rows = agg.metric_rows()
        out["metric_rows_s"] = time.process_time() - t
        t = time.process_time()
        costs = agg.cost_rows()
        out["cost_rows_s"] = time.process_time() - t
        if prof is not None:
            import pstats
            prof.disable()
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(18)
        out["rows"] = len(rows)
        acc = next(r for r in rows if r.metric == "accuracy")
        maj = max((r for r in rows if r.metric.startswith("maj@")), key=lambda r: r.k or 0)
        out["accuracy"] = [acc.value, acc.ci_low, acc.ci_high]
        out[maj.metric] = maj.value
        out["cost_per_problem"] = next(iter(costs.values())).cost_per_problem
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out["wall_s"] = time.perf_counter() - start
    out["cpu_s"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    out["peak_rss_mb"] = r1.ru_maxrss / 1024  # KiB on Linux
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--dir", type=Path, default=None,
                    help="keep the generated file here and reuse it (default: a temp dir)")
    ap.add_argument("--profile", action="store_true", help="cProfile the metrics step")
    ap.add_argument("--lean", action="store_true",
                    help="records with only the fields metrics read (no text, target, metadata)")
    ap.add_argument("--measure", choices=("read", "metrics"), help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure(a.measure, a.file, a.profile)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"samples-{a.problems}x{a.samples}{'-lean' if a.lean else ''}.jsonl"
        if not path.exists():
            t = time.perf_counter()
            generate(path, a.problems, a.samples, lean=a.lean)
            print(f"generated {path.name}: {path.stat().st_size / 1e9:.2f} GB in "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
        size = path.stat().st_size
        results = []
        for mode in ("read", "metrics"):
            cmd = [sys.executable, __file__, "--measure", mode, "--file", str(path)]
            done = subprocess.run(cmd + (["--profile"] if a.profile else []),
                                  stdout=subprocess.PIPE, text=True, check=True)
            results.append(json.loads(done.stdout))
    n = a.problems * a.samples
    print(f"\n{a.problems:,} problems x {a.samples} samples = {n:,} records "
          f"({'lean, ' if a.lean else ''}{size / n:.0f} bytes each); "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'step':<10}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}{'records/s':>12}")
    for r in results:
        print(f"{r['mode']:<10}{r['wall_s']:>9.1f}{r['cpu_s']:>9.1f}{r['peak_rss_mb']:>13.0f}"
              f"{n / r['wall_s']:>12,.0f}")
    m = results[1]
    print(f"metrics step, CPU s: read + update {m['update_s']:.1f}, metric_rows "
          f"{m['metric_rows_s']:.1f}, cost_rows {m['cost_rows_s']:.2f}; {m['rows']} rows; accuracy "
          f"{m['accuracy'][0]:.4f} [{m['accuracy'][1]:.4f}, {m['accuracy'][2]:.4f}]")
    assert math.isfinite(m["accuracy"][0])


if __name__ == "__main__":
    main()
