"""A verifier worker process: ``python -m tasks.math.worker MEMORY_MB``.

Protocol (one JSON object per line): the worker prints ``{"ready": true}``
once sympy and the LaTeX parser are imported, then answers each job line
read from stdin with one line on its own copy of stdout. Nothing a custom
verifier prints can corrupt it: fd 1 is pointed at stderr before any job.

The worker never enforces a deadline itself (sympy's C code ignores
signals); the pool kills it on overrun. It only bounds its address space,
so that ``9^{9^{9^9}}`` fails with MemoryError instead of swapping, and
asks Linux to kill it when the parent dies, so no orphan keeps computing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO

# Errors that mean "this check ran out of resources": the pool reports them
# like a timeout, and recycles the worker, whose heap may be in a bad state.
RESOURCE_ERRORS = (MemoryError, RecursionError)


def _limit_memory(megabytes: int) -> None:
    if megabytes <= 0:
        return
    try:
        import resource

        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not Linux
        pass


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def handle(job: dict[str, Any]) -> Any:
    op = job.get("op")
    if op == "compare":
        from .symbolic import check
        return check(job["gold"], job["cand"], float(job.get("rtol", 1e-6)))
    if op == "canon":
        from .symbolic import canonical
        return canonical(job["text"], job.get("role", "candidate"))
    if op == "call":
        from .verifiers import call_python
        return call_python(job["spec"], job["answer"], job["target"], job.get("sample") or {})
    if op == "ping":
        return {"pid": os.getpid()}
    if op == "sleep":  # for tests of the pool itself
        time.sleep(float(job.get("seconds", 0)))
        return {"slept": job.get("seconds")}
    raise ValueError(f"unknown op {op!r}")


def serve(proto: TextIO) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            job = json.loads(line)
            reply: dict[str, Any] = {"ok": True, "result": handle(job)}
        except RESOURCE_ERRORS as e:
            reply = {"ok": False, "resource": type(e).__name__, "error": type(e).__name__}
        except Exception as e:  # noqa: BLE001 - reported to the scorer, never fatal
            reply = {"ok": False, "error": f"{type(e).__name__}: {str(e)[:300]}"}
        try:
            text = json.dumps(reply)
        except (TypeError, ValueError) as e:
            text = json.dumps({"ok": False, "error": f"result is not JSON: {e}"})
        proto.write(text + "\n")
        proto.flush()
        if not reply["ok"] and "resource" in reply:
            return  # exit; the pool starts a fresh worker


def main(argv: list[str]) -> None:
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _die_with_parent()
    _limit_memory(int(argv[0]) if argv else 0)
    sys.set_int_max_str_digits(100_000)
    # Warm up: import sympy and build the ANTLR parser before saying ready, so
    # the first job's deadline is not spent importing.
    from .symbolic import check
    check("x", "1")
    proto.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    proto.flush()
    serve(proto)


if __name__ == "__main__":
    main(sys.argv[1:])
