"""The `evals` command as users run it: run, show, leaderboard, validate, list."""

import csv
import io
import json
import types

import pytest
import textwrap

from rich.console import Console

from evals.progress import ProgressLine
from evals.run import RunStats
from tests.conftest import run_cli


def test_offline_demo_run_show_and_leaderboard(tmp_path):
    res = str(tmp_path / "results")
    result = run_cli("run", "arithmetic", "--model", "gold", "-T", "count=8", "--samples", "2",
                     "--effort", "low,high", "--results-dir", res, "--run-id", "demo")
    assert result.returncode == 0, result.stderr
    assert "32 generations" in result.stderr

    shown = run_cli("show", "demo", "--results-dir", res, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["run"]["status"] == "completed"
    assert data["run"]["config"]["efforts"] == ["low", "high"]
    accuracy = [m for m in data["metrics"] if m["metric"] == "accuracy"]
    assert len(accuracy) == 2 and all(m["value"] == 1.0 and m["n"] == 8 for m in accuracy)

    table = run_cli("show", "demo", "--results-dir", res, env={"COLUMNS": "200"})
    assert table.returncode == 0 and "effort=low,n=2" in table.stdout

    board = run_cli("leaderboard", "--results-dir", res, "--format", "csv")
    assert board.returncode == 0, board.stderr
    rows = list(csv.DictReader(io.StringIO(board.stdout)))
    assert {"task", "model", "setting", "metric", "value", "n"} <= set(rows[0])
    acc = [r for r in rows if r["metric"] == "accuracy"]
    assert {r["setting"] for r in acc} == {"effort=low,n=2", "effort=high,n=2"}
    assert all(float(r["value"]) == 1.0 and r["n"] == "8" and r["run"] == "demo" for r in acc)

    md = run_cli("leaderboard", "--results-dir", res, "--format", "markdown")
    assert md.stdout.startswith("| task | model | setting | metric |")
    js = run_cli("leaderboard", "--results-dir", res, "--format", "json")
    assert {r["metric"] for r in json.loads(js.stdout)} >= {"accuracy"}
    filtered = run_cli("leaderboard", "--results-dir", res, "--format", "json", "--task", "other")
    assert json.loads(filtered.stdout) == []
    bad = run_cli("leaderboard", "--results-dir", res, "--format", "xml")
    assert bad.returncode != 0 and "expected table, markdown, csv, json or html" in bad.stderr
    for args in (["report", "-o", str(tmp_path / "a.html")],
                 ["leaderboard", "--format", "html", "-o", str(tmp_path / "b.html")]):
        made = run_cli(*args, "--results-dir", res)
        assert made.returncode == 0, made.stderr
    html = (tmp_path / "a.html").read_text()
    assert "arithmetic" in html and "effort=high,n=2" in html and "http" not in html.split("<body")[1]
    other = (tmp_path / "b.html").read_text()  # the same report, but for its time stamp
    assert len(other) == len(html) and other.count("<tr") == html.count("<tr")


def test_show_unknown_run(tmp_path):
    result = run_cli("show", "nope", "--results-dir", str(tmp_path))
    assert result.returncode != 0 and "no run 'nope'" in result.stderr


def test_validate_fails_when_gold_does_not_score(tmp_path):
    (tmp_path / "wrong.py").write_text(textwrap.dedent('''
        from evals import Sample, Score, Task, task

        @task
        def wrong() -> Task:
            samples = [Sample(id="a", input="q", target="1"),
                       Sample(id="b", input="q", target="2", solution="not it")]
            return Task(dataset=samples,
                        scorer=lambda s, c: Score(float(c == s.target), c))
    '''))
    result = run_cli("validate", "wrong", "--tasks-dir", str(tmp_path))
    assert result.returncode == 1
    assert "scored 1/2 with the gold runner" in result.stderr
    assert "b: ok answer='not it'" in result.stderr


def test_malformed_record_file_is_reported_with_its_line(tmp_path):
    res = tmp_path / "results"
    assert run_cli("run", "arithmetic", "--model", "gold", "-T", "count=2", "--results-dir",
                   str(res), "--run-id", "r").returncode == 0
    with open(res / "r" / "samples.jsonl", "a") as f:
        f.write("{broken\n")
    result = run_cli("show", "r", "--results-dir", str(res))
    assert result.returncode == 1 and "samples.jsonl:3: not a JSON record" in result.stderr


def test_bad_cli_values():
    assert "expected key=value" in run_cli("run", "arithmetic", "-m", "gold", "-T", "count").stderr
    out = run_cli("run", "arithmetic", "-m", "gold", "--thinking-budget", "lots")
    assert out.returncode != 0 and "'lots' is not a budget" in out.stderr


def test_progress_line_shows_counts_tokens_cost_and_eta():
    stats = RunStats(total=100, done=40, errors=2, prompt_tokens=1000, completion_tokens=234,
                     cost=0.125, cached=5, done_at_start=10)
    stats.first_done_at, stats.first_done = 100.0, 10  # 30 generations in 30 s from here
    console = Console(width=200, record=True)
    console.print(ProgressLine(stats, "run-1", clock=lambda: 130.0))
    text = console.export_text()
    for part in ("run-1", "40/100", "errors 2", "tokens 1.2k", "$0.1250", "cached 5",
                 "eta 0:01:00"):
        assert part in text, (part, text)
    stats.cost_known = False
    console.print(ProgressLine(stats, "run-1"))
    assert "cost n/a" in console.export_text()


def test_progress_eta_waits_for_the_first_finished_unit_then_ignores_the_pipeline_fill():
    stats = RunStats(total=100, done=0)
    line = ProgressLine(stats, "r", clock=lambda: 30.0)
    assert line.eta(30.0) == "-:--:--"  # nothing finished yet: no guess
    stats.started = 0.0  # 28 s of requests in flight before the first answers
    stats.done, stats.first_done_at, stats.first_done = 32, 28.0, 32
    assert line.eta(28.0) == "-:--:--"
    stats.done = 64  # 32 more in the next 2 s: 36 left take 2.25 s, not 38 s
    assert line.eta(30.0) == "0:00:02"


def test_progress_line_fits_80_columns_with_a_score_per_task():
    stats = RunStats(total=12000, done=4000, errors=12, prompt_tokens=12_345_678,
                     completion_tokens=7_890_123, cost=12.3456, cached=500, done_at_start=100)
    stats.scores = {"arithmetic": [300.0, 400], "gpqa": [10.0, 40]}
    for width in (60, 80, 100):
        console = Console(width=width, record=True)
        console.print(ProgressLine(stats, "20261206-060101-abcd"))
        text = console.export_text()
        assert len(text.splitlines()) == 1 and len(text.rstrip("\n")) <= width, text
        assert "4000/12000" in text and "eta" in text and "errors 12" in text
    assert "arithmetic 0.75 gpqa 0.25" in text and "tokens 20.2M" in text


def test_a_resumed_run_counts_tokens_and_scores_from_its_earlier_sessions(tmp_path):
    from evals.config import RunConfig
    from evals.records import RunLog
    from evals.run import execute

    config = RunConfig(tasks=["arithmetic"], models=["gold"], task_params={"count": "4"},
                       samples=2, cache=False)
    first = execute(config, RunLog(tmp_path / "r"), ["evals"])
    assert first.prompt_tokens > 0 and first.scores == {"arithmetic": [8.0, 8]}
    again = execute(config, RunLog(tmp_path / "r"), ["evals"])  # nothing left to do
    assert again.done == again.done_at_start == 8
    assert (again.prompt_tokens, again.completion_tokens) == (first.prompt_tokens,
                                                              first.completion_tokens)
    assert again.scores == {"arithmetic": [8.0, 8]} and again.cost_known


def test_task_summary_rows_reach_show_and_leaderboard(tmp_path):
    """needle's effective context length travels through Task.summary into the tables."""
    res = str(tmp_path / "results")
    result = run_cli("run", "needle", "-T", "lengths=1k,2k", "-T", "depths=0,100", "-m", "gold",
                     "-T", "effective_mode=relative", "--results-dir", res, "--run-id", "nd")
    assert result.returncode == 0, result.stderr
    shown = json.loads(run_cli("show", "nd", "--results-dir", res, "--json").stdout)
    metrics = {m["metric"]: m["value"] for m in shown["metrics"]}
    assert metrics["effective_length"] == 2048
    assert metrics["effective_threshold"] == pytest.approx(0.85)  # 85% of a perfect base score
    board = json.loads(run_cli("leaderboard", "--results-dir", res, "-f", "json").stdout)
    assert [r["value"] for r in board if r["metric"] == "effective_length"] == [2048]


def test_a_smoke_run_does_not_replace_the_full_run(tmp_path):
    res = str(tmp_path / "results")
    assert run_cli("run", "arithmetic", "-m", "gold", "-T", "count=6", "--results-dir", res,
                   "--run-id", "full").returncode == 0
    assert run_cli("run", "arithmetic", "-m", "gold", "-T", "count=6", "--limit", "2",
                   "--results-dir", res, "--run-id", "smoke").returncode == 0
    assert run_cli("run", "arithmetic", "-m", "gold", "-T", "count=6", "--results-dir", res,
                   "--run-id", "again").returncode == 0
    board = json.loads(run_cli("leaderboard", "--results-dir", res, "-f", "json").stdout)
    accuracy = sorted((r["run"], r["n"]) for r in board if r["metric"] == "accuracy")
    assert accuracy == [("again", 6), ("smoke", 2)]  # "again" replaced "full"


def test_errors_left_after_retries_exit_3_unless_tolerated(tmp_path):
    from evals.fake_openai import FakeServer

    res = str(tmp_path / "results")
    common = ("-T", "count=3", "--results-dir", res, "--no-progress")
    key = {"OPENAI_API_KEY": "x"}
    with FakeServer() as srv:
        srv.inject("400", times=100)  # not retried: every generation is an error
        failed = run_cli("run", "arithmetic", "-m", "openai/fake", "--base-url", srv.url,
                         "--run-id", "all-bad", *common, env=key)
        assert failed.returncode == 3, failed.stderr
        assert "3 of 3 generations are errors" in failed.stderr
        resumed = run_cli("resume", "all-bad", "--results-dir", res, "--no-progress",
                          "--max-error-share", "0.5", env=key)
        assert resumed.returncode == 3 and "3 of 3" in resumed.stderr
    with FakeServer() as srv:
        srv.inject("400", times=1)
        tolerated = run_cli("run", "arithmetic", "-m", "openai/fake", "--base-url", srv.url,
                            "--run-id", "one-bad", "--max-error-share", "0.5", *common, env=key)
    assert tolerated.returncode == 0, tolerated.stderr
    assert "1 errors" in tolerated.stderr


def test_results_go_to_stdout_and_logs_to_stderr(tmp_path):
    res = str(tmp_path / "results")
    result = run_cli("run", "arithmetic", "-m", "gold", "-T", "count=2", "--results-dir", res,
                     "--run-id", "r", "--no-progress", env={"COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "run r" in result.stdout  # `> out.txt` keeps it
    assert "accuracy" not in result.stderr and "2 generations" in result.stderr


@pytest.mark.parametrize("command", [["leaderboard"], ["leaderboard", "-f", "csv"],
                                     ["report", "-o", "r.html"]])
def test_readers_of_a_directory_without_runs_say_so(tmp_path, command):
    missing = run_cli(*command, "--results-dir", str(tmp_path / "resluts"), cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert missing.stdout == "" and not (tmp_path / "r.html").exists()
    empty = run_cli(*command, "--results-dir", str(tmp_path), cwd=tmp_path)
    assert empty.returncode == 2 and "holds no run" in empty.stderr


@pytest.mark.parametrize("effort,bad", [("extreme", "'extreme'"), ("", "an empty level"),
                                        ("low,,high", "an empty level")])
def test_an_effort_off_the_scale_is_refused_with_the_valid_values(tmp_path, effort, bad):
    result = run_cli("run", "arithmetic", "-m", "gold", "--effort", effort,
                     "--results-dir", str(tmp_path))
    assert result.returncode == 2 and not (tmp_path / "results").exists()
    line = result.stderr.strip()
    assert "\n" not in line and bad in line
    assert "valid values: none, minimal, low, medium, high, default" in line


def test_effort_is_case_insensitive_and_a_backend_may_declare_more_levels(tmp_path):
    from evals.config import declared_efforts

    result = run_cli("run", "arithmetic", "-m", "gold", "-T", "count=1", "--effort", "LOW,High",
                     "--results-dir", str(tmp_path), "--run-id", "r", "--no-progress")
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert [s["name"] for s in meta["settings"]] == ["effort=low", "effort=high"]
    assert declared_efforts(["openai/o4-mini"])[-1] == "xhigh"
    assert "xhigh" not in declared_efforts(["openai/o4-mini", "gold"])  # all must accept it
    refused = run_cli("run", "arithmetic", "-m", "gold", "--effort", "xhigh",
                      "--results-dir", str(tmp_path))
    assert refused.returncode == 2 and "'xhigh' is not an effort level" in refused.stderr


@pytest.mark.parametrize("budget", ["lots", "", "1k"])
def test_a_thinking_budget_that_is_not_a_count_is_refused(tmp_path, budget):
    result = run_cli("run", "arithmetic", "-m", "gold", "--thinking-budget", budget,
                     "--results-dir", str(tmp_path))
    assert result.returncode == 2
    assert "valid values: token counts >= 0, or none/default" in result.stderr


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    """Two tasks, two efforts, two samples, gold: a run whose tables are wide."""
    res = tmp_path_factory.mktemp("grid") / "results"
    result = run_cli("run", "arithmetic", "gpqa", "-m", "gold", "-T", "gpqa.path=sample",
                     "-T", "arithmetic.count=6", "--samples", "2", "--effort", "high,low",
                     "--results-dir", str(res), "--run-id", "grid", "--no-progress",
                     env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    return res, result


@pytest.mark.parametrize("columns", ["80", "100"])
def test_tables_read_at_80_to_100_columns(grid_run, columns):
    res, ran = grid_run
    outputs = [ran.stdout] if columns == "80" else []
    for args in (["show", "grid"], ["leaderboard"]):
        shown = run_cli(*args, "--results-dir", str(res), env={"COLUMNS": columns})
        assert shown.returncode == 0, shown.stderr
        outputs.append(shown.stdout)
    for out in outputs:
        assert "…" not in out, out
        assert max(len(line) for line in out.splitlines()) <= int(columns), out
        assert "1.000 ±0." in out and "maj@2" in out
        # n=2, shared by every setting, moves into the title
        assert "effort=high " in out and any("model gold, n=2" in line
                                             for line in out.splitlines())


def test_wide_tables_show_every_column(grid_run):
    res, _ = grid_run
    wide = run_cli("leaderboard", "--results-dir", str(res), "--wide", env={"COLUMNS": "80"})
    assert wide.returncode == 0, wide.stderr
    header = next(line for line in wide.stdout.splitlines() if "task" in line)
    for column in ("model", "95% CI", "tokens", "$/problem", "latency", "status"):
        assert column in header, header
    narrow = run_cli("leaderboard", "--results-dir", str(res), env={"COLUMNS": "80"})
    assert "hidden: " in narrow.stdout and "model gold" in narrow.stdout  # one model: in the title


def test_leaderboard_orders_settings_by_compute_and_hides_repeated_k(tmp_path):
    res = str(tmp_path)
    result = run_cli("run", "arithmetic", "-m", "gold", "-T", "count=3", "--samples", "4",
                     "--effort", "medium,high,low,minimal", "--results-dir", res,
                     "--run-id", "g", "--no-progress")
    assert result.returncode == 0, result.stderr

    def cells(*extra):
        out = run_cli("leaderboard", "--results-dir", res, "-f", "markdown", *extra).stdout
        return [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines()[2:]]

    rows = cells()
    assert len(rows) == 12  # 4 settings x (accuracy, pass@4, maj@4), not 28
    efforts = list(dict.fromkeys(r[2].split(",")[0] for r in rows))
    assert efforts == ["effort=minimal", "effort=low", "effort=medium", "effort=high"]
    assert [r[3] for r in rows[:3]] == ["accuracy", "pass@4", "maj@4"]
    every = cells("--all-k")
    assert [r[3] for r in every[:7]] == ["accuracy", "pass@1", "pass@2", "pass@4",
                                         "maj@1", "maj@2", "maj@4"]
    csv_rows = run_cli("leaderboard", "--results-dir", res, "-f", "csv").stdout.splitlines()
    assert len(csv_rows) == 1 + 28  # the machine-readable forms keep every row


def test_compute_order_is_effort_then_budget_then_samples():
    from evals.leaderboard import compute_order

    def row(setting, effort=None, budget=None, samples=1):
        return {"setting": setting, "effort": effort, "thinking_budget": budget,
                "samples": samples}

    rows = [row("effort=high", "high"), row("budget=1024", None, 1024),
            row("effort=low,n=4", "low", None, 4), row("effort=low", "low"),
            row("budget=256", None, 256), row("default"), row("effort=none", "none")]
    assert [r["setting"] for r in sorted(rows, key=compute_order)] == [
        "default", "budget=256", "budget=1024", "effort=none", "effort=low",
        "effort=low,n=4", "effort=high"]


def test_tokens_and_cost_per_problem_mean_the_same_in_table_csv_json_and_report(tmp_path):
    from evals.fake_openai import FakeServer

    prices = tmp_path / "prices.toml"
    prices.write_text('[models."priced"]\ninput = 1000.0\noutput = 3000.0\n')
    env = {"OPENAI_API_KEY": "x", "EVALS_PRICES": str(prices), "COLUMNS": "80"}
    res = str(tmp_path / "results")
    with FakeServer(default="thinking it over ANSWER: 42") as srv:
        ran = run_cli("run", "arithmetic", "-m", "openai/priced", "--base-url", srv.url,
                      "-T", "count=3", "--samples", "3", "--results-dir", res, "--run-id", "p",
                      "--no-progress", env=env)
    assert ran.returncode == 0, ran.stderr
    rows = list(csv.DictReader(io.StringIO(
        run_cli("leaderboard", "--results-dir", res, "-f", "csv", env=env).stdout)))
    acc = next(r for r in rows if r["metric"] == "accuracy")
    tokens = float(acc["tokens"])
    assert tokens == pytest.approx(float(acc["prompt_tokens"]) + float(acc["completion_tokens"]))
    cost = float(acc["cost_per_problem"])
    assert cost > 0 and float(next(r for r in rows if r["metric"] == "pass@3")[
        "cost_per_problem"]) == pytest.approx(3 * cost)  # an @K metric spends K generations
    as_json = json.loads(run_cli("leaderboard", "--results-dir", res, "-f", "json").stdout)
    assert next(r for r in as_json if r["metric"] == "accuracy")["tokens"] == pytest.approx(tokens)
    cells = (f"{tokens:,.0f}", f"${cost:.3g}")
    md = run_cli("leaderboard", "--results-dir", res, "-f", "markdown", env=env).stdout
    acc_line = next(line for line in md.splitlines() if "| accuracy |" in line)
    assert all(f"| {c} |" in acc_line for c in cells), (cells, acc_line)
    assert run_cli("report", "--results-dir", res, "-o", str(tmp_path / "r.html"),
                   env=env).returncode == 0
    html = (tmp_path / "r.html").read_text()
    row = html[html.index('data-setting="n=3"'):]
    row = row[:row.index("</tr>")]
    assert all(f">{c}</td>" in row for c in cells), (cells, row)


def test_extraction_failures_show_in_run_show_leaderboard_and_report(tmp_path):
    (tmp_path / "shy.py").write_text(textwrap.dedent('''
        from evals import Sample, Score, Task, task

        VERDICTS = {"a": ("ok", 1.0), "b": ("no_answer", 0.0), "c": ("no_answer", 0.0),
                    "d": ("timeout", 0.0)}

        @task
        def shy() -> Task:
            samples = [Sample(id=i, input="q", target="1") for i in "abcd"]
            def score(sample, completion):
                status, value = VERDICTS[sample.id]
                return Score(value, None if status == "no_answer" else "1", "", status)
            return Task(dataset=samples, scorer=score)
    '''))
    res = str(tmp_path / "results")
    ran = run_cli("run", "shy", "-m", "gold", "--tasks-dir", str(tmp_path), "--results-dir", res,
                  "--run-id", "s", "--no-progress", env={"COLUMNS": "80"})
    assert ran.returncode == 0, ran.stderr
    header = next(line for line in ran.stdout.splitlines() if "metric" in line)
    assert "no ans" in header and "timeout" in header
    acc_line = next(line for line in ran.stdout.splitlines() if "accuracy" in line)
    assert "50%" in acc_line and "25%" in acc_line
    shown = json.loads(run_cli("show", "s", "--results-dir", res, "--json").stdout)
    acc = next(m for m in shown["metrics"] if m["metric"] == "accuracy")
    assert (acc["no_answer_share"], acc["timeout_share"], acc["parse_failure_share"]) == \
        (0.5, 0.25, 0.0)
    rows = list(csv.DictReader(io.StringIO(
        run_cli("leaderboard", "--results-dir", res, "-f", "csv").stdout)))
    assert float(rows[0]["no_answer_share"]) == 0.5 and float(rows[0]["timeout_share"]) == 0.25
    assert run_cli("report", "--results-dir", res, "-o", str(tmp_path / "r.html")).returncode == 0
    html = (tmp_path / "r.html").read_text()
    assert "<th" in html and ">no answer</th>" in html
    assert 'title="verifier timeout 25%, parse failure 0%">50%</td>' in html


def test_show_names_task_parameters_limit_endpoint_and_why_a_run_failed(tmp_path):
    from evals.fake_openai import FakeServer

    res = str(tmp_path)
    with FakeServer(api_key="the-right-key-000") as srv:
        failed = run_cli("run", "arithmetic", "-m", "openai/fake", "--base-url", srv.url,
                         "-T", "count=4", "--limit", "2", "--seed", "7", "-M", "api_key=wrong-key-42",
                         "--results-dir", res, "--run-id", "f", "--no-progress")
    assert failed.returncode == 1, failed.stderr
    shown = run_cli("show", "f", "--results-dir", res, env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "f failed" in out and "reason: " in out and "401" in out
    assert "-T count=4" in out and "limit 2" in out and "seed 7" in out
    assert f"endpoint {srv.url}" in out and "-M api_key=***" in out
    assert "wrong-key-42" not in out and "metrics" not in out  # no records: no table
    from evals.cli_results import _endpoint
    assert _endpoint("https://me:hunter2pass@host.example/v1") == "https://***@host.example/v1"
    as_json = json.loads(run_cli("show", "f", "--results-dir", res, "--json").stdout)
    assert "401" in as_json["run"]["error"]


def test_validate_without_a_reachable_hub_fails_at_once_with_its_message(tmp_path):
    pytest.importorskip("datasets")
    env = {"HF_ENDPOINT": "https://hub.invalid", "HF_HOME": str(tmp_path / "hf")}
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env[name] = ""
    result = run_cli("validate", "gpqa", env=env)
    assert result.returncode == 1
    assert "Retrying" not in result.stderr, result.stderr  # the hub client's backoff
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "gpqa: cannot load Idavidrein/gpqa" in lines[0]
    assert "-T path=sample" in lines[0] and "hub.invalid could not be reached" in lines[0]


def test_a_bare_model_name_suggests_the_openai_backend(tmp_path):
    result = run_cli("run", "arithmetic", "-m", "gpt-4o", "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "did you mean openai/gpt-4o?" in result.stderr
    assert not any(tmp_path.iterdir())


def test_help_shows_no_type_beside_flags_and_lists_the_efforts():
    text = run_cli("run", "--help", env={"COLUMNS": "200"}).stdout
    assert "--no-cache" in text and "<bool>" not in text and "<int>" in text
    effort = next(line for line in text.splitlines() if "--effort" in line)
    assert "none, minimal, low, medium, high" in effort


def test_compare_matches_a_setting_by_its_unambiguous_fields(grid_run):
    res, _ = grid_run
    result = run_cli("compare", "grid", "--setting-a", "effort=low", "--setting-b",
                     "effort=high", "--task", "arithmetic", "--results-dir", str(res), "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["a"], r["b"]) for r in rows] == [("grid gold effort=low,n=2",
                                                 "grid gold effort=high,n=2")], rows
    vague = run_cli("compare", "grid", "--setting-a", "n=2", "--setting-b", "effort=high",
                    "--results-dir", str(res))
    assert vague.returncode == 2 and "matches several settings" in vague.stderr
