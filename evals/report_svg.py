"""Inline SVG for the HTML report: a score-vs-compute scatter and a heatmap grid.

Strings in, strings out, standard library only: the report must open offline
and the tests read the markup, so nothing is rasterised and nothing loads a
plotting library.  No ``xmlns`` attribute: inline SVG in HTML5 needs none,
and the page then holds no URL at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Callable, Sequence

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
           "#000000")
# Deployable strategies; pass@k needs an oracle that knows the answer, so it is drawn
# as an upper bound and never sits on the frontier.
FRONTIER_KINDS = frozenset({"accuracy", "maj", "best"})


@dataclass(frozen=True, slots=True)
class Point:
    """One metric of one (model, setting) on the compute/score plane."""

    model: str
    setting: str
    kind: str  # accuracy, maj, pass, best
    k: int
    x: float
    y: float
    low: float | None = None
    high: float | None = None

    @property
    def label(self) -> str:
        return "accuracy" if self.kind == "accuracy" else f"{self.kind}@{self.k}"


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Deployable points no other deployable point beats on both cost (lower) and score.

    Sweep by cost, cheapest first (higher score first on equal cost): a point is
    on the front when it scores strictly above every cheaper one.
    """
    front: list[Point] = []
    best = -math.inf
    for p in sorted((p for p in points if p.kind in FRONTIER_KINDS and p.x == p.x),
                    key=lambda p: (p.x, -p.y)):
        if p.y > best:
            front.append(p)
            best = p.y
    return front


@dataclass(frozen=True, slots=True)
class Axis:
    lo: float
    hi: float
    log: bool
    start: float  # pixel of lo
    end: float  # pixel of hi

    def __call__(self, v: float) -> float:
        if self.log:
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.start + f * (self.end - self.start)


def _nice_step(span: float, target: int) -> float:
    raw = span / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        out = []
        for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
            # 1-2-5 inside two decades, powers of ten beyond: ~4-8 labels either way.
            mults = (1, 2, 5) if math.log10(hi / lo) <= 2.5 else (1,)
            out += [m * 10 ** e for m in mults if lo <= m * 10 ** e <= hi]
        return out
    step = _nice_step(hi - lo, 5)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def x_axis(xs: Sequence[float], start: float, end: float) -> Axis:
    """Log scale when every x is positive and they span 4x or more (k-fold costs do)."""
    lo, hi = min(xs), max(xs)
    if lo > 0 and hi / lo >= 4:
        return Axis(lo / 1.25, hi * 1.25, True, start, end)
    pad = (hi - lo) * 0.08 or (abs(hi) * 0.1 or 1.0)
    return Axis(max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad, False, start, end)


def y_axis(ys: Sequence[float], start: float, end: float) -> Axis:
    """Scores: 0.1 steps around the data, within [0, 1]."""
    lo = max(0.0, math.floor(min(ys) * 10 - 0.5) / 10)
    hi = min(1.0, math.ceil(max(ys) * 10 + 0.5) / 10)
    if hi - lo < 0.2:
        lo, hi = max(0.0, hi - 0.2), max(0.2, hi)
    return Axis(lo, hi, False, start, end)


def fmt_tokens(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    return f"{v / 1e3:.3g}k" if v >= 1e3 else f"{v:.3g}"


def fmt_cost(v: float) -> str:
    return f"${v:.3g}"


def _marker(p: Point, x: float, y: float, color: str, on_front: bool, label: str = "",
            left_of: bool = False) -> str:
    tip = (f"<title>{escape(p.model)} | {escape(p.setting)} | {p.label}: {p.y:.3f}"
           f"{' (Pareto)' if on_front else ''}</title>")
    cls = f"pt {p.kind}" + (" pareto" if on_front else "")
    data = (f' data-model="{escape(p.model)}" data-setting="{escape(p.setting)}"'
            f' data-metric="{p.label}" data-x="{p.x:.10g}" data-y="{p.y:.10g}"')
    ring = (f'<circle class="pareto-ring" cx="{x:.1f}" cy="{y:.1f}" r="9" fill="none" '
            f'stroke="#111" stroke-width="1.5"/>' if on_front else "")
    if p.kind == "accuracy":
        shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}"/>'
    elif p.kind == "maj":
        shape = (f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" '
                 f'fill="{color}" fill-opacity="0.75"/>')
    elif p.kind == "best":
        shape = (f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} '
                 f'{x - 5:.1f},{y:.1f}" fill="{color}" fill-opacity="0.75"/>')
    else:  # pass@k: hollow, an upper bound
        shape = (f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} '
                 f'{x - 5:.1f},{y + 4:.1f}" fill="none" stroke="{color}" stroke-width="1.3"/>')
    anchor = ' text-anchor="end"' if left_of else ""
    text = (f'<text class="pt-label" x="{x - 8 if left_of else x + 8:.1f}" y="{y - 7:.1f}"'
            f'{anchor}>{escape(label)}</text>' if label else "")
    return f'<g class="{cls}"{data}>{tip}{ring}{shape}{text}</g>'


def point_labels(points: Sequence[Point]) -> dict[int, str]:
    """What each point says on the chart (by ``id``): an accuracy point its setting, the
    largest k of maj@k and best@k its metric and setting; other points (pass@k, an
    oracle's bound, and smaller k) only on hover."""
    top: dict[tuple, Point] = {}
    for p in points:
        if p.kind in ("maj", "best"):
            key = (p.model, p.setting, p.kind)
            if key not in top or p.k > top[key].k:
                top[key] = p
    labels = {id(p): p.setting for p in points if p.kind == "accuracy"}
    labels.update({id(p): f"{p.label} {p.setting}" for p in top.values()})
    return labels


def scatter(points: Sequence[Point], colors: dict[str, str], *, title: str, x_label: str,
            fmt_x: Callable[[float], str], width: int = 860, height: int = 440,
            series: Callable[[Point], str] | None = None, y_label: str = "score") -> str:
    """Score against compute: one polyline per model through its settings' accuracy
    points, @k markers at k times the cost, CI whiskers, and the Pareto front.
    ``series``: what a point's line and colour are (``colors``' keys), its model by
    default; lines of another series are ``series-line``s with ``data-series``."""
    line_of = series or (lambda p: p.model)
    left, right, top, bottom = 60, 20, 30, 50
    pts = [p for p in points if p.x == p.x and p.y == p.y]
    if not pts:
        return ""
    ax = x_axis([p.x for p in pts], left, width - right)
    ay = y_axis([p.y for p in pts] + [v for p in pts for v in (p.low, p.high) if v is not None],
                height - bottom, top)
    front = pareto_front(pts)
    on_front = {id(p) for p in front}
    # The page's width: the viewBox scales; labels keep their size relative to the plot.
    out = [f'<svg class="plot" width="100%" viewBox="0 0 {width} {height}" '
           f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="{escape(title)}">',
           f'<text class="title" x="{left}" y="18">{escape(title)}</text>']
    for t in _ticks(ax.lo, ax.hi, ax.log):
        x = ax(t)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" '
                   f'y2="{height - bottom}"/><text class="tick" x="{x:.1f}" '
                   f'y="{height - bottom + 16}" text-anchor="middle">{escape(fmt_x(t))}</text>')
    for t in _ticks(ay.lo, ay.hi, False):
        y = ay(t)
        out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/><text class="tick" x="{left - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{t:.1f}</text>')
    out.append(f'<text class="axis-label" x="{(left + width - right) / 2}" y="{height - 10}" '
               f'text-anchor="middle">{escape(x_label)}{" (log scale)" if ax.log else ""}</text>'
               f'<text class="axis-label" transform="translate(16 {(top + height - bottom) / 2}) '
               f'rotate(-90)" text-anchor="middle">{escape(y_label)}</text>')
    if len(front) > 1:
        coords = " ".join(f"{ax(p.x):.1f},{ay(p.y):.1f}" for p in front)
        out.append(f'<polyline class="frontier" points="{coords}" fill="none" stroke="#111" '
                   f'stroke-dasharray="5 4" stroke-width="1"/>')
    kind = "series-line\" data-series" if series else "model-line\" data-model"
    for name in colors:
        line = sorted((p for p in pts if line_of(p) == name and p.kind == "accuracy"),
                      key=lambda p: (p.x, p.y))
        if line:
            coords = " ".join(f"{ax(p.x):.1f},{ay(p.y):.1f}" for p in line)
            out.append(f'<polyline class="{kind}="{escape(name)}" '
                       f'points="{coords}" fill="none" stroke="{colors[name]}" '
                       f'stroke-width="2"/>')
    for p in pts:
        if p.kind == "accuracy" and p.low is not None and p.high is not None:
            x = ax(p.x)
            out.append(f'<line class="ci" x1="{x:.1f}" x2="{x:.1f}" y1="{ay(p.low):.1f}" '
                       f'y2="{ay(p.high):.1f}" stroke="{colors[line_of(p)]}" '
                       f'stroke-opacity="0.5"/>')
    # Accuracy points last, so that @k markers never hide the line's own points.
    labels = point_labels(pts)
    for p in sorted(pts, key=lambda p: p.kind == "accuracy"):
        x = ax(p.x)
        out.append(_marker(p, x, ay(p.y), colors[line_of(p)], id(p) in on_front,
                           labels.get(id(p), ""), left_of=x > width * 0.75))
    out.append("</svg>")
    return "".join(out)


def _cell_colour(v: float) -> str:
    """Red (0) through yellow to green (1), light enough for dark text."""
    hue = 120.0 * max(0.0, min(1.0, v))
    return f"hsl({hue:.0f} 70% 72%)"


def heatmap(cells: dict[tuple[str, str], tuple[float, int]], cols: Sequence[str],
            rows: Sequence[str], *, title: str, col_label: str, row_label: str,
            note: str = "") -> str:
    """A grid of mean scores: ``cells[(col, row)] = (mean, problems)``; empty cells blank.
    ``note`` is written to the right of the grid (needle: the effective length)."""
    cw, ch, left, top = 64, 28, 70, 56
    width = left + cw * len(cols) + 10 + (len(note) * 7 + 20 if note else 0)
    height = top + ch * len(rows) + 30
    out = [f'<svg class="heatmap" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f'<text class="title" x="4" y="14">{escape(title)}</text>',
           f'<text class="tick" x="{left}" y="{top - 24}">{escape(col_label)} &#8594;</text>',
           f'<text class="tick" x="4" y="{top - 6}">{escape(row_label)} &#8595;</text>']
    for i, c in enumerate(cols):
        out.append(f'<text class="tick" x="{left + cw * i + cw / 2}" y="{top - 6}" '
                   f'text-anchor="middle">{escape(c)}</text>')
    for j, r in enumerate(rows):
        y = top + ch * j
        out.append(f'<text class="tick" x="{left - 6}" y="{y + ch / 2 + 4}" '
                   f'text-anchor="end">{escape(r)}</text>')
        for i, c in enumerate(cols):
            if (c, r) not in cells:
                continue
            mean, n = cells[(c, r)]
            x = left + cw * i
            out.append(f'<g class="cell"><title>{escape(row_label)} {escape(r)}, '
                       f'{escape(col_label)} {escape(c)}: {mean:.3f} over {n} problems</title>'
                       f'<rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                       f'fill="{_cell_colour(mean)}"/><text x="{x + cw / 2 - 1}" '
                       f'y="{y + ch / 2 + 3}" text-anchor="middle">{100 * mean:.0f}%</text></g>')
    if note:
        out.append(f'<text class="note" x="{left + cw * len(cols) + 20}" y="{top + 14}">'
                   f'{escape(note)}</text>')
    out.append("</svg>")
    return "".join(out)
