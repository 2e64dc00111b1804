"""Re-score stored completions with today's scorers, without calling any model.

After an extractor or verifier fix: the run's records stay as they are, and
``samples.rescored.jsonl`` beside them holds each generation scored again,
with the earlier verdict under ``previous``, so the two can be compared.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import orjson

from evals import score_index
from evals.records import RESCORED_FILE, UNSCORED, RunLog, iter_records
from evals.task import Sample, Score, Task, TaskError


@dataclass
class RescoreSummary:
    records: int = 0
    rescored: int = 0
    changed: int = 0
    skipped: int = 0  # failed calls (nothing to score) and samples the task no longer has


async def _score(task: Task, sample: Sample, text: str) -> Score:
    try:
        result = task.scorer(sample, text)
        return await result if inspect.isawaitable(result) else result
    except Exception as e:
        return Score(0.0, None, f"scorer raised {type(e).__name__}: {e}", "scorer_error")


async def _rescore_all(log: RunLog, tasks: dict[str, Task], out_path: Path,
                       concurrency: int) -> RescoreSummary:
    summary = RescoreSummary()
    samples = {name: {s.id: s for s in task.samples()} for name, task in tasks.items()}
    limiter = asyncio.Semaphore(concurrency)

    async def one(record: dict) -> dict:
        task = tasks.get(record["task"])
        sample = samples.get(record["task"], {}).get(record["sample_id"])
        # A failed call left no text; a redacted task kept none. An unscored grading
        # (infra_error, verifier_error, scorer_error) kept its text and is graded again.
        if task is None or sample is None or record.get("status") == "error" \
                or record.get("completion") is None or record.get("redacted"):
            summary.skipped += 1
            return record
        async with limiter:
            score = await _score(task, sample, record.get("completion") or "")
        previous = {"score": record.get("score"), "answer": record.get("answer"),
                    "status": record.get("status")}
        new = {**record, "score": None if score.status in UNSCORED else score.value,
               "answer": score.answer, "status": score.status,
               "explanation": score.explanation, "score_metadata": score.metadata or None,
               "previous": previous}
        summary.rescored += 1
        summary.changed += (new["score"], new["answer"], new["status"]) != tuple(previous.values())
        return new

    tmp = out_path.with_suffix(".tmp")
    tmp_index = score_index.index_path(tmp)
    tmp_index.unlink(missing_ok=True)  # left by an interrupted rescore: not to append to
    index = score_index.IndexWriter(tmp)  # gives up (and removes itself) on a bad record
    end = 0
    with open(tmp, "wb") as out:

        async def flush(batch: list[dict]) -> None:
            nonlocal end
            scored = await asyncio.gather(*map(one, batch))
            lines = [orjson.dumps(r) + b"\n" for r in scored]
            out.write(b"".join(lines))
            ends = list(accumulate(map(len, lines), initial=end))[1:]
            end = ends[-1] if ends else end
            index.append(scored, ends)

        try:
            batch: list[dict] = []
            for record in iter_records(log.samples_path):
                summary.records += 1
                batch.append(record)
                if len(batch) >= 1024:
                    await flush(batch)
                    batch.clear()
            await flush(batch)
        finally:
            index.close()
    # The old index describes the old file: gone first, so a kill between the two
    # renames leaves no index (readers then parse the JSON), never a wrong one.
    score_index.index_path(out_path).unlink(missing_ok=True)
    os.replace(tmp, out_path)  # an interrupted rescore leaves the previous file whole
    if tmp_index.exists():
        os.replace(tmp_index, score_index.index_path(out_path))
    return summary


def rescore(log: RunLog, tasks_dirs: list[str] | None = None, concurrency: int = 16,
            task_params: dict[str, str] | None = None) -> RescoreSummary:
    """``task_params`` override the run's own (``-T math.timeout=60`` settles checks that
    timed out)."""
    from evals.config import RunConfig
    from evals.run import build_tasks

    config = RunConfig.from_json(log.read_meta().get("config") or {}, str(log.meta_path))
    if tasks_dirs:
        config.tasks_dirs = list(tasks_dirs)
    if task_params:
        config.task_params = {**config.task_params, **task_params}
    built = {t.name: t for t in build_tasks(config)}
    if not built:
        raise TaskError(f"run {log.dir.name!r} names no tasks")
    return asyncio.run(_rescore_all(log, built, log.dir / RESCORED_FILE, concurrency))
