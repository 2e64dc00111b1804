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


class SshServer:
    """An ``sshd`` on 127.0.0.1 (as root, a free port) that lets in one throwaway key, so
    that an ``ssh://root@127.0.0.1:PORT`` engine (this machine's, reached through ssh
    and ``docker system dial-stdio``) can be tested for real. The docker SDK runs the
    system's ``ssh``, which reads the user's ~/.ssh: rather than write there,
    :attr:`path` is a folder whose ``ssh`` runs the real one with this server's client
    config (its key and host key), as a user's ~/.ssh/config would; put it first on
    PATH. :meth:`close` stops the server and removes its folder."""

    def __init__(self) -> None:
        import socket
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="evals-ssh-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None
        self.ssh = shutil.which("ssh") or "/usr/bin/ssh"  # before our wrapper is on PATH

    @property
    def url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    @property
    def path(self) -> str:
        return str(self.root / "bin")

    def start(self, timeout: float = 20) -> None:
        import time

        r = self.root
        for key in ("host_key", "client_key", "stranger_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(r / key)],
                           check=True, capture_output=True)
        shutil.copy(r / "client_key.pub", r / "authorized_keys")
        (r / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {r / 'host_key'}\n"
            f"AuthorizedKeysFile {r / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\n"
            f"UsePAM no\nPidFile {r / 'sshd.pid'}\n")
        host_key = (r / "host_key.pub").read_text().split()[:2]
        (r / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {' '.join(host_key)}\n")
        self.client_config("client_key")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        self.proc = subprocess.Popen([sshd, "-D", "-f", str(r / "sshd_config"), "-E",
                                      str(r / "sshd.log")], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.1)
        log = (r / "sshd.log").read_text(errors="replace")[-1000:] if (r / "sshd.log").exists() else ""
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port}:\n{log}")

    def client_config(self, key: str) -> None:
        """The ``ssh`` on :attr:`path` offers ``key`` (``client_key``, which is let in, or
        ``stranger_key``, which is not)."""
        r = self.root
        (r / "ssh_config").write_text(
            f"Host 127.0.0.1\n  IdentityFile {r / key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {r / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
            f"  BatchMode yes\n")
        (r / "bin").mkdir(exist_ok=True)
        wrapper = r / "bin" / "ssh"
        wrapper.write_text(f"#!/bin/sh\nexec {self.ssh} "
                           f"-F {r / 'ssh_config'} \"$@\"\n")
        wrapper.chmod(0o755)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)
