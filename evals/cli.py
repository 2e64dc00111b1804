"""The ``evals`` command. Each command parses arguments and calls the core."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Optional

import typer

from evals.config import STANDARD_EFFORTS, declared_efforts
from evals.registry import Registry
from evals.runner import ConfigError
from evals.task import TaskError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Evaluate LLMs on hard benchmarks, across test-time compute settings.")


# Sub-commands of plugins: a typer app each, mounted under its name. Packages add
# theirs through the evals.commands entry points.
COMMANDS: Registry[typer.Typer] = Registry("command", "evals.commands", {
    "sandbox": "sandbox.cli:sandbox_app",  # typer only; docker is imported when one runs
}, describe=lambda sub: sub.info.help or "")


def _mount_commands() -> None:
    for name in COMMANDS.names():
        app.add_typer(COMMANDS.get(name), name=name)


_mount_commands()


def _hide_flag_types() -> None:
    """Newer typer writes ``<bool>`` beside every flag in --help, as if it took a value."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None:  # an older typer: it writes no type for flags
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich


_hide_flag_types()

ResultsDir = Annotated[Path, typer.Option("--results-dir", help="Where runs are written.")]
Wide = Annotated[bool, typer.Option(
    "--wide", help="Every column, however wide the table (default: fit the terminal).")]
AllK = Annotated[bool, typer.Option(
    "--all-k", help="Every k of pass@k/maj@k/best@k (default: k = samples; @1 repeats accuracy).")]
MaxCost = Annotated[Optional[float], typer.Option(
    "--max-cost", min=0.0, help="USD: no new request or batch is sent once the run's spend "
    "reaches it (exit code 4); a resume with a higher cap goes on.")]
Wait = Annotated[bool, typer.Option(
    "--wait/--no-wait", help="With --batch: wait for the batches (default), or submit them "
    "and exit at once (exit code 5); `evals resume RUN_ID` collects them.")]
BatchPoll = Annotated[Optional[float], typer.Option(
    "--batch-poll", min=0.0, help="Seconds between looks at the batches in flight (default 30).")]
MaxErrorShare = Annotated[float, typer.Option(
    "--max-error-share", min=0.0, max=1.0,
    help="Share of generations that may still be errors after every retry without "
         "exit code 3 (default 0: any error fails the command).")]
TaskParams = Annotated[Optional[list[str]], typer.Option(
    "-T", "--task-param", help="Task parameter key=value (or task.key=value for one task).")]
TasksDirs = Annotated[Optional[list[str]], typer.Option(
    "--tasks-dir", help="Directory or file of private task plugins (repeatable).")]


# Exit codes (docs/cli.md): 0 success; 1 a task, its data, the endpoint or the key failed;
# 2 bad input (a malformed option, nothing to read); 3 the run finished with more errored
# generations than --max-error-share allows, after every retry; 4 the spend reached
# --max-cost with work left; 5 batches left running at the provider (--batch --no-wait);
# 130 interrupted.
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ERRORS, EXIT_INTERRUPTED = 1, 2, 3, 130
EXIT_SPEND_CAP, EXIT_PENDING = 4, 5


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_hub_note = ""  # set when hub_guard turned offline mode on; added to a task's error


def hub_guard(wait: float = 2.0) -> None:
    """Without a network the hub client retries for half a minute (``Retrying in 8s``)
    before a task can say it cannot load its data. When the hub's host does not resolve
    within ``wait`` seconds, turn its offline mode on before it is imported: a cached
    dataset still loads, a missing one fails at once with the task's own message."""
    import os
    import socket
    import threading
    from urllib.parse import urlsplit

    global _hub_note
    if any(os.environ.get(v, "").strip() for v in (*_OFFLINE_VARS, "TRANSFORMERS_OFFLINE")):
        return
    host = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname
    resolved: list[bool] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, 443)
            resolved.append(True)
        except (OSError, UnicodeError):
            pass

    probe = threading.Thread(target=resolve, daemon=True)
    probe.start()
    probe.join(wait)
    if not resolved:
        for name in _OFFLINE_VARS:
            os.environ[name] = "1"
        _hub_note = f" (the hub at {host} could not be reached, so evals used offline mode)"


def task_failure(error: TaskError) -> str:
    """A task's error, saying the hub was unreachable when hub_guard made it offline
    and the task went to the hub (its client was imported)."""
    went = "huggingface_hub" in sys.modules or "datasets" in sys.modules
    return str(error) + (_hub_note if went else "")


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            fail(f"{flag} {pair!r}: expected key=value")
        out[key.strip()] = value
    return out


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


def resolve_setting(name: str | None, settings: list[str], flag: str) -> str | None:
    """A setting as typed (``effort=low``) -> the run's setting it names: itself, or the
    one setting holding all its fields (``effort=low,n=4``); ambiguous: fail. A name
    nothing matches is kept: the comparison then says what there is."""
    if name is None or name in settings:
        return name
    wanted = set(name.split(","))
    matches = [s for s in settings if wanted <= set(s.split(","))]
    if len(matches) == 1:
        return matches[0]
    if matches:
        fail(f"{flag} {name!r} matches several settings ({', '.join(matches)}); name one")
    return name


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


def open_run(results_dir: Path, run_id: str):
    """A run's log and metadata, or one line saying why not."""
    from evals.records import RunLog

    log = RunLog(results_dir / run_id)
    if not log.exists:
        fail(f"no run {run_id!r} under {results_dir}")
    try:
        return log, log.read_meta()
    except ValueError as e:
        fail(str(e), EXIT_FAILED)


def check_results_dir(results_dir: Path) -> None:
    if results_dir.exists() and not results_dir.is_dir():
        fail(f"--results-dir {results_dir} is a file, not a directory")


def require_runs(results_dir: Path) -> None:
    """Readers of a results directory: one line and exit 2 when there is no run to read
    (a mistyped --results-dir would otherwise give an empty table and exit 0)."""
    from evals.records import RUN_FILE

    check_results_dir(results_dir)
    if not results_dir.is_dir() or not any(results_dir.glob(f"*/{RUN_FILE}")):
        where = "does not exist" if not results_dir.exists() else "holds no run (no */run.json)"
        fail(f"--results-dir {results_dir} {where}")
    from evals.records import find_runs

    try:
        shards = len(find_runs(results_dir, shards=True)) - len(find_runs(results_dir))
    except ValueError as e:  # a run.json that is not one: named, in one line
        fail(str(e), EXIT_FAILED)
    if shards:  # each holds a slice of a grid: alone it would stand for the whole
        typer.echo(f"{shards} shard run{'s' if shards > 1 else ''} left out: merge them with "
                   "`evals merge RUN ... --run-id NAME`", err=True)


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


def _summary_rows(log, rescored: bool = False) -> list[dict]:
    from evals.leaderboard import metric_dicts, sort_rows, task_summary_rows
    from evals.metrics_columnar import aggregate

    rows = metric_dicts(aggregate(log.records_path(rescored)))
    return sort_rows(rows + task_summary_rows(log, rescored))


def _table_rows(rows: list[dict], all_k: bool) -> list[dict]:
    from evals.leaderboard import informative

    return rows if all_k else informative(rows)


Rescored = Annotated[bool, typer.Option("--rescored", help="Read `evals rescore` output where present.")]


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


def parse_shard_option(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from evals.shards import parse_shard

    try:
        return parse_shard(text)
    except ConfigError as e:
        fail(str(e))


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
    from evals.export import FORMATS, export as write

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

    from evals.compare import Side, compare as paired

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

    from evals.records import RunLog, iter_records, new_run_id
    from evals.config import RunConfig
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


if __name__ == "__main__":
    app()
