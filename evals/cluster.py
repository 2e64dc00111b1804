"""Runs spread over a Ray cluster: ``evals run ... --cluster ray://HOST:PORT`` (or
``auto``, or ``HOST:PORT``).

The driver plans the grid as usual; each unit (a task, sample, model and setting's
missing generations) becomes a Ray task that a node runs in full, model calls and
grading included, with that node's own Docker engine, response cache and endpoints.
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


def run_unit(config_json: dict[str, Any], log_dir: str, task: str, sample_id: str,
             model: str, setting: str, gens: list[int]) -> tuple[str, list[dict[str, Any]]]:
    """On a node: the unit's records, and the node that made them."""
    import ray

    from evals.work import Unit

    orchestrator, tasks, samples, runners, settings = _built(config_json, log_dir)
    global _LOOP
    unit = Unit(tasks[task], samples[task][sample_id], runners[model], settings[setting], gens)
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    records = _LOOP.run_until_complete(orchestrator.unit_records(unit))
    return ray.get_runtime_context().get_node_id(), records


async def run_on_cluster(orchestrator: Any, work: Iterator[Any], cluster: str,
                         nodes: set[str] | None = None) -> None:
    """Send every unit of ``work`` to the cluster, at most ``--concurrency`` in flight,
    and write each one's records as it comes back (``nodes`` collects who made them)."""
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
    remote = ray.remote(max_retries=3, retry_exceptions=False)(run_unit)
    log_dir = str(orchestrator.log.dir.resolve())
    pending: set[asyncio.Future] = set()
    units = iter(work)

    def submit(unit: Any) -> asyncio.Future:
        ref = remote.remote(config_json, log_dir, unit.task.name, str(unit.sample.id),
                            unit.runner.model, unit.setting.name, list(unit.gens))
        future = asyncio.wrap_future(ref.future())
        future.task_name = unit.task.name  # type: ignore[attr-defined]
        return future

    for unit in units:
        pending.add(submit(unit))
        if len(pending) >= max(1, config.concurrency):
            break
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for future in done:
            node, records = future.result()
            if nodes is not None:
                nodes.add(node)
            orchestrator.keep_records(future.task_name, records)  # type: ignore[attr-defined]
            nxt = next(units, None)
            if nxt is not None:
                pending.add(submit(nxt))
