"""For benchmarks (bench/swe_overhead.py): make a Docker engine answer (via
.ci/docker.sh), or say why it cannot. The tests never start or install one:
tests/conftest.py's ``docker_engine`` fixture skips, or fails under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "docker.sh"
_reason: list[str | None] = []


def engine_problem() -> str | None:
    """None when an engine answers (starting one if this machine can), else why not."""
    if _reason:
        return _reason[0]
    from .engine import available

    why = available()
    if why is not None and SCRIPT.exists() and shutil.which("bash"):
        can_start = os.geteuid() == 0 or shutil.which("sudo")
        if can_start:
            done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True,
                                  timeout=600)
            if done.returncode != 0:
                why = f".ci/docker.sh failed: {done.stderr.strip()[-500:]}"
            else:
                import sandbox.engine as engine
                engine._client = None  # retry the connection now that the engine is up
                why = available()
    _reason.append(why)
    return why
