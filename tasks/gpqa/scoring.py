"""GPQA scorer: extract the chosen letter, map it to the canonical option."""

from __future__ import annotations

from evals.task import Sample, Score
from tasks.extract import extract_choice

from .data import LETTERS


def score(sample: Sample, completion: str) -> Score:
    """1 when the completion's final choice is the correct option.

    ``Score.answer`` is the canonical option id (``correct``, ``incorrect1``,
    ``incorrect2``, ``incorrect3``), so votes count the option whatever letter
    this sample's shuffle gave it.
    """
    choices = sample.metadata["choices"]
    ids = sample.metadata["choice_ids"]
    found = extract_choice(completion, choices, LETTERS)
    if found is None:
        return Score(0.0, None, f"no answer found; correct is {sample.target}", "no_answer")
    option = ids[LETTERS.index(found.letter)]
    verdict = "correct" if option == "correct" else f"wrong, correct is {sample.target}"
    return Score(float(option == "correct"), option,
                 f"{found.letter} ({found.rule}, in {found.where}): {verdict}", "ok",
                 {"letter": found.letter, "rule": found.rule, "where": found.where})
