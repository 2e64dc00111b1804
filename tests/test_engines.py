"""Sandboxes on several Docker engines (sandbox/engines.py).

Naming engines and placing work is checked without Docker (an engine at a socket
nobody listens on is a real engine that does not answer). The rest runs on two real
engines: this machine's, and a second ``dockerd`` the module starts with its own
socket, data root, exec root and cgroup parent, its own bridge (no NAT), and a TLS listener on
127.0.0.1 with certificates made here by openssl (sandbox/testing.py). The base
image reaches it by ``docker save | docker load`` from the first engine (no
registry); the instance images are built on it when a grading needs them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter

import pytest

from sandbox import engines
from sandbox.engine import SandboxError, use
from tests.conftest import DOCKER_HINT, REPO, require, unavailable, wait_for

NOBODY = "unix:///nonexistent/evals-test/docker.sock"  # an engine that never answers


# ------------------------------------------------------------------ naming engines

def test_engines_named_by_url_options_file_and_env(tmp_path, monkeypatch):
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (certs / name).write_text("x")
    got = engines.parse(f"local?slots=3, unix:///run/other.sock tcp://me:pw@10.0.0.5:2376"
                        f"?slots=8&tls={certs}&registry=10.0.0.2:5000&push=1")
    assert [s.name for s in got] == ["local", "unix:///run/other.sock", "tcp://me@10.0.0.5:2376"]
    assert got[0].url is None and got[0].slots == 3 and got[1].slots is None
    tcp = got[2]
    assert (tcp.slots, tcp.registry, tcp.push) == (8, "10.0.0.2:5000", True)
    assert tcp.tls_ca == f"{certs}/ca.pem" and tcp.tls_key == f"{certs}/key.pem"
    assert "pw" not in tcp.name  # a password in a URL reaches no record or log

    file = tmp_path / "engines.toml"
    file.write_text('[[engine]]\nurl = "local"\nslots = 2\n\n'
                    '[[engine]]\nurl = "tcp://10.0.0.6:2376"\ntls_ca = "certs/ca.pem"\n'
                    'tls_cert = "certs/cert.pem"\ntls_key = "certs/key.pem"\n')
    from_file = engines.parse(str(file))
    assert [s.name for s in from_file] == ["local", "tcp://10.0.0.6:2376"]
    assert from_file[1].tls_ca == str(certs / "ca.pem")  # relative to the file

    monkeypatch.setenv("EVALS_ENGINES", "unix:///a.sock,unix:///b.sock?slots=4")
    assert [(s.name, s.slots) for s in engines.named(None)] == [("unix:///a.sock", None),
                                                                ("unix:///b.sock", 4)]
    assert [s.name for s in engines.named("unix:///c.sock")] == ["unix:///c.sock"]  # option wins
    monkeypatch.delenv("EVALS_ENGINES")
    assert engines.named(None) == []  # the local engine alone, as with one engine


@pytest.mark.parametrize("value, message", [
    ("http://host:2376", "expected unix:///PATH, tcp://HOST:PORT, ssh://[USER@]HOST or local"),
    ("tcp://h:1?slot=2", "unknown option 'slot'"),
    ("tcp://h:1?slots=0", "slots must be a whole number >= 1"),
    ("tcp://h:1?slots=many", "slots must be a whole number >= 1"),
    ("tcp://h:1?tls_ca=/nonexistent/ca.pem", "tls_ca '/nonexistent/ca.pem' is not a file"),
    ("unix:///a.sock?push=1", "push needs a registry"),
    ("unix:///a.sock unix:///a.sock?slots=2", "engine 'unix:///a.sock' is named twice"),
    ("/nonexistent/engines.toml", "engines file '/nonexistent/engines.toml'"),
])
def test_bad_engine_settings_say_what_is_wrong(value, message):
    with pytest.raises(SandboxError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]").replace("?", r"\?")):
        engines.parse(value)


def test_bad_engine_is_one_error_line_from_the_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "evals.cli", "run", "swe", "-m", "gold",
                          "--engine", "http://nowhere:1", "--results-dir", str(tmp_path),
                          "--no-progress"], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 1, out.stderr  # a task that cannot be built, as for a bad -T
    assert "engine 'http://nowhere:1': expected unix:///PATH" in out.stderr
    assert "Traceback" not in out.stderr


# ------------------------------------------------------------------ placement

def test_placement_by_free_slots_then_affinity():
    a = engines.Engine(engines.EngineSpec("unix:///a.sock", slots=2), 2)
    b = engines.Engine(engines.EngineSpec("unix:///b.sock", slots=1), 1)
    pool = engines.EnginePool([a, b])
    assert pool.total_slots == 3
    assert pool.acquire() is a  # two free beats one
    b.seen.add("inst-1")
    assert pool.acquire("inst-1") is b  # a tie (one free each): where the images are
    assert pool.acquire() is a
    assert [e.busy for e in pool.engines] == [2, 1]
    pool.release(b)
    assert pool.acquire("inst-2") is b


def test_work_moves_off_an_engine_that_does_not_answer():
    """Work that fails on an engine that fails its ping runs again on another; the
    engine is down until a probe gets an answer."""
    dead = engines.Engine(engines.EngineSpec(NOBODY), 2)
    other = engines.Engine(engines.EngineSpec("unix:///other.sock"), 1)  # never pinged here
    pool = engines.EnginePool([dead, other], probe_every=3600)
    ran_on: list[str] = []

    def work() -> str:
        from sandbox.engine import current
        ran_on.append(current().name)
        if current() is dead:
            raise SandboxError("exec in the container failed: connection refused")
        return "graded"

    placed = pool.run(work, affinity="inst-1")
    assert ran_on == [NOBODY, "unix:///other.sock"]
    assert (placed.result, placed.engine, placed.lost) == ("graded", "unix:///other.sock", [NOBODY])
    assert dead.down and "other" not in (dead.down or "")
    assert pool.acquire() is other  # the dead one takes nothing while down
    assert "inst-1" in other.seen


def test_every_engine_down_is_an_error_naming_them():
    pool = engines.EnginePool([engines.Engine(engines.EngineSpec(NOBODY), 1)],
                              probe_every=0.05, wait_down=0.3)
    pool.mark_down(pool.engines[0], "ConnectionError: refused")
    with pytest.raises(SandboxError, match="no engine answers: unix:///nonexistent"):
        pool.acquire()


def test_tasks_naming_the_same_engines_share_one_pool():
    """swe (2 slots by default) and math (4) naming the same engines get one pool: an
    engine's containers are counted once. Its slots: the engine's own option, else the
    larger default; the pool's threads grow with them."""
    named = "unix:///nonexistent/evals-test/shared-a.sock unix:///nonexistent/evals-test/" \
            "shared-b.sock?slots=3"
    swe_pool = engines.pool(engines.parse(named), 2)
    assert swe_pool.executor._max_workers == 5
    math_pool = engines.pool(engines.parse(named), 4)
    assert math_pool is swe_pool
    assert [e.slots for e in swe_pool.engines] == [4, 3]
    assert engines.pool(engines.parse(named), 1).total_slots == 7  # never less
    assert swe_pool.executor._max_workers == 7


def test_a_coroutine_waits_for_a_slot_without_a_thread():
    """acquire_async: woken by a release (from any thread), and ends with the same
    error as acquire when every engine stays down."""
    one = engines.Engine(engines.EngineSpec("unix:///one.sock"), 1)
    pool = engines.EnginePool([one], probe_every=3600)

    async def go():
        first = await pool.acquire_async()
        waiting = asyncio.ensure_future(pool.acquire_async())
        await asyncio.sleep(0)
        assert not waiting.done() and one.busy == 1
        threading.Thread(target=pool.release, args=(first,)).start()
        return await asyncio.wait_for(waiting, 60)  # a hang guard

    assert asyncio.run(go()) is one and one.busy == 1
    dead = engines.EnginePool([engines.Engine(engines.EngineSpec(NOBODY), 1)],
                              probe_every=0.05, wait_down=0.3)
    dead.mark_down(dead.engines[0], "ConnectionError: refused")
    with pytest.raises(SandboxError, match="no engine answers: unix:///nonexistent"):
        asyncio.run(dead.acquire_async())


# ------------------------------------------------------------------ two real engines

@pytest.fixture(scope="module")
def second(sandbox_base, tmp_path_factory):
    """A second dockerd on this machine (unix socket and TLS on 127.0.0.1), with the
    sandbox base image loaded from the first engine."""
    require("dockerd", binary=True, hint=DOCKER_HINT)
    require("openssl", binary=True, hint="apt-get install openssl")
    if os.geteuid() != 0:
        unavailable("a second dockerd needs root", "run the tests as root (CI does)")
    from sandbox.testing import LocalDaemon, make_certificates

    certs = make_certificates(tmp_path_factory.mktemp("certs"))
    daemon = LocalDaemon(tls_dir=certs)
    try:
        daemon.start()
        daemon.load([sandbox_base])
        yield daemon
    finally:
        daemon.close()


def test_tls_engine_runs_a_container(second, sandbox_base):
    from sandbox.container import Sandbox
    from sandbox.limits import Limits

    certs = second.tls_dir
    engine = engines.Engine(engines.parse_url(f"{second.tcp_url}?tls={certs}"), 1)
    assert engine.ping() is None
    with use(engine):
        with Sandbox(sandbox_base, Limits(timeout=30)) as box:
            got = box.exec(["sh", "-c", "echo on the second engine; id -u"], user="10001")
    assert got.exit_code == 0 and got.text.split() == ["on", "the", "second", "engine", "10001"]
    assert not second_containers(second)  # removed, on the engine it ran on
    anonymous = engines.Engine(engines.parse_url(f"{second.tcp_url}?tls_ca={certs}/ca.pem"), 1)
    assert anonymous.ping() is not None  # no client certificate: refused
    plain = engines.Engine(engines.parse_url(second.tcp_url), 1)
    assert "HTTPS" in (plain.ping() or "")  # plain HTTP to a TLS engine


def test_ssh_engine_runs_a_container(docker_engine, sandbox_base, monkeypatch):
    """ssh://root@127.0.0.1:PORT: this machine's engine reached through a real sshd and
    the system's ssh (docker system dial-stdio on the far side); a key the server does
    not know is refused, in one line."""
    if not (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")):  # root's sbin
        require("sshd", binary=True, hint="apt-get install openssh-server")
    require("paramiko", hint="pip install 'docker[ssh]' (the docker SDK's ssh support needs it)")
    if os.geteuid() != 0:
        unavailable("sshd on a port of its own needs root", "run the tests as root (CI does)")
    from sandbox.container import Sandbox
    from sandbox.limits import Limits
    from sandbox.testing import SshServer

    server = SshServer()
    try:
        server.start()
        monkeypatch.setenv("PATH", f"{server.path}{os.pathsep}{os.environ['PATH']}")
        engine = engines.Engine(engines.parse_url(server.url), 1)
        assert engine.ping() is None
        with use(engine):
            with Sandbox(sandbox_base, Limits(timeout=30)) as box:
                got = box.exec(["sh", "-c", "echo over ssh; id -u"], user="10001")
        assert got.exit_code == 0 and got.text.split() == ["over", "ssh", "10001"]
        server.client_config("stranger_key")
        stranger = engines.Engine(engines.parse_url(server.url), 1)
        refused = stranger.ping()
        assert refused is not None and "\n" not in refused, refused
        assert f"ssh -p {server.port} root@127.0.0.1 docker version" in refused
    finally:
        server.close()


def second_containers(daemon) -> list:
    import docker

    c = docker.DockerClient(base_url=daemon.url, timeout=10)
    try:
        # the low-level list: the high-level one inspects each, racing their removal
        return c.api.containers(all=True, filters={"label": "evals.sandbox"})
    finally:
        c.close()


@pytest.fixture(scope="module")
def repos(tmp_path_factory, sandbox_base):
    from tasks.swe import bundled

    path = tmp_path_factory.mktemp("swe") / "repos"
    bundled.ensure_mirrors(path)
    return path


def local_only(samples):
    """Instances whose images build without a network (the second engine's bridge has no
    NAT; netkit's pip install needs PyPI)."""
    return [s for s in samples if "netkit" not in s.id]


def test_gradings_spread_over_two_engines_with_images_built_once_per_engine(second, repos):
    from tasks.swe import swe

    task = swe(repos=str(repos), sandboxes=1, engines=f"local?slots=2,{second.url}?slots=2")
    samples = local_only(task.samples())[:3]
    pairs = [(s, s.solution) for s in samples] * 2  # each instance twice, at once

    async def go():
        return await asyncio.gather(*(task.scorer(s, c) for s, c in pairs))

    scores = asyncio.run(go())
    assert [s.status for s in scores] == ["resolved"] * len(pairs), \
        [s.explanation for s in scores]
    where = Counter(s.metadata["engine"] for s in scores)
    assert set(where) == {"local", second.url}, where
    # An instance's image is built at most once on each engine, however many gradings
    # want it at once there (a per-engine, per-image lock); the second engine had only
    # the base, so every instance graded there was built there, once.
    built = Counter((s.metadata["engine"], s.metadata["image"]) for s in scores
                    if "instance" in s.metadata["built"])
    assert built and max(built.values()) == 1, built
    on_second = {s.metadata["image"] for s in scores if s.metadata["engine"] == second.url}
    assert on_second <= {image for (engine, image) in built if engine == second.url}
    import docker

    c = docker.DockerClient(base_url=second.url, timeout=10)
    try:
        for image in on_second:
            c.images.get(image)  # cached there for the next grading
    finally:
        c.close()


def test_engine_killed_mid_run_its_gradings_finish_on_the_other(second, repos, tmp_path):
    """`evals run` over both engines; the second's dockerd is killed (SIGKILL) while a
    grading runs on it. Every grading still finishes (on the first), resolved, one
    record each; then the second engine is started again and a pool takes it back."""
    cmd = [sys.executable, "-m", "evals.cli", "run", "swe", "-m", "gold", "-T", f"repos={repos}",
           "--limit", "6", "--engine", "local?slots=1", "--engine", f"{second.url}?slots=2",
           "--results-dir", str(tmp_path), "--run-id", "killed", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert wait_for(lambda: second_containers(second) or proc.poll() is not None,
                        seconds=300, every=0.1), "no grading reached the second engine"
        assert proc.poll() is None, proc.communicate()
        second.kill()
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:  # Ctrl-C: the run removes its containers as it ends
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    records = [json.loads(line) for line in (tmp_path / "killed" / "samples.jsonl").open()]
    assert proc.returncode == 0, [(r["status"], r.get("explanation") or r.get("error"))
                                  for r in records]
    ids = [r["sample_id"] for r in records]
    assert len(ids) == 6 and len(set(ids)) == 6, ids  # none lost, none written twice
    assert [r["status"] for r in records] == ["resolved"] * 6, \
        [r.get("explanation") for r in records]
    moved = [r for r in records if r["score_metadata"].get("engines_lost")]
    assert moved, [r["score_metadata"].get("engine") for r in records]
    for r in moved:
        assert r["score_metadata"]["engines_lost"] == [second.url]
        assert r["score_metadata"]["engine"] == "local"

    second.start()  # the engine comes back over the same data root
    back = engines.Engine(engines.parse_url(second.url), 1)
    pool = engines.EnginePool([back], probe_every=0.05)
    pool.mark_down(back, "killed")
    got: list = []
    t = threading.Thread(target=lambda: got.append(pool.acquire()))
    t.start()
    t.join(60)
    assert got == [back] and back.down is None


def test_agent_episode_on_a_killed_engine_starts_again_on_the_other(second, repos, tmp_path):
    """swe -T mode=agent over both engines: the episode starts on the second (more free
    slots); the scripted model kills the second's dockerd (SIGKILL) before it answers
    its second turn, so the next command finds no engine. The episode starts again on
    the first, its turns answered from memory (no response cache: the model is asked
    once per turn in all), and resolves there."""
    from tasks.swe import swe
    from tests.test_agent import chat_answers
    from tests.test_swe_agent import INSTANCE, agent_script, run_agent_task

    sample = next(s for s in swe(repos=str(repos)).samples() if s.id == INSTANCE)
    plan = agent_script(sample.solution.split("```diff\n", 1)[1].rsplit("```", 1)[0])
    killed: list[int] = []

    def script(body, index):
        if chat_answers(body) == 1 and not killed and second_containers(second):
            second.kill()
            killed.append(1)
        return plan(body, index)

    try:
        log, record, asked = run_agent_task(tmp_path, repos, script,
                                            engines=f"local?slots=1 {second.url}?slots=2")
    finally:
        second.start()  # for the tests after this one
    assert killed, "the episode never ran on the second engine"
    assert (record["status"], record["score"]) == ("resolved", 1.0), \
        record.get("explanation") or record.get("error")
    assert asked == 5 and record["steps"] == 5  # four commands and submit, asked once each
    trajectory = json.loads((log.dir / record["trajectory"]).read_text())
    assert (trajectory["engine"], trajectory["engines_lost"]) == ("local", [second.url])
    assert "OK" in trajectory["steps"][3]["observation"]  # the tests ran, on the first


def test_engine_option_reaches_the_task_and_run_json(tmp_path, repos, sandbox_base):
    """--engine is where, not what: recorded in run.json, and a resume may change it."""
    base = [sys.executable, "-m", "evals.cli", "run", "swe", "-m", "gold", "-T",
            f"repos={repos}", "--limit", "1", "--results-dir", str(tmp_path), "--run-id", "r",
            "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(base + ["--engine", "local?slots=1"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["config"]["engines"] == ["local?slots=1"]
    record = json.loads((tmp_path / "r" / "samples.jsonl").read_text().splitlines()[0])
    assert record["score_metadata"]["engine"] == "local"
    again = subprocess.run(base, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]


def test_engine_with_a_registry_pushes_what_it_builds_and_pulls_before_building(
        second, repos, registry):
    """An engine set to push sends the layers it builds to the registry; once they are
    gone from it, the next grading there pulls them instead of building (same tags: the
    hash chain starts at the same base image id, loaded from the first engine)."""
    import docker

    from tasks.swe import swe

    def grade(engine_url: str):
        engines._pools.clear()
        task = swe(repos=str(repos), sandboxes=1, engines=engine_url)
        sample = next(s for s in task.samples() if s.id == "evalsfix__numkit-2")
        return asyncio.run(task.scorer(sample, sample.solution))

    c = docker.DockerClient(base_url=second.url, timeout=60)
    try:
        for image in c.images.list(name="evals-sandbox/instance") + \
                c.images.list(name="evals-sandbox/env"):
            for tag in image.tags:
                c.images.remove(tag, force=True)
        pushed = grade(f"{second.url}?registry={registry}&push=1")
        assert pushed.status == "resolved", pushed.explanation
        assert set(pushed.metadata["built"]) == {"env", "instance"}
        image = pushed.metadata["image"]
        c.images.remove(image, force=True)
        env = [t for i in c.images.list(name="evals-sandbox/env") for t in i.tags]
        for tag in env:
            c.images.remove(tag, force=True)
        pulled = grade(f"{second.url}?registry={registry}")
        assert pulled.status == "resolved", pulled.explanation
        assert pulled.metadata["built"] == {} and pulled.metadata["image"] == image
        assert c.images.get(image).tags  # cached there under its own tag
    finally:
        c.close()


def test_sandbox_engines_command_names_the_engine_that_does_not_answer(second):
    from tests.conftest import run_cli

    out = run_cli("sandbox", "engines", "--engine", f"{second.url}?slots=3", "--engine", NOBODY,
                  env={"PYTHONPATH": str(REPO)})
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"{second.url}  up, slots 3"), lines
    assert lines[1].startswith(f"{NOBODY}  down: "), lines


def test_math_docker_verifier_moves_off_a_dead_engine_to_the_second(second, tmp_path):
    """math's docker program runner over engines: the first named never answers (it is
    tried first: a tie goes to the first named), so the check runs on the second."""
    from tests.test_math_task import build, score, write_jsonl

    check = tmp_path / "check.py"
    check.write_text("import os, sys\nanswer = sys.stdin.read().strip()\n"
                     "print('1 same' if answer == os.environ['EVALS_TARGET'] else '0 differs')\n")
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "g", "problem": "Say hi", "answer": "hi"}])
    task = build(path=path, verifier=f"run:python3 {check}", program_runner="docker",
                 timeout="20", engines=f"{NOBODY} {second.url}")
    (sample,) = task.samples()
    good = score(task, sample, "\\boxed{hi}")
    assert (good.value, good.status) == (1.0, "ok"), good.explanation
    assert score(task, sample, "\\boxed{bye}").value == 0.0
    pool = engines.pool(engines.parse(f"{NOBODY} {second.url}"), 4)
    assert pool.engines[0].down and pool.engines[1].placed == 2


def test_a_failure_on_an_engine_that_answers_stays_where_it_is(docker_engine):
    """An infra_error whose engine still answers a ping is the grading's own result: not
    run again elsewhere, the engine not marked down."""
    local = engines.Engine(engines.EngineSpec(), 1)
    other = engines.Engine(engines.EngineSpec("unix:///other.sock"), 1)
    pool = engines.EnginePool([local, other])
    runs: list[str] = []

    def work() -> str:
        from sandbox.engine import current
        runs.append(current().name)
        return "infra_error: the test patch does not apply"

    placed = pool.run(work, failed=lambda r: r.startswith("infra_error"))
    assert runs == ["local"] and placed.lost == [] and local.down is None

    def raises() -> str:
        raise SandboxError("building the env image failed: no such package")

    with pytest.raises(SandboxError, match="no such package"):
        pool.run(raises)
    assert local.down is None and other.placed == 0


def test_a_failed_push_is_a_warning_and_the_built_image_is_used(docker_engine, sandbox_base,
                                                                caplog):
    """An engine set to push to a registry that does not answer: the layer is built and
    used; the failed push is one warning per image and engine, not an error."""
    import uuid

    from sandbox import images

    engine = engines.Engine(engines.parse_url("local?registry=127.0.0.1:9&push=1"), 1)
    layer = images.Layer("instance", sandbox_base, "FROM {{PARENT}}\nRUN echo pushed > /x\n",
                         inputs={"test": uuid.uuid4().hex})  # a new image each run
    with use(engine), caplog.at_level("WARNING", logger="evals.sandbox"):
        built = images.ensure(layer)
        images.to_registry(built.tag)  # the same image again: no second warning
    assert built.built and images.image_id(built.tag) is not None
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and warned[0].startswith(f"pushing {built.tag} to 127.0.0.1:9 "
                                                     "failed (built on local"), warned
