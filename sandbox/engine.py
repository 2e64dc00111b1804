"""The Docker engine connection, made lazily.

``docker`` is imported only here and only when a sandbox is really used, so
``evals --help`` and ``evals list`` never pay for it (nor need it installed).

Which engine: the one that :func:`use` made current in this context (a grading
placed by an engine pool, sandbox/engines.py), else the local one of
``DOCKER_HOST`` or the default socket, as with a single engine. Everything that
talks to Docker asks :func:`client`, so images, builds and containers follow the
placement without being handed an engine.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Any, Iterator

LABEL = "evals.sandbox"  # every image and container we make carries it: prune finds them
LAYER_LABEL = "evals.sandbox.layer"
INPUTS_LABEL = "evals.sandbox.inputs"


class SandboxError(RuntimeError):
    """Anything that stops a sandbox from running: no engine, a failed build.

    Callers report it as an infrastructure error, never as the model's fault.
    """


_lock = threading.Lock()
_client: Any = None


# The engine of the work running in this context (an object with ``name``,
# ``client()``, ``registry`` and ``push``: sandbox.engines.Engine); None: the local one.
_current: contextvars.ContextVar[Any] = contextvars.ContextVar("evals_engine", default=None)


@contextlib.contextmanager
def use(engine: Any) -> Iterator[Any]:
    """Docker calls in this context (and threads started from it with its context,
    as ``asyncio.to_thread`` does) go to ``engine``."""
    token = _current.set(engine)
    try:
        yield engine
    finally:
        _current.reset(token)


def current() -> Any:
    """The engine :func:`use` made current here, or None (the local one)."""
    return _current.get()


def current_name() -> str:
    """A key per engine, for what is cached or locked per engine (builds)."""
    engine = _current.get()
    return engine.name if engine is not None else "local"


def client() -> Any:
    """The current engine's ``docker.DockerClient`` (shared); raises SandboxError when
    no engine answers."""
    engine = _current.get()
    if engine is not None:
        return engine.client()
    return local_client()


def local_client() -> Any:
    """The local engine's client (``DOCKER_HOST`` or the default socket), made once."""
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
    """The exceptions a Docker call raises when it or its engine fails, to catch without
    importing the SDK at module level. A stream (a build's, an exec's) cut by an engine
    that went away raises urllib3's or the socket's own, not the SDK's."""
    import docker.errors
    import requests.exceptions
    import urllib3.exceptions

    return (docker.errors.DockerException, requests.exceptions.RequestException,
            urllib3.exceptions.HTTPError, ConnectionError)
