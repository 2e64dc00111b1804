"""Length x depth heatmap of needle scores, written as a PNG.

matplotlib is imported here, inside ``heatmap``, and drawn through the Agg
canvas directly (no pyplot), so no global backend is switched and nothing
needs a display.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from .analysis import cell_scores, effective, format_length


def heatmap(records: Iterable[Mapping[str, Any]], path: str | Path, *,
            title: str | None = None, variant: str | None = None) -> Path:
    """Draw one panel per variant: lengths across, depths down, colour = mean score.

    Each cell is annotated with its mean in percent; the title of each panel
    gives RULER's effective length. Returns the written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = list(records)
    cells = cell_scores(records, variant)
    if not cells:
        raise ValueError("heatmap: no scored needle records")
    variants = sorted({c.variant for c in cells})
    lengths = sorted({c.length for c in cells})
    rows = {v: sorted({c.depth for c in cells if c.variant == v},
                      key=lambda d: -1.0 if d is None else d) for v in variants}
    # Panels as tall as their number of depth rows, so a cwe strip stays a strip.
    heights = [len(rows[v]) + 2.5 for v in variants]
    fig = Figure(figsize=(1.6 + 0.9 * len(lengths), 0.6 + 0.32 * sum(heights)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(variants), 1, squeeze=False,
                        gridspec_kw={"height_ratios": heights})[:, 0]
    image = None
    for ax, v in zip(axes, variants):
        mine = [c for c in cells if c.variant == v]
        depths = rows[v]
        grid = [[float("nan")] * len(lengths) for _ in depths]
        for c in mine:
            grid[depths.index(c.depth)][lengths.index(c.length)] = c.mean
        image = ax.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
        for r, row in enumerate(grid):
            for col, value in enumerate(row):
                if not math.isnan(value):  # NaN: a cell that was not tested
                    ax.text(col, r, f"{100 * value:.0f}", ha="center", va="center",
                            fontsize=7, color="black")
        ax.set_xticks(range(len(lengths)), [format_length(n) for n in lengths])
        ax.set_yticks(range(len(depths)),
                      ["all" if d is None else f"{d:g}%" for d in depths])
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("needle depth")
        eff = effective([r for r in records if (r.get("metadata") or {}).get("variant") == v])
        ax.set_title(f"{v}: effective length {format_length(eff.length) if eff.length else 'none'} "
                     f"(>= {100 * eff.threshold:.1f}%)", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="score", shrink=0.8)
    if title:
        fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=110)
    return out
