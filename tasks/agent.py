"""An agent loop for tasks solved by acting in an environment: the model runs shell
commands, reads their output, and submits.

One loop, two ways of speaking:

* ``tools`` (models with tool calling): the request carries a ``bash`` tool and a
  ``submit`` tool; each tool call is run and answered with a ``tool`` message.
* ``text`` (any model): the reply must hold exactly one fenced ``bash`` block; its
  command is run and the output comes back as the next user message. A block whose
  command is ``submit`` ends the episode. A reply with no block, or several, is told so
  (it counts as a step).

The history is linear (every turn stays in the conversation). Each command runs under
a timeout in the task's ``Executor`` (a container for SWE), and its output is cut to a
head and a tail with the cut said to the model. The episode ends at ``submit``, or at
a limit: steps, total tokens, cost. Every step is kept in the ``Trajectory``: what was
run, what came back (cut), the tokens and latency of the model call.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable, Protocol

import orjson

from evals.runner import PROVIDER_ITEMS, Request, Response, RunnerError

BASH_TOOL = {"type": "function", "function": {
    "name": "bash",
    "description": "Run one shell command in the repository and get its output "
                   "(stdout and stderr, with the exit code).",
    "parameters": {"type": "object", "properties": {
        "command": {"type": "string", "description": "The command to run."}},
        "required": ["command"]}}}
SUBMIT_TOOL = {"type": "function", "function": {
    "name": "submit",
    "description": "Finish: the current state of the repository is your answer.",
    "parameters": {"type": "object", "properties": {}}}}

TEXT_PROTOCOL = """Reply with your reasoning, then exactly one shell command in a fenced \
block:

```bash
the command
```

It runs in the repository and its output comes back to you. When you are done, reply \
with a block holding only the word submit."""

_FENCE = re.compile(r"```(?:bash|sh|shell)?[ \t]*\n(.*?)```", re.S)


class Executor(Protocol):
    """Where commands run: ``(exit code, output)``; the exit code is None when the
    command was killed at its timeout."""

    async def run(self, command: str, timeout: float) -> tuple[int | None, str]: ...


@dataclass
class AgentLimits:
    max_steps: int = 50
    max_tokens: int | None = None  # prompt + completion over the episode
    max_cost: float | None = None  # USD over the episode
    command_timeout: float = 60.0
    output_chars: int = 10_000  # what the model sees of one command's output

    @classmethod
    def for_request(cls, request: Request, max_steps: int, **rest: Any) -> "AgentLimits":
        """One episode's limits: the request's compute setting (``--max-steps``,
        ``--agent-max-tokens``, ``--agent-max-cost``), else the task's step limit."""
        return cls(max_steps=request.max_steps or max_steps,
                   max_tokens=request.agent_max_tokens, max_cost=request.agent_max_cost, **rest)


@dataclass
class Step:
    action: str  # the command, "submit", or "" (a reply with no usable command)
    observation: str  # what the model was told back (cut)
    exit_code: int | None = None
    prompt_tokens: float = 0
    completion_tokens: float = 0
    latency: float = 0.0
    cost: float | None = None
    cut: int = 0  # characters of output the model did not see


@dataclass
class Trajectory:
    steps: list[Step] = field(default_factory=list)
    stop: str = ""  # submitted, max_steps, max_tokens, max_cost, model_error
    error: str | None = None

    @property
    def tokens(self) -> float:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.steps)

    @property
    def cost(self) -> float | None:
        costs = [s.cost for s in self.steps]
        return None if None in costs else sum(costs)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return {"stop": self.stop, "error": self.error, "steps": [asdict(s) for s in self.steps]}


class Replay:
    """``generate`` for an episode that may start again (its engine lost mid-way): a
    turn asked before, with the same history, is answered from memory, so a rerun
    costs no model call and counts no token twice, with or without the response cache.
    Where the rerun's commands answer differently the histories part, and the model
    is asked."""

    def __init__(self, generate: Callable[[Request], Awaitable[Response]]):
        self.generate = generate
        # by the history's length: one turn per length, kept with the history it answered
        # (compared only on a rerun; hashing every turn's history would cost its size)
        self.turns: dict[int, tuple[list, Response]] = {}

    async def __call__(self, request: Request) -> Response:
        known = self.turns.get(len(request.messages))
        if known is not None and known[0] == request.messages:
            return known[1]
        response = await self.generate(request)
        self.turns[len(request.messages)] = (list(request.messages), response)
        return response


def cut_output(text: str, limit: int) -> tuple[str, int]:
    """The head and tail of ``text`` within ``limit`` characters, and how much was cut."""
    if len(text) <= limit:
        return text, 0
    head, tail = limit * 2 // 3, limit // 3
    cut = len(text) - head - tail
    return (f"{text[:head]}\n[... {cut} characters cut from the middle of this output; "
            f"narrow the command (grep, head, tail, sed -n) to see them ...]\n"
            f"{text[-tail:]}"), cut


def _observe(exit_code: int | None, output: str, limits: AgentLimits) -> tuple[str, int]:
    shown, cut = cut_output(output, limits.output_chars)
    status = (f"(killed after {limits.command_timeout:g} s)" if exit_code is None
              else f"(exit code {exit_code})")
    return f"{status}\n{shown}", cut


async def run_agent(generate: Callable[[Request], Awaitable[Response]], messages: list[dict],
                    executor: Executor, limits: AgentLimits, protocol: str = "tools",
                    request: Request | None = None) -> Trajectory:
    """Run one episode from ``messages`` (the task's prompt). ``generate`` is the model
    call (the orchestrator's, with its cache and retries); ``request`` carries the
    compute setting (effort, budget, max tokens), copied for every turn."""
    if protocol not in ("tools", "text"):
        raise ValueError(f"agent protocol must be tools or text, not {protocol!r}")
    history = list(messages)
    if protocol == "text":
        history = [*history[:-1], {**history[-1], "content":
                                   f"{history[-1]['content']}\n\n{TEXT_PROTOCOL}"}]
    base = request or Request([])
    trajectory = Trajectory()
    spent_tokens, spent_cost = 0.0, 0.0
    for _ in range(limits.max_steps):
        ask = Request(history, max_tokens=base.max_tokens, temperature=base.temperature,
                      seed=base.seed, effort=base.effort, thinking_budget=base.thinking_budget,
                      tools=[BASH_TOOL, SUBMIT_TOOL] if protocol == "tools" else None,
                      tool_choice="auto" if protocol == "tools" else None)
        began = time.perf_counter()
        try:
            response = await generate(ask)
        except RunnerError as e:
            trajectory.stop, trajectory.error = "model_error", str(e)
            return trajectory
        latency = time.perf_counter() - began
        completion = response.completions[0]
        usage = response.usage
        spent_tokens += usage.prompt_tokens + usage.completion_tokens
        if limits.max_cost is not None and response.cost is None:
            # without a price the limit would never bind: the episode would run on unpaid
            raise RunnerError("an agent's cost limit needs the model's price, and this call "
                              "has no cost: add one (-M prices=FILE, or EVALS_PRICES)")
        spent_cost += response.cost or 0.0

        def step(action: str, observation: str, exit_code: int | None = None, cut: int = 0,
                 first: bool = True) -> Step:
            # the call's tokens and cost go to the first action it produced
            s = Step(action, observation, exit_code,
                     usage.prompt_tokens if first else 0, usage.completion_tokens if first else 0,
                     latency if first else 0.0, (response.cost if first else 0.0), cut)
            trajectory.steps.append(s)
            return s

        if protocol == "tools":
            calls = completion.tool_calls or []
            history.append({"role": "assistant", "content": completion.text or None,
                            **({"tool_calls": [
                                {"id": c.id, "type": "function",
                                 "function": {"name": c.name, "arguments": c.arguments}}
                                for c in calls]} if calls else {}),
                            # what the provider must see again (signed thinking, ...)
                            **({PROVIDER_ITEMS: completion.provider_items}
                               if completion.provider_items is not None else {})})
            if not calls:
                step("", "no tool call")
                history.append({"role": "user", "content":
                                "Use the bash tool to act, or the submit tool when done."})
            for i, call in enumerate(calls):
                if call.name == "submit":
                    step("submit", "", first=i == 0)
                    trajectory.stop = "submitted"
                    return trajectory
                try:
                    command = str(orjson.loads(call.arguments or "{}")["command"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    answer = f"malformed arguments for {call.name!r}: expected {{\"command\": ...}}"
                    step("", answer, first=i == 0)
                else:
                    if call.name != "bash":
                        answer = f"unknown tool {call.name!r}: use bash or submit"
                        step("", answer, first=i == 0)
                    else:
                        code, output = await executor.run(command, limits.command_timeout)
                        answer, cut = _observe(code, output, limits)
                        step(command, answer, code, cut, first=i == 0)
                history.append({"role": "tool", "tool_call_id": call.id, "content": answer})
        else:
            history.append({"role": "assistant", "content": completion.text})
            blocks = _FENCE.findall(completion.text or "")
            if len(blocks) != 1:
                told = ("No command found: reply with exactly one fenced bash block."
                        if not blocks else "Several commands found: send exactly one per reply.")
                step("", told)
                history.append({"role": "user", "content": told})
            else:
                command = blocks[0].strip()
                if command == "submit":
                    step("submit", "")
                    trajectory.stop = "submitted"
                    return trajectory
                code, output = await executor.run(command, limits.command_timeout)
                answer, cut = _observe(code, output, limits)
                step(command, answer, code, cut)
                history.append({"role": "user", "content": answer})
        if limits.max_tokens is not None and spent_tokens >= limits.max_tokens:
            trajectory.stop = "max_tokens"
            return trajectory
        if limits.max_cost is not None and spent_cost >= limits.max_cost:
            trajectory.stop = "max_cost"
            return trajectory
    trajectory.stop = "max_steps"
    return trajectory
