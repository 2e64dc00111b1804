"""Leaves compared with sympy, through ``latex2sympy2_extended``'s LaTeX parser.

Imported only inside verifier worker processes (:mod:`tasks.math.worker`):
sympy and the ANTLR parser cost about a second to import, and any call here
may run for ever on a hostile expression, which is why the pool kills a
worker that overruns its deadline.

Rules (docs/math.md):

* decimals in the text are read as exact fractions (``0.5`` is 1/2) and mark
  the leaf *inexact*: only then does the relative tolerance apply;
* exact numbers (no decimal written) are compared exactly: rationals as
  rationals, others by ``simplify(a - b) == 0`` and, failing that, by 60-digit
  evaluation to within ``1e-45`` relative (so ``1/2004!`` and ``1/2006!``,
  ``2^{-99}`` and ``2^{-98}``, ``2^{100}`` and ``2^{100}+1`` all differ);
* expressions with symbols are equal when ``simplify(a - b) == 0``;
* two equations are equal when ``l1 - r1`` and ``l2 - r2`` differ by a
  nonzero constant factor (``y = 2x + 1`` and ``2x - y = -1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sympy
from latex2sympy2_extended import latex2sympy

from .normalize import normalize
from .compare import canon, compare
from .leaves import CheapLeaves, Verdict, fraction_text
from .structure import Eq, Leaf, parse

_DECIMAL = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?![\d.])")
_PRECISION = 60
_EXACT_RELATIVE = sympy.Float("1e-45")
_I = sympy.Symbol("i")


class Unparseable(ValueError):
    """The parser could not read a leaf."""


def _exact_decimals(text: str) -> tuple[str, bool]:
    """``2.5`` -> ``(\\frac{25}{10})``, so no float enters; and whether any did."""
    found = False

    def repl(m: re.Match) -> str:
        nonlocal found
        found = True
        return f"(\\frac{{{m.group(1)}{m.group(2)}}}{{1{'0' * len(m.group(2))}}})"

    return _DECIMAL.sub(repl, text), found


@lru_cache(maxsize=4096)
def to_sympy(text: str) -> tuple[Any, bool]:
    """``(expression, inexact)`` for a normalised leaf; raises Unparseable."""
    exact, inexact = _exact_decimals(text)
    if re.search(r"(?<![a-zA-Z\\])\d+(?:\.\d+)?[eE][+-]?\d+", text):
        try:  # 1.5e3: Python's notation, which the LaTeX parser reads as 1.5*e*3
            return sympy.Rational(text), True
        except (TypeError, ValueError):
            pass
    try:
        expr = latex2sympy(exact)
    except (RecursionError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - the parser raises bare Exception
        raise Unparseable(f"{type(e).__name__}: {str(e).splitlines()[0][:120]}") from None
    if isinstance(expr, (list, tuple)) or expr is None:
        raise Unparseable(f"parsed as {type(expr).__name__}")
    if isinstance(expr, sympy.Basic) and _I in expr.free_symbols:
        expr = expr.xreplace({_I: sympy.I})  # in an answer, i is the imaginary unit
    return expr, inexact


def _number(expr: Any) -> bool:
    return isinstance(expr, sympy.Expr) and not expr.free_symbols and expr.is_number


def numbers_equal(a: Any, b: Any, inexact: bool, rtol: float) -> bool:
    """Closed-form numbers: exact unless ``inexact`` (a decimal was written).

    Exact: rationals compare as rationals (``2^{100}`` and ``2^{100}+1``
    differ however close they are); otherwise ``simplify`` decides, and
    numeric evaluation at 60 digits is the last resort for forms simplify
    cannot reduce (``\\sqrt{3+2\\sqrt2}`` against ``1+\\sqrt2``).
    """
    if inexact:
        va, vb = sympy.N(a, _PRECISION), sympy.N(b, _PRECISION)
        if not (va.is_finite and vb.is_finite):
            return bool(va == vb)
        diff, scale = abs(va - vb), abs(va)
        return bool(diff <= (sympy.Float(rtol) * scale if scale != 0 else sympy.Float(rtol)))
    a, b = a.doit(), b.doit()
    if a == b:
        return True
    if a.is_Rational and b.is_Rational:
        return False
    diff = sympy.simplify(a - b)
    if diff == 0:
        return True
    if diff.is_Rational or diff.has(sympy.zoo, sympy.nan):
        return False
    va, vb = sympy.N(a, _PRECISION), sympy.N(b, _PRECISION)
    if not (va.is_finite and vb.is_finite):
        return bool(va == vb)
    scale = abs(va)
    return bool(scale != 0 and abs(va - vb) / scale < _EXACT_RELATIVE)


def exprs_equal(a: Any, b: Any, inexact: bool, rtol: float) -> bool:
    if a == b:
        return True
    if isinstance(a, sympy.MatrixBase) or isinstance(b, sympy.MatrixBase):
        return (isinstance(a, sympy.MatrixBase) and isinstance(b, sympy.MatrixBase)
                and a.shape == b.shape and all(exprs_equal(x, y, inexact, rtol)
                                               for x, y in zip(a, b)))
    if not isinstance(a, sympy.Expr) or not isinstance(b, sympy.Expr):
        return False  # sets, relations the shape parser did not split: only ==
    if _number(a) and _number(b):
        return numbers_equal(a, b, inexact, rtol)
    diff = sympy.simplify(a - b)
    return diff == 0 or sympy.expand(diff) == 0


@dataclass
class SympyLeaves:
    """The worker's leaves: the cheap rules first, then sympy."""

    rtol: float = 1e-6
    rules: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cheap = CheapLeaves(self.rtol, self.rules)

    def _expr(self, leaf: Leaf) -> tuple[Any, bool]:
        expr, inexact = to_sympy(leaf.text)
        if leaf.scale != 1:
            expr = expr * sympy.Rational(leaf.scale.numerator, leaf.scale.denominator)
        return expr, inexact

    def equal(self, gold: Leaf, cand: Leaf) -> Verdict:
        verdict = self.cheap.equal(gold, cand)
        if verdict is not None:
            return verdict
        try:
            g, g_inexact = self._expr(gold)
            c, c_inexact = self._expr(cand)
        except Unparseable as e:
            self.errors.append(str(e))
            return False
        equal = exprs_equal(g, c, g_inexact or c_inexact, self.rtol)
        if equal:
            self.rules.append("numeric" if g_inexact or c_inexact else "symbolic")
        return equal

    def equation(self, gold: Eq, cand: Eq) -> Verdict:
        sides = list(gold.sides) + list(cand.sides)
        if not all(isinstance(s, Leaf) for s in sides):
            return False
        try:
            (gl, _), (gr, _), (cl, _), (cr, _) = (self._expr(s) for s in sides)
        except Unparseable as e:
            self.errors.append(str(e))
            return False
        dg, dc = gl - gr, cl - cr
        if not (dg.free_symbols or dc.free_symbols):
            return False  # numeric identities: only side by side (done by the caller)
        if sympy.simplify(dg - dc) == 0 or sympy.simplify(dg + dc) == 0:
            self.rules.append("equation")
            return True
        ratio = sympy.simplify(dg / dc)
        if ratio.is_number and ratio != 0 and ratio.is_finite:
            self.rules.append("equation")
            return True
        return False

    def canon(self, leaf: Leaf) -> str | None:
        cheap = self.cheap.canon(leaf)
        if cheap is not None:
            return cheap
        try:
            expr, _ = self._expr(leaf)
        except Unparseable:
            return None
        if not isinstance(expr, sympy.Basic):
            return None
        expr = expr.doit()
        if isinstance(expr, sympy.Rational):
            return fraction_text_of(expr)
        if isinstance(expr, sympy.Expr):
            expr = sympy.simplify(expr)
            if isinstance(expr, sympy.Rational):
                return fraction_text_of(expr)
            if expr.free_symbols and expr.is_polynomial():
                expr = sympy.expand(expr)  # (x+1)^2 and x^2+2x+1 print alike
        return str(expr)


def fraction_text_of(value: Any) -> str:
    from fractions import Fraction

    return fraction_text(Fraction(int(value.p), int(value.q)))


def check(gold: str, cand: str, rtol: float = 1e-6) -> dict[str, Any]:
    """The worker's ``compare`` job: the verdict and both canonical forms."""
    leaves = SympyLeaves(rtol)
    g_node, c_node = parse(normalize(gold)), parse(normalize(cand))
    equal = bool(compare(g_node, c_node, leaves))
    return {"equal": equal, "rule": _rule(leaves.rules) if equal else "different",
            "gold_canon": canon(g_node, leaves, "gold") if equal else None,
            "cand_canon": None if equal else canon(c_node, leaves, "candidate"),
            "errors": leaves.errors[:3]}


def canonical(text: str, role: str = "candidate") -> str | None:
    """The worker's ``canon`` job."""
    return canon(parse(normalize(text)), SympyLeaves(), role)


def _rule(rules: list[str]) -> str:
    for name in ("equation", "symbolic", "numeric"):
        if name in rules:
            return name
    return "exact"
