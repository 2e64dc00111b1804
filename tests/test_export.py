"""evals export: one row per generation, nested fields flattened, in Parquet, CSV and JSONL."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import TEST_EXTRA, require, run_cli
from evals.export import export, flatten
from test_view import gpqa_record, swe_record, write_run


@pytest.fixture()
def results(tmp_path):
    out = tmp_path / "results"
    recs = [gpqa_record(i, g, "effort=high") for i in range(3) for g in range(2)]
    recs.insert(1, {**gpqa_record(0, 1, "effort=high"), "status": "error", "score": None,
                    "error": "HTTP 500"})  # superseded by the later line for (q00, gen 1)
    recs.append({**swe_record(0), "task": "gpqa"})  # other score_metadata keys, a list
    write_run(out, "r1", recs)
    return out


def test_flatten():
    row = flatten(swe_record(1))
    assert row["settings_samples"] == 1 and row["usage_prompt"] == 10.0
    assert row["score_metadata_outcome"] == "unresolved"
    assert json.loads(row["score_metadata_reverted"]) == [{"path": "setup.cfg",
                                                           "why": "test settings"}]
    assert "settings" not in row and "score_metadata" not in row


def test_csv_and_jsonl(results, tmp_path):
    done = run_cli("export", "r1", "--format", "csv", "-o", str(tmp_path / "r1.csv"),
                   "--results-dir", str(results))
    assert done.returncode == 0, done.stderr
    assert "8 rows" in done.stdout
    with open(tmp_path / "r1.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    assert {"settings_effort", "score_metadata_rule", "metadata_domain", "usage_completion",
            "superseded"} <= set(rows[0])
    assert [r["superseded"] for r in rows].count("True") == 1
    assert rows[0]["settings_effort"] == "high" and rows[0]["score_metadata_rule"] == "answer_line"
    done = run_cli("export", "r1", "--format", "jsonl", "-o", str(tmp_path / "r1.jsonl"),
                   "--results-dir", str(results))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in (tmp_path / "r1.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and lines[0]["usage_prompt"] == 100.0
    assert lines[-1]["score_metadata_outcome"] == "resolved"
    assert lines[0]["score_metadata_outcome"] is None  # one schema for every row


def test_parquet_for_pandas(results, tmp_path):
    require("pyarrow", hint=TEST_EXTRA)
    import pandas as pd

    out = tmp_path / "r1.parquet"
    assert export(results / "r1" / "samples.jsonl", out, "parquet") == 8
    frame = pd.read_parquet(out)
    assert len(frame) == 8
    assert frame["score"].dtype == "float64" and frame["gen"].dtype == "int64"
    assert frame["settings_samples"].tolist()[:2] == [2, 2]
    assert frame.loc[~frame["superseded"], "score"].notna().all()
    assert frame.groupby("metadata_domain")["score"].count().to_dict() == {
        "Chemistry": 2, "Physics": 4}


def test_bad_format_and_run(results):
    done = run_cli("export", "r1", "--format", "xlsx", "--results-dir", str(results))
    assert done.returncode == 2 and "parquet, csv, jsonl" in done.stderr
    done = run_cli("export", "nope", "--results-dir", str(results))
    assert done.returncode == 2 and "no run 'nope'" in done.stderr
