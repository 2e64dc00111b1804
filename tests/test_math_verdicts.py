"""Verdicts that do not depend on how busy the machine is.

A check's limit is CPU time: a worker starved of CPU by other load waits for the
CPU it has not had, so the same answer gets the same verdict on a quiet and a
loaded machine. Load is made deterministic here by pinning the worker and a busy
loop to one core, where each gets about half of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from evals.records import UNSCORED
from tasks.math import MathScorer, Options
from tasks.math.answer import Extracted
from tasks.math.pool import VerifierPool, cpu_seconds
from tasks.math.verifiers import PythonVerifier

pytestmark = pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/stat")
                                or not hasattr(os, "sched_setaffinity"),
                                reason="CPU-time limits need Linux /proc and CPU affinity")

BURN = '''
import time

def burn(answer, target, sample):
    """Spend ``answer`` CPU seconds, then accept."""
    end = time.process_time() + float(answer)
    while time.process_time() < end:
        pass
    return True

def crash(answer, target, sample):
    raise RuntimeError("the verifier itself is broken")

def spawn(answer, target, sample):
    """Start a child that outlives this call unless its whole session is killed."""
    import subprocess, pathlib
    child = subprocess.Popen(["sleep", "3600"])
    pathlib.Path(answer).write_text(str(child.pid))
    time.sleep(3600)
'''


@pytest.fixture
def burner(tmp_path, monkeypatch):
    (tmp_path / "burn_verifier.py").write_text(BURN)
    monkeypatch.syspath_prepend(str(tmp_path))  # the workers inherit sys.path
    pool = VerifierPool(size=1)
    assert pool.run_sync({"op": "ping"}, timeout=60).status == "ok"
    yield pool
    pool.close()


@pytest.fixture
def contended(burner):
    """The pool's worker shares one core with a busy loop."""
    core = min(os.sched_getaffinity(0))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, {core})
        worker = burner.pids()[0]
        os.sched_setaffinity(worker, {core})
        # niced, the worker gets about a quarter of the core while the hog spins
        os.setpriority(os.PRIO_PROCESS, worker, 5)
        while (cpu_seconds(hog.pid) or 0) < 0.05:  # the hog is spinning, not starting up
            os.sched_yield()
        yield burner
    finally:
        hog.kill()
        hog.wait()


def burn(pool, seconds, limit):
    return pool.run_sync({"op": "call", "spec": "burn_verifier:burn", "answer": str(seconds),
                          "target": "", "sample": {}}, timeout=limit)


def test_cpu_seconds_reads_this_process():
    spent = cpu_seconds(os.getpid())
    assert spent is not None and spent > 0
    assert cpu_seconds(2 ** 22 + 12345) is None  # no such process


def test_a_check_within_its_cpu_limit_passes_when_starved_of_cpu(burner):
    """The worker is stopped (SIGSTOP) for 1.5 s in the middle of a check that needs
    0.3 s of CPU: its 1 s limit passes on the clock while it gets no CPU at all, the
    most a busy machine can take from it. Judged by CPU time, the check still passes."""
    import signal
    import threading

    worker = burner.pids()[0]
    stop = threading.Timer(0.1, os.kill, (worker, signal.SIGSTOP))
    resume = threading.Timer(1.6, os.kill, (worker, signal.SIGCONT))
    stop.start()
    resume.start()
    try:
        out = burn(burner, 0.3, limit=1.0)
    finally:
        stop.cancel()
        resume.join()
        os.kill(worker, signal.SIGCONT)
    assert out.status == "ok", out
    assert burner.starved_checks == 1  # its 1 s passed on the clock before its CPU did


def test_a_check_past_its_cpu_limit_times_out_on_a_loaded_core(contended):
    out = burn(contended, 30, limit=0.5)
    assert out.status == "timeout"
    assert pool_alive_after(contended)


def pool_alive_after(pool):
    return pool.run_sync({"op": "ping"}, timeout=60).status == "ok"


def test_a_check_that_blocks_without_computing_is_cut_by_the_wall_cap(burner):
    out = burner.run_sync({"op": "sleep", "seconds": 3600}, timeout=0.2)
    assert out.status == "timeout"


def scorer_with(pool, spec, **options):
    return MathScorer(Options(**options), verifier=PythonVerifier(spec), pool=pool)


def test_undecided_check_is_retried_with_a_longer_limit(burner):
    """1.2 s of CPU: undecided at a 1 s limit, decided at the retry's 4 s."""
    scorer = scorer_with(burner, "burn_verifier:burn", timeout=1.0, retry_factor=4.0)
    score = asyncio.run(scorer._custom(scorer.verifier, _sample(), _gold(),
                                       Extracted("1.2", "boxed", "text")))
    assert (score.status, score.value) == ("ok", 1.0)
    no_retry = scorer_with(burner, "burn_verifier:burn", timeout=1.0, retry_factor=1.0)
    score = asyncio.run(no_retry._custom(no_retry.verifier, _sample(), _gold(),
                                         Extracted("1.2", "boxed", "text")))
    assert (score.status, score.value) == ("timeout", 0.0)


def test_still_undecided_is_a_flagged_timeout_scored_wrong(burner):
    scorer = scorer_with(burner, "burn_verifier:burn", timeout=0.3, retry_factor=2.0)
    score = asyncio.run(scorer._custom(scorer.verifier, _sample(), _gold(),
                                       Extracted("30", "boxed", "text")))
    assert (score.status, score.value) == ("timeout", 0.0)
    assert "again at 0.6s" in score.explanation
    assert "timeout" not in UNSCORED  # scored (wrong) and shown as a share, not hidden


def test_a_verifier_crash_is_kept_apart_unscored(burner):
    scorer = scorer_with(burner, "burn_verifier:crash")
    score = asyncio.run(scorer._custom(scorer.verifier, _sample(), _gold(),
                                       Extracted("1", "boxed", "text")))
    assert score.status == "verifier_error" and "broken" in score.explanation
    assert "verifier_error" in UNSCORED  # like infra_error: not wrong, redone on resume


def test_rescore_with_a_larger_limit_settles_a_timeout(tmp_path):
    """A pathological but correct answer times out at the run's limit; rescore -T
    timeout=... with enough CPU decides it."""
    from evals.fake_openai import FakeServer
    from tests.conftest import run_cli

    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"id": "s", "problem": "Sum 1..200", "answer": "20100"}) + "\n")
    answer = "\\boxed{" + "+".join(str(i) for i in range(1, 201)) + "}"  # ~0.2 s of CPU
    res = str(tmp_path / "res")
    with FakeServer(default=answer) as srv:
        run = run_cli("run", "math", "-m", "openai/fake-model", "-M", f"base_url={srv.url}",
                      "-T", f"path={data}", "-T", "timeout=0.01", "-T", "retry_factor=1",
                      "--run-id", "t", "--results-dir", res, "--no-cache")
    assert run.returncode == 0, run.stderr
    records = [json.loads(x) for x in (tmp_path / "res" / "t" / "samples.jsonl").read_text()
               .splitlines()]
    assert [r["status"] for r in records] == ["timeout"]
    again = run_cli("rescore", "t", "--results-dir", res, "-T", "timeout=60")
    assert again.returncode == 0, again.stderr
    rescored = [json.loads(x) for x in
                (tmp_path / "res" / "t" / "samples.rescored.jsonl").read_text().splitlines()]
    assert [(r["status"], r["score"]) for r in rescored] == [("ok", 1.0)]


def _sample():
    from evals.task import Sample
    return Sample(id="s", input="q", target="t")


def _gold():
    from tasks.math.scoring import Gold
    return Gold("t")


@pytest.mark.parametrize("answer", ["3+", "\\frac{1}{", "x^^2"])
def test_an_unparseable_answer_is_a_flagged_parse_error(pool, answer):
    """Wrong either way, but the verdict rests on the parser: counted as a parse failure
    and listed by evals audit, not silently a plain 'different'."""
    score = asyncio.run(MathScorer(Options(), pool=pool).check(
        "x^2", Extracted(answer, "boxed", "text")))
    assert (score.status, score.value) == ("parse_error", 0.0)
    assert "parse_error" not in UNSCORED


def test_a_killed_check_takes_its_verifiers_children_with_it(burner, tmp_path):
    pid_file = tmp_path / "child.pid"
    out = burner.run_sync({"op": "call", "spec": "burn_verifier:spawn", "answer": str(pid_file),
                           "target": "", "sample": {}}, timeout=0.2)
    assert out.status == "timeout"
    pid = int(pid_file.read_text())
    from tests.conftest import alive, wait_for
    assert wait_for(lambda: not alive(pid), 30)  # the verifier's own child was killed too
