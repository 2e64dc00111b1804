"""The ``evals`` command. Each command parses arguments and calls the core: running
here (list, run, resume, validate), reading runs in evals/cli_results.py, and what
they share (the app, options, exit codes) in evals/cli_base.py."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Optional

import typer

from evals.cli_base import (
    EXIT_ERRORS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_PENDING,
    EXIT_SPEND_CAP,
    AllK,
    BatchPoll,
    MaxCost,
    MaxErrorShare,
    ResultsDir,
    TaskParams,
    TasksDirs,
    Wait,
    Wide,
    _summary_rows,
    _table_rows,
    app,
    check_results_dir,
    fail,
    hub_guard,
    open_run,
    parse_pairs,
    parse_shard_option,
    task_failure,
)
from evals.config import STANDARD_EFFORTS, declared_efforts
from evals.runner import ConfigError
from evals.task import TaskError

DEFAULT_WORD = "default"  # in a grid: a setting that sends no effort or budget


def parse_efforts(value: str | None, models: list[str]) -> list[str | None]:
    """``--effort``: levels of the backend's scale, case-insensitive, comma-separated."""
    if value is None:
        return [None]
    allowed = declared_efforts(models)
    valid = f"valid values: {', '.join(allowed)}, {DEFAULT_WORD} (no effort sent)"
    items = [v.strip().lower() for v in value.split(",")]
    for item in items:
        if item != DEFAULT_WORD and item not in allowed:
            fail(f"--effort {value!r}: {item!r} is not an effort level; {valid}"
                 if item else f"--effort {value!r}: an empty level; {valid}")
    return [None if v == DEFAULT_WORD else v for v in items]


def check_models(specs: list[str]) -> None:
    """A spec without a known backend: one line, with ``openai/NAME`` suggested for a
    bare model name (``-m gpt-4o``)."""
    from evals.runner import runner_families

    families = runner_families()
    for spec in specs:
        family, slash, name = spec.partition("/")
        if family in families:
            continue
        hint = f"; did you mean openai/{spec}?" if not slash else ""
        fail(f"unknown model {spec!r}: no backend {family!r} (known: "
             f"{', '.join(sorted(families))}; a spec is BACKEND/NAME){hint}")


def parse_budgets(value: str | None) -> list[int | None]:
    """``--thinking-budget``: token counts >= 0, or none/default for no budget."""
    if value is None:
        return [None]
    out: list[int | None] = []
    for item in (v.strip().lower() for v in value.split(",")):
        if item in ("none", DEFAULT_WORD):
            out.append(None)
        elif item.isdigit():
            out.append(int(item))
        else:
            fail(f"--thinking-budget {value!r}: {item!r} is not a budget; valid values: "
                 f"token counts >= 0, or none/{DEFAULT_WORD} (no budget sent)")
    return out


def _whole(item: str) -> int | None:
    return int(item) if item.isdigit() and int(item) >= 1 else None


def _usd(item: str) -> float | None:
    try:
        usd = float(item)
    except ValueError:
        return None
    return usd if 0 < usd < float("inf") else None


def parse_limits(value: str | None, option: str, parse, what: str,
                 unlimited: bool = False) -> list:
    """An agent axis (``--max-steps``, ``--agent-max-tokens``, ``--agent-max-cost``):
    comma-separated limits, each a setting; ``none`` (where ``unlimited``) for no limit."""
    if value is None:
        return [None]
    out = []
    for item in (v.strip().lower() for v in value.split(",")):
        if unlimited and item == "none":
            out.append(None)
        elif (limit := parse(item)) is not None:
            out.append(limit)
        else:
            fail(f"{option} {value!r}: {item!r} is not {what}"
                 + (", or none (no limit)" if unlimited else ""))
    return out


@app.command("list")
def list_tasks(
    tasks_dir: TasksDirs = None,
    kind: Annotated[str, typer.Option(
        "--kind", help="What to list: task, runner, ranker, command, program-runner, "
                       "log-parser, image-builder, or 'kind' for every kind.")] = "task",
) -> None:
    """Every registered task, its description and its parameters with defaults."""
    from rich.console import Console
    from rich.table import Table

    from evals.plugins import load_tasks
    from evals.registry import KINDS

    try:
        registry = load_tasks(tasks_dir)  # tasks also register the kinds they declare
        plugins = KINDS if kind == "kind" else KINDS.get(kind)
    except (TaskError, LookupError) as e:
        fail(str(e))
    if kind != "task":
        table = Table(show_lines=False)
        for col in (kind, "what", "source"):
            table.add_column(col, overflow="fold")
        for name, entry in sorted(plugins.entries().items()):
            if plugins is KINDS:
                plugins.get(name)  # a kind is a registry: cheap to import, and says more
            table.add_row(name, plugins.describe(name), entry.source)
        Console().print(table)
        return
    table = Table(show_lines=False)
    for col in ("task", "description", "parameters", "source"):
        table.add_column(col, overflow="fold")
    for name in sorted(registry):
        spec = registry[name]
        params = ", ".join(p.name + ("" if p.required else f"={p.default!r}") for p in spec.params)
        table.add_row(name, spec.description, params, spec.source)
    Console().print(table)


@app.command()
def run(
    tasks: Annotated[list[str], typer.Argument(help="Task names (see `evals list`).")],
    model: Annotated[list[str], typer.Option("--model", "-m", help="Model spec, e.g. openai/gpt-4o, gold (repeatable).")],
    task_param: TaskParams = None,
    model_option: Annotated[Optional[list[str]], typer.Option(
        "-M", "--model-option", help="Backend option key=value (all models) or SPEC@key=value (one).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="First N samples of each task.")] = None,
    samples: Annotated[int, typer.Option(help="Generations per problem.")] = 1,
    effort: Annotated[Optional[str], typer.Option(
        help=f"Reasoning efforts, comma-separated, any case: {', '.join(STANDARD_EFFORTS)} "
             f"(openai/ also xhigh), or {DEFAULT_WORD} (none sent).")] = None,
    thinking_budget: Annotated[Optional[str], typer.Option(
        help=f"Thinking-token budgets, comma-separated: counts >= 0, or {DEFAULT_WORD}.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Completion token limit.")] = None,
    max_steps: Annotated[Optional[str], typer.Option(
        help="Agent step limits, comma-separated (tasks with an agent mode, e.g. swe -T "
             "mode=agent): each is a compute setting.")] = None,
    agent_max_tokens: Annotated[Optional[str], typer.Option(
        help="Agent token limits per episode (prompt + completion over every turn), "
             "comma-separated, or none: each is a compute setting.")] = None,
    agent_max_cost: Annotated[Optional[str], typer.Option(
        help="Agent spend limits per episode in USD, comma-separated, or none: each is a "
             "compute setting.")] = None,
    temperature: Annotated[Optional[float], typer.Option()] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 32,
    retries: Annotated[int, typer.Option(help="Retries per request on 429/5xx/timeouts.")] = 6,
    timeout: Annotated[float, typer.Option(help="Per-request timeout, seconds.")] = 600.0,
    base_url: Annotated[Optional[list[str]], typer.Option(help="OpenAI-compatible endpoint; several (repeat the option) make a pool with adaptive concurrency per endpoint.")] = None,
    ranker: Annotated[Optional[str], typer.Option(help="Ranks completions for best@k: an LLM judge (model spec) or reward/PATH (a reward model).")] = None,
    ranker_option: Annotated[Optional[list[str]], typer.Option(
        "--ranker-option", help="The ranker's option key=value, e.g. base_url=... or batch_size=32")] = None,
    sandboxes: Annotated[Optional[int], typer.Option(help="Sandbox containers at once, for tasks that grade in Docker.")] = None,
    engine: Annotated[Optional[list[str]], typer.Option(
        "--engine", help="A Docker engine for the sandboxes (repeat for several): unix:///PATH, "
                         "tcp://HOST:PORT?tls=CERTDIR, ssh://USER@HOST, or an engines.toml "
                         "(docs/swe.md). Default: EVALS_ENGINES, else the local engine.")] = None,
    shard: Annotated[Optional[str], typer.Option(help="I/N: run shard I (0-based) of N of the grid, for a job array; `evals merge` joins the shards.")] = None,
    cluster: Annotated[Optional[str], typer.Option(help="Run the units on a Ray cluster: ray://HOST:PORT, HOST:PORT or auto (pip install 'evals[ray]').")] = None,
    results_dir: ResultsDir = Path("results"),
    run_id: Annotated[Optional[str], typer.Option(help="Name of the run; an existing one resumes.")] = None,
    tasks_dir: TasksDirs = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Bypass the response cache.")] = False,
    progress: Annotated[bool, typer.Option(help="Live progress display.")] = True,
    max_error_share: MaxErrorShare = 0.0,
    wide: Wide = False,
    all_k: AllK = False,
    batch: Annotated[bool, typer.Option(
        "--batch", help="Send openai/, openai-responses/, anthropic/ and google/ requests "
                        "through the providers' batch APIs (half price; docs/batch.md).")] = False,
    wait: Wait = True,
    batch_size: Annotated[Optional[int], typer.Option(
        min=1, help="Requests per provider batch (default: the provider's limit).")] = None,
    batch_retry: Annotated[str, typer.Option(
        help="Expired or failed batch requests go again in a new batch, or live.")] = "batch",
    batch_poll: BatchPoll = None,
    max_cost: MaxCost = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print requests, tokens and the cost range at live and batch "
                          "prices per task, model and setting; send nothing.")] = False,
) -> None:
    """Run tasks x models x compute settings; resumable with --run-id.

    Exit codes: 0 done; 1 a task, the endpoint or the key failed; 2 bad input;
    3 errors remain after every retry (beyond --max-error-share); 4 the spend reached
    --max-cost; 5 batches left running (--no-wait); 130 interrupted.
    """
    from evals.config import RunConfig

    if samples < 1 or concurrency < 1:
        fail("--samples and --concurrency must be at least 1")
    if (limit is not None and limit < 1) or (max_tokens is not None and max_tokens < 1) \
            or retries < 0 or timeout <= 0:
        fail("--limit and --max-tokens must be >= 1, --retries >= 0 and --timeout > 0")
    check_models(model)
    if batch_retry not in ("batch", "live"):
        fail(f"--batch-retry {batch_retry!r}: expected batch or live")
    budgets = parse_budgets(thinking_budget)
    efforts = parse_efforts(effort, list(model))
    options = parse_pairs(model_option, "-M")
    if base_url:
        options["base_url"] = ",".join(base_url)
    config = RunConfig(
        tasks=list(tasks), models=list(model), task_params=parse_pairs(task_param, "-T"),
        model_options=options, efforts=efforts, thinking_budgets=budgets,
        max_steps=parse_limits(max_steps, "--max-steps", _whole,
                               "a step limit (whole numbers >= 1)"),
        agent_max_tokens=parse_limits(agent_max_tokens, "--agent-max-tokens", _whole,
                                      "a token limit (whole numbers >= 1)", unlimited=True),
        agent_max_cost=parse_limits(agent_max_cost, "--agent-max-cost", _usd,
                                    "a spend limit (USD above 0)", unlimited=True),
        max_tokens=max_tokens, samples=samples, temperature=temperature, seed=seed, limit=limit,
        tasks_dirs=list(tasks_dir or []), ranker=ranker,
        ranker_options=parse_pairs(ranker_option, "--ranker-option"), sandboxes=sandboxes,
        shard=parse_shard_option(shard), cluster=cluster, engines=list(engine or []),
        concurrency=concurrency, retries=retries,
        timeout=timeout, cache=not no_cache, batch=batch, batch_size=batch_size,
        batch_retry=batch_retry, max_cost=max_cost)
    if batch_poll is not None:
        config.batch_poll = batch_poll
    if dry_run:
        return _dry_run(config, results_dir, run_id)
    _execute(config, results_dir, run_id, progress, max_error_share, wide, all_k, wait)


def _dry_run(config, results_dir: Path, run_id: str | None) -> None:
    """`evals run --dry-run`: what the run would send and cost; nothing is sent."""
    from evals.dryrun import estimate, render

    hub_guard()
    try:
        rows = estimate(config, results_dir, run_id)
    except TaskError as e:
        fail(task_failure(e), EXIT_FAILED)
    except (ConfigError, ValueError) as e:
        fail(str(e), EXIT_FAILED)
    sys.stdout.write(render(rows))


@app.command()
def resume(run_id: str, results_dir: ResultsDir = Path("results"),
           concurrency: Annotated[Optional[int], typer.Option()] = None,
           progress: bool = True, max_error_share: MaxErrorShare = 0.0,
           wide: Wide = False, all_k: AllK = False, max_cost: MaxCost = None,
           wait: Wait = True, batch_poll: BatchPoll = None) -> None:
    """Resume an interrupted run with the configuration it was started with (exit codes
    as `evals run`'s); collects a batch run's batches and sends what was not sent.
    --max-cost raises (or sets) the run's spend cap."""
    from evals.config import RunConfig

    log, meta = open_run(results_dir, run_id)
    try:
        config = RunConfig.from_json(meta.get("config") or {}, str(log.meta_path))
    except ValueError as e:
        fail(str(e), EXIT_FAILED)
    if any(v == "***" for v in config.model_options.values()):
        fail("this run was started with a secret model option; re-run `evals run` with it")
    if any(":***@" in v for v in [*config.engines, *config.task_params.values()]):
        fail("this run was started with a password in an engine URL (not stored); re-run "
             "`evals run` with it")
    if concurrency:
        config.concurrency = concurrency
    if max_cost is not None:
        config.max_cost = max_cost
    if batch_poll is not None:
        config.batch_poll = batch_poll
    _execute(config, results_dir, run_id, progress, max_error_share, wide, all_k, wait)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (a scheduler, `timeout`, `docker stop`) ends like Ctrl-C


def _execute(config, results_dir: Path, run_id: str | None, progress: bool,
             max_error_share: float = 0.0, wide: bool = False, all_k: bool = False,
             wait: bool = True) -> None:
    import signal

    from evals.leaderboard import print_table
    from evals.progress import console, live_progress, summary_table
    from evals.records import RunLog, new_run_id
    from evals.run import FatalRunError, execute

    check_results_dir(results_dir)
    hub_guard()
    signal.signal(signal.SIGTERM, _terminate)
    run_id = run_id or new_run_id()
    log = RunLog(results_dir / run_id)
    try:
        with ExitStack() as display:  # the live line starts once the run knows its totals
            stats = execute(config, log, sys.argv, on_start=lambda s: display.enter_context(
                live_progress(s, run_id, progress)), batch_wait=wait)
    except TaskError as e:
        fail(task_failure(e), EXIT_FAILED)
    except (ConfigError, FatalRunError, ValueError) as e:
        fail(str(e), EXIT_FAILED)
    except KeyboardInterrupt:
        typer.secho(f"\ninterrupted; resume with: evals resume {run_id} --results-dir {results_dir}",
                    err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    rows = _summary_rows(log)
    print_table(summary_table(_table_rows(rows, all_k), f"run {run_id}", wide), wide)  # results: stdout; logs: stderr
    errors = f", {stats.errors} errors (not scored; resume to retry)" if stats.errors else ""
    console.print(f"{stats.done} generations{errors} -> {log.dir}")
    if stats.capped or stats.pending_batches:
        _stopped_early(stats, config, run_id, results_dir)
    if error_share_exceeded(stats.errors, stats.total, max_error_share):
        fail(f"{stats.errors} of {stats.total} generations are errors after every retry "
             f"(allowed share {max_error_share:g}, --max-error-share); "
             f"resume with: evals resume {run_id} --results-dir {results_dir}", EXIT_ERRORS)


def _stopped_early(stats, config, run_id: str, results_dir: Path) -> None:
    """Exit 4 (the spend cap) or 5 (batches left at the provider), saying how to go on."""
    resume = f"evals resume {run_id} --results-dir {results_dir}"
    pending = (f"{stats.pending_batches} batch{'es' if stats.pending_batches != 1 else ''} "
               f"still at the provider; " if stats.pending_batches else "")
    if stats.capped:
        fail(f"{pending}the spend reached --max-cost ${config.max_cost:g} (spent "
             f"${stats.cost:.4f}) with {stats.total - stats.done} generations left; "
             f"raise it with: {resume} --max-cost USD", EXIT_SPEND_CAP)
    typer.secho(f"{pending}collect them with: {resume}", err=True)
    raise typer.Exit(EXIT_PENDING)


def error_share_exceeded(errors: int, total: int, allowed: float) -> bool:
    return errors > 0 and errors > allowed * total


def _print_checks(config) -> None:
    """A task's own soundness checks (e.g. an instance the sandbox could not grade fairly)."""
    import itertools

    from evals.run import build_tasks

    for built in build_tasks(config):
        if built.check is None:
            continue
        for sample in itertools.islice(built.samples(), config.limit):
            for warning in built.check(sample):
                typer.secho(f"warning: {built.name} {sample.id}: {warning}", fg="yellow", err=True)


@app.command()
def validate(task: str, task_param: TaskParams = None, tasks_dir: TasksDirs = None,
             limit: Annotated[Optional[int], typer.Option()] = None,
             results_dir: Annotated[Optional[Path], typer.Option(help="Keep the run here.")] = None) -> None:
    """Run TASK with the gold runner; fail unless it scores 100%."""
    import tempfile

    from evals.config import RunConfig
    from evals.records import RunLog, iter_records, new_run_id
    from evals.run import execute

    if limit is not None and limit < 1:
        fail("--limit must be >= 1")
    config = RunConfig(tasks=[task], models=["gold"], task_params=parse_pairs(task_param, "-T"),
                       tasks_dirs=list(tasks_dir or []), limit=limit, cache=False)
    hub_guard()
    with tempfile.TemporaryDirectory() as tmp:
        log = RunLog(Path(results_dir or tmp) / f"validate-{task}-{new_run_id()}")
        try:
            _print_checks(config)
            execute(config, log, sys.argv)
        except TaskError as e:
            fail(task_failure(e), EXIT_FAILED)
        except (ConfigError, ValueError) as e:
            fail(str(e), EXIT_FAILED)
        records = list(iter_records(log.samples_path))
    bad = [r for r in records if r.get("score") != 1.0]
    if not records:
        fail(f"task {task!r} has no samples", EXIT_FAILED)
    if bad:
        for r in bad[:10]:
            typer.echo(f"  {r['sample_id']}: {r.get('status')} answer={r.get('answer')!r} "
                       f"target={r.get('target')!r} {r.get('explanation') or r.get('error') or ''}",
                       err=True)
        fail(f"task {task!r} scored {len(records) - len(bad)}/{len(records)} with the gold runner",
             EXIT_FAILED)
    typer.echo(f"{task}: {len(records)}/{len(records)} samples correct with the gold runner")


# The commands that read runs register on the same app (after these, for --help's order).
from evals import cli_results  # noqa: E402,F401

if __name__ == "__main__":
    app()
