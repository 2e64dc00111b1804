"""Batch mode against fake batch endpoints on 127.0.0.1: every provider, every state,
mixed results, expiry, leaving and coming back, kill -9 at each phase, the spend cap
and the dry run."""

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

import evals.orchestrator as run_module
from evals.batch import BatchJournal, custom_id
from evals.fake_batch import FakeAnthropicBatch, FakeGeminiBatch, FakeOpenAIBatch
from evals.prices import find_price, load_prices
from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from evals.runner import Usage
from tests.conftest import REPO, run_cli, wait_for
from tests.test_run import arithmetic_script, expected_scores

SECRET = "sk-batch-secret-abcdefghijklmnop"
FAKES = {"openai": FakeOpenAIBatch, "openai-responses": FakeOpenAIBatch,
         "anthropic": FakeAnthropicBatch, "google": FakeGeminiBatch}
MODELS = ["openai/fake-model", "openai-responses/fake-model", "anthropic/claude-fake",
          "google/gemini-fake"]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(run_module, "backoff", lambda attempt, retry_after: 0.01)


@pytest.fixture
def prices(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text('[models."fake-model"]\ninput = 1000.0\noutput = 2000.0\nbatch = 0.5\n'
                    '[models."claude-fake"]\ninput = 1000.0\noutput = 2000.0\nbatch = 0.5\n'
                    '[models."gemini-fake"]\ninput = 1000.0\noutput = 2000.0\nbatch = 0.5\n')
    return str(path)


def fake_for(model, **kw):
    family = model.partition("/")[0]
    script = arithmetic_script if family == "openai" else None
    return FAKES[family](script=script, **kw)


def batch_config(srv, model, prices, **kw):
    base = dict(tasks=["arithmetic"], models=[model], task_params={"count": "8"}, samples=2,
                model_options={"base_url": srv.url, "prices": prices}, batch=True,
                batch_size=5, batch_poll=0.01, cache=False, concurrency=4)
    base.update(kw)
    return RunConfig(**base)


def keyed(path):
    seen, latest = Counter(), {}
    for r in iter_records(path):
        key = (r["task"], r["model"], r["setting"], r["sample_id"], r["gen"])
        seen[key] += 1
        latest[key] = r
    return seen, latest


def submitted_ids(srv):
    return Counter(cid for batch in srv.created for cid in batch["custom_ids"])


@pytest.mark.parametrize("model", MODELS)
def test_batch_records_match_live_ones_at_batch_prices(tmp_path, model, prices):
    with fake_for(model, steps=2) as srv:
        srv.inject("500", times=1)  # a retryable error inside a results file: sent again
        log = RunLog(tmp_path / "b")
        stats = execute(batch_config(srv, model, prices), log, ["evals"])
        batched = keyed(log.samples_path)[1]
        assert len(srv.created) == 5  # 16 requests in batches of 5, then the one retried
        ids = submitted_ids(srv)
        assert sum(ids.values()) == 17 and sorted(ids.values())[-1] == 2
        live_log = RunLog(tmp_path / "l")
        live_cfg = batch_config(srv, model, prices, batch=False)
        execute(live_cfg, live_log, ["evals"])
        live = keyed(live_log.samples_path)[1]
    assert stats.errors == 0 and stats.done == 16
    assert batched.keys() == live.keys() and len(batched) == 16
    price = find_price(model.partition("/")[2], load_prices(prices))
    for key, record in batched.items():
        twin = live[key]
        assert record["batch"]["provider"] == ("openai" if "openai" in model else
                                               model.partition("/")[0])
        assert record["batch"]["custom_id"] == custom_id(*key)
        assert record["batch"]["price"] == "batch"
        assert "batch" not in twin
        for field in ("completion", "reasoning", "score", "status", "settings",
                      "finish_reason", "answer"):
            assert record[field] == twin[field], field
        # one batch request per generation: the prompt is paid for each, where a live
        # call with n shares it between the generations it answers
        assert record["usage"]["completion"] == twin["usage"]["completion"]
        assert record["usage"]["prompt"] >= twin["usage"]["prompt"]
        usage = Usage(record["usage"]["prompt"], record["usage"]["completion"])
        assert record["cost"] == pytest.approx(price.cost(usage) / 2)
        twin_usage = Usage(twin["usage"]["prompt"], twin["usage"]["completion"])
        assert twin["cost"] == pytest.approx(price.cost(twin_usage))
    if model.startswith("openai/"):
        want = expected_scores(8)
        assert all(r["score"] == want[k[3]] for k, r in batched.items())


def test_seeds_and_mixed_errors_in_one_results_file(tmp_path, prices):
    with FakeOpenAIBatch(script=arithmetic_script) as srv:
        srv.inject("400", times=1)  # not worth retrying: an error record, counted apart
        srv.inject("503", times=2)  # retried in a new batch
        log = RunLog(tmp_path / "r")
        stats = execute(batch_config(srv, "openai/fake-model", prices, seed=7), log, ["evals"])
        first = srv.requests[:16]
    seeds = Counter(b["seed"] for b in first)
    assert set(seeds) == {7, 8} and seeds[7] == seeds[8] == 8  # seed + generation
    seen, latest = keyed(log.samples_path)
    assert max(seen.values()) == 1 and len(latest) == 16
    errors = [r for r in latest.values() if r["status"] == "error"]
    assert stats.errors == 1 and len(errors) == 1 and "HTTP 400" in errors[0]["error"]
    assert errors[0]["score"] is None


@pytest.mark.parametrize("model", ["openai/fake-model", "anthropic/claude-fake"])
def test_expired_requests_go_again_in_a_new_batch(tmp_path, model, prices):
    # every batch expires after answering its first 3 requests
    with fake_for(model, expire_after=3) as srv:
        log = RunLog(tmp_path / "r")
        stats = execute(batch_config(srv, model, prices), log, ["evals"])
    seen, latest = keyed(log.samples_path)
    assert stats.errors == 0 and len(latest) == 16 and max(seen.values()) == 1
    assert all(r["status"] != "error" for r in latest.values())
    assert len(srv.created) > 4


def test_expired_requests_can_go_live(tmp_path, prices):
    with FakeAnthropicBatch(expire_after=2) as srv:
        log = RunLog(tmp_path / "r")
        stats = execute(batch_config(srv, "anthropic/claude-fake", prices,
                                     batch_retry="live"), log, ["evals"])
    seen, latest = keyed(log.samples_path)
    assert stats.errors == 0 and len(latest) == 16 and max(seen.values()) == 1
    live = [r for r in latest.values() if "batch" not in r]
    # batches of 5, 5, 5 and 1 answer 2, 2, 2 and 1; the other 9 were asked live
    assert len(live) == 9 and srv.count == 9 and len(srv.created) == 4


def test_a_failed_batch_is_sent_again_and_gives_up_after_the_retries(tmp_path, prices):
    with FakeOpenAIBatch(fail=True) as srv:
        log = RunLog(tmp_path / "r")
        stats = execute(batch_config(srv, "openai/fake-model", prices, retries=1), log,
                        ["evals"])
    latest = keyed(log.samples_path)[1]
    assert stats.errors == 16 and all(r["status"] == "error" for r in latest.values())
    assert all("after 2 submissions" in r["error"] for r in latest.values())
    assert max(submitted_ids(srv).values()) == 2


def test_leave_then_resume_collects_without_sending_again(tmp_path, prices):
    with FakeGeminiBatch(hold=True) as srv:
        log = RunLog(tmp_path / "r")
        cfg = batch_config(srv, "google/gemini-fake", prices)
        stats = execute(cfg, log, ["evals"], batch_wait=False)
        assert stats.pending_batches == 4 and stats.done == 0
        assert log.read_meta()["status"] == "pending"
        stats = execute(cfg, log, ["evals"], batch_wait=False)  # still running: left again
        assert stats.pending_batches == 4 and len(srv.created) == 4
        srv.release()
        stats = execute(cfg, log, ["evals"])
    seen, latest = keyed(log.samples_path)
    assert stats.pending_batches == 0 and len(latest) == 16 and max(seen.values()) == 1
    assert log.read_meta()["status"] == "completed"
    assert max(submitted_ids(srv).values()) == 1
    journal = BatchJournal(log.dir)
    assert {b["state"] for b in journal.batches(open_only=False)} == {"collected"}
    journal.close()


def cli_args(tmp_path, srv, model, prices, run_id="k9", extra=()):
    return ["run", "arithmetic", "--model", model, "-T", "count=8", "--samples", "2",
            "--base-url", srv.url, "-M", f"prices={prices}", "--batch", "--batch-size", "5",
            "--batch-poll", "0.02", "--no-cache", "--results-dir", str(tmp_path),
            "--run-id", run_id, "--no-progress", *extra]


def start(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "evals.cli", *args], cwd=REPO,
                            env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("model,phase", [
    ("openai/fake-model", "upload"),  # the file is up, the batch not created
    ("openai/fake-model", "create"),  # created at the provider, its id never heard
    ("anthropic/claude-fake", "create"),
    ("google/gemini-fake", "create"),
    ("openai-responses/fake-model", "pending"),  # submitted, still running
    ("openai/fake-model", "results"),  # ended, its results downloading
    ("anthropic/claude-fake", "results"),
    ("google/gemini-fake", "results"),
])
def test_kill_9_at_each_phase_then_resume(tmp_path, model, phase, prices):
    kw = {"hold": True} if phase == "pending" else {}
    with fake_for(model, **kw) as srv:
        if phase != "pending":
            srv.stall.add(phase)
        child = start(cli_args(tmp_path, srv, model, prices))
        journal = tmp_path / "k9" / "batches.sqlite"
        if phase == "pending":
            assert wait_for(lambda: srv.looks >= 8, 60, 0.01)
        else:
            assert wait_for(lambda: srv.stalled.get(phase), 60, 0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert journal.exists()
        srv.stall.clear()
        srv.release()
        before = len(srv.created)
        result = run_cli("resume", "k9", "--results-dir", str(tmp_path))
        assert result.returncode == 0, result.stderr
        if phase in ("create", "pending", "results"):
            assert "found as" in result.stderr or phase != "create"
    samples = tmp_path / "k9" / "samples.jsonl"
    seen, latest = keyed(samples)
    assert len(latest) == 16 and max(seen.values()) == 1  # nothing lost, nothing twice
    assert all(r["status"] != "error" for r in latest.values())
    assert max(submitted_ids(srv).values()) == 1  # no request was sent twice
    if phase in ("pending", "results"):
        assert len(srv.created) == before  # the resume only collected
    if model.startswith("openai/"):
        want = expected_scores(8)
        assert all(r["score"] == want[k[3]] for k, r in latest.items())
    assert RunLog(tmp_path / "k9").read_meta()["status"] == "completed"


def test_kill_9_while_results_are_being_recorded(tmp_path, prices):
    """A scorer slow enough that the kill lands between records of one batch."""
    plugin = tmp_path / "slow.py"
    plugin.write_text('''
import time
from evals import Sample, Score, Task, task

@task
def slow() -> Task:
    def score(sample, completion):
        time.sleep(0.05)
        return Score(1.0, completion)
    return Task(dataset=[Sample(id=str(i), input=f"q{i}") for i in range(12)], scorer=score)
''')
    with FakeAnthropicBatch() as srv:
        args = cli_args(tmp_path, srv, "anthropic/claude-fake", prices)
        args[1] = "slow"
        args[args.index("-T"):args.index("-T") + 2] = ["--tasks-dir", str(plugin)]
        args += ["--concurrency", "1"]
        child = start(args)
        samples = tmp_path / "k9" / "samples.jsonl"
        assert wait_for(lambda: samples.exists() and samples.read_bytes().count(b"\n") >= 3,
                        60, 0.005)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert samples.read_bytes().count(b"\n") < 24
        result = run_cli("resume", "k9", "--results-dir", str(tmp_path))
        assert result.returncode == 0, result.stderr
    seen, latest = keyed(samples)
    assert len(latest) == 24 and max(seen.values()) == 1
    assert max(submitted_ids(srv).values()) == 1


def test_no_wait_exits_5_and_resume_collects(tmp_path, prices):
    with FakeAnthropicBatch(hold=True) as srv:
        result = run_cli(*cli_args(tmp_path, srv, "anthropic/claude-fake", prices,
                                   extra=["--no-wait"]))
        assert result.returncode == 5, result.stderr
        assert "evals resume k9" in result.stderr
        srv.release()
        result = run_cli("resume", "k9", "--results-dir", str(tmp_path))
        assert result.returncode == 0, result.stderr
    assert len(keyed(tmp_path / "k9" / "samples.jsonl")[1]) == 16
    assert len(srv.created) == 4


def test_spend_cap_stops_live_work_and_a_higher_cap_resumes(tmp_path, prices):
    with FakeOpenAIBatch(script=arithmetic_script) as srv:
        args = cli_args(tmp_path, srv, "openai/fake-model", prices, run_id="cap")
        args.remove("--batch")
        args += ["--concurrency", "1", "--max-cost", "0.2"]
        result = run_cli(*args)
        assert result.returncode == 4, result.stderr
        assert "--max-cost" in result.stderr and "evals resume cap" in result.stderr
        log = RunLog(tmp_path / "cap")
        assert log.read_meta()["status"] == "capped"
        records = list(iter_records(log.samples_path))
        spent = sum(r["cost"] for r in records)
        assert 0 < len(records) < 16 and spent >= 0.2
        assert spent - records[-1]["cost"] < 0.2  # nothing was sent after the cap was met
        result = run_cli("resume", "cap", "--results-dir", str(tmp_path), "--max-cost", "100")
        assert result.returncode == 0, result.stderr
    seen, latest = keyed(log.samples_path)
    assert len(latest) == 16 and max(seen.values()) == 1


def test_spend_cap_holds_back_batches(tmp_path, prices):
    with FakeAnthropicBatch() as srv:
        args = cli_args(tmp_path, srv, "anthropic/claude-fake", prices, run_id="cap",
                        extra=["--max-tokens", "50", "--max-cost", "0.1"])
        result = run_cli(*args)
        assert result.returncode == 4, result.stderr
        sent = len(srv.created)
        assert 1 <= sent < 4
        result = run_cli("resume", "cap", "--results-dir", str(tmp_path), "--max-cost", "100")
        assert result.returncode == 0, result.stderr
    seen, latest = keyed(tmp_path / "cap" / "samples.jsonl")
    assert len(latest) == 16 and max(seen.values()) == 1
    assert max(submitted_ids(srv).values()) == 1


def test_dry_run_sends_nothing_and_learns_from_earlier_runs(tmp_path, prices):
    with FakeOpenAIBatch(script=arithmetic_script) as srv:
        args = cli_args(tmp_path, srv, "openai/fake-model", prices, run_id="dry",
                        extra=["--dry-run", "--max-tokens", "100"])
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        assert srv.count == 0 and not (tmp_path / "dry").exists()
        assert "16" in result.stdout and "(est.)" in result.stdout
        assert "--max-tokens" in result.stdout and "nothing was sent" in result.stdout
        args = [a for a in args if a != "--dry-run"]
        assert run_cli(*args).returncode == 0
        args[args.index("dry")] = "dry2"
        before = (srv.count, len(srv.created), len(srv.requests))
        result = run_cli(*args, "--dry-run")
        assert (srv.count, len(srv.created), len(srv.requests)) == before
    assert "earlier runs" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "fake-model" in line)
    live, batch = row.split()[-2:]
    low, high = (float(x) for x in live.lstrip("$").split("-"))
    blow, bhigh = (float(x) for x in batch.lstrip("$").split("-"))
    assert blow == pytest.approx(low / 2, rel=1e-3) and bhigh == pytest.approx(high / 2, rel=1e-3)


def test_keys_reach_no_file_of_a_batch_run(tmp_path, prices):
    with FakeOpenAIBatch(api_key=SECRET) as srv:
        log = RunLog(tmp_path / "r")
        cfg = batch_config(srv, "openai/fake-model", prices)
        cfg.model_options["api_key"] = SECRET
        execute(cfg, log, ["evals"])
        assert srv.saw_auth
    assert len(keyed(log.samples_path)[1]) == 16
    for path in (tmp_path / "r").iterdir():
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_pool_of_replicas_runs_live_under_batch(tmp_path, capfd):
    """--batch with --base-url given twice: replicas have no batch API, so the pool's
    requests run live over both (said once), instead of failing on the pool."""
    with FakeOpenAIBatch(script=arithmetic_script) as a, \
            FakeOpenAIBatch(script=arithmetic_script) as b:
        config = RunConfig(tasks=["arithmetic"], models=["openai/fake-model"],
                           task_params={"count": "6"},
                           model_options={"base_url": f"{a.url},{b.url}"}, batch=True,
                           batch_poll=0.01, cache=False)
        log = RunLog(tmp_path / "r")
        execute(config, log, ["evals"])
        assert a.created == b.created == [] and a.count + b.count == 6
    records = list(iter_records(log.samples_path))
    assert sorted(r["status"] for r in records) == ["ok"] * 6
    assert all("batch" not in r for r in records)
    assert "runs live, not batched: its --base-url names several endpoints" in capfd.readouterr().err
