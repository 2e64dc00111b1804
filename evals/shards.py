"""Shards: one run's grid split over machines by any scheduler, then merged back.

``evals run ... --shard I/N`` keeps the problems whose ``(task, sample id)`` hash
falls in shard ``I`` of ``N`` (0-based): every model and setting of a problem stays in
one shard, so a shard's records are a whole slice of the grid and shards never
overlap. The slice depends only on the task name and the sample id, so it is the
same on every machine and on resume. ``evals merge`` writes one run from the shards
of one configuration, refusing shards of different configurations, a shard given
twice, records written twice, and (unless asked) a missing or unfinished shard.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from evals.runner import ConfigError


def parse_shard(text: str) -> list[int]:
    """``"I/N"`` -> ``[I, N]``, with ``0 <= I < N``."""
    index, slash, count = text.strip().partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = -1
    if not slash or n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: expected I/N with 0 <= I < N (e.g. 0/4; a Slurm "
                          "array's $SLURM_ARRAY_TASK_ID or a Kubernetes Job's "
                          "$JOB_COMPLETION_INDEX is I)")
    return [i, n]


def shard_of(task: str, sample_id: str, count: int) -> int:
    digest = hashlib.blake2b(f"{task}\0{sample_id}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def in_shard(task: str, sample_id: str, shard: list[int]) -> bool:
    return shard_of(task, str(sample_id), shard[1]) == shard[0]


@dataclass
class MergeSummary:
    runs: int
    records: int
    shards: list[int]
    missing: list[int]


def merge(results_dir: Path, run_ids: list[str], out_id: str, *,
          allow_partial: bool = False) -> MergeSummary:
    """Write run ``out_id`` under ``results_dir`` from the shard runs ``run_ids``."""
    from evals import score_index
    from evals.config import RunConfig
    from evals.records import RunLog, iter_records

    if len(run_ids) < 1:
        raise ConfigError("evals merge: name the shard runs to merge")
    out = RunLog(results_dir / out_id)
    if out.exists:
        raise ConfigError(f"evals merge: run {out_id!r} exists already; choose another --run-id")
    logs = []
    for run_id in run_ids:
        log = RunLog(results_dir / run_id)
        if not log.exists:
            raise ConfigError(f"evals merge: no run {run_id!r} under {results_dir}")
        meta = log.read_meta()
        config = RunConfig.from_json(meta.get("config") or {}, str(log.meta_path))
        if config.shard is None:
            raise ConfigError(f"evals merge: run {run_id!r} is not a shard (run with --shard I/N)")
        logs.append((run_id, log, meta, config))
    first_id, _, _, first = logs[0]
    count = first.shard[1]
    seen: dict[int, str] = {}
    for run_id, _, meta, config in logs:
        unsharded = RunConfig(**{**config.__dict__, "shard": None})
        if diffs := RunConfig(**{**first.__dict__, "shard": None}).differences(unsharded):
            raise ConfigError(f"evals merge: {run_id!r} was run with another configuration than "
                              f"{first_id!r} ({diffs[0]})")
        i, n = config.shard
        if n != count:
            raise ConfigError(f"evals merge: {run_id!r} is shard {i}/{n}, {first_id!r} one of "
                              f"{count}")
        if i in seen:
            raise ConfigError(f"evals merge: shard {i}/{n} given twice ({seen[i]!r}, {run_id!r})")
        seen[i] = run_id
        if meta.get("status") != "completed" and not allow_partial:
            raise ConfigError(f"evals merge: shard {run_id!r} is {meta.get('status')!r}, not "
                              "completed: resume it first, or pass --allow-partial")
    missing = [i for i in range(count) if i not in seen]
    if missing and not allow_partial:
        raise ConfigError(f"evals merge: shards {', '.join(f'{i}/{count}' for i in missing)} "
                          "are missing; give every shard, or pass --allow-partial")
    out.dir.mkdir(parents=True)
    keys: dict[tuple, str] = {}
    records = 0
    tmp = out.samples_path.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as f:
            for run_id, log, _, _ in logs:
                for r in iter_records(log.samples_path):
                    key = (r.get("task"), r.get("model"), r.get("setting"),
                           str(r.get("sample_id")), r.get("gen"))
                    owner = keys.setdefault(key[:4], run_id)
                    if owner != run_id:
                        raise ConfigError(f"evals merge: {key[3]!r} of task {key[0]!r} has "
                                          f"records in {owner!r} and {run_id!r}")
                    f.write(orjson.dumps(r) + b"\n")
                    records += 1
        os.replace(tmp, out.samples_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        for leftover in out.dir.iterdir():
            leftover.unlink()
        out.dir.rmdir()
        raise
    score_index.sync(out.samples_path)
    metas = [m for _, _, m, _ in logs]
    merged_config = first.to_json()
    merged_config["shard"] = None
    counts = {k: sum((m.get("counts") or {}).get(k, 0) for m in metas)
              for k in ("generations", "done", "errors", "cached")}
    out.write_meta({
        "run_id": out_id, "command": ["evals", "merge", *run_ids, "--run-id", out_id],
        "config": merged_config, "settings": metas[0].get("settings"),
        "versions": metas[0].get("versions"), "git": metas[0].get("git"),
        "started": min(m.get("started") or "" for m in metas),
        "ended": max(m.get("ended") or "" for m in metas) or _now(),
        "resumed": [], "status": "completed" if all(
            m.get("status") == "completed" for m in metas) and not missing else "partial",
        "counts": counts,
        "merged_from": [{"run": r, "shard": c.shard} for r, _, _, c in logs],
        **({"missing_shards": missing} if missing else {})})
    return MergeSummary(len(logs), records, sorted(seen), missing)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def is_shard(meta: dict[str, Any]) -> bool:
    return bool((meta.get("config") or {}).get("shard"))
