"""Runs spread over a Ray cluster: ``evals run ... --cluster ray://HOST:PORT`` (or
``auto``, or ``HOST:PORT``).

The driver plans the grid as usual; units (a task, sample, model and setting's
missing generations) go in chunks of ``CHUNK`` to Ray tasks that a node runs in full,
side by side, model calls and grading included, with that node's own Docker engine, response cache and endpoints.
The node returns the unit's records; only the driver writes them, to the run's single
samples.jsonl (append-only, one write per unit, as for a local run), so kill -9 and
resume behave as for a local run. A node that is lost has its units run again
elsewhere (Ray retries a task whose worker died); as nothing was written for them,
nothing is written twice.

Nodes rebuild the run from its configuration (tasks, runners, settings), once per
worker process. They need evals and the tasks' dependencies installed, and the
keys the backends read from their environment (keys never travel in the
configuration). Ray is an optional dependency: ``pip install 'evals[ray]'``.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Iterator

# Per worker process: what a configuration builds, kept for the units that follow, and
# one event loop for all of them (the runners' connections belong to it).
_BUILT: dict[str, Any] = {}
_LOOP: asyncio.AbstractEventLoop | None = None


def _address(cluster: str) -> str:
    return "auto" if cluster == "auto" else cluster


def _built(config_json: dict[str, Any], log_dir: str) -> Any:
    """(orchestrator, tasks by name, samples by task and id, runners by model, settings
    by name) for this configuration, built once per worker process."""
    import orjson

    key = orjson.dumps([config_json, log_dir], option=orjson.OPT_SORT_KEYS).decode()
    if key not in _BUILT:
        from pathlib import Path

        from evals.cache import ResponseCache
        from evals.config import RunConfig
        from evals.records import RunLog
        from evals.run import Orchestrator, RunStats, build_runners, build_tasks

        config = RunConfig.from_json(config_json)
        tasks = {t.name: t for t in build_tasks(config)}
        runners = {r.model: r for r in build_runners(config)}
        cache = ResponseCache() if config.cache else None
        orchestrator = Orchestrator(config, RunLog(Path(log_dir)), RunStats(), cache)
        samples = {name: {str(s.id): s for s in t.samples()} for name, t in tasks.items()}
        settings = {s.name: s for s in config.settings()}
        _BUILT[key] = (orchestrator, tasks, samples, runners, settings)
    return _BUILT[key]


def run_units(config_json: dict[str, Any], log_dir: str,
              specs: list[tuple[str, str, str, str, list[int]]]
              ) -> tuple[str, list[tuple[str, list[dict[str, Any]]]]]:
    """On a node: a chunk of units, run side by side on the worker's event loop; each
    unit's task name and records, and the node that made them."""
    import ray

    from evals.work import Unit

    global _LOOP
    orchestrator, tasks, samples, runners, settings = _built(config_json, log_dir)
    units = [Unit(tasks[task], samples[task][sample_id], runners[model], settings[setting],
                  gens) for task, sample_id, model, setting, gens in specs]
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()

    async def all_of() -> list:
        return await asyncio.gather(*(orchestrator.unit_records(u) for u in units))

    records = _LOOP.run_until_complete(all_of())
    return (ray.get_runtime_context().get_node_id(),
            [(u.task.name, r) for u, r in zip(units, records)])


# Units per Ray task: a node runs a chunk side by side (model calls overlap on its event
# loop), and the driver pays its per-task cost once a chunk.
CHUNK = 8


async def run_on_cluster(orchestrator: Any, work: Iterator[Any], cluster: str,
                         nodes: set[str] | None = None) -> None:
    """Send the units of ``work`` to the cluster in chunks, at most ``--concurrency``
    units in flight, and write each unit's records as its chunk comes back (``nodes``
    collects who made them)."""
    try:
        import ray
    except ImportError:
        from evals.runner import ConfigError

        raise ConfigError("--cluster needs Ray: pip install 'evals[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=_address(cluster), log_to_driver=False,
                 logging_level="warning")
    config = orchestrator.config
    config_json = config.to_json()
    remote = ray.remote(max_retries=3, retry_exceptions=False)(run_units)
    log_dir = str(orchestrator.log.dir.resolve())
    pending: set[asyncio.Future] = set()
    units = iter(work)
    chunk_size = max(1, min(CHUNK, config.concurrency))

    def submit() -> bool:
        chunk = [(u.task.name, str(u.sample.id), u.runner.model, u.setting.name, list(u.gens))
                 for u in itertools.islice(units, chunk_size)]
        if chunk:
            pending.add(asyncio.wrap_future(remote.remote(config_json, log_dir, chunk).future()))
        return bool(chunk)

    while len(pending) * chunk_size < max(1, config.concurrency) and submit():
        pass
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for future in done:
            node, results = future.result()
            if nodes is not None:
                nodes.add(node)
            for task_name, records in results:
                orchestrator.keep_records(task_name, records)
            submit()
