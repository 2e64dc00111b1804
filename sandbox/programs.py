"""Run a verifier program in a sandbox container: the answer on stdin, the verdict on stdout.

For checks that need computation a grader should not run on the host (a
model's answer fed to a program is untrusted input). Host files named in the
command (the verifier script itself, data it reads) are copied into
``/verifier`` in the container and the command is rewritten to point there.
The container has no network, runs as a non-root user under the sandbox
limits, and is removed when the check ends or its deadline passes.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from sandbox.container import Sandbox
from sandbox.limits import Limits

VERIFIER_DIR = "/verifier"


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
                image: str | None = None, limits: Limits | None = None):
    """A ``ProgramRunner`` for tasks.math's ``run:`` verifiers (``-T program_runner=docker``)."""
    from sandbox.base import ensure_base
    from tasks.math.verifiers import ProgramResult

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
