"""A math `run:` verifier in a Docker sandbox container (real engine)."""

import time

from sandbox.testing import require_engine
from tests.test_math_task import build, score, write_jsonl

CHECK = """import os, sys, time
answer = sys.stdin.read().strip()
if answer == 'hang':
    time.sleep(60)
if answer == 'whoami':
    print('1' if os.getuid() != 0 else '0')
    sys.exit(0)
if answer == 'net':
    import socket
    try:
        socket.create_connection(('1.1.1.1', 53), timeout=2)
        print('1 reached the network')
    except OSError:
        print('0 no network')
    sys.exit(0)
print('1 matches' if answer == os.environ['EVALS_TARGET'] else '0 differs')
"""


def test_program_verifier_in_docker(tmp_path):
    require_engine()
    check = tmp_path / "check.py"
    check.write_text(CHECK)
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "g", "problem": "Say hi", "answer": "hi"}])
    task = build(path=path, verifier=f"run:python3 {check}", program_runner="docker", timeout="20")
    (sample,) = task.samples()
    good = score(task, sample, "\\boxed{hi}")
    assert (good.value, good.status) == (1.0, "ok"), good.explanation
    assert score(task, sample, "\\boxed{bye}").value == 0.0
    assert score(task, sample, "\\boxed{whoami}").value == 1.0  # not root in the container
    assert score(task, sample, "\\boxed{net}").value == 0.0  # no network
    quick = build(path=path, verifier=f"run:python3 {check}", program_runner="docker", timeout="2")
    (sample,) = quick.samples()
    began = time.monotonic()
    assert score(quick, sample, "\\boxed{hang}").status == "timeout"
    assert time.monotonic() - began < 20
