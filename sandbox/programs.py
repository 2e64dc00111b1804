"""Program runners: run a program with the answer on stdin, the verdict on stdout.

For checks that need computation (a verifier program fed a model's answer, which is
untrusted input). Two are built in, in :data:`PROGRAM_RUNNERS`:

* ``local``: a subprocess in its own process group, the group killed at the deadline;
* ``docker``: a sandbox container. Host files named in the command (the verifier
  script itself, data it reads) are copied into ``/verifier`` in the container and
  the command is rewritten to point there. The container has no network, runs as a
  non-root user under the sandbox limits, and is removed when the check ends or its
  deadline passes. On the local engine, or placed over several (:func:`on_engines`).

Packages add others through the ``evals.program_runners`` entry points.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from evals.registry import KINDS, Registry

from .limits import Limits

VERIFIER_DIR = "/verifier"


@dataclass(frozen=True)
class ProgramResult:
    returncode: int | None  # None: killed at the deadline
    stdout: str
    stderr: str


class ProgramRunner(Protocol):
    """Runs ``argv`` with ``stdin`` and extra ``env``; kills it after ``timeout`` s."""

    def __call__(self, argv: list[str], stdin: str, env: dict[str, str],
                 timeout: float) -> ProgramResult: ...


PROGRAM_RUNNERS: Registry[ProgramRunner] = KINDS.register("program-runner", Registry(
    "program runner", "evals.program_runners", {
        "local": "sandbox.programs:local_runner",
        "docker": "sandbox.programs:run_program",
    }))


def local_runner(argv: list[str], stdin: str, env: dict[str, str],
                 timeout: float) -> ProgramResult:
    """A local subprocess in its own process group; the group dies at the deadline."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **env}, start_new_session=True)
    except OSError as e:
        return ProgramResult(127, "", f"cannot start {argv[0]!r}: {e}")
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
        return ProgramResult(proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        out, err = proc.communicate()
        return ProgramResult(None, out or "", err or "")


def _stage(argv: list[str]) -> tuple[list[str], dict[str, bytes]]:
    files: dict[str, bytes] = {}
    out = []
    for arg in argv:
        path = Path(arg)
        if path.is_file():
            inside = f"{VERIFIER_DIR}/{len(files)}_{path.name}"
            files[inside.removeprefix("/")] = path.read_bytes()
            out.append(inside)
        else:
            out.append(arg)
    return out, files


def run_program(argv: list[str], stdin: str, env: dict[str, str], timeout: float,
                image: str | None = None, limits: Limits | None = None) -> ProgramResult:
    """The ``docker`` program runner: the program in a sandbox container."""
    from .base import ensure_base
    from .container import Sandbox

    image = image or os.environ.get("EVALS_VERIFIER_IMAGE") or ensure_base().tag
    limits = limits or Limits(memory="1g", timeout=timeout, output_cap=1 << 16)
    command, files = _stage(argv)
    files[f"{VERIFIER_DIR}/answer".removeprefix("/")] = stdin.encode()
    # stdout and stderr travel apart so that the verdict is stdout's first line.
    script = (f"{shlex.join(command)} < {VERIFIER_DIR}/answer > /tmp/stdout 2> /tmp/stderr; "
              "code=$?; cat /tmp/stdout; printf '\\n\\0'; cat /tmp/stderr; exit $code")
    with Sandbox(image, limits, name_hint="verifier") as box:
        box.put(files, dest="/", mode=0o755)
        result = box.exec(["sh", "-c", script], user=limits.user, timeout=timeout, env=env)
    stdout, _, stderr = result.text.partition("\n\0")
    return ProgramResult(None if result.timed_out else result.exit_code, stdout, stderr)


PROGRAM_SLOTS = 4  # containers at once per engine named without slots=


def on_engines(engines: str | None) -> ProgramRunner:
    """The ``docker`` runner, each program placed on the engines named (an option's
    value, else ``EVALS_ENGINES``; sandbox/engines.py): on the healthy engine with the
    most free slots, run again on another when its engine stops answering. None named:
    the plain runner on the local engine."""
    from . import engines as pools

    specs = pools.named(engines)
    if not specs:
        return run_program
    pool = pools.pool(specs, PROGRAM_SLOTS)

    def placed(argv: list[str], stdin: str, env: dict[str, str],
               timeout: float) -> ProgramResult:
        return pool.run(lambda: run_program(argv, stdin, env, timeout)).result

    return placed
