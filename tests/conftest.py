import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own response cache and no real credentials."""
    monkeypatch.setenv("EVALS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("EVALS_TASKS_PATH", raising=False)


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """The real `evals` entry point in a child process, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "evals.cli", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd or REPO, timeout=timeout)


@pytest.fixture(scope="module")
def pool():
    """Two math verifier worker processes for a test module (tasks/math/pool.py)."""
    from tasks.math.pool import VerifierPool

    p = VerifierPool(size=2)
    p.start()
    yield p
    p.close()
