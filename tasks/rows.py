"""Reading a task's data rows with their places, shared by the built-in tasks.

Each reader yields ``(where, row)``: ``where`` is ``FILE:LINE`` for JSONL and
CSV and ``FILE[INDEX]`` for a JSON list, so that a task can name the exact row it
rejects (``TaskError(f"{where}: missing 'answer'")``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from evals.task import TaskError


def jsonl_rows(path: Path, label: str) -> Iterator[tuple[str, Any]]:
    """One JSON value per non-blank line."""
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield f"{label}:{number}", json.loads(line)
                except json.JSONDecodeError as e:
                    raise TaskError(f"{label}:{number}: invalid JSON: {e.msg}") from None


def json_rows(path: Path, label: str, *, single_object: bool = False,
              noun: str = "rows") -> Iterator[tuple[str, Any]]:
    """A JSON list of rows (or, with ``single_object``, one object as a one-row file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise TaskError(f"{label}:{e.lineno}: invalid JSON: {e.msg}") from None
    if single_object and isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise TaskError(f"{label}: expected a JSON list of {noun} (or use JSONL)")
    for i, row in enumerate(data):
        yield f"{label}[{i}]", row


def csv_rows(path: Path, label: str, delimiter: str = ",",
             required: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, str]]]:
    """Rows of a CSV/TSV with a header, each at the line where its record starts.

    Blank rows are skipped; a row with more fields than the header is an error
    (an unquoted delimiter); a short row lacks its last columns.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        except csv.Error as e:
            raise TaskError(f"{label}:1: bad CSV: {e}") from None
        for column in required:
            if column not in header:
                raise TaskError(f"{label}:1: missing column {column!r} "
                                f"(the header has: {', '.join(header)})")
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise TaskError(f"{label}:{start}: bad CSV: {e}") from None
            if not any(x.strip() for x in fields):
                continue
            if len(fields) > len(header):
                raise TaskError(f"{label}:{start}: {len(fields)} fields, but the header has "
                                f"{len(header)} (an unquoted comma?)")
            yield f"{label}:{start}", dict(zip(header, fields))
