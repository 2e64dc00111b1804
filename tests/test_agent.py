"""The agent loop (tasks/agent.py): a scripted model behind the fake OpenAI server
explores, edits and tests a small repository through a real shell, then submits."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess

import pytest

from evals.fake_openai import FakeServer
from evals.runner import make_runner
from tasks.agent import AgentLimits, cut_output, run_agent


class LocalShell:
    """Commands in a directory, with a timeout (the SWE task uses a container)."""

    def __init__(self, root):
        self.root = root

    async def run(self, command, timeout):
        proc = await asyncio.create_subprocess_shell(
            command, cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)  # the shell and what it started
            await proc.wait()
            return None, ""
        return proc.returncode, out.decode("utf-8", "replace")


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (tmp_path / "check.py").write_text(
        "from calc import add\nassert add(2, 3) == 5, add(2, 3)\nprint('ok')\n")
    return tmp_path


PLAN = ["ls", "python check.py", "sed -i 's/a - b/a + b/' calc.py", "python check.py"]


def tool_script(body, index):
    """Acts from how many tool answers it has had: the plan, then submit."""
    done = sum(m["role"] == "tool" for m in body["messages"])
    assert [t["function"]["name"] for t in body["tools"]] == ["bash", "submit"]
    if done < len(PLAN):
        return {"content": f"step {done}",
                "tool_calls": [{"name": "bash", "arguments": {"command": PLAN[done]}}]}
    return {"content": "fixed", "tool_calls": [{"name": "submit", "arguments": {}}]}


def chat_answers(body):
    return sum(m["role"] == "tool" for m in body["messages"])


def plan_script(plan, answered=chat_answers):
    """A scripted model in any wire format (``answered(body)``: how many tool answers the
    request carries): one command of ``plan`` a turn, thinking first, then submit."""
    def script(body, index):
        done = answered(body)
        if done < len(plan):
            return {"content": f"step {done}", "reasoning_content": f"next: step {done}",
                    "tool_calls": [{"name": "bash", "arguments": {"command": plan[done]}}]}
        return {"content": "done", "reasoning_content": "that is all",
                "tool_calls": [{"name": "submit", "arguments": {}}]}
    return script


def text_script(body, index):
    done = sum(m["role"] == "user" for m in body["messages"]) - 1
    if done == 1:
        return "Let me look.\n```bash\nls\n```\n```bash\npwd\n```"  # two: refused
    plan = ["ls", "ls", "sed -i 's/a - b/a + b/' calc.py", "python check.py"]
    if done < len(plan):
        return f"Next.\n```bash\n{plan[done]}\n```"
    return "Done.\n```bash\nsubmit\n```"


def run(script, repo, protocol, **limits):
    async def main():
        with FakeServer(script=script) as srv:
            runner = make_runner("openai/fake-model", base_url=srv.url)
            try:
                return await run_agent(runner.generate,
                                       [{"role": "user", "content": "Make check.py pass."}],
                                       LocalShell(repo), AgentLimits(**limits), protocol)
            finally:
                await runner.aclose()
    return asyncio.run(main())


def test_tool_calls_explore_edit_test_and_submit(repo):
    trajectory = run(tool_script, repo, "tools")
    assert trajectory.stop == "submitted"
    assert [s.action for s in trajectory.steps] == PLAN + ["submit"]
    assert "AssertionError: -1" in trajectory.steps[1].observation  # the failing check
    assert trajectory.steps[1].observation.startswith("(exit code 1)")
    assert trajectory.steps[3].observation == "(exit code 0)\nok\n"
    assert "a + b" in (repo / "calc.py").read_text()
    assert all(s.prompt_tokens > 0 for s in trajectory.steps)
    assert json.loads(json.dumps(trajectory.to_json()))["stop"] == "submitted"


def test_text_protocol_with_a_refused_reply(repo):
    trajectory = run(text_script, repo, "text")
    assert trajectory.stop == "submitted"
    actions = [s.action for s in trajectory.steps]
    assert actions == ["ls", "", "sed -i 's/a - b/a + b/' calc.py", "python check.py", "submit"]
    assert "exactly one" in trajectory.steps[1].observation
    assert (repo / "calc.py").read_text().count("a + b") == 1


def test_limits_end_the_episode(repo):
    stuck = lambda body, index: {"content": "", "tool_calls": [  # noqa: E731
        {"name": "bash", "arguments": {"command": "true"}}]}
    assert run(stuck, repo, "tools", max_steps=3).stop == "max_steps"
    assert len(run(stuck, repo, "tools", max_steps=3).steps) == 3
    assert run(stuck, repo, "tools", max_tokens=1).stop == "max_tokens"
    slow = lambda body, index: {"content": "", "tool_calls": [  # noqa: E731
        {"name": "bash", "arguments": {"command": "sleep 30"}}]}
    trajectory = run(slow, repo, "tools", max_steps=1, command_timeout=0.5)
    assert trajectory.steps[0].exit_code is None
    assert trajectory.steps[0].observation.startswith("(killed after 0.5 s)")


def test_malformed_and_unknown_tool_calls_are_answered_not_run(repo):
    def script(body, index):
        done = sum(m["role"] == "tool" for m in body["messages"])
        calls = [{"name": "bash", "arguments": "{not json"}, {"name": "python", "arguments":
                                                               {"command": "rm -rf ."}}]
        if done == 0:
            return {"content": "", "tool_calls": calls}
        return {"content": "", "tool_calls": [{"name": "submit", "arguments": {}}]}

    trajectory = run(script, repo, "tools")
    assert "malformed arguments" in trajectory.steps[0].observation
    assert "unknown tool 'python'" in trajectory.steps[1].observation
    assert (repo / "calc.py").exists()


def test_long_output_is_cut_to_head_and_tail():
    text = "".join(f"line {i}\n" for i in range(5000))
    shown, cut = cut_output(text, 300)
    assert cut == len(text) - 300 and shown.startswith("line 0\n") and shown.endswith("line 4999\n")
    assert f"[... {cut} characters cut" in shown
    assert cut_output("short", 300) == ("short", 0)
