"""Generated integer arithmetic: a small, fully offline task for demos and benchmarks."""

from __future__ import annotations

import random
import re

from evals.task import Sample, Score, Task, task

PROMPT = ("Compute {expr}. Think step by step if you need to, then give the final "
          "line as 'ANSWER: <integer>'.")
_ANSWER = re.compile(r"ANSWER:\s*\**\s*(-?[\d,]+)", re.I)
_NUMBER = re.compile(r"-?\d[\d,]*")


def make_samples(count: int, seed: int, digits: int) -> list[Sample]:
    rng = random.Random(seed)
    hi = 10 ** digits - 1
    samples = []
    for i in range(count):
        a, b, c = rng.randint(1, hi), rng.randint(1, hi), rng.randint(1, 9)
        op = rng.choice("+-*")
        expr = f"({a} {op} {b}) * {c}"
        value = eval(expr)  # noqa: S307 - an expression built above from integers
        samples.append(Sample(id=f"arith-{seed}-{i}", input=PROMPT.format(expr=expr),
                              target=str(value), metadata={"op": op},
                              solution=f"ANSWER: {value}"))
    return samples


def extract_integer(text: str) -> str | None:
    """The 'ANSWER:' line if there is one, else the last integer in the text."""
    found = _ANSWER.findall(text) or _NUMBER.findall(text)
    if not found:
        return None
    return str(int(found[-1].replace(",", "")))


def score(sample: Sample, completion: str) -> Score:
    answer = extract_integer(completion)
    if answer is None:
        return Score(0.0, None, "no integer in the completion", "no_answer")
    return Score(float(answer == sample.target), answer)


@task
def arithmetic(count: int = 20, seed: int = 0, digits: int = 3) -> Task:
    """Generated integer arithmetic ((a op b) * c); offline, for demos and benchmarks."""
    if count < 1 or digits < 1:
        from evals.task import TaskError
        raise TaskError("arithmetic: count and digits must be at least 1")
    return Task(dataset=lambda: make_samples(count, seed, digits), scorer=score)
