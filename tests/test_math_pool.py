"""The verifier pool: deadlines, killing overrunning workers, recovery."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.math import MathScorer, Options
from tasks.math.answer import Extracted
from tasks.math.pool import VerifierPool
from tests.conftest import alive

REPO = Path(__file__).resolve().parent.parent
LIMIT = 1.5
PATHOLOGICAL = [
    ("1", "9^{9^{9^9}}"),  # an integer power with ~10^(3.7e8) digits in its exponent
    ("2", "1000000!"),  # exact factorial: seconds of GMP multiplication
    ("50005000", "+".join(str(i) for i in range(1, 10001))),  # a 10,000-term sum
]


@pytest.mark.parametrize("gold,cand", PATHOLOGICAL, ids=["tower", "factorial", "sum"])
def test_pathological_times_out_within_limit(pool, gold, cand):
    scorer = MathScorer(Options(timeout=LIMIT, retry_factor=1), pool=pool)
    before = set(pool.pids())
    score = asyncio.run(scorer.check(gold, Extracted(cand, "boxed", "text")))
    assert score.status == "timeout", score
    assert score.value == 0.0
    # Cut off (at the deadline or a resource limit): its worker was killed and replaced.
    (killed,) = before - set(pool.pids())
    assert not alive(killed) and len(pool.pids()) == 2
    # The pool keeps working afterwards.
    fine = Extracted("\\frac{1}{\\sqrt2}", "boxed", "text")
    after = asyncio.run(scorer.check("\\frac{\\sqrt{2}}{2}", fine))
    assert after.value == 1.0 and after.status == "ok"


def test_overrun_kills_the_worker_and_replaces_it(pool):
    before = set(pool.pids())
    out = pool.run_sync({"op": "sleep", "seconds": 30}, timeout=0.5)
    assert out.status == "timeout" and out.detail == "no verdict within 0.5s"
    killed = before - set(pool.pids())
    assert len(killed) == 1
    assert not any(alive(pid) for pid in killed)
    assert len(pool.pids()) == 2  # a fresh worker took its place
    assert pool.run_sync({"op": "ping"}, timeout=30).status == "ok"


def test_concurrent_checks_under_one_event_loop(pool):
    """An overrun in one check does not disturb the others."""
    scorer = MathScorer(Options(timeout=LIMIT, retry_factor=1), pool=pool)

    async def main():
        jobs = [scorer.check("1", Extracted("9^{9^{9^9}}", "boxed", "text"))]
        jobs += [scorer.check("\\sqrt{8}", Extracted("2\\sqrt{2}", "boxed", "text")) for _ in range(6)]
        return await asyncio.gather(*jobs)

    scores = asyncio.run(main())
    assert scores[0].status == "timeout"
    assert all(s.value == 1.0 and s.status == "ok" for s in scores[1:])


def test_a_busy_worker_does_not_hold_up_the_others():
    """A check that occupies one worker leaves the other free: fast checks all finish
    while it is still running (its deadline is an hour away)."""
    p = VerifierPool(size=2)
    scorer = MathScorer(Options(timeout=30), pool=p)
    fine = Extracted("2\\sqrt{2}", "boxed", "text")

    async def main():
        busy = asyncio.ensure_future(p.run({"op": "sleep", "seconds": 3600}, timeout=3600))
        async def sent():  # it holds a worker (once warm): the fast checks get the other
            while p.jobs_sent == 0:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(sent(), 120)
        fast = await asyncio.gather(*(scorer.check("\\sqrt{8}", fine) for _ in range(6)))
        still_busy = not busy.done()
        p.close()  # kills the sleeping worker, which ends the busy check one way or another
        await asyncio.wait_for(asyncio.gather(busy, return_exceptions=True), 60)
        return fast, still_busy

    try:
        fast, still_busy = asyncio.run(main())
    finally:
        p.close()
    assert all(s.value == 1.0 and s.status == "ok" for s in fast)
    assert still_busy
    assert p.jobs_sent == 7  # the fast checks did go to the pool


def test_job_errors_are_reported_not_raised(pool):
    out = pool.run_sync({"op": "nonsense"}, timeout=10)
    assert out.status == "error" and "unknown op" in out.detail
    assert pool.run_sync({"op": "ping"}, timeout=10).status == "ok"


def test_closed_pool_kills_its_workers():
    p = VerifierPool(size=1)
    assert p.run_sync({"op": "ping"}, timeout=30).status == "ok"
    pids = p.pids()
    p.close()  # kills and reaps them before it returns
    assert not any(alive(pid) for pid in pids)


def test_importing_the_task_is_cheap():
    code = ("import sys, tasks.math, tasks.math.data, tasks.math.scoring; "
            "heavy = [m for m in ('sympy', 'latex2sympy2_extended', 'datasets', 'pandas', 'mpmath') "
            "if m in sys.modules]; print(heavy); assert not heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
