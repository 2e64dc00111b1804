"""A fake Gemini API server: ``POST /v1beta/models/{model}:generateContent`` (or ``/v1/``).

The key travels in ``x-goog-api-key`` (or ``?key=``). Answers have one candidate per
``generationConfig.candidateCount`` (one with ``honour_n=False``); with thinking on
(any ``thinkingConfig`` but ``thinkingBudget: 0``) the reply's ``reasoning_content``
spends the budget first and comes back as a ``thought: true`` part when
``includeThoughts`` is set. ``usageMetadata`` has ``thoughtsTokenCount`` apart from
``candidatesTokenCount``, and ``cachedContentTokenCount``; a cut answer ends with
``MAX_TOKENS``. A request with both ``thinkingBudget`` and ``thinkingLevel`` gets a
400, as from the real API. A reply with ``"blocked": True`` answers with a
``promptFeedback.blockReason`` and no candidates; one with ``"finish_reason":
"malformed_function_call"`` is a ``MALFORMED_FUNCTION_CALL`` candidate with
``content: {}``, as Gemini sends it.
Tool calls: a reply's ``tool_calls`` become ``functionCall`` parts (no ids, as the Gemini
API sends them); with thinking on, the first carries a ``thoughtSignature``. Checked as
the API checks them (400): declarations need a name, and a ``parameters`` object schema
needs properties; every content needs parts; a ``functionResponse`` turn must follow a ``functionCall`` turn with
as many calls, of those names (and ids, where the calls had them); for a Gemini 3 model
(which always thinks) the first function call of each model turn since the last user
text must come back with the signature this server gave it, unaltered.
Errors are in Google's shape (``{"error": {"code", "message", "status"}}``).

``url`` is the base without a version (what GOOGLE_GEMINI_BASE_URL holds); the models
named in request paths are kept in ``models_asked``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

import orjson

from evals.fake_native import NativeFake, sign, words
from evals.fake_openai import _text

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


class FakeGemini(NativeFake):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.models_asked: list[str] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"code": status, "message": message,
                          "status": _STATUS.get(status, "UNKNOWN")}}

    def _refuse(self, request: web.Request) -> web.Response | None:
        if request.query.get("key") and "x-goog-api-key" not in request.headers:
            self.saw_auth = True
            if self.api_key is None or request.query["key"] == self.api_key:
                return None
        return self._refuse_header(request, "x-goog-api-key")

    def _completion(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        config = body.get("generationConfig") or {}
        thinking = config.get("thinkingConfig") or {}
        if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
            raise self.invalid("thinking_budget and thinking_level are not supported together")
        if n and self.honour_n:
            n = int(config.get("candidateCount") or 1)
        contents = body.get("contents") or []
        think = thinking.get("thinkingBudget") != 0
        self._check(body, contents)
        prompt = next((_text(c.get("parts")) for c in reversed(contents)
                       if c.get("role", "user") == "user"), "")
        system = _text((body.get("systemInstruction") or {}).get("parts"))
        prompt_tokens = words(system) + sum(_words(c.get("parts")) for c in contents)
        show = bool(thinking.get("includeThoughts"))
        candidates, shown, thought_tokens, cached = [], 0, 0, 0
        blocked = False
        for i, a in enumerate(self.answers(body, prompt, n, config.get("maxOutputTokens"), think)):
            blocked = blocked or bool(a.reply.get("blocked"))
            parts = []
            if show and a.reasoning:
                parts.append({"text": a.reasoning, "thought": True})
            if a.text or not a.calls:
                parts.append({"text": a.text})
            for j, c in enumerate(a.calls):
                call = {"name": c.name, "args": c.object()}
                parts.append({"functionCall": call, **(
                    {"thoughtSignature": _signature(call)} if think and j == 0 else {})})
            if a.reply.get("finish_reason") == "malformed_function_call":
                candidates.append({"content": {}, "index": i,
                                   "finishReason": "MALFORMED_FUNCTION_CALL"})
            else:
                candidates.append({"content": {"role": "model", "parts": parts}, "index": i,
                                   "finishReason": "MAX_TOKENS" if a.length else "STOP"})
            shown += a.usage("completion_tokens", a.out_tokens) - a.think_tokens
            thought_tokens += a.usage("reasoning_tokens", a.think_tokens)
            prompt_tokens = a.usage("prompt_tokens", prompt_tokens)
            cached = a.usage("cached_tokens", 0)
        usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": shown,
                 "totalTokenCount": prompt_tokens + shown + thought_tokens}
        if thought_tokens:
            usage["thoughtsTokenCount"] = thought_tokens
        if cached:
            usage["cachedContentTokenCount"] = cached
        if blocked:
            return {"promptFeedback": {"blockReason": "SAFETY"},
                    "usageMetadata": {"promptTokenCount": prompt_tokens,
                                      "totalTokenCount": prompt_tokens}}
        return {"candidates": candidates, "usageMetadata": usage,
                "modelVersion": self.models_asked[-1] if self.models_asked else None,
                "responseId": f"fake-{self.count}"}

    @staticmethod
    def tool_results(body: dict[str, Any]) -> list[str]:
        """The outputs of the functionResponse parts the request carries."""
        return [str((p["functionResponse"].get("response") or {}).get("output"))
                for c in body.get("contents") or () for p in c.get("parts") or ()
                if isinstance(p.get("functionResponse"), dict)]

    def _check(self, body: dict[str, Any], contents: list[dict[str, Any]]) -> None:
        gemini_3 = bool(self.models_asked) and self.models_asked[-1].startswith("gemini-3")
        for i, tool in enumerate(body.get("tools") or ()):
            for j, f in enumerate(tool.get("functionDeclarations") or ()):
                where = f"tools[{i}].function_declarations[{j}]"
                if not f.get("name"):
                    raise self.invalid(f"* GenerateContentRequest.{where}.name: Name cannot be "
                                       "empty.")
                schema = f.get("parameters")
                if schema and str(schema.get("type")).upper() == "OBJECT" \
                        and not schema.get("properties"):
                    raise self.invalid(f"* GenerateContentRequest.{where}.parameters.properties: "
                                       "should be non-empty for OBJECT type")
        current = max((i for i, c in enumerate(contents) if c.get("role", "user") == "user"
                       and any("text" in p for p in c.get("parts") or ())), default=0)
        for i, content in enumerate(contents):
            parts = content.get("parts") or []
            if not parts:
                raise self.invalid(f"* GenerateContentRequest.contents[{i}].parts: "
                                   "contents.parts must not be empty.")
            calls = [p["functionCall"] for p in parts if isinstance(p.get("functionCall"), dict)]
            answers = [p["functionResponse"] for p in parts
                       if isinstance(p.get("functionResponse"), dict)]
            if calls and gemini_3 and i > current:
                signed = next(p for p in parts if isinstance(p.get("functionCall"), dict))
                if "thoughtSignature" not in signed:
                    raise self.invalid(f"Function call is missing a thought_signature in "
                                       f"functionCall parts. Additional data, function call "
                                       f"`{calls[0].get('name')}`, position {i + 1}.")
                if signed["thoughtSignature"] != _signature(calls[0]):
                    raise self.invalid("Corrupted thought signature.")
            if not answers:
                continue
            before = contents[i - 1] if i else {}
            made = [p["functionCall"] for p in before.get("parts") or ()
                    if isinstance(p.get("functionCall"), dict)] if before.get("role") == "model" \
                else []
            if not made:
                raise self.invalid("Please ensure that function response turn comes immediately "
                                   "after a function call turn.")
            if len(made) != len(answers):
                raise self.invalid("Please ensure that the number of function response parts "
                                   "is equal to the number of function call parts of the "
                                   "function call turn.")
            if sorted(str(a.get("name")) for a in answers) != \
                    sorted(str(c.get("name")) for c in made) or \
                    any(a.get("id") not in {c.get("id") for c in made} for a in answers
                        if a.get("id")):
                raise self.invalid("Please ensure that the function response parts match the "
                                   "function call parts of the function call turn.")

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        self.models_asked.append(request.match_info["model"])
        return await self._chat(request)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{version:v1|v1beta}/models/{model}:generateContent", self._generate)


def _signature(call: dict[str, Any]) -> str:
    return sign("thought", str(call.get("name")),
                orjson.dumps(call.get("args"), option=orjson.OPT_SORT_KEYS).decode())


def _words(parts: Any) -> int:
    """Prompt words of a content's parts: text, calls and their answers."""
    total = 0
    for p in parts or ():
        if isinstance(p, dict):
            total += words(str(p.get("text") or ""))
            for key in ("functionCall", "functionResponse"):
                if key in p:
                    total += words(orjson.dumps(p[key]).decode())
    return total
