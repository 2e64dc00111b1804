"""Answer extraction pieces shared by tasks: reasoning blocks, ``ANSWER:``
lines, ``\\boxed{}`` contents, LaTeX wrappers and loose text normalisation.

Everything here is pure string work (``re`` only), so any task may import it
at module level. Multiple-choice letters are read by :mod:`tasks.choice`,
math answers by :mod:`tasks.math.answer`; both build on these pieces.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_THINK_BLOCK = re.compile(r"<think(?:ing)?>(.*?)</think(?:ing)?>", re.S | re.I)
_THINK_OPEN = re.compile(r"<think(?:ing)?>", re.I)
_THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.I)


@dataclass(frozen=True)
class ThinkParts:
    """A completion split by its reasoning tags."""

    visible: str  # outside every reasoning block
    reasoning: str  # the closed blocks (and what precedes a lone closing tag)
    unclosed: str  # after an unclosed <think>: the output was cut while thinking


def think_parts(text: str) -> ThinkParts:
    """Handles closed ``<think>...</think>`` (or ``<thinking>``) blocks, an
    unclosed ``<think>`` (truncated output: the rest is unclosed reasoning) and a
    lone ``</think>`` (chat templates that open the block in the prompt)."""
    reasoning: list[str] = []
    close = list(_THINK_CLOSE.finditer(text))
    if close and not _THINK_OPEN.search(text[:close[0].start()]):
        # A lone closing tag: everything before it was reasoning.
        reasoning.append(text[:close[0].start()])
        text = text[close[0].end():]

    def keep(m: re.Match) -> str:
        reasoning.append(m.group(1))
        return "\n"

    text = _THINK_BLOCK.sub(keep, text)
    unclosed = ""
    opened = _THINK_OPEN.search(text)
    if opened:  # unclosed: truncated while thinking
        unclosed = text[opened.end():]
        text = text[:opened.start()]
    text = _THINK_CLOSE.sub("\n", text)  # stray closers
    return ThinkParts(text, "\n".join(reasoning), unclosed)


def split_think(text: str) -> tuple[str, str]:
    """``(visible, reasoning)``: the text without its reasoning blocks, and them
    (closed and unclosed together)."""
    parts = think_parts(text)
    reasoning = "\n".join(p for p in (parts.reasoning, parts.unclosed) if p) \
        if parts.unclosed else parts.reasoning
    return parts.visible, reasoning


def strip_think(text: str) -> str:
    """The text without its ``<think>...</think>`` blocks."""
    return split_think(text)[0]


def balanced_braces(text: str, open_index: int) -> int | None:
    """Index just past the ``}`` matching the ``{`` at ``open_index``, or None."""
    return _brace_pairs(text).get(open_index)


def _brace_pairs(text: str) -> dict[int, int]:
    """``{open index: index past its closing brace}`` for every matched ``{``,
    in one pass (escaped ``\\{`` / ``\\}`` do not count)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for m in re.finditer(r"\\[{}]|[{}]", text):
        if len(m.group()) == 2:
            continue
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            pairs[stack.pop()] = m.end()
    return pairs


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def boxed_contents(text: str) -> list[tuple[int, str]]:
    """Every ``\\boxed{...}`` / ``\\fbox{...}`` content, with nested braces,
    as ``(start offset, content)`` in order of appearance."""
    out = []
    pairs: dict[int, int] | None = None
    for m in _BOXED.finditer(text):
        if pairs is None:
            pairs = _brace_pairs(text)
        end = pairs.get(m.end() - 1)
        if end is not None:
            out.append((m.start(), text[m.end():end - 1][:MAX_PAYLOAD]))
    return out


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{}``, or None."""
    found = boxed_contents(text)
    return found[-1][1] if found else None


# "ANSWER: X", "**Answer:** X", "Final Answer: X", "The answer is: X".
_ANSWER_LABEL = re.compile(
    r"(?<![A-Za-z])(?:final\s+|correct\s+)?answer\s*(?:(?:\*\*|__)\s*)?(?:is\s*)?"
    r"(?:(?:\*\*|__)\s*)?[:：](?:\s*(?:\*\*|__)(?!\w))?",
    re.I)
# Payloads are cut to this many characters: options are shorter, and it keeps
# pathological completions (one 100k-character line) linear.
MAX_PAYLOAD = 1000
# Only the last this-many candidates of a rule are tried (the last one counts anyway).
MAX_TRIES = 200


def _line_from(text: str, start: int) -> str:
    end = text.find("\n", start, start + MAX_PAYLOAD)
    return text[start:start + MAX_PAYLOAD] if end < 0 else text[start:end]


def answer_lines(text: str) -> list[tuple[int, str]]:
    """Every ``answer:`` label's payload (the rest of its line), as
    ``(label offset, payload)`` in order of appearance."""
    return [(m.start(), _line_from(text, m.end())) for m in _ANSWER_LABEL.finditer(text)]


def last_answer_line(text: str) -> str | None:
    """The payload of the last ``answer:`` label (stripped), or None."""
    found = answer_lines(text)
    return found[-1][1].strip() if found else None


_WRAPPERS = re.compile(r"\\(?:boxed|fbox|text|textbf|textit|textrm|mathrm|mathbf|mbox|emph)\s*\{")


def unwrap_latex(text: str) -> str:
    """``\\text{C}`` -> ``C``: drop the usual LaTeX wrappers, keep their content."""
    for _ in range(20):
        m = _WRAPPERS.search(text)
        if not m:
            break
        end = balanced_braces(text, m.end() - 1)
        if end is None:
            break
        text = text[:m.start()] + text[m.end():end - 1] + text[end:]
    return text


_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_BRACED_POWER = re.compile(r"\^\s*\{([^{}]*)\}")
_PERCENT_WORD = re.compile(r"\s*\b(?:percent|per\s+cent|pct)\b", re.I)


def normalize_text(text: str) -> str:
    """Loose form for comparing an answer with an option's text."""
    text = unicodedata.normalize("NFKC", unwrap_latex(text))
    text = _FRAC.sub(r"\1/\2", text)  # \frac{1}{8} -> 1/8
    text = text.replace("\\,", " ").replace("\\ ", " ").replace("\\%", "%")
    text = text.replace("\\times", "×").replace("\\cdot", "·")
    text = _BRACED_POWER.sub(r"^\1", text)  # 10^{-19} -> 10^-19
    text = _PERCENT_WORD.sub("%", text)  # 50 percent -> 50%
    text = re.sub(r"[$*`_\"“”‘’]", "", text)
    text = text.replace("−", "-").replace("–", "-").replace("—", "-")
    text = re.sub(r"\s+", " ", text).strip().lower()
    return text.rstrip(" .;,:!")
