"""Reading a task's data rows with their places, shared by the built-in tasks.

Each reader yields ``(where, row)``: ``where`` is ``FILE:LINE`` for JSONL and
``FILE[INDEX]`` for a JSON list, so that a task can name the exact row it
rejects (``TaskError(f"{where}: missing 'answer'")``).
"""

from __future__ import annotations

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
