"""Reading needle results: per-cell accuracy, per-length accuracy, effective context length.

Input is result records as the run log stores them: dicts with ``score``,
``status`` (``"error"`` records are skipped, as are records without a score),
``metadata`` (the sample's: ``variant``, ``length``, ``depth``) and, where
present, ``sample_id``: generations of one sample are averaged first and the
sample is the unit of the interval (``evals.metrics.mean_ci``).

Effective length (the largest tested length up to which the mean score stays
at or above a threshold, every shorter length included):

* ``mode="absolute"`` (default): RULER's threshold, 0.856, the score of
  Llama-2-7B at 4K tokens (Hsieh et al. 2024);
* ``mode="relative"``: NoLiMa's (Modarressi et al. 2025), 85% of the model's
  own *base score*: its mean score at short contexts (NoLiMa uses 250, 500
  and 1K tokens; here the lengths up to ``base_length``, by default 1024,
  or the shortest tested length when none is that short).

``threshold`` overrides the number (an absolute score, or the fraction of
the base score); values above 1 are read as percentages.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from evals.metrics import mean_ci

RULER_THRESHOLD = 0.856
NOLIMA_FRACTION = 0.85
BASE_LENGTH = 1024


@dataclass(frozen=True)
class Cell:
    """Accuracy of one (variant, length, depth) cell; depth None for cwe (no needle)."""

    variant: str
    length: int
    depth: float | None
    mean: float
    low: float | None
    high: float | None
    n: int  # samples with a score


@dataclass(frozen=True)
class LengthScore:
    length: int
    mean: float
    low: float | None
    high: float | None
    n: int


@dataclass(frozen=True)
class Effective:
    """What ``effective_length`` decided, and from what."""

    length: int | None  # None: below the threshold already at the shortest length
    threshold: float
    mode: str
    base: float | None  # the base score (relative mode)
    scores: tuple[LengthScore, ...]


def _scored(records: Iterable[Mapping[str, Any]], variant: str | None):
    for i, r in enumerate(records):
        if r.get("status") == "error" or r.get("score") is None:
            continue
        meta = r.get("metadata") or {}
        if variant is not None and meta.get("variant") != variant:
            continue
        yield r.get("sample_id", i), float(r["score"]), meta


def mean_interval(groups: Mapping[Any, list[float]]) -> tuple[float, float | None, float | None, int]:
    ci = mean_ci(groups.values())
    ok = not math.isnan(ci.low)
    return ci.mean, (ci.low if ok else None), (ci.high if ok else None), ci.n


def _depth_key(depth: Any) -> float | None:
    return None if depth is None else float(depth)


def cell_scores(records: Iterable[Mapping[str, Any]], variant: str | None = None) -> list[Cell]:
    """Mean score and 95% interval per (variant, length, depth), sorted."""
    cells: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sid, value, meta in _scored(records, variant):
        key = (str(meta.get("variant", "")), int(meta["length"]), _depth_key(meta.get("depth")))
        cells[key][sid].append(value)
    out = [Cell(v, length, depth, *mean_interval(groups))
           for (v, length, depth), groups in cells.items()]
    return sorted(out, key=lambda c: (c.variant, c.length, -1.0 if c.depth is None else c.depth))


def length_scores(records: Iterable[Mapping[str, Any]],
                  variant: str | None = None) -> list[LengthScore]:
    """Mean score and 95% interval per length, over every depth (and variant) there."""
    by_length: dict[int, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sid, value, meta in _scored(records, variant):
        by_length[int(meta["length"])][sid].append(value)
    return [LengthScore(length, *mean_interval(by_length[length])) for length in sorted(by_length)]


def _fraction(value: float) -> float:
    return value / 100.0 if value > 1.0 else value


def effective(records: Iterable[Mapping[str, Any]], threshold: float | None = None,
              mode: str = "absolute", *, base_length: int = BASE_LENGTH,
              variant: str | None = None) -> Effective:
    """The effective length with its threshold, base score and per-length scores."""
    scores = tuple(length_scores(records, variant))
    base = None
    if mode == "absolute":
        cut = _fraction(RULER_THRESHOLD if threshold is None else threshold)
    elif mode == "relative":
        short = [s.mean for s in scores if s.length <= base_length] or [
            s.mean for s in scores[:1]]
        base = sum(short) / len(short) if short else None
        cut = _fraction(NOLIMA_FRACTION if threshold is None else threshold) * (base or 0.0)
    else:
        raise ValueError(f"mode must be 'absolute' or 'relative', got {mode!r}")
    length = None
    for s in scores:
        if not s.mean >= cut:  # a NaN mean fails too
            break
        length = s.length
    if base is not None and base <= 0.0:
        length = None  # 85% of nothing says nothing
    return Effective(length, cut, mode, base, scores)


def effective_length(records: Iterable[Mapping[str, Any]], threshold: float | None = None,
                     mode: str = "absolute", *, base_length: int = BASE_LENGTH,
                     variant: str | None = None) -> int | None:
    """Largest tested length up to which the mean score stays >= the threshold; None if none.

    ``mode="absolute"``: threshold defaults to RULER's 0.856. ``mode="relative"``:
    threshold is a fraction (default NoLiMa's 0.85) of the base score, the mean
    score at lengths <= ``base_length``. See the module docstring.
    """
    return effective(records, threshold, mode, base_length=base_length,
                     variant=variant).length


def format_length(tokens: int | None) -> str:
    """``131072`` -> ``128k``, ``1048576`` -> ``1m``; other counts as they are."""
    if tokens is None:
        return "-"
    for size, suffix in ((1024 * 1024, "m"), (1024, "k")):
        if tokens >= size and tokens % size == 0:
            return f"{tokens // size}{suffix}"
    return str(tokens)
