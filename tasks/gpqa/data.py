"""Reading GPQA rows (local CSV/JSONL, the bundled sample, the hub) and the
deterministic per-question shuffle of the four options."""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from evals.task import TaskError
from tasks.hub import load_dataset
from tasks.rows import csv_rows, json_rows, jsonl_rows

HUB_DATASET = "Idavidrein/gpqa"
SUBSETS = ("diamond", "main", "extended")
SAMPLE_FILE = Path(__file__).with_name("sample.csv")
SAMPLE_NAMES = ("sample",)  # -T path=sample: the bundled demo questions

QUESTION = "Question"
OPTION_COLUMNS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                  "Incorrect Answer 3")
REQUIRED = (QUESTION, *OPTION_COLUMNS)
RECORD_ID = "Record ID"
DOMAIN = "High-level domain"
SUBDOMAIN = "Subdomain"
# The vote identity: a Score.answer names the option, never its (shuffled) letter.
OPTION_IDS = ("correct", "incorrect1", "incorrect2", "incorrect3")
LETTERS = "ABCD"

# All 24 orders of the 4 options, in itertools' (lexicographic) order.
PERMUTATIONS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(4)))


@dataclass(frozen=True)
class Record:
    """One question; ``options`` in canonical order (correct, incorrect 1..3)."""

    record_id: str
    question: str
    options: tuple[str, str, str, str]
    domain: str
    subdomain: str
    where: str  # "file:line", for messages


def permutation(record_id: str, seed: int) -> tuple[int, ...]:
    """Which canonical option each letter shows: ``perm[letter_index] = option_index``.

    ``sha256("gpqa:{seed}:{record_id}")``, first 8 bytes big-endian, modulo 24,
    indexes :data:`PERMUTATIONS`. Stable across Python versions, machines and
    runs (never ``hash()``), and the correct letter is uniform over A-D.
    """
    digest = hashlib.sha256(f"gpqa:{seed}:{record_id}".encode("utf-8")).digest()
    return PERMUTATIONS[int.from_bytes(digest[:8], "big") % len(PERMUTATIONS)]


def correct_letter(record_id: str, seed: int) -> str:
    return LETTERS[permutation(record_id, seed).index(0)]


# ---------------------------------------------------------------- rows


def _cell(row: dict[str, Any], column: str, where: str, required: bool) -> str:
    if column not in row or row[column] is None:
        if required:
            raise TaskError(f"{where}: missing column {column!r}")
        return ""
    value = row[column]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TaskError(f"{where}: column {column!r} is a {type(value).__name__}, not text")
    text = str(value).strip()
    if required and not text:
        raise TaskError(f"{where}: empty {column!r}")
    return text


def to_records(rows: Iterable[tuple[str, dict[str, Any]]]) -> list[Record]:
    """Validate ``(where, row)`` pairs in GPQA's schema into records."""
    records: list[Record] = []
    seen: dict[str, str] = {}
    for where, row in rows:
        if not isinstance(row, dict):
            raise TaskError(f"{where}: expected an object with GPQA's columns, "
                            f"got {type(row).__name__}")
        question = _cell(row, QUESTION, where, True)
        options = tuple(_cell(row, c, where, True) for c in OPTION_COLUMNS)
        record_id = _cell(row, RECORD_ID, where, False)
        if not record_id:  # stable fallback, so the shuffle still follows the content
            record_id = "q-" + hashlib.sha256(question.encode("utf-8")).hexdigest()[:12]
        if record_id in seen:
            raise TaskError(f"{where}: duplicate {RECORD_ID} {record_id!r} "
                            f"(first at {seen[record_id]})")
        seen[record_id] = where
        records.append(Record(record_id, question, options,  # type: ignore[arg-type]
                              _cell(row, DOMAIN, where, False),
                              _cell(row, SUBDOMAIN, where, False), where))
    return records


def read_file(path: str | os.PathLike) -> list[Record]:
    """Records from a CSV, JSONL (or JSON list) file in GPQA's own columns."""
    p = Path(path)
    label = str(path)
    if not p.is_file():
        raise TaskError(f"gpqa: -T path={label}: no such file (use a .csv or .jsonl in "
                        f"GPQA's columns, or path=sample for the bundled questions)")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = jsonl_rows(p, label)
    elif suffix == ".json":
        rows = json_rows(p, label)
    elif suffix == ".tsv":
        rows = csv_rows(p, label, "\t", REQUIRED)
    elif suffix in (".csv", ".txt") or not suffix:
        rows = csv_rows(p, label, ",", REQUIRED)
    else:
        raise TaskError(f"gpqa: -T path={label}: unknown file type {suffix!r} "
                        f"(expected .csv, .tsv, .jsonl or .json)")
    records = to_records(rows)
    if not records:
        raise TaskError(f"{label}: no questions in the file")
    return records


# ---------------------------------------------------------------- hub

def hub_config(subset: str) -> str:
    return f"gpqa_{subset}"


def load_hub(subset: str, cache_dir: str | None = None) -> list[Record]:
    """The real GPQA from the hub (gated), through ``datasets`` and its cache."""
    config = hub_config(subset)
    hint = (f"GPQA ({HUB_DATASET}, config {config}) is a gated dataset: accept its terms "
            f"at https://huggingface.co/datasets/{HUB_DATASET}, then run "
            f"`huggingface-cli login` (or set HF_TOKEN); or pass -T path=FILE.csv|.jsonl "
            f"in GPQA's columns, or -T path=sample for the bundled demo questions")
    ds = load_dataset("gpqa", HUB_DATASET, config, "train", what=f"{HUB_DATASET} ({config})",
                      hint=hint, cache_dir=cache_dir)
    rows = ((f"{HUB_DATASET}:{config} row {i}", dict(row)) for i, row in enumerate(ds))
    records = to_records(rows)
    if not records:
        raise TaskError(f"gpqa: {HUB_DATASET} ({config}) has no rows")
    return records
