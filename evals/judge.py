"""Rankers for best-of-k when a task has no verifier: an LLM judge or a reward model.

``--ranker openai/MODEL`` (any model spec) asks the judge to rate each completion
0-10 for how likely its final answer is correct; ``--ranker reward/PATH`` scores it
with a local reward model (the ``reward`` entry of :data:`RANKERS`). The score becomes the record's
``rank``. Neither sees the reference answer, so the ranking is a real test-time
selection rule (what best-of-k would do in deployment).
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable

from evals.registry import Registry
from evals.runner import ConfigError, Request, Response, Runner, make_runner
from evals.task import Sample

JUDGE_PROMPT = """You are grading a response to a problem. Without solving the problem \
from scratch, judge how likely the response's final answer is correct.

PROBLEM:
{problem}

RESPONSE:
{response}

Reply with one line: SCORE: <integer from 0 (surely wrong) to 10 (surely right)>"""

_SCORE = re.compile(r"SCORE:\s*(\d+(?:\.\d+)?)", re.I)


def problem_text(sample: Sample) -> str:
    if isinstance(sample.input, str):
        return sample.input
    users = [m["content"] for m in sample.input if m.get("role") == "user"]
    return users[-1] if users else ""


def parse_rating(text: str) -> float | None:
    found = _SCORE.findall(text)
    return min(10.0, float(found[-1])) if found else None


def judge_ranker(runner: Runner, generate: Callable[[Runner, Request], Awaitable[Response]]
                 ) -> Callable[[Sample, str], Awaitable[float | None]]:
    """``generate`` is the orchestrator's own call path: cache, retries and backoff apply."""

    async def rank(sample: Sample, completion: str) -> float | None:
        prompt = JUDGE_PROMPT.format(problem=problem_text(sample), response=completion)
        response = await generate(runner, Request([{"role": "user", "content": prompt}],
                                                  temperature=0.0, max_tokens=16))
        return parse_rating(response.completions[0].text) if response.completions else None

    return rank


# Rankers other than the judge, by the prefix of their spec (``reward/PATH``); packages
# add theirs through the evals.rankers entry points. Each is ``factory(rest, **options)``
# returning an object with ``rank(sample, completion)`` and ``aclose()``.
RANKERS: Registry[Callable[..., Any]] = Registry("ranker", "evals.rankers", {
    "reward": "runners.reward:make_ranker",
}, error=ConfigError)


def make_ranker(spec: str, options: dict[str, str],
                generate: Callable[[Runner, Request], Awaitable[Response]]
                ) -> tuple[Any, Callable[[Sample, str], Awaitable[float | None]]]:
    """``--ranker SPEC``: (what to ``aclose()`` at the end, the rank function)."""
    prefix, slash, rest = spec.partition("/")
    if slash and prefix in RANKERS:
        ranker = RANKERS.get(prefix)(rest, **options)
        return ranker, ranker.rank
    # the judge has options of its own: the evaluated model's -M/--base-url are not its
    runner = make_runner(spec, **options)
    return runner, judge_ranker(runner, generate)
