"""swe -T mode=agent end to end: a scripted model behind the fake OpenAI server works
in a container of a bundled instance's image with a shell (explores, writes and applies
a fix, runs the tests, submits); its diff is graded by the hardened grader. An empty
submission is not resolved; the text protocol works the same; the trajectory is kept.
The native runners (openai-responses/, anthropic/, google/) do the same through their
own fake servers, thinking on, and a resumed run replays the episode from the cache."""

from __future__ import annotations

import json

import pytest

from evals.fake_anthropic import FakeAnthropic
from evals.fake_gemini import FakeGemini
from evals.fake_openai import FakeServer
from evals.fake_responses import FakeResponses
from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from tasks.swe import bundled, swe
from tests.conftest import free_port
from tests.test_agent import chat_answers, plan_script

INSTANCE = "evalsfix__textkit-1"


@pytest.fixture(scope="module")
def repos(tmp_path_factory, sandbox_base):
    path = tmp_path_factory.mktemp("swe-agent") / "repos"
    bundled.ensure_mirrors(path)
    return path


@pytest.fixture(scope="module")
def gold_patch(repos):
    sample = next(s for s in swe(repos=str(repos)).samples() if s.id == INSTANCE)
    return sample.solution.split("```diff\n", 1)[1].rsplit("```", 1)[0]


def agent_script(gold_patch, submit_empty=False, answered=chat_answers):
    """``answered(body)``: how many tool answers the request carries (its wire format's)."""
    steps = ["ls", "cat textkit/core.py",
             f"cat > /tmp/fix.patch <<'EOF'\n{gold_patch}EOF\npatch -p1 < /tmp/fix.patch",
             "python3 -m unittest -q 2>&1 | tail -1"]  # no timings: replays match
    return plan_script(["ls"] if submit_empty else steps, answered)


def run_agent_task(tmp_path, repos, script, server=FakeServer, model="openai/fake-model",
                   run="r", port=0, config=None, **params):
    with server(script=script, port=port) as srv:
        cfg = RunConfig(tasks=["swe"], models=[model],
                        model_options={"base_url": srv.url},
                        task_params={"repos": str(repos), "mode": "agent",
                                     "instances": "bundled", **params},
                        limit=1, **{"cache": False, **(config or {})})
        log = RunLog(tmp_path / run)
        execute(cfg, log, ["evals"], cache_dir=tmp_path / "cache")
        asked = srv.count
    (record,) = [r for r in iter_records(log.samples_path)]
    return log, record, asked


def test_an_agent_that_fixes_the_code_resolves(tmp_path, repos, gold_patch):
    log, record, _ = run_agent_task(tmp_path, repos, agent_script(gold_patch))
    assert record["sample_id"] == INSTANCE
    assert record["status"] == "resolved" and record["score"] == 1.0, record["explanation"]
    assert record["finish_reason"] == "submitted"
    trajectory = json.loads((log.dir / record["trajectory"]).read_text())
    actions = [s["action"] for s in trajectory["steps"]]
    assert actions[:2] == ["ls", "cat textkit/core.py"] and actions[-1] == "submit"
    assert "OK" in trajectory["steps"][3]["observation"]
    assert record["usage"]["prompt"] > 0  # every turn's tokens, summed


def test_an_agent_that_changes_nothing_does_not_resolve(tmp_path, repos, gold_patch):
    _, record, _ = run_agent_task(tmp_path, repos, agent_script(gold_patch, submit_empty=True))
    assert (record["status"], record["score"]) == ("empty_patch", 0.0)
    assert record["finish_reason"] == "submitted"


def test_an_agent_that_breaks_git_gets_no_patch(tmp_path, repos):
    """The agent deletes .git (it owns /testbed): no diff can be taken. That is the
    agent's answer, graded as no patch, not an error the run would redo."""
    log, record, _ = run_agent_task(tmp_path, repos, plan_script(["rm -rf .git"]))
    assert (record["status"], record["score"]) == ("empty_patch", 0.0)
    trajectory = json.loads((log.dir / record["trajectory"]).read_text())
    assert trajectory["diff_error"].startswith("git diff in the agent's container failed")


def test_a_sandbox_failure_on_an_engine_that_answers_is_an_error_record(tmp_path, repos):
    """The instance's image cannot be made (a base image that is not here) on an engine
    that answers a ping: the episode is not moved to the other engine, and its record
    is an error (outside the score; a resume redoes it), the model never asked."""
    from sandbox import engines
    from tests.test_engines import NOBODY

    _, record, asked = run_agent_task(tmp_path, repos, agent_script("", submit_empty=True),
                                      base_image="evals-test/absent:1",
                                      engines=f"local {NOBODY}")
    assert (record["status"], record["score"]) == ("error", None)
    assert "base image 'evals-test/absent:1' is not here" in record["error"], record["error"]
    assert asked == 0
    local, other = engines.pool(engines.parse(f"local {NOBODY}"), 2).engines
    assert local.down is None and other.placed == 0


def test_the_text_protocol_resolves_too(tmp_path, repos, gold_patch):
    steps = ["ls", f"cat > /tmp/fix.patch <<'EOF'\n{gold_patch}EOF\npatch -p1 < /tmp/fix.patch",
             "submit"]

    def script(body, index):
        done = sum(m["role"] == "user" for m in body["messages"]) - 1
        return f"Next.\n```bash\n{steps[min(done, len(steps) - 1)]}\n```"

    _, record, _ = run_agent_task(tmp_path, repos, script, agent_protocol="text")
    assert (record["status"], record["score"], record["finish_reason"]) == \
        ("resolved", 1.0, "submitted")


def test_step_limits_are_compute_settings(tmp_path, repos, gold_patch):
    """--max-steps 2,10: two settings; with 2 steps the agent never gets to its fix."""
    with FakeServer(script=agent_script(gold_patch)) as srv:
        cfg = RunConfig(tasks=["swe"], models=["openai/fake-model"],
                        model_options={"base_url": srv.url},
                        task_params={"repos": str(repos), "mode": "agent"},
                        max_steps=[2, 10], limit=1, cache=False)
        log = RunLog(tmp_path / "r")
        execute(cfg, log, ["evals"])
    records = {r["setting"]: r for r in iter_records(log.samples_path)}
    assert set(records) == {"steps=2", "steps=10"}
    short, long = records["steps=2"], records["steps=10"]
    assert (short["finish_reason"], short["steps"], short["score"]) == ("max_steps", 2, 0.0)
    assert (long["finish_reason"], long["score"]) == ("submitted", 1.0) and long["steps"] == 5
    assert long["settings"]["max_steps"] == 10


def test_the_sandbox_holds_against_the_agent(tmp_path, repos, gold_patch):
    """A scripted agent tries each way around the grader: later history, the network,
    the tests themselves, a conftest that passes everything, forged output. Its
    container shows no later commit and no network; what it wrote is reverted at
    grading; the instance stays unresolved."""
    attempts = [
        "git log --all --oneline | wc -l; git rev-list --all | wc -l",
        "timeout 20 pip download --no-deps -d /tmp/dl requests 2>&1 | tail -1; "
        "timeout 10 python3 -c \"import urllib.request as u; "
        "u.urlopen('http://pypi.org', timeout=5)\" 2>&1 | tail -1",
        "printf 'import pytest\\n@pytest.hookimpl(tryfirst=True)\\ndef pytest_runtest_makereport"
        "(item, call):\\n    pass\\n' > conftest.py && ls conftest.py",
        "sed -i 's/self.assert/pass  # self.assert/' tests/test_slugify.py && "
        "grep -c 'pass  #' tests/test_slugify.py",
        "printf 'import atexit\\natexit.register(lambda: print(\"Ran 99 tests OK\"))\\n' "
        "> sitecustomize.py && echo planted",
    ]

    def script(body, index):
        done = sum(m["role"] == "tool" for m in body["messages"])
        if done < len(attempts):
            return {"content": "", "tool_calls": [
                {"name": "bash", "arguments": {"command": attempts[done]}}]}
        return {"content": "", "tool_calls": [{"name": "submit", "arguments": {}}]}

    log, record, _ = run_agent_task(tmp_path, repos, script)
    steps = json.loads((log.dir / record["trajectory"]).read_text())["steps"]
    history = steps[0]["observation"].split("\n")
    assert history[1:3] == ["1", "1"]  # one commit: the base, no later history
    no_network = ("name resolution", "Network is unreachable", "timed out")
    assert any(word in steps[1]["observation"] for word in no_network), steps[1]
    assert steps[3]["observation"].startswith("(exit code 0)")  # it did edit the test
    assert steps[4]["observation"].endswith("planted\n")  # written, in its own container
    assert (record["status"], record["score"]) == ("unresolved", 0.0), record["explanation"]
    reverted = {r["path"] for r in record["score_metadata"]["reverted"]}
    assert {"conftest.py", "sitecustomize.py", "tests/test_slugify.py"} <= reverted


def test_show_sample_prints_the_trajectory(tmp_path, repos, gold_patch):
    from tests.conftest import run_cli

    log, record, _ = run_agent_task(tmp_path, repos, agent_script(gold_patch))
    shown = run_cli("show", "r", "--results-dir", str(tmp_path), "--sample", INSTANCE)
    assert shown.returncode == 0, shown.stderr
    assert "step 1: ls\n" in shown.stdout and "step 5: submit" in shown.stdout
    assert "resolved score 1.0" in shown.stdout
    as_json = json.loads(run_cli("show", "r", "--results-dir", str(tmp_path), "--sample",
                                 INSTANCE, "--json").stdout)
    assert as_json[0]["trajectory_steps"]["stop"] == "submitted"
    missing = run_cli("show", "r", "--results-dir", str(tmp_path), "--sample", "nope")
    assert missing.returncode == 2 and "no sample 'nope'" in missing.stderr


def test_a_token_limit_per_instance_ends_the_episode(tmp_path, repos, gold_patch):
    """--agent-max-tokens 1: the container's episode ends after its first turn."""
    _, record, _ = run_agent_task(tmp_path, repos, agent_script(gold_patch),
                                  config={"agent_max_tokens": [1]})
    assert (record["finish_reason"], record["steps"], record["score"]) == ("max_tokens", 1, 0.0)
    assert record["setting"] == "agent_tokens=1"


@pytest.mark.parametrize("protocol", ["tools", "text"])
def test_validate_replays_a_gold_trajectory(tmp_path, repos, protocol):
    """`evals validate swe -T mode=agent`: the gold runner plays apply-then-submit."""
    from tests.conftest import run_cli

    out = run_cli("validate", "swe", "-T", f"repos={repos}", "-T", "mode=agent",
                  "-T", f"agent_protocol={protocol}", "--limit", "2",
                  "--results-dir", str(tmp_path), timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    records = [json.loads(x) for d in tmp_path.iterdir() if (d / "samples.jsonl").exists()
               for x in (d / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["status"] == "resolved" for r in records), records
    assert all(r["finish_reason"] == "submitted" and r["steps"] == 2 for r in records)


NATIVE = [("openai-responses/o3", FakeResponses, {"efforts": ["high"]}),
          ("anthropic/claude-sonnet-4-5", FakeAnthropic, {"thinking_budgets": [2048]}),
          ("google/gemini-3-flash-preview", FakeGemini, {"efforts": ["low"]})]


@pytest.mark.parametrize("model,server,compute", NATIVE, ids=[m for m, _, _ in NATIVE])
def test_a_native_runner_resolves_with_thinking_on(tmp_path, repos, gold_patch, model, server,
                                                   compute):
    """The episode through the provider's own wire format, each turn's reasoning state
    sent back (the fake refuses a turn without it); the record is as for openai/. A
    second run, resumed from the response cache, replays the episode without asking."""
    port = free_port()  # the endpoint is part of the runner's cache identity
    script = agent_script(gold_patch, answered=lambda body: len(server.tool_results(body)))
    log, record, asked = run_agent_task(tmp_path, repos, script, server, model, port=port,
                                        config={**compute, "cache": True})
    assert (record["status"], record["score"]) == ("resolved", 1.0), record["explanation"]
    assert record["finish_reason"] == "submitted" and record["steps"] == 5 and asked == 5
    assert record["usage"]["prompt"] > 0 and record["usage"]["reasoning"] > 0
    trajectory = json.loads((log.dir / record["trajectory"]).read_text())
    assert [s["action"] for s in trajectory["steps"]][-1] == "submit"

    def lazy(body, index):  # what a fresh model would do: nothing
        return {"content": "", "tool_calls": [{"name": "submit", "arguments": {}}]}

    _, again, asked = run_agent_task(tmp_path, repos, lazy, server, model, run="resumed",
                                     port=port, config={**compute, "cache": True})
    assert asked == 0 and (again["status"], again["steps"]) == ("resolved", 5)
