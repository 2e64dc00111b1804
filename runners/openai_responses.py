"""``openai-responses/MODEL``: OpenAI's Responses API (``POST {base}/responses``).

A family of its own rather than an option of ``openai/``: the body, the answer and
the options differ (no ``n``, no ``stop``, no ``seed``; reasoning summaries;
background mode), and every OpenAI-compatible server speaks chat completions while
few speak this. docs/providers.md has the table of what each model family takes.

* ``--effort`` becomes ``reasoning.effort``; the effort the answer echoes back is
  recorded as the applied one. OpenAI's models take no token budget, so
  ``--thinking-budget`` is refused.
* ``reasoning.summary`` (``-M summary=auto``) asks for the reasoning summaries, which
  become the completion's reasoning.
* ``n`` samples are n requests. Stop strings are applied to the returned text (the
  API takes none; the tokens after them are still paid).
* Tools (``Request.tools``, OpenAI's chat form) become flat function tools, the
  conversation's tool calls and answers ``function_call`` and ``function_call_output``
  input items (paired by ``call_id``); the answer's ``function_call`` items become
  ``ToolCall``s. Each turn's output items (reasoning with its ``encrypted_content``,
  asked for through ``include`` since responses are not stored, then the calls) are
  the completion's provider items, sent back verbatim in their place on the next
  turn: a reasoning model's function call must come with the reasoning that made it.
  A reasoning item with nothing after it (an answer cut at ``max_output_tokens`` while
  reasoning) is left out, as the API refuses it without its following item, and a
  turn left with nothing is not sent at all.
* Background mode (``-M background=auto``: on for the ``-pro`` models, which need it)
  creates the response, stores its id in a journal on disk (runners/attach.py) and
  polls ``GET {base}/responses/{id}`` until it is finished; a run resumed after a
  kill finds the id and polls it instead of paying for a new one.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from evals.cache import default_cache_dir
from evals.prices import find_price, load_prices
from evals.runner import (Completion, ConfigError, Request, Response, RunnerError, ToolCall,
                          Usage, own_items, provider_items, without_provider_item)
from evals.task import is_true
from runners.attach import ResponseJournal
from runners.native import (Family, JsonTransport, Part, check_options, content_text,
                            cut_at_stop, find_family, gather_parts, merge, need_name,
                            resolve_key)
from runners.tool_wire import calls_of, functions, tool_choice, turns

OPENAI_URL = "https://api.openai.com/v1"
_NO_BUDGET = "; OpenAI's reasoning models take --effort instead of a token budget"
_REASONING = ("low", "medium", "high")
# First match wins: the more specific patterns come first. background: the family needs
# background mode (its answers take longer than a connection is kept open).
FAMILIES = (
    Family("o1-pro*", _REASONING, instead=_NO_BUDGET, extra={"background": True}),
    Family("o3-pro*", _REASONING, instead=_NO_BUDGET, extra={"background": True}),
    Family("gpt-5*-pro*", ("high",), instead=_NO_BUDGET, extra={"background": True}),
    Family("o1*", _REASONING, instead=_NO_BUDGET),
    Family("o3*", _REASONING, instead=_NO_BUDGET),
    Family("o4-mini*", _REASONING, instead=_NO_BUDGET),
    Family("gpt-5.1*", ("none",) + _REASONING, instead=_NO_BUDGET),
    Family("gpt-5.2*", ("none",) + _REASONING + ("xhigh",), instead=_NO_BUDGET),
    Family("gpt-5*", ("minimal",) + _REASONING, instead=_NO_BUDGET),
    Family("gpt-4*", (), instead="; it is not a reasoning model"),
)
SUMMARIES = ("auto", "concise", "detailed", "none")
FAMILY = "openai-responses"
_RUNNING = ("queued", "in_progress")


def make_runner(name: str, **options: Any) -> "ResponsesRunner":
    need_name("openai-responses", name, "o3")
    return ResponsesRunner(name, **options)


class ResponsesRunner:
    enforces_timeout = True  # each HTTP call carries its own timeout; polling has max_wait

    def __init__(self, name: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0, summary: str = "auto", background: str = "auto",
                 poll: float = 2.0, max_wait: float = 3 * 3600.0, attach_dir: str | None = None,
                 prices: str | None = None, **unknown: Any):
        check_options("openai-responses", unknown,
                      "base_url, timeout, summary, background, poll, max_wait, attach_dir, prices")
        if summary not in SUMMARIES:
            raise ConfigError(f"summary must be one of {', '.join(SUMMARIES)}")
        self.name = name
        self.model = f"openai-responses/{name}"
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        key = resolve_key(api_key, ("OPENAI_API_KEY",), self.base_url, OPENAI_URL)
        self.family = find_family(name, FAMILIES)
        # a model the table knows to take no effort is not a reasoning model
        self.reasons = not (self.family and not self.family.efforts)
        family_background = bool(self.family and self.family.extra.get("background"))
        self.background = family_background if background == "auto" else is_true(background)
        self.summary = summary
        self.poll, self.max_wait = float(poll), float(max_wait)
        self.price = find_price(name, load_prices(prices))
        self.cache_identity = f"{self.model}@{self.base_url}|{summary}"
        self._transport = JsonTransport(self.base_url, {"Authorization": f"Bearer {key}"},
                                        float(timeout))
        self._attach_dir = Path(attach_dir).expanduser() if attach_dir else default_cache_dir()
        self._journal: ResponseJournal | None = None

    def __repr__(self) -> str:
        return f"ResponsesRunner({self.model!r}, base_url={self.base_url!r})"

    def body(self, request: Request) -> dict[str, Any]:
        if request.thinking_budget is not None:
            raise ConfigError(f"{self.name} takes no --thinking-budget{_NO_BUDGET}")
        body: dict[str, Any] = {"model": self.name, "input": responses_input(request.messages),
                                "store": self.background}  # background needs stored responses
        if request.max_tokens is not None:
            body["max_output_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        reasoning: dict[str, Any] = {}
        if request.effort is not None:
            reasoning["effort"] = (self.family.effort(self.name, request.effort)
                                   if self.family else request.effort)
        if self.summary != "none" and self.reasons:
            reasoning["summary"] = self.summary
        if reasoning:
            body["reasoning"] = reasoning
        if self.background:
            body["background"] = True
        if request.tools:
            body["tools"] = [{"type": "function", "name": f.name,
                              **({"description": f.description} if f.description else {}),
                              "parameters": f.parameters or {"type": "object", "properties": {}},
                              "strict": bool(f.strict)}  # the API's default is strict schemas
                             for f in functions(request.tools, self.model)]
            if choice := tool_choice(request.tool_choice, self.model):
                body["tool_choice"] = choice
            if self.reasons:  # what lets the reasoning go back unstored on the next turn
                body["include"] = ["reasoning.encrypted_content"]
        return body

    async def generate(self, request: Request) -> Response:
        start = time.perf_counter()
        body = self.body(request)
        # each generation re-attaches to its own background response after a kill
        parts = await gather_parts(
            self._one(body, request.cache_key(self.cache_identity, request.generation(i)), request)
            for i in range(request.n))
        return merge(parts, request.n, self.price, start)

    async def _one(self, body: dict[str, Any], key: str, request: Request) -> Part:
        if not self.background:
            return parse_response(await self._transport.send("POST", "/responses", body),
                                  request.stop, bool(request.tools))
        journal = self._open_journal()
        response_id = journal.claim(key)
        data = None
        try:
            if response_id is not None:
                data = await self._attach(response_id)
            if data is None:
                data = await self._transport.send("POST", "/responses", body)
                response_id = data.get("id") if isinstance(data, dict) else None
                if not isinstance(response_id, str):
                    raise RunnerError(f"background response has no id: {str(data)[:120]}",
                                      retryable=True)
                journal.add(key, response_id)
            data = await self._wait(response_id, data)
            journal.drop(response_id)  # finished, whatever its status: never polled again
            return parse_response(data, request.stop, bool(request.tools))
        finally:
            if response_id is not None:
                journal.release(response_id)

    async def _attach(self, response_id: str) -> dict[str, Any] | None:
        """The stored response, or None when the provider no longer has it."""
        try:
            return await self._transport.send("GET", f"/responses/{response_id}")
        except RunnerError as e:
            if e.status == 404:
                self._open_journal().drop(response_id)
                return None
            raise

    async def _wait(self, response_id: str, data: Any) -> dict[str, Any]:
        deadline = time.monotonic() + self.max_wait
        delay = self.poll
        while isinstance(data, dict) and data.get("status") in _RUNNING:
            if time.monotonic() > deadline:
                # Kept in the journal: the orchestrator's retry, or a resumed run, attaches.
                raise RunnerError(f"response {response_id} still {data['status']} after "
                                  f"{self.max_wait:g}s", retryable=True)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, max(self.poll, 30.0))
            data = await self._transport.send("GET", f"/responses/{response_id}")
        return data

    def _open_journal(self) -> ResponseJournal:
        if self._journal is None:
            self._journal = ResponseJournal(self._attach_dir)
        return self._journal

    async def aclose(self) -> None:
        await self._transport.aclose()
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def responses_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as Responses input items. An assistant turn this family made is
    its own output items, verbatim (reasoning before the calls it made); another is
    rebuilt from its text and tool calls."""
    items: list[dict[str, Any]] = []
    for role, m in turns(messages):
        if role == "tool":
            items += [{"type": "function_call_output", "call_id": a.call_id, "output": a.text}
                      for a in m]
            continue
        own = own_items(m, FAMILY) if role == "assistant" else None
        if own is not None:
            items += own
        elif role == "assistant" and not m.get("tool_calls") \
                and not content_text(m.get("content")):
            continue  # a turn that said nothing: there is nothing to send
        elif role == "assistant" and m.get("tool_calls"):
            if text := content_text(m.get("content")):
                items.append({"role": "assistant", "content": text})
            items += [{"type": "function_call", "call_id": c.id, "name": c.name,
                       "arguments": c.arguments} for c in calls_of(m)]
        else:
            items.append(without_provider_item(m))
    return items


def parse_response(data: Any, stop: list[str] | None = None, tools: bool = False) -> Part:
    """One Responses API response object as a completion; with ``tools`` its output items
    are kept as the completion's provider items."""
    if not isinstance(data, dict) or not isinstance(data.get("output"), list):
        raise RunnerError(f"response has no output list: {str(data)[:120]}", retryable=True)
    status = data.get("status")
    if status in ("failed", "cancelled"):
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        raise RunnerError(f"response {status}: {error.get('message') or error.get('code') or ''}",
                          retryable=status == "cancelled" or error.get("code") == "server_error")
    summaries, texts, calls = [], [], []
    for item in data["output"]:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "reasoning":
            # Summaries from OpenAI's models; raw reasoning text from servers that return it.
            for piece in (item.get("summary") or []) + (item.get("content") or []):
                if isinstance(piece, dict) and piece.get("text"):
                    summaries.append(piece["text"])
        elif item.get("type") == "message":
            for piece in item.get("content") or []:
                if isinstance(piece, dict) and piece.get("type") in ("output_text", "refusal"):
                    texts.append(piece.get("text") or piece.get("refusal") or "")
        elif item.get("type") == "function_call":
            arguments = item.get("arguments")  # JSON text as the model wrote it
            calls.append(ToolCall(str(item.get("call_id") or item.get("id") or ""),
                                  str(item.get("name") or ""),
                                  arguments if isinstance(arguments, str) else ""))
    if status == "completed" and not texts and not summaries and not calls:
        raise RunnerError("response completed with no output", retryable=True)
    text, stopped = cut_at_stop("".join(texts), stop)
    finish = "tool_calls" if calls else "stop"
    if status == "incomplete" and not stopped:
        reason = (data.get("incomplete_details") or {}).get("reason")
        finish = "length" if reason == "max_output_tokens" else (reason or "incomplete")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    in_details = usage.get("input_tokens_details") or {}
    out_details = usage.get("output_tokens_details") or {}
    echoed = (data.get("reasoning") or {}).get("effort") if isinstance(data.get("reasoning"),
                                                                       dict) else None
    kept = _answered(data["output"])
    return Part([Completion(text, "\n\n".join(summaries) or None, finish, calls or None,
                            provider_items(FAMILY, kept) if tools and kept else None)],
                Usage(usage.get("input_tokens") or 0, usage.get("output_tokens") or 0,
                      out_details.get("reasoning_tokens") or 0,
                      in_details.get("cached_tokens") or 0),
                {"effort": echoed, "source": "provider"} if echoed else None)


def _answered(output: list[Any]) -> list[Any]:
    """The output without the reasoning items it ends with: such an item has no
    following item (the answer was cut while reasoning), and the API refuses it back."""
    end = len(output)
    while end and isinstance(output[end - 1], dict) and output[end - 1].get("type") == "reasoning":
        end -= 1
    return output[:end]
