"""inspect-ai task for bench/harness_overhead.py: the `arithmetic` prompts, read from JSONL.

The driver writes the prompts of ``evals``' built-in ``arithmetic`` task (``make_samples``)
to a JSONL file of ``{"id", "input", "target"}`` lines and runs::

    inspect eval bench/peer_tasks/inspect_arith.py -T data=FILE --model openai/fake-model ...

The scorer does what ours does: take the integer after ``ANSWER:`` and compare it with
the target (accuracy).
"""

from __future__ import annotations

import re

from inspect_ai import Task, task
from inspect_ai.dataset import Sample, json_dataset
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Target, accuracy, scorer
from inspect_ai.solver import TaskState, generate

_ANSWER = re.compile(r"ANSWER:\s*\**\s*(-?[\d,]+)", re.IGNORECASE)


def _record(row: dict) -> Sample:
    return Sample(id=row["id"], input=row["input"], target=str(row["target"]))


@scorer(metrics=[accuracy()])
def answer_match():
    async def score(state: TaskState, target: Target) -> Score:
        found = _ANSWER.findall(state.output.completion)
        answer = str(int(found[-1].replace(",", ""))) if found else None
        return Score(value=CORRECT if answer == target.text else INCORRECT, answer=answer)

    return score


@task
def inspect_arith(data: str) -> Task:
    return Task(dataset=json_dataset(data, _record), solver=generate(), scorer=answer_match())
