"""``openai/MODEL``: any OpenAI-compatible chat-completions endpoint.

Two transports speak the same wire format:

* ``http`` (default): one pooled aiohttp session posting orjson bodies. The
  SDK spends ~1.3 ms of CPU per call on request building and model objects; this
  path spends ~0.1-0.2 ms (bench/README.md), which is what lets one process keep
  hundreds of requests in flight.
* ``sdk`` (``-M transport=sdk``, or ``-M azure=true``): ``openai.AsyncOpenAI``
  for every call, for Azure and other auth schemes the SDK knows.

Compute settings map onto the fields servers accept: ``reasoning_effort``;
the thinking budget in the spelling chosen by ``-M thinking_style=``
(``vllm``: ``thinking_token_budget``; ``chat_template``: SGLang/Qwen
``chat_template_kwargs.thinking_budget``; ``anthropic``:
``thinking.budget_tokens``; ``openrouter``: ``reasoning.max_tokens``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import orjson

from evals.prices import find_price, load_prices
from evals.task import is_true
from evals.runner import (ConfigError, Completion, Request, Response,
                          RunnerError, ToolCall, Usage, without_provider_items)
from runners.wire import RETRYABLE_STATUS, aiohttp_errors, settle, status_error  # noqa: F401 (re-export)

OPENAI_URL = "https://api.openai.com/v1"
THINKING_STYLES = ("vllm", "chat_template", "anthropic", "openrouter", "none")


def make_runner(name: str, **options: Any) -> "OpenAIRunner":
    """``base_url`` holding several URLs (comma-separated: ``--base-url`` given more than
    once) makes an endpoint pool over them (runners/endpoint_pool.py)."""
    if not name:
        raise ConfigError("model spec 'openai/' needs a model name, e.g. openai/gpt-4o")
    urls = [u.strip() for u in str(options.get("base_url") or "").split(",") if u.strip()]
    if len(urls) > 1:
        from runners.endpoint_pool import EndpointPool

        return EndpointPool([OpenAIRunner(name, **{**options, "base_url": u}) for u in urls])
    return OpenAIRunner(name, **options)


def _thinking_fields(style: str, budget: int) -> dict[str, Any]:
    if style == "vllm":
        return {"thinking_token_budget": budget}
    if style == "chat_template":
        return {"chat_template_kwargs": {"enable_thinking": budget > 0, "thinking_budget": budget}}
    if style == "anthropic":
        return {"thinking": {"type": "enabled", "budget_tokens": budget}}
    if style == "openrouter":
        return {"reasoning": {"max_tokens": budget}}
    return {}


class OpenAIRunner:
    enforces_timeout = True  # each call carries its own total timeout (no outer guard needed)

    def __init__(self, name: str, *, base_url: str | None = None, api_key: str | None = None,
                 transport: str = "http", timeout: float = 600.0,
                 thinking_style: str = "vllm", azure: bool | str = False,
                 max_tokens_field: str | None = None, prices: str | None = None,
                 **unknown: Any):
        if unknown:
            raise ConfigError(f"openai runner has no option {next(iter(unknown))!r} "
                              "(known: base_url, transport, timeout, thinking_style, azure, "
                              "max_tokens_field, prices)")
        if thinking_style not in THINKING_STYLES:
            raise ConfigError(f"thinking_style must be one of {', '.join(THINKING_STYLES)}")
        self.name = name
        self.model = f"openai/{name}"
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        self.azure = is_true(azure)
        self.transport = "sdk" if self.azure else transport
        if self.transport not in ("http", "sdk"):
            raise ConfigError("transport must be 'http' or 'sdk'")
        key_var = "AZURE_OPENAI_API_KEY" if self.azure else "OPENAI_API_KEY"
        key = api_key or os.environ.get(key_var)
        if not key:
            if self.base_url == OPENAI_URL or self.azure:
                raise ConfigError(f"{key_var} is not set (needed for {self.base_url})")
            key = "EMPTY"  # local servers (vLLM, llama.cpp, Ollama) accept any key
        self._key = key  # kept on the object only; never logged or recorded
        self.timeout = float(timeout)
        self.thinking_style = thinking_style
        self.max_tokens_field = max_tokens_field or (
            "max_completion_tokens" if self.base_url == OPENAI_URL else "max_tokens")
        self.price = find_price(name, load_prices(prices))
        # Two servers can serve one model name; the body's spelling of budgets and limits
        # differs by option. The key itself never enters the identity.
        self.cache_identity = (f"{self.model}@{self.base_url}|{self.thinking_style}|"
                               f"{self.max_tokens_field}")
        self._session = None  # created inside the running loop
        self._client = None
        self._fan_out = False  # set once the server answers n>1 with fewer choices

    def __repr__(self) -> str:  # keeps the key out of tracebacks and logs
        return f"OpenAIRunner({self.model!r}, base_url={self.base_url!r})"

    def body(self, request: Request, n: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.name,
                                "messages": without_provider_items(request.messages)}
        if n != 1:
            body["n"] = n
        if request.max_tokens is not None:
            body[self.max_tokens_field] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.seed is not None:  # the first completion's: seed + its generation
            body["seed"] = request.seed_for(0)
        if request.stop:
            body["stop"] = request.stop
        if request.effort is not None:
            body["reasoning_effort"] = request.effort
        if request.thinking_budget is not None:
            body.update(_thinking_fields(self.thinking_style, request.thinking_budget))
        if request.tools:
            body["tools"] = request.tools
            if request.tool_choice:
                body["tool_choice"] = request.tool_choice
        return body

    async def generate(self, request: Request) -> Response:
        start = time.perf_counter()
        if self._fan_out and request.n > 1:
            parts = await self._fan(request, range(request.n))
        else:
            parts = [await self._call(self.body(request, request.n))]
            got = len(parts[0][0])
            if got < request.n:
                self._fan_out = True
                parts += await self._fan(request, range(got, request.n))
        completions: list[Completion | None] = []
        usage = Usage()
        failures = []
        for part in parts:
            if isinstance(part, BaseException) and not isinstance(part, RunnerError):
                raise part  # a bug or a cancellation, not a failed call
            if isinstance(part, RunnerError):
                completions.append(None)
                failures.append(part)
                continue
            completions += part[0]
            usage += part[1]
        cost = self.price.cost(usage) if self.price else None
        response = Response(completions[:request.n], usage, time.perf_counter() - start, cost)
        return settle(response, failures, len(parts), request.n)

    async def _fan(self, request: Request, positions: range) -> list:
        """The server ignores n: ask for these completions one call each. Completion
        ``i`` draws from ``request.seed_for(i)``, the seed it would have alone. A failed
        call comes back as its RunnerError, so its siblings' answers are kept."""
        def one(i: int) -> dict[str, Any]:
            body = self.body(request, 1)
            if request.seed is not None:
                body["seed"] = request.seed_for(i)
            return body
        return list(await asyncio.gather(*(self._call(one(i)) for i in positions),
                                         return_exceptions=True))

    async def _call(self, body: dict[str, Any]) -> tuple[list[Completion], Usage]:
        data = await (self._post_sdk(body) if self.transport == "sdk" else self._post_http(body))
        return parse_chat_completion(data)

    async def _post_http(self, body: dict[str, Any]) -> dict[str, Any]:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                headers={"Authorization": f"Bearer {self._key}",
                         "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                json_serialize=lambda o: orjson.dumps(o).decode())
        url = self.base_url + "/chat/completions"
        async with aiohttp_errors(self.base_url, self.timeout):
            async with self._session.post(url, data=orjson.dumps(body)) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise status_error(resp.status, raw, resp.headers.get("Retry-After"),
                                       self.base_url)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RunnerError(f"malformed JSON from server: {raw[:80]!r}",
                              retryable=True) from None

    async def _post_sdk(self, body: dict[str, Any]) -> dict[str, Any]:
        import openai

        if self._client is None:
            if self.azure:
                self._client = openai.AsyncAzureOpenAI(
                    azure_endpoint=self.base_url, api_key=self._key, max_retries=0,
                    timeout=self.timeout,
                    api_version=os.environ.get("OPENAI_API_VERSION", "2024-10-21"))
            else:
                self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._key,
                                                  max_retries=0, timeout=self.timeout)
        known = {"model", "messages", "n", "max_tokens", "max_completion_tokens", "temperature",
                 "seed", "stop", "reasoning_effort", "tools", "tool_choice"}
        args = {k: v for k, v in body.items() if k in known}
        extra = {k: v for k, v in body.items() if k not in known}
        try:
            result = await self._client.chat.completions.create(**args, extra_body=extra or None)
        except openai.APIStatusError as e:
            raise status_error(e.status_code, e.response.content,
                               e.response.headers.get("retry-after"), self.base_url) from None
        except openai.APITimeoutError:
            raise RunnerError(f"timed out after {self.timeout:g}s", retryable=True) from None
        except openai.APIConnectionError as e:
            raise RunnerError(f"connection error: {e}", retryable=True) from None
        except ValueError as e:  # the SDK's own JSON decoding failed
            raise RunnerError(f"malformed response: {e}", retryable=True) from None
        return result.model_dump()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._client is not None:
            await self._client.close()
            self._client = None


def _text(content: Any) -> str:
    """Message content as text: a string, or a list of parts (some servers send parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _tool_calls(raw: Any) -> list[ToolCall] | None:
    """A message's tool calls; a malformed one is answered by the caller, not raised."""
    if not raw or not isinstance(raw, list):
        return None
    calls = []
    for i, call in enumerate(raw):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        calls.append(ToolCall(str(call.get("id") or f"call_{i}"), str(function.get("name") or ""),
                              arguments if isinstance(arguments, str)
                              else orjson.dumps(arguments).decode()))
    return calls or None


def parse_chat_completion(data: Any) -> tuple[list[Completion], Usage]:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices, list) \
            or not all(isinstance(c, dict) for c in choices):
        raise RunnerError(f"response has no usable choices: {str(data)[:120]}", retryable=True)
    completions = []
    for choice in sorted(choices, key=lambda c: c.get("index") or 0):
        message = choice.get("message")
        if not isinstance(message, dict):
            raise RunnerError(f"a choice has no message: {str(choice)[:120]}", retryable=True)
        completions.append(Completion(
            _text(message.get("content")),
            message.get("reasoning_content") or message.get("reasoning"),
            choice.get("finish_reason"), _tool_calls(message.get("tool_calls"))))
    raw_usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    details = raw_usage.get("completion_tokens_details") or {}
    if not isinstance(details, dict):
        details = {}
    usage = Usage(raw_usage.get("prompt_tokens") or 0, raw_usage.get("completion_tokens") or 0,
                  details.get("reasoning_tokens") or 0)
    return completions, usage
