"""One table over every run in a results directory.

Each (task, model, setting) row comes from the latest run that has it; a row
from a run that did not complete, or with errors, says so in ``status``.
The CSV and JSON forms are the machine-readable contract (docs/results.md).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

from evals.metrics import summarize
from evals.records import find_runs, iter_records

COLUMNS = ["task", "model", "setting", "metric", "value", "ci_low", "ci_high", "n", "samples",
           "errors", "effort", "thinking_budget", "max_tokens", "cost_per_problem", "status", "run"]


def build_rows(results_dir: Path, tasks: list[str] | None = None,
               models: list[str] | None = None) -> list[dict]:
    latest: dict[tuple, dict] = {}
    for log in find_runs(results_dir):
        meta = log.read_meta()
        for row in summarize(iter_records(log.samples_path)):
            row = asdict(row)
            if (tasks and row["task"] not in tasks) or (models and row["model"] not in models):
                continue
            status = meta.get("status", "unknown")
            if status == "completed" and row.get("errors"):
                status = "errors"
            row.update(status=status, run=log.dir.name)
            latest[(row["task"], row["model"], row["setting"], row["metric"])] = row
    return sorted(latest.values(), key=_order)


def _order(row: dict) -> tuple:
    metric = row["metric"]
    name, _, k = metric.partition("@")
    return (row["task"], row["metric"] != "accuracy", name, int(k) if k.isdigit() else 0,
            -(row["value"] or 0), row["model"], row["setting"])


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        import orjson
        return orjson.dumps([{c: r.get(c) for c in COLUMNS} for r in rows],
                            option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    shown = ["task", "model", "setting", "metric", "value", "95% CI", "n", "errors", "status"]

    def cells(r: dict) -> list[str]:
        ci = "" if r.get("ci_low") is None else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        return [r["task"], r["model"], r["setting"], r["metric"], f"{r['value']:.3f}", ci,
                str(r["n"]), str(r.get("errors") or 0), r["status"]]

    if fmt == "markdown":
        lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
        lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    from rich.table import Table
    table = Table(title="leaderboard")
    for col in shown:
        table.add_column(col)
    for r in rows:
        table.add_row(*cells(r))
    return table
