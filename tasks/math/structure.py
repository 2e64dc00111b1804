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
    """``set`` and ``list`` (bare commas, ``;``) are unordered; ``tuple`` (any
    brackets, ordered), ``union`` (unordered), ``matrix`` (rows of tuples),
    ``system`` (labelled values with distinct labels, ``p=5, q=2``: compared
    by label, or in order with unlabelled values)."""

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
_VAR = r"(?:[A-Za-z]|\\(?:" + _GREEK + r"))(?:_\{?\w+\}?)?'*"
_SYMBOL = re.compile(rf"^{_VAR}$|^[A-Za-z]\([A-Za-z]\)$")
_ABS = re.compile(rf"^\|{_VAR}\|$")  # |x|
# A label: what a gold may name its value by (docs/math.md, Labels): a name
# (x, AB, S_{MBCN}, \theta), f(x), a ratio of names (A:B, \frac{NO}{BO}, a/b) or
# a length |AB|. No digit outside a subscript, no operator: "2x", "a+b" are algebra.
_NAME = r"(?:[A-Za-z]+|\\(?:" + _GREEK + r"))(?:_\{?\w+\}?)?'*"
_LABEL = re.compile(rf"^(?:{_NAME}|[A-Za-z]\([A-Za-z]\)|\|{_NAME}\||{_NAME}(?:[:/]{_NAME})+"
                    rf"|\\frac\{{{_NAME}\}}\{{{_NAME}\}})$")
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
    for op in (";", "\\cup", ","):
        parts = split_top(s, op)
        if len(parts) > 1 and all(p.strip() for p in parts):
            if op == "\\cup":
                return Seq("union", tuple(parse(p) for p in parts))
            return _list(tuple(parse(p) for p in parts))
    if s.startswith("\\{") and s.endswith("\\}") and _wraps(s):
        inner = s[2:-2]
        return Seq("set", tuple(parse(p) for p in split_top(inner, ",")) if inner.strip() else ())
    if s == "\\emptyset":
        return Seq("set", ())
    if len(s) > 1 and s[0] in "([" and s[-1] in ")]" and _wraps(s):
        parts = split_top(s[1:-1], ",")
        if len(parts) == 1 and len(split_top(s[1:-1], ";")) > 1:
            parts = split_top(s[1:-1], ";")  # (0;-2;6): a tuple written with semicolons
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


def _list(items: tuple) -> Seq:
    """Comma-separated items: a ``system`` when all are labelled values with
    distinct labels (``x=1, y=2``), else an unordered ``list``."""
    labels = [label_key(label_of(i)) if labelled(i) else None for i in items]
    if all(labels) and len(set(labels)) == len(labels):
        return Seq("system", items)
    return Seq("list", items)


_FLIP = {"<": ">", ">": "<", "\\leq": "\\geq", "\\geq": "\\leq"}


def _negated(text: str) -> str:
    """``-t`` as text: ``-1`` -> ``1``, ``2`` -> ``-2``, ``a+b`` -> ``-(a+b)``."""
    t = text.strip()
    if t.startswith("-") and len(split_top(t[1:], "+")) == 1 and len(split_top(t[1:], "-")) == 1:
        return t[1:]
    return "-" + t if len(split_top(t, "+")) == 1 and len(split_top(t, "-")) == 1 else f"-({t})"


_INT = re.compile(r"[+-]?\d+")
_DEC = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)")
_SCI = re.compile(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d{1,4}")
_RATIO = re.compile(r"([+-]?\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)")
_TEX_FRAC = re.compile(r"([+-]?)\\frac\{([+-]?\d+(?:\.\d+)?)\}\{([+-]?\d+(?:\.\d+)?)\}")
_TIMES_TEN = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*(?:\\times|\\cdot)\s*10\^\{?([+-]?\d{1,4})\}?")


def parse_number(text: str) -> tuple[Fraction, bool] | None:
    """``(value, inexact)`` for a plain number literal, else None. ``inexact``
    (a decimal point or exponent) is what lets the tolerance apply."""
    t = text.strip()
    if len(t) > 4000:  # int() refuses longer digit strings; sympy's turn
        return None
    try:
        if _INT.fullmatch(t):
            return Fraction(int(t)), False
        if _DEC.fullmatch(t) or _SCI.fullmatch(t):
            return Fraction(t), True
        m = _RATIO.fullmatch(t) or _TEX_FRAC.fullmatch(t)
        if m:
            sign, num, den = ("", *m.groups()) if m.re is _RATIO else m.groups()
            value = Fraction(num) / Fraction(den)
            return (-value if sign == "-" else value), "." in num + den
        m = _TIMES_TEN.fullmatch(t)
        if m:
            return Fraction(m.group(1)) * Fraction(10) ** int(m.group(2)), True
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _bound(text: str):
    found = parse_number(text)
    return None if found is None else found[0]


def _abs_interval(low: str | None, low_closed: bool, high: str | None,
                  high_closed: bool) -> Seq | None:
    """``a < |x| < b`` (plain numbers, 0 <= a <= b) as the union of two intervals,
    ``|x| < b`` (``low`` None) as one, ``|x| > a`` (``high`` None) as two rays."""
    lo = Fraction(0) if low is None else _bound(low)
    hi = None if high is None else _bound(high)
    if lo is None or lo < 0 or (high is not None and (hi is None or hi < lo)):
        return None

    def ends(left: bool, right: bool) -> str:
        return ("[" if left else "(") + ("]" if right else ")")
    if high is None:
        assert low is not None
        return Seq("union", (Seq("tuple", (Leaf("-\\infty"), parse(_negated(low))),
                                 ends(False, low_closed)),
                             Seq("tuple", (parse(low), Leaf("\\infty")), ends(low_closed, False))))
    if low is None or lo == 0 and low_closed:  # |x| < b, 0 <= |x| <= b
        return Seq("tuple", (parse(_negated(high)), parse(high)), ends(high_closed, high_closed))
    return Seq("union", (
        Seq("tuple", (parse(_negated(high)), parse(_negated(low))), ends(high_closed, low_closed)),
        Seq("tuple", (parse(low), parse(high)), ends(low_closed, high_closed))))


def _inequality(s: str) -> Seq | None:
    """``x > 2`` -> ``(2, \\infty)``; ``1 < x \\leq 3`` -> ``(1, 3]``; ``-x > -1`` ->
    ``(-\\infty, 1)``; ``1 \\leq |z| \\leq 2`` -> ``[-2, -1] \\cup [1, 2]``; else None."""
    pieces = _INEQ.split(s)
    ops = [o.strip() for o in _INEQ.findall(s)]
    if len(pieces) == 2 and len(ops) == 1:
        left, right = pieces[0].strip(), pieces[1].strip()
        op = ops[0]

        def variable(t: str) -> bool:
            return bool(_SYMBOL.match(t) or _ABS.match(t)
                        or t.startswith("-") and _SYMBOL.match(t[1:]))
        if variable(right) and not variable(left):  # 2 < x: flip
            left, right, op = right, left, _FLIP[op]
        if left.startswith("-") and _SYMBOL.match(left[1:]) and right:  # -x > -1: x < 1
            left, right, op = left[1:], _negated(right), _FLIP[op]
        if _ABS.match(left) and right:
            if op in ("<", "\\leq"):
                return _abs_interval(None, False, right, op == "\\leq")
            return _abs_interval(right, op == "\\geq", None, False)
        if not _SYMBOL.match(left) or not right:
            return None
        closed = op in ("\\leq", "\\geq")
        if op in ("<", "\\leq"):
            return Seq("tuple", (Leaf("-\\infty"), parse(right)), "(" + ("]" if closed else ")"))
        return Seq("tuple", (parse(right), Leaf("\\infty")), ("[" if closed else "(") + ")")
    if len(pieces) == 3 and len(ops) == 2 and _ABS.match(pieces[1].strip()):
        low, high = pieces[0].strip(), pieces[2].strip()
        if ops[0] in ("<", "\\leq") and ops[1] in ("<", "\\leq"):
            return _abs_interval(low, ops[0] == "\\leq", high, ops[1] == "\\leq")
        if ops[0] in (">", "\\geq") and ops[1] in (">", "\\geq"):
            return _abs_interval(high, ops[1] == "\\geq", low, ops[0] == "\\geq")
        return None
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


def is_label(node: Node) -> bool:
    """A name a value is given under: ``x``, ``AB``, ``|AB|``, ``V_1:V_2``,
    ``\\frac{NO}{BO}``, ``f(x)``, or a tuple of names ``(p, q)``."""
    if isinstance(node, Leaf):
        return not node.percent and bool(_LABEL.match(node.text))
    return (isinstance(node, Seq) and node.kind == "tuple" and node.brackets == "()"
            and all(isinstance(i, Leaf) and is_label(i) for i in node.items))


def label_key(node: Node) -> str:
    """How labels compare: case-insensitively, as written after normalisation."""
    if isinstance(node, Leaf):
        return node.text.lower()
    return "(" + ",".join(label_key(i) for i in node.items) + ")"


def label_of(node: Node) -> Node | None:
    """The label an equation gives its value (its last side) under: the first side
    before the last that is a label. ``x = 2``, ``(p,q) = (3,2)``, ``z = 1+1 = 2``,
    ``2a = b = 6`` have one; ``1+100 = 101`` and ``a+3z = 0`` have none."""
    if not isinstance(node, Eq) or len(node.sides) < 2:
        return None
    return next((side for side in node.sides[:-1] if is_label(side)), None)


def labelled(node: Node) -> bool:
    return label_of(node) is not None


_FUNCTION = re.compile(r"^([A-Za-z])\(([A-Za-z])\)$")


def same_label(gold: Eq, cand: Eq) -> bool:
    """The same label; ``W(n)`` and ``W(x)`` count as one when both values are
    constants (no letter), as the argument is then a dummy."""
    g, c = label_of(gold), label_of(cand)
    if g is None or c is None:
        return False
    if label_key(g) == label_key(c):
        return True
    mg = _FUNCTION.match(g.text) if isinstance(g, Leaf) else None
    mc = _FUNCTION.match(c.text) if isinstance(c, Leaf) else None
    values = (gold.sides[-1], cand.sides[-1])
    return bool(mg and mc and mg.group(1) == mc.group(1)
                and all(isinstance(v, Leaf) and not re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", v.text))
                        for v in values))


def value_side(eq: Eq) -> Node:
    """The side of a candidate equation that holds its value: the last one,
    unless that is a lone letter and the first is not (``2 = x``)."""
    last, first = eq.sides[-1], eq.sides[0]
    if isinstance(last, Leaf) and re.fullmatch(r"[a-df-hj-zA-Z]", last.text) \
            and not is_symbol(first):
        return first
    return last
