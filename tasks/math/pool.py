"""A pool of verifier worker processes with per-check deadlines.

Why processes and not threads or alarms: sympy spends its time in C code
(GMP, big-int powers) that neither ``signal.alarm`` nor thread cancellation
interrupts, and alarms only work on the main thread, which the async
orchestrator does not give scorers. The only reliable bound is to run the
check in a separate process and kill it when its deadline passes.

Design: ``size`` long-lived workers (``python -m tasks.math.worker``), each
warmed up (sympy imported) before it takes a job. A check takes an idle
worker, writes one JSON line and waits for the reply until the deadline;
on overrun the worker is killed and a fresh one started in its place, and
the check is reported as ``timeout``. The deadline starts when the job is
sent, so time spent queueing or waiting for a worker to warm up never
counts against it.

The limit is the worker's **CPU time**, not wall time, where the platform
shows it (Linux ``/proc``): on a loaded machine a check that got less of a
core waits longer, so the same answer gets the same verdict on a quiet machine
and a busy one. Wall time is still capped (``WALL_FACTOR`` times the limit,
plus a second) so a check that blocks without computing cannot hang a run. Async callers go through a small thread pool (one thread
blocks per in-flight check), so the pool works under any event loop, from
several loops in turn, and from plain synchronous code.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


# A check may take this many times its CPU limit in wall time before it is cut anyway.
WALL_FACTOR = 4.0
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of process ``pid`` so far, or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


@dataclass
class Outcome:
    """``status``: ``ok`` (``result`` holds the job's answer), ``timeout``
    (deadline passed, or the worker ran out of memory or recursion) or
    ``error`` (the job raised; ``detail`` says what)."""

    status: str
    result: Any = None
    detail: str = ""
    elapsed: float = 0.0
    # a "timeout" from a memory or recursion limit: more time would not decide it
    resource: bool = False


class WorkerStartError(RuntimeError):
    pass


class _Worker:
    def __init__(self, memory_mb: int):
        env = dict(os.environ)
        # The child must import what the parent can (custom verifiers included).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        debug = os.environ.get("EVALS_MATH_WORKER_STDERR") == "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tasks.math.worker", str(memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL, env=env, cwd=os.getcwd(),
            start_new_session=True)  # a Ctrl-C in the terminal is the parent's to handle
        self.buffer = b""
        self.ready = False
        self.jobs = 0
        self.waited_for_cpu = 0  # deadlines moved because the check got less than a core
        self.closed = False  # its output reached end of file

    def _read_line(self, deadline: float) -> bytes | None:
        """One line from the worker, or None at the deadline or on EOF."""
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self.closed = True  # the worker died, or closed its output: no reply comes
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        line = self._read_line(time.monotonic() + timeout)
        if line is None or not json.loads(line).get("ready"):
            self.kill()
            raise WorkerStartError(
                "the math verifier worker did not start (is sympy and latex2sympy2_extended "
                "installed? set EVALS_MATH_WORKER_STDERR=1 to see its errors)")
        self.ready = True

    def request(self, job: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        self.jobs += 1
        data = (json.dumps(job) + "\n").encode("utf-8")
        try:
            self.proc.stdin.write(data)  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            return {"ok": False, "resource": "worker died", "error": "worker died"}
        began = time.monotonic()
        cpu_began = cpu_seconds(self.proc.pid)
        wall_cap = began + timeout * WALL_FACTOR + 1.0
        deadline = began + timeout
        while True:
            line = self._read_line(deadline)
            if line is not None:
                try:
                    return json.loads(line)
                except ValueError:  # not the protocol: retire it, as one that died
                    return {"ok": False, "resource": "worker garbled its reply",
                            "error": "worker garbled its reply"}
            if self.proc.poll() is not None or self.closed:
                return {"ok": False, "resource": "worker died", "error": "worker died"}
            now = time.monotonic()
            cpu_now = cpu_seconds(self.proc.pid)
            if cpu_began is None or cpu_now is None or now >= wall_cap:
                return None
            used = cpu_now - cpu_began
            if used >= timeout * 0.98:  # clock ticks are 10 ms
                return None
            # Starved of CPU by other load: wait for the CPU time it has not had yet.
            deadline = min(wall_cap, now + max(0.05, timeout - used))
            self.waited_for_cpu += 1

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:  # its session too: a custom verifier's own subprocesses go with it
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill -9 does not wait
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass


class VerifierPool:
    """``size`` worker processes; :meth:`run` / :meth:`run_sync` one check each."""

    def __init__(self, size: int = 2, memory_mb: int = 2048, max_jobs: int = 1000,
                 startup_timeout: float = 120.0):
        self.size = max(1, size)
        self.memory_mb = memory_mb
        self.max_jobs = max_jobs
        self.startup_timeout = startup_timeout
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=self.size * 4,
                                            thread_name_prefix="math-verify")
        self.timeouts = 0  # checks killed at their deadline (for tests and reports)
        self.jobs_sent = 0  # jobs that reached a worker (the cheap path sends none)
        self.starved_checks = 0  # checks whose deadline moved: the worker got less CPU

    def _spawn(self) -> _Worker:
        worker = _Worker(self.memory_mb)
        with self._lock:
            self._all.add(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)
        if not self._closed:
            self._idle.put(self._spawn())

    def start(self) -> None:
        """Start the workers now (they warm up in the background)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        for _ in range(self.size):
            self._idle.put(self._spawn())

    def run_sync(self, job: dict[str, Any], timeout: float) -> Outcome:
        if self._closed:
            raise RuntimeError("verifier pool is closed")
        self.start()
        worker = self._idle.get()
        try:
            worker.wait_ready(self.startup_timeout)
        except WorkerStartError as e:
            self._retire(worker)
            return Outcome("error", detail=str(e))
        with self._lock:
            self.jobs_sent += 1
        began = time.monotonic()
        waited = worker.waited_for_cpu
        reply = worker.request(job, timeout)
        elapsed = time.monotonic() - began
        if worker.waited_for_cpu > waited:
            with self._lock:
                self.starved_checks += 1
        if reply is None:
            self.timeouts += 1
            self._retire(worker)
            return Outcome("timeout", detail=f"no verdict within {timeout:g}s", elapsed=elapsed)
        if not reply.get("ok") and "resource" in reply:
            self._retire(worker)  # it exits after a resource error
            return Outcome("timeout", detail=f"resource limit: {reply['resource']}",
                           elapsed=elapsed, resource=True)
        if worker.jobs >= self.max_jobs:
            self._retire(worker)  # bound the growth of sympy's caches
        else:
            self._idle.put(worker)
        if not reply.get("ok"):
            return Outcome("error", detail=str(reply.get("error")), elapsed=elapsed)
        return Outcome("ok", reply.get("result"), elapsed=elapsed)

    async def run(self, job: dict[str, Any], timeout: float) -> Outcome:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run_sync, job, timeout)

    def pids(self) -> list[int]:
        with self._lock:
            return sorted(w.proc.pid for w in self._all)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.kill()
        self._executor.shutdown(wait=False, cancel_futures=True)


_SHARED: dict[tuple[int, int], VerifierPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(size: int = 2, memory_mb: int = 2048) -> VerifierPool:
    """One pool per (size, memory) per process, closed at exit: every math
    task of a run shares the same workers."""
    with _SHARED_LOCK:
        pool = _SHARED.get((size, memory_mb))
        if pool is None or pool._closed:
            pool = _SHARED[(size, memory_mb)] = VerifierPool(size, memory_mb)
        return pool


@atexit.register
def _close_shared() -> None:
    for pool in list(_SHARED.values()):
        pool.close()
