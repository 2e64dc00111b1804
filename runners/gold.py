"""``gold``: answers every sample with its reference solution.

Running a task through it checks the whole path (dataset, prompt, scorer,
records, metrics) without a model: ``evals validate TASK`` must score 100%.

For an agent (a request with tools, or the text protocol's fenced commands) it plays
a scripted gold trajectory: one command that applies the reference patch, then submit;
so ``evals validate swe -T mode=agent`` checks the agent path end to end too.
"""

from __future__ import annotations

import json
import re
from typing import Any

from evals.runner import Completion, ConfigError, Request, Response, ToolCall, Usage
from evals.task import Sample


def make_runner(name: str = "", **options: Any) -> "GoldRunner":
    if options:
        raise ConfigError(f"gold runner takes no options (got {', '.join(options)})")
    return GoldRunner()


class GoldRunner:
    model = "gold"
    cacheable = False  # the reference costs nothing to hand out again

    def __init__(self, answer: str = ""):
        self.answer = answer

    def for_sample(self, sample: Sample) -> "GoldRunner":
        """The runner of one sample: it answers with the sample's solution (or target)."""
        return GoldRunner(sample.solution if sample.solution is not None else str(sample.target))

    async def generate(self, request: Request) -> Response:
        if request.tools or _text_protocol(request):
            return self._agent_turn(request)
        text = self.answer
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request.messages)
        usage = Usage(prompt_tokens, len(text.split()) * request.n, 0)
        return Response([Completion(text, None, "stop") for _ in range(request.n)], usage, 0.0, 0.0)

    async def aclose(self) -> None:
        pass

    def _agent_turn(self, request: Request) -> Response:
        """The gold trajectory's next turn: apply the reference patch, then submit."""
        patch = _DIFF.search(self.answer)
        acted = any(m.get("role") == "tool" for m in request.messages) or \
            sum(m.get("role") == "user" for m in request.messages) > 1
        command = "submit" if acted or patch is None else (
            f"cat > /tmp/gold.patch <<'GOLD_PATCH_END'\n{patch.group(1)}GOLD_PATCH_END\n"
            "git apply --recount /tmp/gold.patch || patch -p1 --forward < /tmp/gold.patch")
        if request.tools:
            call = ToolCall("gold-submit", "submit", "{}") if command == "submit" else \
                ToolCall("gold-apply", "bash", json.dumps({"command": command}))
            completion = Completion("", None, "tool_calls", [call])
        else:
            completion = Completion(f"```bash\n{command}\n```", None, "stop")
        return Response([completion], Usage(0, 0, 0), 0.0, 0.0)


_DIFF = re.compile(r"```diff\n(.*?)```", re.S)


def _text_protocol(request: Request) -> bool:
    """An agent's conversation in the text protocol (tasks/agent.py): its first message
    asks for fenced bash blocks."""
    first = next((m for m in request.messages if m.get("role") == "user"), None)
    return bool(first) and "```bash" in str(first.get("content") or "") and \
        "exactly one shell command" in str(first.get("content") or "")

