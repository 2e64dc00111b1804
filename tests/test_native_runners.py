"""What the three native runners share, each against its fake server on 127.0.0.1:
faults, retries' inputs, keys, the registry, prices."""

import tomllib
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import orjson
import pytest

from evals.fake_anthropic import FakeAnthropic
from evals.fake_gemini import FakeGemini
from evals.fake_responses import FakeResponses
from evals.prices import Price, Tier, find_price, load_prices
from evals.runner import Completion, ConfigError, Request, Response, RunnerError, Usage
from tests.conftest import REPO

KEY = "sk-test-0123456789abcdef"
ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GEMINI_API_KEY", "GOOGLE_API_KEY",
       "GOOGLE_GEMINI_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@dataclass
class Provider:
    family: str
    module: str
    server: type
    model: str
    key_var: str
    url_var: str

    def runner(self, **options: Any):
        name = self.model
        return import_module(self.module).make_runner(name, **options)


PROVIDERS = [
    Provider("openai-responses", "runners.openai_responses", FakeResponses, "o3",
             "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    Provider("anthropic", "runners.anthropic", FakeAnthropic, "claude-sonnet-4-5",
             "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    Provider("google", "runners.google", FakeGemini, "gemini-2.5-flash",
             "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"),
]
REPLY = {"content": "hello there", "reasoning_content": "think think"}


def messages(text="hi"):
    return [{"role": "user", "content": text}]


@pytest.fixture(params=PROVIDERS, ids=lambda p: p.family)
def provider(request):
    return request.param


@pytest.mark.parametrize("kind,retryable,status", [
    ("429", True, 429), ("500", True, 500), ("503", True, 503), ("400", False, 400),
    ("malformed", True, None), ("drop", True, None), ("empty_choices", True, None)])
async def test_faults_become_runner_errors(provider, kind, retryable, status):
    with provider.server(script={"hi": REPLY}) as srv:
        runner = provider.runner(base_url=srv.url, api_key=KEY)
        srv.inject(kind, retry_after=7)
        with pytest.raises(RunnerError) as info:
            await runner.generate(Request(messages()))
        assert info.value.retryable is retryable
        if status is not None:
            assert info.value.status == status
        if kind == "429":
            assert info.value.retry_after == 7
        assert (await runner.generate(Request(messages()))).completions[0].text == "hello there"
        await runner.aclose()


async def test_timeout_is_retryable(provider):
    with provider.server() as srv:
        runner = provider.runner(base_url=srv.url, api_key=KEY, timeout=0.3)
        srv.inject("hang", seconds=5)
        with pytest.raises(RunnerError, match="timed out") as info:
            await runner.generate(Request(messages()))
        assert info.value.retryable
        await runner.aclose()


async def test_refused_key_never_shows_the_key(provider):
    with provider.server(api_key="right-key-123456") as srv:
        runner = provider.runner(base_url=srv.url, api_key=KEY)
        with pytest.raises(RunnerError) as info:
            await runner.generate(Request(messages()))
        await runner.aclose()
        assert srv.saw_auth
    assert info.value.status == 401 and not info.value.retryable
    assert KEY not in str(info.value) and KEY not in repr(runner)
    assert KEY not in repr(vars(runner))


async def test_key_and_base_url_from_the_provider_variables(provider, monkeypatch):
    with provider.server(api_key=KEY, script={"hi": REPLY}) as srv:
        monkeypatch.setenv(provider.key_var, KEY)
        monkeypatch.setenv(provider.url_var, srv.url)
        runner = provider.runner()
        assert (await runner.generate(Request(messages()))).completions[0].text == "hello there"
        await runner.aclose()


def test_google_api_key_is_read_too(monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    runner = PROVIDERS[2].runner()
    assert runner.base_url.startswith("https://generativelanguage")


def test_missing_key_for_the_provider(provider):
    with pytest.raises(ConfigError, match=provider.key_var):
        provider.runner()


async def test_unreachable_endpoint(provider):
    runner = provider.runner(base_url="http://127.0.0.1:9", api_key=KEY)
    with pytest.raises(RunnerError, match="cannot connect") as info:
        await runner.generate(Request(messages()))
    await runner.aclose()
    assert info.value.status == -1


def test_bad_options_and_names(provider):
    with pytest.raises(ConfigError, match="no option 'colour'"):
        provider.runner(base_url="http://127.0.0.1:1", colour="red")
    with pytest.raises(ConfigError, match="needs a model name"):
        import_module(provider.module).make_runner("")


async def test_n_samples_and_usage_add_up(provider):
    reply = {**REPLY, "usage": {"prompt_tokens": 100, "cached_tokens": 40}}
    with provider.server(script={"hi": reply}) as srv:
        runner = provider.runner(base_url=srv.url, api_key=KEY)
        # Anthropic thinks only when asked to; the others think by default
        budget = 2048 if provider.family == "anthropic" else None
        response = await runner.generate(Request(messages(), n=3, thinking_budget=budget))
        await runner.aclose()
    assert [c.text for c in response.completions] == ["hello there"] * 3
    assert [c.reasoning for c in response.completions] == ["think think"] * 3
    usage = response.usage
    assert usage.reasoning_tokens == 6 and usage.completion_tokens == 12
    # Gemini counts the one prompt once for its n candidates; the others are asked n times
    calls = 1 if provider.family == "google" else 3
    assert (usage.prompt_tokens, usage.cached_tokens) == (100 * calls, 40 * calls)


def test_entry_points_name_the_runners():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    runners = declared["evals.runners"]
    for p in PROVIDERS:
        module, _, attr = runners[p.family].partition(":")
        assert module == p.module and callable(getattr(import_module(module), attr))


def test_price_tiers_and_cached_input():
    price = Price(1.0, 10.0, cached_input=0.1,
                  long_context=(Tier(1000, 2.0, 20.0, 0.2), Tier(100, 1.5, 15.0)))
    assert price.cost(Usage(100, 10, 0, 50)) == pytest.approx((50 * 1 + 50 * 0.1 + 10 * 10) / 1e6)
    # above 100 tokens: the 100 tier, whose cached input defaults to its input price
    assert price.cost(Usage(200, 10, 0, 50)) == pytest.approx((200 * 1.5 + 10 * 15) / 1e6)
    assert price.cost(Usage(2000, 10)) == pytest.approx((2000 * 2 + 10 * 20) / 1e6)


def test_user_price_table_with_tiers(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text('[models."m-*"]\ninput = 1\noutput = 2\ncached_input = 0.5\n'
                    'long_context = [{ above = 10, input = 3, output = 4 }]\n')
    price = find_price("m-1", load_prices(str(path)))
    assert price.long_context[0] == Tier(10, 3.0, 4.0, None) and price.cached_input == 0.5
    path.write_text('[models."m"]\ninput = 1\noutput = 2\nlong_context = [{ input = 3 }]\n')
    with pytest.raises(ConfigError, match="long_context"):
        load_prices(str(path))


def test_bundled_prices_cover_the_native_providers():
    table = load_prices()
    for model in ("o3", "gpt-5", "o3-pro", "claude-sonnet-4-5-20250929", "claude-opus-4-1",
                  "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-3-pro-preview"):
        assert find_price(model, table) is not None, model
    assert find_price("gemini-2.5-flash-lite", table).input == 0.10  # not flash's price
    assert find_price("gemini-2.5-pro", table).long_context[0].above == 200_000


async def test_cost_uses_each_calls_prompt_for_the_tier(provider, tmp_path, monkeypatch):
    prices = tmp_path / "prices.toml"
    prices.write_text(f'[models."{provider.model}"]\ninput = 1000000.0\noutput = 2000000.0\n'
                      f'cached_input = 0.0\nlong_context = [{{ above = 150, input = 9e6, '
                      f'output = 9e6 }}]\n')
    monkeypatch.setenv("EVALS_PRICES", str(prices))
    reply = {"content": "a b", "usage": {"prompt_tokens": 100, "cached_tokens": 40}}
    with provider.server(script={"hi": reply}) as srv:
        runner = provider.runner(base_url=srv.url, api_key=KEY)
        response = await runner.generate(Request(messages(), n=2))
        await runner.aclose()
    # per call: 60 uncached prompt tokens at $1, 2 output tokens at $2; two calls of 100
    # prompt tokens each stay under the 150-token tier even though they add up to 200
    calls = 1 if provider.family == "google" else 2
    assert response.cost == pytest.approx(calls * 60 + 2 * 2 * 2)


def test_cached_responses_round_trip_and_old_entries_still_load():
    response = Response([Completion("a", "r", "length")], Usage(10, 5, 2, 4), 0.5, 0.01,
                        applied={"effort": "high", "source": "provider"})
    back = Response.from_json(orjson.loads(orjson.dumps(response.to_json())))
    assert back == response
    old = {"completions": [["a", None, "stop"]], "usage": [1, 2, 0], "latency": 0.1,
           "cost": None}  # written before cached_tokens and applied existed
    assert Response.from_json(old).usage.cached_tokens == 0
    assert Response.from_json(old).applied is None
