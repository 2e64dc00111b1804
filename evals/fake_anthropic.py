"""A fake Anthropic Messages API server: ``POST /v1/messages``, plain or streamed (SSE).

It checks what the real API checks before answering: the ``x-api-key`` (when
``api_key`` is set) and ``anthropic-version`` headers, ``max_tokens`` present,
``thinking.budget_tokens`` at least 1024 and below ``max_tokens``, no temperature but 1
and no ``tool_choice`` that forces a call (``any``, ``tool``) with thinking; a bad request gets a 400 in Anthropic's error shape. With thinking on
(``enabled`` or ``adaptive``) an answer has a thinking block (the reply's
``reasoning_content``), a redacted_thinking block when the reply has ``redacted``, and
a text block; usage has ``cache_read_input_tokens`` and
``output_tokens_details.thinking_tokens``. Stop sequences cut the text. Thinking
blocks are signed (``sign``) and redacted_thinking data too.

Tool use: a reply's ``tool_calls`` become ``tool_use`` blocks (``toolu_`` ids; streamed
as ``input_json_delta`` pieces of the arguments as scripted), stop reason ``tool_use``;
with thinking on such an answer always starts with a thinking block. The conversation
is checked as the API checks it (400): tools need ``name`` and ``input_schema``; every
``tool_use`` needs a ``tool_result`` in the next user turn and every ``tool_result`` a
``tool_use`` in the turn before; thinking and redacted_thinking blocks sent back must
be unaltered; with thinking on, the assistant turn before the last tool results must
start with its thinking block. Streamed
answers come as the real event sequence (message_start, content_block_start/delta/stop,
message_delta, message_stop, with a ping). Extra fault kinds: "529" (overloaded) and
"stream_error" (an error event in the middle of a stream).

``url`` has no ``/v1``: it is what ANTHROPIC_BASE_URL holds.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson
from aiohttp import web

from evals.fake_native import NativeFake, sign, words
from evals.fake_openai import _Fault, _last_user, _text

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          429: "rate_limit_error", 500: "api_error", 503: "api_error", 529: "overloaded_error"}
EXTRA_FAULTS = ("529", "stream_error")


class FakeAnthropic(NativeFake):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._msg_ids = itertools.count(1)
        self.streamed = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def inject(self, kind: str, times: int = 1, match: str | None = None, **kw: Any) -> None:
        if kind not in EXTRA_FAULTS:
            return super().inject(kind, times, match, **kw)
        with self._lock:
            self._faults.append(_Fault(kind, times, match, kw))

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": _TYPES.get(status, "api_error"),
                                           "message": message}}

    def _refuse(self, request: web.Request) -> web.Response | None:
        if refused := self._refuse_header(request, "x-api-key"):
            return refused
        if "anthropic-version" not in request.headers:
            return self.json(self.error_body(400, "anthropic-version header is required"), 400)
        return None

    async def _fault(self, request: web.Request, f, body: dict[str, Any]) -> web.StreamResponse:
        if f.kind == "529":
            return self.json(self.error_body(529, "Overloaded (fake)"), 529)
        if f.kind == "stream_error":  # only meaningful when streamed; plain: an overload
            if body.get("stream"):
                return await self._send_stream(request, self._completion(body, 1), fail=True)
            return self.json(self.error_body(529, "Overloaded (fake)"), 529)
        return await super()._fault(request, f, body)

    def _check(self, body: dict[str, Any]) -> None:
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise self.invalid("max_tokens: Field required")
        thinking = body.get("thinking") or {"type": "disabled"}
        kind = thinking.get("type")
        if kind not in ("enabled", "disabled", "adaptive"):
            raise self.invalid(f"thinking.type: unknown {kind!r}")
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise self.invalid("thinking.enabled.budget_tokens: Input should be greater "
                                   "than or equal to 1024")
            if budget >= max_tokens:
                raise self.invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
        if kind != "disabled" and body.get("temperature") not in (None, 1, 1.0):
            raise self.invalid("`temperature` may only be set to 1 when thinking is enabled")
        if kind != "disabled" and (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
            raise self.invalid("Thinking may not be enabled when tool_choice forces tool use.")
        if not body.get("messages"):
            raise self.invalid("messages: at least one message is required")
        for i, tool in enumerate(body.get("tools") or ()):
            for key in ("name", "input_schema"):
                if key not in tool:
                    raise self.invalid(f"tools.{i}.custom.{key}: Field required")
        self._check_turns(body["messages"], kind != "disabled")

    def _check_turns(self, messages: list[dict[str, Any]], thinking: bool) -> None:
        last_results = None  # the index of the last user turn with tool results
        for i, m in enumerate(messages):
            blocks = _blocks(m)
            if m.get("role") == "assistant":
                for j, b in enumerate(blocks):
                    if b.get("type") == "thinking" and \
                            b.get("signature") != sign(b.get("thinking") or ""):
                        raise self.invalid(f"messages.{i}.content.{j}: Invalid `signature` in "
                                           "`thinking` block")
                    if b.get("type") == "redacted_thinking" and not _redacted_ok(b.get("data")):
                        raise self.invalid(f"messages.{i}.content.{j}: Invalid `data` in "
                                           "`redacted_thinking` block")
                uses = _ids(blocks, "tool_use", "id")
                after = _ids(_blocks(messages[i + 1]), "tool_result", "tool_use_id") \
                    if i + 1 < len(messages) else []
                if missing := [u for u in uses if u not in after]:
                    raise self.invalid(
                        f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                        f"immediately after: {', '.join(missing)}. Each `tool_use` block must "
                        "have a corresponding `tool_result` block in the next message.")
            elif results := _ids(blocks, "tool_result", "tool_use_id"):
                before = _ids(_blocks(messages[i - 1]), "tool_use", "id") if i else []
                if unexpected := [r for r in results if r not in before]:
                    raise self.invalid(
                        f"messages.{i}.content.0: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {unexpected[0]}. Each `tool_result` block must "
                        "have a corresponding `tool_use` block in the previous message.")
                last_results = i
        if thinking and last_results and last_results == len(messages) - 1:
            first = (_blocks(messages[last_results - 1]) or [{}])[0].get("type")
            if first not in ("thinking", "redacted_thinking"):
                raise self.invalid(
                    f"messages.{last_results - 1}.content.0.type: Expected `thinking` or "
                    f"`redacted_thinking`, but found `{first}`. When `thinking` is enabled, a "
                    "final `assistant` message must start with a thinking block (preceeding "
                    "the lastmost set of `tool_use` and `tool_result` blocks).")

    @staticmethod
    def tool_results(body: dict[str, Any]) -> list[str]:
        """The contents of the tool_result blocks the request carries."""
        return [_text(b.get("content")) if isinstance(b.get("content"), list)
                else str(b.get("content") or "")
                for m in body.get("messages") or () for b in _blocks(m)
                if b.get("type") == "tool_result"]

    def _completion(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        self._check(body)
        think = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
        content: list[dict[str, Any]] = []
        stop_reason, stop_sequence = "end_turn", None
        usage: dict[str, Any] = {}
        system = body.get("system")
        prompt_tokens = words(_text(system) if system else "") + sum(
            _words(m.get("content")) for m in body.get("messages") or [])
        mid = f"msg_fake{next(self._msg_ids)}"
        for a in self.answers(body, _last_user(body), n, body["max_tokens"], think):
            if a.reasoning is not None or (think and a.calls):
                thought = a.reasoning or ""
                content.append({"type": "thinking", "thinking": thought,
                                "signature": sign(thought)})
            if a.reply.get("redacted"):
                content.append({"type": "redacted_thinking", "data": _redacted(mid)})
            text = a.text
            for s in body.get("stop_sequences") or ():
                if s in text:
                    text, stop_reason, stop_sequence = text[:text.index(s)], "stop_sequence", s
            if text or not a.calls:
                content.append({"type": "text", "text": text})
            content += [{"type": "tool_use", "id": f"toolu_{mid}_{i}", "name": c.name,
                         "input": c.object()} for i, c in enumerate(a.calls)]
            if a.calls:
                stop_reason = "tool_use"
            if a.length:
                stop_reason = "max_tokens"
            cached = a.usage("cached_tokens", 0)
            usage = {"input_tokens": a.usage("prompt_tokens", prompt_tokens) - cached,
                     "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached,
                     "output_tokens": a.usage("completion_tokens", a.out_tokens),
                     "output_tokens_details": {
                         "thinking_tokens": a.usage("reasoning_tokens", a.think_tokens)}}
        return {"id": mid, "type": "message", "role": "assistant",
                "model": body.get("model"), "content": content, "stop_reason": stop_reason,
                "stop_sequence": stop_sequence, "usage": usage}

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())  # aiohttp keeps the bytes for _chat
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict) or not body.get("stream"):
            return await self._chat(request)
        return await self._streamed(request, body)

    async def _streamed(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if refused := self._refuse(request):
                return refused
            if self.record:
                self.requests.append(body)
            fault = self._take_fault(_last_user(body), body)
            if fault is not None:
                return await self._fault(request, fault, body)
            if self.latency:
                await asyncio.sleep(self.latency)
            return await self._send_stream(request, self._completion(body, 1))
        finally:
            self.in_flight -= 1
            self.count += 1

    async def _send_stream(self, request: web.Request, message: dict[str, Any],
                           fail: bool = False) -> web.StreamResponse:
        self.streamed += 1
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await resp.write(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data)
                             + b"\n\n")

        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
                 "usage": {**usage, "output_tokens": 1}}
        await event("message_start", {"type": "message_start", "message": start})
        await event("ping", {"type": "ping"})
        for i, block in enumerate(message["content"]):
            kind = block["type"]
            empty = {"thinking": {"type": "thinking", "thinking": ""},
                     "text": {"type": "text", "text": ""},
                     "tool_use": {**block, "input": {}}}.get(kind, block)
            await event("content_block_start", {"type": "content_block_start", "index": i,
                                                 "content_block": empty})
            if fail and kind == "text":
                await event("error", {"type": "error", "error": {
                    "type": "overloaded_error", "message": "Overloaded (fake)"}})
                return resp
            field = {"thinking": "thinking", "text": "text"}.get(kind)
            if field:
                for piece in _pieces(block[field]):
                    await event("content_block_delta", {
                        "type": "content_block_delta", "index": i,
                        "delta": {"type": f"{kind}_delta", field: piece}})
            if kind == "tool_use":  # the arguments as written, in pieces
                raw = block["input"] if isinstance(block["input"], str) \
                    else orjson.dumps(block["input"]).decode()
                for k in range(0, len(raw), 8):
                    await event("content_block_delta", {
                        "type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": raw[k:k + 8]}})
            if kind == "thinking":
                await event("content_block_delta", {
                    "type": "content_block_delta", "index": i,
                    "delta": {"type": "signature_delta", "signature": block["signature"]}})
            await event("content_block_stop", {"type": "content_block_stop", "index": i})
        await event("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
            "usage": {"output_tokens": usage["output_tokens"],
                      "output_tokens_details": usage["output_tokens_details"]}})
        await event("message_stop", {"type": "message_stop"})
        return resp

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)


def _pieces(text: str, size: int = 3) -> list[str]:
    """Text in deltas of a few words, spaces kept, as a stream sends it."""
    tokens = text.split(" ")
    return [" ".join(tokens[i:i + size]) + (" " if i + size < len(tokens) else "")
            for i in range(0, len(tokens), size)] or [""]



def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _ids(blocks: list[dict[str, Any]], kind: str, key: str) -> list[str]:
    return [b.get(key) for b in blocks if b.get("type") == kind]


def _words(content: Any) -> int:
    """Prompt words of a message's content: text, tool calls and their results."""
    if not isinstance(content, list):
        return words(_text(content))
    return sum(words(str(b.get("text") or b.get("thinking") or "")) + _words(b.get("content"))
               + (words(orjson.dumps(b["input"]).decode()) if "input" in b else 0)
               for b in content if isinstance(b, dict))


def _redacted(nonce: str) -> str:
    return f"{nonce}.{sign('redacted', nonce)}"


def _redacted_ok(data: Any) -> bool:
    nonce, _, signature = str(data).partition(".")
    return signature == sign("redacted", nonce)
