"""Several Docker engines as one pool: where each sandbox runs.

Engines are named by URL (``unix:///path/docker.sock``, ``tcp://host:2376`` with
TLS, ``ssh://user@host``; ``local`` is the engine of ``DOCKER_HOST`` or the default
socket) in ``--engine``, ``-T engines=``, the ``EVALS_ENGINES``
variable, or an ``engines.toml`` file; none named is the one local engine, as
before. A URL may carry options as a query (``tcp://h:2376?slots=8&tls=DIR``);
a file gives them as keys::

    [[engine]]
    url = "tcp://10.0.0.5:2376"
    slots = 8                  # containers at once (default: the task's, see pool())
    tls_ca = "certs/ca.pem"    # or tls = "certs" (ca.pem, cert.pem, key.pem, as docker's)
    tls_cert = "certs/cert.pem"
    tls_key = "certs/key.pem"
    registry = "10.0.0.2:5000" # pull our images from here before building them
    push = true                # and push what this engine builds there

A piece of work (one grading, one agent episode) takes a slot on the healthy
engine with the most free slots, ties going to the engine that ran the same
instance before (so has its images); a coroutine waits for one without holding a
thread (:meth:`EnginePool.acquire_async`). Images are per engine: the current
engine (sandbox.engine.use) is where :mod:`sandbox.images` looks, builds and
locks. When work fails and its engine no longer answers a ping, the engine is
marked down and the work runs again on another one; a down engine is probed
again every few seconds and takes work when it answers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, TypeVar

from .engine import SandboxError, errors, local_client, use
from .engine_specs import (  # noqa: F401 (re-exported: engines are named here too)
    ENV, SCHEMES, EngineSpec, named, parse, parse_url, read_file,
)

T = TypeVar("T")
PROBE_TIMEOUT = 5.0  # seconds a ping may take before the engine counts as down


class Engine:
    """One engine: its client (made on first use), slots and health."""

    def __init__(self, spec: EngineSpec, slots: int):
        self.spec, self.name, self.slots = spec, spec.name, slots
        self.registry, self.push = spec.registry, spec.push
        self.busy = 0
        self.placed = 0  # pieces of work started here
        self.down: str | None = None  # why, while down
        self.next_probe = 0.0
        self.seen: set[str] = set()  # affinity keys of work done here (its images are here)
        self._client: Any = None
        self._lock = threading.Lock()

    def _make(self, timeout: float) -> Any:
        try:
            import docker
            import docker.constants
            import docker.tls
        except ImportError:
            raise SandboxError("the sandbox needs the `docker` package: pip install 'docker>=7'"
                               ) from None
        spec = self.spec
        kwargs: dict[str, Any] = {"base_url": spec.url, "timeout": timeout}
        if spec.tls_ca or spec.tls_cert:
            kwargs["tls"] = docker.tls.TLSConfig(
                client_cert=(spec.tls_cert, spec.tls_key) if spec.tls_cert else None,
                ca_cert=spec.tls_ca, verify=spec.tls_verify)
        if spec.url and spec.url.startswith("ssh://"):
            kwargs["use_ssh_client"] = True  # the system's ssh: its config, keys and agent
        if not spec.tls_ca:
            return docker.DockerClient(**kwargs)
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own CA, so
        # the engine's certificate would be checked against the system's CAs: the session
        # must not read the environment, and the SDK asks the engine's API version while
        # it is made, so it is made at the oldest version and told the engine's after.
        made = docker.DockerClient(**kwargs, version=docker.constants.MINIMUM_DOCKER_API_VERSION)
        made.api.trust_env = False
        made.api._version = made.version()["ApiVersion"]
        return made

    def client(self) -> Any:
        if self.spec.url is None:
            return local_client()
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._make(timeout=120)
                except SandboxError:
                    raise
                except Exception as e:  # noqa: BLE001 - a bad URL or certificate, said once
                    raise SandboxError(f"engine {self.name}: {_first_line(e)}") from None
            return self._client

    def ping(self) -> str | None:
        """None when the engine answers within PROBE_TIMEOUT, else why not."""
        try:
            if self.spec.url is None:
                local_client().ping()
            else:
                probe = self._make(timeout=PROBE_TIMEOUT)
                try:
                    probe.ping()
                finally:
                    probe.close()
            return None
        except Exception as e:  # noqa: BLE001 - any failure means it does not answer
            why = _first_line(e)
            if (self.spec.url or "").startswith("ssh://") and "paramiko" in why:
                return "ssh:// engines need the docker SDK's ssh support: pip install 'docker[ssh]'"
            if (self.spec.url or "").startswith("ssh://") and "Connection aborted" in why:
                # the system's ssh said why on stderr; the SDK only saw its pipe close
                from urllib.parse import urlsplit

                u = urlsplit(self.spec.url)
                port = f"-p {u.port} " if u.port else ""
                user = f"{u.username}@" if u.username else ""
                return (f"{why} (ssh did not get through: see its message above, or try "
                        f"`ssh {port}{user}{u.hostname} docker version`)")
            return why


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}" if text else type(e).__name__


class _Threads:
    """A thread pool of one thread per slot, made again, larger, when the slots grow
    (the old one is shut down without waiting: what it runs finishes)."""

    def __init__(self, prefix: str):
        self.prefix, self.pool, self.size = prefix, None, 0

    def sized(self, size: int) -> ThreadPoolExecutor:
        if self.pool is None or self.size < size:
            if self.pool is not None:
                self.pool.shutdown(wait=False)
            self.pool, self.size = ThreadPoolExecutor(size, thread_name_prefix=self.prefix), size
        return self.pool


@dataclass
class Placed(Generic[T]):
    """What a piece of work returned, where it ran, and the engines lost under it."""

    result: T
    engine: str
    lost: list[str] = field(default_factory=list)


class EnginePool:
    """Slots over engines; :meth:`run` places work and moves it off a lost engine."""

    def __init__(self, engines: list[Engine], probe_every: float = 5.0,
                 wait_down: float = 120.0):
        if not engines:
            raise SandboxError("an engine pool needs at least one engine")
        self.engines = engines
        self.probe_every = probe_every
        self.wait_down = wait_down  # with every engine down, how long work waits for one
        self._cond = threading.Condition()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._executor = _Threads("evals-engine")
        self._holders = _Threads("evals-slot")

    @property
    def total_slots(self) -> int:
        return sum(e.slots for e in self.engines)

    @property
    def executor(self) -> ThreadPoolExecutor:
        """Threads for blocking sandbox work, one per slot (asyncio's default pool has
        cpu_count + 4, fewer than the slots of a few remote engines); made again, larger,
        when another task's default gave the engines more slots."""
        with self._cond:
            return self._executor.sized(self.total_slots)

    @property
    def slot_holders(self) -> ThreadPoolExecutor:
        """Threads for the blocking calls of work that holds a slot for long (an agent's
        container commands), one per slot: apart from ``executor``, whose threads may wait
        for a slot, and from asyncio's default pool (cpu_count + 4 threads, which would let
        only that many of many agents run a command at once)."""
        with self._cond:
            return self._holders.sized(self.total_slots)

    def at_least(self, default_slots: int) -> None:
        """Another task shares these engines with its own default: engines named
        without ``slots`` take the larger of the two."""
        with self._cond:
            for e in self.engines:
                if e.spec.slots is None and e.slots < default_slots:
                    e.slots = default_slots
            self._notify()

    def _due(self) -> bool:
        """Whether a down engine is due for a probe (without pinging it)."""
        now = time.monotonic()
        with self._cond:
            return any(e.down and e.next_probe <= now for e in self.engines)

    def _probe_due(self) -> None:
        """Ping each down engine whose time has come (outside the lock: a ping waits)."""
        now = time.monotonic()
        with self._cond:
            due = [e for e in self.engines if e.down and e.next_probe <= now]
            for e in due:
                e.next_probe = now + self.probe_every
        for e in due:
            if e.ping() is None:
                with self._cond:
                    e.down = None
                    self._notify()

    def _take(self, affinity: str | None) -> Engine | None:
        """A slot on the healthy engine with the most free slots (ties: one that ran
        ``affinity`` before, then the first named), or None; the caller holds the lock."""
        free = [e for e in self.engines if not e.down and e.busy < e.slots]
        if not free:
            return None
        best = max(free, key=lambda e: (e.slots - e.busy, affinity in e.seen,
                                        -self.engines.index(e)))
        best.busy += 1
        best.placed += 1
        return best

    def _all_down(self, since: float | None) -> float | None:
        """When every engine went down (None while one is up); raises SandboxError once
        they have all been down for ``wait_down`` seconds. The caller holds the lock."""
        if any(not e.down for e in self.engines):
            return None
        since = since or time.monotonic()
        if time.monotonic() - since > self.wait_down:
            raise SandboxError("no engine answers: " + "; ".join(
                f"{e.name}: {e.down}" for e in self.engines))
        return since

    def acquire(self, affinity: str | None = None) -> Engine:
        """A slot (see :meth:`_take`), blocking this thread while all are busy; raises
        SandboxError when every engine has been down for ``wait_down`` seconds."""
        all_down_since: float | None = None
        while True:
            self._probe_due()
            with self._cond:
                if (engine := self._take(affinity)) is not None:
                    return engine
                all_down_since = self._all_down(all_down_since)
                self._cond.wait(min(1.0, self.probe_every))

    async def acquire_async(self, affinity: str | None = None) -> Engine:
        """:meth:`acquire` for a coroutine: while it waits it holds no thread (an agent
        waits for a slot beside episodes whose commands need the loop's threads), and
        the number waiting is not bounded by anything but the healthy slots freeing."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        waiter = (loop, wake)
        all_down_since: float | None = None
        with self._cond:
            self._waiters.add(waiter)
        try:
            while True:
                if self._due():
                    await asyncio.to_thread(self._probe_due)  # pings wait: not on the loop
                with self._cond:
                    wake.clear()
                    if (engine := self._take(affinity)) is not None:
                        return engine
                    all_down_since = self._all_down(all_down_since)
                try:  # woken by a release, else in time for the next probe
                    await asyncio.wait_for(wake.wait(), min(1.0, self.probe_every))
                except TimeoutError:
                    pass
        finally:
            with self._cond:
                self._waiters.discard(waiter)

    def _notify(self) -> None:
        """Wake every waiter, threads and coroutines alike; the caller holds the lock."""
        self._cond.notify_all()
        for loop, wake in self._waiters:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # its loop has closed
                pass

    def release(self, engine: Engine) -> None:
        with self._cond:
            engine.busy -= 1
            self._notify()

    def mark_down(self, engine: Engine, why: str) -> None:
        with self._cond:
            engine.down = why or "does not answer"
            engine.next_probe = time.monotonic() + self.probe_every
            self._notify()

    def gone(self, engine: Engine, lost: list[str]) -> bool:
        """After work failed on ``engine``: True when the engine fails a ping (it is then
        marked down and added to ``lost``) and the work may run again elsewhere (at
        most twice per engine in all); False when the failure is the work's own."""
        why = engine.ping()
        if why is None:
            return False
        self.mark_down(engine, why)
        lost.append(engine.name)
        return len(lost) <= 2 * len(self.engines)

    def run(self, work: Callable[[], T], failed: Callable[[T], bool] = lambda _: False,
            affinity: str | None = None, stop: Callable[[], bool] = lambda: False) -> Placed[T]:
        """``work()`` on a placed engine (current there: sandbox.engine.use). When it
        raises SandboxError or its result is ``failed``, and the engine does not answer
        a ping, the engine is marked down and the work runs again elsewhere; otherwise
        its result (or error) stands. ``stop()`` true (a cancelled grading) ends retries."""
        lost: list[str] = []
        while True:
            engine = self.acquire(affinity)
            error: SandboxError | None = None
            try:
                with use(engine):
                    try:
                        result = work()
                    except errors() as e:  # a Docker call no wrapper caught
                        raise SandboxError(f"engine {engine.name}: {_first_line(e)}") from None
            except SandboxError as e:
                error = e
            finally:
                self.release(engine)
            if (error is not None or failed(result)) and not stop() and self.gone(engine, lost):
                continue
            if error is not None:
                raise error
            if affinity is not None:
                with self._cond:
                    engine.seen.add(affinity)
            return Placed(result, engine.name, lost)

    async def run_async(self, work: Callable[[Engine], Awaitable[T]],
                        affinity: str | None = None) -> Placed[T]:
        """:meth:`run` for a coroutine ``work(engine)`` (an agent's episode): placed
        without holding a thread, current there (sandbox.engine.use) for its Docker calls
        and its threads'. When it raises SandboxError (or a Docker error) and the engine
        fails a ping, the engine is marked down and the work starts again elsewhere;
        otherwise the error stands. Any other exception passes through."""
        lost: list[str] = []
        while True:
            engine = await self.acquire_async(affinity)
            try:
                with use(engine):
                    try:
                        result = await work(engine)
                    except errors() as e:
                        raise SandboxError(f"engine {engine.name}: {_first_line(e)}") from None
            except SandboxError:
                if await asyncio.to_thread(self.gone, engine, lost):
                    continue
                raise
            finally:
                self.release(engine)
            if affinity is not None:
                with self._cond:
                    engine.seen.add(affinity)
            return Placed(result, engine.name, lost)

    def status(self) -> list[dict[str, Any]]:
        with self._cond:
            return [{"engine": e.name, "slots": e.slots, "busy": e.busy, "placed": e.placed,
                     "down": e.down} for e in self.engines]


_pools: dict[tuple, EnginePool] = {}
_pools_lock = threading.Lock()


def pool(specs: list[EngineSpec], default_slots: int) -> EnginePool:
    """The process's pool for these engines, shared by every task that names them, so
    an engine's containers are counted once whichever task starts them; no specs: the
    local engine alone. An engine's slots are its ``slots`` option, else the largest
    ``default_slots`` of the tasks sharing it (swe's -T sandboxes, math's 4): with swe
    at 2 and math at 4 on one engine, both together run at most 4 containers there."""
    specs = specs or [EngineSpec()]
    key = tuple(specs)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = EnginePool([Engine(s, s.slots or default_slots) for s in specs])
        else:
            _pools[key].at_least(default_slots)
        return _pools[key]
