"""A fake OpenAI Responses API server: ``POST /v1/responses``, ``GET /v1/responses/{id}``.

Answers carry a reasoning item (the reply's ``reasoning_content`` as one summary
part, when the request asks for a summary) and a message item; ``usage`` has
``output_tokens_details.reasoning_tokens`` and ``input_tokens_details.cached_tokens``;
``reasoning.effort`` is echoed back, through ``effort_map`` (a provider that silently
runs medium as high: ``effort_map={"medium": "high"}``). An answer cut at
``max_output_tokens`` has status ``incomplete``.

Tool calls: a reply's ``tool_calls`` become ``function_call`` output items (``fc_`` id,
``call_`` call_id) after the reasoning item; with ``include:
["reasoning.encrypted_content"]`` the reasoning item carries encrypted content. The
input is checked as the API checks it (400): tools must be flat function tools; a
reasoning item sent back unstored must carry its encrypted content, unaltered, and be
followed by an item of its answer (a function call or an assistant message); a
``function_call`` this server made must come after the reasoning item of its turn; a
``function_call_output`` needs an earlier ``function_call`` with its call_id, and every
call needs its output.

Background mode (``"background": true``): the POST answers ``queued`` with an id; each
GET answers ``in_progress`` for the first ``polls`` reads, then the finished response.
With ``hold=True`` it stays in progress until ``release()``. Responses live in the
server, so a client killed mid-poll can come back for them. Faults (see evals.fake_native)
apply to POSTs and GETs alike.

    with FakeResponses(script={...}, polls=2) as srv:
        runner = make_runner("openai-responses/o3", base_url=srv.url, background="true")
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from aiohttp import web

from evals.fake_native import NativeFake, sign, words
from evals.fake_openai import _text


class FakeResponses(NativeFake):
    def __init__(self, *args: Any, polls: int = 1, hold: bool = False,
                 effort_map: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.polls, self.hold, self.effort_map = polls, hold, effort_map or {}
        self.stored: dict[str, dict[str, Any]] = {}  # id -> {"final", "polls", "held"}
        self.gets = 0
        self._resp_ids = itertools.count(1)
        self._store_lock = threading.Lock()

    def release(self) -> None:
        """Let every held background response finish at its next read."""
        with self._store_lock:
            for entry in self.stored.values():
                entry["held"] = False

    @staticmethod
    def tool_results(body: dict[str, Any]) -> list[str]:
        """The outputs of the function_call_output items the request carries."""
        items = body.get("input") if isinstance(body.get("input"), list) else []
        return [str(i.get("output")) for i in items if i.get("type") == "function_call_output"]

    def _check(self, body: dict[str, Any], items: list[dict[str, Any]]) -> None:
        for i, tool in enumerate(body.get("tools") or ()):
            if tool.get("type") == "function" and not tool.get("name"):
                raise self.invalid(f"Missing required parameter: 'tools[{i}].name'.")
        reasoning_seen, calls, unanswered = set(), set(), []
        for i, item in enumerate(items):
            kind = item.get("type")
            if kind == "reasoning":
                rid = item.get("id")
                after = items[i + 1] if i + 1 < len(items) else {}
                if after.get("type") != "function_call" and after.get("role") != "assistant":
                    raise self.invalid(f"Item '{rid}' of type 'reasoning' was provided without "
                                       "its required following item.")
                if not body.get("store", True) and "encrypted_content" not in item:
                    raise self.invalid(f"Item with id '{rid}' not found. Items are not "
                                       "persisted when `store` is set to false. Try again "
                                       "with `store` set to true, or remove this item from "
                                       "your input.")
                if "encrypted_content" in item and item["encrypted_content"] != sign(str(rid)):
                    raise self.invalid(f"The encrypted content for item {rid} could not be "
                                       "verified.")
                reasoning_seen.add(rid)
            elif kind == "function_call":
                fid = str(item.get("id") or "")
                if fid.startswith("fc_resp_fake"):  # one of ours: it had a reasoning item
                    needed = "rs_" + fid[3:].rsplit("_", 1)[0]
                    if needed not in reasoning_seen:
                        raise self.invalid(f"Item '{fid}' of type 'function_call' was provided "
                                           f"without its required 'reasoning' item: "
                                           f"'{needed}'.")
                calls.add(item.get("call_id"))
                unanswered.append(item.get("call_id"))
            elif kind == "function_call_output":
                if item.get("call_id") not in calls:
                    raise self.invalid("No tool call found for function call output with "
                                       f"call_id {item.get('call_id')}.")
                if item.get("call_id") in unanswered:
                    unanswered.remove(item.get("call_id"))
        if unanswered:
            raise self.invalid(f"No tool output found for function call {unanswered[0]}.")

    def _completion(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        messages = body.get("input") if isinstance(body.get("input"), list) else [
            {"role": "user", "content": body.get("input") or ""}]
        self._check(body, messages)
        prompt = next((_text(m.get("content")) for m in reversed(messages)
                       if m.get("role") == "user"), "")
        reasoning = body.get("reasoning") or {}
        summary = reasoning.get("summary") not in (None, "none")
        encrypted = "reasoning.encrypted_content" in (body.get("include") or ())
        output: list[dict[str, Any]] = []
        usage = {"input_tokens": 0, "output_tokens": 0}
        status, reason = "completed", None
        rid = f"resp_fake{next(self._resp_ids)}"
        for a in self.answers(body, prompt, n, body.get("max_output_tokens"), think=True):
            output.append({"type": "reasoning", "id": f"rs_{rid}", "summary": [
                {"type": "summary_text", "text": a.reasoning}] if summary and a.reasoning else [],
                **({"encrypted_content": sign(f"rs_{rid}")} if encrypted else {})})
            if a.text or not (a.length or a.calls):
                output.append({"type": "message", "id": f"msg_{rid}", "role": "assistant",
                               "status": "completed", "content": [
                                   {"type": "output_text", "text": a.text, "annotations": []}]})
            output += [{"type": "function_call", "id": f"fc_{rid}_{i}",
                        "call_id": f"call_{rid}_{i}", "name": c.name, "arguments": c.arguments,
                        "status": "completed"} for i, c in enumerate(a.calls)]
            if a.length:
                status, reason = "incomplete", "max_output_tokens"
            prompt_tokens = sum(words(_text(m.get("content")) + " " + str(m.get("output") or "")
                                      + " " + str(m.get("arguments") or "")) for m in messages)
            usage = {"input_tokens": a.usage("prompt_tokens", prompt_tokens),
                     "input_tokens_details": {"cached_tokens": a.usage("cached_tokens", 0)},
                     "output_tokens": a.usage("completion_tokens", a.out_tokens),
                     "output_tokens_details": {
                         "reasoning_tokens": a.usage("reasoning_tokens", a.think_tokens)}}
        effort = reasoning.get("effort") or "medium"
        final = {"id": rid, "object": "response", "created_at": int(time.time()),
                 "model": body.get("model"), "status": status, "output": output, "usage": usage,
                 "incomplete_details": {"reason": reason} if reason else None, "error": None,
                 "reasoning": {"effort": self.effort_map.get(effort, effort),
                               "summary": reasoning.get("summary")},
                 "background": bool(body.get("background"))}
        if not body.get("background"):
            return final
        with self._store_lock:
            self.stored[rid] = {"final": final, "polls": self.polls, "held": self.hold}
        return {**final, "status": "queued", "output": [], "usage": None,
                "incomplete_details": None}

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self.gets += 1
        if refused := self._refuse(request):
            return refused
        fault = self._take_fault("", {})
        if fault is not None:
            return await self._fault(request, fault, {})
        with self._store_lock:
            entry = self.stored.get(request.match_info["rid"])
            if entry is None:
                return self.json(self.error_body(404, "No response found (fake)"), 404)
            if entry["held"] or entry["polls"] > 0:
                entry["polls"] -= 1
                return self.json({**entry["final"], "status": "in_progress", "output": [],
                                  "usage": None, "incomplete_details": None})
            return self.json(entry["final"])

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/responses", self._chat)
        app.router.add_get("/v1/responses/{rid}", self._get)
