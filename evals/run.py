"""A run: tasks x models x compute settings, concurrently, resumably.

One unit of work is (task, sample, model, setting): one request for the
generations that sample still lacks, scored and appended to samples.jsonl
as one write. This module builds a run (its tasks, runners and the units
still to do, from the records already written) and hands the units to the
orchestrator (evals/orchestrator.py), whose fixed pool of ``concurrency``
workers pulls them from a generator, so memory stays flat however many
samples a run has; or to a cluster backend, or to batch mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from evals import score_index
from evals.cache import ResponseCache
from evals.config import RunConfig, Setting, settings_json  # noqa: F401 (re-exported)
from evals.records import RunLog
from evals.registry import Registry
from evals.redact import remember, scrub
from evals.runner import ConfigError, Runner, make_runner
from evals.orchestrator import Orchestrator, backoff  # noqa: F401 (re-exported)
from evals.task import Sample, Task, TaskError
from evals.work import FatalRunError, Generated, RunStats, Unit  # noqa: F401 (re-exported)


# Where a run's units can be sent instead of this process: lazy entries, so that the
# backend (which builds runs on its nodes) imports this module, not the reverse.
CLUSTERS: Registry = Registry("cluster backend", "evals.clusters",
                              {"ray": "evals.cluster:run_on_cluster"})


def build_tasks(config: RunConfig) -> list[Task]:
    from evals.plugins import load_tasks
    from evals.task import TASKS

    registry = load_tasks(config.tasks_dirs)
    for key in config.task_params:  # a misspelt task scope would be silently ignored
        scope, dot, _ = key.rpartition(".")
        if dot and scope not in config.tasks:
            raise TaskError(f"-T {key}=...: {scope!r} is not a task of this run "
                            f"({', '.join(config.tasks)})")
    tasks = []
    for name in config.tasks:
        if name not in registry:
            raise TASKS.unknown(name)
        spec = registry[name]
        params = config.params_for(name)
        if config.sandboxes and (param := spec.resources.get("containers")):
            params.setdefault(param, str(config.sandboxes))
        if config.engines and (param := spec.resources.get("engines")):
            params.setdefault(param, ",".join(config.engines))
        tasks.append(spec.build(params))
    return tasks


def options_for(spec: str, options: dict[str, str]) -> dict[str, str]:
    """``-M key=v`` goes to every model; ``-M SPEC@key=v`` to that model only (and wins)."""
    out = {k: v for k, v in options.items() if "@" not in k}
    out.update({k.rpartition("@")[2]: v for k, v in options.items()
                if "@" in k and k.rpartition("@")[0] == spec})
    return out


def build_runners(config: RunConfig) -> list[Runner]:
    for key in config.model_options:  # a misspelt model scope would be silently ignored
        scope = key.rpartition("@")[0]
        if scope and scope not in config.models:
            raise ConfigError(f"-M {key}=...: {scope!r} is not a model of this run "
                              f"({', '.join(config.models)})")
    # gold takes no options; -M and --base-url are for model backends
    return [make_runner(spec) if spec.startswith("gold")
            else make_runner(spec, **options_for(spec, config.model_options))
            for spec in config.models]


def plan(tasks: list[Task], runners: list[Runner], settings: list[Setting], limit: int | None,
         done: dict[tuple, set[int]], shard: list[int] | None = None
         ) -> tuple[list[tuple[Task, list[Sample]]], int, int]:
    """Load each task's samples once (``--limit`` first, then this run's ``--shard``);
    count units to do and generations already done."""
    from evals.shards import in_shard

    loaded = []
    todo = finished = 0
    for task in tasks:
        samples = list(itertools.islice(task.samples(), limit))
        seen: set[str] = set()
        for s in samples:
            if s.id in seen:
                raise TaskError(f"task {task.name!r}: duplicate sample id {s.id!r}")
            seen.add(s.id)
        if shard is not None:
            samples = [s for s in samples if in_shard(task.name, s.id, shard)]
        loaded.append((task, samples))
        for sample, runner, setting in itertools.product(samples, runners, settings):
            have = len(done.get((task.name, runner.model, setting.name, sample.id), ()))
            finished += min(have, setting.samples)
            todo += setting.samples - min(have, setting.samples)
    return loaded, todo, finished


def units(loaded, runners, settings, done) -> Iterator[Unit]:
    for task, samples in loaded:
        for sample in samples:
            for runner in runners:
                for setting in settings:
                    have = done.get((task.name, runner.model, setting.name, sample.id), set())
                    gens = [g for g in range(setting.samples) if g not in have]
                    if gens:
                        yield Unit(task, sample, runner, setting, gens)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("evals", "openai", "aiohttp", "transformers", "torch", "vllm", "datasets"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def git_revision(path: Path) -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=path, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def execute(config: RunConfig, log: RunLog, command: list[str],
            on_start: Callable[[RunStats], Any] | None = None,
            cache_dir: Path | None = None, batch_wait: bool = True) -> RunStats:
    """Run (or resume) ``config`` into ``log``. Raises FatalRunError/ConfigError/TaskError.
    With ``config.batch``, ``batch_wait=False`` returns once the batches are submitted."""
    meta: dict[str, Any] = {}
    if log.exists:
        meta = log.read_meta()
        previous = RunConfig.from_json(meta.get("config") or {}, str(log.meta_path))
        if diffs := previous.differences(config):
            raise ConfigError(f"run {log.dir.name!r} exists with another configuration "
                              f"({diffs[0]}); resume it with the same options or use a new --run-id")
    remember(config.model_options)
    remember(config.ranker_options)
    tasks = build_tasks(config)
    if (axes := config.agent_axes()) and not any(t.solver for t in tasks):
        # each value would be a setting of its own, billed again for the same answers
        raise ConfigError(f"{', '.join(axes)}: only for tasks with an agent (e.g. swe -T "
                          f"mode=agent); no task of this run ({', '.join(config.tasks)}) has one")
    runners = build_runners(config)
    settings = config.settings()
    stats = RunStats()
    for runner in runners:
        if hasattr(runner, "set_ceiling"):  # an endpoint pool: --concurrency per endpoint
            runner.set_ceiling(config.concurrency)
            stats.limits.append(runner.limits_text)
    cache = ResponseCache(cache_dir) if config.cache else None
    orchestrator = Orchestrator(config, log, stats, cache)  # builds the judge: may refuse
    log.repair()
    # Before the event loop starts: indexing a big run resumed from before score indexes
    # takes a minute, which must not stall requests in flight (RunLog.append would).
    score_index.sync(log.samples_path)
    done = log.done_generations()
    loaded, todo, finished = plan(tasks, runners, settings, config.limit, done, config.shard)
    now = _now()
    meta.update({
        "run_id": log.dir.name, "command": [scrub(a) for a in command],
        "config": config.to_json(), "settings": [{"name": s.name, **settings_json(s)}
                                                 for s in settings],
        "versions": versions(), "git": git_revision(Path.cwd()),
        # how each task's scores break down (the report and the score index read this)
        "breakdowns": {t.name: [b.to_json() for b in t.breakdowns]
                       for t in tasks if t.breakdowns},
        "started": meta.get("started", now), "resumed": meta.get("resumed", []),
        "status": "running", "ended": None, "error": None})
    if finished:
        meta["resumed"].append(now)
    log.write_meta(meta)

    stats.total, stats.done, stats.done_at_start = todo + finished, finished, finished
    if finished:
        _seed_from_index(stats, log, tasks, runners, settings)
    stats.started = time.monotonic()  # elapsed counts this session's work, not its set-up
    status = "failed"
    try:
        if on_start:
            on_start(stats)
        with _steady_gc(), asyncio.Runner(loop_factory=_loop_factory()) as runner:
            closing = runners + ([orchestrator.judge_runner] if orchestrator.judge_runner else [])
            work = units(loaded, runners, settings, done)
            if config.batch:
                from evals.batch import run_batched
                job = run_batched(orchestrator, log, work, done, batch_wait)
            elif config.cluster:
                job = CLUSTERS.get("ray")(orchestrator, work, config.cluster, stats.nodes)
            else:
                job = orchestrator.run(work)
            runner.run(_run_all(job, closing))
        # a spend cap reached, or batches left running (evals resume collects them)
        status = ("capped" if stats.capped else "pending" if stats.pending_batches
                  else "completed")
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException as e:  # why the run failed, for `evals show`
        meta["error"] = scrub(str(e) or type(e).__name__)
        raise
    finally:
        if cache is not None:
            cache.close()
        log.close()
        meta.update({"status": status, "ended": _now(),
                     "counts": {"generations": stats.total, "done": stats.done,
                                "errors": stats.errors, "cached": stats.cached}})
        log.write_meta(meta)
    return stats


def _seed_from_index(stats: RunStats, log: RunLog, tasks: list[Task], runners: list[Runner],
                     settings: list[Setting]) -> None:
    """A resumed run's counters start from what its earlier sessions spent and scored
    (tokens, cost paid, scores per task), read from the score index, not from zero."""
    import numpy as np

    entries = score_index.load(log.samples_path)
    if entries is None:
        return
    task_of = {score_index.hash64([t.name, r.model, s.name]): t.name
               for t in tasks for r in runners for s in settings}
    for chunk in entries.chunks():
        flags, cost = chunk["flags"], chunk["cost"]
        err = (flags & score_index.ERROR) != 0
        unknown = np.isnan(cost)
        stats.prompt_tokens += int(chunk["prompt"].sum())
        stats.completion_tokens += int(chunk["completion"].sum())
        if (unknown & ~err).any():
            stats.cost_known = False
        stats.cost += float(cost[~unknown & ((flags & score_index.CACHED) == 0)].sum())
        for group, name in task_of.items():
            mine = (chunk["group"] == group) & ~err
            if mine.any():
                total = stats.scores.setdefault(name, [0.0, 0])
                total[0] += float(chunk["score"][mine].sum())
                total[1] += int(mine.sum())


def _now() -> str:
    # milliseconds: runs started within one second still sort in the order they began
    from datetime import datetime

    return datetime.now().astimezone().isoformat(timespec="milliseconds")


@contextlib.contextmanager
def _steady_gc() -> Iterator[None]:
    """The garbage collector, tuned for the run's event loop. What start-up made (modules,
    the loaded samples) is frozen out of every collection, and a collection waits for
    50,000 new objects instead of 700: with 1,000 requests in flight their objects lived
    through collections, were moved to the older generations and scanned again there,
    a quarter of the driver's CPU (bench/README.md). Only cyclic garbage waits longer."""
    import gc

    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 50_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _loop_factory():
    """uvloop where installed: about half the event loop's CPU per request."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run_all(job, runners: list[Runner]) -> None:
    try:
        await job
    finally:
        for runner in runners:
            await runner.aclose()
