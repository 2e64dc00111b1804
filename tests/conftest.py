import importlib
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    """CI sets ``CI`` (.ci/run exports CI=1): there nothing the README promises may skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(what: str, hint: str) -> NoReturn:
    """An optional dependency is missing: fail under CI, else skip saying what to install."""
    if in_ci():
        pytest.fail(f"CI must run this test, but {what}: {hint}", pytrace=False)
    pytest.skip(f"{what}: {hint}", allow_module_level=True)


def require(*names: str, hint: str, binary: bool = False) -> Any:
    """The first of ``names`` that is here: an imported module, or with ``binary`` the
    path of a program on PATH. Missing: a failure under CI, a skip elsewhere, both
    with ``hint`` (what to install). Works in a test, a fixture or at module level."""
    for name in names:
        if binary:
            if found := shutil.which(name):
                return found
            continue
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    unavailable(f"{' or '.join(names)} is not installed", hint)


INSTALL = "pip install -e ."  # a dependency of evals itself
TEST_EXTRA = "pip install -e '.[test]'"
TORCH_HINT = ("pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu "
              "(the CPU build; the test extra leaves torch out)")
DOCKER_HINT = ("install docker.io and debootstrap, then start the engine "
               "(bash .ci/docker.sh does both, as root), or set DOCKER_HOST")


@pytest.fixture(scope="module")
def one_torch_thread():
    """For the tiny-model modules (``pytestmark = pytest.mark.usefixtures(...)``): a hidden
    size of 32 gains nothing from threads, and OpenMP spin-waiting on a busy 2-core CI
    machine makes every step many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def docker_engine():
    """A Docker engine that answers, else the tests that need one skip (fail under CI).

    The sandbox images the suite builds (any image of ours that was not here when the
    session started) are removed when it ends, unless EVALS_KEEP_TEST_IMAGES=1:
    then the base image (about a minute to make) is reused by the next run."""
    require("docker", hint=TEST_EXTRA)
    from sandbox.engine import available

    why = available()
    if why is not None:
        unavailable(why.split("; start one")[0], DOCKER_HINT)
    from sandbox.images import list_images

    before = {row.tag for row in list_images()}
    yield
    if os.environ.get("EVALS_KEEP_TEST_IMAGES") != "1":
        from sandbox.images import LAYERS, prune

        prune(LAYERS, keep=before)


@pytest.fixture(scope="session")
def sandbox_base(docker_engine) -> str:
    """The tag of the sandbox base image, made now if it is not here."""
    from sandbox.base import BaseSpec, ensure_base
    from sandbox.images import image_id

    if image_id(BaseSpec().tag) is None:
        require("debootstrap", binary=True, hint=DOCKER_HINT)
    return ensure_base().tag


def wait_for(condition: Callable[[], Any], seconds: float = 30, every: float = 0.05) -> bool:
    """Poll ``condition`` until it holds: True, or False at the deadline, which only bounds
    the wait (no test asserts how long anything took)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state not in ("Z", "X")


LISTENER = textwrap.dedent("""
    import socket
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8765)); s.listen(5)
    print("listening", flush=True)
    while True:
        c, a = s.accept(); print("conn", a[0], flush=True); c.sendall(b"hi"); c.close()
    """)

# Connects to the listener (argv[1]) and prints CONNECTED, or the error's type and errno.
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], 8765), timeout=3).recv(2); print("CONNECTED")
except OSError as e:
    print(type(e).__name__, e.errno)
"""


@pytest.fixture(scope="module")
def listener(sandbox_base):
    """(container, address): a TCP listener of ours on the engine's default bridge, the
    only network target of the sandbox tests; no packet is sent anywhere else. Its log
    has one "conn" line per connection that reached it."""
    from sandbox.engine import LABEL, client

    c = client().containers.run(sandbox_base, ["python3", "-c", LISTENER], detach=True,
                                labels={LABEL: "1"}, name=f"evals-test-listener-{os.getpid()}")
    try:
        assert wait_for(lambda: b"listening" in c.logs()), c.logs()
        c.reload()
        ip = c.attrs["NetworkSettings"]["IPAddress"]
        assert ip, c.attrs["NetworkSettings"]
        yield c, ip
    finally:
        c.remove(force=True)


@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry on 127.0.0.1 (the engine trusts loopback registries)."""
    require("docker-registry", hint="bash .ci/docker.sh installs it (Debian's docker-registry)",
            binary=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}/data\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the local registry did not answer")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


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


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a server that must come back on the same one
    (an endpoint URL is part of a runner's cache identity)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
