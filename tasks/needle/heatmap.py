"""Length x depth heatmap of needle scores: the HTML report's own heatmap
(``evals.report_svg.heatmap``), one panel per variant, written as an SVG file, or as a
PNG rendered by headless Chromium (``evals.report_png``), so there is one drawing code
for the report, its figures and this, and no plotting library to depend on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from evals.report import CHART_CSS
from evals.report_svg import heatmap as svg_heatmap

from .analysis import cell_scores, effective, format_length


def _depth(d: float | None) -> str:
    return "all" if d is None else f"{d:g}%"


def heatmap_svg(records: Iterable[Mapping[str, Any]], *, title: str | None = None,
                variant: str | None = None) -> str:
    """One SVG: a panel per variant, lengths across, depths down, colour = mean score,
    each panel titled with its variant and noting RULER's effective length."""
    records = list(records)
    cells = cell_scores(records, variant)
    if not cells:
        raise ValueError("heatmap: no scored needle records")
    panels = []
    for v in sorted({c.variant for c in cells}):
        mine = [c for c in cells if c.variant == v]
        lengths = sorted({c.length for c in mine})
        depths = sorted({c.depth for c in mine}, key=lambda d: -1.0 if d is None else d)
        eff = effective([r for r in records if (r.get("metadata") or {}).get("variant") == v])
        note = (f"effective length {format_length(eff.length) if eff.length else 'none'} "
                f"(>= {100 * eff.threshold:.1f}%)")
        panels.append(svg_heatmap(
            {(format_length(c.length), _depth(c.depth)): (c.mean, c.n) for c in mine},
            [format_length(n) for n in lengths], [_depth(d) for d in depths],
            title=f"{title + ': ' if title else ''}{v}", col_label="context length (tokens)",
            row_label="needle depth", note=note))
    width = height = 0
    placed = []
    for svg in panels:  # stacked: nested svg elements, each at its own size
        w, h = _size(svg)
        placed.append(svg.replace("<svg ", f'<svg x="0" y="{height}" ', 1))
        width, height = max(width, w), height + h + 8
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}"><style>{CHART_CSS}</style>'
            f'{"".join(placed)}</svg>')


def _size(svg: str) -> tuple[int, int]:
    from evals.report_png import size

    return size(svg)


def heatmap(records: Iterable[Mapping[str, Any]], path: str | Path, *,
            title: str | None = None, variant: str | None = None) -> Path:
    """Write the heatmap to ``path``: ``.svg`` as is, ``.png`` rendered by headless
    Chromium (it must be installed). Returns the written path."""
    out = Path(path)
    svg = heatmap_svg(records, title=title, variant=variant)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".svg":
        out.write_text(svg, encoding="utf-8")
        return out
    if out.suffix.lower() == ".png":
        from evals.report_png import write_pngs

        (written,) = write_pngs([(out.stem, svg)], out.parent, CHART_CSS)
        return written
    raise ValueError(f"heatmap: {out.name}: write .svg or .png")
