"""The sandbox container against a real Docker engine: user, limits, network, cleanup.

Network checks only ever target a listener container of our own on this
machine's docker bridge; no packet is sent anywhere else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from sandbox.testing import require_engine



@pytest.fixture(scope="module")
def base():
    require_engine()
    from sandbox.base import ensure_base

    return ensure_base().tag


def _box(base, **limits):
    from sandbox.container import Sandbox
    from sandbox.limits import Limits

    return Sandbox(base, Limits(**{"timeout": 20, **limits}), name_hint="test")


def _ours():
    from sandbox.engine import LABEL, client

    # sparse: names from the listing itself; a full listing inspects each container and
    # fails when another run's container goes away in between
    return [n.lstrip("/") for c in client().containers.list(all=True, sparse=True,
                                                            filters={"label": LABEL})
            for n in c.attrs.get("Names") or []]


def test_runs_as_non_root_without_capabilities(base):
    with _box(base) as box:
        got = box.exec(["sh", "-c", "id -u; grep CapEff /proc/self/status; touch /etc/x"],
                       user="10001:10001")
        assert "10001" in got.text.split()  # stdout and stderr frames may interleave
        assert "CapEff:\t0000000000000000" in got.text
        assert got.exit_code != 0 and "Permission denied" in got.text


def test_memory_and_pid_limits(base):
    with _box(base, memory="128m", pids=64) as box:
        hog = box.exec(["python3", "-c", "b = bytearray(512 * 1024 * 1024); print('alive')"],
                       user="10001:10001")
        assert hog.exit_code == 137 and "alive" not in hog.text  # killed by the OOM killer
        bomb = box.exec(["sh", "-c", "for i in $(seq 200); do sleep 5 & done; wait"],
                        user="10001:10001", timeout=15)
        assert "fork" in bomb.text.lower() or "resource" in bomb.text.lower()
        assert box.exec(["true"]).exit_code == 0  # the container survived both


def test_output_is_capped_head_and_tail(base):
    with _box(base, output_cap=4096) as box:
        got = box.exec(["sh", "-c", "echo FIRST; yes filler | head -c 3000000; echo; echo LAST"])
        assert got.exit_code == 0 and len(got.output) < 5000 and got.truncated > 2_900_000
        assert got.text.startswith("FIRST") and got.text.rstrip().endswith("LAST")


def test_wall_clock_kills_and_removes_a_hung_container(base):
    box = _box(base).start()
    started = time.monotonic()
    got = box.exec(["sh", "-c", "trap '' TERM; while :; do :; done"], timeout=2)
    assert got.timed_out and got.exit_code is None and time.monotonic() - started < 15
    box.remove()
    assert box.name not in _ours()


@pytest.fixture(scope="module")
def listener(base):
    """A TCP listener of ours on the default bridge: the only network target of these tests."""
    from sandbox.engine import LABEL, client

    server = textwrap.dedent("""
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 8765)); s.listen(5)
        while True:
            c, a = s.accept(); print("conn", a[0], flush=True); c.sendall(b"hi"); c.close()
        """)
    c = client().containers.run(base, ["python3", "-c", server], detach=True, labels={LABEL: "1"},
                                name=f"evals-test-listener-{os.getpid()}")
    try:
        for _ in range(50):
            c.reload()
            if c.attrs["NetworkSettings"]["IPAddress"]:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        yield c, c.attrs["NetworkSettings"]["IPAddress"]
    finally:
        c.remove(force=True)


CONNECT = """
import socket, sys, time
t = time.monotonic()
try:
    socket.create_connection((sys.argv[1], 8765), timeout=3).recv(2); print("CONNECTED")
except OSError as e:
    print(type(e).__name__, round(time.monotonic() - t, 1))
"""


def test_network_policies(base, listener):
    container, ip = listener
    with _box(base, network="bridge") as box:  # control: the listener is reachable at all
        assert "CONNECTED" in box.exec(["python3", "-c", CONNECT, ip], user="10001:10001").text
    with _box(base, network="none") as box:  # no route: fails at once
        got = box.exec(["python3", "-c", CONNECT, ip], user="10001:10001").text.split()
        assert got[0] == "OSError" and float(got[1]) < 1.0, got
    with _box(base, network="sealed") as box:  # hangs until its own timeout, nothing leaves
        got = box.exec(["python3", "-c", CONNECT, ip], user="10001:10001").text.split()
        assert got[0] in ("TimeoutError", "timeout") and float(got[1]) >= 2.9, got
        assert box.exec(["ls", "/sys/class/net"]).text.split() == ["lo"]
        undo = box.exec(["ip", "route", "del", "default"], user="10001:10001")
        assert undo.exit_code != 0  # the test user cannot change the routes
    logs = container.logs().decode()
    assert logs.count("conn") == 1  # only the control connection arrived


def test_interrupt_removes_containers(base, tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(os.getcwd())!r})
        from sandbox.container import Sandbox
        from sandbox.limits import Limits
        box = Sandbox({base!r}, Limits(timeout=120), name_hint="interrupt").start()
        print(box.name, flush=True)
        box.exec(["sleep", "100"])
        """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            cwd=os.getcwd())
    name = proc.stdout.readline().strip()
    assert name in _ours()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while name in _ours() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert name not in _ours()
