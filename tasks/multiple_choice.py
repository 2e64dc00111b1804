"""Multiple choice, for any benchmark: samples, prompt templates and the scorer.

A multiple-choice task is a dataset and a template. Each sample's ``input`` is the
question, ``metadata["choices"]`` the options' texts in letter order and ``target``
the correct letter; ``metadata["choice_ids"]`` (optional) names each option
whatever letter a shuffle gave it, so that votes count options, not letters.
:func:`choice_sample` builds such a sample (shuffled or not) and
:func:`multiple_choice` the task. The scorer extracts the letter a completion
finally commits to (:func:`tasks.choice.extract_choice`); ``-T truncated`` says
what an answer found only in unfinished reasoning counts as. docs/tasks.md shows
a whole benchmark in a few lines; GPQA (tasks/gpqa) is one.

Template placeholders: ``{question}``, ``{A}``, ``{B}``, ... (each option's text)
and ``{choices}`` (the ``A) text`` lines). Any other brace is left alone, so
templates may contain LaTeX.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from evals.task import Sample, Score, Task, TaskError
from tasks.choice import extract_choice

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# What an answer found only inside an unclosed <think> block (the output was cut by
# the token limit while the model was still thinking) counts as.
TRUNCATED_POLICIES = ("no_answer", "extract")


def check_truncated_policy(policy: str, task: str = "multiple choice") -> str:
    p = policy.strip().lower()
    if p not in TRUNCATED_POLICIES:
        raise TaskError(f"{task}: -T truncated={policy!r} must be one of "
                        f"{', '.join(TRUNCATED_POLICIES)}")
    return p


def score(sample: Sample, completion: str, truncated: str = "no_answer") -> Score:
    """1 when the completion's final committed choice is the correct option.

    ``Score.answer`` is the option's id from ``metadata["choice_ids"]`` (GPQA's
    ``correct``, ``incorrect1``, ...) or else its letter, so votes count the option
    whatever letter this sample's shuffle gave it. ``truncated`` is the policy for
    an answer found only in an unclosed reasoning block: ``no_answer`` (default)
    or ``extract``.
    """
    choices = sample.metadata["choices"]
    letters = LETTERS[:len(choices)]
    ids = sample.metadata.get("choice_ids") or list(letters)
    found = extract_choice(completion, choices, letters)
    if found is None:
        return Score(0.0, None, f"no answer found; correct is {sample.target}", "no_answer")
    where = {"letter": found.letter, "rule": found.rule, "where": found.where,
             "offset": found.offset, "context": found.context, "line": found.line}
    if len(found.committed) > 1:
        where["committed"] = "".join(found.committed)
    if found.where == "unclosed_reasoning" and truncated == "no_answer":
        return Score(0.0, None, f"no answer: {found.letter} only inside unfinished reasoning "
                     f"(output cut while thinking); correct is {sample.target}",
                     "no_answer", where)
    option = ids[letters.index(found.letter)]
    right = found.letter == sample.target
    verdict = "correct" if right else f"wrong, correct is {sample.target}"
    return Score(float(right), option,
                 f"{found.letter} ({found.rule}, in {found.where}): {verdict}", "ok", where)


# ---------------------------------------------------------------- prompts

def _one_of(letters: str) -> str:
    return ", ".join(letters[:-1]) + f" or {letters[-1]}"


def _option_lines(letters: str) -> str:
    return "\n".join(f"{letter}) {{{letter}}}" for letter in letters)


def cot_template(letters: str = "ABCD") -> str:
    """Zero-shot chain of thought, then ``ANSWER: X`` on the last line."""
    return ("Answer the following multiple-choice question. Think step by step, then give "
            "your final answer on the last line in the form \"ANSWER: X\", where X is one of "
            f"{_one_of(letters)}.\n\n{{question}}\n\n{_option_lines(letters)}")


def direct_template(letters: str = "ABCD") -> str:
    """The answer line alone."""
    return ("Answer the following multiple-choice question. Reply with a single line of the "
            f"form \"ANSWER: X\", where X is one of {_one_of(letters)}, and nothing else."
            f"\n\n{{question}}\n\n{_option_lines(letters)}")


COT_TEMPLATE = cot_template()
DIRECT_TEMPLATE = direct_template()


def _placeholder(letters: str) -> re.Pattern:
    return re.compile(r"\{(question|choices|" + "|".join(letters) + r")\}")


def resolve_template(template: str | None, cot: bool, letters: str = "ABCD",
                     task: str = "multiple choice") -> str:
    """The template to use: ``template`` (text, or ``@file``) or the built-in one."""
    if template is None or template == "":
        return cot_template(letters) if cot else direct_template(letters)
    if template.startswith("@"):
        path = Path(template[1:]).expanduser()
        try:
            template = path.read_text(encoding="utf-8")
        except OSError as e:
            raise TaskError(f"{task}: -T template=@{path}: {e.strerror or e}") from None
    names = set(_placeholder(letters).findall(template))
    if "question" not in names:
        raise TaskError(f"{task}: -T template must contain {{question}}")
    if "choices" not in names and not set(letters) <= names:
        raise TaskError(f"{task}: -T template must contain {{choices}} or all of "
                        + " ".join(f"{{{letter}}}" for letter in letters))
    return template


def render(template: str, question: str, choices: Sequence[str]) -> str:
    letters = LETTERS[:len(choices)]
    values = {"question": question,
              "choices": "\n".join(f"{letter}) {text}" for letter, text in zip(letters, choices))}
    values.update(zip(letters, choices))
    return _placeholder(letters).sub(lambda m: values[m.group(1)], template)


def make_prompt(template: str) -> Callable[[Sample], list[dict[str, str]]]:
    """The task's prompt function: one user turn, ``template`` filled in."""

    def prompt(sample: Sample) -> list[dict[str, str]]:
        return [{"role": "user",
                 "content": render(template, str(sample.input), sample.metadata["choices"])}]

    return prompt


# ---------------------------------------------------------------- samples and tasks

def choice_sample(id: str, question: str, options: Sequence[str], correct: int, *,
                  shuffle_seed: int | None = None, metadata: dict[str, Any] | None = None
                  ) -> Sample:
    """A sample whose option ``correct`` (an index into ``options``) is right. With
    ``shuffle_seed`` the options are shuffled per question (seeded by ``id``) and
    votes count each option by its original index."""
    order = list(range(len(options)))
    if shuffle_seed is not None:
        random.Random(f"{shuffle_seed}:{id}").shuffle(order)
    letter = LETTERS[order.index(correct)]
    return Sample(id=id, input=question, target=letter, solution=f"ANSWER: {letter}",
                  metadata={**(metadata or {}), "choices": [options[i] for i in order],
                            "choice_ids": [str(i) for i in order]})


def multiple_choice(dataset: Iterable[Sample] | Callable[[], Iterable[Sample]], *,
                    template: str | None = None, cot: bool = True,
                    truncated: str = "no_answer", letters: str = "ABCD",
                    task: str = "multiple choice", **fields: Any) -> Task:
    """A multiple-choice task: ``dataset`` (samples as :func:`choice_sample` makes them),
    a template (``template`` or the built-in one for ``letters``) and this scorer.
    ``fields`` are other :class:`evals.Task` fields (``breakdowns``, ``description``)."""
    truncated = check_truncated_policy(truncated, task)
    prompt_template = resolve_template(template, cot, letters, task)

    def scorer(sample: Sample, completion: str) -> Score:
        return score(sample, completion, truncated)

    return Task(dataset=dataset, scorer=scorer, prompt=make_prompt(prompt_template), **fields)
