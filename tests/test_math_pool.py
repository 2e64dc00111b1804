"""The verifier pool: deadlines, killing overrunning workers, recovery."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.math import MathScorer, Options
from tasks.math.answer import Extracted
from tasks.math.pool import VerifierPool

REPO = Path(__file__).resolve().parent.parent
LIMIT = 1.5
PATHOLOGICAL = [
    ("1", "9^{9^{9^9}}"),  # an integer power with ~10^(3.7e8) digits in its exponent
    ("2", "1000000!"),  # exact factorial: seconds of GMP multiplication
    ("50005000", "+".join(str(i) for i in range(1, 10001))),  # a 10,000-term sum
]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child may linger as a zombie until reaped; the pool reaps it.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


@pytest.mark.parametrize("gold,cand", PATHOLOGICAL, ids=["tower", "factorial", "sum"])
def test_pathological_times_out_within_limit(pool, gold, cand):
    scorer = MathScorer(Options(timeout=LIMIT, retry_factor=1), pool=pool)
    killed_before = pool.timeouts
    score = asyncio.run(scorer.check(gold, Extracted(cand, "boxed", "text")))
    assert score.status == "timeout", score
    assert score.value == 0.0
    # cut by the pool (its worker killed at the limit), or by the worker's own resource limit
    assert pool.timeouts == killed_before + 1 or "resource limit" in score.explanation
    # The pool keeps working afterwards.
    fine = Extracted("\\frac{1}{\\sqrt2}", "boxed", "text")
    after = asyncio.run(scorer.check("\\frac{\\sqrt{2}}{2}", fine))
    assert after.value == 1.0 and after.status == "ok"


def test_overrun_kills_the_worker_and_replaces_it(pool):
    before = set(pool.pids())
    out = pool.run_sync({"op": "sleep", "seconds": 3600}, timeout=0.5)
    assert out.status == "timeout"
    killed = before - set(pool.pids())
    assert len(killed) == 1
    assert not any(alive(pid) for pid in killed)
    assert len(pool.pids()) == 2  # a fresh worker took its place
    assert pool.run_sync({"op": "ping"}, timeout=30).status == "ok"


def test_concurrent_checks_under_one_event_loop(pool):
    """Slow checks do not block fast ones beyond the pool's size, and an
    overrun in one check does not disturb the others."""
    scorer = MathScorer(Options(timeout=LIMIT, retry_factor=1), pool=pool)

    async def main():
        jobs = [scorer.check("1", Extracted("9^{9^{9^9}}", "boxed", "text"))]
        jobs += [scorer.check("\\sqrt{8}", Extracted("2\\sqrt{2}", "boxed", "text")) for _ in range(6)]
        return await asyncio.gather(*jobs)

    scores = asyncio.run(main())
    assert scores[0].status == "timeout"
    assert all(s.value == 1.0 and s.status == "ok" for s in scores[1:])


def test_job_errors_are_reported_not_raised(pool):
    out = pool.run_sync({"op": "nonsense"}, timeout=10)
    assert out.status == "error" and "unknown op" in out.detail
    assert pool.run_sync({"op": "ping"}, timeout=10).status == "ok"


def test_closed_pool_kills_its_workers():
    p = VerifierPool(size=1)
    assert p.run_sync({"op": "ping"}, timeout=30).status == "ok"
    pids = p.pids()
    p.close()
    time.sleep(0.2)
    assert not any(alive(pid) for pid in pids)


def test_importing_the_task_is_cheap():
    code = ("import sys, tasks.math, tasks.math.data, tasks.math.scoring; "
            "heavy = [m for m in ('sympy', 'latex2sympy2_extended', 'datasets', 'pandas', 'mpmath') "
            "if m in sys.modules]; print(heavy); assert not heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
