"""`evals compare` (paired differences) and `evals rescore` (no model calls)."""

import json

import pytest
from scipy import stats

from evals.fake_openai import FakeServer
from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from tests.conftest import run_cli

N = 30


def effort_script(body, index):
    """High effort is right on 2 of 3 problems, low effort on 1 of 3; sample 1 of 2 varies."""
    prompt = body["messages"][-1]["content"]
    expr = prompt.split("Compute ")[1].split(". Think")[0]
    value = eval(expr)
    number = int(expr.split()[0].strip("(")) % 3
    good = number < (2 if body.get("reasoning_effort") == "high" else 1) or index == 1 and number == 2
    return f"ANSWER: {value if good else value + 1}"


@pytest.fixture
def effort_run(tmp_path):
    with FakeServer(script=effort_script) as srv:
        cfg = RunConfig(tasks=["arithmetic"], models=["openai/fake-model"],
                        model_options={"base_url": srv.url}, task_params={"count": str(N)},
                        efforts=["low", "high"], samples=2)
        execute(cfg, RunLog(tmp_path / "res" / "sweep"), ["evals"])
    return tmp_path / "res"


def per_problem(results, setting):
    sums = {}
    for r in iter_records(results / "sweep" / "samples.jsonl"):
        if r["setting"] == setting:
            sums.setdefault(r["sample_id"], []).append(r["score"])
    return {k: sum(v) / len(v) for k, v in sums.items()}


def test_compare_two_settings_matches_a_paired_t_test(effort_run):
    result = run_cli("compare", "sweep", "--setting-a", "effort=low,n=2", "--setting-b",
                     "effort=high,n=2", "--results-dir", str(effort_run), "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    low, high = per_problem(effort_run, "effort=low,n=2"), per_problem(effort_run, "effort=high,n=2")
    ids = sorted(low)
    reference = stats.ttest_rel([high[i] for i in ids], [low[i] for i in ids])
    assert row["n"] == N
    assert row["diff"] == pytest.approx(sum(high[i] - low[i] for i in ids) / N)
    assert row["p_value"] == pytest.approx(reference.pvalue, rel=1e-6)
    assert row["ci_low"] < row["diff"] < row["ci_high"]


def test_compare_two_runs_pairs_equal_settings(effort_run, tmp_path):
    # a second run, same server script: identical scores, difference 0
    with FakeServer(script=effort_script) as srv:
        cfg = RunConfig(tasks=["arithmetic"], models=["openai/fake-model"],
                        model_options={"base_url": srv.url}, task_params={"count": str(N)},
                        efforts=["low", "high"], samples=2, cache=False)
        execute(cfg, RunLog(effort_run / "again"), ["evals"])
    result = run_cli("compare", "sweep", "again", "--results-dir", str(effort_run), "--json")
    rows = json.loads(result.stdout)
    assert len(rows) == 2 and all(r["diff"] == 0 and r["n"] == N for r in rows)


def test_compare_needs_something_to_compare(effort_run):
    result = run_cli("compare", "sweep", "--results-dir", str(effort_run))
    assert result.returncode != 0 and "--setting-b or --model-b" in result.stderr


def test_rescore_writes_beside_and_calls_no_model(tmp_path):
    plugin = tmp_path / "strict.py"
    mode = tmp_path / "lenient"
    plugin.write_text(f'''
import os
from evals import Sample, Score, Task, task

@task
def strict() -> Task:
    def score(sample, completion):
        text = completion.strip()
        if os.path.exists({str(mode)!r}):
            text = text.lower()
        return Score(float(text == sample.target), text)
    return Task(dataset=[Sample(id=str(i), input=f"q{{i}}", target="yes") for i in range(4)],
                scorer=score)
''')
    results = tmp_path / "res"
    with FakeServer(default="YES") as srv:
        cfg = RunConfig(tasks=["strict"], models=["openai/fake-model"], tasks_dirs=[str(plugin)],
                        model_options={"base_url": srv.url})
        execute(cfg, RunLog(results / "r"), ["evals"])
    original = (results / "r" / "samples.jsonl").read_bytes()
    assert all(r["score"] == 0.0 for r in iter_records(results / "r" / "samples.jsonl"))
    mode.touch()  # the "extractor fix"; the server is gone, so any model call would fail
    result = run_cli("rescore", "r", "--results-dir", str(results))
    assert result.returncode == 0, result.stderr
    assert "4 generations rescored, 4 changed" in result.stderr
    assert (results / "r" / "samples.jsonl").read_bytes() == original
    rescored = list(iter_records(results / "r" / "samples.rescored.jsonl"))
    assert [r["score"] for r in rescored] == [1.0] * 4
    assert all(r["previous"] == {"score": 0.0, "answer": "YES", "status": "ok"} for r in rescored)
    # Its score index describes the new verdicts, and the original's is untouched.
    from evals.metrics_columnar import ColumnarMetrics, aggregate

    indexed = aggregate(results / "r" / "samples.rescored.jsonl", min_bytes=0)
    assert isinstance(indexed, ColumnarMetrics)
    assert [m.value for m in indexed.metric_rows()] == [1.0]
    assert [m.value for m in aggregate(results / "r" / "samples.jsonl", min_bytes=0)
            .metric_rows()] == [0.0]
    shown = json.loads(run_cli("show", "r", "--results-dir", str(results), "--json", "--rescored").stdout)
    assert [m["value"] for m in shown["metrics"] if m["metric"] == "accuracy"] == [1.0]
    board = run_cli("leaderboard", "--results-dir", str(results), "-f", "json").stdout
    assert [r["value"] for r in json.loads(board) if r["metric"] == "accuracy"] == [0.0]


def test_judge_ranker_gives_best_of_k(tmp_path):
    """--ranker: an LLM judge (here the fake server) rates each completion; best@k follows."""

    def script(body, index):
        prompt = body["messages"][-1]["content"]
        if prompt.startswith("You are grading"):
            # the judge trusts completions that show their work
            return "SCORE: 9" if "carefully" in prompt else "SCORE: 2"
        expr = prompt.split("Compute ")[1].split(". Think")[0]
        value = eval(expr)
        return f"carefully: ANSWER: {value}" if index == 0 else f"ANSWER: {value + 1}"

    with FakeServer(script=script) as srv:
        cfg = RunConfig(tasks=["arithmetic"], models=["openai/fake-model"],
                        model_options={"base_url": srv.url}, task_params={"count": "5"},
                        samples=4, ranker="openai/fake-model", ranker_options={"base_url": srv.url})
        execute(cfg, RunLog(tmp_path / "r"), ["evals"])
        judge_calls = [b for b in srv.requests if b["messages"][0]["content"].startswith("You are grading")]
        assert len(judge_calls) == 20 and all(b["temperature"] == 0.0 for b in judge_calls)
    records = list(iter_records(tmp_path / "r" / "samples.jsonl"))
    assert sorted({r["rank"] for r in records}) == [2.0, 9.0]
    shown = json.loads(run_cli("show", "r", "--results-dir", str(tmp_path), "--json").stdout)
    metrics = {m["metric"]: m["value"] for m in shown["metrics"]}
    # one right completion in four, and the judge always ranks it first: best@k is the
    # chance it is among k drawn, 1 - C(3, k) / C(4, k)
    assert metrics["accuracy"] == pytest.approx(0.25)
    assert metrics["best@1"] == pytest.approx(0.25)
    assert metrics["best@2"] == pytest.approx(0.5)
    assert metrics["best@4"] == pytest.approx(1.0)


def test_compare_names_what_there_is_when_nothing_matches(effort_run):
    result = run_cli("compare", "sweep", "--setting-a", "effort=low,n=2", "--setting-b",
                     "effort=extreme", "--results-dir", str(effort_run))
    assert result.returncode == 1
    assert "settings here: effort=high,n=2, effort=low,n=2; models: openai/fake-model" in result.stderr
