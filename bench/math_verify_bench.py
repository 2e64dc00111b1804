"""Math verifier: ``tasks.math`` against ``math-verify`` on the labelled table.

Method
------
Both judge every row of ``tests/data/math_equivalence.jsonl`` (gold, candidate,
equal?) and are scored against its label.

* ``evals``: ``MathScorer.check(gold, candidate)`` as the math task runs it:
  normalisation and the cheap in-process rules first, then (for what they
  leave undecided) a job for the pool of ``--workers`` sympy worker
  processes, with the task's default 5 s deadline and relative tolerance
  1e-6. Timed twice: ``sequential`` (one check at a time, so the figure is
  the latency of a check) and ``concurrent`` (all rows submitted at once
  under one event loop, as a run scores: throughput with ``--workers``
  processes). The pool is started and warmed before timing.
* ``math-verify`` (``pip install math-verify``): ``verify(parse(gold),
  parse(candidate))`` in this process, each side wrapped in ``$...$`` unless
  it already has a ``$`` (a ``\\boxed{}`` wrapper when that parses to
  nothing), with its defaults (``float_rounding=6``, its own timeouts).
  math-verify runs in one process on one core: compare its checks/s with
  ``evals sequential``.

Each timing is the median of ``--repeats`` passes after one untimed warm-up
pass (sympy's caches are warm in both). Rows that each verifier gets wrong
are listed with ``--show-wrong``.

    python bench/math_verify_bench.py [--repeats 3] [--workers 2] [--show-wrong]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TABLE = REPO / "tests" / "data" / "math_equivalence.jsonl"


def load_rows() -> list[dict[str, Any]]:
    return [json.loads(x) for x in TABLE.read_text(encoding="utf-8").splitlines() if x.strip()]


def timed(fn: Callable[[], list[bool | None]], repeats: int) -> tuple[list[bool | None], float]:
    fn()  # warm-up
    times, verdicts = [], []
    for _ in range(repeats):
        began = time.perf_counter()
        verdicts = fn()
        times.append(time.perf_counter() - began)
    return verdicts, statistics.median(times)


def run_evals(rows, workers: int, repeats: int, options=None) -> dict[str, Any]:
    from tasks.math import MathScorer, Options
    from tasks.math.answer import Extracted
    from tasks.math.pool import VerifierPool

    pool = VerifierPool(size=workers)
    scorer = MathScorer(options or Options(), pool=pool)
    pool.run_sync({"op": "ping"}, timeout=60)

    def found(row) -> Extracted:
        return Extracted(row["candidate"], "boxed", "text")

    def sequential() -> list[bool | None]:
        async def main():
            return [await scorer.check(r["gold"], found(r)) for r in rows]
        return [None if s.status != "ok" else s.value == 1.0 for s in asyncio.run(main())]

    def concurrent() -> list[bool | None]:
        async def main():
            return await asyncio.gather(*(scorer.check(r["gold"], found(r)) for r in rows))
        return [None if s.status != "ok" else s.value == 1.0 for s in asyncio.run(main())]

    jobs_before = pool.jobs_sent
    verdicts, seq = timed(sequential, 1)
    ipc = (pool.jobs_sent - jobs_before) / 2  # warm-up pass + timed pass
    _, seq = timed(sequential, repeats)
    _, conc = timed(concurrent, repeats)
    pool.close()
    return {"verdicts": verdicts, "sequential_s": seq, "concurrent_s": conc,
            "in_process": 1 - ipc / len(rows)}


def run_math_verify(rows, repeats: int) -> dict[str, Any] | None:
    try:
        from math_verify import parse, verify
    except ImportError:
        print("math-verify is not installed (pip install math-verify): skipped", file=sys.stderr)
        return None

    def parsed(text: str):
        return parse(text if "$" in text else f"${text}$") or parse(f"\\boxed{{{text}}}")

    def judge() -> list[bool | None]:
        out: list[bool | None] = []
        for r in rows:
            try:
                out.append(bool(verify(parsed(r["gold"]), parsed(r["candidate"]))))
            except Exception:  # noqa: BLE001 - counted as a wrong verdict
                out.append(None)
        return out

    verdicts, took = timed(judge, repeats)
    return {"verdicts": verdicts, "sequential_s": took}


def report(name: str, rows, verdicts, show_wrong: bool) -> float:
    wrong = [(r, v) for r, v in zip(rows, verdicts) if v != r["equal"]]
    accuracy = 1 - len(wrong) / len(rows)
    accepts = sum(1 for r, v in wrong if v)  # wrong "equal" verdicts
    print(f"{name}: accuracy {accuracy:.4f} ({len(rows) - len(wrong)}/{len(rows)}), "
          f"false accepts {accepts}, false rejects {len(wrong) - accepts}")
    print("  wrong by category:", dict(Counter(r["category"] for r, _ in wrong)))
    if show_wrong:
        for r, v in wrong:
            print(f"    #{r['id']} [{r['category']}] gold={r['gold']!r} cand={r['candidate']!r} "
                  f"label={r['equal']} got={v}")
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--show-wrong", action="store_true")
    args = parser.parse_args()
    rows = load_rows()
    print(f"{len(rows)} labelled rows from {TABLE.relative_to(REPO)}")
    ours = run_evals(rows, args.workers, args.repeats)
    report("evals tasks.math", rows, ours["verdicts"], args.show_wrong)
    n = len(rows)
    print(f"  sequential {ours['sequential_s']:.2f}s = {n / ours['sequential_s']:.0f} checks/s; "
          f"concurrent ({args.workers} workers) {ours['concurrent_s']:.2f}s = "
          f"{n / ours['concurrent_s']:.0f} checks/s; decided in-process: "
          f"{ours['in_process']:.0%}")
    theirs = run_math_verify(rows, args.repeats)
    if theirs is not None:
        report("math-verify", rows, theirs["verdicts"], args.show_wrong)
        print(f"  sequential {theirs['sequential_s']:.2f}s = "
              f"{n / theirs['sequential_s']:.0f} checks/s")


if __name__ == "__main__":
    main()
