"""The ``evals`` commands that read runs: show, merge, audit, leaderboard, report, view,
export, compare and rescore. They register on the shared app (evals/cli_base.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from evals.cli_base import (
    EXIT_FAILED,
    AllK,
    Rescored,
    ResultsDir,
    TaskParams,
    TasksDirs,
    Wide,
    _summary_rows,
    _table_rows,
    app,
    check_results_dir,
    fail,
    open_run,
    parse_pairs,
    require_runs,
    resolve_setting,
)
from evals.runner import ConfigError
from evals.task import TaskError


@app.command()
def show(run_id: str, results_dir: ResultsDir = Path("results"),
         as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
         rescored: Rescored = False, wide: Wide = False, all_k: AllK = False,
         sample: Annotated[Optional[str], typer.Option(
             help="One sample: its records (every model, setting and generation) and, for "
                  "an agent, its trajectory.")] = None) -> None:
    """A run's configuration, status and metrics; or one sample of it (--sample)."""
    import orjson

    from evals.leaderboard import print_table
    from evals.progress import summary_table

    log, meta = open_run(results_dir, run_id)
    if sample is not None:
        _show_sample(log, sample, rescored, as_json)
        return
    try:
        rows = _summary_rows(log, rescored)
    except ValueError as e:
        fail(str(e), EXIT_FAILED)
    from evals.applied import render_flags, run_flags

    flags = run_flags([log.records_path(rescored)])
    if as_json:
        from dataclasses import asdict
        sys.stdout.write(orjson.dumps({"run": meta, "metrics": rows,
                                       "compute_flags": [asdict(f) for f in flags]},
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    from rich.console import Console

    out = Console(highlight=False)
    for line in run_overview(meta):
        out.print(line, markup=False)
    if rows:
        print_table(summary_table(_table_rows(rows, all_k), "metrics", wide), wide)
    if flags:  # settings that are not the computes they were asked to be (evals.applied)
        out.print(render_flags(flags), end="", markup=False, highlight=False)


def _endpoint(url: str) -> str:
    """An endpoint with any user:password@ and secrets masked."""
    from urllib.parse import urlsplit, urlunsplit

    from evals.redact import scrub

    parts = urlsplit(url)
    if parts.username or parts.password:
        parts = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2])
    return scrub(urlunsplit(parts))


def run_overview(meta: dict) -> list[str]:
    """What `evals show` prints above the table: status, why a run failed, and what
    decided the numbers (tasks, models, settings, -T, --limit, sampling, endpoint)."""
    config = meta.get("config") or {}
    lines = [f"{meta.get('run_id', '?')} {meta.get('status')}  started {meta.get('started')}"
             f"  ended {meta.get('ended')}"]
    if meta.get("error"):
        lines.append(f"reason: {meta['error']}")
    counts = meta.get("counts") or {}
    if counts:
        lines.append(f"generations {counts.get('done')}/{counts.get('generations')}, "
                     f"errors {counts.get('errors')}, cached {counts.get('cached')}")
    lines.append(f"tasks {', '.join(config.get('tasks') or [])}; "
                 f"models {', '.join(config.get('models') or [])}")
    lines.append(f"settings {', '.join(s['name'] for s in meta.get('settings') or [])}")
    params = config.get("task_params") or {}
    lines.append("task parameters " + (" ".join(f"-T {k}={v}" for k, v in params.items())
                                       or "(defaults)"))
    sampling = [f"limit {config.get('limit') if config.get('limit') is not None else 'all'}",
                f"samples {config.get('samples', 1)}"]
    sampling += [f"{name} {config[name]}" for name in ("max_tokens", "temperature", "seed")
                 if config.get(name) is not None]
    lines.append(", ".join(sampling))
    options = config.get("model_options") or {}
    urls = {k: v for k, v in options.items() if k.rpartition("@")[2] == "base_url"}
    if any(not m.startswith("gold") for m in config.get("models") or []):
        lines.append("endpoint " + (", ".join(
            _endpoint(v) + (f" ({k.rpartition('@')[0]})" if "@" in k else "")
            for k, v in urls.items()) or "default (OPENAI_BASE_URL, else OpenAI)"))
    others = {k: v for k, v in options.items() if k not in urls}
    if others:
        lines.append("model options " + " ".join(f"-M {k}={v}" for k, v in others.items()))
    return lines


def _show_sample(log, sample_id: str, rescored: bool, as_json: bool) -> None:
    """Every record of one sample (the last of each generation), with its trajectory."""
    import orjson

    from evals.records import iter_records

    latest: dict[tuple, dict] = {}
    for r in iter_records(log.records_path(rescored)):
        if str(r.get("sample_id")) == sample_id:
            latest[(r["task"], r["model"], r["setting"], r["gen"])] = r
    if not latest:
        fail(f"no sample {sample_id!r} in run {log.dir.name!r}")
    records = [latest[k] for k in sorted(latest)]
    for r in records:
        if r.get("trajectory"):
            path = log.dir / r["trajectory"]
            r["trajectory_steps"] = orjson.loads(path.read_bytes()) if path.exists() else None
    if as_json:
        sys.stdout.write(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    out = []
    for r in records:
        out.append(f"== {r['task']} | {r['model']} | {r['setting']} | gen {r['gen']}: "
                   f"{r.get('status')} score {r.get('score')} answer {r.get('answer')!r}")
        if r.get("explanation"):
            out.append(f"   {r['explanation']}")
        steps = (r.get("trajectory_steps") or {}).get("steps") or []
        for i, step in enumerate(steps, 1):
            action = step.get("action") or "(no command)"
            out.append(f"   step {i}: {action[:200]}")
            seen = (step.get("observation") or "").strip()
            if seen:
                out.append("      " + seen[:400].replace("\n", "\n      "))
        if not steps and r.get("completion"):
            out.append("   " + r["completion"][-600:].replace("\n", "\n   "))
    typer.echo("\n".join(out))


@app.command()
def merge(
    runs: Annotated[list[str], typer.Argument(help="The shard runs (--shard I/N) to join.")],
    run_id: Annotated[str, typer.Option(help="Name of the merged run.")],
    results_dir: ResultsDir = Path("results"),
    allow_partial: Annotated[bool, typer.Option(
        help="Merge although a shard is missing or unfinished (the run says so).")] = False,
) -> None:
    """Join the shard runs of one configuration into one run (leaderboard, report, show)."""
    from evals.shards import merge as merge_shards

    check_results_dir(results_dir)
    try:
        summary = merge_shards(results_dir, list(runs), run_id, allow_partial=allow_partial)
    except (ConfigError, ValueError) as e:
        fail(str(e))
    note = (f"; shards {', '.join(map(str, summary.missing))} missing" if summary.missing
            else "")
    typer.echo(f"{summary.runs} shards, {summary.records} records -> "
               f"{results_dir / run_id}{note}", err=True)


@app.command()
def audit(
    run_id: str,
    results_dir: ResultsDir = Path("results"),
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
    kind: Annotated[Optional[list[str]], typer.Option(
        help="Only these kinds: no_answer, several_answers, reasoning_only, undecided, "
             "grader_error, peer_disagrees.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write to a file.")] = None,
    peer: Annotated[bool, typer.Option(help="Judge math answers again with math-verify, "
                                            "when it is installed.")] = True,
    rescored: Rescored = False,
) -> None:
    """The verdicts a person should look at: no answer, several answers, an answer only
    in the reasoning, undecided checks, grader failures, math-verify disagreeing."""
    from evals.audit import KINDS, audit_run, counts, to_csv

    if format not in ("table", "csv", "json"):
        fail(f"--format {format!r}: expected table, csv or json")
    unknown = [k for k in kind or [] if k not in KINDS]
    if unknown:
        fail(f"--kind {unknown[0]!r}: expected one of {', '.join(KINDS)}")
    log, _ = open_run(results_dir, run_id)
    try:
        items = audit_run(log.records_path(rescored), kind or KINDS, peer)
    except ValueError as e:
        fail(str(e), EXIT_FAILED)
    if format == "csv":
        text = to_csv(items)
    elif format == "json":
        from dataclasses import asdict

        import orjson
        text = orjson.dumps({"run": run_id, "counts": counts(items),
                             "items": [asdict(i) for i in items]},
                            option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        text = None
    if output:
        output.write_text(text if text is not None else to_csv(items), encoding="utf-8")
        typer.echo(f"{len(items)} verdicts to look at -> {output}", err=True)
        return
    if text is not None:
        sys.stdout.write(text)
        return
    from rich.console import Console
    from rich.table import Table

    out = Console()
    summary = ", ".join(f"{k} {n}" for k, n in counts(items).items() if n) or "none"
    out.print(f"{run_id}: {len(items)} verdicts to look at ({summary})", highlight=False)
    table = Table(show_lines=True)
    for column in ("kind", "sample", "setting", "verdict", "context"):
        table.add_column(column, overflow="fold")
    for item in items:
        verdict = f"{item.status} {item.answer!s} (target {item.target!s}); {item.detail}"
        table.add_row(item.kind, f"{item.task}/{item.sample_id}#{item.gen}",
                      f"{item.model} {item.setting}", verdict[:300], item.context)
    if items:
        out.print(table)


@app.command()
def leaderboard(
    results_dir: ResultsDir = Path("results"),
    format: Annotated[str, typer.Option("--format", "-f", help="table, markdown, csv, json or html (needs -o)")] = "table",
    task: Annotated[Optional[list[str]], typer.Option(help="Only these tasks.")] = None,
    model: Annotated[Optional[list[str]], typer.Option(help="Only these models.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write to a file.")] = None,
    rescored: Rescored = False,
    wide: Wide = False,
    all_k: AllK = False,
) -> None:
    """One table over every run in the results directory."""
    from evals.leaderboard import build_rows, print_table, render

    require_runs(results_dir)
    if format == "html":
        if output is None:
            fail("--format html needs -o FILE")
        return report(results_dir, output, task, model)
    if format not in ("table", "markdown", "csv", "json"):
        fail(f"--format {format!r}: expected table, markdown, csv, json or html")
    try:
        rows = build_rows(results_dir, tasks=task, models=model, rescored=rescored)
    except ValueError as e:
        fail(str(e), EXIT_FAILED)
    if format in ("table", "markdown"):  # csv and json keep every row
        rows = _table_rows(rows, all_k)
    text = render(rows, format, wide)
    if output:  # a file gets Markdown where the terminal gets a rich table
        output.write_text(text if isinstance(text, str) else render(rows, "markdown"))
    elif format == "table":
        from rich.console import Console

        from evals.applied import render_flags, run_flags
        from evals.records import find_runs
        print_table(text, wide)
        flags = run_flags((log.records_path(rescored) for log in find_runs(results_dir)),
                          task, model)
        Console().print(render_flags(flags), end="", markup=False, highlight=False)
    else:
        sys.stdout.write(text)


@app.command()
def report(
    results_dir: ResultsDir = Path("results"),
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("report.html"),
    task: Annotated[Optional[list[str]], typer.Option(help="Only these tasks.")] = None,
    model: Annotated[Optional[list[str]], typer.Option(help="Only these models.")] = None,
    x_axis: Annotated[str, typer.Option(help="tokens, cost, or auto (cost where every price is known)")] = "tokens",
    figures: Annotated[Optional[Path], typer.Option(help="Also write every chart and heatmap to this directory as PNG (needs Chromium).")] = None,
) -> None:
    """A self-contained HTML report: leaderboard, accuracy vs compute with the Pareto front."""
    from evals.report import build_report

    if x_axis not in ("tokens", "cost", "auto"):
        fail(f"--x-axis {x_axis!r}: expected tokens, cost or auto")
    require_runs(results_dir)
    try:
        path = build_report(results_dir, output, tasks=task, models=model, x_axis=x_axis,
                            figures=figures)
    except ValueError as e:
        fail(str(e), EXIT_FAILED)
    typer.echo(f"report -> {path}")
    if figures is not None:
        typer.echo(f"figures -> {figures}/ ({len(list(figures.glob('*.png')))} PNG files)")


@app.command()
def view(
    run_ids: Annotated[Optional[list[str]], typer.Argument(help="Runs to show (default: every run).")] = None,
    results_dir: ResultsDir = Path("results"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: a free one).")] = 0,
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="Open the page in a browser.")] = True,
) -> None:
    """Browse runs, samples and verdicts in a local web page (docs/view.md)."""
    from evals.view.server import serve

    require_runs(results_dir)
    try:
        serve(results_dir, run_ids or None, port=port, open_browser=browser,
              announce=lambda url: typer.echo(f"evals view: {url} (Ctrl-C to stop)"))
    except ValueError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot serve on 127.0.0.1:{port}: {e}", EXIT_FAILED)


@app.command()
def export(
    run_id: str,
    format: Annotated[str, typer.Option("--format", "-f", help="parquet, csv or jsonl")] = "parquet",
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="File to write (default: RUN_ID.FORMAT).")] = None,
    results_dir: ResultsDir = Path("results"),
    rescored: Rescored = False,
) -> None:
    """One row per generation, settings and score metadata as columns (docs/results.md)."""
    from evals.export import FORMATS
    from evals.export import export as write

    if format not in FORMATS:
        fail(f"--format {format!r}: expected {', '.join(FORMATS)}")
    log, _ = open_run(results_dir, run_id)
    out = output or Path(f"{run_id}.{format}")
    try:
        count = write(log.records_path(rescored), out, format)
    except ValueError as e:
        fail(str(e), EXIT_FAILED)
    typer.echo(f"{count} rows -> {out}")


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="Run id of side A.")],
    run_b: Annotated[Optional[str], typer.Argument(help="Run id of side B (default: A).")] = None,
    setting_a: Annotated[Optional[str], typer.Option(help="Only this setting on side A.")] = None,
    setting_b: Annotated[Optional[str], typer.Option(help="Compare against this setting on side B.")] = None,
    model_a: Annotated[Optional[str], typer.Option(help="Only this model on side A.")] = None,
    model_b: Annotated[Optional[str], typer.Option(help="Compare against this model on side B.")] = None,
    task: Annotated[Optional[list[str]], typer.Option(help="Only these tasks.")] = None,
    results_dir: ResultsDir = Path("results"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Paired difference B - A on shared problems, with its 95% interval and p-value.

    Two runs: `evals compare RUN_A RUN_B` pairs equal task, model and setting.
    Within a run: `evals compare RUN --setting-a effort=low --setting-b effort=high`.
    """
    import orjson

    from evals.compare import Side
    from evals.compare import compare as paired

    logs = []
    for run_id in (run_a, run_b or run_a):
        logs.append(open_run(results_dir, run_id)[0])
    if run_b is None and not (setting_b or model_b):
        fail("within one run, name what to compare: --setting-b or --model-b")
    names = [[s["name"] for s in log.read_meta().get("settings", [])] for log in logs]
    setting_a = resolve_setting(setting_a, names[0], "--setting-a")
    setting_b = resolve_setting(setting_b, names[1], "--setting-b")
    try:
        rows = paired(Side(logs[0].samples_path, run_a, setting_a, model_a),
                      Side(logs[1].samples_path, run_b or run_a, setting_b, model_b), task)
    except ValueError as e:
        fail(str(e), EXIT_FAILED)
    if not rows:
        settings = sorted({s["name"] for log in logs for s in log.read_meta().get("settings", [])})
        models = sorted({m for log in logs for m in log.read_meta()["config"]["models"]})
        fail("nothing to compare: no task, model and setting with shared scored problems "
             f"(settings here: {', '.join(settings)}; models: {', '.join(models)})", EXIT_FAILED)
    if as_json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="B - A, paired by problem")
    for col in ("task", "A", "B", "n", "A mean", "B mean", "diff", "95% CI", "p"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["task"], r["a"], r["b"], str(r["n"]), f"{r['mean_a']:.3f}",
                      f"{r['mean_b']:.3f}", f"{r['diff']:+.3f}",
                      f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]", f"{r['p_value']:.3g}")
    Console().print(table)


@app.command()
def rescore(run_id: str, results_dir: ResultsDir = Path("results"), tasks_dir: TasksDirs = None,
            task_param: TaskParams = None, wide: Wide = False, all_k: AllK = False) -> None:
    """Score a run's stored completions again with the current scorers (no model calls).

    Writes RUN/samples.rescored.jsonl beside the original records; read it with
    `evals show RUN --rescored` or `evals leaderboard --rescored`. `-T` overrides the
    run's task parameters (`-T timeout=60` settles math checks that timed out).
    """
    from evals.leaderboard import print_table
    from evals.progress import console, summary_table
    from evals.rescore import rescore as run_rescore

    log, _ = open_run(results_dir, run_id)
    try:
        summary = run_rescore(log, tasks_dir, task_params=parse_pairs(task_param, "-T"))
    except (TaskError, ConfigError, ValueError) as e:
        fail(str(e), EXIT_FAILED)
    before = {(r["task"], r["model"], r["setting"], r["metric"]): r for r in _summary_rows(log)}
    after = _summary_rows(log, rescored=True)
    for row in after:
        old = before.get((row["task"], row["model"], row["setting"], row["metric"]))
        row["metric"] += "" if old is None else f" (was {old['value']:.3f})"
    print_table(summary_table(_table_rows(after, all_k), f"run {run_id}, rescored", wide), wide)
    console.print(f"{summary.rescored} generations rescored, {summary.changed} changed, "
                  f"{summary.skipped} skipped -> {log.dir / 'samples.rescored.jsonl'}")
