"""What every ``evals`` command shares: the Typer app and the plugins' sub-commands,
common options, exit codes, one-line failures, and opening a results directory.

The commands themselves: evals/cli.py (running: list, run, resume, validate) and
evals/cli_results.py (reading runs: show, leaderboard, report, view, audit, ...)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

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


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            fail(f"{flag} {pair!r}: expected key=value")
        out[key.strip()] = value
    return out


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


def _summary_rows(log, rescored: bool = False) -> list[dict]:
    from evals.leaderboard import metric_dicts, sort_rows, task_summary_rows
    from evals.metrics_columnar import aggregate

    rows = metric_dicts(aggregate(log.records_path(rescored)))
    return sort_rows(rows + task_summary_rows(log, rescored))


def _table_rows(rows: list[dict], all_k: bool) -> list[dict]:
    from evals.leaderboard import informative

    return rows if all_k else informative(rows)


Rescored = Annotated[bool, typer.Option("--rescored", help="Read `evals rescore` output where present.")]


def parse_shard_option(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from evals.shards import parse_shard

    try:
        return parse_shard(text)
    except ConfigError as e:
        fail(str(e))
