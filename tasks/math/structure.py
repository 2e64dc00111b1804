"""An answer's shape: sets, tuples, intervals, matrices, equations, lists.

Pure Python, cheap to import. :func:`parse` turns a normalised answer into
nodes: :class:`Leaf` (one expression), :class:`Seq` (sets, lists, tuples,
intervals, unions, matrices) and :class:`Eq` (equations and chains);
:mod:`tasks.math.compare` compares two such trees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Leaf:
    text: str
    percent: bool = False  # written with %: may mean text or text/100
    scale: Fraction = Fraction(1)


@dataclass(frozen=True)
class Seq:
    """``set`` and ``list`` (bare commas) are unordered; ``tuple`` (any
    brackets, ordered), ``union`` (unordered), ``matrix`` (rows of tuples)."""

    kind: str
    items: tuple = ()
    brackets: str = ""  # "()", "[)", ... for tuples and intervals


@dataclass(frozen=True)
class Eq:
    sides: tuple  # of nodes; a chain a = b = c has three


Node = Leaf | Seq | Eq
UNORDERED = ("set", "list", "union")
_OPEN, _CLOSE = "([{", ")]}"
_GREEK = (r"alpha|beta|gamma|delta|theta|lambda|mu|nu|xi|rho|sigma|tau|phi|varphi|chi|psi"
          r"|omega|epsilon|varepsilon|zeta|eta|kappa")
# A lone variable (x, y_1, \theta, f(x)): the left side of an assignment.
_SYMBOL = re.compile(r"^(?:[A-Za-z]|\\(?:" + _GREEK + r"))(?:_\{?\w+\}?)?'*$|^[A-Za-z]\([A-Za-z]\)$")
_MATRIX = re.compile(r"^\\begin\{([pbBvV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$", re.S)
_INEQ = re.compile(r"\\leq\s?|\\geq\s?|<|>")


def _depth_scan(s: str):
    """Yield (index, depth) for each character; ``\\{``/``\\}`` count as brackets."""
    depth, i = 0, 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            yield i + 1, depth  # the brace itself, so \} can close a \{
            i += 2
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        yield i, depth
        i += 1


def split_top(s: str, sep: str) -> list[str]:
    """Split at ``sep`` outside any bracket (sep is a literal string)."""
    parts, last = [], 0
    for i, depth in _depth_scan(s):
        if depth == 0 and s.startswith(sep, i) and i >= last:
            if sep == "=" and i and s[i - 1] in "<>\\":
                continue
            parts.append(s[last:i])
            last = i + len(sep)
    parts.append(s[last:])
    return parts


def _wraps(s: str) -> bool:
    """The bracket opening at 0 closes at the very end."""
    for i, depth in _depth_scan(s):
        if depth == 0:
            return i == len(s) - 1
    return False


def parse(s: str) -> Node:
    """The shape of a normalised answer string."""
    s = s.strip()
    m = _MATRIX.match(s)
    if m:
        rows = [r for r in re.split(r"\\\\", m.group(2)) if r.strip()]
        return Seq("matrix", tuple(Seq("tuple", tuple(parse(c) for c in r.split("&")), "()")
                                   for r in rows))
    for op in ("\\cup", ","):
        parts = split_top(s, op)
        if len(parts) > 1 and all(p.strip() for p in parts):
            return Seq("union" if op == "\\cup" else "list", tuple(parse(p) for p in parts))
    if s.startswith("\\{") and s.endswith("\\}") and _wraps(s):
        inner = s[2:-2]
        return Seq("set", tuple(parse(p) for p in split_top(inner, ",")) if inner.strip() else ())
    if s == "\\emptyset":
        return Seq("set", ())
    if len(s) > 1 and s[0] in "([" and s[-1] in ")]" and _wraps(s):
        parts = split_top(s[1:-1], ",")
        if len(parts) == 1:
            return parse(parts[0]) if s[0] == "(" and s[-1] == ")" else Leaf(s)
        return Seq("tuple", tuple(parse(p) for p in parts), s[0] + s[-1])
    for op in ("\\pm", "\\mp"):
        parts = split_top(s, op)
        if len(parts) == 2:  # a +- b: both values
            return Seq("set", (parse(f"{parts[0]}+{parts[1]}"), parse(f"{parts[0]}-{parts[1]}")))
    sides = split_top(s, "=")
    if len(sides) > 1 and all(p.strip() for p in sides):
        return Eq(tuple(parse(p) for p in sides))
    interval = _inequality(s)
    if interval is not None:
        return interval
    if s.endswith("%"):
        return Leaf(s[:-1].strip(), percent=True)
    return Leaf(s)


def _inequality(s: str) -> Seq | None:
    """``x > 2`` -> ``(2, \\infty)``; ``1 < x \\leq 3`` -> ``(1, 3]``; else None."""
    pieces = _INEQ.split(s)
    ops = [o.strip() for o in _INEQ.findall(s)]
    if len(pieces) == 2 and len(ops) == 1:
        left, right = pieces[0].strip(), pieces[1].strip()
        op = ops[0]
        if _SYMBOL.match(right) and not _SYMBOL.match(left):  # 2 < x: flip
            left, right = right, left
            op = {"<": ">", ">": "<", "\\leq": "\\geq", "\\geq": "\\leq"}[op]
        if not _SYMBOL.match(left) or not right:
            return None
        closed = op in ("\\leq", "\\geq")
        if op in ("<", "\\leq"):
            return Seq("tuple", (Leaf("-\\infty"), parse(right)), "(" + ("]" if closed else ")"))
        return Seq("tuple", (parse(right), Leaf("\\infty")), ("[" if closed else "(") + ")")
    if len(pieces) == 3 and len(ops) == 2 and _SYMBOL.match(pieces[1].strip()):
        low, high = pieces[0].strip(), pieces[2].strip()
        if ops[0] in ("<", "\\leq") and ops[1] in ("<", "\\leq"):
            return Seq("tuple", (parse(low), parse(high)),
                       ("[" if ops[0] == "\\leq" else "(") + ("]" if ops[1] == "\\leq" else ")"))
        if ops[0] in (">", "\\geq") and ops[1] in (">", "\\geq"):
            return Seq("tuple", (parse(high), parse(low)),
                       ("[" if ops[1] == "\\geq" else "(") + ("]" if ops[0] == "\\geq" else ")"))
    return None


def is_symbol(node: Node) -> bool:
    return isinstance(node, Leaf) and not node.percent and bool(_SYMBOL.match(node.text))


def value_side(eq: Eq) -> Node:
    """The side of a candidate equation that holds its value: the last one,
    unless that is a lone letter and the first is not (``2 = x``)."""
    last, first = eq.sides[-1], eq.sides[0]
    if isinstance(last, Leaf) and re.fullmatch(r"[a-df-hj-zA-Z]", last.text) \
            and not is_symbol(first):
        return first
    return last
