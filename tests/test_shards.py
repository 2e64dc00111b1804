"""--shard I/N slices a grid deterministically; evals merge joins the slices into one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evals.records import RunLog, iter_records
from evals.runner import ConfigError
from evals.shards import in_shard, merge, parse_shard
from tests.conftest import run_cli

GRID = ["run", "arithmetic", "gpqa", "-m", "gold", "-T", "gpqa.path=sample",
        "-T", "arithmetic.count=23", "--samples", "2", "--effort", "low,high"]


def keys(path):
    return sorted((r["task"], r["setting"], str(r["sample_id"]), r["gen"])
                  for r in iter_records(path))


def test_parse_shard():
    assert parse_shard("0/4") == [0, 4] and parse_shard(" 3/4") == [3, 4]
    for bad in ("4/4", "-1/4", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError, match="I/N"):
            parse_shard(bad)


def test_shards_partition_every_problem_once():
    ids = [f"q{i}" for i in range(1000)]
    owners = [[i for i in range(4) if in_shard("t", x, [i, 4])] for x in ids]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(o == [i] for o in owners) for i in range(4)]
    assert min(sizes) > 200  # a hash spreads them, about a quarter each
    # the slice depends on the task and the id only: a fresh process with another string
    # hash seed (Python's hash() differs per process) puts every id where this one does
    code = ("from evals.shards import in_shard; "
            f"print([[i for i in range(4) if in_shard('t', x, [i, 4])] for x in {ids!r}])")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, check=True)
    assert json.loads(fresh.stdout) == owners


def test_shards_merge_into_the_whole_run(tmp_path):
    res = str(tmp_path)
    whole = run_cli(*GRID, "--run-id", "whole", "--results-dir", res)
    assert whole.returncode == 0, whole.stderr
    for i in range(3):
        out = run_cli(*GRID, "--shard", f"{i}/3", "--run-id", f"s{i}", "--results-dir", res)
        assert out.returncode == 0, out.stderr
    parts = [keys(tmp_path / f"s{i}" / "samples.jsonl") for i in range(3)]
    assert all(parts) and sum(map(len, parts)) == len(keys(tmp_path / "whole/samples.jsonl"))
    # the leaderboard leaves shard runs out, and says so
    board = run_cli("leaderboard", "--results-dir", res, "-f", "json")
    assert "3 shard runs left out" in board.stderr
    assert {r["run"] for r in json.loads(board.stdout)} == {"whole"}
    merged = run_cli("merge", "s0", "s1", "s2", "--run-id", "joined", "--results-dir", res)
    assert merged.returncode == 0, merged.stderr
    assert keys(tmp_path / "joined/samples.jsonl") == keys(tmp_path / "whole/samples.jsonl")
    meta = RunLog(tmp_path / "joined").read_meta()
    assert meta["status"] == "completed" and meta["config"]["shard"] is None
    assert [m["shard"] for m in meta["merged_from"]] == [[0, 3], [1, 3], [2, 3]]
    shown = json.loads(run_cli("show", "joined", "--results-dir", res, "--json").stdout)
    expected = json.loads(run_cli("show", "whole", "--results-dir", res, "--json").stdout)
    assert [(m["task"], m["setting"], m["metric"], m["value"]) for m in shown["metrics"]] == \
        [(m["task"], m["setting"], m["metric"], m["value"]) for m in expected["metrics"]]
    # resuming a shard with another slice is a change of configuration: refused
    again = run_cli(*GRID, "--shard", "1/3", "--run-id", "s0", "--results-dir", res)
    assert again.returncode != 0 and "shard: [0, 3] then [1, 3]" in again.stderr


def test_merge_refuses_what_would_make_a_wrong_whole(tmp_path):
    res = str(tmp_path)
    for i, extra in ((0, []), (1, []), (2, ["--max-tokens", "99"])):
        assert run_cli(*GRID, *extra, "--shard", f"{i}/3", "--run-id", f"s{i}",
                       "--results-dir", res).returncode == 0
    with pytest.raises(ConfigError, match="another configuration"):
        merge(tmp_path, ["s0", "s1", "s2"], "m")
    with pytest.raises(ConfigError, match="shards 2/3 are missing"):
        merge(tmp_path, ["s0", "s1"], "m")
    with pytest.raises(ConfigError, match="given twice"):
        merge(tmp_path, ["s0", "s0"], "m")
    summary = merge(tmp_path, ["s0", "s1"], "m", allow_partial=True)
    assert summary.missing == [2]
    meta = RunLog(tmp_path / "m").read_meta()
    assert meta["status"] == "partial" and meta["missing_shards"] == [2]
    with pytest.raises(ConfigError, match="exists already"):
        merge(tmp_path, ["s0", "s1"], "m", allow_partial=True)
    bad = run_cli("merge", "s0", "nosuch", "--run-id", "x", "--results-dir", res)
    assert bad.returncode == 2 and "no run 'nosuch'" in bad.stderr
    assert not (tmp_path / "x").exists()
