"""An agent's compute axes: --max-steps, --agent-max-tokens and --agent-max-cost make
settings of their own (config, labels, the request, records, resume, merge), and
results show the resolved rate beside mean steps, tokens and cost per instance.

The runs go through the fake OpenAI server (the wire format of a real one) and the
agent loop of tasks/agent.py; the agent's shell is scripted (tests/data/chores_task.py),
so no Docker is needed: the container path is tests/test_swe_agent.py's."""

from __future__ import annotations

import csv
import io
import json

import pytest

from evals.config import RunConfig, Setting, settings_json
from evals.fake_openai import FakeServer
from evals.leaderboard import build_rows
from evals.metrics_columnar import aggregate
from evals.records import RunLog, iter_records
from evals.run import execute
from evals.runner import ConfigError
from evals.task import TaskError
from tests.conftest import REPO, run_cli
from tests.data.chores_task import chores_script

PLUGIN = str(REPO / "tests" / "data" / "chores_task.py")


def chores_run(root, server=None, **axes) -> RunLog:
    if server is None:
        with FakeServer(script=chores_script, models=("gpt-4o",)) as server:
            return chores_run(root, server, **axes)
    config = RunConfig(tasks=["chores"], models=["openai/gpt-4o"], tasks_dirs=[PLUGIN],
                       model_options={"base_url": server.url}, cache=False, **axes)
    log = RunLog(root / "r")
    execute(config, log, ["evals"])
    return log


def test_the_grid_and_the_labels():
    config = RunConfig(tasks=["t"], models=["m"], efforts=["low", "high"], max_steps=[10, 30],
                       agent_max_tokens=[5000, None, 5000], agent_max_cost=[0.5])
    settings = config.settings()
    assert config.agent_max_tokens == [5000, None]  # a value given twice runs once
    assert len(settings) == 2 * 2 * 2 * 1
    assert settings[0].name == "effort=low,steps=10,agent_tokens=5000,agent_cost=0.5"
    assert settings[1].name == "effort=low,steps=10,agent_cost=0.5"
    assert len({s.name for s in settings}) == len(settings)
    close = RunConfig(tasks=["t"], models=["m"], agent_max_cost=[0.1234561, 0.1234564, 2.0])
    assert [s.name for s in close.settings()] == [
        "agent_cost=0.1234561", "agent_cost=0.1234564", "agent_cost=2"]
    assert settings_json(settings[0])["agent_max_tokens"] == 5000
    # a setting without agent limits is stored as it was before they existed
    assert "agent_max_tokens" not in settings_json(Setting("low"))
    assert config.agent_axes() == ["--max-steps", "--agent-max-tokens", "--agent-max-cost"]
    # resume and merge compare configurations: another limit is another run
    other = RunConfig(tasks=["t"], models=["m"], efforts=["low", "high"], max_steps=[10, 30],
                      agent_max_tokens=[6000], agent_max_cost=[0.5])
    assert any(d.startswith("agent_max_tokens") for d in config.differences(other))
    # a run.json from before the axes reads as no limit
    stored = {k: v for k, v in config.to_json().items() if not k.startswith("agent_")}
    assert RunConfig.from_json(stored).agent_max_cost == [None]


@pytest.mark.parametrize("args, message", [
    (["--agent-max-tokens", "100,0"], "--agent-max-tokens '100,0': '0' is not a token limit"),
    (["--agent-max-tokens", "1e3"], "'1e3' is not a token limit"),
    (["--agent-max-cost", "0.5,free"], "'free' is not a spend limit (USD above 0), or none"),
    (["--agent-max-cost", "-1"], "'-1' is not a spend limit"),
    (["--max-steps", "none"], "'none' is not a step limit (whole numbers >= 1)"),
])
def test_bad_limits_get_one_clear_line(tmp_path, args, message):
    done = run_cli("run", "chores", "-m", "gold", "--tasks-dir", PLUGIN,
                   "--results-dir", str(tmp_path), *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_agent_axes_need_a_task_with_an_agent(tmp_path):
    with pytest.raises(ConfigError, match="--agent-max-cost: only for tasks with an agent"):
        execute(RunConfig(tasks=["arithmetic"], models=["gold"], agent_max_cost=[1.0]),
                RunLog(tmp_path / "r"), ["evals"])


def test_the_swe_parameters_moved_to_the_axes():
    from tasks.swe import swe

    with pytest.raises(TaskError, match=r"-T agent_max_tokens is now a compute axis: "
                                        r"`evals run --agent-max-tokens 5000`"):
        swe(mode="agent", agent_max_tokens="5000")


def test_two_token_limits_are_two_settings(tmp_path):
    """The fake server counts a word as a token, so the conversation outgrows 60 tokens
    within two turns: problems needing more commands stop at max_tokens unsolved."""
    log = chores_run(tmp_path, agent_max_tokens=[60, 100_000])
    records = list(iter_records(log.samples_path))
    by = {s: [r for r in records if r["setting"] == s]
          for s in ("agent_tokens=60", "agent_tokens=100000")}
    assert {len(v) for v in by.values()} == {8}
    tight, loose = by.values()
    assert all(r["settings"]["agent_max_tokens"] == 60 for r in tight)
    assert {r["finish_reason"] for r in loose} == {"submitted"}
    assert all(r["score"] == 1.0 for r in loose)
    assert {r["finish_reason"] for r in tight} == {"submitted", "max_tokens"}
    for r in tight:  # an episode stopped at its limit had spent it, and is not solved
        if r["finish_reason"] == "max_tokens":
            assert r["usage"]["prompt"] + r["usage"]["completion"] >= 60 and r["score"] == 0
    assert sum(r["score"] for r in tight) < 8
    # steps: the commands needed, plus the submit
    assert sorted(r["steps"] for r in loose) == sorted(2 + i % 4 for i in range(8))
    assert all(r["cost"] > 0 for r in records)  # gpt-4o has a price

    rows = {(r["setting"], r["metric"]): r for r in build_rows(tmp_path)}
    row = rows[("agent_tokens=100000", "accuracy")]
    assert row["value"] == 1.0 and row["agent_max_tokens"] == 100_000
    assert row["steps_mean"] == pytest.approx(sum(2 + i % 4 for i in range(8)) / 8)
    assert row["cost_per_problem"] == pytest.approx(sum(r["cost"] for r in loose) / 8)
    assert row["tokens"] == pytest.approx(
        sum(r["usage"]["prompt"] + r["usage"]["completion"] for r in loose) / 8)
    # settings by compute: the tighter limit first
    order = [r["setting"] for r in build_rows(tmp_path) if r["metric"] == "accuracy"]
    assert order == ["agent_tokens=60", "agent_tokens=100000"]


def test_show_and_leaderboard_give_steps_tokens_and_cost(tmp_path):
    chores_run(tmp_path, max_steps=[2, 8])
    show = run_cli("show", "r", "--results-dir", str(tmp_path), env={"COLUMNS": "250"})
    assert show.returncode == 0, show.stderr
    header = next(line for line in show.stdout.splitlines() if "┃ setting" in line)
    assert [c in header for c in ("steps", "tokens", "$/problem")] == [True] * 3
    assert "same compute" not in show.stdout  # two step limits are two computes
    line = next(line for line in show.stdout.splitlines() if "steps=2 " in line)
    assert " 2.0 " in line  # every episode used its two steps
    board = run_cli("leaderboard", "--results-dir", str(tmp_path), "--format", "csv")
    rows = {r["setting"]: r for r in csv.DictReader(io.StringIO(board.stdout))
            if r["metric"] == "accuracy"}
    assert list(rows) == ["steps=2", "steps=8"]
    assert rows["steps=2"]["max_steps"] == "2" and float(rows["steps=2"]["steps_mean"]) == 2.0
    # with 2 steps only problems needing one command are solved (and submitted)
    assert float(rows["steps=2"]["value"]) == 0.25 and float(rows["steps=8"]["value"]) == 1.0
    assert float(rows["steps=8"]["cost_per_problem"]) > float(rows["steps=2"]["cost_per_problem"])
    text = run_cli("leaderboard", "--results-dir", str(tmp_path), env={"COLUMNS": "250"})
    header = next(line for line in text.stdout.splitlines() if "┃ setting" in line)
    assert "steps" in header
    execute(RunConfig(tasks=["arithmetic"], models=["gold"], task_params={"count": "4"}),
            RunLog(tmp_path / "plain"), ["evals"])
    plain = run_cli("leaderboard", "--task", "arithmetic", "--results-dir", str(tmp_path),
                    env={"COLUMNS": "250"})
    assert "arithmetic" in plain.stdout and "steps" not in plain.stdout  # no agent: no column
    js = json.loads(run_cli("leaderboard", "--results-dir", str(tmp_path), "--format",
                            "json").stdout)
    assert {r["steps_mean"] for r in js if r["metric"] == "accuracy"} == {2.0, 3.5, None}


def test_resume_runs_only_the_missing_setting(tmp_path):
    with FakeServer(script=chores_script, models=("gpt-4o",)) as server:
        log = chores_run(tmp_path, server, agent_max_cost=[0.0001, 1.0])
        lines = log.samples_path.read_bytes().splitlines(keepends=True)
        kept = [line for line in lines if b'"agent_cost=0.0001"' in line]
        assert 0 < len(kept) < len(lines)
        log.samples_path.write_bytes(b"".join(kept))  # as if killed before the other setting
        for index in log.dir.glob("samples.jsonl.index*"):
            index.unlink()
        chores_run(tmp_path, server, agent_max_cost=[0.0001, 1.0])
    records = list(iter_records(log.samples_path))
    assert len(records) == len(lines)  # the cheap setting's records were not redone
    settings = [r["setting"] for r in records]
    assert settings.count("agent_cost=0.0001") == settings.count("agent_cost=1") == 8
    cheap = [r for r in records if r["setting"] == "agent_cost=0.0001"]
    assert "max_cost" in {r["finish_reason"] for r in cheap}


def test_agent_records_are_read_without_the_index(tmp_path):
    """Steps are not in the score index: an agent's run is aggregated from its JSON."""
    log = chores_run(tmp_path)
    agg = aggregate(log.samples_path, min_bytes=0)
    (cost,) = agg.cost_rows().values()
    assert cost.steps_mean == pytest.approx(sum(2 + i % 4 for i in range(8)) / 8)


def test_a_cost_limit_without_a_price_is_an_error_that_says_so(tmp_path):
    with FakeServer(script=chores_script) as srv:  # fake-model: no price
        config = RunConfig(tasks=["chores"], models=["openai/fake-model"], tasks_dirs=[PLUGIN],
                           model_options={"base_url": srv.url}, agent_max_cost=[0.5],
                           cache=False, limit=2)
        stats = execute(config, RunLog(tmp_path / "r"), ["evals"])
    records = list(iter_records(tmp_path / "r" / "samples.jsonl"))
    assert stats.errors == 2 and {r["status"] for r in records} == {"error"}
    assert all("cost limit needs the model's price" in r["error"] for r in records)


def test_batch_runs_agent_episodes_live_with_their_limits(tmp_path, capfd):
    """--batch cannot batch an agent's turns (each waits on the last): its episodes run
    live, said once, and every step limit still applies."""
    from evals.fake_batch import FakeOpenAIBatch

    with FakeOpenAIBatch(script=chores_script) as server:
        config = RunConfig(tasks=["chores"], models=["openai/fake-model"], tasks_dirs=[PLUGIN],
                           task_params={"count": "2"}, model_options={"base_url": server.url},
                           max_steps=[1, 10], batch=True, batch_poll=0.01, cache=False)
        log = RunLog(tmp_path / "r")
        execute(config, log, ["evals"])
        assert server.created == [] and server.count > 0  # live calls, no batch
    records = list(iter_records(log.samples_path))
    assert {r["setting"] for r in records} == {"steps=1", "steps=10"}
    assert all("batch" not in r and r["trajectory"] for r in records)
    assert {r["steps"] for r in records if r["setting"] == "steps=1"} == {1}
    assert max(r["steps"] for r in records if r["setting"] == "steps=10") > 1
    assert "chores runs live, not batched" in capfd.readouterr().err
