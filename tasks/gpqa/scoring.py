"""GPQA scorer: extract the committed letter, map it to the canonical option."""

from __future__ import annotations

from evals.task import Sample, Score, TaskError
from tasks.choice import extract_choice

from .data import LETTERS

# What an answer found only inside an unclosed <think> block (the output was cut by
# the token limit while the model was still thinking) counts as.
TRUNCATED_POLICIES = ("no_answer", "extract")


def check_truncated_policy(policy: str) -> str:
    p = policy.strip().lower()
    if p not in TRUNCATED_POLICIES:
        raise TaskError(f"gpqa: -T truncated={policy!r} must be one of "
                        f"{', '.join(TRUNCATED_POLICIES)}")
    return p


def score(sample: Sample, completion: str, truncated: str = "no_answer") -> Score:
    """1 when the completion's final committed choice is the correct option.

    ``Score.answer`` is the canonical option id (``correct``, ``incorrect1``,
    ``incorrect2``, ``incorrect3``), so votes count the option whatever letter
    this sample's shuffle gave it. ``truncated`` is the policy for an answer
    found only in an unclosed reasoning block: ``no_answer`` (default) or
    ``extract``.
    """
    choices = sample.metadata["choices"]
    ids = sample.metadata["choice_ids"]
    found = extract_choice(completion, choices, LETTERS)
    if found is None:
        return Score(0.0, None, f"no answer found; correct is {sample.target}", "no_answer")
    where = {"letter": found.letter, "rule": found.rule, "where": found.where,
             "offset": found.offset, "context": found.context}
    if len(found.committed) > 1:
        where["committed"] = "".join(found.committed)
    if found.where == "unclosed_reasoning" and truncated == "no_answer":
        return Score(0.0, None, f"no answer: {found.letter} only inside unfinished reasoning "
                     f"(output cut while thinking); correct is {sample.target}",
                     "no_answer", where)
    option = ids[LETTERS.index(found.letter)]
    verdict = "correct" if option == "correct" else f"wrong, correct is {sample.target}"
    return Score(float(option == "correct"), option,
                 f"{found.letter} ({found.rule}, in {found.where}): {verdict}", "ok", where)
