"""The run log: append-only records, torn-line repair, resume bookkeeping."""

import orjson
import pytest

from evals.records import RunLog, iter_records


def rec(sample_id, gen, status="ok"):
    return {"task": "t", "model": "m", "setting": "default", "sample_id": sample_id,
            "gen": gen, "status": status, "score": None if status == "error" else 1.0}


def test_append_and_read_back(tmp_path):
    log = RunLog(tmp_path / "run")
    log.append([rec("a", 0), rec("a", 1)])
    log.append([rec("b", 0)])
    log.close()
    assert [r["sample_id"] for r in iter_records(log.samples_path)] == ["a", "a", "b"]


def test_repair_drops_only_a_torn_last_line(tmp_path):
    log = RunLog(tmp_path / "run")
    log.append([rec("a", 0), rec("b", 0)])
    log.close()
    whole = log.samples_path.read_bytes()
    log.samples_path.write_bytes(whole + orjson.dumps(rec("c", 0))[:17])
    assert log.repair() == 17
    assert log.samples_path.read_bytes() == whole
    assert log.repair() == 0


def test_repair_of_a_file_with_no_complete_line(tmp_path):
    log = RunLog(tmp_path / "run")
    log.dir.mkdir()
    log.samples_path.write_bytes(b'{"task": "t", "mo')
    assert log.repair() == 17
    assert log.samples_path.read_bytes() == b""


def test_done_generations_retries_errors_and_counts_successes(tmp_path):
    log = RunLog(tmp_path / "run")
    log.append([rec("a", 0), rec("a", 1, "error"), rec("b", 0, "error")])
    log.append([rec("b", 0)])  # a resumed run's retry supersedes the error
    done = log.done_generations()
    assert done[("t", "m", "default", "a")] == {0}
    assert done[("t", "m", "default", "b")] == {0}


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_bytes(orjson.dumps(rec("a", 0)) + b"\n" + b"not json\n")
    with pytest.raises(ValueError, match=r"samples.jsonl:2: not a JSON record"):
        list(iter_records(path))


def test_meta_is_replaced_atomically(tmp_path):
    log = RunLog(tmp_path / "run")
    log.write_meta({"status": "running"})
    log.write_meta({"status": "completed"})
    assert log.read_meta() == {"status": "completed"}
    assert not list(log.dir.glob("*.tmp"))
