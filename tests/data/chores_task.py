"""A task plugin solved by an agent (tasks/agent.py), for tests without Docker: the
agent must run ``work`` until the shell says ``done``, then submit. Its shell is
scripted (a counter per episode, no process), so what the tests exercise is the agent
loop, the compute axes on the request and what the run records of them.

Problem i needs ``1 + i % 4`` commands: a step limit or a token limit below that ends
the episode unsolved, which is what makes the axes show on the resolved rate.
"""

from evals.task import Sample, Score, Solution, Task, task
from tasks.agent import AgentLimits, run_agent


class Chores:
    """The scripted shell: ``done`` once the episode has run ``needs`` commands."""

    def __init__(self, needs: int):
        self.needs, self.ran = needs, 0

    async def run(self, command: str, timeout: float) -> tuple[int | None, str]:
        self.ran += 1
        left = self.needs - self.ran
        return 0, "done" if left <= 0 else f"{left} to go"


def chores_script(body, index):
    """The model behind the fake server: ``work`` until told ``done``, then submit."""
    answers = [m for m in body["messages"] if m["role"] == "tool"]
    if answers and answers[-1]["content"].endswith("done"):
        return {"content": "finished", "tool_calls": [{"name": "submit", "arguments": {}}]}
    return {"content": "on it", "tool_calls": [{"name": "bash",
                                                  "arguments": {"command": "work"}}]}


@task
def chores(count: int = 8, max_steps: int = 10) -> Task:
    """Run `work` until done (a scripted shell): an agent task without Docker."""
    samples = [Sample(id=f"c{i}", input=f"Chore list {i}: run work until it says done.",
                      target="done", metadata={"needs": 1 + i % 4}) for i in range(count)]

    async def solver(sample: Sample, generate, request) -> Solution:
        shell = Chores(sample.metadata["needs"])
        trajectory = await run_agent(generate, [{"role": "user", "content": sample.input}],
                                     shell, AgentLimits.for_request(request, max_steps),
                                     request=request)
        solved = trajectory.stop == "submitted" and shell.ran >= shell.needs
        return Solution("done" if solved else "", trajectory.stop, trajectory.to_json())

    return Task(dataset=samples, solver=solver,
                scorer=lambda s, c: Score(float(c == "done"), c or None))
