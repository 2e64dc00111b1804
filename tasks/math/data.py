"""Reading math problems: JSONL, JSON, CSV/TSV, parquet, a directory of
those, the bundled sample, or a Hugging Face hub dataset.

Every row becomes a :class:`Problem`; a malformed one raises a TaskError
naming ``file:line`` (``file:row N`` for parquet). Field names are matched
with common aliases (``question`` for ``problem``, ``final_answer`` for
``answer``, ``unique_id`` for ``id``...) and can be mapped explicitly with
``-T fields=problem=Question,answer=Answer``. ``pandas`` (parquet) and
``datasets`` (hub) are imported only when such a source is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from evals.task import TaskError
from tasks.hub import load_dataset
from tasks.rows import csv_rows, json_rows, jsonl_rows

SAMPLE_FILE = Path(__file__).with_name("sample.jsonl")
SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
FIELDS = ("id", "problem", "answer", "solution", "verifier")
ALIASES = {
    "id": ("id", "unique_id", "problem_id", "uid", "idx", "index"),
    "problem": ("problem", "question", "prompt", "input"),
    "answer": ("answer", "final_answer", "expected_answer", "target", "gold"),
    "solution": ("solution", "reference_solution", "worked_solution"),
    "verifier": ("verifier",),
}
HUB_ALIASES = {"math500": "HuggingFaceH4/MATH-500", "math-500": "HuggingFaceH4/MATH-500"}


@dataclass(frozen=True)
class Problem:
    id: str
    problem: str
    answer: str
    solution: str | None
    verifier: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # "file:line", for messages


def parse_fields(spec: str) -> dict[str, str]:
    """``problem=Question,answer=Answer`` -> ``{"problem": "Question", ...}``."""
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        ours, eq, theirs = part.partition("=")
        if not eq or ours.strip() not in FIELDS or not theirs.strip():
            raise TaskError(f"math: -T fields={spec!r}: each item is OURS=THEIRS with OURS "
                            f"one of {', '.join(FIELDS)}")
        mapping[ours.strip()] = theirs.strip()
    return mapping


def _lookup(row: dict[str, Any], name: str, mapping: dict[str, str]) -> tuple[str | None, Any]:
    """(column used, value) for one of our fields; an explicit mapping wins."""
    if name in mapping:
        column = mapping[name]
        return (column, row.get(column)) if column in row else (None, None)
    lowered = {str(k).lower(): k for k in row}
    for alias in ALIASES[name]:
        if alias in lowered:
            return lowered[alias], row[lowered[alias]]
    return None, None


def _text(value: Any, where: str, name: str, required: bool) -> str | None:
    if value is None or (isinstance(value, float) and value != value):  # NaN: an empty cell
        if required:
            raise TaskError(f"{where}: missing field {name!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TaskError(f"{where}: field {name!r} is a {type(value).__name__}, not text")
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)  # pandas reads an integer column with gaps as floats
    text = str(value).strip()
    if required and not text:
        raise TaskError(f"{where}: empty field {name!r}")
    return text or None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def to_problems(rows: Iterable[tuple[str, Any]], mapping: dict[str, str],
                default_prefix: str) -> list[Problem]:
    """Validate ``(where, row)`` pairs; ids default to ``PREFIX-N`` (row order)."""
    problems: list[Problem] = []
    for n, (where, row) in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise TaskError(f"{where}: expected an object with fields problem, answer; "
                            f"got {type(row).__name__}")
        used: dict[str, str | None] = {}
        values: dict[str, str | None] = {}
        for name in FIELDS:
            column, value = _lookup(row, name, mapping)
            if column is None and name in ("problem", "answer"):
                wanted = mapping.get(name, name)
                raise TaskError(f"{where}: missing field {wanted!r} (the row has: "
                                f"{', '.join(map(str, row)) or 'nothing'}; map names with "
                                f"-T fields={name}=COLUMN)")
            used[name] = column
            values[name] = _text(value, where, name, name in ("problem", "answer"))
        metadata = {str(k): _jsonable(v) for k, v in row.items() if k not in used.values()}
        problems.append(Problem(values["id"] or f"{default_prefix}-{n}",
                                values["problem"] or "", values["answer"] or "",
                                values["solution"], values["verifier"], metadata, where))
    return problems


# ------------------------------------------------------------------ files


def _parquet_rows(path: Path, label: str) -> Iterator[tuple[str, Any]]:
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError as e:
        raise TaskError(f"{label}: reading parquet needs pandas and pyarrow ({e})") from None
    except Exception as e:  # noqa: BLE001 - pyarrow's many error types
        raise TaskError(f"{label}: cannot read parquet: {type(e).__name__}: {e}") from None
    for i, row in enumerate(frame.to_dict(orient="records"), 1):
        yield f"{label}:row {i}", {k: v for k, v in row.items() if v is not None}


def file_rows(path: Path, label: str) -> Iterator[tuple[str, Any]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return jsonl_rows(path, label)
    if suffix == ".json":
        return json_rows(path, label)
    if suffix == ".parquet":
        return _parquet_rows(path, label)
    if suffix in (".csv", ".tsv"):
        rows = csv_rows(path, label, "\t" if suffix == ".tsv" else ",")
        return ((where, {k: v for k, v in row.items() if v != ""}) for where, row in rows)
    raise TaskError(f"math: {label}: unknown file type {suffix!r} "
                    f"(expected {', '.join(SUFFIXES)})")


def read_path(path: str, mapping: dict[str, str]) -> list[Problem]:
    """Problems from a file, a directory of files (sorted, recursive) or ``sample``."""
    if path.strip().lower() == "sample":
        return to_problems(file_rows(SAMPLE_FILE, "sample.jsonl"), mapping, "sample")
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES
                       and not any(part.startswith(".") for part in f.relative_to(p).parts))
        if not files:
            raise TaskError(f"math: -T path={path}: no {', '.join(SUFFIXES)} files in the directory")
        problems: list[Problem] = []
        for f in files:
            rel = f.relative_to(p).with_suffix("").as_posix()
            problems += to_problems(file_rows(f, str(f)), mapping, rel)
    elif p.is_file():
        problems = to_problems(file_rows(p, str(path)), mapping, p.stem)
    else:
        raise TaskError(f"math: -T path={path}: no such file or directory "
                        f"(or use path=sample for the bundled problems)")
    if not problems:
        raise TaskError(f"math: -T path={path}: no problems found")
    return check_ids(problems)


def check_ids(problems: list[Problem]) -> list[Problem]:
    seen: dict[str, str] = {}
    for p in problems:
        if p.id in seen:
            raise TaskError(f"{p.where}: duplicate id {p.id!r} (first at {seen[p.id]})")
        seen[p.id] = p.where
    return problems


# ------------------------------------------------------------------ hub

def read_hub(dataset: str, subset: str | None, split: str, mapping: dict[str, str],
             revision: str | None = None) -> list[Problem]:
    """Problems from a hub dataset through ``datasets`` (and its local cache)."""
    name = HUB_ALIASES.get(dataset.strip().lower(), dataset.strip())
    ds = load_dataset("math", name, subset, split, revision=revision,
                      what=f"{name}{'/' + subset if subset else ''} split {split!r}",
                      hint="Pass -T path=FILE for local data")
    label = f"{name}:{split}"
    problems = to_problems(((f"{label} row {i}", dict(row)) for i, row in enumerate(ds, 1)),
                           mapping, name.rsplit("/", 1)[-1])
    if not problems:
        raise TaskError(f"math: {label} has no rows")
    return check_ids(problems)
