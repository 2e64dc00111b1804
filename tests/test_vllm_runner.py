"""``vllm/`` without vLLM: a fake ``vllm`` executable on PATH serves evals.fake_openai.

The fake takes the arguments ``vllm serve`` takes, records them with its pid, and
execs ``python -m evals.fake_openai --port <its --port>``, so the real process
management runs: spawn in a process group, health wait, requests, stop, kill on exit.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from evals.runner import ConfigError, Request, RunnerError, make_runner
from tasks.agent import BASH_TOOL, AgentLimits, run_agent
from tests.conftest import REPO, alive, wait_for

TEMPLATES = REPO / "tests" / "data" / "chat_templates"

FAKE_VLLM = textwrap.dedent("""\
    #!{python}
    import json, os, sys, time
    args = sys.argv[1:]
    with open(os.environ["FAKE_VLLM_LOG"], "a") as f:
        f.write(json.dumps({{"pid": os.getpid(), "args": args}}) + "\\n")
    mode = os.environ.get("FAKE_VLLM_MODE", "serve")
    if mode == "die":
        print("INFO loading weights", flush=True)
        print("ValueError: fake start-up failure: not enough GPU memory", flush=True)
        sys.exit(3)
    if mode == "hang":
        time.sleep(600)
    port = args[args.index("--port") + 1]
    if mode == "tools":  # vLLM with a tool-call parser: the calls come back parsed
        from evals.fake_openai import FakeServer

        def script(body, index):
            done = sum(m["role"] == "tool" for m in body["messages"])
            call = {{"name": "bash", "arguments": {{"command": "ls"}}}} if done == 0 \
                else {{"name": "submit", "arguments": {{}}}}
            return {{"content": "", "tool_calls": [call]}}
        FakeServer(script=script, port=int(port)).serve_until_signal()
        sys.exit(0)
    os.execv(sys.executable, [sys.executable, "-m", "evals.fake_openai", "--port", port])
    """)


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "vllm"
    script.write_text(FAKE_VLLM.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "fake_vllm.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", str(REPO))

    def launches():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return launches


def wait_gone(pid: int, seconds: float = 10) -> bool:
    """Dead or a zombie (a container's init may be slow to reap orphans), within the bound."""
    return wait_for(lambda: not alive(pid), seconds)


def test_serves_requests_and_stops_the_server(fake_vllm):
    runner = make_runner("vllm/org/fake-model", serve_args="--max-model-len 4096 --dtype bfloat16",
                         reasoning_parser="qwen3", startup_timeout="30")
    [launch] = fake_vllm()
    args = launch["args"]
    assert args[:2] == ["serve", "org/fake-model"]
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert int(args[args.index("--port") + 1]) == runner.server.port
    assert args[args.index("--reasoning-parser") + 1] == "qwen3"
    assert args[-4:] == ["--max-model-len", "4096", "--dtype", "bfloat16"]
    assert runner.model == "vllm/org/fake-model"

    async def go():
        try:
            return await runner.generate(Request([{"role": "user", "content": "hi"}], n=3))
        finally:
            await runner.aclose()
    response = asyncio.run(go())
    assert [c.text for c in response.completions] == ["ANSWER: 42"] * 3
    assert wait_gone(launch["pid"])
    assert runner.server.process is None


def test_request_fields_reach_the_server_in_vllm_spelling(fake_vllm):
    runner = make_runner("vllm/m")
    try:
        body = runner.client.body(Request([{"role": "user", "content": "x"}], n=4, seed=11,
                                          max_tokens=64, thinking_budget=512, temperature=0.6), 4)
        assert body["n"] == 4 and body["seed"] == 11 and body["max_tokens"] == 64
        assert body["thinking_token_budget"] == 512 and body["model"] == "m"
        assert runner.client.base_url == runner.server.base_url
        assert runner.client._key == "EMPTY"
    finally:
        asyncio.run(runner.aclose())


def test_end_to_end_through_the_orchestrator(fake_vllm, tmp_path):
    config = RunConfig(tasks=["arithmetic"], models=["vllm/fake-model"], task_params={"count": "4"},
                       max_tokens=8, thinking_budgets=[256], concurrency=4,
                       model_options={"startup_timeout": "30"})
    stats = execute(config, RunLog(tmp_path / "run"), [])
    records = list(iter_records(tmp_path / "run" / "samples.jsonl"))
    assert stats.done == 4 and stats.errors == 0 and len(records) == 4
    assert {r["model"] for r in records} == {"vllm/fake-model"}
    [launch] = fake_vllm()
    assert wait_gone(launch["pid"])  # aclose() at the end of the run stopped it


def test_vllm_not_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no vllm executable anywhere
    with pytest.raises(ConfigError, match="^vllm is not installed.*pip install 'evals\\[vllm\\]'"):
        make_runner("vllm/org/model")
    with pytest.raises(ConfigError, match="no such executable"):
        make_runner("vllm/org/model", vllm_bin="/nowhere/vllm")


def test_server_dying_during_start_up_shows_its_log(fake_vllm, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_MODE", "die")
    with pytest.raises(ConfigError) as err:
        make_runner("vllm/org/model")
    message = str(err.value)
    assert "vllm serve exited with code 3 during start-up" in message
    assert "fake start-up failure: not enough GPU memory" in message


def test_start_up_timeout_kills_the_server(fake_vllm, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_MODE", "hang")
    with pytest.raises(ConfigError, match="did not answer .*/health within 1s"):
        make_runner("vllm/org/model", startup_timeout="1", stop_timeout="2")
    [launch] = fake_vllm()
    assert wait_gone(launch["pid"])


def test_options_are_checked(fake_vllm):
    with pytest.raises(ConfigError, match="starts its own server"):
        make_runner("vllm/m", base_url="http://localhost:8000/v1")
    with pytest.raises(ConfigError, match="no option 'dtype'"):
        make_runner("vllm/m", dtype="bfloat16")
    assert fake_vllm() == []  # nothing was started


CHILD = textwrap.dedent("""\
    import sys, time
    from evals.runner import make_runner
    runner = make_runner("vllm/m", startup_timeout="30")
    print(runner.server.process.pid, flush=True)
    time.sleep(60)
    """)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_server_dies_with_the_evals_process(fake_vllm, sig):
    """Ctrl-C: the atexit hook kills the group. SIGKILL: no hook runs; on Linux the
    server's parent-death signal stops it."""
    if sig == signal.SIGKILL and sys.platform != "linux":
        pytest.skip("parent-death signal is Linux-only")
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                             cwd=REPO)
    try:
        pid = int(child.stdout.readline())
        assert alive(pid)
        child.send_signal(sig)
        child.wait(15)
        assert wait_gone(pid), "the server outlived evals"
    finally:
        if child.poll() is None:
            child.kill()


def serve_flags(args):
    return args[args.index("--enable-auto-tool-choice"):][:3] \
        if "--enable-auto-tool-choice" in args else []


def test_tool_parser_reaches_vllm_serve(fake_vllm, tmp_path):
    """-M tool_parser names vLLM's parser; auto reads the format off a local template
    (chat_template.jinja, or tokenizer_config.json's chat_template); none turns it off."""
    qwen = tmp_path / "qwen"
    qwen.mkdir()
    (qwen / "chat_template.jinja").write_text((TEMPLATES / "qwen25_style.jinja").read_text())
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": (TEMPLATES / "llama31_style.jinja").read_text()}))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "chat_template.jinja").write_text("{{ messages }}")
    xml = {}  # <tool_call> around XML, not JSON: vLLM's qwen3_coder and glm45, not hermes
    for name in ("qwen3_coder", "glm45"):
        xml[name] = tmp_path / name
        xml[name].mkdir()
        (xml[name] / "chat_template.jinja").write_text(
            (TEMPLATES / f"{name}_style.jinja").read_text())
    user = {"serve_args": "--enable-auto-tool-choice --tool-call-parser x"}
    cases = [("m", {"tool_parser": "mistral"}, "mistral"), (str(qwen), {}, "hermes"),
             (str(llama), {}, "llama3_json"), (str(qwen), {"tool_parser": "none"}, None),
             (str(xml["qwen3_coder"]), {}, "qwen3_coder"), (str(xml["glm45"]), {}, "glm45"),
             (str(plain), {}, None), (str(plain), user, "x")]  # the user's own flags win
    for model, options, parser in cases:
        runner = make_runner(f"vllm/{model}", **options)
        asyncio.run(runner.aclose())
        args = fake_vllm()[-1]["args"]
        expected = ["--enable-auto-tool-choice", "--tool-call-parser", parser] if parser else []
        assert serve_flags(args) == expected, (model, options)
        assert args.count("--tool-call-parser") == len(expected) // 3
    forced = make_runner("vllm/m", tool_parser="hermes")
    detected = make_runner(f"vllm/{qwen}")
    try:
        assert forced.cache_identity.endswith("|hermes")  # chosen by hand: part of it
        assert "hermes" not in detected.cache_identity  # follows from the model
    finally:
        asyncio.run(forced.aclose())
        asyncio.run(detected.aclose())


def test_tools_without_a_parser_are_refused_with_one_line(fake_vllm):
    runner = make_runner("vllm/m")  # no local template: nothing detected

    async def go():
        try:
            return await runner.generate(Request([{"role": "user", "content": "x"}],
                                                 tools=[BASH_TOOL], tool_choice="auto"))
        finally:
            await runner.aclose()
    with pytest.raises(RunnerError, match="-M tool_parser=NAME.*-T agent_protocol=text"):
        asyncio.run(go())


def test_agent_episode_through_vllm(fake_vllm, monkeypatch):
    """The fake stands in for vLLM's server with a parser: it answers OpenAI tool calls
    (vLLM's parsing itself cannot run here, without a GPU and the vllm package)."""
    monkeypatch.setenv("FAKE_VLLM_MODE", "tools")
    runner = make_runner("vllm/m", tool_parser="hermes", startup_timeout="30")

    class Shell:
        commands = []

        async def run(self, command, timeout):
            self.commands.append(command)
            return 0, "calc.py"

    async def go():
        try:
            return await run_agent(runner.generate, [{"role": "user", "content": "Fix it."}],
                                   Shell(), AgentLimits(max_steps=4), "tools")
        finally:
            await runner.aclose()
    trajectory = asyncio.run(go())
    assert trajectory.stop == "submitted"
    assert [s.action for s in trajectory.steps] == ["ls", "submit"]
    assert Shell.commands == ["ls"]
    assert serve_flags(fake_vllm()[-1]["args"]) == ["--enable-auto-tool-choice",
                                                    "--tool-call-parser", "hermes"]
