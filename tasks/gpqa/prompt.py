"""GPQA prompt templates: zero-shot chain of thought (default) and direct answer.

Placeholders: ``{question}``, ``{A}`` .. ``{D}`` (each option's text) and
``{choices}`` (the four ``A) text`` lines). Any other brace is left alone, so
templates may contain LaTeX.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from evals.task import TaskError

COT_TEMPLATE = """\
Answer the following multiple-choice question. Think step by step, then give \
your final answer on the last line in the form "ANSWER: X", where X is one of \
A, B, C or D.

{question}

A) {A}
B) {B}
C) {C}
D) {D}"""

DIRECT_TEMPLATE = """\
Answer the following multiple-choice question. Reply with a single line of the \
form "ANSWER: X", where X is one of A, B, C or D, and nothing else.

{question}

A) {A}
B) {B}
C) {C}
D) {D}"""

_PLACEHOLDER = re.compile(r"\{(question|choices|A|B|C|D)\}")


def resolve_template(template: str | None, cot: bool) -> str:
    """The template to use: ``template`` (text, or ``@file``) or the built-in one."""
    if template is None or template == "":
        return COT_TEMPLATE if cot else DIRECT_TEMPLATE
    if template.startswith("@"):
        path = Path(template[1:]).expanduser()
        try:
            template = path.read_text(encoding="utf-8")
        except OSError as e:
            raise TaskError(f"gpqa: -T template=@{path}: {e.strerror or e}") from None
    names = set(_PLACEHOLDER.findall(template))
    if "question" not in names:
        raise TaskError("gpqa: -T template must contain {question}")
    if "choices" not in names and not {"A", "B", "C", "D"} <= names:
        raise TaskError("gpqa: -T template must contain {choices} or all of {A} {B} {C} {D}")
    return template


def render(template: str, question: str, choices: Sequence[str]) -> str:
    values = {"question": question,
              "choices": "\n".join(f"{letter}) {text}" for letter, text in zip("ABCD", choices))}
    values.update(zip("ABCD", choices))
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
