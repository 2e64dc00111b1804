"""One sandbox container: started with limits, driven by ``exec``, always removed.

The container's own process is ``sleep LIFETIME`` under tini with
``auto_remove``: even if this process is killed outright, the container ends
and disappears by itself. In-process, every container is registered until
removed, and an ``atexit`` hook removes any left (Ctrl-C, a crash); a
command past its deadline gets the whole container killed, so a hung test
cannot stall the run.
"""

from __future__ import annotations

import atexit
import io
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .engine import LABEL, SandboxError, client, errors
from .limits import Limits

_live: dict[str, "Sandbox"] = {}
_live_lock = threading.Lock()

# Sealed network: the container has only loopback; a default route into it
# makes a SYN to any outside address loop back and be dropped (this host does
# not forward), so connect() hangs until its timeout. No packet leaves the
# container's namespace: it has no other interface. (A dummy device would do
# too, but needs a kernel module that hosts may lack.)
SEALED_SETUP = "ip route add default dev lo"


@dataclass
class ExecResult:
    exit_code: int | None  # None when the deadline passed and the container was killed
    output: bytes
    seconds: float
    timed_out: bool = False
    truncated: int = 0  # bytes dropped from the middle of the output

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


@dataclass
class _Capped:
    """Keep the first and last ``cap // 2`` bytes of a stream, count the rest."""

    cap: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def add(self, chunk: bytes) -> None:
        half = self.cap // 2
        room = half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > half:
                self.dropped += len(self.tail) - half
                del self.tail[:len(self.tail) - half]

    def value(self) -> bytes:
        if not self.dropped:
            return bytes(self.head + self.tail)
        return bytes(self.head) + f"\n[... {self.dropped} bytes cut ...]\n".encode() + bytes(self.tail)


class Sandbox:
    """``with Sandbox(image, limits) as box: box.exec([...])``."""

    def __init__(self, image: str, limits: Limits = Limits(), workdir: str = "/",
                 name_hint: str = "sbx", lifetime: float | None = None):
        self.image = image
        self.limits = limits
        self.workdir = workdir
        self.name = f"evals-{name_hint[:40]}-{uuid.uuid4().hex[:8]}".replace("/", "_")
        self.lifetime = lifetime or limits.timeout * 2 + 300
        self.container: Any = None
        self.engine: Any = None  # the client of the engine it runs on, fixed at start
        self.killed = False
        self.timings: dict[str, float] = {}

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "Sandbox":
        t0 = time.monotonic()
        try:
            # Every later call (exec from another thread, removal at exit) goes to this
            # engine, whatever engine is current there (sandbox.engine.use).
            self.engine = client()
            self.container = self.engine.containers.create(
                self.image, command=["sleep", str(int(self.lifetime))], name=self.name,
                labels={LABEL: "1"}, working_dir=self.workdir, auto_remove=True,
                detach=True, **self.limits.host_config())
            with _live_lock:
                _live[self.name] = self
            self.container.start()
        except errors() as e:
            self.remove()
            raise SandboxError(f"cannot start a container from {self.image}: {e}") from None
        if self.limits.network == "sealed":
            done = self.exec(["sh", "-c", SEALED_SETUP], timeout=30)
            if done.exit_code == 127:  # no `ip` in this image (SWE-bench's have none)
                done = self._seal_from_outside()
            if done.exit_code != 0:
                self.remove()
                raise SandboxError("sealed network setup failed: " + done.text[-300:])
        self.timings["start"] = time.monotonic() - t0
        return self

    def _seal_from_outside(self) -> ExecResult:
        """The sealed route set from a helper container of our base image (which has
        iproute2) that joins this container's network namespace, then ends."""
        from .base import BaseSpec, ensure_base

        t0 = time.monotonic()
        try:
            helper = ensure_base(BaseSpec()).tag
            out = self.engine.containers.run(
                helper, ["sh", "-c", SEALED_SETUP], remove=True, labels={LABEL: "1"},
                network_mode=f"container:{self.container.id}", cap_drop=["ALL"],
                cap_add=["NET_ADMIN"], security_opt=["no-new-privileges"])
            return ExecResult(0, out or b"", time.monotonic() - t0)
        except (SandboxError, *errors()) as e:
            return ExecResult(1, str(e).encode(), time.monotonic() - t0)

    def kill(self) -> None:
        """Stop everything in the container now; safe from any thread, repeatable."""
        self.killed = True
        if self.container is not None:
            try:
                self.container.kill()
            except errors():
                pass

    def remove(self) -> None:
        t0 = time.monotonic()
        if self.container is not None:
            import docker.errors

            try:
                self.container.remove(force=True)
            except errors():
                pass  # auto_remove may be taking it already: wait until it is gone
            import requests.exceptions

            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    self.engine.containers.get(self.container.id)
                except (docker.errors.NotFound, requests.exceptions.ConnectionError):
                    break  # gone, or its engine is: nothing to wait for
                except errors():
                    pass
                time.sleep(0.05)
        with _live_lock:
            _live.pop(self.name, None)
        self.timings["remove"] = time.monotonic() - t0

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # ---------------------------------------------------------------- work

    def put(self, files: dict[str, bytes], dest: str = "/", mode: int = 0o644) -> None:
        """Write files (paths relative to ``dest``) into the container in one call."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path, data in files.items():
                info = tarfile.TarInfo(path.lstrip("/"))
                info.size, info.mode, info.mtime = len(data), mode, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        try:
            self.container.put_archive(dest, buf.getvalue())
        except errors() as e:
            raise SandboxError(f"cannot copy files into the container: {e}") from None

    def exec(self, cmd: list[str], user: str = "root", timeout: float | None = None,
             cap: int | None = None, env: dict[str, str] | None = None,
             workdir: str | None = None) -> ExecResult:
        """Run ``cmd``; past ``timeout`` seconds the container is killed (exit_code None)."""
        if self.container is None or self.killed:
            raise SandboxError("the container is not running")
        api = self.engine.api
        deadline = timeout if timeout is not None else self.limits.timeout
        capped = _Capped(cap or self.limits.output_cap)
        t0 = time.monotonic()
        try:
            exec_id = api.exec_create(self.container.id, cmd, user=user, environment=env,
                                      workdir=workdir or self.workdir)["Id"]
            stream = api.exec_start(exec_id, stream=True, demux=False)
        except errors() as e:
            raise SandboxError(f"exec in the container failed: {e}") from None
        failure: list[BaseException] = []

        def drain() -> None:
            try:
                for chunk in stream:
                    capped.add(chunk)
            except Exception as e:  # noqa: BLE001 - a killed container ends the stream
                failure.append(e)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        reader.join(deadline)
        if reader.is_alive():
            self.kill()  # the only sure way to stop a command and all it started
            reader.join(10)
            return ExecResult(None, capped.value(), time.monotonic() - t0, True, capped.dropped)
        if self.killed:
            return ExecResult(None, capped.value(), time.monotonic() - t0, True, capped.dropped)
        try:
            code = api.exec_inspect(exec_id).get("ExitCode")
        except errors() as e:
            raise SandboxError(f"exec in the container failed: {e}") from None
        return ExecResult(code, capped.value(), time.monotonic() - t0, False, capped.dropped)


def live() -> list[str]:
    with _live_lock:
        return list(_live)


@atexit.register
def _remove_all() -> None:
    """Ctrl-C or a crash: no container of ours outlives the process."""
    with _live_lock:
        boxes = list(_live.values())
    for box in boxes:
        box.kill()
        box.remove()
