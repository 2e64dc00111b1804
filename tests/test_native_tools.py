"""Tool calls through the native runners (openai-responses/, anthropic/, google/): an
agent episode (tasks/agent.py) against each provider's fake server on 127.0.0.1, with
reasoning on, checking the wire bodies the server saw. The fakes refuse what the real
APIs refuse (an answer to an unknown call, dropped or altered reasoning state), so an
episode that lost its state fails here as it would against the provider."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import orjson
import pytest

from evals.cache import ResponseCache
from evals.fake_anthropic import FakeAnthropic
from evals.fake_gemini import FakeGemini
from evals.fake_openai import FakeServer
from evals.fake_responses import FakeResponses
from evals.records import RunLog
from evals.run import Orchestrator, RunConfig, RunStats
from evals.runner import (PROVIDER_ITEMS, Completion, ConfigError, Request, Response,
                          RunnerError, ToolCall, Usage, make_runner)
from tasks.agent import BASH_TOOL, SUBMIT_TOOL, AgentLimits, run_agent
from tests.conftest import free_port
from tests.test_agent import PLAN, LocalShell, plan_script, repo  # noqa: F401 (a fixture)


@dataclass
class Native:
    family: str
    model: str
    server: type
    compute: dict[str, Any]  # reasoning on
    options: dict[str, Any] = field(default_factory=dict)

    def runner(self, url: str, **options: Any):
        return make_runner(self.model, base_url=url, **{**self.options, **options})


NATIVES = [
    Native("openai-responses", "openai-responses/o3", FakeResponses, {"effort": "high"}),
    Native("anthropic", "anthropic/claude-sonnet-4-5", FakeAnthropic, {"thinking_budget": 2048}),
    Native("anthropic-stream", "anthropic/claude-sonnet-4-5", FakeAnthropic,
           {"thinking_budget": 2048}, {"stream": "true"}),
    # Gemini 3: it requires the thought signatures back (2.5 takes a turn without them)
    Native("google", "google/gemini-3-flash-preview", FakeGemini, {"effort": "low"}),
]


@pytest.fixture(params=NATIVES, ids=lambda p: p.family)
def native(request):
    return request.param


def agent_script(server: type):
    """The plan, one command a turn, then submit, in ``server``'s wire format."""
    return plan_script(PLAN, lambda body: len(server.tool_results(body)))


def episode(native: Native, script, root, *, generate=None, port: int = 0, **options):
    """One episode against a fresh fake server: (trajectory, the bodies it saw)."""
    async def main():
        with native.server(script=script, port=port) as srv:
            runner = native.runner(srv.url, **options)
            try:
                trajectory = await run_agent(
                    generate(runner) if generate else runner.generate,
                    [{"role": "user", "content": "Make check.py pass."}], LocalShell(root),
                    AgentLimits(max_steps=10), request=Request([], **native.compute))
            finally:
                await runner.aclose()
            return trajectory, list(srv.requests)
    return asyncio.run(main())


def test_an_episode_explores_edits_and_submits(native, repo):  # noqa: F811
    trajectory, bodies = episode(native, agent_script(native.server), repo)
    assert trajectory.stop == "submitted", trajectory.error
    assert [s.action for s in trajectory.steps] == PLAN + ["submit"]
    assert "AssertionError: -1" in trajectory.steps[1].observation
    assert trajectory.steps[3].observation == "(exit code 0)\nok\n"
    assert "a + b" in (repo / "calc.py").read_text()
    assert all(s.prompt_tokens > 0 and s.completion_tokens > 0 for s in trajectory.steps)
    assert len(bodies) == len(PLAN) + 1
    assert native.server.tool_results(bodies[-1])[-1] == "(exit code 0)\nok\n"
    WIRE[native.family.split("-stream")[0]](bodies)


def responses_wire(bodies: list[dict[str, Any]]) -> None:
    last = bodies[-1]
    assert [t["name"] for t in last["tools"]] == ["bash", "submit"]
    assert "function" not in last["tools"][0] and last["tools"][0]["strict"] is False
    assert last["tool_choice"] == "auto" and last["store"] is False
    assert last["include"] == ["reasoning.encrypted_content"]
    kinds = [i.get("type", "message") for i in last["input"]]
    # each turn's reasoning item, with its encrypted content, right before its call
    assert kinds == ["message"] + ["reasoning", "message", "function_call",
                                   "function_call_output"] * len(PLAN)
    for i, item in enumerate(last["input"]):
        if item.get("type") == "function_call":
            assert last["input"][i - 2]["encrypted_content"]
            assert last["input"][i + 1]["call_id"] == item["call_id"]
    assert last["input"][1]["summary"][0]["text"] == "next: step 0"


def anthropic_wire(bodies: list[dict[str, Any]]) -> None:
    last = bodies[-1]
    assert last["tools"][0]["input_schema"]["required"] == ["command"]
    assert last["tool_choice"] == {"type": "auto"}
    assert last["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    turns = last["messages"]
    assert [m["role"] for m in turns] == ["user"] + ["assistant", "user"] * len(PLAN)
    for said, answered in zip(turns[1::2], turns[2::2]):
        # the signed thinking block first, then the text and the call, as the model sent them
        assert [b["type"] for b in said["content"]] == ["thinking", "text", "tool_use"]
        assert said["content"][0]["signature"]
        (result,) = answered["content"]
        assert result["type"] == "tool_result" and \
            result["tool_use_id"] == said["content"][2]["id"]


def google_wire(bodies: list[dict[str, Any]]) -> None:
    last = bodies[-1]
    (tools,) = last["tools"]
    declared = {f["name"]: f for f in tools["functionDeclarations"]}
    assert declared["bash"]["parametersJsonSchema"]["required"] == ["command"]
    assert "parametersJsonSchema" not in declared["submit"]  # it takes nothing
    assert last["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    contents = last["contents"]
    assert [c["role"] for c in contents] == ["user"] + ["model", "user"] * len(PLAN)
    for said, answered in zip(contents[1::2], contents[2::2]):
        call = next(p for p in said["parts"] if "functionCall" in p)
        assert call["thoughtSignature"]  # returned with the call it came on
        assert said["parts"][0]["thought"] is True
        (answer,) = answered["parts"]
        assert answer["functionResponse"]["name"] == "bash"
        assert "id" not in answer["functionResponse"]  # the call had none


WIRE = {"openai-responses": responses_wire, "anthropic": anthropic_wire, "google": google_wire}


def dropping_state(runner):
    """An agent loop that keeps the calls a provider sent but not its reasoning state:
    Responses reasoning items, Anthropic thinking blocks, Gemini thought signatures."""
    async def generate(request: Request) -> Response:
        messages = orjson.loads(orjson.dumps(request.messages))
        for m in messages:
            if state := m.get(PROVIDER_ITEMS):
                state["items"] = [{k: v for k, v in item.items() if k != "thoughtSignature"}
                                  for item in state["items"] if item.get("type") not in
                                  ("reasoning", "thinking", "redacted_thinking")]
        return await runner.generate(replace(request, messages=messages))
    return generate


def test_a_loop_that_drops_the_reasoning_state_is_refused(native, repo):  # noqa: F811
    """Without its reasoning state the second turn is what the provider refuses: the
    fake answers 400, as the provider does, and the episode ends there."""
    trajectory, bodies = episode(native, agent_script(native.server), repo,
                                 generate=dropping_state)
    assert trajectory.stop == "model_error" and len(trajectory.steps) == 1
    assert "HTTP 400" in trajectory.error
    assert any(word in trajectory.error for word in ("reasoning", "thinking", "thought"))


def test_an_altered_signature_is_refused(native, repo):  # noqa: F811
    def tampering(runner):
        async def generate(request: Request) -> Response:
            messages = orjson.loads(orjson.dumps(request.messages))
            for m in messages:
                for item in (m.get(PROVIDER_ITEMS) or {}).get("items") or ():
                    for key in ("encrypted_content", "signature", "thoughtSignature"):
                        if key in item:
                            item[key] = "x" + item[key]
            return await runner.generate(replace(request, messages=messages))
        return generate

    trajectory, _ = episode(native, agent_script(native.server), repo, generate=tampering)
    assert trajectory.stop == "model_error" and "HTTP 400" in trajectory.error


def test_malformed_arguments_reach_the_loop_as_written(native, repo):  # noqa: F811
    def script(body, index):
        if not native.server.tool_results(body):
            return {"content": "", "reasoning_content": "oops",
                    "tool_calls": [{"name": "bash", "arguments": '{"command": "ls'}]}
        return {"content": "", "reasoning_content": "done",
                "tool_calls": [{"name": "submit", "arguments": {}}]}

    trajectory, bodies = episode(native, script, repo)
    assert trajectory.stop == "submitted", trajectory.error
    assert trajectory.steps[0].observation.startswith("malformed arguments for 'bash'")
    assert native.server.tool_results(bodies[1])[0].startswith("malformed arguments")


EMPTY_TURNS = {  # a first turn with nothing the provider takes back, as each sends it
    # max_output_tokens hit while reasoning: status incomplete, a reasoning item alone
    "openai-responses": {"content": "", "reasoning_content": "let me think " * 20,
                         "finish_reason": "length"},
    # Gemini's answer to a call it could not write: content {}, no parts
    "google": {"content": "", "finish_reason": "malformed_function_call"},
}


@pytest.mark.parametrize("native", [n for n in NATIVES if n.family in EMPTY_TURNS],
                         ids=lambda n: n.family)
def test_a_turn_with_nothing_to_send_back_is_left_out(native, repo):  # noqa: F811
    """The next request leaves the empty turn out (the fakes refuse what the APIs refuse:
    a content with no parts, a reasoning item without its following item), so the
    episode goes on past it."""
    seen = []

    def script(body, index):
        seen.append(body)
        if len(seen) == 1:
            return EMPTY_TURNS[native.family]
        return {"content": "", "reasoning_content": "done",
                "tool_calls": [{"name": "submit", "arguments": {}}]}

    trajectory, bodies = episode(native, script, repo)
    assert trajectory.stop == "submitted", trajectory.error
    assert [(s.action, s.observation) for s in trajectory.steps] == [("", "no tool call"),
                                                                     ("submit", "")]
    second = bodies[1]
    if native.family == "google":  # the two user turns around the empty one, joined
        assert [c["role"] for c in second["contents"]] == ["user"]
        assert [p["text"] for p in second["contents"][0]["parts"]][-1].startswith("Use the bash")
    else:
        assert [i.get("type", "message") for i in second["input"]] == ["message", "message"]


def test_gemini_keeps_a_signed_empty_part_and_drops_a_bare_one():
    """Gemini 3 may end an answer with an empty text part that carries the thought
    signature: that part goes back; an empty text part alone is nothing to send."""
    from runners.google import parse_generation

    def items(parts):
        candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}
        [c] = parse_generation({"candidates": [candidate]}, 1, tools=True).completions
        return c.provider_items and c.provider_items["items"]
    assert items([{"text": ""}]) is None
    assert items([{"text": "hi"}, {"text": "", "thoughtSignature": "s"}]) == \
        [{"text": "hi"}, {"text": "", "thoughtSignature": "s"}]


async def ask(server: FakeServer, native: Native, messages: list[dict[str, Any]],
              **compute: Any) -> Response:
    runner = native.runner(server.url)
    try:
        return await runner.generate(Request(messages, tools=[BASH_TOOL, SUBMIT_TOOL],
                                             **compute))
    finally:
        await runner.aclose()


UNKNOWN = [{"role": "user", "content": "go"},
           {"role": "tool", "tool_call_id": "call_nowhere", "content": "made up"}]


@pytest.mark.parametrize("native", [n for n in NATIVES if n.family != "google"],
                         ids=lambda n: n.family)
async def test_an_answer_to_no_call_is_a_400(native):
    with native.server() as srv:
        with pytest.raises(RunnerError, match="HTTP 400.*(call_nowhere)") as caught:
            await ask(srv, native, UNKNOWN, **native.compute)
    assert not caught.value.retryable


async def test_google_names_an_answer_after_its_call_and_refuses_one_to_no_call():
    """A functionResponse carries its call's name, so an answer to no call cannot even be
    written; the runner says so. The fake refuses such a turn as Gemini does."""
    native = next(n for n in NATIVES if n.family == "google")
    with FakeGemini() as srv:
        with pytest.raises(RunnerError, match="call_nowhere.*no earlier"):
            await ask(srv, native, UNKNOWN, **native.compute)
        assert srv.count == 0
        body = {"contents": [{"role": "user", "parts": [{"text": "go"}]}, {"role": "user", "parts": [
            {"functionResponse": {"name": "bash", "response": {"output": "x"}}}]}]}
        request = urllib.request.Request(
            f"{srv.url}/v1beta/models/gemini-2.5-flash:generateContent",
            data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            await asyncio.to_thread(urllib.request.urlopen, request)
        said = refused.value.read().decode()
    assert refused.value.code == 400 and "immediately after a function call turn" in said


async def test_a_conversation_from_another_family_is_rebuilt_and_its_items_dropped():
    """An assistant turn made by openai/ (or carrying another family's items) is sent
    from its text and tool calls; no server ever sees a provider_items key. (Thinking is
    off: with it on, Anthropic and Gemini 3 refuse a tool turn without its signed state.)"""
    foreign = [{"role": "user", "content": "go"},
               {"role": "assistant", "content": "listing", PROVIDER_ITEMS:
                {"family": "elsewhere", "items": [{"secret": 1}]},
                "tool_calls": [{"id": "call_9", "type": "function",
                                "function": {"name": "bash", "arguments": '{"command": "ls"}'}}]},
               {"role": "tool", "tool_call_id": "call_9", "content": "a b"}]
    for native in NATIVES:
        if native.family == "google":  # Gemini 3 refuses a function call without signature
            native = replace(native, model="google/gemini-2.5-flash")
        with native.server(script=lambda body, index: "done") as srv:
            answer = await ask(srv, native, foreign)
            sent = orjson.dumps(srv.requests[0]).decode()
        assert answer.completions[0].text == "done"
        assert PROVIDER_ITEMS not in sent and "secret" not in sent
        assert "call_9" in sent and '"ls"' in sent.replace('\\"', '"')
    with FakeServer(script={"go": "done"}) as srv:
        runner = make_runner("openai/fake-model", base_url=srv.url)
        await runner.generate(Request(foreign, tools=[BASH_TOOL]))
        await runner.aclose()
    assert PROVIDER_ITEMS not in orjson.dumps(srv.requests[0]).decode()


def test_provider_items_survive_the_cache_and_old_entries_still_load(tmp_path):
    items = {"family": "anthropic", "items": [{"type": "thinking", "thinking": "t",
                                               "signature": "s"}]}
    response = Response([Completion("", "t", "tool_calls", [ToolCall("a", "bash", "{}")], items),
                         Completion("x", None, "stop", None, items),
                         Completion("y")], Usage(3, 2, 1), 0.2, 0.001)
    cache = ResponseCache(tmp_path)
    cache.put("k", response)
    cache.flush()
    back = cache.get("k")
    cache.close()
    assert back.completions == response.completions
    old = {"completions": [["a", None, "stop"], ["b", None, "tool_calls", [["i", "bash", "{}"]]]],
           "usage": [1, 2, 0], "latency": 0.1, "cost": None}
    loaded = Response.from_json(old).completions
    assert loaded[0].provider_items is None and loaded[1].tool_calls == [ToolCall("i", "bash", "{}")]


def test_a_resumed_episode_replays_from_the_cache(repo, tmp_path):  # noqa: F811
    """Each turn goes through the orchestrator's cache (as a solver's turns do): a second
    run of the episode, against a server that would answer otherwise, replays the first
    turn for turn (its provider items make the later turns' keys) and sends nothing."""
    native = next(n for n in NATIVES if n.family == "anthropic")
    caches = []

    def through_cache(runner):
        caches.append(ResponseCache(tmp_path / "cache"))
        orchestrator = Orchestrator(RunConfig(tasks=[], models=[]), RunLog(tmp_path / "r"),
                                    RunStats(), caches[-1])

        async def generate(request: Request) -> Response:
            return await orchestrator.generate(runner, replace(request, gens=(0,), n=1))
        return generate

    port = free_port()  # the endpoint is part of the runner's cache identity
    first, bodies = episode(native, agent_script(native.server), repo, generate=through_cache,
                            port=port)
    caches[0].close()
    assert first.stop == "submitted" and len(bodies) == len(PLAN) + 1
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")  # as before the fix
    stubborn = lambda body, index: {"content": "no", "tool_calls": [  # noqa: E731
        {"name": "submit", "arguments": {}}]}
    again, sent = episode(native, stubborn, repo, generate=through_cache, port=port)
    caches[1].close()
    assert sent == []
    assert [s.action for s in again.steps] == [s.action for s in first.steps]
    assert [s.observation for s in again.steps] == [s.observation for s in first.steps]
    assert "a + b" in (repo / "calc.py").read_text()  # the replayed turns acted again


def body_of(native: Native, request: Request) -> dict[str, Any]:
    runner = native.runner("http://127.0.0.1:9")
    if native.family == "google":
        return runner.body(request, 1, None)
    body = runner.body(request)
    return body[0] if isinstance(body, tuple) else body


@pytest.mark.parametrize("choice,expected", [
    ("required", ("required", {"type": "any"}, "ANY")),
    ("none", ("none", {"type": "none"}, "NONE"))])
def test_tool_choice_in_each_spelling(choice, expected):
    asked = Request([{"role": "user", "content": "go"}], tools=[BASH_TOOL], tool_choice=choice)
    bodies = [body_of(n, asked) for n in NATIVES if n.family != "anthropic-stream"]
    assert (bodies[0]["tool_choice"], bodies[1]["tool_choice"],
            bodies[2]["toolConfig"]["functionCallingConfig"]["mode"]) == expected


@pytest.mark.parametrize("model,compute", [
    ("anthropic/claude-sonnet-4-5", {"thinking_budget": 2048}),  # extended thinking
    ("anthropic/claude-opus-4-7", {"effort": "high"})])  # adaptive thinking
async def test_anthropic_refuses_a_forced_tool_with_thinking_before_sending(model, compute):
    """Anthropic answers a forced tool choice (any, tool) with thinking on with a 400; the
    runner says so in one line and sends nothing; without thinking it is sent."""
    asked = Request([{"role": "user", "content": "go"}], tools=[BASH_TOOL],
                    tool_choice="required", **compute)
    with FakeAnthropic(script=lambda body, index: {"tool_calls": [
            {"name": "bash", "arguments": {"command": "ls"}}]}) as srv:
        runner = make_runner(model, base_url=srv.url)
        try:
            with pytest.raises(ConfigError, match="tool_choice=required cannot be used with "
                                                  "thinking on.*tool_choice auto"):
                await runner.generate(asked)
            assert srv.requests == []
            # the fake refuses it as Anthropic does, were it sent
            body = {**runner.body(replace(asked, tool_choice="auto"))[0],
                    "tool_choice": {"type": "any"}}
            async with aiohttp.ClientSession() as s:
                async with s.post(srv.url + "/v1/messages", json=body,
                                  headers={"anthropic-version": "2023-06-01"}) as r:
                    said = await r.json()
            assert r.status == 400 and "tool_choice forces tool use" in said["error"]["message"]
            answer = await runner.generate(replace(asked, thinking_budget=None, effort=None))
            assert srv.requests[-1]["tool_choice"] == {"type": "any"}
            assert answer.completions[0].tool_calls[0].name == "bash"
        finally:
            await runner.aclose()


@pytest.mark.parametrize("tools,choice,message", [
    ([{"type": "web_search"}], None, r"takes function tools in OpenAI's form.*tools\[0\]"),
    ([{"type": "function", "function": {"description": "no name"}}], None, "function tools"),
    ([BASH_TOOL], "sometimes", "tool_choice must be one of auto, required, none")])
def test_bad_tools_are_refused_with_one_line(native, tools, choice, message):
    with pytest.raises(ConfigError, match=message):
        body_of(native, Request([{"role": "user", "content": "go"}], tools=tools,
                                tool_choice=choice))
