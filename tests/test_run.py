"""Orchestration end to end: a real HTTP server, the real client, the real run log."""

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

import evals.orchestrator as run_module
from evals.fake_openai import FakeServer
from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from evals.runner import ConfigError
from tasks.arithmetic import make_samples
from tests.conftest import REPO, run_cli, wait_for

SECRET = "sk-live-secret-abcdefghijklmnop"


def arithmetic_script(body, index):
    """Right on even sample numbers, wrong on odd ones: known scores for every run."""
    prompt = body["messages"][-1]["content"]
    expr = prompt.split("Compute ")[1].split(". Think")[0]
    value = eval(expr)
    return f"Working...\nANSWER: {value if hash_of(prompt) % 2 == 0 else value + 1}"


def hash_of(text):
    return sum(map(ord, text))


def expected_scores(count, seed=0):
    return {s.id: float(hash_of(s.input) % 2 == 0) for s in make_samples(count, seed, 3)}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(run_module, "backoff", lambda attempt, retry_after: (
        retry_after if retry_after is not None else 0.01))


def config(server, **kw):
    base = dict(tasks=["arithmetic"], models=["openai/fake-model"],
                model_options={"base_url": server.url}, concurrency=8)
    base.update(kw)
    return RunConfig(**base)


def scores(log):
    latest = {}
    for r in iter_records(log.samples_path):
        latest[(r["sample_id"], r["setting"], r["gen"])] = r
    return latest


def test_grid_of_settings_and_samples(tmp_path):
    with FakeServer(script=arithmetic_script) as srv:
        cfg = config(srv, task_params={"count": "6"}, efforts=["low", "high"],
                     thinking_budgets=[None, 256], samples=3, temperature=0.5, seed=1)
        stats = execute(cfg, RunLog(tmp_path / "r"), ["evals"])
        assert stats.total == stats.done == 6 * 4 * 3 and stats.errors == 0
        assert srv.count == 6 * 4  # n=3 travels in one request
        efforts = Counter((b.get("reasoning_effort"), b.get("thinking_token_budget"))
                          for b in srv.requests)
        assert efforts == {("low", None): 6, ("high", None): 6, ("low", 256): 6, ("high", 256): 6}
    records = scores(RunLog(tmp_path / "r"))
    assert {k[1] for k in records} == {"effort=low,n=3", "effort=high,n=3",
                                       "effort=low,budget=256,n=3", "effort=high,budget=256,n=3"}
    want = expected_scores(6)
    assert all(r["score"] == want[r["sample_id"]] for r in records.values())
    meta = RunLog(tmp_path / "r").read_meta()
    assert meta["status"] == "completed" and len(meta["settings"]) == 4
    assert meta["versions"]["python"] and "git" in meta


def test_transient_faults_are_retried_and_not_scored(tmp_path):
    with FakeServer(script=arithmetic_script) as srv:
        srv.inject("429", times=2, retry_after=0.2)
        srv.inject("500", times=2)
        srv.inject("drop", times=1)
        srv.inject("malformed", times=1)
        srv.inject("hang", times=1, seconds=2)
        stats = execute(config(srv, task_params={"count": "10"}, timeout=0.5),
                        RunLog(tmp_path / "r"), ["evals"])
        assert srv.faults_pending() == 0
    assert stats.errors == 0 and stats.done == 10
    want = expected_scores(10)
    assert {k[0]: r["score"] for k, r in scores(RunLog(tmp_path / "r")).items()} == want


def test_persistent_failure_is_recorded_apart_then_retried_on_resume(tmp_path):
    target = make_samples(5, 0, 3)[2]
    needle = target.input.split("Compute ")[1].split(".")[0]
    log = RunLog(tmp_path / "r")
    with FakeServer(script=arithmetic_script) as srv:
        srv.inject("503", times=100, match=needle)
        stats = execute(config(srv, task_params={"count": "5"}, retries=2), log, ["evals"])
        assert stats.errors == 1 and stats.done == 5
        errors = [r for r in iter_records(log.samples_path) if r["status"] == "error"]
        assert len(errors) == 1 and errors[0]["sample_id"] == target.id
        assert errors[0]["score"] is None and "503" in errors[0]["error"]
        assert errors[0]["metadata"] == target.metadata  # for the report's breakdowns
        srv._faults.clear()
        stats = execute(config(srv, task_params={"count": "5"}, retries=2), log, ["evals"])
    assert stats.errors == 0
    final = scores(log)
    assert len(final) == 5 and final[(target.id, "default", 0)]["status"] == "ok"
    assert log.read_meta()["resumed"]


def test_non_retryable_error_is_recorded_without_retry(tmp_path):
    with FakeServer(script=arithmetic_script) as srv:
        srv.inject("400", times=1)
        stats = execute(config(srv, task_params={"count": "3"}, concurrency=1),
                        RunLog(tmp_path / "r"), ["evals"])
        assert srv.count == 3
    assert stats.errors == 1


def test_concurrency_bound(tmp_path):
    with FakeServer(latency=0.1) as srv:
        execute(config(srv, task_params={"count": "40"}, concurrency=8),
                RunLog(tmp_path / "r"), ["evals"])
        assert srv.max_in_flight == 8


def test_next_request_is_sent_before_the_last_answer_is_scored(tmp_path, monkeypatch):
    """A worker asks for its next unit before scoring and writing the one it has just
    obtained: scoring first held every next request of a wave of answers back behind
    the whole wave's scoring (bench/README.md, the request phase). Each unit is still
    written exactly once, and the worker's last one before it stops too."""
    import tasks.arithmetic as arithmetic
    from runners.openai_api import OpenAIRunner

    events = []
    ids = {s.input: s.id for s in make_samples(5, 0, 3)}
    real_generate, real_score = OpenAIRunner.generate, arithmetic.score

    async def generate(self, request):
        events.append(("ask", ids[request.messages[-1]["content"]]))
        return await real_generate(self, request)

    def score(sample, completion):
        events.append(("score", sample.id))
        return real_score(sample, completion)

    monkeypatch.setattr(OpenAIRunner, "generate", generate)
    monkeypatch.setattr(arithmetic, "score", score)
    with FakeServer(script=arithmetic_script) as srv:
        execute(config(srv, task_params={"count": "5"}, concurrency=1),
                RunLog(tmp_path / "r"), ["evals"])
    order = [s.id for s in make_samples(5, 0, 3)]
    for this, following in zip(order, order[1:]):
        assert events.index(("ask", following)) < events.index(("score", this))
    assert Counter(r["sample_id"] for r in iter_records(tmp_path / "r" / "samples.jsonl")) \
        == Counter(order)


def test_a_failing_unit_still_lets_the_unit_before_it_be_written(tmp_path, monkeypatch):
    """The unit obtained just before a worker fails is recorded, not dropped with it."""
    from evals.task import TaskError

    third = make_samples(3, 0, 3)[2].id
    real_request_for = run_module.Orchestrator.request_for

    def request_for(self, unit):
        if unit.sample.id == third:
            raise TaskError("this sample's prompt cannot be built")
        return real_request_for(self, unit)

    monkeypatch.setattr(run_module.Orchestrator, "request_for", request_for)
    with FakeServer(script=arithmetic_script) as srv:
        with pytest.raises(TaskError):
            execute(config(srv, task_params={"count": "3"}, concurrency=1),
                    RunLog(tmp_path / "r"), ["evals"])
    written = [r["sample_id"] for r in iter_records(tmp_path / "r" / "samples.jsonl")]
    assert written == [s.id for s in make_samples(2, 0, 3)]


def test_collector_is_tuned_for_the_run_and_restored_after(tmp_path, monkeypatch):
    """During the run start-up's objects are frozen out of collections and a collection
    waits for 50,000 new objects (bench/README.md); afterwards both are as they were."""
    import gc

    import tasks.arithmetic as arithmetic

    seen = []
    real_score = arithmetic.score

    def score(sample, completion):
        seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
        return real_score(sample, completion)

    monkeypatch.setattr(arithmetic, "score", score)
    before = gc.get_threshold()
    with FakeServer(script=arithmetic_script) as srv:
        execute(config(srv, task_params={"count": "3"}), RunLog(tmp_path / "r"), ["evals"])
    assert all(threshold >= 50_000 and frozen > 0 for threshold, frozen in seen)
    assert len(seen) == 3 and gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_cache_makes_a_repeat_free_and_can_be_bypassed(tmp_path):
    with FakeServer(script=arithmetic_script) as srv:
        execute(config(srv, task_params={"count": "4"}, samples=2), RunLog(tmp_path / "a"), ["evals"])
        assert srv.count == 4
        stats = execute(config(srv, task_params={"count": "4"}, samples=2),
                        RunLog(tmp_path / "b"), ["evals"])
        assert srv.count == 4 and stats.cached == 8
        execute(config(srv, task_params={"count": "4"}, samples=2, cache=False),
                RunLog(tmp_path / "c"), ["evals"])
        assert srv.count == 8
    assert scores(RunLog(tmp_path / "a")).keys() == scores(RunLog(tmp_path / "b")).keys()


def test_gold_answers_are_not_cached(tmp_path):
    import sqlite3

    from evals.cache import ResponseCache

    gold = RunConfig(tasks=["arithmetic"], models=["gold"], task_params={"count": "4"})
    assert execute(gold, RunLog(tmp_path / "a"), ["evals"]).cached == 0
    assert execute(gold, RunLog(tmp_path / "b"), ["evals"]).cached == 0
    db = sqlite3.connect(ResponseCache().path)  # EVALS_CACHE_DIR is this test's (conftest)
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0


def test_unreachable_endpoint_stops_the_run_with_one_line(tmp_path):
    result = run_cli("run", "arithmetic", "--model", "openai/fake-model", "--base-url",
                     "http://127.0.0.1:9/v1", "--results-dir", str(tmp_path), "--run-id", "x")
    assert result.returncode == 1
    assert "cannot connect to http://127.0.0.1:9/v1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert RunLog(tmp_path / "x").read_meta()["status"] == "failed"


def test_missing_key_is_one_line(tmp_path):
    result = run_cli("run", "arithmetic", "--model", "openai/gpt-4o", "--results-dir", str(tmp_path))
    assert result.returncode != 0
    assert result.stderr.strip() == "error: OPENAI_API_KEY is not set (needed for https://api.openai.com/v1)"


def test_refused_key_stops_the_run_and_never_leaks(tmp_path):
    with FakeServer(api_key="the-right-key-000") as srv:
        result = run_cli("run", "arithmetic", "--model", "openai/fake-model", "--base-url", srv.url,
                         "--results-dir", str(tmp_path), "--run-id", "k",
                         env={"OPENAI_API_KEY": SECRET})
    assert result.returncode == 1 and "refused the API key (HTTP 401)" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_api_key_reaches_no_file(tmp_path):
    cache = tmp_path / "cache"
    with FakeServer(api_key=SECRET, script=arithmetic_script) as srv:
        srv.inject("500", times=1, message=f"echoing your key {SECRET}")
        result = run_cli("run", "arithmetic", "--model", "openai/fake-model", "--base-url", srv.url,
                         "-M", f"api_key={SECRET}", "--results-dir", str(tmp_path / "res"),
                         "--run-id", "s", "-T", "count=5", "--retries", "0",
                         env={"OPENAI_API_KEY": SECRET, "EVALS_CACHE_DIR": str(cache)})
        assert srv.saw_auth
    assert result.returncode == 3, result.stderr  # the 500 was not retried: an error remains
    assert SECRET not in result.stdout + result.stderr
    files = list((tmp_path / "res").rglob("*")) + list(cache.rglob("*"))
    assert len([f for f in files if f.is_file()]) >= 3
    for f in files:
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def test_resume_refuses_a_different_configuration(tmp_path):
    execute(RunConfig(tasks=["arithmetic"], models=["gold"]), RunLog(tmp_path / "r"), ["evals"])
    with pytest.raises(Exception, match="exists with another configuration"):
        execute(RunConfig(tasks=["arithmetic"], models=["gold"], samples=2),
                RunLog(tmp_path / "r"), ["evals"])


def _final_scores(path):
    seen = Counter()
    latest = {}
    for r in iter_records(path):
        key = (r["sample_id"], r["setting"], r["gen"])
        seen[key] += 1
        latest[key] = r["score"]
    return seen, latest


@pytest.mark.parametrize("kill_after_records", [1, 17, 43])
def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path, kill_after_records):
    """A real `evals run` child killed with SIGKILL mid-run, then resumed."""
    args = ["run", "arithmetic", "--model", "openai/fake-model", "-T", "count=30",
            "--samples", "2", "--effort", "low,high", "--concurrency", "4",
            "--results-dir", str(tmp_path), "--run-id", "k9", "--no-progress"]
    first = make_samples(30, 0, 3)[0].input
    with FakeServer(script=arithmetic_script, latency=0.05) as srv:
        # One request hangs (an hour): the first session cannot finish before the kill,
        # which waits until that request has been sent (the resumed session gets answers).
        srv.inject("hang", times=1, match=first[first.index("Compute "):first.index(".") + 1])
        args[args.index("--model") + 2:args.index("--model") + 2] = ["--base-url", srv.url]
        env = {**os.environ, "EVALS_CACHE_DIR": str(tmp_path / "cache")}
        child = subprocess.Popen([sys.executable, "-m", "evals.cli", *args], env=env, cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples = tmp_path / "k9" / "samples.jsonl"
        assert wait_for(lambda: srv.faults_pending() == 0 and samples.exists()
                        and samples.read_bytes().count(b"\n") >= kill_after_records, 60, 0.005)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert kill_after_records <= samples.read_bytes().count(b"\n") < 120
        result = run_cli(*args, env={"EVALS_CACHE_DIR": str(tmp_path / "cache")})
        assert result.returncode == 0, result.stderr
    seen, latest = _final_scores(samples)
    assert len(latest) == 30 * 2 * 2 and max(seen.values()) == 1
    want = expected_scores(30)
    assert all(score == want[key[0]] for key, score in latest.items())
    assert RunLog(tmp_path / "k9").read_meta()["status"] == "completed"
    # The score index came through the kill too: one entry per line, the same rows.
    from evals import score_index
    from evals.metrics import Aggregator
    from evals.metrics_columnar import ColumnarMetrics, aggregate

    entries = score_index.load(samples)
    assert entries is not None and entries.count == 120 and not entries.tail
    indexed = aggregate(samples, min_bytes=0)
    assert isinstance(indexed, ColumnarMetrics)
    assert indexed.metric_rows() == Aggregator().update(iter_records(samples)).metric_rows()


def test_infra_error_is_unscored_and_rescored_on_resume_from_cache(tmp_path):
    """A grader's infrastructure failure: not wrong, and retried without asking the model again."""
    plugin = tmp_path / "flaky.py"
    flag = tmp_path / "grader_up"
    plugin.write_text(f'''
import os
from evals import Sample, Score, Task, task

@task
def flaky() -> Task:
    def score(sample, completion):
        if not os.path.exists({str(flag)!r}):
            return Score(0.0, None, "sandbox down", status="infra_error")
        return Score(1.0, completion)
    return Task(dataset=[Sample(id=str(i), input=f"q{{i}}") for i in range(3)], scorer=score)
''')
    log = RunLog(tmp_path / "r")
    with FakeServer() as srv:
        cfg = config(srv, tasks=["flaky"], tasks_dirs=[str(plugin)])
        stats = execute(cfg, log, ["evals"])
        assert stats.errors == 3 and srv.count == 3
        assert all(r["score"] is None for r in iter_records(log.samples_path))
        flag.touch()
        stats = execute(cfg, log, ["evals"])
        assert stats.errors == 0 and stats.cached == 3 and srv.count == 3
    assert [r["score"] for r in scores(log).values()] == [1.0, 1.0, 1.0]


def test_ctrl_c_marks_the_run_interrupted_and_resume_finishes_it(tmp_path):
    args = ["run", "arithmetic", "--model", "openai/fake-model", "-T", "count=200",
            "--concurrency", "2", "--results-dir", str(tmp_path), "--run-id", "c", "--no-progress"]
    with FakeServer(script=arithmetic_script, latency=0.05) as srv:
        args += ["--base-url", srv.url]
        child = subprocess.Popen([sys.executable, "-m", "evals.cli", *args], cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples = tmp_path / "c" / "samples.jsonl"
        assert wait_for(lambda: samples.exists() and samples.stat().st_size, 60, 0.01)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
        assert child.returncode == 130, err
        assert "evals resume c" in err
        assert RunLog(tmp_path / "c").read_meta()["status"] == "interrupted"
        result = run_cli("resume", "c", "--results-dir", str(tmp_path), "--concurrency", "32")
        assert result.returncode == 0, result.stderr
    seen, latest = _final_scores(samples)
    assert len(latest) == 200 and max(seen.values()) == 1


def test_cache_keys_on_the_endpoint_not_just_the_model_name(tmp_path):
    with FakeServer(default="ANSWER: 1") as one, FakeServer(default="ANSWER: 2") as two:
        for srv, run in ((one, "a"), (two, "b")):
            execute(config(srv, task_params={"count": "2"}), RunLog(tmp_path / run), ["evals"])
        assert one.count == 2 and two.count == 2
    answers = {run: {r["answer"] for r in iter_records(tmp_path / run / "samples.jsonl")}
               for run in "ab"}
    assert answers == {"a": {"1"}, "b": {"2"}}


def test_model_options_scoped_to_one_model(tmp_path):
    with FakeServer(default="ANSWER: 1") as one, FakeServer(default="ANSWER: 2") as two:
        cfg = RunConfig(tasks=["arithmetic"], models=["openai/a", "openai/b"],
                        task_params={"count": "2"},
                        model_options={"base_url": one.url, "openai/b@base_url": two.url})
        execute(cfg, RunLog(tmp_path / "r"), ["evals"])
        assert {b["model"] for b in one.requests} == {"a"}
        assert {b["model"] for b in two.requests} == {"b"}
    bad = RunConfig(tasks=["arithmetic"], models=["openai/a"],
                    model_options={"openai/typo@base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(ConfigError, match="'openai/typo' is not a model of this run"):
        execute(bad, RunLog(tmp_path / "bad"), ["evals"])


# ---- every generation is its own: seeds, cache keys and partial failures ----

def seed_echo(body, index):
    """A deterministic server: what it answers depends on the seed and choice index only."""
    return f"seed {body.get('seed')} choice {index} ANSWER: 0"


def completions_by_gen(log):
    return {r["gen"]: r.get("completion") for r in scores(log).values()}


def test_fan_out_keeps_siblings_of_a_failed_call_and_asks_only_for_the_rest(tmp_path):
    """The server ignores n; of the fan-out calls, the one for generation 2 fails once."""
    log = RunLog(tmp_path / "r")
    with FakeServer(script=seed_echo, honour_n=False) as srv:
        srv.inject("503", times=1, match=lambda body: body.get("seed") == 9)
        cfg = config(srv, task_params={"count": "1"}, samples=4, seed=7, retries=1,
                     cache=False)
        stats = execute(cfg, log, ["evals"])
        assert stats.errors == 0 and stats.done == 4
        seeds = [b.get("seed") for b in srv.requests]
        # n=4 answered with one choice, three fan-out calls, then only the failed one again
        assert sorted(seeds) == [7, 8, 9, 9, 10] and seeds[-1] == 9
    got = completions_by_gen(log)
    assert got == {g: f"seed {7 + g} choice 0 ANSWER: 0" for g in range(4)}


def test_partial_failure_records_what_succeeded_with_its_usage(tmp_path):
    log = RunLog(tmp_path / "r")
    with FakeServer(script=seed_echo, honour_n=False) as srv:
        srv.inject("400", times=1, match=lambda body: body.get("seed") == 9)
        cfg = config(srv, task_params={"count": "1"}, samples=4, seed=7, cache=False)
        stats = execute(cfg, log, ["evals"])
        assert stats.errors == 1 and srv.count == 4
        records = sorted(iter_records(log.samples_path), key=lambda r: r["gen"])
        assert [r["status"] for r in records] == ["ok", "ok", "error", "ok"]
        assert all(r["usage"]["completion"] == 6 for r in records if r["status"] == "ok")
        # resume asks for generation 2 alone, with generation 2's seed (not generation 0's)
        execute(cfg, log, ["evals"])
        assert srv.requests[-1]["seed"] == 9 and srv.requests[-1].get("n") is None
    got = completions_by_gen(log)
    assert len(set(got.values())) == 4 and got[2] == "seed 9 choice 0 ANSWER: 0"


def flaky_plugin(tmp_path, flag):
    """Gen 2's grading fails (an infra error) until ``flag`` exists."""
    plugin = tmp_path / "flaky_gen.py"
    plugin.write_text(f'''
import os
from evals import Sample, Score, Task, task

@task
def flaky_gen() -> Task:
    def score(sample, completion):
        if "choice 2" in completion and not os.path.exists({str(flag)!r}):
            return Score(0.0, None, "sandbox down", status="infra_error")
        return Score(1.0, completion)
    return Task(dataset=[Sample(id="q", input="q")], scorer=score)
''')
    return plugin


@pytest.mark.parametrize("cache", [True, False])
def test_resumed_generation_is_not_a_copy_of_generation_0(tmp_path, cache):
    """n honoured in one request; generation 2 alone on resume: from the cache (same key
    as in the batch, so not paid again) or, uncached, asked with generation 2's seed."""
    flag = tmp_path / "grader_up"
    log = RunLog(tmp_path / "r")
    with FakeServer(script=seed_echo) as srv:
        cfg = config(srv, tasks=["flaky_gen"], tasks_dirs=[str(flaky_plugin(tmp_path, flag))],
                     samples=4, seed=7, cache=cache)
        assert execute(cfg, log, ["evals"]).errors == 1 and srv.count == 1
        first = completions_by_gen(log)
        flag.touch()
        stats = execute(cfg, log, ["evals"])
        assert stats.errors == 0
        if cache:
            assert srv.count == 1 and stats.cached == 1
        else:
            assert srv.count == 2 and srv.requests[-1]["seed"] == 9
    got = completions_by_gen(log)
    assert got[2] != got[0]
    assert got[2] == (first[2] if cache else "seed 9 choice 0 ANSWER: 0")


def test_judge_calls_count_in_the_settings_cost_and_tokens(tmp_path, monkeypatch):
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."fake-*"]\ninput = 1000000.0\noutput = 1000000.0\n')

    def script(body, index):
        if body["messages"][-1]["content"].startswith("You are grading"):
            return "SCORE: 7"
        return "ANSWER: 0"

    log = RunLog(tmp_path / "r")
    with FakeServer(script=script) as srv:
        cfg = config(srv, task_params={"count": "2"}, samples=2,
                     model_options={"base_url": srv.url, "prices": str(prices)},
                     ranker="openai/fake-judge",
                     ranker_options={"base_url": srv.url, "prices": str(prices)})
        execute(cfg, log, ["evals"])
        judge = [b for b in srv.requests if b["messages"][-1]["content"].startswith("You")]
        assert len(judge) == 4
    for r in iter_records(log.samples_path):
        spent = r["ranker"]  # one judge call per generation, "SCORE: 7" is 2 words
        assert spent["calls"] == 1 and spent["completion"] == 2
        assert spent["cost"] == pytest.approx(spent["prompt"] + spent["completion"])
        # the record's tokens and cost ($1 a token) are the model's share plus the judge's
        own_prompt = r["usage"]["prompt"] - spent["prompt"]
        assert own_prompt > 0 and r["usage"]["completion"] == 2 + 2
        assert r["cost"] == pytest.approx(own_prompt + 2 + spent["cost"])
