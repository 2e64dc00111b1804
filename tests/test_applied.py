"""Requested vs applied compute: records keep both, and the flags find collapsed settings
and reasoning that does not grow."""

import pytest

from evals.applied import compute_flags, render_flags
from evals.fake_anthropic import FakeAnthropic
from evals.fake_responses import FakeResponses
from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from evals.runner import register_runner, runner_families
from runners import anthropic, openai_responses


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """The families as the entry points register them, whatever the installed metadata."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    families = runner_families()
    for family, module in (("openai-responses", openai_responses), ("anthropic", anthropic)):
        if family not in families:
            register_runner(family)(module.make_runner)


def record(setting, effort=None, budget=None, reasoning=0.0, completion=0.0, applied=None,
           status="ok", task="t", model="m"):
    r = {"task": task, "model": model, "setting": setting, "status": status,
         "settings": {"effort": effort, "thinking_budget": budget, "max_tokens": None,
                      "samples": 1},
         "usage": {"prompt": 1.0, "completion": completion, "reasoning": reasoning}}
    if applied:
        r["applied"] = applied
    return r


def test_settings_remapped_to_one_effort_are_flagged():
    records = [record("effort=low", "low", reasoning=100),
               record("effort=medium", "medium", reasoning=900,
                      applied={"effort": "high", "source": "provider"}),
               record("effort=high", "high", reasoning=950,
                      applied={"effort": "high", "source": "provider"})]
    flags = compute_flags(records)
    assert [(f.kind, f.settings) for f in flags] == [
        ("same_compute", ("effort=high", "effort=medium"))]
    assert "ran as the same compute (effort=high)" in render_flags(flags)


def test_budgets_clamped_to_one_are_flagged():
    clamp = {"thinking_budget": 1024, "source": "runner"}
    flags = compute_flags([record("b=256", budget=256, reasoning=5, applied=clamp),
                           record("b=512", budget=512, reasoning=6, applied=clamp),
                           record("b=1024", budget=1024, reasoning=7),
                           record("b=4096", budget=4096, reasoning=90)])
    assert [(f.kind, f.settings) for f in flags] == [
        ("same_compute", ("b=1024", "b=256", "b=512"))]


def test_reasoning_that_does_not_grow_with_effort_is_flagged():
    records = [record("lo", "low", reasoning=r) for r in (100, 120)]
    records += [record("mid", "medium", reasoning=r) for r in (90, 100)]
    records += [record("hi", "high", reasoning=r) for r in (400, 500)]
    records += [record("hi", "high", status="error", reasoning=0)]  # failed calls don't count
    flags = compute_flags(records)
    assert [(f.kind, f.settings) for f in flags] == [("flat_reasoning", ("lo", "mid"))]
    assert "mean reasoning tokens (95) are not higher (110)" in flags[0].detail


def test_completion_tokens_stand_in_where_no_reasoning_is_reported():
    flags = compute_flags([record("b=2048", budget=2048, completion=700),
                           record("b=8192", budget=8192, completion=650),
                           record("b=8192", budget=8192, completion=640, task="other")])
    assert [(f.task, f.settings) for f in flags] == [("t", ("b=2048", "b=8192"))]
    assert "completion tokens" in flags[0].detail


def test_models_and_other_knobs_are_compared_apart():
    records = [record("lo", "low", reasoning=500), record("hi", "high", reasoning=100, model="x"),
               record("custom", "turbo", reasoning=1)]  # an effort outside the known order
    assert compute_flags(records) == []


def arithmetic(body, index):
    prompt = body["input"][-1]["content"] if "input" in body else body["messages"][-1]["content"]
    expr = prompt.split("Compute ")[1].split(". Think")[0]
    return {"content": f"ANSWER: {eval(expr)}", "reasoning_content": "so " * len(expr)}


def test_run_records_requested_and_applied_and_show_flags_them(tmp_path):
    with FakeResponses(script=arithmetic, effort_map={"medium": "high"}) as srv:
        cfg = RunConfig(tasks=["arithmetic"], models=["openai-responses/o4-mini"],
                        model_options={"base_url": srv.url}, efforts=["medium", "high"],
                        task_params={"count": "3"}, concurrency=4)
        stats = execute(cfg, RunLog(tmp_path / "r"), ["evals"])
    assert stats.errors == 0
    records = list(iter_records(RunLog(tmp_path / "r").samples_path))
    medium = next(r for r in records if r["setting"] == "effort=medium")
    assert medium["settings"]["effort"] == "medium"
    assert medium["applied"] == {"effort": "high", "source": "provider"}
    flags = compute_flags(records)
    assert [(f.kind, f.settings) for f in flags] == [
        ("same_compute", ("effort=high", "effort=medium"))]


def test_clamped_budget_reaches_the_record(tmp_path):
    with FakeAnthropic(script=arithmetic) as srv:
        cfg = RunConfig(tasks=["arithmetic"], models=["anthropic/claude-sonnet-4-5"],
                        model_options={"base_url": srv.url}, thinking_budgets=[512, 2048],
                        task_params={"count": "2"}, concurrency=4)
        execute(cfg, RunLog(tmp_path / "r"), ["evals"])
    records = list(iter_records(RunLog(tmp_path / "r").samples_path))
    small = [r for r in records if r["settings"]["thinking_budget"] == 512]
    assert small and all(r["applied"] == {"thinking_budget": 1024, "source": "runner"}
                         for r in small)
    assert all("applied" not in r for r in records if r["settings"]["thinking_budget"] == 2048)
    assert all(r["score"] == 1.0 for r in records)


def test_show_and_leaderboard_print_the_flags(tmp_path):
    from typer.testing import CliRunner

    from evals.cli import app

    with FakeResponses(script=arithmetic, effort_map={"low": "medium"}) as srv:
        cfg = RunConfig(tasks=["arithmetic"], models=["openai-responses/o3"],
                        model_options={"base_url": srv.url}, efforts=["low", "medium"],
                        task_params={"count": "2"}, concurrency=4)
        execute(cfg, RunLog(tmp_path / "run1"), ["evals"])
    cli = CliRunner()
    shown = cli.invoke(app, ["show", "run1", "--results-dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    line = ("compute: arithmetic openai-responses/o3: effort=low and effort=medium ran as the "
            "same compute (effort=medium)")
    assert line in " ".join(shown.output.split())  # wrapped to the terminal's width
    as_json = cli.invoke(app, ["show", "run1", "--results-dir", str(tmp_path), "--json"])
    assert '"kind": "same_compute"' in as_json.output
    board = cli.invoke(app, ["leaderboard", "--results-dir", str(tmp_path)])
    assert board.exit_code == 0 and line in " ".join(board.output.split())
