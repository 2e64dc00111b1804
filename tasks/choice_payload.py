"""Reading the payload of one commitment: the text after ``answer:`` or ``the answer
is``, as a letter (``C``, ``(c)``, ``Option C``), an option's own text, or an ordinal
(``the last option``), or nothing when it lists, asks or takes the letter back.
:mod:`tasks.choice` finds the commitments; this module reads what each one names."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

from tasks.extract import normalize_text, unwrap_latex

_ORDINAL = re.compile(r"^(?:the\s+)?(first|second|third|fourth|fifth|last)\s+"
                      r"(?:option|choice|one|answer)\b", re.I)
ORDINAL_PLACES = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4}
# "So the third option survives.", "... the energy is the fourth choice."

_LEAD = " \t*_`$\"'“”‘’:=-"
_FILLER = re.compile(r"^(?:that\s+|therefore\s+|thus\s+|then\s+|clearly\s+)*"
                     r"(?:the\s+)?(?:option|choice|letter)?\s*[:#]?\s*", re.I)
_BRACKETED = re.compile(r"[\(\[\{]\s*([A-Za-z])\s*[\)\]\}]")
_ENUMERATION = re.compile(
    r"[\(\[]?([A-Za-z])[\)\]]?\s*(?:,|/|&|(?i:or|and)(?![A-Za-z]))\s*(?:(?i:or|and)\s+)?"
    r"[\(\[]?([A-Za-z])[\)\]]?(?![A-Za-z0-9])")
_END_PUNCT = ".,;:!?)]}*'\"`$"

# What may follow a letter and take the commitment back. Checked on the text
# right after the letter (its brackets and emphasis skipped).
_TAIL_SKIP = " \t*_`$)]}'\"”’"
_NEGATED_TAIL = re.compile(
    r"(?:[,:]\s*)?(?:can'?t|can’t|cannot|can\s+not|isn'?t|isn’t|is\s+not|is\s+wrong|"
    r"is\s+incorrect|is\s+false|is\s+(?:ruled\s+)?out|is\s+unlikely|is\s+tempting|"
    r"is\s+a\s+(?:trap|distractor)|was\s+wrong|doesn'?t|doesn’t|does\s+not|don'?t|"
    r"fails|won'?t|wouldn'?t|would\s+not|would\s+be\s+wrong|seems\s+(?:wrong|off|unlikely)|"
    r"looks\s+(?:wrong|off)|must\s+be\s+wrong|(?:only\s+)?if\b|unless\b|"
    r"(?:is\s+)?(?:ruled|eliminated|excluded)\b|no\b)",
    re.I)


@lru_cache(maxsize=32)
def _alternative_tail(letters: str) -> re.Pattern:
    # "(A) or maybe (B)", "B / C", "B, or possibly D": hedging between options
    up = re.escape(letters.upper())
    return re.compile(
        r"\s*[,;.]?\s*(?:(?i:or|/|and|,)\s*(?:(?i:maybe|perhaps|possibly|else|even|rather)\s+)?"
        r"(?:(?i:option|choice)\s+)?[\(\[]?\s*[" + up + r"](?![A-Za-z0-9]))")


# The rest of a sentence: up to its end (an ellipsis does not end it).
_SENTENCE_REST = re.compile(r"(?:[^.!?\n]|\.\.\.|\.(?=\S))*(?P<end>[.!?\n]|$)")


@lru_cache(maxsize=32)
def _hedge_later(letters: str) -> re.Pattern:
    # "B, but it could also be C", "probably B, but possibly D", "C, or" (cut off)
    up = re.escape(letters.upper())
    return re.compile(
        r"\b(?:could|might|may)\s+(?:also\s+|well\s+)?be\s+[\(\[]?[" + up + r"]\b"
        r"|\b(?:possibly|perhaps|maybe)\s+[\(\[]?[" + up + r"]\b|,?\s+or\s*$", re.I)


def takes_back(rest: str, letters: str) -> bool:
    """True when ``rest``, the text right after a letter, makes it no commitment."""
    r = rest[:200].lstrip(_TAIL_SKIP)
    if r.startswith("?"):
        return True  # "Is the answer: B?" asks, it does not answer
    if re.match(r"\s*(?:=|≈|<|>|\^|_\{?\w)", r):
        return True  # "C = 4 μF": a quantity named C, not option C
    if _NEGATED_TAIL.match(r):
        return True
    sentence = _SENTENCE_REST.match(rest[:300])
    if sentence and sentence.group("end") == "?":
        return True  # "The answer is B, right?", "... or is it?"
    if sentence and _hedge_later(letters).search(sentence.group(0)):
        return True
    return bool(_alternative_tail(letters).match(rest[:200].lstrip(" \t*_`$)]}")))


def _match_option(payload: str, options: Sequence[str] | None) -> tuple[int, int] | None:
    """``(index, length of the normalised option)`` of the option whose text the payload
    is (or starts with); the longest wins."""
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
    return None if best is None else (best, best_len)


def _unique_prefix(payload: str, options: Sequence[str] | None) -> int | None:
    """The one option whose text starts with the payload's sentence (``Route B`` for
    ``Route B via the enolate``), when it is long enough to name just one."""
    if not options:
        return None
    head = normalize_text(re.split(r"[.;!?\n]|,\s", payload, maxsplit=1)[0])
    if len(head) < 6:
        return None
    hits = [i for i, o in enumerate(options)
            if normalize_text(o).startswith(head) and normalize_text(o) != head]
    return hits[0] if len(hits) == 1 else None


def parse_choice(payload: str, letters: str = "ABCD",
                 options: Sequence[str] | None = None) -> str | None:
    """The letter a payload (text after ``answer:`` / ``answer is``) commits to, or None.

    ``options`` are the option texts in letter order, so a payload that is an
    option's text names that option's letter. A payload that lists several letters,
    asks (``B?``) or takes the letter back (``B can't be right``) names none.
    """
    letters = letters.upper()
    limit = max((len(o) for o in options), default=0) + 200 if options else 200
    raw = unwrap_latex(payload[:2 * limit]).strip().lstrip(_LEAD).strip()[:limit]
    p = _FILLER.sub("", raw, count=1).lstrip(_LEAD)
    if not p:
        return None
    m = re.match(r"not\s+(?:option\s+)?[\(\[]?[A-Za-z][\)\]]?\s*,?\s*but\s+(?:rather\s+)?", p, re.I)
    if m:  # "not B but D"
        return parse_choice(p[m.end():], letters, options)
    m = _ENUMERATION.match(p)
    if m and m.group(1).upper() in letters and m.group(2).upper() in letters \
            and m.group(2) != "a":
        return None  # "A, B, C or D", "B or C": hedging, not an answer
    m = _BRACKETED.match(p)
    if m and m.group(1).upper() in letters:
        return None if takes_back(p[m.end():], letters) else m.group(1).upper()
    m = re.match(r"([A-Za-z])(?![A-Za-z0-9])", p)
    candidate = m.group(1) if m and m.group(1).upper() in letters else None
    rest = p[1:]
    if candidate and (not rest.strip() or rest[0] in _END_PUNCT):
        return None if takes_back(rest, letters) else candidate.upper()
    found = _match_option(raw, options)
    if found is None and p != raw:
        found = _match_option(p, options)
    if found is not None and found[0] < len(letters):
        return letters[found[0]]
    m = _ORDINAL.match(raw)
    if m:
        place = m.group(1).lower()
        index = len(options or letters) - 1 if place == "last" else ORDINAL_PLACES[place]
        return letters[index] if index < len(letters) else None
    index = _unique_prefix(raw, options)
    if index is not None and index < len(letters):
        return letters[index]
    if candidate and rest[0].isspace() and candidate != "a":
        # "C because ...", "d since ..."; a lowercase "a" here is the article.
        return None if takes_back(rest, letters) else candidate.upper()
    return None
