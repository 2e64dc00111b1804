"""``gold``: answers every sample with its reference solution.

Running a task through it checks the whole path (dataset, prompt, scorer,
records, metrics) without a model: ``evals validate TASK`` must score 100%.
"""

from __future__ import annotations

from typing import Any

from evals.runner import Completion, ConfigError, Request, Response, Usage
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
        text = self.answer
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request.messages)
        usage = Usage(prompt_tokens, len(text.split()) * request.n, 0)
        return Response([Completion(text, None, "stop") for _ in range(request.n)], usage, 0.0, 0.0)

    async def aclose(self) -> None:
        pass
