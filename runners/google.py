"""``google/MODEL``: the Gemini API's ``generateContent``
(``POST {base}/v1beta/models/MODEL:generateContent``).

Thoughts and their token counts come back only in this format, not in the
OpenAI-compatible one; docs/providers.md has the table of what each family takes.

* Gemini 2.5 takes a thinking budget: ``--thinking-budget B`` becomes
  ``thinkingConfig.thinkingBudget``, clamped into the family's range (recorded as the
  applied budget); 0 turns thinking off where the family allows it, -1 lets the model
  choose. ``--effort`` is refused.
* Gemini 3 takes a thinking level: ``--effort E`` becomes ``thinkingLevel`` (the
  levels the family has); ``--thinking-budget`` is refused, so that one family's
  settings stay on one scale.
* ``includeThoughts`` is always asked for: thought parts become the completion's
  reasoning, ``usageMetadata.thoughtsTokenCount`` its reasoning tokens (billed as output).
* Tools (``Request.tools``, OpenAI's chat form) become ``functionDeclarations`` (the
  JSON schema as ``parametersJsonSchema``) and ``toolConfig.functionCallingConfig.mode``
  (AUTO, ANY for required, NONE); the conversation's calls become ``functionCall`` parts
  of the model turn and each run of tool answers one user turn of ``functionResponse``
  parts (by name, and by id where the call had one; Gemini's calls usually have none,
  so their ``ToolCall`` ids are made from the response id). A turn's parts are the
  completion's provider items, sent back verbatim: the ``thoughtSignature`` on a
  function call part must come back with it (Gemini 3 refuses the turn without it).
  A turn with nothing to send back (a ``MALFORMED_FUNCTION_CALL`` candidate comes with
  ``content: {}``) is left out of the next request, and the user turns on either side
  of it joined: Gemini refuses a turn with no parts.
* ``n`` samples are ``candidateCount``; a server that returns fewer gets the rest
  asked one at a time, with distinct seeds. ``MAX_TOKENS`` is a length cut; a prompt
  the provider blocks is n empty answers with finish reason ``content_filter``.
"""

from __future__ import annotations

import time
from typing import Any

from evals.prices import find_price, load_prices
from evals.runner import (Completion, ConfigError, Request, Response, RunnerError, ToolCall,
                          Usage, own_items, provider_items)
from runners.native import (Family, JsonTransport, Part, check_options, content_text,
                            find_family, first_env, gather_parts, merge, need_name,
                            resolve_key, split_system)
from runners.tool_wire import (arguments_object, arguments_text, calls_of, functions,
                               tool_choice, turns, unknown_call)

GEMINI_URL = "https://generativelanguage.googleapis.com"
_LEVELS = "; Gemini 3 takes --effort (a thinking level) instead"
_BUDGETS = "; Gemini 2.5 takes --thinking-budget instead"
# First match wins: flash-lite before flash.
FAMILIES = (
    Family("gemini-3*flash*", ("minimal", "low", "medium", "high"), instead=_LEVELS),
    Family("gemini-3*", ("low", "high"), instead=_LEVELS),
    Family("gemini-2.5-pro*", (), (128, 32768), off=False, instead=_BUDGETS),
    Family("gemini-2.5-flash-lite*", (), (512, 24576), off=True, instead=_BUDGETS),
    Family("gemini-2.5-flash*", (), (1, 24576), off=True, instead=_BUDGETS),
    Family("gemini-2.0*", (), instead="; it is not a thinking model"),
    Family("gemini-1.5*", (), instead="; it is not a thinking model"),
)
_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
           "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
           "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter"}
DYNAMIC = -1  # thinkingBudget: the model decides
FAMILY = "google"


def make_runner(name: str, **options: Any) -> "GeminiRunner":
    need_name("google", name, "gemini-2.5-pro")
    return GeminiRunner(name, **options)


class GeminiRunner:
    enforces_timeout = True

    def __init__(self, name: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0, api_version: str = "v1beta",
                 prices: str | None = None, **unknown: Any):
        check_options("google", unknown, "base_url, timeout, api_version, prices")
        self.name = name
        self.model = f"google/{name}"
        self.base_url = (base_url or first_env("GOOGLE_GEMINI_BASE_URL") or GEMINI_URL).rstrip("/")
        # GOOGLE_API_KEY first when both are set, as Google's own SDK does.
        key = resolve_key(api_key, ("GOOGLE_API_KEY", "GEMINI_API_KEY"), self.base_url,
                          GEMINI_URL)
        self.family = find_family(name, FAMILIES)
        self.path = f"/{api_version}/models/{name}:generateContent"
        self.price = find_price(name, load_prices(prices))
        self.cache_identity = f"{self.model}@{self.base_url}/{api_version}"
        self._transport = JsonTransport(self.base_url, {"x-goog-api-key": key}, float(timeout))
        self._fan_out = False  # set once the server answers candidateCount>1 with fewer

    def __repr__(self) -> str:
        return f"GeminiRunner({self.model!r}, base_url={self.base_url!r})"

    def thinking(self, request: Request) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """thinkingConfig, and the applied compute where it differs from the request."""
        config: dict[str, Any] = {"includeThoughts": True}
        family, applied = self.family, None
        if request.effort is not None:
            level = family.effort(self.name, request.effort) if family else request.effort
            config["thinkingLevel"] = level.upper()
        budget = request.thinking_budget
        if budget is not None:
            if budget < DYNAMIC:
                raise ConfigError(f"{self.name}: thinking budget {budget} (-1 lets the model "
                                  "choose, 0 turns thinking off)")
            sent = budget
            if family and (budget != DYNAMIC or family.budget is None):
                sent = family.clamp_budget(self.name, budget)
            if sent != budget:
                applied = {"thinking_budget": sent, "source": "runner"}
            config["thinkingBudget"] = sent
            if sent == 0:
                config["includeThoughts"] = False  # no thoughts to include
        return config, applied

    def body(self, request: Request, n: int, seed: int | None) -> dict[str, Any]:
        system, rest = split_system(request.messages)
        contents = gemini_contents(rest, self.model)
        config: dict[str, Any] = {"thinkingConfig": self.thinking(request)[0]}
        if n != 1:
            config["candidateCount"] = n
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if seed is not None:
            config["seed"] = seed
        if request.stop:
            config["stopSequences"] = request.stop
        body: dict[str, Any] = {"contents": contents, "generationConfig": config}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [
                {"name": f.name, **({"description": f.description} if f.description else {}),
                 # a function that takes nothing declares no schema
                 **({"parametersJsonSchema": f.parameters}
                    if f.parameters and f.parameters.get("properties") else {})}
                for f in functions(request.tools, self.model)]}]
            if choice := tool_choice(request.tool_choice, self.model):
                body["toolConfig"] = {"functionCallingConfig": {"mode": _MODES[choice]}}
        return body

    async def generate(self, request: Request) -> Response:
        start = time.perf_counter()
        applied = self.thinking(request)[1]  # refuses a setting before anything is sent
        if self._fan_out and request.n > 1:
            parts = list(await self._fan(request, request.n, 0))
        else:
            parts = [await self._call(self.body(request, request.n, request.seed_for(0)),
                                      request.n, bool(request.tools))]
            got = len(parts[0].completions)
            if got < request.n:
                self._fan_out = True
                parts += await self._fan(request, request.n - got, got)
        for part in parts:
            if not isinstance(part, RunnerError):
                part.applied = applied
        return merge(parts, request.n, self.price, start)

    async def _fan(self, request: Request, count: int, offset: int) -> list:
        """Completion ``i`` draws from ``request.seed_for(i)``: the seed its generation has
        alone, batched or on resume."""
        return await gather_parts(
            self._call(self.body(request, 1, request.seed_for(offset + i)), 1, bool(request.tools))
            for i in range(count))

    async def _call(self, body: dict[str, Any], n: int, tools: bool) -> Part:
        return parse_generation(await self._transport.send("POST", self.path, body), n, tools)

    async def aclose(self) -> None:
        await self._transport.aclose()


def gemini_contents(messages: list[dict[str, Any]], runner: str) -> list[dict[str, Any]]:
    """The turns (system split off) as Gemini contents: a model turn this family made is
    its own parts, verbatim (thought signatures included); tool answers are one user
    turn of functionResponse parts, named after their calls."""
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # call id -> function name, the latest turn's winning
    with_id: set[str] = set()  # calls whose functionCall part carries its id

    def add(role: str, parts: list[Any]) -> None:
        if not parts:  # a turn that said nothing: Gemini refuses empty parts
            return
        if role == "user" and contents and contents[-1]["role"] == "user":
            contents[-1]["parts"] += parts  # the model turn between them was left out
        else:
            contents.append({"role": role, "parts": parts})

    for role, m in turns(messages):
        if role == "tool":
            parts = []
            for a in m:
                if a.call_id not in names:
                    raise unknown_call(runner, a.call_id)
                answer = {"name": names[a.call_id], "response": {"output": a.text}}
                parts.append({"functionResponse": {
                    **({"id": a.call_id} if a.call_id in with_id else {}), **answer}})
            add("user", parts)
        elif role == "assistant":
            calls = calls_of(m)
            names.update((c.id, c.name) for c in calls)
            own = own_items(m, FAMILY)
            if own is not None:
                parts = own
                with_id.update(p["functionCall"]["id"] for p in own if isinstance(p, dict)
                               and isinstance(p.get("functionCall"), dict)
                               and p["functionCall"].get("id"))
            else:
                text = content_text(m.get("content"))
                parts = ([{"text": text}] if text else []) + [
                    {"functionCall": {"id": c.id, "name": c.name,
                                      "args": arguments_object(c.arguments)}} for c in calls]
                with_id.update(c.id for c in calls)
            add("model", parts)
        else:
            add("user", [{"text": content_text(m.get("content"))}])
    return contents


def parse_generation(data: Any, n: int, tools: bool = False) -> Part:
    """One generateContent answer as up to ``n`` completions; with ``tools`` each keeps
    its parts as its provider items."""
    if not isinstance(data, dict):
        raise RunnerError(f"answer is not an object: {str(data)[:120]}", retryable=True)
    meta = data.get("usageMetadata") if isinstance(data.get("usageMetadata"), dict) else {}
    thoughts = meta.get("thoughtsTokenCount") or 0
    usage = Usage(meta.get("promptTokenCount") or 0,
                  (meta.get("candidatesTokenCount") or 0) + thoughts, thoughts,
                  meta.get("cachedContentTokenCount") or 0)
    candidates = data.get("candidates")
    if not candidates or not isinstance(candidates, list):
        if (data.get("promptFeedback") or {}).get("blockReason"):
            return Part([Completion("", None, "content_filter") for _ in range(n)], usage)
        raise RunnerError(f"answer has no candidates: {str(data)[:120]}", retryable=True)
    completions = []
    for candidate in sorted(candidates, key=lambda c: c.get("index") or 0):
        parts = (candidate.get("content") or {}).get("parts") or []
        thought = [p.get("text") or "" for p in parts if p.get("thought")]
        text = [p.get("text") or "" for p in parts if not p.get("thought")]
        made = (p["functionCall"] for p in parts if isinstance(p.get("functionCall"), dict))
        calls = [_tool_call(call, data.get("responseId"), candidate.get("index") or 0, i)
                 for i, call in enumerate(made)]
        finish = candidate.get("finishReason")
        finish = "tool_calls" if calls and finish == "STOP" else \
            _FINISH.get(finish, finish.lower() if finish else None)
        kept = [p for p in parts if _usable(p)]
        completions.append(Completion("".join(text), "".join(thought) or None, finish,
                                      calls or None,
                                      provider_items(FAMILY, kept) if tools and kept else None))
    return Part(completions, usage)


def _usable(part: Any) -> bool:
    """A part worth sending back: anything but an empty text (one that carries a
    thought signature is kept)."""
    return isinstance(part, dict) and bool(part.get("text") or set(part) - {"text", "thought"})


def _tool_call(call: dict[str, Any], response_id: Any, candidate: int, i: int) -> ToolCall:
    """A functionCall part as a ToolCall. Gemini's calls mostly come without an id: one is
    made from the response's, unique in the conversation and the same on replay."""
    args = call.get("args")
    return ToolCall(str(call.get("id") or f"call-{response_id or 'gemini'}-{candidate}-{i}"),
                    str(call.get("name") or ""),
                    arguments_text(args))
