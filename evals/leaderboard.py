"""One table over every run in a results directory.

Each (task, model, setting) row comes from the latest run that has it; a row
from a run that did not complete, or with errors, says so in ``status``.
The CSV and JSON forms are the machine-readable contract (docs/results.md).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evals.metrics import AGENT_AXES, FAILURE_SHARES
from evals.metrics_columnar import aggregate
from evals.records import RunLog, find_runs, iter_records
from evals.task import TaskError

COLUMNS = ["task", "model", "setting", "metric", "value", "ci_low", "ci_high", "n", "samples",
           "errors", "effort", "thinking_budget", "max_tokens", "max_steps", "agent_max_tokens",
           "agent_max_cost", "steps_mean", "tokens", "prompt_tokens",
           "completion_tokens", "reasoning_tokens", "cost_per_problem", "cost_per_correct",
           "latency_mean", "latency_p90", "length_share", "no_answer_share", "timeout_share",
           "parse_failure_share", "budget_use", "over_budget_share", "status", "run"]
# Per-problem means that a k-sample metric spends k times (cost_per_problem comes from
# the metric row, already multiplied by k).
_SPEND = ("prompt_tokens", "completion_tokens", "reasoning_tokens")
_PER_SETTING = ("cost_per_correct", "latency_mean", "latency_p90", "length_share", "budget_use",
                "over_budget_share", "steps_mean", *FAILURE_SHARES)


def build_rows(results_dir: Path, tasks: list[str] | None = None,
               models: list[str] | None = None, rescored: bool = False,
               aggregates: dict[str, Any] | None = None) -> list[dict]:
    """``aggregates``: if given, filled with each run's aggregate (by run directory name)
    for a caller that reads more from it (the report's cost rows)."""
    latest: dict[tuple, dict] = {}
    for log in find_runs(results_dir):
        meta = log.read_meta()
        aggregator = aggregate(log.records_path(rescored))
        if aggregates is not None:
            aggregates[log.dir.name] = aggregator
        for row in metric_dicts(aggregator):
            if (tasks and row["task"] not in tasks) or (models and row["model"] not in models):
                continue
            status = meta.get("status", "unknown")
            if status == "completed" and row.get("errors"):
                status = "errors"
            row.update(status=status, run=log.dir.name)
            latest[_key(row, meta)] = row
        for row in task_summary_rows(log, rescored):
            if (tasks and row["task"] not in tasks) or (models and row["model"] not in models):
                continue
            row.update(status=meta.get("status", "unknown"), run=log.dir.name)
            latest[_key(row, meta)] = row
    return sort_rows(list(latest.values()))


def metric_dicts(aggregator) -> list[dict]:
    """An aggregate's metric rows as dicts, each with its setting's spend and shares
    (COLUMNS; the definitions are in docs/results.md)."""
    costs = aggregator.cost_rows()
    rows = []
    for metric_row in aggregator.metric_rows():
        row = asdict(metric_row)
        cost = costs.get((row["task"], row["model"], row["setting"]))
        k = row.get("k") or 1
        # Per-sample token means over N samples per problem, times k for maj@k/best@k.
        samples = max(1, row.get("samples") or 1)
        for name in _SPEND:
            value = getattr(cost, name, None)
            row[name] = None if value is None else value / samples * k
        row["tokens"] = spend_tokens(row)
        for name in _PER_SETTING:
            row[name] = getattr(cost, name, None)
        rows.append(row)
    return rows


def _key(row: dict, meta: dict) -> tuple:
    """A later run replaces a row only when it measured the same thing: a smoke run with
    --limit 2, other task parameters or another temperature gets a row of its own."""
    config = meta.get("config") or {}
    scoped = {k.rpartition(".")[2]: v for k, v in (config.get("task_params") or {}).items()
              if "." not in k or k.rpartition(".")[0] == row["task"]}
    options = config.get("model_options") or {}
    variant = repr((sorted(scoped.items()), config.get("limit"), config.get("temperature"),
                    config.get("seed"), options.get("base_url")))
    return (row["task"], row["model"], row["setting"], variant, row["metric"])


def task_summary_rows(log: RunLog, rescored: bool = False) -> list[dict]:
    """Rows from tasks' own ``Task.summary`` (e.g. needle's effective context length).

    The task is built again with the run's parameters (building is cheap: data loads
    only when a run asks for samples); a task that no longer builds is left out.
    """
    from evals.plugins import load_tasks
    from evals.config import RunConfig

    stored = log.read_meta().get("config")
    if not stored:  # records written by another tool: nothing to rebuild tasks from
        return []
    try:
        config = RunConfig.from_json(stored, str(log.meta_path))
    except (ValueError, TypeError):
        return []  # an unreadable configuration: the metric rows still show
    summaries = {}
    try:
        registry = load_tasks(config.tasks_dirs)
    except TaskError:
        return []
    for name in config.tasks:
        try:
            built = registry[name].build(config.params_for(name)) if name in registry else None
        except TaskError:
            continue
        if built is not None and built.summary is not None:
            summaries[name] = built.summary
    if not summaries:
        return []
    groups: dict[tuple, dict[tuple, dict]] = {}
    for r in iter_records(log.records_path(rescored)):
        if r["task"] in summaries:  # only what summaries read: completions can be long
            slim = {k: r.get(k) for k in ("sample_id", "gen", "status", "score", "metadata",
                                          "settings")}
            groups.setdefault((r["task"], r["model"], r["setting"]), {})[
                (r["sample_id"], r["gen"])] = slim
    rows = []
    for (task, model, setting), latest in sorted(groups.items()):
        records = list(latest.values())
        settings = records[0].get("settings") or {}
        for metric, value in summaries[task](records).items():
            rows.append({"task": task, "model": model, "setting": setting, "metric": metric,
                         "value": value, "ci_low": None, "ci_high": None,
                         "n": len({r["sample_id"] for r in records}),
                         "samples": settings.get("samples"),
                         "errors": sum(r.get("score") is None for r in records),
                         "effort": settings.get("effort"),
                         "thinking_budget": settings.get("thinking_budget"),
                         "max_tokens": settings.get("max_tokens"),
                         **{name: settings.get(name) for name in AGENT_AXES}})
    return rows


METRIC_ORDER = ("accuracy", "pass", "maj", "best")  # then a task's own figures, by name


def metric_order(metric: str) -> tuple:
    """accuracy, pass@k, maj@k, best@k (k ascending), then other metrics by name."""
    name, _, k = metric.partition("@")
    family = METRIC_ORDER.index(name) if name in METRIC_ORDER else len(METRIC_ORDER)
    return (family, name, int(k) if k.isdigit() else 0)


def compute_order(row: dict) -> tuple:
    """Settings from least to most compute: effort on its scale, then thinking budget,
    then max tokens, then an agent's step, token and cost limits, then samples per
    problem (a setting without a field comes first; no agent limit last: unlimited)."""
    from evals.config import effort_rank

    def num(value, missing: float = -1) -> float:
        return missing if value is None else float(value)

    return (effort_rank(row.get("effort")), num(row.get("thinking_budget")),
            num(row.get("max_tokens")),
            *(num(row.get(name), math.inf) for name in AGENT_AXES),
            num(row.get("samples")), row["setting"])


def sort_rows(rows: list[dict]) -> list[dict]:
    """Task by task; within a task the model with the best accuracy first; a model's
    settings by compute; a setting's metrics in METRIC_ORDER."""
    best: dict[tuple, float] = {}
    for r in rows:
        if r["metric"] == "accuracy" and isinstance(r.get("value"), (int, float)) \
                and r["value"] == r["value"]:
            key = (r["task"], r["model"])
            best[key] = max(best.get(key, -math.inf), r["value"])
    return sorted(rows, key=lambda r: (r["task"], -best.get((r["task"], r["model"]), -math.inf),
                                       r["model"], compute_order(r), metric_order(r["metric"])))


def informative(rows: list[dict]) -> list[dict]:
    """The rows that add information: pass@1, maj@1 and best@1 repeat accuracy, and of
    the k values in between only the largest (k = samples) is kept; --all-k shows all."""
    def keep(r: dict) -> bool:
        name, _, k = r["metric"].partition("@")
        if name not in METRIC_ORDER[1:] or not k.isdigit():
            return True
        return int(k) > 1 and int(k) == (r.get("samples") or 0)

    return [r for r in rows if keep(r)]


def spend_tokens(row: dict) -> float | None:
    """``tokens`` (docs/results.md): prompt plus completion tokens (reasoning is part of
    the completion) per problem that the row's metric spends: one generation's mean
    for accuracy, K generations' for an @K metric. The basis of ``cost_per_problem``."""
    if row.get("prompt_tokens") is None and row.get("completion_tokens") is None:
        return None
    return (row.get("prompt_tokens") or 0.0) + (row.get("completion_tokens") or 0.0)


def tokens_cell(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def cost_cell(value: float | None) -> str:
    """``$/problem``: ``cost_per_problem`` as every table writes it."""
    return "" if value is None else f"${value:.3g}"


def format_value(value) -> str:
    return "" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def value_ci(r: dict) -> str:
    """The value with its 95% interval written compactly: ``0.744 ±0.052`` (half the
    interval's width; the exact bounds are in --wide tables, the csv and the json)."""
    value = format_value(r.get("value"))
    if r.get("ci_low") is None or r.get("ci_high") is None:
        return value
    return f"{value} ±{(r['ci_high'] - r['ci_low']) / 2:.3f}"


def ci_bounds(r: dict) -> str:
    return "" if r.get("ci_low") is None else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def share_cell(value: float | None) -> str:
    """A share as a compact percentage: ``12%``, ``0.4%``, ``0%``."""
    if value is None:
        return ""
    pct = 100 * value
    return f"{pct:.0f}%" if pct == 0 or pct >= 9.95 else f"{pct:.1f}%"


# The failure shares (docs/results.md) as table columns: "no ans" always (the share with
# no extractable answer); "timeout" and "parse" where some row has one.
SHARE_COLUMNS = {"no ans": "no_answer_share", "timeout": "timeout_share",
                 "parse": "parse_failure_share"}


def share_cells(r: dict) -> list[str]:
    return [share_cell(r.get(name)) for name in SHARE_COLUMNS.values()]


# Columns a narrow terminal loses first, in this order; the others always show.
DROP_ORDER = ("95% CI", "latency", "status", "$/problem", "tokens", "parse", "timeout")
_RIGHT = {"value", "n", "errors", "steps", "tokens", "$/problem", "latency", *SHARE_COLUMNS}
# left out where every row's cell is empty (or a 0% share): steps where no run is an agent's
_OPTIONAL = ("timeout", "parse", "steps")


def steps_cell(value: float | None) -> str:
    """``steps``: an agent's mean steps per episode (``steps_mean``)."""
    return "" if value is None else f"{value:.1f}"


def fitted_table(title: str, columns: list[str], rows: list[list[str]], *, wide: bool = False,
                 width: int | None = None):
    """A rich table that reads at ``width`` columns (the terminal's by default): a column
    whose cells are all equal moves into the title, then DROP_ORDER's columns go one by
    one until the rest fit, and what still does not fit wraps, never cut with an ellipsis.
    ``wide``: every column, at whatever width it takes."""
    from rich.console import Console
    from rich.table import Table

    width = width or Console().width
    keep = list(range(len(columns)))
    notes, hidden = [], []
    for i, name in enumerate(columns):
        values = {row[i] for row in rows}
        if name in _OPTIONAL and values <= {"", "0%"}:
            keep.remove(i)
        elif not wide and name in ("task", "model") and len(values) == 1:
            notes.append(f"{name} {values.pop()}")
            keep.remove(i)
        elif not wide and name == "setting":
            common = _common_parts(values)
            if common:
                notes.append(",".join(common))
                rows = [[*row[:i], ",".join(p for p in row[i].split(",") if p not in common),
                         *row[i + 1:]] for row in rows]
    if not wide:

        def needed() -> int:  # rich's default box: "│ " + " │ ".join(cells) + " │"
            return sum(max([len(columns[i])] + [len(r[i]) for r in rows]) + 3
                       for i in keep) + 1

        for name in DROP_ORDER:
            if needed() <= width:
                break
            if name in columns and columns.index(name) in keep:
                keep.remove(columns.index(name))
                hidden.append(name)
    caption = f"hidden: {', '.join(hidden)} (--wide shows them)" if hidden else None
    table = Table(title=", ".join([title, *notes]), caption=caption, caption_justify="left")
    for i in keep:
        table.add_column(columns[i], justify="right" if columns[i] in _RIGHT else "left",
                         overflow="fold", no_wrap=wide)
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


def _common_parts(settings: set[str]) -> list[str]:
    """The fields (``n=4``) that every setting name shares, where taking them out leaves
    each name something of its own: ``effort=low,n=4`` and ``effort=high,n=4`` -> n=4."""
    if len(settings) < 2:
        return []
    split = [s.split(",") for s in settings]
    common = [p for p in split[0] if all(p in parts for parts in split[1:])]
    return common if all(set(parts) - set(common) for parts in split) else []


def print_table(table, wide: bool = False) -> None:
    """Print to stdout; ``wide`` lets the table be as wide as it needs."""
    from rich.console import Console

    console = Console()
    if wide:
        natural = Console(width=10**4).measure(table).maximum
        console = Console(width=max(console.width, natural))
    console.print(table)


def render(rows: list[dict], fmt: str, wide: bool = False):
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
    shown = ["task", "model", "setting", "metric", "value", "95% CI", "n", "errors",
             *SHARE_COLUMNS, "steps", "tokens", "$/problem", "latency", "status"]

    def cells(r: dict) -> list[str]:
        latency = "" if r.get("latency_mean") is None else f"{r['latency_mean']:.2f}s"
        return [r["task"], r["model"], r["setting"], r["metric"], value_ci(r), ci_bounds(r),
                str(r["n"]), str(r.get("errors") or 0), *share_cells(r),
                steps_cell(r.get("steps_mean")), tokens_cell(spend_tokens(r)),
                cost_cell(r.get("cost_per_problem")), latency,
                r["status"]]

    if fmt == "markdown":
        lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
        lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    return fitted_table("leaderboard", shown, [cells(r) for r in rows], wide=wide)
