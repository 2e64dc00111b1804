"""For benchmarks and tests: make a Docker engine answer (via .ci/docker.sh), or say
why it cannot (bench/swe_overhead.py; the tests never start or install the main one:
tests/conftest.py's ``docker_engine`` fixture skips, or fails under CI); and start a
second engine beside it (:class:`LocalDaemon`, for engine pools: tests/test_engines.py,
bench/swe_engines.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

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


class LocalDaemon:
    """A second Docker engine on this machine, for tests and benchmarks of engine pools:
    a ``dockerd`` (as root) with its own socket, data root, exec root, pid file and
    cgroup parent, and its own bridge interface with no NAT (its containers reach
    nothing outside; builds that need the network cannot run on it). Not
    ``--bridge=none``: a dockerd started so deletes the host's ``docker0``, which
    the main engine's containers and builds use. With ``tls_dir`` it also listens on
    ``tcp://127.0.0.1:PORT`` and requires client certificates signed by that folder's
    ``ca.pem`` (:func:`make_certificates`).

    :meth:`kill` ends the daemon as a crash would (SIGKILL): its containers live on,
    orphaned; :meth:`start` again brings the engine back over the same data root.
    :meth:`close` ends everything it started, by process id, and removes its folders.
    """

    def __init__(self, tls_dir: str | Path | None = None):
        import socket
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="evd-", dir="/tmp"))  # a socket path is short
        self.sock = self.root / "docker.sock"
        self.cgroup = f"evals-engine-{self.root.name}"
        self.tls_dir = Path(tls_dir) if tls_dir else None
        self.port: int | None = None
        if self.tls_dir is not None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None
        self.bridge = f"evb-{self.root.name[-8:]}"[:15]  # an interface name has 15 bytes

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    @property
    def tcp_url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        import time

        # After kill(), the containerd it started is dead but may linger as a zombie
        # nobody reaps (its parent is gone): a dockerd that finds its pid file takes it
        # for running and waits on its socket until it gives up. It is not running.
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        if pidfile.exists() and not _running(pidfile.read_text().strip()):
            pidfile.unlink()
        cmd = ["dockerd", "--host", self.url, "--data-root", str(self.root / "data"),
               "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "docker.pid"),
               f"--bridge={self._make_bridge()}", "--iptables=false", "--ip-masq=false",
               f"--cgroup-parent=/{self.cgroup}", "--log-level=warn"]
        if self.tls_dir is not None:
            cmd += ["--host", self.tcp_url, "--tlsverify",
                    f"--tlscacert={self.tls_dir / 'ca.pem'}",
                    f"--tlscert={self.tls_dir / 'server-cert.pem'}",
                    f"--tlskey={self.tls_dir / 'server-key.pem'}"]
        log = open(self.root / "dockerd.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.sock.exists() and self.answers():
                return
            time.sleep(0.2)
        tail = (self.root / "dockerd.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"the second dockerd did not answer on {self.url}:\n{tail}")

    def _make_bridge(self) -> str:
        """This daemon's bridge, on a /24 of 10.213.0.0/16 no interface here uses."""
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True).returncode == 0:
            return self.bridge  # a restart after kill()
        used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        net = next(n for n in range(1, 255) if f" 10.213.{n}." not in used)
        for cmd in (["ip", "link", "add", self.bridge, "type", "bridge"],
                    ["ip", "addr", "add", f"10.213.{net}.1/24", "dev", self.bridge],
                    ["ip", "link", "set", self.bridge, "up"]):
            subprocess.run(cmd, check=True, capture_output=True)
        return self.bridge

    def answers(self) -> bool:
        import docker

        try:
            c = docker.DockerClient(base_url=self.url, timeout=5)  # asks the API version
            try:
                return bool(c.ping())
            finally:
                c.close()
        except Exception:  # noqa: BLE001 - not yet
            return False

    def kill(self) -> None:
        """SIGKILL the daemon (its containerd follows it; containers stay, orphaned)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def load(self, tags: list[str], source: Any = None) -> None:
        """Copy images from ``source`` (a DockerClient; the local engine by default) into
        this engine as ``docker save | docker load`` does, streamed."""
        import docker

        from .engine import local_client

        src = (source or local_client()).api
        dst = docker.DockerClient(base_url=self.url, timeout=600)
        try:
            for tag in tags:
                dst.api.load_image(src.get_image(tag))
                if not dst.images.list(name=tag):
                    raise RuntimeError(f"loading {tag} into {self.url} gave no image")
        finally:
            dst.close()

    def _ours(self) -> list[int]:
        """Processes this daemon left: its containerd and shims (named by our exec root
        in their command lines) and what runs in its containers (its cgroup)."""
        pids: set[int] = set()
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if str(self.root).encode() in (proc / "cmdline").read_bytes():
                        pids.add(int(proc.name))
                except OSError:
                    continue
        for procs in Path("/sys/fs/cgroup").glob(f"**/{self.cgroup}/**/cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                continue
        return sorted(pids - {os.getpid()})

    def close(self) -> None:
        import signal
        import time

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # a clean stop removes its containers
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self._ours():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.root))]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        for group in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup}"):
            for d in sorted((p for p in group.glob("**/") if p.is_dir()), key=lambda p: -len(str(p))):
                try:
                    d.rmdir()
                except OSError:
                    pass
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _running(pid: str) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def make_certificates(folder: str | Path) -> Path:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, with
    openssl, in docker's layout: ca.pem, server-cert.pem/server-key.pem, cert.pem/key.pem."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=out, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out",
        "ca.pem", "-days", "2", "-subj", "/CN=evals test CA")
    for name, cn, ext in (("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\n"
                                                  "extendedKeyUsage=serverAuth\n"),
                          ("client", "evals client", "extendedKeyUsage=clientAuth\n")):
        (out / f"{name}.ext").write_text(ext)
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out",
            f"{name}.csr", "-subj", f"/CN={cn}")
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "2", "-extfile", f"{name}.ext")
    (out / "client-cert.pem").rename(out / "cert.pem")
    (out / "client-key.pem").rename(out / "key.pem")
    return out
