"""The results format: ``RUN_DIR/run.json`` and the append-only ``samples.jsonl``.

One JSON line per generation, written once, when the generation is scored
(docs/results.md lists the fields). A resumed run appends; when a key
(task, model, setting, sample_id, gen) appears twice, the later line wins,
which is how a retried error is superseded without rewriting anything.
"""

from __future__ import annotations

import os
import secrets
import time
from itertools import accumulate
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from evals import score_index

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
RESCORED_FILE = "samples.rescored.jsonl"  # written by `evals rescore`, beside the original
# Generations with these statuses were not scored (a failed call, a grader's
# infrastructure failing, a scorer raising): counted apart, never as wrong, and
# redone on resume (from the cached response: the model is not asked again).
# ``verifier_error`` is a verifier failing by itself (a crash, not a slow check).
UNSCORED = frozenset({"error", "infra_error", "scorer_error", "verifier_error"})


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def record_key(r: dict[str, Any]) -> tuple:
    return (r["task"], r["model"], r["setting"], r["sample_id"], r["gen"])


class RunLog:
    """One run's directory: metadata rewritten atomically, records only appended."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.samples_path = self.dir / SAMPLES_FILE
        self.meta_path = self.dir / RUN_FILE
        self._fd: int | None = None
        self._size = 0
        self._index: score_index.IndexWriter | None = None

    def records_path(self, rescored: bool = False) -> Path:
        """The records to read: the rescored ones when asked for and present."""
        path = self.dir / RESCORED_FILE
        return path if rescored and path.exists() else self.samples_path

    @property
    def exists(self) -> bool:
        return self.meta_path.exists()

    def read_meta(self) -> dict[str, Any]:
        try:
            meta = orjson.loads(self.meta_path.read_bytes())
        except orjson.JSONDecodeError as e:
            raise ValueError(f"{self.meta_path}: not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{self.meta_path}: not a run record (expected a JSON object)")
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.meta_path)  # never a half-written run.json

    def repair(self) -> int:
        """Drop a torn last line left by a kill mid-write; return bytes dropped."""
        if not self.samples_path.exists():
            return 0
        size = self.samples_path.stat().st_size
        if size == 0:
            return 0
        with open(self.samples_path, "rb+") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return 0
            chunk = 1 << 16
            pos = size
            while pos > 0:
                start = max(0, pos - chunk)
                f.seek(start)
                block = f.read(pos - start)
                cut = block.rfind(b"\n")
                if cut >= 0:
                    keep = start + cut + 1
                    break
                pos = start
            else:
                keep = 0
            f.truncate(keep)
            return size - keep

    def done_generations(self) -> dict[tuple, set[int]]:
        """(task, model, setting, sample_id) -> generations that need no retry."""
        done: dict[tuple, set[int]] = {}
        for r in iter_records(self.samples_path):
            key = (r["task"], r["model"], r["setting"], r["sample_id"])
            gens = done.setdefault(key, set())
            if r.get("status") in UNSCORED:
                gens.discard(r["gen"])
            else:
                gens.add(r["gen"])
        return done

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        # One write() of whole lines on an O_APPEND descriptor: a kill leaves
        # at most one torn line at the end, which repair() removes. The score
        # index (evals.score_index) follows each write: a kill in between only
        # leaves it behind the file, which its readers and sync() handle.
        if self._fd is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            score_index.sync(self.samples_path)
            self._fd = os.open(self.samples_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
            self._index = score_index.IndexWriter(self.samples_path)
        records = list(records)
        lines = [orjson.dumps(r) + b"\n" for r in records]
        data = memoryview(b"".join(lines))
        while data:
            data = data[os.write(self._fd, data):]
        ends = list(accumulate(map(len, lines), initial=self._size))[1:]
        self._size = ends[-1] if ends else self._size
        self._index.append(records, ends)

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            self._index.close()


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Stream records; a malformed line names its file and line."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as e:
                if not line.endswith(b"\n"):
                    return  # a torn last line from a killed run: not a record yet
                raise ValueError(f"{path}:{lineno}: not a JSON record ({e})") from None


def find_runs(results_dir: Path, shards: bool = False) -> list[RunLog]:
    """The runs under ``results_dir``, oldest first. Shard runs (``--shard I/N``) hold a
    slice of a grid each: left out unless ``shards``, since each alone would stand for
    the whole (``evals merge`` makes one run of them)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return []
    runs = [RunLog(p) for p in sorted(results_dir.iterdir()) if (p / RUN_FILE).exists()]
    metas = {r.dir.name: r.read_meta() for r in runs}
    if not shards:
        runs = [r for r in runs if not (metas[r.dir.name].get("config") or {}).get("shard")]
    return sorted(runs, key=lambda r: metas[r.dir.name].get("started", ""))
