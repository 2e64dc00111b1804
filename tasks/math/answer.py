"""Finding the final answer in a math completion.

Order (docs/math.md shows examples):

0. Reasoning is set apart (:func:`tasks.extract.split_think`): the rules
   run on the text outside ``<think>...</think>`` first, and on the
   reasoning only when that finds nothing.
1. ``-T answer_regex=...``, when given: its last match (the group named
   ``answer``, else group 1, else the whole match).
2. Explicit answers: the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested
   braces) or ``Answer:`` / ``Final answer:`` line, whichever comes last
   (an ``Answer:`` line holding a ``\\boxed{}`` gives the boxed content).
3. A phrase: ``the (final) answer is X`` (``X`` up to the end of its
   sentence; ``I hope it is correct`` dropped).

Nothing else (no "last number" guess): an answer that is not marked is
``no_answer``, so a model is not credited for a number it merely mentions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.extract import answer_lines, boxed_contents, split_think

_PHRASE = re.compile(r"(?<![A-Za-z])(?:final\s+)?answer\s+is\s*[:\-]?\s*", re.I)
_HOPE = re.compile(r"\.?\s*I hope it is correct\.?\s*$", re.I)
_SENTENCE_END = re.compile(r"(?<![\d\\])\.(?:\s|$)")
_EDGES = " \t*_`\"'“”:"
_LEAD = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s+is\s*[:\-]?\s*", re.I)


@dataclass(frozen=True)
class Extracted:
    text: str
    rule: str  # "regex", "boxed", "answer_line", "phrase"
    where: str  # "text" or "reasoning"


def clean(payload: str) -> str:
    """The payload of a label without markdown, math delimiters and the end of
    its sentence's punctuation."""
    text = _HOPE.sub("", payload.strip())
    text = _LEAD.sub("", text.strip(_EDGES))  # Minerva: "Final Answer: The final answer is $x$."
    text = text.strip(_EDGES)
    if text.startswith("$") and text.count("$") >= 2 and not text.endswith("$"):
        text = text[:text.rindex("$") + 1]  # "$5$ dollars." -> "$5$"
    return text.strip(_EDGES).rstrip(".").strip(_EDGES)


def _explicit(text: str) -> tuple[str, str] | None:
    found: list[tuple[int, str, str]] = []
    for pos, content in boxed_contents(text):
        if content.strip():
            found.append((pos, content, "boxed"))
    for pos, payload in answer_lines(text):
        # An "Answer:" line that holds a \boxed{} is that box (found above).
        if not boxed_contents(payload) and clean(payload):
            found.append((pos, payload, "answer_line"))
    if not found:
        return None
    _, payload, rule = max(found, key=lambda f: f[0])
    return clean(payload), rule


def _phrase(text: str) -> tuple[str, str] | None:
    hits = list(_PHRASE.finditer(text))
    for m in reversed(hits):
        end = text.find("\n", m.end())
        line = text[m.end():] if end < 0 else text[m.end():end]
        line = _HOPE.sub("", line)
        stop = _SENTENCE_END.search(line)
        payload = clean(line[:stop.start()] if stop else line)
        if payload:
            return payload, "phrase"
    return None


def _by_regex(text: str, pattern: re.Pattern) -> tuple[str, str] | None:
    matches = list(pattern.finditer(text))
    for m in reversed(matches):
        if "answer" in pattern.groupindex:
            value = m.group("answer")
        else:
            value = m.group(1) if pattern.groups else m.group(0)
        if value and value.strip():
            return clean(value), "regex"
    return None


def extract_answer(completion: str, answer_regex: re.Pattern | None = None) -> Extracted | None:
    """The completion's final answer, or None when it marks none."""
    visible, reasoning = split_think(completion or "")
    for where, part in (("text", visible), ("reasoning", reasoning)):
        if not part.strip():
            continue
        found = ((_by_regex(part, answer_regex) if answer_regex is not None else None)
                 or _explicit(part) or _phrase(part))
        if found and found[0]:
            return Extracted(found[0], found[1], where)
    return None
