"""``evals report --figures DIR``: every chart and heatmap of the report as a PNG file.

The report's charts are SVG written by ``evals.report_svg``; headless Chromium renders
each one alone at twice its size (``--screenshot``), so a figure is exactly the chart
the report shows (one drawing code, no second plotting library to keep in step), with
the report's own fonts and styles. Chromium is a program, not a Python package:
without it the command says what to install.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html import escape
from pathlib import Path
from typing import Sequence

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
SCALE = 2  # device pixels per CSS pixel: sharp enough for slides and print


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise ValueError("--figures renders the charts with headless Chromium, which is not "
                     "installed (apt-get install chromium, or brew install --cask chromium)")


def size(svg: str) -> tuple[int, int]:
    """The chart's size in CSS pixels, from its viewBox."""
    m = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg)
    if not m:
        raise ValueError("a chart without a viewBox")
    return int(float(m.group(1)) + 0.5), int(float(m.group(2)) + 0.5)


def write_pngs(charts: Sequence[tuple[str, str]], directory: Path, css: str) -> list[Path]:
    """Write ``(stem, svg)`` charts as ``directory/stem.png``; returns the files."""
    binary = browser()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="evals-figures-") as tmp:
        for stem, svg in charts:
            w, h = size(svg)
            page = Path(tmp) / f"{stem}.html"
            # The svg at its own size (the report scales it to the page's width).
            page.write_text(f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>"
                            f"{escape(stem)}</title><style>{css}\nbody{{margin:0;background:"
                            f"#fff}}svg.plot,svg.heatmap{{width:{w}px;height:{h}px;"
                            f"max-width:none;display:block}}</style></head><body>{svg}"
                            f"</body></html>", encoding="utf-8")
            out = directory / f"{stem}.png"
            done = subprocess.run(
                [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={Path(tmp) / 'profile'}",
                 f"--window-size={w},{h}", f"--force-device-scale-factor={SCALE}",
                 f"--screenshot={out}", page.as_uri()],
                capture_output=True, text=True, timeout=120)
            if done.returncode != 0 or not out.exists():
                raise ValueError(f"Chromium could not render {stem}: {done.stderr[-500:]}")
            written.append(out)
    return written
