"""The score index and the numpy metrics agree with the streaming Aggregator, the reference.

Records are written through RunLog (the run's own writer), so the index under test is
the one a run leaves; then it is cut, torn, outrun and contradicted the ways a crash or
a hand edit would.
"""

import math
import random
from dataclasses import asdict

import pytest

from evals import score_index
from evals.metrics import Aggregator
from evals.metrics_columnar import ColumnarMetrics, aggregate
from evals.records import RunLog, iter_records

GROUPS = [  # (task, model, setting, settings, how its records look)
    ("math", "m/a", "n=8", {"samples": 8}, {"fractional": True}),
    ("math", "m/a", "budget=300,n=8", {"samples": 8, "thinking_budget": 300}, {}),
    ("gpqa", "m/b", "n=6", {"samples": 6, "effort": "high"}, {"ranked": True, "int_ids": True}),
    ("gpqa", "m/b", "n=1", {"samples": 1}, {"no_cost": True}),
]


def records(seed: int, problems: int = 40) -> list[dict]:
    """Every complication the Aggregator handles, interleaved across groups."""
    rng = random.Random(seed)
    out = []
    for p in range(problems):
        for task, model, setting, settings, how in GROUPS:
            sid = p if how.get("int_ids") else f"{task}-{p}"
            n = rng.randint(1, settings["samples"])
            gens = list(range(n))
            if rng.random() < 0.3:
                rng.shuffle(gens)  # out of order, as concurrent workers finish
            for g in gens:
                base = {"task": task, "model": model, "setting": setting, "sample_id": sid,
                        "gen": g, "settings": settings}
                roll = rng.random()
                if roll < 0.08:  # a failed call, sometimes retried later
                    out.append({**base, "status": "error", "score": None, "error": "HTTP 500",
                                "cost": None if rng.random() < 0.5 else 0.001,
                                "usage": {"prompt": 10.0} if rng.random() < 0.3 else None})
                    if rng.random() < 0.5:
                        continue
                elif roll < 0.14:  # an infra_error, then the cached answer re-scored
                    out.append({**base, "status": "infra_error", "score": None,
                                "usage": {"prompt": 50.0, "completion": 20.0, "reasoning": 5.0},
                                "cost": 0.002, "latency": 1.5})
                    out.append(_scored(rng, base, how, cached=True))
                    continue
                out.append(_scored(rng, base, how))
                if rng.random() < 0.05:  # the same generation written twice: the last wins
                    out.append(_scored(rng, base, how))
    return out


def _scored(rng, base, how, cached=None):
    if cached is None:  # a cache hit with nothing before it: paid for by an earlier run
        cached = rng.random() < 0.1
    answer = rng.choice(["1/2", "0.5x", "7", None, "7", "7"])
    score = float(answer == "7")
    if how.get("fractional") and rng.random() < 0.3:
        score = rng.choice([0.25, 0.5, 1 / 3])
    status = "ok" if answer else "no_answer"
    if answer and rng.random() < 0.1:  # a verdict the verifier could not reach
        status = rng.choice(["timeout", "verifier_error", "parse_error"])
    if status == "verifier_error":
        score = None  # unscored (evals.records.UNSCORED): the run writes no score
    rec = {**base, "status": status, "score": score, "answer": answer,
           "cached": cached, "finish_reason": "length" if rng.random() < 0.1 else "stop",
           "latency": None if rng.random() < 0.05 else round(rng.uniform(0.1, 9.0), 3),
           "cost": None if how.get("no_cost") else rng.uniform(1e-4, 1e-2),
           "completion": "secret text the metrics never read"}
    if rng.random() < 0.9:
        rec["usage"] = {"prompt": 100.0, "completion": float(rng.randint(10, 600)),
                        "reasoning": float(rng.randint(0, 500))}
    if how.get("ranked") and rng.random() < 0.9:
        rec["rank"] = float(rng.randint(0, 4))  # coarse: ties happen
    return rec


def write(tmp_path, recs, chunk=7):
    log = RunLog(tmp_path / "run")
    for i in range(0, len(recs), chunk):
        log.append(recs[i:i + chunk])
    log.close()
    return log.samples_path


def assert_same(columnar, reference):
    got, want = columnar.metric_rows(), reference.metric_rows()
    assert [(r.task, r.setting, r.metric) for r in got] == \
        [(r.task, r.setting, r.metric) for r in want]
    for a, b in zip(got, want):
        _close(asdict(a), asdict(b))
    got_c, want_c = columnar.cost_rows(), reference.cost_rows()
    assert list(got_c) == list(want_c)
    for key in want_c:
        _close(asdict(got_c[key]), asdict(want_c[key]))


def _close(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if isinstance(y, float) and isinstance(x, float):
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) or (x != x and y != y), k
        else:
            assert x == y, (k, x, y)


@pytest.mark.parametrize("seed", range(6))
def test_columnar_rows_equal_the_aggregators(tmp_path, seed, monkeypatch):
    if seed % 2:  # many chunks, as a file of millions of records is read
        monkeypatch.setattr(ColumnarMetrics, "chunk", 37)
    path = write(tmp_path, records(seed))
    reference = Aggregator().update(iter_records(path))
    entries = score_index.load(path)
    assert entries is not None and len(entries) == sum(1 for _ in iter_records(path))
    columnar = ColumnarMetrics(path, entries)
    assert_same(columnar, reference)
    metrics = {r.metric for r in columnar.metric_rows()}
    assert {"accuracy", "pass@8", "maj@8", "best@6"} <= metrics  # every estimator was compared
    shares = [(c.no_answer_share, c.timeout_share, c.parse_failure_share)
              for c in columnar.cost_rows().values()]
    assert all(max(column) > 0 for column in zip(*shares)), shares  # each share was compared


def test_explicit_ks_and_confidence(tmp_path):
    path = write(tmp_path, records(11))
    reference = Aggregator().update(iter_records(path))
    columnar = ColumnarMetrics(path, score_index.load(path))
    for ks, conf in (([1, 3, 5], 0.9), ([2], 0.99)):
        assert len(columnar.metric_rows(ks, conf)) == len(reference.metric_rows(ks, conf))
        for a, b in zip(columnar.metric_rows(ks, conf), reference.metric_rows(ks, conf)):
            _close(asdict(a), asdict(b))


def test_an_index_behind_the_file_is_completed_from_its_lines(tmp_path):
    recs = records(3)
    path = write(tmp_path, recs)
    index = score_index.index_path(path)
    data = index.read_bytes()
    index.write_bytes(data[:len(data) * 2 // 3 + 17])  # killed mid-entry, lines lost
    entries = score_index.load(path)
    assert len(entries) == len(recs)
    assert_same(ColumnarMetrics(path, entries), Aggregator().update(iter_records(path)))
    # A resumed run's first append brings the index level before writing on.
    log = RunLog(path.parent)
    log.append(recs[:3])
    log.close()
    assert index.stat().st_size == (len(recs) + 3) * score_index.ENTRY.size
    assert_same(ColumnarMetrics(path, score_index.load(path)),
                Aggregator().update(iter_records(path)))


def test_entries_past_a_repaired_file_are_dropped(tmp_path):
    recs = records(4)
    path = write(tmp_path, recs)
    raw = path.read_bytes()
    cut = raw.rfind(b"\n", 0, len(raw) - 1) + 1
    path.write_bytes(raw[:cut] + raw[cut:cut + 40])  # the last line torn by a kill
    log = RunLog(path.parent)
    assert log.repair() == 40
    entries = score_index.load(path)
    assert len(entries) == len(recs) - 1
    assert_same(ColumnarMetrics(path, entries), Aggregator().update(iter_records(path)))
    log.append(recs[-1:])  # resume: sync drops the dangling entry, then appends
    log.close()
    assert index_entries(path) == len(recs)


def index_entries(path):
    return score_index.index_path(path).stat().st_size // score_index.ENTRY.size


def test_a_missing_index_is_rebuilt_on_resume_and_meanwhile_not_needed(tmp_path):
    recs = records(5)
    path = write(tmp_path, recs)
    score_index.index_path(path).unlink()
    assert score_index.load(path) is None
    assert isinstance(aggregate(path, min_bytes=0), Aggregator)
    log = RunLog(path.parent)
    log.append(recs[:1])
    log.close()
    assert index_entries(path) == len(recs) + 1
    assert isinstance(aggregate(path, min_bytes=0), ColumnarMetrics)


def test_a_file_that_no_longer_matches_its_index_is_read_as_json(tmp_path):
    recs = records(6)
    path = write(tmp_path, recs)
    # Same length, other content: rename a task by hand.
    path.write_bytes(path.read_bytes().replace(b'"task":"gpqa"', b'"task":"GPQA"'))
    result = aggregate(path, min_bytes=0)
    assert isinstance(result, Aggregator)
    assert {r.task for r in result.metric_rows()} == {"math", "GPQA"}


def test_small_files_stream_and_large_ones_use_the_index(tmp_path):
    path = write(tmp_path, records(7))
    assert isinstance(aggregate(path), Aggregator)  # a few kB: not worth numpy's import
    assert isinstance(aggregate(path, min_bytes=0), ColumnarMetrics)


def test_a_record_the_index_cannot_hold_removes_it_without_failing_the_run(tmp_path):
    log = RunLog(tmp_path / "run")
    good = records(8, problems=3)
    log.append(good)
    log.append([{**good[0], "gen": -1}])  # no unsigned gen: the index gives up
    log.append(good[:2])
    log.close()
    assert not score_index.index_path(log.samples_path).exists()
    assert sum(1 for _ in iter_records(log.samples_path)) == len(good) + 3


def test_an_index_out_of_order_is_not_used(tmp_path):
    path = write(tmp_path, records(9))
    index = score_index.index_path(path)
    size = score_index.ENTRY.size
    data = bytearray(index.read_bytes())
    data[size:2 * size], data[2 * size:3 * size] = data[2 * size:3 * size], data[size:2 * size]
    index.write_bytes(bytes(data))
    assert isinstance(aggregate(path, min_bytes=0), Aggregator)


@pytest.mark.parametrize("categories", [None, "domain", "needle"])
def test_the_report_of_an_indexed_run_reads_no_json_and_matches_the_json_one(
        tmp_path, monkeypatch, categories):
    from evals import metrics_columnar, report_data

    recs = records(10)
    for r in recs:  # GPQA-like domains or needle cells: the report's breakdown tables
        i = int(str(r["sample_id"]).rpartition("-")[2])
        if categories == "domain":
            r["metadata"] = {"domain": ["Physics", "Biology"][i % 2],
                             "subdomain": ["Optics", "Genetics", "Quantum"][i % 3]}
        elif categories == "needle":
            r["metadata"] = {"length": [1000, 2000][i % 2], "depth": [0.0, 0.5, 1.0][i % 3],
                             "variant": "single"}
    log = RunLog(tmp_path / "res" / "run")
    log.write_meta({"run_id": "run", "status": "completed", "started": "2026-11-26"})
    log.append(recs)
    log.close()
    passes = []
    real = report_data.iter_records
    monkeypatch.setattr(report_data, "iter_records", lambda path: passes.append(path) or real(path))
    monkeypatch.setattr(metrics_columnar, "MIN_BYTES", 0)
    indexed = report_data.collect(tmp_path / "res")
    assert passes == []
    monkeypatch.setattr(metrics_columnar, "MIN_BYTES", 2**62)  # the JSON way throughout
    reference = report_data.collect(tmp_path / "res")
    assert len(passes) == 1
    assert [g.key for g in indexed.groups] == [g.key for g in reference.groups]
    for a, b in zip(indexed.groups, reference.groups):
        _close(asdict(a.cost), asdict(b.cost))
    assert [(b.task, b.kind) for b in indexed.breakdowns] == \
        [(b.task, b.kind) for b in reference.breakdowns]
    assert bool(indexed.breakdowns) == (categories is not None)
    for a, b in zip(indexed.breakdowns, reference.breakdowns):
        assert a.grid_keys == b.grid_keys
        assert a.cells.keys() == b.cells.keys()
        for label in b.cells:
            assert a.cells[label].keys() == b.cells[label].keys()
            for column, want in b.cells[label].items():
                got = a.cells[label][column]
                for name in ("value", "ci_low", "ci_high", "n", "samples", "errors"):
                    x, y = getattr(got, name), getattr(want, name)
                    assert x == pytest.approx(y, rel=1e-9) or (x != x and y != y), (label, name)


def test_ids_and_answers_python_calls_equal_are_one_key(tmp_path):
    base = {"task": "t", "model": "m", "setting": "s"}
    recs = [{**base, "sample_id": 1, "gen": 0, "score": 1.0, "answer": 7},
            {**base, "sample_id": 1.0, "gen": 1, "score": 1.0, "answer": 7.0},
            {**base, "sample_id": True, "gen": 2, "score": 0.0, "answer": "7"},
            {**base, "sample_id": "1", "gen": 0, "score": 0.0, "answer": True},
            {**base, "sample_id": "1", "gen": 1, "score": 1.0, "answer": 1}]
    path = write(tmp_path, recs)
    assert_same(ColumnarMetrics(path, score_index.load(path)),
                Aggregator().update(iter_records(path)))


def test_a_last_line_without_its_newline_counts_as_the_json_reader_counts_it(tmp_path):
    path = write(tmp_path, records(12))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # killed just before the newline
    entries = score_index.load(path)
    assert len(entries.tail) == score_index.ENTRY.size  # read from the line itself
    assert_same(ColumnarMetrics(path, entries), Aggregator().update(iter_records(path)))


def test_compare_pairs_the_same_problems_from_an_index_as_from_json(tmp_path, monkeypatch):
    from evals import compare, metrics_columnar

    path = write(tmp_path, records(13))
    a = compare.Side(path, "run", setting="n=8")
    b = compare.Side(path, "run", setting="budget=300,n=8")
    monkeypatch.setattr(metrics_columnar, "MIN_BYTES", 0)
    assert compare.indexed(path) is not None
    fast = compare.compare(a, b)
    monkeypatch.setattr(metrics_columnar, "MIN_BYTES", 2**62)
    assert compare.indexed(path) is None
    slow = compare.compare(a, b)
    assert len(fast) == len(slow) == 1 and fast[0]["n"] == slow[0]["n"] > 10
    for key in ("mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_value"):
        assert fast[0][key] == pytest.approx(slow[0][key], rel=1e-9), key


def test_a_resumed_run_indexes_its_records_before_it_starts(tmp_path):
    from evals.run import RunConfig, execute

    config = RunConfig(tasks=["arithmetic"], models=["gold"], task_params={"count": "5"})
    log = RunLog(tmp_path / "r")
    execute(config, log, ["evals"])
    score_index.index_path(log.samples_path).unlink()  # a run from before indexes
    execute(config, log, ["evals"])  # resumes with nothing left to do: no append
    entries = score_index.load(log.samples_path)
    assert entries is not None and entries.count == 5 and not entries.tail
