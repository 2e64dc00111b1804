"""``anthropic/MODEL``: Anthropic's Messages API (``POST {base}/v1/messages``).

Anthropic's OpenAI-compatible endpoint drops what this harness measures (no
reasoning_effort, n=1, no thinking text), so this runner speaks the native format;
docs/providers.md has the table of what each model family takes.

* ``--thinking-budget B`` becomes ``thinking: {type: enabled, budget_tokens: B}``; a
  budget under the API's minimum of 1024 is raised to it (recorded as the applied
  budget) and one not below max_tokens is refused, since thinking counts inside it.
  0 turns thinking off.
* ``--effort E`` becomes ``output_config.effort`` with adaptive thinking on the
  families that have it; families without an effort control refuse it, families
  without a budget (Opus 4.7 and later) refuse ``--thinking-budget``.
* The Messages API requires max_tokens: without ``--max-tokens`` the runner sends
  ``-M max_tokens=`` (default 16000), raised to budget + 4096 for a larger budget.
* A request whose max_tokens could take more than the 10 minutes a non-streaming
  call may last (the SDK's rule: over 21,333 tokens at an hour per 128k) is streamed
  and assembled from its events (``-M stream=auto|true|false``).
* Tools (``Request.tools``, OpenAI's chat form) become ``tools`` (name, description,
  input_schema) and ``tool_choice`` (auto, any for required, none; required with
  thinking on is refused before sending, as Anthropic refuses it); the conversation's
  tool calls become ``tool_use`` blocks and each run of tool answers one user turn of
  ``tool_result`` blocks; ``tool_use`` blocks in the answer (stop reason ``tool_use``)
  become ``ToolCall``s. A turn's content blocks are the completion's provider items,
  sent back verbatim as that assistant turn: with thinking on, its signed thinking and
  redacted_thinking blocks must come back unchanged before its tool_use blocks.
* thinking blocks become the completion's reasoning, a redacted_thinking block a
  ``[redacted thinking]`` line in it; ``n`` samples are n requests; stop reason
  ``max_tokens`` is a length cut.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from evals.prices import find_price, load_prices
from evals.runner import (Completion, ConfigError, Request, Response, RunnerError, ToolCall,
                          Usage, own_items, provider_items, without_provider_item)
from evals.task import is_true
from runners.native import (Family, JsonTransport, Part, check_options, content_text,
                            find_family, first_env, gather_parts, merge, need_name,
                            resolve_key, split_system)
from runners.tool_wire import (arguments_object, arguments_text, calls_of, functions,
                               tool_choice, turns)

ANTHROPIC_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
MIN_BUDGET = 1024
STREAM_ABOVE = 21_333  # max_tokens past which a call may outlast a non-streaming request
_ANY = (MIN_BUDGET, 10**9)  # the upper bound is max_tokens, checked per request
_BUDGET_ONLY = "; it takes --thinking-budget (extended thinking) instead"
_EFFORT_ONLY = "; it takes --effort (adaptive thinking) instead"
_ADAPTIVE = {"adaptive": True}
# First match wins. extra: adaptive (thinking type "adaptive" carries the effort), beta
# (a header the effort needs), stream_above (a lower non-streaming max_tokens limit).
FAMILIES = (
    Family("claude-opus-4-[789]*", ("low", "medium", "high", "xhigh", "max"),
           instead=_EFFORT_ONLY, extra=_ADAPTIVE),
    Family("claude-opus-5*", ("low", "medium", "high", "xhigh", "max"),
           instead=_EFFORT_ONLY, extra=_ADAPTIVE),
    Family("claude-sonnet-5*", ("low", "medium", "high", "xhigh", "max"),
           instead=_EFFORT_ONLY, extra=_ADAPTIVE),
    Family("claude-opus-4-6*", ("low", "medium", "high", "max"), _ANY, off=True, extra=_ADAPTIVE),
    Family("claude-sonnet-4-6*", ("low", "medium", "high", "max"), _ANY, off=True,
           extra=_ADAPTIVE),
    Family("claude-opus-4-5*", ("low", "medium", "high"), _ANY, off=True,
           extra={"beta": "effort-2025-11-24"}),
    Family("claude-opus-4-1*", (), _ANY, off=True, instead=_BUDGET_ONLY,
           extra={"stream_above": 8192}),
    Family("claude-opus-4-2025*", (), _ANY, off=True, instead=_BUDGET_ONLY,
           extra={"stream_above": 8192}),
    Family("claude-sonnet-4-*", (), _ANY, off=True, instead=_BUDGET_ONLY),
    Family("claude-haiku-4-5*", (), _ANY, off=True, instead=_BUDGET_ONLY),
    Family("claude-3-7-sonnet*", (), _ANY, off=True, instead=_BUDGET_ONLY),
    Family("claude-3*", (), instead="; it has no extended thinking"),
)
FAMILY = "anthropic"
_CHOICES = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
_FORCING = ("any", "tool")  # tool choices that force a call: refused with thinking on
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
           "tool_use": "tool_calls",
           "model_context_window_exceeded": "length", "refusal": "content_filter"}
_RETRYABLE_STREAM_ERRORS = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}


def make_runner(name: str, **options: Any) -> "AnthropicRunner":
    need_name("anthropic", name, "claude-sonnet-4-5")
    return AnthropicRunner(name, **options)


class AnthropicRunner:
    enforces_timeout = True  # each call carries its own timeout; a stream has max_wait

    def __init__(self, name: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0, max_tokens: int | str = 16000, stream: str = "auto",
                 max_wait: float = 3 * 3600.0, thinking_display: str = "summarized",
                 prices: str | None = None, **unknown: Any):
        check_options("anthropic", unknown, "base_url, timeout, max_tokens, stream, max_wait, "
                      "thinking_display, prices")
        self.name = name
        self.model = f"anthropic/{name}"
        self.base_url = (base_url or first_env("ANTHROPIC_BASE_URL") or ANTHROPIC_URL).rstrip("/")
        key = resolve_key(api_key, ("ANTHROPIC_API_KEY",), self.base_url, ANTHROPIC_URL)
        self.family = find_family(name, FAMILIES)
        extra = self.family.extra if self.family else {}
        self.default_max_tokens = int(max_tokens)
        self.stream = stream if stream == "auto" else ("always" if is_true(stream) else "never")
        self.stream_above = extra.get("stream_above", STREAM_ABOVE)
        self.max_wait = float(max_wait)
        self.thinking_display = thinking_display
        self.price = find_price(name, load_prices(prices))
        self.cache_identity = f"{self.model}@{self.base_url}|{self.default_max_tokens}"
        headers = {"x-api-key": key, "anthropic-version": API_VERSION}
        if extra.get("beta"):
            headers["anthropic-beta"] = extra["beta"]
        self._transport = JsonTransport(self.base_url, headers, float(timeout))

    def __repr__(self) -> str:
        return f"AnthropicRunner({self.model!r}, base_url={self.base_url!r})"

    def body(self, request: Request) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The request body, and the applied compute where it differs from the request."""
        family, applied = self.family, None
        budget = request.thinking_budget
        if budget is not None:
            if budget < 0:
                raise ConfigError(f"{self.name}: a thinking budget is a token count, not {budget}")
            sent = family.clamp_budget(self.name, budget) if family else budget
            if sent != budget:
                applied = {"thinking_budget": sent, "source": "runner"}
            budget = sent
        max_tokens = request.max_tokens
        if max_tokens is None:
            max_tokens = max(self.default_max_tokens, (budget or 0) + 4096)
        elif budget and budget >= max_tokens:
            raise ConfigError(f"{self.name}: thinking budget {budget} must be below --max-tokens "
                              f"{max_tokens} (Anthropic counts thinking inside max_tokens)")
        system, rest = split_system(request.messages)
        body: dict[str, Any] = {"model": self.name, "max_tokens": max_tokens,
                                "messages": anthropic_messages(rest)}
        if system:
            body["system"] = system
        if request.stop:
            body["stop_sequences"] = request.stop
        thinking = None
        if budget:
            thinking = {"type": "enabled", "budget_tokens": budget}
        if request.effort is not None:
            effort = family.effort(self.name, request.effort) if family else request.effort
            body["output_config"] = {"effort": effort}
            if thinking is None and family and family.extra.get("adaptive"):
                thinking = {"type": "adaptive"}
        if thinking is not None:
            if thinking["type"] == "adaptive" and self.thinking_display != "default":
                # Newer models omit the thinking text unless asked for its summary.
                thinking["display"] = self.thinking_display
            body["thinking"] = thinking
            if request.temperature not in (None, 1, 1.0):
                raise ConfigError(f"{self.name}: Anthropic takes no temperature but 1 with "
                                  f"thinking (asked {request.temperature:g})")
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.tools:
            body["tools"] = [{"name": f.name,
                              **({"description": f.description} if f.description else {}),
                              "input_schema": f.parameters or {"type": "object", "properties": {}}}
                             for f in functions(request.tools, self.model)]
            if choice := tool_choice(request.tool_choice, self.model):
                if thinking is not None and _CHOICES[choice]["type"] in _FORCING:
                    raise ConfigError(
                        f"{self.model}: tool_choice={choice} cannot be used with thinking on "
                        "(Anthropic refuses a forced tool with extended thinking); use "
                        "tool_choice auto, or turn thinking off")
                body["tool_choice"] = _CHOICES[choice]
        return body, applied

    def streams(self, body: dict[str, Any]) -> bool:
        return self.stream == "always" or (self.stream == "auto"
                                           and body["max_tokens"] > self.stream_above)

    async def generate(self, request: Request) -> Response:
        start = time.perf_counter()
        body, applied = self.body(request)
        call = self._stream if self.streams(body) else self._post
        parts = await gather_parts(call(body, bool(request.tools)) for _ in range(request.n))
        for part in parts:
            if not isinstance(part, RunnerError):
                part.applied = applied
        return merge(parts, request.n, self.price, start)

    async def _post(self, body: dict[str, Any], tools: bool) -> Part:
        return parse_message(await self._transport.send("POST", "/v1/messages", body), tools)

    async def _stream(self, body: dict[str, Any], tools: bool) -> Part:
        events = self._transport.events("/v1/messages", {**body, "stream": True},
                                        total=self.max_wait)
        async with contextlib.aclosing(events):  # returning at message_stop frees the connection
            return await self._assemble(events, tools)

    async def _assemble(self, events: AsyncIterator[tuple[str, Any]], tools: bool) -> Part:
        message: dict[str, Any] | None = None
        async for event, data in events:
            kind = data.get("type", event) if isinstance(data, dict) else event
            if kind == "error":
                error = data.get("error") or {}
                raise RunnerError(f"stream error: {error.get('type')}: {error.get('message')}",
                                  retryable=error.get("type") in _RETRYABLE_STREAM_ERRORS)
            if kind == "message_start":
                message = dict(data["message"])
                message["content"] = list(message.get("content") or [])
            elif message is None:
                continue  # nothing to add to before message_start (pings)
            elif kind == "content_block_start":
                message["content"].append(dict(data["content_block"]))
            elif kind == "content_block_delta":
                _apply_delta(message["content"][data["index"]], data["delta"])
            elif kind == "message_delta":
                message.update(data.get("delta") or {})  # stop_reason, stop_sequence
                message["usage"] = {**(message.get("usage") or {}), **(data.get("usage") or {})}
            elif kind == "message_stop":
                return parse_message(message, tools)
        raise RunnerError("stream ended before message_stop", retryable=True)

    async def aclose(self) -> None:
        await self._transport.aclose()


def _apply_delta(block: dict[str, Any], delta: dict[str, Any]) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature")
    elif kind == "input_json_delta":  # a tool call's arguments, as the model writes them
        block[_WRITTEN] = block.get(_WRITTEN, "") + (delta.get("partial_json") or "")


_WRITTEN = "_arguments_as_written"  # on a streamed tool_use block until it is parsed


def anthropic_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The turns (system split off) as Messages API messages: an assistant turn this
    family made is its own content blocks, verbatim; tool answers are tool_result blocks,
    first in one user turn (a user message right after them joins that turn)."""
    out: list[dict[str, Any]] = []
    for role, m in turns(messages):
        if role == "tool":
            out.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": a.call_id, "content": a.text} for a in m]})
            continue
        own = own_items(m, FAMILY) if role == "assistant" else None
        if own is not None:
            out.append({"role": "assistant", "content": own})
        elif role == "assistant" and m.get("tool_calls"):
            text = content_text(m.get("content"))
            out.append({"role": "assistant", "content": (
                [{"type": "text", "text": text}] if text else []) + [
                {"type": "tool_use", "id": c.id, "name": c.name,
                 "input": arguments_object(c.arguments)} for c in calls_of(m)]})
        elif role == "user" and out and out[-1]["role"] == "user" \
                and isinstance(out[-1]["content"], list):
            out[-1]["content"].append({"type": "text", "text": content_text(m.get("content"))})
        else:
            out.append(without_provider_item(m))
    return out


def parse_message(data: Any, tools: bool = False) -> Part:
    """One Messages API message as a completion; with ``tools`` its content blocks are
    kept as the completion's provider items."""
    content = data.get("content") if isinstance(data, dict) else None
    if not isinstance(content, list) or not content:
        raise RunnerError(f"message has no content: {str(data)[:120]}", retryable=True)
    thoughts, texts, calls = [], [], []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "thinking":
            thoughts.append(block.get("thinking") or "")
        elif kind == "redacted_thinking":  # encrypted by the provider: there, but unreadable
            thoughts.append("[redacted thinking]")
        elif kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append(ToolCall(str(block.get("id") or ""), str(block.get("name") or ""),
                                  _arguments(block)))
    stop = data.get("stop_reason")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cached + (usage.get("cache_creation_input_tokens")
                                                         or 0)
    details = usage.get("output_tokens_details") or {}
    return Part([Completion("".join(texts), "\n\n".join(thoughts) if thoughts else None,
                            _FINISH.get(stop, stop), calls or None,
                            provider_items(FAMILY, content) if tools else None)],
                Usage(prompt, usage.get("output_tokens") or 0,
                      details.get("thinking_tokens") or 0, cached))


def _arguments(block: dict[str, Any]) -> str:
    """A tool_use block's arguments as JSON text: as streamed (a malformed one as
    written; the block keeps the object parsed from it, or its empty start), else the
    input object the API parsed."""
    written = block.pop(_WRITTEN, None)
    if written is not None:
        try:
            block["input"] = orjson.loads(written or "{}")
        except orjson.JSONDecodeError:
            pass
        return written or "{}"
    value = block.get("input")
    return arguments_text(value)
