"""Live progress during a run and the summary table after it (rich)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from evals.leaderboard import (SHARE_COLUMNS, ci_bounds, cost_cell, fitted_table, share_cells,
                               spend_tokens, steps_cell, tokens_cell, value_ci)
from evals.work import RunStats

console = Console(stderr=True)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _count(n: float) -> str:
    """12, 1.2k, 3.4M: tokens in a few characters."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


class ProgressLine:
    """Rendered from RunStats at each refresh, so the hot path only bumps counters.

    One line at any width: the parts that matter most stay (label, done/total, ETA,
    errors), the others (running score per task, tokens, cost, elapsed, cached) are
    added while they fit, and the bar takes what is left."""

    def __init__(self, stats: RunStats, label: str, clock=time.monotonic):
        self.stats = stats
        self.label = label
        self.clock = clock

    def eta(self, now: float) -> str:
        """From this session's rate since its first finished unit: the requests before
        it only filled the pipeline, and resumed generations came free."""
        s = self.stats
        if s.first_done_at is None or s.done <= s.first_done or now <= s.first_done_at:
            return "-:--:--"
        rate = (s.done - s.first_done) / (now - s.first_done_at)
        return _duration((s.total - s.done) / rate)

    def parts(self, now: float) -> list[tuple[str, str]]:
        """(text, style) in the order they are given room."""
        s = self.stats
        cost = f"${s.cost:.4f}" if s.cost_known else "cost n/a"
        scores = " ".join(f"{task} {total / n:.2f}" for task, (total, n) in s.scores.items()
                          if n)
        limits = " ".join(f() for f in s.limits)  # adaptive concurrency per endpoint
        return [(f"errors {s.errors}", "red" if s.errors else "dim"),
                (limits, "yellow"),
                (s.batch_states, "magenta"),  # batch mode: the provider states in flight
                (scores, "cyan"),
                (f"tokens {_count(s.prompt_tokens + s.completion_tokens)}", ""),
                (cost, ""), (f"elapsed {_duration(now - s.started)}", "dim"),
                (f"cached {s.cached}", "dim")]

    def render(self, width: int) -> Text:
        s = self.stats
        now = self.clock()
        head = f"{self.label[:max(20, width // 4)]} {s.done}/{s.total}"
        tail = f"eta {self.eta(now)}"
        used = len(head) + 1 + len(tail)
        extra = []
        for text, style in self.parts(now):
            if text and used + 1 + len(text) <= width:
                extra.append((text, style))
                used += 1 + len(text)
        bar_width = min(30, width - used - 2)
        line = Text(head, "bold")
        if bar_width >= 10:
            frac = s.done / s.total if s.total else 1.0
            filled = int(frac * bar_width)
            line.append(" ")
            line.append("━" * filled + " " * (bar_width - filled), "green")
        for text, style in extra:
            line.append(" ")
            line.append(text, style)
        line.append(" " + tail)
        return line

    def __rich_console__(self, console, options):
        yield self.render(options.max_width - 1)


@contextmanager
def live_progress(stats: RunStats, label: str, enabled: bool = True) -> Iterator[None]:
    if not enabled or not console.is_terminal:
        yield
        return
    with Live(ProgressLine(stats, label), console=console, refresh_per_second=4,
              transient=False):
        yield


def summary_table(rows: list[dict], title: str, wide: bool = False) -> Table:
    # an agent's run: mean steps, tokens and cost per instance beside the resolved rate
    agent = any(r.get("steps_mean") is not None for r in rows)
    columns = ["task", "model", "setting", "metric", "value", "95% CI", "n", "errors",
               *SHARE_COLUMNS, *(("steps", "tokens", "$/problem") if agent else ())]
    return fitted_table(title, columns, [
        [r["task"], r["model"], r["setting"], r["metric"], value_ci(r), ci_bounds(r),
         str(r["n"]), str(r.get("errors", 0)), *share_cells(r),
         *((steps_cell(r.get("steps_mean")), tokens_cell(spend_tokens(r)),
            cost_cell(r.get("cost_per_problem"))) if agent else ())]
        for r in rows], wide=wide)
