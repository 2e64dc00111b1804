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

from evals.metrics import Aggregator
from evals.records import find_runs, iter_records

COLUMNS = ["task", "model", "setting", "metric", "value", "ci_low", "ci_high", "n", "samples",
           "errors", "effort", "thinking_budget", "max_tokens", "prompt_tokens",
           "completion_tokens", "reasoning_tokens", "cost_per_problem", "cost_per_correct",
           "latency_mean", "latency_p90", "length_share", "budget_use", "over_budget_share",
           "status", "run"]
# Per-problem means that a k-sample metric spends k times (cost_per_problem comes from
# the metric row, already multiplied by k).
_SPEND = ("prompt_tokens", "completion_tokens", "reasoning_tokens")
_PER_SETTING = ("cost_per_correct", "latency_mean", "latency_p90", "length_share", "budget_use",
                "over_budget_share")


def build_rows(results_dir: Path, tasks: list[str] | None = None,
               models: list[str] | None = None, rescored: bool = False) -> list[dict]:
    latest: dict[tuple, dict] = {}
    for log in find_runs(results_dir):
        meta = log.read_meta()
        aggregator = Aggregator().update(iter_records(log.records_path(rescored)))
        costs = aggregator.cost_rows()
        for metric_row in aggregator.metric_rows():
            row = asdict(metric_row)
            cost = costs.get((row["task"], row["model"], row["setting"]))
            k = row.get("k") or 1
            # Per-sample token means over N samples per problem, times k for maj@k/best@k.
            samples = max(1, row.get("samples") or 1)
            for name in _SPEND:
                value = getattr(cost, name, None)
                row[name] = None if value is None else value / samples * k
            for name in _PER_SETTING:
                row[name] = getattr(cost, name, None)
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
    shown = ["task", "model", "setting", "metric", "value", "95% CI", "n", "errors", "tokens",
             "$/problem", "latency", "status"]

    def cells(r: dict) -> list[str]:
        ci = "" if r.get("ci_low") is None else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        tokens = (r.get("prompt_tokens") or 0) + (r.get("completion_tokens") or 0)
        cost = "" if r.get("cost_per_problem") is None else f"{r['cost_per_problem']:.5f}"
        latency = "" if r.get("latency_mean") is None else f"{r['latency_mean']:.2f}s"
        return [r["task"], r["model"], r["setting"], r["metric"], f"{r['value']:.3f}", ci,
                str(r["n"]), str(r.get("errors") or 0), f"{tokens:,.0f}", cost, latency,
                r["status"]]

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
