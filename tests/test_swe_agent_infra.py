"""swe -T mode=agent when the sandbox fails, not the model: without Docker.

The containers are stand-ins (``FakeBox`` in place of sandbox.container.Sandbox, and
no image build), so that these tests run where no engine does and fail exactly on
cue; the model is the scripted one behind the fake OpenAI server, spoken to over
HTTP as in tests/test_swe_agent.py. The engines are URLs of sockets nobody listens
on: real engines that never answer a ping. What the real thing does with a second
dockerd killed mid-episode, and with an engine that answers, is in
tests/test_engines.py and tests/test_swe_agent.py.
"""

from __future__ import annotations

import asyncio
import json
import types
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import pytest

import tasks.swe.agent as swe_agent
import tasks.swe.layers as layers
from evals.fake_openai import FakeServer
from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from sandbox import engines
from sandbox.container import ExecResult
from sandbox.engine import SandboxError, current
from tasks.swe import bundled, swe
from tests.test_agent import plan_script

SOCKETS = "unix:///nonexistent/evals-test-agent"  # + a name: one pool per test


class FakeBox:
    """A container that answers every command with ``ok`` (an empty diff for git), and
    whose engine goes away at exec number ``fail_at`` when it runs on ``fail_on``."""

    fail_on: str | None = None
    fail_at = 0
    made: ClassVar[list[FakeBox]] = []

    def __init__(self, image, limits, **_):
        self.engine, self.execs, self.removed = None, 0, False
        FakeBox.made.append(self)

    def start(self):
        self.engine = current().name
        return self

    def exec(self, argv, **_):
        self.execs += 1
        if self.engine == FakeBox.fail_on and self.execs >= FakeBox.fail_at:
            raise SandboxError("exec in the container failed: ('Connection aborted.', "
                               "RemoteDisconnected())")
        return ExecResult(0, b"" if argv[0] == "sh" else b"ok", 0.0)

    def remove(self):
        self.removed = True


@pytest.fixture
def fake_box(monkeypatch):
    monkeypatch.setattr(swe_agent, "Sandbox", FakeBox)
    monkeypatch.setattr(layers, "ensure_images",
                        lambda *a, **k: types.SimpleNamespace(instance="an-image"))
    monkeypatch.setattr(FakeBox, "made", [])
    monkeypatch.setattr(FakeBox, "fail_on", None)
    return FakeBox


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    path = tmp_path_factory.mktemp("swe-infra") / "repos"
    bundled.ensure_mirrors(path)  # git only
    return path


def run(tmp_path, repos, script, engine_urls, limit=1, server=None):
    with FakeServer(script=script) as srv:
        if server is not None:
            server.append(srv)
        cfg = RunConfig(tasks=["swe"], models=["openai/fake-model"],
                        model_options={"base_url": srv.url},
                        task_params={"repos": str(repos), "mode": "agent", "clone": "false",
                                     "engines": engine_urls},
                        limit=limit, cache=False)  # no response cache: the episode's own replay
        log = RunLog(tmp_path / "r")
        stats = execute(cfg, log, ["evals"], cache_dir=tmp_path / "cache")
        asked = srv.count
    return log, list(iter_records(log.samples_path)), asked, stats


def test_an_engine_lost_mid_episode_starts_it_again_elsewhere_without_asking_again(
        tmp_path, repos, fake_box):
    """The first engine's container fails at the second command and the engine does not
    answer a ping: the episode starts again on the other engine, its turns answered
    from memory (the model asked once per turn), and is graded there."""
    dead, other = f"{SOCKETS}/dead.sock", f"{SOCKETS}/other.sock"
    fake_box.fail_on, fake_box.fail_at = dead, 3  # chown, `ls`, then the engine is gone
    log, (record,), asked, _ = run(tmp_path, repos, plan_script(["ls", "ls", "ls"]),
                                   f"{dead} {other}")
    assert [b.engine for b in fake_box.made] == [dead, other]
    assert all(b.removed for b in fake_box.made)
    assert record["status"] == "empty_patch" and record["finish_reason"] == "submitted"
    assert asked == 4 and record["steps"] == 4  # three commands and submit, each asked once
    trajectory = json.loads((log.dir / record["trajectory"]).read_text())
    assert (trajectory["engine"], trajectory["engines_lost"]) == (other, [dead])
    pool = engines.pool(engines.parse(f"{dead} {other}"), 2)
    assert pool.engines[0].down and pool.engines[1].busy == 0


def test_no_engine_at_all_is_an_error_record_not_a_score(tmp_path, repos, fake_box,
                                                        monkeypatch):
    """The image step fails and the only engine does not answer: the episode cannot
    run anywhere. Its record is an error (resume redoes it), outside the score."""
    only = f"{SOCKETS}/only.sock"
    pool = engines.pool(engines.parse(only), 2)  # the pool the task will share
    pool.wait_down, pool.probe_every = 0.3, 0.05

    def no_engine(*a, **k):
        raise SandboxError("cannot look up image: connection refused")

    monkeypatch.setattr(layers, "ensure_images", no_engine)
    _, (record,), asked, stats = run(tmp_path, repos, plan_script(["ls"]), only)
    assert (record["status"], record["score"]) == ("error", None)
    assert record["error"].startswith("sandbox: no engine answers: " + only), record["error"]
    assert asked == 0 and stats.errors == 1 and not fake_box.made


def test_a_model_error_mid_episode_is_an_error_record(tmp_path, repos, fake_box):
    """A model call that fails every retry ends the episode: no diff is taken, the
    container is removed, and the record is an error, not a graded empty patch."""
    server: list[FakeServer] = []
    plan = plan_script(["ls", "ls"])

    def script(body, index):
        server[0].inject("400", times=1)  # the turn after this one is refused
        return plan(body, index)

    _, (record,), asked, _ = run(tmp_path, repos, script, f"{SOCKETS}/model.sock",
                                 server=server)
    assert (record["status"], record["score"]) == ("error", None)
    assert "the model call of step 2 failed" in record["error"], record["error"]
    assert asked == 2
    (box,) = fake_box.made
    assert box.removed and box.execs == 2  # chown and the one command: no git diff


def test_agents_waiting_for_a_slot_hold_no_thread(repos, fake_box):
    """One engine down: the episodes that wait for the other's slots must not take the
    threads that running episodes need for their commands (two here, as asyncio's
    default pool is on a small machine): all seven finish."""
    from evals.runner import Request, make_runner

    down, up = f"{SOCKETS}/down.sock", f"{SOCKETS}/up.sock"
    task = swe(repos=str(repos), clone=False, mode="agent", sandboxes=4, engines=f"{down} {up}")
    pool = engines.pool(engines.parse(f"{down} {up}"), 4)
    pool.mark_down(pool.engines[0], "killed")
    samples = task.samples()
    assert len(samples) == 7

    async def main():
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
        with FakeServer(script=plan_script(["ls", "ls"])) as srv:
            runner = make_runner("openai/fake-model", base_url=srv.url)
            episodes = [task.solver(s, runner.generate, Request([])) for s in samples]
            # a hang guard, not a timing: the episodes take well under a second here
            return await asyncio.wait_for(asyncio.gather(*episodes), 120)

    solutions = asyncio.run(main())
    assert [s.stop for s in solutions] == ["submitted"] * 7
    assert {s.trajectory["engine"] for s in solutions} == {up}
    assert pool.engines[1].placed == 7 and pool.engines[1].busy == 0


def test_every_slot_runs_its_agents_command_at_once(repos, fake_box, monkeypatch):
    """Six slots, six agents whose first command only returns once all six are running:
    their commands go to a thread per slot, not to asyncio's default pool (two threads
    here, as on a small machine), so all six run at once and finish."""
    import threading

    from evals.runner import Request, make_runner

    url = f"{SOCKETS}/six.sock"
    task = swe(repos=str(repos), clone=False, mode="agent", sandboxes=6, engines=url)
    engines.pool(engines.parse(url), 6).engines[0].slots = 6
    together = threading.Barrier(6, timeout=60)  # broken (and failing) if they never meet
    plain_exec = FakeBox.exec

    def exec_(self, argv, **kw):
        if argv[0] == "timeout":  # an agent's command, not the chown or the diff
            together.wait()
        return plain_exec(self, argv, **kw)

    monkeypatch.setattr(FakeBox, "exec", exec_)
    samples = (task.samples() * 2)[:6]

    async def main():
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
        with FakeServer(script=plan_script(["ls"])) as srv:
            runner = make_runner("openai/fake-model", base_url=srv.url)
            episodes = [task.solver(s, runner.generate, Request([])) for s in samples]
            return await asyncio.wait_for(asyncio.gather(*episodes), 120)  # a hang guard

    solutions = asyncio.run(main())
    assert [s.stop for s in solutions] == ["submitted"] * 6
    assert not together.broken
