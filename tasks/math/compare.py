"""Comparing two answer trees (:mod:`tasks.math.structure`), leaf by leaf.

The same code runs in-process with :class:`~tasks.math.leaves.CheapLeaves`
and in the worker with sympy leaves; a comparison returns True, False or
None (undecided: a leaf needs sympy).

Gold and candidate are not symmetric (docs/math.md): a candidate equation or
chain ``a+b = ... = 101`` is judged by its last side, while a gold equation
is only dropped to its value (its last side) when its left side is a label
(``x = 2``, ``(p,q) = (3,2)``, ``|AB| = 1`` accept ``2``, ``(3,2)``, ``1``;
``1+100 = 101`` does not accept ``101``). A ``system`` (``p=5, q=2``) equals
the same labelled values in any order, or unlabelled values in its order.
"""

from __future__ import annotations

import re
from typing import Callable

from .leaves import Leaves, Verdict
from .structure import (UNORDERED, Eq, Leaf, Node, Seq, label_key, label_of, labelled,
                        same_label, value_side)


def _any(verdicts) -> Verdict:
    """True if any is True; False if all are False; else None."""
    out: Verdict = False
    for v in verdicts:
        if v:
            return True
        if v is None:
            out = None
    return out


def _all(verdicts) -> Verdict:
    out: Verdict = True
    for v in verdicts:
        if v is False:
            return False
        if v is None:
            out = None
    return out


def _percent_variants(leaf: Leaf) -> list[Leaf]:
    return [Leaf(leaf.text, False, leaf.scale), Leaf(leaf.text, False, leaf.scale / 100)]


def _match(golds: tuple, cands: tuple, cmp: Callable[[Node, Node], Verdict]) -> Verdict:
    """Unordered: a perfect matching of gold items to candidate items."""
    if len(golds) != len(cands):
        return False
    table = [[cmp(g, c) for c in cands] for g in golds]

    def perfect(allow_none: bool) -> bool:
        owner: dict[int, int] = {}

        def augment(gi: int, seen: set[int]) -> bool:
            for ci, v in enumerate(table[gi]):
                if (v or (allow_none and v is None)) and ci not in seen:
                    seen.add(ci)
                    if ci not in owner or augment(owner[ci], seen):
                        owner[ci] = gi
                        return True
            return False
        return all(augment(gi, set()) for gi in range(len(golds)))

    if perfect(False):
        return True
    return None if perfect(True) else False


def _dedupe(items: tuple) -> tuple:
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return tuple(out)


def _paired(node: Node) -> Node:
    """``(p, q) = (3, 2)`` as the system ``p = 3, q = 2``: each name with its value, so
    that labels are compared as labels (``q = 3, p = 2`` is not it)."""
    if not isinstance(node, Eq):
        return node
    label, value = label_of(node), node.sides[-1]
    if isinstance(label, Seq) and isinstance(value, Seq) and value.kind == "tuple" \
            and 1 < len(label.items) == len(value.items) \
            and len({label_key(n) for n in label.items}) == len(label.items):
        return Seq("system", tuple(Eq((n, v)) for n, v in zip(label.items, value.items)))
    return node


def _natural(key: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key))


def _in_natural_order(system: Seq) -> bool:
    """Labels written in their natural order (``x, y``; ``a, b, c``; ``x_1, x_2``): only
    then do a system's values mean the same in order as an unlabelled tuple's. ``y = 3,
    x = 2`` against ``(3, 2)`` could be either, so it is not accepted."""
    keys = [label_key(label_of(item)) for item in system.items]
    return keys == sorted(keys, key=_natural)


def compare(gold: Node, cand: Node, leaves: Leaves) -> Verdict:
    """Is ``cand`` an acceptable answer where ``gold`` is expected?"""
    gold, cand = _paired(gold), _paired(cand)
    if isinstance(gold, Eq):
        if isinstance(cand, Eq):
            if same_label(gold, cand):
                # Assignments: the same label, and equal values (last sides).
                return compare(gold.sides[-1], cand.sides[-1], leaves)
            if len(gold.sides) == 2 and len(cand.sides) >= 2:
                pair = Eq((cand.sides[0], cand.sides[-1]))
                sides = _all(compare(g, c, leaves) for g, c in zip(gold.sides, pair.sides))
                return True if sides else _any([sides, leaves.equation(gold, pair)])
            return _all(compare(g, c, leaves) for g, c in zip(gold.sides, cand.sides)) \
                if len(gold.sides) == len(cand.sides) else False
        if labelled(gold):
            return compare(gold.sides[-1], cand, leaves)
        return False
    if isinstance(cand, Eq):  # a candidate chain: its last side (or first, if "2 = x")
        return compare(gold, value_side(cand), leaves)
    if isinstance(gold, Seq) and isinstance(cand, Seq):
        return _compare_seqs(gold, cand, leaves)
    if isinstance(gold, Seq) and gold.kind in UNORDERED and len(gold.items) == 1:
        return compare(gold.items[0], cand, leaves)  # {3} vs 3
    if isinstance(cand, Seq) and cand.kind in UNORDERED and len(_dedupe(cand.items)) == 1:
        return compare(gold, cand.items[0], leaves)
    if isinstance(gold, Leaf) and isinstance(cand, Leaf):
        if gold.percent and not cand.percent:
            return _any(leaves.equal(g, cand) for g in _percent_variants(gold))
        if cand.percent and not gold.percent:
            return _any(leaves.equal(gold, c) for c in _percent_variants(cand))
        return leaves.equal(gold, cand)
    return False


def _as_vector(node: Seq) -> tuple | None:
    """A one-row or one-column matrix's entries, for comparing with a tuple."""
    if node.kind != "matrix":
        return None
    rows = node.items
    if len(rows) == 1:
        return rows[0].items
    if all(len(r.items) == 1 for r in rows):
        return tuple(r.items[0] for r in rows)
    return None


def _values(node: Seq) -> tuple:
    """A system's values, in its order."""
    return tuple(item.sides[-1] for item in node.items)


def _unlabelled(node: Seq) -> bool:
    return not any(isinstance(item, Eq) for item in node.items)


def _compare_systems(gold: Seq, cand: Seq, cmp) -> Verdict:
    """``p=5, q=2``: against labelled values, label by label in any order; against
    unlabelled ones (``(5, 2)``, ``5, 2``), in order. A gold list meets a candidate
    system's values in any order, as it would meet them unlabelled."""
    if gold.kind == "system" and cand.kind == "system":
        return _match(gold.items, cand.items, cmp)
    if gold.kind == "system":
        if not (cand.kind in ("list", "set") or cand.kind == "tuple" and cand.brackets == "()"):
            return False
        if not _unlabelled(cand):
            return _match(gold.items, cand.items, cmp) if cand.kind == "list" else False
        if cand.kind == "tuple" and not _in_natural_order(gold):
            return False
        values = _values(gold)
        return _all(cmp(g, c) for g, c in zip(values, cand.items)) \
            if len(values) == len(cand.items) else False
    if gold.kind in ("list", "set"):
        return _match(_dedupe(gold.items), _dedupe(_values(cand)), cmp)
    if gold.kind == "tuple" and gold.brackets == "()" and len(gold.items) == len(cand.items) \
            and _in_natural_order(cand):
        return _all(cmp(g, c) for g, c in zip(gold.items, _values(cand)))
    return False


def _compare_seqs(gold: Seq, cand: Seq, leaves: Leaves) -> Verdict:
    def cmp(g: Node, c: Node) -> Verdict:
        return compare(g, c, leaves)

    if gold.kind == "system" or cand.kind == "system":
        return _compare_systems(gold, cand, cmp)
    if gold.kind in ("set", "list") and cand.kind in ("set", "list"):
        return _match(_dedupe(gold.items), _dedupe(cand.items), cmp)
    if gold.kind == "union" and cand.kind == "union":
        return _match(gold.items, cand.items, cmp)
    if gold.kind == "matrix" or cand.kind == "matrix":
        if gold.kind == cand.kind:
            if [len(r.items) for r in gold.items] != [len(r.items) for r in cand.items]:
                return False
            return _all(cmp(g, c) for gr, cr in zip(gold.items, cand.items)
                        for g, c in zip(gr.items, cr.items))
        g_items = _as_vector(gold) if gold.kind == "matrix" else \
            (gold.items if gold.brackets == "()" else None)
        c_items = _as_vector(cand) if cand.kind == "matrix" else \
            (cand.items if cand.brackets == "()" else None)
        if g_items is None or c_items is None or len(g_items) != len(c_items):
            return False
        return _all(cmp(g, c) for g, c in zip(g_items, c_items))
    if gold.kind == "tuple" and cand.kind == "tuple":
        if gold.brackets != cand.brackets or len(gold.items) != len(cand.items):
            return False
        return _all(cmp(g, c) for g, c in zip(gold.items, cand.items))
    return False


def canon(node: Node, leaves: Leaves, role: str = "candidate") -> str | None:
    """One string per meaning, for votes; None when a leaf cannot be printed.

    Unordered collections sort their (deduplicated) items and a one-item set
    prints as its item; a candidate equation prints its last side (as it is
    compared); ``%`` is dropped (``10%`` prints as ``10``).
    """
    if isinstance(node, Leaf):
        return leaves.canon(Leaf(node.text, False, node.scale))
    if isinstance(node, Eq):
        if role == "candidate":
            return canon(value_side(node), leaves, role)
        if labelled(node):
            return canon(node.sides[-1], leaves, role)
        sides = _all_canon(node.sides, leaves, role)
        return None if sides is None else " = ".join(sides)
    if node.kind == "system":  # prints as the tuple of its values: (5, 2) and p=5, q=2 vote together
        return canon(Seq("tuple", _values(node), "()"), leaves, role)
    items = _dedupe(node.items) if node.kind in UNORDERED else node.items
    parts = _all_canon(items, leaves, role)
    if parts is None:
        return None
    if node.kind in UNORDERED:
        unique = sorted(set(parts))
        if len(unique) == 1 and node.kind != "union":
            return unique[0]
        return ("U" if node.kind == "union" else "") + "{" + ", ".join(unique) + "}"
    if node.kind == "matrix":
        vector = _as_vector(node)
        if vector is not None:  # prints as the tuple it equals
            return canon(Seq("tuple", vector, "()"), leaves, role)
        return "[" + ", ".join(parts) + "]"
    return node.brackets[:1] + ", ".join(parts) + node.brackets[1:]


def _all_canon(nodes: tuple, leaves: Leaves, role: str) -> list[str] | None:
    out = []
    for node in nodes:
        text = canon(node, leaves, role)
        if text is None:
            return None
        out.append(text)
    return out
