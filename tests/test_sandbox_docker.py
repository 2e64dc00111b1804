"""The sandbox container against a real Docker engine: user, limits, network, cleanup.

Network checks only ever target a listener container of our own on this
machine's docker bridge; no packet is sent anywhere else.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from sandbox.engine import LABEL, client
from tests.conftest import CONNECT, wait_for


@pytest.fixture(scope="module")
def base(sandbox_base):
    return sandbox_base


def _box(base, **limits):
    from sandbox.container import Sandbox
    from sandbox.limits import Limits

    return Sandbox(base, Limits(**{"timeout": 20, **limits}), name_hint="test")


def _ours(running_only: bool = False):
    """The names of our containers (or of those still running). Sparse: names from the
    listing itself; a full listing inspects each container and fails when another run's
    container goes away in between."""
    return [n.lstrip("/") for c in client().containers.list(
                all=not running_only, sparse=True,
                filters={"label": LABEL, **({"status": "running"} if running_only else {})})
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
    got = box.exec(["sh", "-c", "trap '' TERM; while :; do :; done"], timeout=2)
    assert got.timed_out and got.exit_code is None
    assert wait_for(lambda: box.name not in _ours(running_only=True))  # killed, not left spinning
    box.remove()
    assert box.name not in _ours()


def test_network_policies(base, listener):
    container, ip = listener
    with _box(base, network="bridge") as box:  # control: the listener is reachable at all
        assert "CONNECTED" in box.exec(["python3", "-c", CONNECT, ip], user="10001:10001").text
    with _box(base, network="none") as box:  # no route: refused by the kernel at once
        got = box.exec(["python3", "-c", CONNECT, ip], user="10001:10001").text.split()
        assert got == ["OSError", str(errno.ENETUNREACH)], got
    with _box(base, network="sealed") as box:  # the SYN loops back and is dropped: no answer
        got = box.exec(["python3", "-c", CONNECT, ip], user="10001:10001").text.split()
        assert got == ["TimeoutError", "None"], got
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
    try:
        name = proc.stdout.readline().strip()
        assert name in _ours()
        container = client().containers.get(name)
        # Interrupt only once the exec is under way, not while it is being set up.
        assert wait_for(lambda: ["sleep", "100"] in [p[-1].split() for p in
                                                      container.top()["Processes"]]), container.top()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) != 0
        assert wait_for(lambda: name not in _ours()), _ours()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
