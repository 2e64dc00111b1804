"""Live progress during a run and the summary table after it (rich)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from evals.leaderboard import SHARE_COLUMNS, ci_bounds, fitted_table, share_cells, value_ci
from evals.run import RunStats

console = Console(stderr=True)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressLine:
    """Rendered from RunStats at each refresh, so the hot path only bumps counters."""

    def __init__(self, stats: RunStats, label: str):
        self.stats = stats
        self.label = label

    def __rich__(self) -> Text:
        s = self.stats
        elapsed = time.monotonic() - s.started
        width = 30
        frac = s.done / s.total if s.total else 1.0
        bar = "━" * int(frac * width) + "╺" + " " * (width - int(frac * width))
        # The ETA uses this session's rate only: resumed generations came free.
        rate = (s.done - s.done_at_start) / elapsed if elapsed > 0 else 0
        eta = _duration((s.total - s.done) / rate) if rate > 0 else "-:--:--"
        cost = f"${s.cost:.4f}" if s.cost_known else "cost n/a"
        line = Text(f"{self.label} ")
        line.append(bar[:width], "green")
        line.append(f" {s.done}/{s.total} ", "bold")
        line.append(f"errors {s.errors} ", "red" if s.errors else "dim")
        line.append(f"tokens {s.prompt_tokens + s.completion_tokens:,} {cost} "
                    f"cached {s.cached} elapsed {_duration(elapsed)} eta {eta}")
        return line


@contextmanager
def live_progress(stats: RunStats, label: str, enabled: bool = True) -> Iterator[None]:
    if not enabled or not console.is_terminal:
        yield
        return
    with Live(ProgressLine(stats, label), console=console, refresh_per_second=4,
              transient=False):
        yield


def summary_table(rows: list[dict], title: str, wide: bool = False) -> Table:
    columns = ["task", "model", "setting", "metric", "value", "95% CI", "n", "errors",
               *SHARE_COLUMNS]
    return fitted_table(title, columns, [
        [r["task"], r["model"], r["setting"], r["metric"], value_ci(r), ci_bounds(r),
         str(r["n"]), str(r.get("errors", 0)), *share_cells(r)] for r in rows], wide=wide)
