"""Instances in SWE-bench's schema, from a local file, the hub or the bundled set.

Every problem in a row is reported with its place (``file:line`` for JSONL,
``file[i]`` for JSON and parquet, ``dataset row i`` for the hub).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from evals.task import TaskError
from tasks.rows import json_rows, jsonl_rows

HUB_DEFAULT = "princeton-nlp/SWE-bench_Verified"
REQUIRED = ("instance_id", "repo", "base_commit", "patch", "test_patch", "problem_statement",
            "FAIL_TO_PASS", "PASS_TO_PASS")
# Newer dataset revisions carry these; honoured when present.
OPTIONAL = ("hints_text", "version", "environment_setup_commit", "eval_script", "image",
            "log_parser", "env_spec", "created_at")


@dataclass
class Instance:
    instance_id: str
    repo: str  # owner/name
    base_commit: str
    patch: str
    test_patch: str
    problem_statement: str
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    hints_text: str = ""
    version: str = ""
    environment_setup_commit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # eval_script, image, log_parser, env_spec
    where: str = ""

    def to_metadata(self) -> dict[str, Any]:
        """What a Sample carries: everything grading needs. Records keep all but the
        ``_``-prefixed patches (large, and the gold one is the answer key)."""
        return {"instance_id": self.instance_id, "repo": self.repo,
                "base_commit": self.base_commit, "version": self.version,
                "environment_setup_commit": self.environment_setup_commit,
                "_test_patch": self.test_patch, "FAIL_TO_PASS": self.fail_to_pass,
                "PASS_TO_PASS": self.pass_to_pass, "_gold_patch": self.patch,
                **{k: v for k, v in self.extra.items() if v not in (None, "")}}

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> "Instance":
        extra = {k: meta[k] for k in OPTIONAL if k in meta and k not in
                 ("hints_text", "version", "environment_setup_commit")}
        return cls(meta["instance_id"], meta["repo"], meta["base_commit"],
                   meta.get("_gold_patch", ""), meta.get("_test_patch", ""), "",
                   list(meta.get("FAIL_TO_PASS", [])), list(meta.get("PASS_TO_PASS", [])),
                   version=str(meta.get("version") or ""),
                   environment_setup_commit=meta.get("environment_setup_commit") or "",
                   extra=extra)


def _test_list(value: Any, column: str, where: str) -> list[str]:
    if isinstance(value, str):  # SWE-bench's hub rows hold JSON text
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as e:
            raise TaskError(f"{where}: {column} is not a JSON list: {e.msg}") from None
    if hasattr(value, "tolist"):  # a numpy array from parquet
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise TaskError(f"{where}: {column} must be a list of test ids (or its JSON text)")
    return list(value)


def to_instance(row: Any, where: str) -> Instance:
    if not isinstance(row, dict):
        raise TaskError(f"{where}: expected an object in SWE-bench's schema, "
                        f"got {type(row).__name__}")
    for column in REQUIRED:
        if row.get(column) is None:
            raise TaskError(f"{where}: missing {column!r}")
    for column in ("instance_id", "repo", "base_commit", "patch", "test_patch"):
        if not isinstance(row[column], str) or not row[column].strip():
            raise TaskError(f"{where}: {column!r} must be non-empty text")
    if row["repo"].count("/") != 1:
        raise TaskError(f"{where}: repo {row['repo']!r} is not owner/name")
    f2p = _test_list(row["FAIL_TO_PASS"], "FAIL_TO_PASS", where)
    if not f2p:
        raise TaskError(f"{where}: FAIL_TO_PASS is empty: nothing would show the fix")
    extra = {k: row[k] for k in OPTIONAL[3:] if row.get(k) not in (None, "")}
    if "env_spec" in extra and isinstance(extra["env_spec"], str):
        try:
            extra["env_spec"] = json.loads(extra["env_spec"])
        except json.JSONDecodeError as e:
            raise TaskError(f"{where}: env_spec is not JSON: {e.msg}") from None
    return Instance(row["instance_id"].strip(), row["repo"].strip(), row["base_commit"].strip(),
                    row["patch"], row["test_patch"], str(row["problem_statement"]), f2p,
                    _test_list(row["PASS_TO_PASS"], "PASS_TO_PASS", where),
                    str(row.get("hints_text") or ""), str(row.get("version") or ""),
                    str(row.get("environment_setup_commit") or ""), extra, where)






def _parquet(path: Path, label: str) -> Iterator[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TaskError(f"{label}: reading parquet needs pyarrow (pip install pyarrow)") from None
    for i, row in enumerate(pq.read_table(path).to_pylist()):
        yield f"{label}[{i}]", row


def read_file(path: str | os.PathLike) -> list[Instance]:
    p, label = Path(path).expanduser(), str(path)
    if not p.is_file():
        raise TaskError(f"swe: -T instances={label}: no such file (use .jsonl, .json or "
                        f".parquet in SWE-bench's schema, `bundled`, or hub[:NAME])")
    suffix = p.suffix.lower()
    readers = {".jsonl": jsonl_rows, ".ndjson": jsonl_rows, ".parquet": _parquet,
               ".json": lambda p, label: json_rows(p, label, single_object=True, noun="instances")}
    if suffix not in readers:
        raise TaskError(f"swe: -T instances={label}: unknown file type {suffix!r} "
                        f"(expected .jsonl, .json or .parquet)")
    return to_instances(readers[suffix](p, label))


def to_instances(rows: Iterable[tuple[str, Any]]) -> list[Instance]:
    out: list[Instance] = []
    seen: dict[str, str] = {}
    for where, row in rows:
        inst = to_instance(row, where)
        if inst.instance_id in seen:
            raise TaskError(f"{where}: duplicate instance_id {inst.instance_id!r} "
                            f"(first at {seen[inst.instance_id]})")
        seen[inst.instance_id] = where
        out.append(inst)
    if not out:
        raise TaskError("swe: no instances")
    return out


def load_hub(name: str = HUB_DEFAULT, split: str = "test") -> list[Instance]:
    try:
        import datasets
    except ImportError:
        raise TaskError("swe: loading from the hub needs `datasets` (pip install 'evals[data]'); "
                        "or pass -T instances=FILE.jsonl|bundled") from None
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # noqa: BLE001 - one message for every failure
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise TaskError(f"swe: cannot load {name} ({split}) from the hub: {type(e).__name__}: "
                        f"{first}. Pass -T instances=FILE.jsonl|bundled instead") from None
    return to_instances((f"{name} row {i}", dict(row)) for i, row in enumerate(ds))
