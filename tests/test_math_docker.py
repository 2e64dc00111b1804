"""A math `run:` verifier in a Docker sandbox container (real engine)."""

from sandbox.limits import Limits
from sandbox.programs import run_program
from tests.conftest import CONNECT
from tests.test_math_task import build, score, write_jsonl

CHECK = """import os, subprocess, sys, time
answer = sys.stdin.read().strip()
if answer == 'hang':
    time.sleep(60)
if answer == 'whoami':
    print('1' if os.getuid() != 0 else '0')
    sys.exit(0)
if answer == 'net':  # the test's own listener on the engine's bridge: LISTENER_IP
    out = subprocess.run([sys.executable, '-c', CONNECT, 'LISTENER_IP'], capture_output=True,
                         text=True).stdout.strip()
    print(('1 ' if out == 'CONNECTED' else '0 ') + out)
    sys.exit(0)
print('1 matches' if answer == os.environ['EVALS_TARGET'] else '0 differs')
"""


def test_program_verifier_in_docker(tmp_path, sandbox_base, listener):
    container, ip = listener
    check = tmp_path / "check.py"
    check.write_text(f"CONNECT = {CONNECT!r}\n" + CHECK.replace("LISTENER_IP", ip))
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "g", "problem": "Say hi", "answer": "hi"}])
    task = build(path=path, verifier=f"run:python3 {check}", program_runner="docker", timeout="20")
    (sample,) = task.samples()
    good = score(task, sample, "\\boxed{hi}")
    assert (good.value, good.status) == (1.0, "ok"), good.explanation
    assert score(task, sample, "\\boxed{bye}").value == 0.0
    assert score(task, sample, "\\boxed{whoami}").value == 1.0  # not root in the container
    # Control: the same program in the same runner, but on the bridge, reaches the listener.
    bridged = run_program(["python3", str(check)], "net", {"EVALS_TARGET": "hi"}, 20,
                          limits=Limits(memory="1g", timeout=20, network="bridge"))
    assert bridged.stdout.startswith("1 CONNECTED"), bridged
    assert container.logs().decode().count("conn") == 1
    net = score(task, sample, "\\boxed{net}")  # the verifier's container has no network
    assert (net.value, net.status) == (0.0, "ok") and "OSError" in net.explanation, net
    assert container.logs().decode().count("conn") == 1  # nothing more arrived
    quick = build(path=path, verifier=f"run:python3 {check}", program_runner="docker", timeout="2",
                  retry_factor="1.5")
    (sample,) = quick.samples()
    hung = score(quick, sample, "\\boxed{hang}")  # undecided at 2 s, and again at 3 s
    assert hung.status == "timeout" and "no verdict within 3s" in hung.explanation, hung
