"""Finding the final answer in a math completion.

Order (docs/math.md shows examples):

0. Reasoning is set apart (:func:`tasks.extract.think_parts`): the rules
   run on the text outside ``<think>...</think>`` first, then on closed
   reasoning, last on an unclosed ``<think>`` (``where="unclosed_reasoning"``:
   scored ``no_answer`` unless ``-T truncated=extract``).
1. ``-T answer_regex=...``, when given: its last match (the group named
   ``answer``, else group 1, else the whole match).
2. Explicit answers: the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested
   braces) or ``Answer:`` / ``Final answer:`` line, whichever comes last
   (an ``Answer:`` line holding a ``\\boxed{}`` gives the boxed content).
   Boxes that follow one another with only separators between them
   (``\\boxed{1}, \\boxed{2}``; ``\\boxed{(2,2)} \\quad\\text{and}\\quad
   \\boxed{(6,2)}``; ``y_1 = \\boxed{..}`` and ``y_2 = \\boxed{..}``) are read
   together, as one comma-separated answer (:func:`_box_run`).
3. A phrase: ``the (final) answer is X`` (``X`` up to the end of its
   sentence; ``I hope it is correct`` dropped).

Nothing else (no "last number" guess): an answer that is not marked is
``no_answer``, so a model is not credited for a number it merely mentions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.extract import answer_lines, balanced_braces, boxed_contents, think_parts

_PHRASE = re.compile(r"(?<![A-Za-z])(?:final\s+)?answer\s+is\s*[:\-]?\s*", re.I)
_HOPE = re.compile(r"\.?\s*I hope it is correct\.?\s*$", re.I)
_SENTENCE_END = re.compile(r"(?<![\d\\])\.(?:\s|$)")
_EDGES = " \t*_`\"'“”:"
_LEAD = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s+is\s*[:\-]?\s*", re.I)
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
# What may stand between two boxes that are one answer: spaces, punctuation, math
# delimiters, spacing commands, "and"/"or" (bare or in \text{}), and the label of the
# next value ("y_2 ="). Or a short phrase (no sentence end) that ends in "and"/"or":
# "\text{ for part (a) and }", "papers and".
_NAME = r"(?:[A-Za-z]|\\[a-z]+)(?:_\{?\w+\}?)?'*"
_GLUE = re.compile(rf"(?:\s|[,;&]|\$|\\[()\[\]]|\\q?quad|\\[,;:! ]|\\text\s*\{{\s*(?:and|or|,)\s*\}}"
                   rf"|\b(?:and|or)\b|{_NAME}\s*=)*", re.I)
_LABEL_BEFORE = re.compile(rf"({_NAME})\s*=\s*\$?\s*\Z")
_PHRASE_GLUE = re.compile(r"[^.!?\n$\\{}]{0,40}?\b(?:and|or)\s*", re.I)
_TEXT_WRAP = re.compile(r"\\text\s*\{([^{}]*)\}")


def _is_glue(between: str) -> bool:
    if _GLUE.fullmatch(between):
        return True
    plain = _TEXT_WRAP.sub(r"\1", between)
    plain = re.sub(r"\$|\\[()\[\]]|\\q?quad|\\[,;:! ]", " ", plain)
    return bool(_PHRASE_GLUE.fullmatch(plain.strip() + " "))


def _box_run(text: str, boxes: list[tuple[int, str]]) -> tuple[int, str]:
    """The last box and the boxes just before it that only separators divide from
    it (``_GLUE``), joined with commas; its start offset for ordering."""
    spans = []
    for pos, content in boxes:
        m = _BOX_OPEN.match(text, pos)
        end = balanced_braces(text, m.end() - 1) if m else None
        spans.append((pos, end if end is not None else pos, content))
    start, _, content = spans[-1]
    run = [(start, content)]
    for (pos, end, inner), (next_pos, _, _) in zip(reversed(spans[:-1]), reversed(spans[1:])):
        if not _is_glue(text[end:next_pos]):
            break
        run.append((pos, inner))
    if len(run) == 1:
        return start, content
    # A box's label stays with it: "$y = \boxed{1}$ and $x = \boxed{2}$" is "y = 1, x = 2",
    # not the values in the order written, which would be another answer.
    labels = [_LABEL_BEFORE.search(text, max(0, pos - 40), pos) for pos, _ in reversed(run)]
    items = [f"{m.group(1)} = {inner}" if m else inner
             for m, (_, inner) in zip(labels, reversed(run))]
    return start, ", ".join(items)


@dataclass(frozen=True)
class Extracted:
    text: str
    rule: str  # "regex", "boxed", "answer_line", "phrase"
    where: str  # "text", "reasoning" or "unclosed_reasoning" (output cut while thinking)


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
    boxes = [(pos, content) for pos, content in boxed_contents(text) if content.strip()]
    if boxes:
        pos, content = _box_run(text, boxes)
        found.append((boxes[-1][0], content, "boxed"))
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
    parts = think_parts(completion or "")
    for where, part in (("text", parts.visible), ("reasoning", parts.reasoning),
                        ("unclosed_reasoning", parts.unclosed)):
        if not part.strip():
            continue
        found = ((_by_regex(part, answer_regex) if answer_regex is not None else None)
                 or _explicit(part) or _phrase(part))
        if found and found[0]:
            return Extracted(found[0], found[1], where)
    return None
