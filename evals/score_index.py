"""``samples.jsonl.index``: the scoring fields of every record, fixed-width, for fast metrics.

Parsing JSON costs ~2 us a record whatever the parser (orjson and pyarrow's reader
measured alike), so 6.4M records cannot be summarised in seconds from JSON alone.
The writer therefore appends, beside each line of samples.jsonl, one 101-byte entry of
what the metrics read (``ENTRY``); ``evals.metrics_columnar`` reads the entries with
numpy (6.4M in under 2 s; bench/README.md).

samples.jsonl stays the truth and the index is a cache of it:

* each entry holds the byte offset where its line ends, so a reader uses only entries
  that end inside the file, and parses with orjson the lines the index lags behind (a
  kill between the two writes); a torn last entry is ignored;
* strings are 64-bit hashes (task/model/setting, sample id, answer): metrics only need
  equality. Names and settings come from re-reading one line per group, which also
  checks that entries and lines agree;
* ``sync`` brings the index level with the file before a run appends again: drops
  entries past the end (the file was repaired), indexes lines it lacks (or a whole
  file written before indexes existed). Deleting the index is always safe.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import orjson

from evals.metrics import VERDICT_FAILURES

SUFFIX = ".index2"  # names the format: a change to ENTRY takes a new one, so an old
# index is ignored (readers parse the JSON, resume rebuilds it), never misread.
# ".index2": flags gained NO_ANSWER, TIMEOUT, PARSE (a ".index" lacks them).
# end offset, group, sample id, answer (0 = none), category (0 = none), gen, flags,
# score (NaN: unscored), rank, cost, latency (NaN: none), prompt, completion, reasoning.
ENTRY = struct.Struct("<QQQQQIBddddddd")
FIELDS = [("end", "<u8"), ("group", "<u8"), ("problem", "<u8"), ("answer", "<u8"),
          ("category", "<u8"), ("gen", "<u4"), ("flags", "u1"), ("score", "<f8"), ("rank", "<f8"), ("cost", "<f8"),
          ("latency", "<f8"), ("prompt", "<f8"), ("completion", "<f8"), ("reasoning", "<f8")]
ERROR, CACHED, LENGTH, USAGE = 1, 2, 4, 8
NO_ANSWER, TIMEOUT, PARSE = 16, 32, 64  # a scored record's evals.metrics.VERDICT_FAILURES
_FAILURE_FLAGS = (NO_ANSWER, TIMEOUT, PARSE)
FLUSH_BYTES = 64 * ENTRY.size  # entries buffered before a write (RunLog.append's path)
_NAN = math.nan


def index_path(samples: Path) -> Path:
    return Path(str(samples) + SUFFIX)


def hash64(value: Any) -> int:
    """A stable 64-bit hash of a JSON value; never 0 (0 marks "no answer"). Numbers that
    Python calls equal hash alike (1, 1.0, True), as they are one key to the Aggregator."""
    if isinstance(value, (bool, int, float)) and value == value and abs(value) != math.inf \
            and float(value).is_integer():
        value = int(value)
    h = int.from_bytes(hashlib.blake2b(orjson.dumps(value), digest_size=8).digest(), "little")
    return h or 1


class Encoder:
    """Records -> entries. It runs once per record in a run's hot path, so it remembers
    each (task, model, setting)'s hash, and the last sample id's and metadata's (a
    sample's generations arrive together and share its metadata object)."""

    def __init__(self, fields: tuple[str, ...] | None = None) -> None:
        self.fields = fields  # the run's declared breakdown keys (breakdown_fields)
        self._groups: dict[tuple, int] = {}
        self._sample: tuple[Any, int] = (object(), 0)
        self._meta: tuple[Any, int] = (object(), 0)  # (a copy of the metadata, category)

    def _sample_hash(self, sample_id: Any) -> int:
        last, h = self._sample
        if sample_id != last or type(sample_id) is not type(last):
            h = hash64(sample_id)
            self._sample = (sample_id, h)
        return h

    def _category(self, meta: Any) -> int:
        seen, h = self._meta
        if meta != seen:
            h = category(meta, self.fields)
            self._meta = (dict(meta) if isinstance(meta, dict) else meta, h)
        return h

    def group(self, rec: Mapping[str, Any]) -> int:
        key = (rec["task"], rec["model"], rec["setting"])
        h = self._groups.get(key)
        if h is None:
            h = self._groups[key] = hash64(list(key))
        return h

    def entry(self, rec: Mapping[str, Any], end: int) -> bytes:
        score = rec.get("score")
        flags = 0
        status = rec.get("status")
        if score is None or status == "error":  # as evals.metrics.Aggregator
            flags, score = ERROR, _NAN
        elif (failure := VERDICT_FAILURES.get(status)) is not None:
            flags = _FAILURE_FLAGS[failure]
        if rec.get("cached"):
            flags |= CACHED
        if rec.get("finish_reason") == "length":
            flags |= LENGTH
        usage = rec.get("usage")
        if usage:
            flags |= USAGE
        else:
            usage = {}
        answer = rec.get("answer")
        return ENTRY.pack(
            end, self.group(rec), self._sample_hash(rec["sample_id"]),
            0 if answer is None else hash64(answer), self._category(rec.get("metadata")),
            rec["gen"], flags, float(score), _float(rec.get("rank")), _float(rec.get("cost")),
            _float(rec.get("latency")), float(usage.get("prompt") or 0.0),
            float(usage.get("completion") or 0.0), float(usage.get("reasoning") or 0.0))


def breakdown_fields(samples: Path | None) -> tuple[str, ...] | None:
    """The metadata keys a run's tasks declare their breakdowns by (its run.json); None
    for a run from before tasks declared them (the rules reports always used apply)."""
    from evals.task import Breakdown

    declared = None
    if samples is not None:
        try:
            declared = orjson.loads((Path(samples).parent / "run.json").read_bytes()).get(
                "breakdowns")
        except (OSError, orjson.JSONDecodeError, AttributeError):
            declared = None
    if not isinstance(declared, dict):
        return None
    specs = [Breakdown.from_json(b) for task in declared.values() for b in task]
    return tuple(dict.fromkeys(f for b in specs for f in b.fields))


def breaks_down(meta: Any, fields: tuple[str, ...] | None = None) -> bool:
    """Records with this metadata feed the report's breakdowns (``fields``: the run's
    declared keys; by default those of runs from before declarations)."""
    if not isinstance(meta, dict):
        return False
    if fields is None:  # a run from before tasks declared: domains, needle cells
        return "domain" in meta or ("length" in meta and "depth" in meta)
    return any(f in meta for f in fields)


def category(meta: Any, fields: tuple[str, ...] | None = None) -> int:
    """The hash of what a record's metadata breaks down by; 0 when it has none. Only a
    grouping key: readers map it back to one record's metadata for the labels."""
    if not breaks_down(meta, fields):
        return 0
    return hash64([meta.get(k) for k in (fields or ("domain", "subdomain", "variant",
                                                      "length", "depth"))])


def _float(value: Any) -> float:
    return _NAN if value is None else float(value)


class IndexWriter:
    """Appends entries for lines just appended to samples.jsonl (see RunLog.append)."""

    def __init__(self, samples: Path):
        self.path = index_path(samples)
        self.encoder = Encoder(breakdown_fields(samples))
        self._fd: int | None = None
        self._pending: list[bytes] = []
        self._bytes = 0
        self.broken = False  # a record it could not encode: the index was removed

    def append(self, records: Iterable[Mapping[str, Any]], ends: Iterable[int]) -> None:
        if self.broken:
            return
        try:
            data = b"".join(self.encoder.entry(r, e) for r, e in zip(records, ends))
        except (KeyError, TypeError, ValueError, OverflowError, struct.error):
            self.disable()  # readers fall back to parsing the JSON: slower, never wrong
            return
        self._pending.append(data)
        self._bytes += len(data)
        if self._bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the buffered entries. Between flushes the index lags the file, which
        readers and sync() handle as after a kill; buffering saves a write per record."""
        if not self._pending:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview(b"".join(self._pending))
        self._pending.clear()
        self._bytes = 0
        while view:
            view = view[os.write(self._fd, view):]

    def disable(self) -> None:
        self.broken = True
        self._pending.clear()
        self.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def sync(samples: Path) -> None:
    """Make the index cover exactly the complete lines of ``samples`` (before appending)."""
    path = index_path(samples)
    size = samples.stat().st_size if samples.exists() else 0
    have = path.stat().st_size if path.exists() else 0
    keep, covered = _inside(path, have // ENTRY.size, size) if have else (0, 0)
    if keep * ENTRY.size != have:
        with open(path, "r+b") as f:
            f.truncate(keep * ENTRY.size)
    if covered < size:
        writer = IndexWriter(samples)
        try:
            batch: list[tuple[dict, int]] = []
            for item in iter_lines(samples, covered, size):
                batch.append(item)
                if len(batch) == 10_000:
                    writer.append([r for r, _ in batch], [e for _, e in batch])
                    batch.clear()
            writer.append([r for r, _ in batch], [e for _, e in batch])
        except ValueError:  # a malformed line: readers will name it; no index meanwhile
            writer.disable()
        finally:
            writer.close()


def iter_lines(samples: Path, start: int, stop: int, unterminated: bool = False
               ) -> Iterator[tuple[dict, int]]:
    """The complete records between two byte offsets, with the offset each one ends at.
    ``unterminated``: also a last line without its newline that parses (iter_records
    reads it; a writer must not, as repair() drops it before appending)."""
    with open(samples, "rb") as f:
        f.seek(start)
        pos = start
        for line in f:
            if pos + len(line) > stop:
                return
            if not line.endswith(b"\n"):
                if unterminated:
                    try:
                        yield orjson.loads(line), pos + len(line)
                    except orjson.JSONDecodeError:
                        pass  # torn by a kill: not a record yet
                return
            pos += len(line)
            if line.strip():
                try:
                    yield orjson.loads(line), pos
                except orjson.JSONDecodeError as e:
                    raise ValueError(f"{samples}: bad JSON at byte {pos - len(line)} ({e})") from None


class StaleIndex(Exception):
    """The index does not describe its records file (changed by hand, or while read)."""


@dataclass
class Entries:
    """The entries for every complete line of a records file, read in chunks: the index's
    first ``count`` entries (those that end inside the file), then ``tail``, entries
    encoded on reading for the lines the index lags behind."""

    path: Path  # the index file
    count: int
    tail: bytes = b""

    def __len__(self) -> int:
        return self.count + len(self.tail) // ENTRY.size

    def chunks(self, size: int = 1 << 20) -> Iterator[Any]:
        """numpy structured arrays of at most ``size`` entries, in file order."""
        import numpy as np

        dtype = np.dtype(FIELDS)
        buffer = np.empty(min(size, self.count), dtype=dtype)  # one buffer: no page faults
        with open(self.path, "rb") as f:
            for start in range(0, self.count, size):
                chunk = buffer[:min(size, self.count - start)]
                if f.readinto(memoryview(chunk).cast("B")) != chunk.nbytes:
                    raise StaleIndex(f"{self.path}: shorter than when it was opened")
                yield chunk  # valid until the next one is read
        if self.tail:
            yield np.frombuffer(self.tail, dtype=dtype)

    def unpack(self, i: int) -> tuple:
        """Entry ``i``'s fields, in ``ENTRY``'s order."""
        if i < self.count:
            with open(self.path, "rb") as f:
                f.seek(i * ENTRY.size)
                return ENTRY.unpack(f.read(ENTRY.size))
        return ENTRY.unpack_from(self.tail, (i - self.count) * ENTRY.size)


def load(samples: Path) -> Entries | None:
    """The usable entries of ``samples``'s index; None when there is none worth using
    (missing, or covering less than half the file: then parsing the JSON is as fast).
    That the entries ascend is checked by their reader (ColumnarMetrics)."""
    path = index_path(samples)
    if not samples.exists() or not path.exists():
        return None
    size = samples.stat().st_size
    entries = path.stat().st_size // ENTRY.size
    inside, covered = _inside(path, entries, size)
    if covered * 2 < size:
        return None
    tail = b""
    if covered < size:
        encoder = Encoder(breakdown_fields(samples))
        try:
            tail = b"".join(encoder.entry(r, e)
                            for r, e in iter_lines(samples, covered, size, unterminated=True))
        except (KeyError, TypeError, ValueError, OverflowError, struct.error):
            return None
    return Entries(path, inside, tail)


def _inside(path: Path, entries: int, size: int) -> tuple[int, int]:
    """How many entries end inside a file of ``size`` bytes, and where the last of them
    ends (entries ascend: a binary search)."""
    def end_of(i: int) -> int:
        f.seek(i * ENTRY.size)
        return ENTRY.unpack(f.read(ENTRY.size))[0]

    with open(path, "rb") as f:
        lo, hi = 0, entries  # entries before lo end inside; from hi on they do not
        while lo < hi:
            mid = (lo + hi) // 2
            if end_of(mid) <= size:
                lo = mid + 1
            else:
                hi = mid
        return lo, end_of(lo - 1) if lo else 0


def read_record(samples: Path, entries: Entries, i: int) -> dict | None:
    """The record of entry ``i``, re-read from samples.jsonl; None unless it matches the
    entry (its group, sample id and gen): the check that index and file agree."""
    end, group, problem, _, _, gen, *_ = entries.unpack(i)
    start = entries.unpack(i - 1)[0] if i else 0
    with open(samples, "rb") as f:
        f.seek(start)
        line = f.read(end - start)
    try:
        rec = orjson.loads(line)
        same = (hash64([rec["task"], rec["model"], rec["setting"]]) == group
                and hash64(rec["sample_id"]) == problem and rec["gen"] == gen)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return rec if same else None
