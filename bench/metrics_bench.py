"""Metrics at scale: every metric of 100,000 problems x 64 samples, read from disk.

Writes a realistic samples.jsonl once (answers that split votes, scores, usage,
cost, latency, a few errors, length cut-offs and unanswered generations), then,
each in a fresh child process so that peak RSS is the step's own:

* ``read``: ``iter_records`` alone (JSON parsing: the floor),
* ``metrics``: one ``Aggregator`` pass (what ``summarize`` + ``cost_summary``
  compute, in one read), then ``metric_rows`` (accuracy, pass@k, maj@k for
  k = 1, 2, 4, ..., 64, with intervals) and ``cost_rows``: parsing every record;
* ``indexed``: the same rows from the score index a run writes beside
  samples.jsonl (``evals.metrics_columnar.aggregate``, what ``evals leaderboard``
  and ``evals show`` do), checked equal to the ``metrics`` step's;
* ``leaderboard``: ``evals leaderboard --format csv`` end to end, in a new process.

Also prints what the index costs the run that writes it (``RunLog.append`` per record,
with and without).

Prints wall time, CPU time (user + sys) and peak RSS of each.

    python bench/metrics_bench.py                       # 100,000 x 64, about 2 GB in /tmp
    python bench/metrics_bench.py --problems 10000 --samples 16 --profile
"""

from __future__ import annotations

import argparse
import hashlib
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
    from evals import score_index

    tmp = path.with_suffix(".tmp")
    encoder, end = score_index.Encoder(), 0
    with open(tmp, "wb") as f, open(score_index.index_path(tmp), "wb") as index:
        for p in range(problems):
            # Problem difficulty: a model's chance of the right answer, spread over [0, 1]
            # (many easy problems, some hard ones), and 1-4 distractors that split votes.
            skill = rng.betavariate(2.0, 1.2)
            target = str(rng.randint(0, 9999))
            wrong = [str(rng.randint(0, 9999)) for _ in range(rng.randint(1, 4))]
            prompt = rng.randint(150, 1200)
            meta = {"domain": DOMAINS[p % 3], "difficulty": round(1 - skill, 2)}
            sid = f"bench-{p:06d}"
            recs = []
            for g in range(samples):
                rec = {"task": "bench", "model": "openai/bench-model", "setting": setting,
                       "sample_id": sid, "gen": g}
                if rng.random() < 0.005:  # a failed call
                    rec.update(status="error", score=None, error="HTTP 500 (fake)",
                               settings=settings)
                    recs.append(rec)
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
                recs.append(rec)
            lines = [orjson.dumps(r) for r in recs]
            f.write(b"\n".join(lines) + b"\n")
            entries = []  # as RunLog.append writes them
            for rec, line in zip(recs, lines):
                end += len(line) + 1
                entries.append(encoder.entry(rec, end))
            index.write(b"".join(entries))
    os.replace(tmp, path)
    os.replace(score_index.index_path(tmp), score_index.index_path(path))


def _digest(out: dict, rows: list, costs: dict) -> None:
    """What the two ways must agree on (every row and cost, rounded to 12 digits)."""
    from dataclasses import asdict

    out["rows"] = len(rows)
    acc = next(r for r in rows if r.metric == "accuracy")
    out["accuracy"] = [acc.value, acc.ci_low, acc.ci_high]
    rounded = [{k: round(v, 12) if isinstance(v, float) else v for k, v in asdict(r).items()}
               for r in [*rows, *costs.values()]]
    blob = json.dumps(rounded, sort_keys=True, default=str).encode()
    out["digest"] = hashlib.sha256(blob).hexdigest()


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
        if mode == "indexed":
            from evals.metrics_columnar import indexed

            agg = indexed(path, min_bytes=0)  # the index whatever the size (a CLI: 32 MiB+)
            assert agg is not None, "no usable index"
        else:
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
        _digest(out, rows, costs)
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
    ap.add_argument("--measure", choices=("read", "metrics", "indexed"), help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure(a.measure, a.file, a.profile)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"samples-{a.problems}x{a.samples}{'-lean' if a.lean else ''}.jsonl"
        from evals import score_index

        if not path.exists() or not score_index.index_path(path).exists():
            t = time.perf_counter()
            generate(path, a.problems, a.samples, lean=a.lean)
            print(f"generated {path.name}: {path.stat().st_size / 1e9:.2f} GB in "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
        size = path.stat().st_size
        results = []
        for mode in ("read", "metrics", "indexed"):
            cmd = [sys.executable, __file__, "--measure", mode, "--file", str(path)]
            done = subprocess.run(cmd + (["--profile"] if a.profile else []),
                                  stdout=subprocess.PIPE, text=True, check=True)
            results.append(json.loads(done.stdout))
        results.append(_leaderboard(folder, path))
        append_us = _append_cost(path)  # after the children: they would inherit its memory
    n = a.problems * a.samples
    print(f"\n{a.problems:,} problems x {a.samples} samples = {n:,} records "
          f"({'lean, ' if a.lean else ''}{size / n:.0f} bytes each); "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'step':<10}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}{'records/s':>12}")
    for r in results:
        print(f"{r['mode']:<10}{r['wall_s']:>9.1f}{r['cpu_s']:>9.1f}{r['peak_rss_mb']:>13.0f}"
              f"{n / r['wall_s']:>12,.0f}")
    for m, what in ((results[1], "read + update"), (results[2], "load index")):
        print(f"{m['mode']} step, CPU s: {what} {m['update_s']:.1f}, metric_rows "
              f"{m['metric_rows_s']:.1f}, cost_rows {m['cost_rows_s']:.2f}; {m['rows']} rows; "
              f"accuracy {m['accuracy'][0]:.4f} [{m['accuracy'][1]:.4f}, "
              f"{m['accuracy'][2]:.4f}]")
    assert math.isfinite(results[1]["accuracy"][0])
    assert results[1]["digest"] == results[2]["digest"], "indexed rows differ from the JSON pass"
    print(f"index: {score_index.index_path(path).stat().st_size / n:.0f} bytes a record; "
          f"RunLog.append takes {append_us[0]:.1f} us a record with it, "
          f"{append_us[1]:.1f} without")


def _leaderboard(folder: Path, path: Path) -> dict:
    """``evals leaderboard --format csv`` over a results dir holding this one run, as a
    user runs it: interpreter start, imports, the index, every row, the CSV."""
    from evals import score_index
    from evals.records import RUN_FILE, SAMPLES_FILE

    run = folder / "results" / "bench-run"
    run.mkdir(parents=True, exist_ok=True)
    (run / RUN_FILE).write_text(json.dumps({"run_id": run.name, "status": "completed",
                                            "started": "2026-11-26T00:00:00"}))
    for src, dst in ((path, run / SAMPLES_FILE),
                     (score_index.index_path(path), score_index.index_path(run / SAMPLES_FILE))):
        dst.unlink(missing_ok=True)
        os.link(src, dst)  # same bytes, no copy
    # The CLI as `python -m evals.cli`, reporting its own rusage on the way out.
    wrapper = ("import resource, runpy, sys\n"
               "try:\n    runpy.run_module('evals.cli', run_name='__main__')\n"
               "finally:\n    r = resource.getrusage(resource.RUSAGE_SELF)\n"
               "    print(r.ru_utime + r.ru_stime, r.ru_maxrss, file=sys.stderr)\n")
    cmd = [sys.executable, "-c", wrapper, "leaderboard", "--results-dir", str(run.parent),
           "--format", "csv"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    assert len(done.stdout.strip().splitlines()) > 10, done.stdout
    cpu, rss = done.stderr.split()[-2:]
    return {"mode": "leaderboard", "wall_s": wall, "cpu_s": float(cpu),
            "peak_rss_mb": int(rss) / 1024}


def _append_cost(path: Path, count: int = 20_000) -> tuple[float, float]:
    """Microseconds per record that ``RunLog.append`` takes, one record a call as a run
    appends them, with the score index and without (best of 3)."""
    from itertools import islice

    from evals.records import RunLog, iter_records

    records = list(islice(iter_records(path), count))
    out = []
    for with_index in (True, False):
        best = math.inf
        for _ in range(3):
            with tempfile.TemporaryDirectory() as tmp:
                log = RunLog(Path(tmp) / "run")
                log.append(records[:1])
                if not with_index:
                    log._index.disable()  # what a run cost before the index
                start = time.perf_counter()
                for rec in records:
                    log.append([rec])
                log.close()
                best = min(best, time.perf_counter() - start)
        out.append(best / len(records) * 1e6)
    return out[0], out[1]

if __name__ == "__main__":
    main()
