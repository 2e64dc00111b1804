"""The Docker engine connection, made lazily.

``docker`` is imported only here and only when a sandbox is really used, so
``evals --help`` and ``evals list`` never pay for it (nor need it installed).
"""

from __future__ import annotations

import threading
from typing import Any

LABEL = "evals.sandbox"  # every image and container we make carries it: prune finds them
LAYER_LABEL = "evals.sandbox.layer"
INPUTS_LABEL = "evals.sandbox.inputs"


class SandboxError(RuntimeError):
    """Anything that stops a sandbox from running: no engine, a failed build.

    Callers report it as an infrastructure error, never as the model's fault.
    """


_lock = threading.Lock()
_client: Any = None


def client() -> Any:
    """A shared ``docker.DockerClient``; raises SandboxError when no engine answers."""
    global _client
    with _lock:
        if _client is not None:
            return _client
        try:
            import docker
        except ImportError:
            raise SandboxError("the sandbox needs the `docker` package: pip install 'docker>=7'"
                               ) from None
        try:
            made = docker.from_env(timeout=120)
            made.ping()
        except Exception as e:  # noqa: BLE001 - every failure means the same to the user
            raise SandboxError(f"no Docker engine answers ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200] if str(e) else ''}); start one "
                               f"(e.g. bash .ci/docker.sh) or set DOCKER_HOST") from None
        _client = made
        return made


def available() -> str | None:
    """None when an engine answers, else why not (for skips and `sandbox list`)."""
    try:
        client()
    except SandboxError as e:
        return str(e)
    return None


def errors() -> tuple[type[BaseException], ...]:
    """The docker SDK's exception types, to catch without importing it at module level."""
    import docker.errors
    import requests.exceptions

    return (docker.errors.DockerException, requests.exceptions.RequestException)
