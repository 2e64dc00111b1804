"""``evals export RUN --format parquet|csv|jsonl``: one row per generation, flat columns.

Each record of ``samples.jsonl`` becomes one row. Top-level scalars keep their names;
the nested objects are flattened one level into prefixed columns: ``settings.effort``
becomes ``settings_effort``, and likewise ``usage_``, ``score_metadata_``, ``metadata_``,
``ranker_`` and ``applied_``. Values nested deeper (lists, objects) are JSON text.
Records are exported as written (a retried generation appears twice; the later line
is the one the metrics count): ``superseded`` is true on the earlier ones.

The columns are the union over every record, found in a first pass, so every format
has one fixed schema; a column whose values mix types is text (JSON for non-strings).
Parquet is written through pyarrow in row groups, CSV through the csv module; memory
stays one batch of rows.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator

import orjson

from evals.records import iter_records, record_key

FORMATS = ("parquet", "csv", "jsonl")
FLATTEN = ("settings", "usage", "score_metadata", "metadata", "ranker", "applied")
BATCH = 50_000


def flatten(rec: dict[str, Any]) -> dict[str, Any]:
    """One record as a flat row (see the module docstring)."""
    row: dict[str, Any] = {}
    for key, value in rec.items():
        if key in FLATTEN and isinstance(value, dict):
            for sub, v in value.items():
                row[f"{key}_{sub}"] = _scalar(v)
        else:
            row[key] = _scalar(value)
    return row


def _scalar(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return orjson.dumps(v).decode()
    return v


def _kind(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return "str"


def schema(path: Path) -> tuple[dict[str, str], set[int]]:
    """Every column in first-seen order with its type (bool, int, float, str), and the
    line numbers (0-based among records) of superseded records."""
    kinds: dict[str, set[str]] = {}
    last: dict[tuple, int] = {}
    superseded: set[int] = set()
    for n, rec in enumerate(iter_records(path)):
        key = record_key(rec)
        if key in last:
            superseded.add(last[key])
        last[key] = n
        for col, v in flatten(rec).items():
            k = _kind(v)
            seen = kinds.setdefault(col, set())
            if k is not None:
                seen.add(k)
    out = {}
    for col, ks in kinds.items():
        if ks <= {"int"}:
            out[col] = "int" if ks else "str"
        elif ks <= {"int", "float"}:
            out[col] = "float"
        elif ks == {"bool"}:
            out[col] = "bool"
        else:
            out[col] = "str"
    out["superseded"] = "bool"
    return out, superseded


def _cast(v: Any, kind: str) -> Any:
    if v is None:
        return None
    if kind == "float":
        return float(v)
    if kind == "str" and not isinstance(v, str):
        return orjson.dumps(v).decode()
    return v


def rows(path: Path, columns: dict[str, str], superseded: set[int]) -> Iterator[dict[str, Any]]:
    for n, rec in enumerate(iter_records(path)):
        row = flatten(rec)
        row["superseded"] = n in superseded
        yield {c: _cast(row.get(c), k) for c, k in columns.items()}


def export(path: Path, out: Path, fmt: str) -> int:
    """Write ``path``'s records to ``out`` in ``fmt``; returns the rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    columns, superseded = schema(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        return _parquet(path, out, columns, superseded)
    count = 0
    with open(out, "w", encoding="utf-8", newline="") as f:
        if fmt == "csv":
            writer = csv.DictWriter(f, fieldnames=list(columns))
            writer.writeheader()
            for row in rows(path, columns, superseded):
                writer.writerow(row)
                count += 1
        else:
            for row in rows(path, columns, superseded):
                f.write(orjson.dumps(row).decode() + "\n")
                count += 1
    return count


def _parquet(path: Path, out: Path, columns: dict[str, str], superseded: set[int]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("Parquet needs pyarrow: pip install 'evals[export]'") from None
    types = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    schema_ = pa.schema([(c, types[k]) for c, k in columns.items()])
    count = 0
    tmp = out.with_name(out.name + ".tmp")
    with pq.ParquetWriter(tmp, schema_) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows(path, columns, superseded):
            batch.append(row)
            if len(batch) == BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema_))
                count += len(batch)
                batch.clear()
        if batch or not count:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema_))
            count += len(batch)
    tmp.replace(out)
    return count

