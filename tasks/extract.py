"""Answer extraction shared by tasks: reasoning blocks, ``ANSWER:`` lines,
``\\boxed{}`` and multiple-choice letters.

Everything here is pure string work (``re`` only), so any task may import it
at module level. The multiple-choice extractor, :func:`extract_choice`,
applies its rules in this order (docs/gpqa.md shows them with examples):

0. Reasoning is set apart first: ``<think>...</think>`` blocks are removed
   (an unclosed ``<think>`` runs to the end; a lone ``</think>`` closes
   everything before it). The rules run on what is left; only when they find
   nothing do they run again on the reasoning itself.
1. Explicit answers: an ``answer:`` label (``ANSWER: C``, ``Answer: (c)``,
   ``**Answer:** C``, ``Final answer: C``, ``The answer is: C``) and
   ``\\boxed{...}`` (nested braces, ``\\text{}`` wrappers). The one that
   appears last wins.
2. Answer phrases: ``the (correct) answer/option/choice is C``, ``I choose
   C``, ``C is correct``, and a last line that is only a letter (``(C)``,
   ``**C**``). The one that appears last wins.
3. The option's text: the last line equals one option's text, or contains
   the text of exactly one option (only texts of 4+ characters count as
   "contained").

In rules 1 and 2 the text after the label may be a letter (``C``, ``(C)``,
``c)``, ``Option C``; lowercase ``a`` only when followed by punctuation or
the line's end, since it is usually the article) or an option's text. A
payload that lists several letters (``A, B, C or D``, ``B or C``) is not an
answer. Letters outside the task's letters never match.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

_THINK_BLOCK = re.compile(r"<think(?:ing)?>(.*?)</think(?:ing)?>", re.S | re.I)
_THINK_OPEN = re.compile(r"<think(?:ing)?>", re.I)
_THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.I)


def split_think(text: str) -> tuple[str, str]:
    """``(visible, reasoning)``: the text without its reasoning blocks, and them.

    Handles closed ``<think>...</think>`` (or ``<thinking>``) blocks, an
    unclosed ``<think>`` (truncated output: the rest is reasoning) and a lone
    ``</think>`` (chat templates that open the block in the prompt).
    """
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
    opened = _THINK_OPEN.search(text)
    if opened:  # unclosed: truncated while thinking
        reasoning.append(text[opened.end():])
        text = text[:opened.start()]
    text = _THINK_CLOSE.sub("\n", text)  # stray closers
    return text, "\n".join(reasoning)


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


def normalize_text(text: str) -> str:
    """Loose form for comparing an answer with an option's text."""
    text = unicodedata.normalize("NFKC", unwrap_latex(text))
    text = _FRAC.sub(r"\1/\2", text)  # \frac{1}{8} -> 1/8
    text = text.replace("\\,", " ").replace("\\ ", " ").replace("\\%", "%")
    text = re.sub(r"[$*`_\"“”‘’]", "", text)
    text = text.replace("−", "-").replace("–", "-").replace("—", "-")
    text = re.sub(r"\s+", " ", text).strip().lower()
    return text.rstrip(" .;,:!")


_LEAD = " \t*_`$\"'“”‘’:=-"
_FILLER = re.compile(r"^(?:that\s+|therefore\s+|thus\s+|then\s+|probably\s+|clearly\s+)*"
                     r"(?:the\s+)?(?:option|choice|letter)?\s*[:#]?\s*", re.I)
_BRACKETED = re.compile(r"[\(\[\{]\s*([A-Za-z])\s*[\)\]\}]")
_ENUMERATION = re.compile(
    r"[\(\[]?([A-Za-z])[\)\]]?\s*(?:,|/|&|(?i:or|and)(?![A-Za-z]))\s*(?:(?i:or|and)\s+)?"
    r"[\(\[]?([A-Za-z])[\)\]]?(?![A-Za-z0-9])")
_END_PUNCT = ".,;:!?)]}*'\"`$"


def _match_option(payload: str, options: Sequence[str] | None) -> int | None:
    """Index of the option whose text the payload is (or starts with); longest wins."""
    if not options:
        return None
    norm = normalize_text(payload)
    if not norm:
        return None
    best, best_len = None, -1
    for i, opt in enumerate(options):
        o = normalize_text(opt)
        if not o:
            continue
        if norm == o or (norm.startswith(o) and not norm[len(o)].isalnum()):
            if len(o) > best_len:
                best, best_len = i, len(o)
    return best


def parse_choice(payload: str, letters: str = "ABCD",
                 options: Sequence[str] | None = None) -> str | None:
    """The letter a payload (text after ``answer:`` / ``answer is``) names, or None.

    ``options`` are the option texts in letter order, so a payload that is an
    option's text names that option's letter.
    """
    letters = letters.upper()
    limit = max((len(o) for o in options), default=0) + 200 if options else 200
    raw = unwrap_latex(payload[:2 * limit]).strip().lstrip(_LEAD).strip()[:limit]
    p = _FILLER.sub("", raw, count=1).lstrip(_LEAD)
    if not p:
        return None
    m = _ENUMERATION.match(p)
    if m and m.group(1).upper() in letters and m.group(2).upper() in letters \
            and m.group(2) != "a":
        return None  # "A, B, C or D", "B or C": hedging, not an answer
    m = _BRACKETED.match(p)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    m = re.match(r"([A-Za-z])(?![A-Za-z0-9])", p)
    candidate = m.group(1) if m and m.group(1).upper() in letters else None
    rest = p[1:]
    if candidate and (not rest.strip() or rest[0] in _END_PUNCT):
        return candidate.upper()
    index = _match_option(raw, options)
    if index is None and p != raw:
        index = _match_option(p, options)
    if index is not None and index < len(letters):
        return letters[index]
    if candidate and rest[0].isspace() and candidate != "a":
        # "C because ...", "d since ..."; a lowercase "a" here is the article.
        return candidate.upper()
    return None


_PHRASE = re.compile(
    r"(?<![A-Za-z])(?:answer|option|choice)s?\s*(?:(?:\*\*|__)\s*)?"
    r"(?:is|would\s+be|should\s+be|must\s+be|will\s+be|has\s+to\s+be|=)(?![A-Za-z])"
    r"|(?<![A-Za-z])(?:i(?:\s+will|\s+would|'ll|’ll|'d|’d)?\s+(?:choose|pick|select|go\s+with)"
    r"|i\s+am\s+going\s+with|i'm\s+going\s+with|my\s+(?:final\s+)?(?:answer|choice)\s*(?:is)?)"
    r"(?![A-Za-z])",
    re.I)


@lru_cache(maxsize=32)
def _reversed_phrase(letters: str) -> re.Pattern:
    # "C is correct", "(c) is the right answer", "Option C is correct". A bare
    # letter must be uppercase here; a bracketed one may be either case.
    up = re.escape(letters.upper())
    both = up + re.escape(letters.lower())
    return re.compile(
        r"(?:(?<![A-Za-z])(?i:option|choice)\s*)?"
        r"(?:[\(\[]([" + both + r"])[\)\]]|(?<![A-Za-z0-9])([" + up + r"])(?![A-Za-z0-9]))"
        r"\**\s+(?i:is|would\s+be|must\s+be)\s+(?i:the\s+)?(?i:correct|right|best|true)"
        r"(?![A-Za-z])")


@lru_cache(maxsize=32)
def _lone_letter(letters: str) -> re.Pattern:
    lc = re.escape(letters.upper()) + re.escape(letters.lower())
    return re.compile(
        r"^[\s*_`>#\-]*(?:(?:option|choice|answer)\s*[:#]?\s*)?[\(\[]?\s*([" + lc
        + r"])\s*[\)\]]?[\s.*_`!]*$", re.I)


@dataclass(frozen=True)
class Choice:
    """An extracted letter and how it was found."""

    letter: str
    rule: str  # "answer_line", "boxed", "phrase", "lone_letter", "option_text"
    where: str  # "text" or "reasoning"


def _explicit(text: str, letters: str, options) -> tuple[str, str] | None:
    found = [(pos, payload, "answer_line") for pos, payload in answer_lines(text)]
    found += [(pos, payload, "boxed") for pos, payload in boxed_contents(text)]
    for _, payload, rule in sorted(found, key=lambda f: f[0], reverse=True)[:MAX_TRIES]:
        letter = parse_choice(payload, letters, options)
        if letter:
            return letter, rule
    return None


def _phrases(text: str, letters: str, options) -> tuple[str, str] | None:
    found: list[tuple[int, str, str]] = []  # (position, letter or payload, kind)
    for m in _PHRASE.finditer(text):
        found.append((m.start(), _line_from(text, m.end()), "payload"))
    for m in _reversed_phrase(letters).finditer(text):
        found.append((m.start(), (m.group(1) or m.group(2)).upper(), "letter"))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines:
        last = " ".join(lines[-1].split())
        m = _lone_letter(letters).match(last) if len(last) <= 40 else None
        if m:
            found.append((len(text), m.group(1).upper(), "lone_letter"))
    for _, item, kind in sorted(found, key=lambda f: f[0], reverse=True)[:MAX_TRIES]:
        if kind == "payload":
            letter = parse_choice(item, letters, options)
            if letter:
                return letter, "phrase"
        else:
            return item, "lone_letter" if kind == "lone_letter" else "phrase"
    return None


def _option_text(text: str, letters: str, options) -> tuple[str, str] | None:
    if not options:
        return None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    if len(lines[-1]) > 4 * MAX_PAYLOAD:
        return None
    last = normalize_text(lines[-1])
    norms = [normalize_text(o) for o in options]
    for i, o in enumerate(norms):
        if o and last == o and i < len(letters):
            return letters[i], "option_text"
    hits = []
    for i, o in enumerate(norms):
        if len(o) >= 4 and i < len(letters):
            spans = [(m.start(), m.end()) for m in
                     re.finditer(r"(?<![a-z0-9])" + re.escape(o) + r"(?![a-z0-9])", last)]
            if spans:
                hits.append((i, spans))
    # An option whose every occurrence lies inside a longer option's occurrence does not count.
    kept = [i for i, spans in hits
            if any(not any(j != i and len(norms[j]) > len(norms[i]) and a <= s and e <= b
                           for j, other in hits for a, b in other)
                   for s, e in spans)]
    if len(kept) == 1:
        return letters[kept[0]], "option_text"
    return None


def _run_rules(text: str, letters: str, options) -> tuple[str, str] | None:
    return (_explicit(text, letters, options) or _phrases(text, letters, options)
            or _option_text(text, letters, options))


def extract_choice(text: str, options: Sequence[str] | None = None,
                   letters: str = "ABCD") -> Choice | None:
    """The multiple-choice letter a completion gives as its final answer, or None.

    ``options`` are the option texts in letter order (optional: without them an
    answer given as text is not recognised). See the module docstring for the
    rules and their order.
    """
    letters = letters.upper()
    if options is not None:
        options = list(options)[:len(letters)]
    visible, reasoning = split_think(text or "")
    for where, part in (("text", visible), ("reasoning", reasoning)):
        if part.strip():
            found = _run_rules(part, letters, options)
            if found:
                return Choice(found[0], found[1], where)
    return None
