"""``swe -T mode=agent``: the model works in a container of the instance's image with a
shell (tasks/agent.py), and its patch is the repository's diff when it submits.

The agent's container is the grading image (the repository at its base commit, with
no later history, and the environment installed), started with the task's limits and
network (sealed by default for swebench specs, ``none`` by choice), the repository
made writable for the unprivileged user the commands run as. Each command runs under
``timeout`` inside the container, so a hung one is killed without ending the episode.
When the episode ends, ``git add -A; git diff --cached`` is the patch; it is graded by
the same hardened grader as a one-shot patch, in a fresh container, so nothing the
agent did to its container (a conftest.py, an edited test, a forged log) survives
except through the patch, which the grader checks as it checks any other.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import Executor
from typing import Any, Callable, TypeVar

from evals.runner import RunnerError
from evals.task import Sample, Solution
from sandbox.container import Sandbox
from sandbox.engine import SandboxError
from sandbox.limits import Limits
from tasks.agent import AgentLimits, run_agent

from .data import Instance

T = TypeVar("T")

AGENT_PROMPT = """You are working in a git repository at /testbed (the current directory), \
checked out at the commit where this issue was reported:

<issue>
{problem}
</issue>

Change the repository's code so that the issue is resolved. You can read files, edit \
them (sed, python, cat with a here-document), and run commands, including the tests. \
Do not edit the tests to make them pass: new tests will check your change. When you \
are done, submit; the repository as you leave it is your answer."""


async def in_thread(threads: Executor | None, call: Callable[..., T], *args: Any,
                    **kwargs: Any) -> T:
    """``call`` on one of ``threads`` (asyncio's default pool when None), in this
    coroutine's context: the engine it was placed on (sandbox.engine.use) goes along."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        threads, functools.partial(context.run, call, *args, **kwargs))


class ContainerShell:
    """Commands in the agent's container, as its unprivileged user, each under
    ``timeout`` (killed, not the container, when it runs too long), on ``threads``."""

    def __init__(self, box: Sandbox, user: str, env: dict[str, str], output_cap: int,
                 threads: Executor | None = None):
        self.box, self.user, self.env, self.output_cap = box, user, env, output_cap
        self.threads = threads

    async def run(self, command: str, timeout: float) -> tuple[int | None, str]:
        seconds = max(1, int(timeout))
        argv = ["timeout", "-k", "5", str(seconds), "bash", "-c", command]
        result = await in_thread(self.threads, self.box.exec, argv, user=self.user,
                                 timeout=seconds + 60, env=self.env, cap=self.output_cap)
        code = result.exit_code
        return (None if code in (None, 124, 137) else code), result.text


def repository_diff(box: Sandbox) -> tuple[str, str | None]:
    """Every change to the repository, new files included, as one diff (blocking), and
    why there is none when git fails. The agent owns /testbed, .git included: a git
    that fails in a container that still runs is the agent's doing (a deleted or
    broken .git), so its answer is no patch, not an error the run would redo. A
    container or engine that fails raises SandboxError from ``exec``."""
    script = ("git -c safe.directory='*' add -A >/dev/null 2>&1 && "
              "git -c safe.directory='*' -c core.quotepath=off diff --cached --binary HEAD")
    out = box.exec(["sh", "-c", script], user="root", timeout=120, cap=50 << 20)
    if out.exit_code != 0:
        return "", f"git diff in the agent's container failed: {out.text[-300:]}"
    return out.text, None


async def solve(sample: Sample, generate: Any, request: Any, *, image: str, limits: Limits,
                agent: AgentLimits, protocol: str, env: dict[str, str],
                threads: Executor | None = None) -> Solution:
    """One episode for ``sample`` in a container of ``image``. The container's failures
    (its engine gone, a command the sandbox could not run) raise SandboxError, for the
    engine pool to judge; a model call that failed every retry raises RunnerError once
    the container is gone. Either way nothing is graded: neither is the model's answer."""
    inst = Instance.from_metadata(sample.metadata)
    box = Sandbox(image, limits, workdir="/testbed", name_hint=f"agent-{inst.instance_id}",
                  lifetime=agent.max_steps * (agent.command_timeout + 120) + 600)
    await in_thread(threads, box.start)
    try:
        owned = await in_thread(
            threads, box.exec, ["chown", "-R", limits.user, "/testbed"], user="root", timeout=300)
        if owned.exit_code != 0:
            raise SandboxError(f"cannot make /testbed writable: {owned.text[-300:]}")
        shell = ContainerShell(box, limits.user, {"HOME": "/tmp", **env}, agent.output_chars * 4,
                               threads)
        messages = [{"role": "user", "content": AGENT_PROMPT.format(problem=inst.problem_statement)}]
        trajectory = await run_agent(generate, messages, shell, agent, protocol, request)
        if trajectory.stop != "model_error":
            diff, diff_error = await in_thread(threads, repository_diff, box)
    finally:
        await in_thread(threads, box.remove)
    if trajectory.stop == "model_error":
        raise RunnerError(f"the model call of step {len(trajectory.steps) + 1} failed: "
                          f"{trajectory.error}")
    text = f"```diff\n{diff}```\n" if diff.strip() else ""
    steps = {**trajectory.to_json(), "diff_lines": diff.count("\n"),
             **({"diff_error": diff_error} if diff_error else {})}
    return Solution(text, trajectory.stop, steps)
