"""Leaf comparison without sympy: equal strings, plain numbers, words, times.

:class:`CheapLeaves` is what the scorer runs in-process before any IPC; it
answers None (undecided) whenever a leaf needs a real parser, and
:class:`tasks.math.symbolic.SympyLeaves` (in the worker) takes over.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional, Protocol

from .structure import Eq, Leaf, parse_number

Verdict = Optional[bool]  # True, False, or None: undecided here


class Leaves(Protocol):
    """How leaves compare and print: cheap (here) or with sympy (worker)."""

    def equal(self, gold: Leaf, cand: Leaf) -> Verdict: ...
    def equation(self, gold: Eq, cand: Eq) -> Verdict: ...
    def canon(self, leaf: Leaf) -> str | None: ...


_TEXTY = re.compile(r"^[a-z][a-z '\-]{3,}$|^\d{1,2}:\d{2}")


def close(gold: Fraction, cand: Fraction, rtol: float) -> bool:
    """Relative tolerance against the gold value (absolute ``rtol`` at 0)."""
    if gold == 0:
        return abs(cand) <= rtol
    return abs(cand - gold) <= Fraction(rtol) * abs(gold)


def fraction_text(value: Fraction) -> str:
    """sympy's spelling of a rational: ``3``, ``-7/4`` (so both paths agree).

    Past ~300 digits a digest stands in (printing ``1/2004!`` in full helps
    no one, and ``int`` refuses to print past 4300 digits).
    """
    num, den = value.numerator, value.denominator
    if max(abs(num), den).bit_length() > 1000:
        digest = hashlib.sha256(b"%d/" % num.bit_length() + _int_bytes(num) + b"/"
                                + _int_bytes(den)).hexdigest()[:16]
        return f"<rational #{digest}>"
    return str(num) if den == 1 else f"{num}/{den}"


def _int_bytes(n: int) -> bytes:
    return (b"-" if n < 0 else b"") + abs(n).to_bytes((abs(n).bit_length() + 7) // 8 or 1, "big")


@dataclass
class CheapLeaves:
    """In-process leaves: equal strings, plain numbers, words and times."""

    rtol: float = 1e-6
    rules: list[str] = field(default_factory=list)  # which rules decided, for the record

    def equal(self, gold: Leaf, cand: Leaf) -> Verdict:
        if gold.text == cand.text and gold.scale == cand.scale:
            self.rules.append("exact")
            return True
        g, c = parse_number(gold.text), parse_number(cand.text)
        if g is not None and c is not None:
            gv, cv = g[0] * gold.scale, c[0] * cand.scale
            if gv == cv:
                self.rules.append("exact")
                return True
            if (g[1] or c[1]) and close(gv, cv, self.rtol):
                self.rules.append("numeric")
                return True
            return False
        if _TEXTY.match(gold.text) or _TEXTY.match(cand.text):
            return gold.text.lower() == cand.text.lower() and gold.scale == cand.scale
        return None

    def equation(self, gold: Eq, cand: Eq) -> Verdict:
        return None

    def canon(self, leaf: Leaf) -> str | None:
        n = parse_number(leaf.text)
        if n is not None:
            return fraction_text(n[0] * leaf.scale)
        if _TEXTY.match(leaf.text) and leaf.scale == 1:
            return leaf.text.lower()
        return None
