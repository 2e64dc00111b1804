"""google/ against the fake Gemini API server (evals.fake_gemini)."""

import aiohttp
import pytest

from evals.fake_gemini import FakeGemini
from evals.runner import ConfigError, Request
from runners.google import make_runner

REPLY = {"content": "hello there", "reasoning_content": "think think"}


def messages(text="hi"):
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text},
            {"role": "assistant", "content": "ok"}, {"role": "user", "content": text}]


@pytest.fixture
def server():
    with FakeGemini(script={"hi": REPLY, "long": "one two three four five",
                            "bad": {"content": "x", "blocked": True}}) as srv:
        yield srv


async def test_request_fields_and_thoughts(server):
    runner = make_runner("gemini-2.5-flash", base_url=server.url, api_key="k")
    response = await runner.generate(Request(messages(), n=2, max_tokens=64, temperature=0.5,
                                             seed=3, stop=["\n\n"], thinking_budget=2048))
    await runner.aclose()
    assert server.count == 1 and server.models_asked == ["gemini-2.5-flash"]
    assert server.requests[-1] == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]},
                     {"role": "model", "parts": [{"text": "ok"}]},
                     {"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"candidateCount": 2, "maxOutputTokens": 64, "temperature": 0.5,
                             "seed": 3, "stopSequences": ["\n\n"],
                             "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 2048}}}
    assert [(c.text, c.reasoning, c.finish_reason) for c in response.completions] == [
        ("hello there", "think think", "stop")] * 2
    u = response.usage  # thoughts are output: completion = candidates + thoughts
    assert (u.prompt_tokens, u.completion_tokens, u.reasoning_tokens) == (5, 8, 4)
    assert response.applied is None


@pytest.mark.parametrize("model,budget,sent", [
    ("gemini-2.5-pro", 64, 128), ("gemini-2.5-pro", 50000, 32768), ("gemini-2.5-pro", -1, -1),
    ("gemini-2.5-flash", 30000, 24576), ("gemini-2.5-flash", 0, 0),
    ("gemini-2.5-flash-lite", 100, 512), ("gemini-2.5-flash-lite", 0, 0),
    ("gemini-2.5-flash-lite", 1024, 1024)])
def test_budgets_clamped_into_the_family_range(model, budget, sent):
    runner = make_runner(model, base_url="http://x")
    config, applied = runner.thinking(Request(messages(), thinking_budget=budget))
    assert config["thinkingBudget"] == sent
    assert applied == (None if sent == budget else {"thinking_budget": sent, "source": "runner"})
    assert config["includeThoughts"] is (sent != 0)


def test_levels_and_refusals():
    pro3 = make_runner("gemini-3-pro-preview", base_url="http://x")
    assert pro3.thinking(Request(messages(), effort="low"))[0] == {
        "includeThoughts": True, "thinkingLevel": "LOW"}
    with pytest.raises(ConfigError, match="takes --effort low\\|high, not 'medium'"):
        pro3.thinking(Request(messages(), effort="medium"))
    with pytest.raises(ConfigError, match="no --thinking-budget; Gemini 3 takes --effort"):
        pro3.thinking(Request(messages(), thinking_budget=1024))
    flash3 = make_runner("gemini-3-flash-preview", base_url="http://x")
    assert flash3.thinking(Request(messages(), effort="minimal"))[0]["thinkingLevel"] == "MINIMAL"
    with pytest.raises(ConfigError, match="no --effort; Gemini 2.5 takes --thinking-budget"):
        make_runner("gemini-2.5-pro", base_url="http://x").thinking(Request(messages(),
                                                                            effort="high"))
    with pytest.raises(ConfigError, match="cannot turn thinking off"):
        make_runner("gemini-2.5-pro", base_url="http://x").thinking(Request(messages(),
                                                                            thinking_budget=0))
    with pytest.raises(ConfigError, match="not a thinking model"):
        make_runner("gemini-2.0-flash", base_url="http://x").thinking(Request(messages(),
                                                                              thinking_budget=9))


async def test_refused_settings_send_nothing(server):
    runner = make_runner("gemini-2.5-pro", base_url=server.url, api_key="k")
    with pytest.raises(ConfigError):
        await runner.generate(Request(messages(), effort="high"))
    await runner.aclose()
    assert server.count == 0


async def test_fan_out_when_the_server_ignores_candidate_count():
    with FakeGemini(honour_n=False,
                    script=lambda body, i: f"seed {body['generationConfig'].get('seed')}") as srv:
        runner = make_runner("gemini-2.5-flash", base_url=srv.url, api_key="k")
        response = await runner.generate(Request(messages(), n=3, seed=10))
        assert srv.count == 3
        assert sorted(c.text for c in response.completions) == ["seed 10", "seed 11", "seed 12"]
        await runner.generate(Request(messages(), n=2))
        assert srv.count == 5
        assert all("candidateCount" not in b["generationConfig"] for b in srv.requests[-2:])
        await runner.aclose()


async def test_length_blocked_prompt_and_cached_tokens(server):
    runner = make_runner("gemini-2.5-flash", base_url=server.url, api_key="k")
    cut = await runner.generate(Request(messages("long"), max_tokens=2, thinking_budget=0))
    assert cut.completions[0].text == "one two" and cut.completions[0].finish_reason == "length"
    blocked = await runner.generate(Request(messages("bad"), n=2))
    assert [(c.text, c.finish_reason) for c in blocked.completions] == [
        ("", "content_filter")] * 2
    await runner.aclose()
    with FakeGemini(default={"content": "x", "usage": {"prompt_tokens": 900,
                                                       "cached_tokens": 600}}) as srv:
        runner = make_runner("gemini-2.5-flash", base_url=srv.url, api_key="k")
        usage = (await runner.generate(Request(messages()))).usage
        await runner.aclose()
    assert (usage.prompt_tokens, usage.cached_tokens) == (900, 600)


async def test_fake_server_speaks_the_wire_format(server):
    url = server.url + "/v1beta/models/gemini-x:generateContent"
    async with aiohttp.ClientSession() as s:
        both = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {
            "thinkingConfig": {"thinkingBudget": 10, "thinkingLevel": "LOW"}}}
        async with s.post(url, json=both) as r:
            error = (await r.json())["error"]
            assert r.status == 400 and error["status"] == "INVALID_ARGUMENT"
        hidden = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        async with s.post(url + "?key=anything", json=hidden) as r:
            data = await r.json()
    assert data["candidates"][0]["content"]["parts"] == [{"text": "hello there"}]
    assert data["usageMetadata"]["thoughtsTokenCount"] == 2  # thought, not shown
    assert data["candidates"][0]["finishReason"] == "STOP"
