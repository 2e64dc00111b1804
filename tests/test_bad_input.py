"""Bad input and hostile responses: one clear line, nothing lost, no secret written."""

import json
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
from aiohttp import web

from evals.fake_openai import FakeServer
from evals.records import RunLog, iter_records
from evals.runner import Request, RunnerError, make_runner
from tests.conftest import REPO, run_cli, wait_for

ODD_KEY = "AZUREKEY0123456789abcdef0123"  # no sk- shape, and in no environment variable


def one_line_error(result, *parts):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [l for l in result.stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])


def test_a_key_given_only_by_model_option_is_never_written(tmp_path):
    with FakeServer() as srv:
        srv.inject("400", times=1, message=f"bad request from key {ODD_KEY}")
        result = run_cli("run", "arithmetic", "-m", "openai/fake-model", "--base-url", srv.url,
                         "-M", f"api_key={ODD_KEY}", "-T", "count=3", "--results-dir",
                         str(tmp_path), "--run-id", "k", "--concurrency", "1")
    assert result.returncode == 3, result.stderr  # an error remains: exit 3
    for path in (tmp_path / "k").iterdir():
        assert ODD_KEY.encode() not in path.read_bytes(), path  # the score index is binary
    errors = [r for r in iter_records(tmp_path / "k" / "samples.jsonl") if r["status"] == "error"]
    assert len(errors) == 1 and "***" in errors[0]["error"]


def test_a_password_in_an_engine_url_is_never_written():
    from evals.config import RunConfig

    config = RunConfig(tasks=["swe"], models=["gold"],
                       engines=["ssh://bob:hunter2pw@build.example:22", "unix:///run/d.sock"],
                       task_params={"swe.engines": "tcp://u:hunter2pw@h:2376?tls=/certs"})
    written = json.dumps(config.to_json())
    assert "hunter2pw" not in written
    assert config.to_json()["engines"] == ["ssh://bob:***@build.example:22", "unix:///run/d.sock"]
    assert "tcp://u:***@h:2376?tls=/certs" in written  # where it ran stays readable


def test_resume_asks_again_for_an_engine_password(tmp_path):
    with FakeServer() as srv:
        done = run_cli("run", "arithmetic", "-m", "openai/fake-model", "--base-url", srv.url,
                       "-T", "count=2", "--engine", "ssh://bob:hunter2pw@h", "--results-dir",
                       str(tmp_path), "--run-id", "e")
    assert done.returncode == 0, done.stderr
    assert b"hunter2pw" not in (tmp_path / "e" / "run.json").read_bytes()
    again = run_cli("resume", "e", "--results-dir", str(tmp_path))
    assert again.returncode != 0 and "password in an engine URL" in again.stderr


class _Odd:
    """A server that answers with the odd things real servers sometimes send."""

    def __init__(self, body, status=200, headers=None):
        self.body, self.status, self.headers = body, status, headers or {}

    async def handle(self, request):
        return web.Response(body=self.body, status=self.status, headers=self.headers,
                            content_type="application/json")


async def _ask_odd_server(body, status=200, headers=None):
    odd = _Odd(body, status, headers)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", odd.handle)
    server = web.AppRunner(app)
    await server.setup()
    await web.TCPSite(server, "127.0.0.1", 0).start()
    client = make_runner("openai/m", base_url=f"http://127.0.0.1:{server.addresses[0][1]}/v1")
    try:
        return await client.generate(Request([{"role": "user", "content": "hi"}]))
    finally:
        await client.aclose()
        await server.cleanup()


@pytest.mark.parametrize("body,status,headers", [
    (b'{"error": {"message": "slow down"}}', 429, {"Retry-After": "soon"}),
    (b'{"choices": [null]}', 200, {}),
    (b'[1, 2, 3]', 200, {}),
    (b'{"choices": [{"index": 0, "message": null}]}', 200, {}),
])
async def test_odd_responses_are_retryable_errors_not_crashes(body, status, headers):
    with pytest.raises(RunnerError) as info:
        await _ask_odd_server(body, status, headers)
    assert info.value.retryable
    if status == 429:
        assert info.value.retry_after is None  # "soon" is no advice


async def test_content_as_a_list_of_parts_is_text():
    body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": [{"type": "text", "text": "ANSWER: "},
                                         {"type": "text", "text": "7"}]}}]}
    response = await _ask_odd_server(json.dumps(body).encode())
    assert response.completions[0].text == "ANSWER: 7"


def test_a_judge_that_cannot_be_built_leaves_no_running_run(tmp_path):
    result = run_cli("run", "arithmetic", "-m", "gold", "--ranker", "nosuch/x",
                     "--results-dir", str(tmp_path), "--run-id", "j")
    one_line_error(result, "unknown model 'nosuch/x'")
    meta = tmp_path / "j" / "run.json"
    assert not meta.exists() or json.loads(meta.read_text())["status"] != "running"


def test_sigterm_marks_the_run_interrupted(tmp_path):
    with FakeServer(latency=0.05) as srv:
        child = subprocess.Popen(
            [sys.executable, "-m", "evals.cli", "run", "arithmetic", "-m", "openai/fake-model",
             "--base-url", srv.url, "-T", "count=200", "--concurrency", "2", "--results-dir",
             str(tmp_path), "--run-id", "t", "--no-progress"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples = tmp_path / "t" / "samples.jsonl"
        assert wait_for(lambda: samples.exists() and samples.stat().st_size, 60, 0.01)
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=30)
    assert child.returncode == 130
    assert RunLog(tmp_path / "t").read_meta()["status"] == "interrupted"


def test_names_given_twice_run_once(tmp_path):
    result = run_cli("run", "arithmetic", "arithmetic", "-m", "gold", "-m", "gold", "-T",
                     "count=3", "--effort", "low,low", "--results-dir", str(tmp_path),
                     "--run-id", "d")
    assert result.returncode == 0, result.stderr
    keys = Counter((r["task"], r["model"], r["setting"], r["sample_id"], r["gen"])
                   for r in iter_records(tmp_path / "d" / "samples.jsonl"))
    assert len(keys) == 3 and set(keys.values()) == {1}


def test_corrupt_run_json_is_one_line(tmp_path):
    assert run_cli("run", "arithmetic", "-m", "gold", "-T", "count=2", "--results-dir",
                   str(tmp_path), "--run-id", "c").returncode == 0
    meta = tmp_path / "c" / "run.json"
    meta.write_text(meta.read_text()[:40])
    for args in (["show", "c"], ["resume", "c"], ["leaderboard"], ["rescore", "c"]):
        one_line_error(run_cli(*args, "--results-dir", str(tmp_path)), "run.json", "not valid JSON")


def test_a_stored_configuration_from_a_newer_version_is_named(tmp_path):
    assert run_cli("run", "arithmetic", "-m", "gold", "-T", "count=2", "--results-dir",
                   str(tmp_path), "--run-id", "n").returncode == 0
    meta = tmp_path / "n" / "run.json"
    data = json.loads(meta.read_text())
    data["config"]["warp_drive"] = True
    meta.write_text(json.dumps(data))
    one_line_error(run_cli("resume", "n", "--results-dir", str(tmp_path)), "warp_drive")


def test_results_dir_that_is_a_file(tmp_path):
    afile = tmp_path / "f"
    afile.write_text("")
    one_line_error(run_cli("run", "arithmetic", "-m", "gold", "--results-dir", str(afile)),
                   "is a file")
    one_line_error(run_cli("leaderboard", "--results-dir", str(afile)), "is a file")


@pytest.mark.parametrize("args,message", [
    (["-T", "arithmatic.count=2"], "'arithmatic' is not a task of this run"),
    (["--limit", "-1"], "--limit and --max-tokens must be >= 1"),
    (["--limit", "0"], "--limit and --max-tokens must be >= 1"),  # an empty run
    (["--max-tokens", "0"], "--limit and --max-tokens must be >= 1"),
    (["--thinking-budget", "-5"], "'-5' is not a budget; valid values: token counts >= 0"),
])
def test_bad_values_are_refused(tmp_path, args, message):
    one_line_error(run_cli("run", "arithmetic", "-m", "gold", *args, "--results-dir",
                           str(tmp_path)), message)


def test_a_scorer_that_raises_is_counted_apart_not_as_wrong(tmp_path):
    (tmp_path / "boom.py").write_text(textwrap.dedent('''
        from evals import Sample, Score, Task, task

        def score(sample, completion):
            if sample.id == "b":
                raise RuntimeError("bug in the scorer")
            return Score(1.0, completion)

        @task
        def boom() -> Task:
            return Task(dataset=[Sample(id=i, input="q", target="x") for i in "abc"],
                        scorer=score)
    '''))
    res = tmp_path / "res"
    result = run_cli("run", "boom", "--tasks-dir", str(tmp_path), "-m", "gold",
                     "--results-dir", str(res), "--run-id", "b")
    assert result.returncode == 3, result.stderr  # unscored: counted as an error
    shown = json.loads(run_cli("show", "b", "--results-dir", str(res), "--json").stdout)
    (accuracy,) = [m for m in shown["metrics"] if m["metric"] == "accuracy"]
    assert accuracy["value"] == 1.0 and accuracy["errors"] == 1 and accuracy["n"] == 2
