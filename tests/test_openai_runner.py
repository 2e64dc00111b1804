"""The openai runner against a real HTTP server on 127.0.0.1 (evals.fake_openai)."""

import json

import pytest

from evals.fake_openai import FakeServer
from evals.runner import ConfigError, Request, RunnerError, make_runner

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def server():
    with FakeServer(script={"hi": {"content": "hello there", "reasoning_content": "think think"}}) as srv:
        yield srv


def messages(text="hi"):
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("transport", ["http", "sdk"])
async def test_request_fields_and_response(server, transport):
    runner = make_runner("openai/fake-model", base_url=server.url, transport=transport,
                         thinking_style="anthropic")
    request = Request(messages(), n=2, max_tokens=50, temperature=0.7, seed=3, stop=["\n\n"],
                      effort="high", thinking_budget=512)
    response = await runner.generate(request)
    await runner.aclose()
    body = server.requests[-1]
    assert body["model"] == "fake-model" and body["messages"] == messages()
    assert body["n"] == 2 and body["max_tokens"] == 50 and body["temperature"] == 0.7
    assert body["seed"] == 3 and body["stop"] == ["\n\n"] and body["reasoning_effort"] == "high"
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 512}
    assert "never sent" not in str(body)
    assert [c.text for c in response.completions] == ["hello there"] * 2
    assert response.completions[0].reasoning == "think think"
    assert response.completions[0].finish_reason == "stop"
    # fake server: prompt = 1 word; each choice 2 content + 2 reasoning words
    assert (response.usage.prompt_tokens, response.usage.completion_tokens,
            response.usage.reasoning_tokens) == (1, 8, 4)
    assert response.latency > 0 and response.cost is None


@pytest.mark.parametrize("style,expected", [
    ("vllm", {"thinking_token_budget": 64}),
    ("chat_template", {"chat_template_kwargs": {"enable_thinking": True, "thinking_budget": 64}}),
    ("openrouter", {"reasoning": {"max_tokens": 64}}),
])
async def test_thinking_styles(server, style, expected):
    runner = make_runner("openai/fake-model", base_url=server.url, thinking_style=style)
    await runner.generate(Request(messages(), thinking_budget=64))
    await runner.aclose()
    body = server.requests[-1]
    for key, value in expected.items():
        assert body[key] == value


async def test_fan_out_when_server_ignores_n():
    with FakeServer(honour_n=False, script=lambda body, i: f"seed {body.get('seed')}") as srv:
        runner = make_runner("openai/fake-model", base_url=srv.url)
        response = await runner.generate(Request(messages(), n=4, seed=10))
        assert len(response.completions) == 4
        assert srv.count == 4  # one n=4 request answered with one choice, then 3 singles
        assert sorted(c.text for c in response.completions) == [
            "seed 10", "seed 11", "seed 12", "seed 13"]
        # the runner remembers: the next request fans out at once
        await runner.generate(Request(messages(), n=2))
        assert srv.count == 6 and all("n" not in b for b in srv.requests[-2:])
        await runner.aclose()


async def test_cost_from_user_price_table(server, tmp_path, monkeypatch):
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."fake-*"]\ninput = 1000000.0\noutput = 2000000.0\n')
    monkeypatch.setenv("EVALS_PRICES", str(prices))
    runner = make_runner("openai/fake-model", base_url=server.url)
    response = await runner.generate(Request(messages()))
    await runner.aclose()
    # 1 prompt token at $1/token, 4 completion tokens at $2/token
    assert response.cost == pytest.approx(1 + 4 * 2)


async def test_length_finish_reason(server):
    runner = make_runner("openai/fake-model", base_url=server.url)
    response = await runner.generate(Request(messages("other"), max_tokens=1))
    await runner.aclose()
    assert response.completions[0].finish_reason == "length"


@pytest.mark.parametrize("kind,retryable,status", [
    ("429", True, 429), ("500", True, 500), ("503", True, 503), ("400", False, 400),
    ("malformed", True, None), ("drop", True, None), ("empty_choices", True, None)])
@pytest.mark.parametrize("transport", ["http", "sdk"])
async def test_faults_become_runner_errors(server, kind, retryable, status, transport):
    runner = make_runner("openai/fake-model", base_url=server.url, transport=transport)
    server.inject(kind, retry_after=7)
    with pytest.raises(RunnerError) as info:
        await runner.generate(Request(messages()))
    assert info.value.retryable is retryable
    if status is not None:
        assert info.value.status == status
    if kind == "429":
        assert info.value.retry_after == 7
    # the next request goes through
    assert (await runner.generate(Request(messages()))).completions[0].text == "hello there"
    await runner.aclose()


async def test_timeout_is_retryable(server):
    runner = make_runner("openai/fake-model", base_url=server.url, timeout=0.3)
    server.inject("hang", seconds=5)
    with pytest.raises(RunnerError, match="timed out") as info:
        await runner.generate(Request(messages()))
    assert info.value.retryable
    await runner.aclose()


@pytest.mark.parametrize("transport", ["http", "sdk"])
async def test_refused_key_never_shows_the_key(transport):
    with FakeServer(api_key="right-key-123456") as srv:
        runner = make_runner("openai/fake-model", base_url=srv.url, api_key=KEY,
                             transport=transport)
        with pytest.raises(RunnerError) as info:
            await runner.generate(Request(messages()))
        await runner.aclose()
    assert info.value.status == 401 and not info.value.retryable
    assert KEY not in str(info.value) and KEY not in repr(runner)


async def test_unreachable_endpoint():
    runner = make_runner("openai/fake-model", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(RunnerError, match="cannot connect") as info:
        await runner.generate(Request(messages()))
    await runner.aclose()
    assert info.value.status == -1


def test_missing_key_for_openai():
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        make_runner("openai/gpt-4o")


def test_bad_options():
    with pytest.raises(ConfigError, match="no option 'colour'"):
        make_runner("openai/x", base_url="http://127.0.0.1:1/v1", colour="red")
    with pytest.raises(ConfigError, match="needs a model name"):
        make_runner("openai/")


async def test_tool_calls_round_trip_through_the_wire_and_the_cache(tmp_path):
    """A multi-turn request with tools: the body carries them, the answer's tool calls
    come back as ToolCall objects, and a cached response keeps them."""
    from evals.cache import ResponseCache
    from evals.runner import ToolCall

    tools = [{"type": "function", "function": {
        "name": "bash", "description": "Run a shell command.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                       "required": ["command"]}}}]

    def script(body, index):
        if body["messages"][-1]["role"] == "tool":  # the command's output came back
            return "The repository has 3 files. Done."
        return {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "ls"}}]}

    with FakeServer(script=script) as srv:
        runner = make_runner("openai/fake-model", base_url=srv.url)
        first = await runner.generate(Request([{"role": "user", "content": "List the repo"}],
                                              tools=tools, tool_choice="auto"))
        (call,) = first.completions[0].tool_calls
        assert (call.name, json.loads(call.arguments)) == ("bash", {"command": "ls"})
        assert first.completions[0].finish_reason == "tool_calls"
        assert srv.requests[0]["tools"] == tools and srv.requests[0]["tool_choice"] == "auto"
        turn = [{"role": "user", "content": "List the repo"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call.id, "type": "function",
                     "function": {"name": call.name, "arguments": call.arguments}}]},
                {"role": "tool", "tool_call_id": call.id, "content": "a\nb\nc"}]
        second = await runner.generate(Request(turn, tools=tools))
        await runner.aclose()
    assert second.completions[0].text.startswith("The repository has 3 files")
    assert second.completions[0].tool_calls is None
    cache = ResponseCache(tmp_path)
    cache.put("k", first)
    cache.flush()
    again = cache.get("k").completions[0]
    cache.close()
    assert again.tool_calls == [ToolCall(call.id, "bash", call.arguments)]
    # the tools are part of the cache key: another tool set is another request
    ask = Request([{"role": "user", "content": "x"}])
    assert ask.cache_key("m") != Request(ask.messages, tools=tools).cache_key("m")
