"""anthropic/ against the fake Messages API server (evals.fake_anthropic)."""

import aiohttp
import orjson
import pytest

from evals.fake_anthropic import FakeAnthropic
from evals.runner import ConfigError, Request, RunnerError
from runners.anthropic import make_runner

REPLY = {"content": "hello there", "reasoning_content": "think think"}


def messages(text="hi"):
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


@pytest.fixture
def server():
    with FakeAnthropic(script={"hi": REPLY, "long": "one two three four five",
                               "secret": {**REPLY, "redacted": True}}) as srv:
        yield srv


async def test_request_fields_and_thinking(server):
    runner = make_runner("claude-sonnet-4-5", base_url=server.url, api_key="k")
    response = await runner.generate(Request(messages(), n=2, max_tokens=4096, seed=3,
                                             stop=["\n\n"], thinking_budget=2048))
    await runner.aclose()
    assert server.count == 2 and server.streamed == 0
    assert server.requests[-1] == {
        "model": "claude-sonnet-4-5", "max_tokens": 4096, "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}], "stop_sequences": ["\n\n"],
        "thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert [(c.text, c.reasoning, c.finish_reason) for c in response.completions] == [
        ("hello there", "think think", "stop")] * 2
    u = response.usage
    assert (u.prompt_tokens, u.completion_tokens, u.reasoning_tokens) == (6, 8, 4)
    assert response.applied is None  # sent as asked


async def test_budget_below_the_minimum_is_clamped_and_recorded(server):
    runner = make_runner("claude-3-7-sonnet-20250219", base_url=server.url, api_key="k")
    response = await runner.generate(Request(messages(), thinking_budget=256))
    await runner.aclose()
    assert server.requests[-1]["thinking"]["budget_tokens"] == 1024
    assert response.applied == {"thinking_budget": 1024, "source": "runner"}


async def test_no_thinking_without_a_budget_and_budget_zero_is_off(server):
    runner = make_runner("claude-haiku-4-5", base_url=server.url, api_key="k")
    for budget in (None, 0):
        response = await runner.generate(Request(messages(), thinking_budget=budget))
        assert "thinking" not in server.requests[-1]
        assert response.completions[0].reasoning is None
    await runner.aclose()


def test_max_tokens_default_and_the_budget_inside_it():
    runner = make_runner("claude-sonnet-4-5", base_url="http://x")
    assert runner.body(Request(messages()))[0]["max_tokens"] == 16000
    assert runner.body(Request(messages(), thinking_budget=30000))[0]["max_tokens"] == 34096
    with pytest.raises(ConfigError, match="budget 8000 must be below --max-tokens 4096"):
        runner.body(Request(messages(), thinking_budget=8000, max_tokens=4096))
    with pytest.raises(ConfigError, match="temperature but 1 with thinking"):
        runner.body(Request(messages(), thinking_budget=2048, temperature=0.5))
    assert runner.body(Request(messages(), thinking_budget=2048, temperature=1.0))[0][
        "temperature"] == 1.0


def test_effort_and_budget_by_family():
    with pytest.raises(ConfigError, match="takes no --effort; it takes --thinking-budget"):
        make_runner("claude-sonnet-4-5", base_url="http://x").body(Request(messages(),
                                                                           effort="high"))
    with pytest.raises(ConfigError, match="takes no --thinking-budget; it takes --effort"):
        make_runner("claude-opus-4-7", base_url="http://x").body(Request(messages(),
                                                                         thinking_budget=4096))
    with pytest.raises(ConfigError, match="takes --effort low\\|medium\\|high\\|max, not 'xhigh'"):
        make_runner("claude-opus-4-6", base_url="http://x").body(Request(messages(),
                                                                         effort="xhigh"))
    with pytest.raises(ConfigError, match="no extended thinking"):
        make_runner("claude-3-5-haiku", base_url="http://x").body(Request(messages(),
                                                                          thinking_budget=2048))
    body = make_runner("claude-opus-4-7", base_url="http://x").body(
        Request(messages(), effort="xhigh"))[0]
    assert body["output_config"] == {"effort": "xhigh"}
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    both = make_runner("claude-opus-4-6", base_url="http://x").body(
        Request(messages(), effort="low", thinking_budget=2048))[0]
    assert both["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert both["output_config"] == {"effort": "low"}
    opus45 = make_runner("claude-opus-4-5", base_url="http://x")
    assert opus45.body(Request(messages(), effort="medium"))[0] == {
        "model": "claude-opus-4-5", "max_tokens": 16000, "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}], "output_config": {"effort": "medium"}}
    assert opus45._transport._headers["anthropic-beta"].startswith("effort-")


async def test_redacted_thinking_stop_sequences_and_length(server):
    runner = make_runner("claude-sonnet-4-5", base_url=server.url, api_key="k")
    secret = await runner.generate(Request(messages("secret"), thinking_budget=1024))
    assert secret.completions[0].reasoning == "think think\n\n[redacted thinking]"
    stopped = await runner.generate(Request(messages("long"), stop=[" three"]))
    assert stopped.completions[0].text == "one two"
    assert stopped.completions[0].finish_reason == "stop"
    cut = await runner.generate(Request(messages("long"), max_tokens=2))
    assert cut.completions[0].text == "one two" and cut.completions[0].finish_reason == "length"
    await runner.aclose()


async def test_cache_reads_count_in_the_prompt_and_as_cached():
    reply = {"content": "x", "usage": {"prompt_tokens": 1000, "cached_tokens": 800}}
    with FakeAnthropic(default=reply) as srv:
        runner = make_runner("claude-sonnet-4-5", base_url=srv.url, api_key="k")
        usage = (await runner.generate(Request(messages()))).usage
        await runner.aclose()
    assert (usage.prompt_tokens, usage.cached_tokens) == (1000, 800)


async def test_long_requests_are_streamed_and_assembled(server):
    runner = make_runner("claude-sonnet-4-5", base_url=server.url, api_key="k")
    plain = await runner.generate(Request(messages(), thinking_budget=2048, max_tokens=8000))
    streamed = await runner.generate(Request(messages(), thinking_budget=2048, max_tokens=32000))
    assert server.streamed == 1 and server.requests[-1]["stream"] is True
    assert streamed.completions == plain.completions
    assert streamed.usage == plain.usage
    cut = await runner.generate(Request(messages("long"), max_tokens=30000, thinking_budget=0))
    assert cut.completions[0].text == "one two three four five"
    await runner.aclose()
    forced = make_runner("claude-opus-4-1", base_url=server.url, api_key="k")
    assert forced.streams({"max_tokens": 10000})  # Opus 4 and 4.1: a lower limit
    assert not make_runner("claude-opus-4-1", base_url="x", stream="false").streams(
        {"max_tokens": 10**6})
    await forced.aclose()


async def test_stream_error_event_is_retryable(server):
    runner = make_runner("claude-sonnet-4-5", base_url=server.url, api_key="k", stream="true")
    server.inject("stream_error")
    with pytest.raises(RunnerError, match="overloaded_error") as info:
        await runner.generate(Request(messages(), thinking_budget=2048))
    assert info.value.retryable
    server.inject("drop")
    with pytest.raises(RunnerError, match="connection error") as info:
        await runner.generate(Request(messages()))
    assert info.value.retryable
    server.inject("529")
    with pytest.raises(RunnerError) as info:
        await runner.generate(Request(messages()))
    assert info.value.retryable and info.value.status == 529
    assert (await runner.generate(Request(messages()))).completions[0].text == "hello there"
    await runner.aclose()


async def post(srv, body, headers=None):
    headers = {"anthropic-version": "2023-06-01"} if headers is None else headers
    async with aiohttp.ClientSession() as s:
        async with s.post(srv.url + "/v1/messages", json=body, headers=headers) as r:
            return r.status, orjson.loads(await r.read())


@pytest.mark.parametrize("change,message", [
    ({"max_tokens": None}, "max_tokens"),
    ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "greater than or equal to 1024"),
    ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, "greater than `thinking.budget"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "temperature": 0.2},
     "temperature"),
])
async def test_fake_server_validates_like_the_api(server, change, message):
    body = {"model": "m", "max_tokens": 2048, "messages": [{"role": "user", "content": "hi"}],
            **change}
    status, data = await post(server, {k: v for k, v in body.items() if v is not None})
    assert status == 400 and data["type"] == "error"
    assert data["error"]["type"] == "invalid_request_error" and message in data["error"]["message"]
    status, data = await post(server, {"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": "hi"}]}, headers={})
    assert status == 400 and "anthropic-version" in data["error"]["message"]


async def test_a_failed_call_of_a_fan_out_hands_over_its_siblings(server):
    """Messages has no n: n=3 is three calls. One fails; the two answers that were paid
    for come back in a PartialResponse, with their usage, for the run to record."""
    from evals.runner import PartialResponse

    server.inject("400", times=1)
    runner = make_runner("claude-sonnet-4-5", base_url=server.url, api_key="k")
    with pytest.raises(PartialResponse) as caught:
        await runner.generate(Request(messages(), n=3, max_tokens=4096))
    await runner.aclose()
    got = caught.value.response.completions
    assert sorted(c is None for c in got) == [False, False, True]
    assert caught.value.response.usage.prompt_tokens == 2 * 3  # two calls' prompts
    assert not caught.value.retryable  # a 400 is not worth asking again
