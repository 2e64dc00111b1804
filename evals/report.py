"""A self-contained HTML report over a results directory.

``build_report(results_dir, out)`` writes one HTML file: the leaderboard
table (one row per task x model x setting), per task a plot of score against
compute with one line per model through its settings and the Pareto front,
and per-category breakdowns where the records allow them (see
``evals.report_data``).  CSS is inline and plots are inline SVG, so the file
opens offline and holds no URL; no JavaScript.  docs/report.md defines every
number.

Standard library only (plus ``evals``), imported by the CLI on demand.
"""

from __future__ import annotations

import math
import re
import time
from html import escape
from pathlib import Path
from typing import Any, Sequence

from evals.leaderboard import cost_cell, share_cell, spend_tokens, steps_cell, tokens_cell
from evals.metrics import CostRow
from evals.report_agent import agent_plot, is_agent
from evals.report_data import Breakdown, Group, ReportData, collect
from evals.report_svg import PALETTE, Point, fmt_cost, fmt_tokens, heatmap, scatter

__all__ = ["build_report", "render_report", "X_AXES"]

X_AXES = ("tokens", "cost", "auto")
# The gold runner answers with the references at no cost: a check of the task, not a
# contender, and it would sit alone on every Pareto front.  Table only.
GOLD = "gold"

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 6px}.meta,.note{color:#666;font-size:12px}
table{border-collapse:collapse;margin:8px 0 16px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e4e4e4;padding:3px 6px;text-align:right;white-space:nowrap}
table.leaderboard{font-size:13px}
th{background:#f4f4f4;position:sticky;top:0;font-weight:600;white-space:normal;
vertical-align:bottom}
td.l,th.l{text-align:left}tr.task-start td{border-top:2px solid #999}
tr.errors td.err{color:#b00;font-weight:600}tr.incomplete{background:#fff6e0}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:11px;background:#eee}
.badge.bad{background:#f7d4d4;color:#800}.badge.warn{background:#fde7b0;color:#704}
.ci{color:#777;font-size:12px}svg text{font:11px system-ui,sans-serif;fill:#333}
svg .pt-label{font-size:10px;fill:#444}svg text.note{font-size:12px;font-weight:600}
svg .title{font-size:13px;font-weight:600}svg .grid{stroke:#eee}svg .cell text{fill:#111}
.plots{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
svg.plot{max-width:100%;height:auto}
.legend span{margin-right:14px;white-space:nowrap}.sw{display:inline-block;width:12px;
height:12px;border-radius:2px;vertical-align:-1px;margin-right:4px}
"""
CHART_CSS = _CSS  # the charts' styles, for a chart drawn outside the report (tasks/needle)



def build_report(results_dir: Path, out: Path, *, tasks: Sequence[str] | None = None,
                 models: Sequence[str] | None = None, x_axis: str = "tokens",
                 title: str | None = None, figures: Path | None = None) -> Path:
    """Write the HTML report of ``results_dir`` to ``out`` and return ``out``.

    ``tasks``/``models`` restrict it as ``evals leaderboard --task/--model`` do.
    ``x_axis`` of the score-vs-compute plots, per problem: ``tokens`` (one generation's
    mean completion tokens, k times that for an @k point), ``cost`` (the same in USD; a
    task where some cost is unknown falls back to tokens, and says so) or ``auto``
    (cost where every cost of the task is known, else tokens).  ``title`` defaults to
    the results directory's name. ``figures``: a directory to write every chart and
    heatmap to as PNG (evals.report_png).
    """
    if x_axis not in X_AXES:
        raise ValueError(f"x_axis must be one of {', '.join(X_AXES)}, got {x_axis!r}")
    data = collect(Path(results_dir), list(tasks) if tasks else None,
                   list(models) if models else None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    audits = _audits(Path(results_dir), data.runs, out)
    charts: list[tuple[str, str]] | None = [] if figures is not None else None
    html = render_report(data, x_axis=x_axis, audits=audits, charts=charts,
                         title=title or f"evals report: {Path(results_dir).resolve().name}")
    out.write_text(html, encoding="utf-8")
    if figures is not None:
        from evals.report_png import write_pngs

        write_pngs(charts, Path(figures), _CSS)
    return out


# Runs whose records are larger than this are not audited by the report (the JSON
# would have to be read); the report names the command instead.
AUDIT_MAX_BYTES = 64 << 20


def _audits(results_dir: Path, runs: Sequence[str], out: Path) -> list[tuple[str, dict, str]]:
    """``(run, counts by kind, file)`` per run: each run's audit written beside the
    report as ``REPORT.audit.RUN.csv`` (``evals audit RUN`` lists the same)."""
    from evals.audit import audit_run, counts, to_csv

    found = []
    for run in runs:
        path = results_dir / run / "samples.jsonl"
        if not path.exists() or path.stat().st_size > AUDIT_MAX_BYTES:
            found.append((run, {}, ""))
            continue
        items = audit_run(path, use_peer=False)
        name = f"{out.stem}.audit.{run}.csv"
        (out.parent / name).write_text(to_csv(items), encoding="utf-8")
        found.append((run, counts(items), name))
    return found


def _audit_section(audits: list[tuple[str, dict, str]]) -> str:
    rows = []
    for run, by_kind, name in audits:
        total = sum(by_kind.values())
        kinds = ", ".join(f"{escape(k.replace('_', ' '))} {n}" for k, n in by_kind.items() if n)
        link = (f"<a href=\"{escape(name)}\">{total} to look at</a>" if name
                else "not read here (large run)")
        rows.append(f"<tr><td>{escape(run)}</td><td>{link}</td><td>{kinds or '-'}</td>"
                    f"<td><code>evals audit {escape(run)}</code></td></tr>")
    return ("<h2 id=\"audit\">Verdicts to check</h2><p class=\"meta\">Completions where a "
            "grader may have read the answer differently from a careful reader: no answer, "
            "several answers, an answer only in the reasoning, undecided checks, grader "
            "failures (and, with <code>evals audit</code>, math answers math-verify judges "
            "differently).</p><table><tr><th>run</th><th>audit</th><th>kinds</th>"
            "<th>command</th></tr>" + "".join(rows) + "</table>")


def render_report(data: ReportData, *, x_axis: str = "tokens", title: str = "evals report",
                  audits: list[tuple[str, dict, str]] | None = None,
                  charts: list[tuple[str, str]] | None = None) -> str:
    """The report's HTML; ``charts``, when given, gets each chart and heatmap as
    ``(file stem, svg)``."""
    tasks = sorted({g.task for g in data.groups})
    models = sorted({g.model for g in data.groups})
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{escape(title)}</h1><p class=\"meta\">generated "
             f"{escape(time.strftime('%Y-%m-%d %H:%M:%S %z'))}; {len(data.groups)} rows from "
             f"{len(data.runs)} runs; {len(tasks)} tasks, {len(models)} models. Definitions: "
             f"docs/report.md in the evals repository.</p>"]
    if not data.groups:
        parts.append("<p>No results found.</p></body></html>")
        return "".join(parts)
    parts.append("<h2 id=\"leaderboard\">Leaderboard</h2>" + _table(data.groups))
    for task in tasks:
        groups = [g for g in data.groups if g.task == task]
        parts.append(f"<h2 id=\"task-{escape(task)}\">{escape(task)}</h2>")
        parts.append(_plot(task, [g for g in groups if g.model != GOLD], colors, x_axis,
                           gold_left_out=any(g.model == GOLD for g in groups), charts=charts))
        parts.append(agent_plot(task, [g for g in groups if g.model != GOLD], charts, _stem))
        for b in data.breakdowns:
            if b.task == task:
                parts.append(_tree_table(b, groups) if b.kind == "tree"
                             else _grids(b, groups, charts))
    if audits:
        parts.append(_audit_section(audits))
    parts.append("</body></html>")
    return "".join(parts)


# ------------------------------------------------------------------ formatting

def _num(v: float | None, fmt: str = ".3f") -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _ci(row: dict | None) -> str:
    if row is None or row.get("ci_low") is None:
        return ""
    return f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _latency(c: CostRow | None) -> str:
    if c is None or c.latency_mean is None:
        return ""
    return f"{c.latency_mean:.2f} / {c.latency_p90:.2f} s"


def _failures(row: dict) -> str:
    """The no-answer share, the timeout and parse-failure shares on hover (results.md)."""
    tip = (f"verifier timeout {share_cell(row.get('timeout_share')) or 'n/a'}, "
           f"parse failure {share_cell(row.get('parse_failure_share')) or 'n/a'}")
    return f"<td class=\"share\" title=\"{tip}\">{share_cell(row.get('no_answer_share'))}</td>"


def _at_k(row: dict | None) -> str:
    if row is None:
        return "<td></td>"
    return (f"<td title=\"95% CI {_ci(row)}, n={row['n']}\">{_num(row['value'])}"
            f" <span class=\"ci\">@{row['k']}</span></td>")


# ------------------------------------------------------------------ leaderboard

_HEAD = ["task", "model", "setting", "accuracy", "95% CI", "pass@K", "maj@K", "best@K",
         "problems", "errors", "no answer", "tokens", "$/problem", "latency mean / p90",
         "length-cut", "status"]


def _table(groups: list[Group]) -> str:
    agents = any(map(is_agent, groups))  # a steps column: an agent's mean steps per episode
    names = [*_HEAD[:11], "steps", *_HEAD[11:]] if agents else _HEAD
    head = "".join(f"<th class=\"{'l' if i < 3 or h == 'status' else ''}\">{h}</th>"
                   for i, h in enumerate(names))
    body = []
    last_task = None
    for g in groups:
        acc, c = g.accuracy, g.cost
        incomplete = g.status not in ("completed", "errors")
        cls = ["row"] + (["task-start"] if g.task != last_task else [])
        cls += (["errors"] if acc.get("errors") else []) + (["incomplete"] if incomplete else [])
        last_task = g.task
        badge = ("bad" if g.status == "failed" else "warn" if incomplete or acc.get("errors")
                 else "")
        tokens = tokens_cell(spend_tokens(acc))  # one definition: docs/results.md
        spend = ("" if acc.get("prompt_tokens") is None else
                 f"per problem and generation: prompt {acc['prompt_tokens']:,.0f}, completion "
                 f"{acc['completion_tokens']:,.0f}, reasoning {acc['reasoning_tokens']:,.0f}")
        body.append(
            f"<tr class=\"{' '.join(cls)}\" data-task=\"{escape(g.task)}\" "
            f"data-model=\"{escape(g.model)}\" data-setting=\"{escape(g.setting)}\" "
            f"data-status=\"{escape(g.status)}\"><td class=\"l\">{escape(g.task)}</td>"
            f"<td class=\"l\">{escape(g.model)}</td><td class=\"l\">{escape(g.setting)}</td>"
            f"<td><b>{_num(acc['value'])}</b></td><td class=\"ci\">{_ci(acc)}</td>"
            f"{_at_k(g.top('pass'))}{_at_k(g.top('maj'))}{_at_k(g.top('best'))}"
            f"<td>{acc['n']}</td><td class=\"err\">{acc.get('errors') or 0}</td>"
            f"{_failures(acc)}"
            f"{f'<td>{steps_cell(c.steps_mean if c else None)}</td>' if agents else ''}"
            f"<td title=\"{escape(spend)}\">{tokens}</td>"
            f"<td>{cost_cell(acc.get('cost_per_problem'))}</td><td>{_latency(c)}</td>"
            f"<td>{'' if c is None or c.length_share is None else f'{c.length_share:.1%}'}</td>"
            f"<td class=\"l\" title=\"run {escape(g.run)}\"><span class=\"badge {badge}\">"
            f"{escape(g.status)}</span></td></tr>")
    return (f"<table class=\"leaderboard\"><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table><p class=\"note\">Highlighted rows come "
            f"from runs that did not complete; a red error count means generations that "
            f"failed and were not scored. pass/maj/best are at the largest K (= samples per "
            f"problem). tokens and $/problem are what one generation spends per problem, as in "
            f"the accuracy row of evals leaderboard; an @K metric spends K times that.</p>")


# ------------------------------------------------------------------ plots

def _points(groups: list[Group], axis: str) -> list[Point]:
    """Accuracy at one generation's cost; kind@k at k times that (k >= 2)."""
    pts = []
    for g in groups:
        x1 = g.per_generation(axis)
        if x1 is None:
            continue
        for row in g.metrics.values():
            kind = row["metric"].partition("@")[0]
            k = row.get("k") or 1
            if (kind != "accuracy" and k < 2) or row["value"] is None \
                    or math.isnan(row["value"]):
                continue
            pts.append(Point(g.model, g.setting, kind, k, x1 * k, row["value"],
                             row.get("ci_low"), row.get("ci_high")))
    return pts


def _plot(task: str, groups: list[Group], colors: dict[str, str], x_axis: str, *,
          gold_left_out: bool = False, charts: list[tuple[str, str]] | None = None) -> str:
    axis, note = "tokens", "The gold runner is in the table only. " if gold_left_out else ""
    if x_axis in ("cost", "auto"):
        if all(g.per_generation("cost") is not None for g in groups):
            axis = "cost"
        elif x_axis == "cost":
            note += "Some costs are unknown (no price for a model): plotted against tokens. "
    label = ("USD per problem" if axis == "cost"
             else "mean completion tokens per problem")
    points = _points(groups, axis)
    if points and len({(p.model, p.setting) for p in points}) == len({p.model for p in points}) \
            and all(p.kind == "accuracy" for p in points):
        # One setting and one sample per model: one point each, nothing a chart adds.
        return (f"<p class=\"note\">{escape(note)}One setting with one sample per problem: "
                f"the leaderboard above has its figures (a chart needs two settings, or "
                f"several samples per problem for @k).</p>")
    svg = scatter(points, {m: c for m, c in colors.items()
                                          if any(g.model == m for g in groups)},
                  title=f"{task}: score vs compute", x_label=label,
                  fmt_x=fmt_cost if axis == "cost" else fmt_tokens)
    if not svg:
        return f"<p class=\"note\">{escape(note)}Nothing to plot (no token or cost figures).</p>"
    if charts is not None:
        charts.append((_stem(f"{task}-score-vs-{axis}"), svg))
    legend = "".join(f"<span><i class=\"sw\" style=\"background:{c}\"></i>{escape(m)}</span>"
                     for m, c in colors.items() if any(g.model == m for g in groups))
    return (f"<div class=\"plots\">{svg}</div><p class=\"legend\">{legend}</p>"
            f"<p class=\"note\">{escape(note)}Lines: accuracy (one sample) of each model "
            f"through its settings, with 95% intervals. &#9632; maj@k, &#9670; best@k, "
            f"&#9651; pass@k (an oracle's upper bound), each at k times one sample's "
            f"compute. Ringed points and the dashed line: the Pareto front of what can be "
            f"deployed (accuracy, maj@k, best@k).</p>")


# ------------------------------------------------------------------ breakdowns

def _names(b: Breakdown, default: tuple[str, ...]) -> tuple[str, ...]:
    """The declared labels of the breakdown's keys (its ``spec``), else ``default``."""
    labels = b.spec.labels if b.spec is not None else ()
    return tuple(labels) + default[len(labels):]


def _tree_table(b: Breakdown, groups: list[Group]) -> str:
    cols = [(g.model, g.setting) for g in groups]
    head = "".join(f"<th>{escape(m)}<br><span class=\"meta\">{escape(s)}</span></th>"
                   for m, s in cols)
    rows = ["<tr class=\"overall\"><td class=\"l\"><b>overall</b></td><td>"
            f"{max(g.accuracy['n'] for g in groups)}</td>" + "".join(
                f"<td>{_num(g.accuracy['value'])} <span class=\"ci\">{_ci(g.accuracy)}</span></td>"
                for g in groups) + "</tr>"]
    for label in sorted(b.cells):
        cells = b.cells[label]
        sub = " / " in label
        name = label.split(" / ", 1)[1] if sub else f"<b>{escape(label)}</b>"
        n = max(r.n for r in cells.values())
        tds = []
        for col in cols:
            r = cells.get(col)
            tds.append("<td></td>" if r is None or math.isnan(r.value) else
                       f"<td>{r.value:.3f} <span class=\"ci\">"
                       f"{'' if r.ci_low is None else f'[{r.ci_low:.3f}, {r.ci_high:.3f}]'}"
                       f"</span></td>")
        rows.append(f"<tr class=\"{'sub' if sub else 'domain'}\"><td class=\"l\">"
                    f"{'&nbsp;&nbsp;&nbsp;' + escape(name) if sub else name}</td><td>{n}</td>"
                    f"{''.join(tds)}</tr>")
    top, sub = _names(b, ("category", "sub-category"))
    return (f"<h3>{escape(b.task)} by {escape(top)}</h3><table class=\"breakdown\"><thead><tr>"
            f"<th class=\"l\">{escape(top)} / {escape(sub)}</th><th>problems</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _sort_key(v: object) -> tuple:
    try:
        return (0, float(v), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def _fmt_length(v: object) -> str:
    try:
        n = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    return f"{n / 1024:g}K" if n >= 1024 and n % 1024 == 0 else fmt_tokens(n)


def _fmt_depth(v: object, fractions: bool = False) -> str:
    """A depth as a percent, written alike at every depth: ``fractions`` when the task's
    depths are fractions of the context (0..1), else they are percents (needle's 0..100)."""
    if v is None:
        return "-"
    try:
        d = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    return f"{round(d * 100 if fractions else d, 1):g}%"


def _fractions(depths: set) -> bool:
    """Whether a set of depths is fractions (every one within 0..1) rather than percents."""
    try:
        return all(0.0 <= float(d) <= 1.0 for d in depths if d is not None)
    except (TypeError, ValueError):
        return False


def _stem(text: str) -> str:
    """A file name stem for a chart."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:120]


def _effective(groups: list[Group], model: str, setting: str) -> str:
    """The task's effective length for a model and setting (needle's summary row)."""
    for g in groups:
        if (g.model, g.setting) == (model, setting):
            row = g.metrics.get("effective_length")
            if row is not None:
                value = row.get("value")
                threshold = (g.metrics.get("effective_threshold") or {}).get("value")
                text = "none" if value is None else _fmt_length(value)
                return (f"effective length: {text}"
                        + (f" (threshold {threshold:.0%})" if threshold is not None else ""))
    return ""


def _grids(b: Breakdown, groups: list[Group] | None = None,
           charts: list[tuple[str, str]] | None = None) -> str:
    """A heatmap per model, setting and split value: the declared columns across, rows
    down, each written in its declared format (tokens: 4K; percent: 50%)."""
    col_name, row_name = _names(b, ("column", "row"))
    formats = tuple(b.spec.formats) if b.spec is not None else ()
    col_format, row_format = (formats + ("text", "text"))[:2]
    out = [f"<h3>{escape(b.task)}: score by {escape(col_name)} and {escape(row_name)}</h3>"
           "<div class=\"plots\">"]
    series: dict[tuple[str, str, str], dict[tuple[Any, Any], tuple[float, int]]] = {}
    cols_of: dict[str, set] = {}
    rows_of: dict[str, set] = {}
    for label, cells in b.cells.items():
        split, col, row_value = b.grid_keys[label]
        cols_of.setdefault(split, set()).add(col)
        rows_of.setdefault(split, set()).add(row_value)
        for (model, setting), row in cells.items():
            if row.n and not math.isnan(row.value):
                series.setdefault((model, setting, split), {})[(col, row_value)] = (
                    row.value, row.n)
    for (model, setting, split), cells in sorted(series.items()):
        fmt_col = _formatter(col_format, cols_of[split])
        fmt_row = _formatter(row_format, rows_of[split])
        grid = {(fmt_col(c), fmt_row(r)): value for (c, r), value in cells.items()}
        cols = [fmt_col(v) for v in sorted(cols_of[split], key=_sort_key)]
        rows = [fmt_row(v) for v in sorted(rows_of[split], key=_sort_key)]
        title = f"{model} | {setting}" + (f" | {split}" if split else "")
        svg = heatmap(grid, cols, rows, title=title, col_label=col_name,
                      row_label=row_name, note=_effective(groups or [], model, setting))
        out.append(svg)
        if charts is not None:
            charts.append((_stem(f"{b.task}-heatmap-{model}-{setting}-{split}"), svg))
    out.append("</div>")
    return "".join(out)


def _formatter(kind: str, values: set):
    """How a declared key's values read: ``tokens``, ``percent`` or as written."""
    if kind == "tokens":
        return _fmt_length
    if kind == "percent":
        fractions = _fractions(values)
        return lambda v: _fmt_depth(v, fractions)
    return lambda v: "all" if v is None else str(v)
