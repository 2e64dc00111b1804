"""A fake Gemini API server: ``POST /v1beta/models/{model}:generateContent`` (or ``/v1/``).

The key travels in ``x-goog-api-key`` (or ``?key=``). Answers have one candidate per
``generationConfig.candidateCount`` (one with ``honour_n=False``); with thinking on
(any ``thinkingConfig`` but ``thinkingBudget: 0``) the reply's ``reasoning_content``
spends the budget first and comes back as a ``thought: true`` part when
``includeThoughts`` is set. ``usageMetadata`` has ``thoughtsTokenCount`` apart from
``candidatesTokenCount``, and ``cachedContentTokenCount``; a cut answer ends with
``MAX_TOKENS``. A request with both ``thinkingBudget`` and ``thinkingLevel`` gets a
400, as from the real API. A reply with ``"blocked": True`` answers with a
``promptFeedback.blockReason`` and no candidates.
Errors are in Google's shape (``{"error": {"code", "message", "status"}}``).

``url`` is the base without a version (what GOOGLE_GEMINI_BASE_URL holds); the models
named in request paths are kept in ``models_asked``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from evals.fake_native import NativeFake, words
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
        prompt = next((_text(c.get("parts")) for c in reversed(contents)
                       if c.get("role", "user") == "user"), "")
        system = _text((body.get("systemInstruction") or {}).get("parts"))
        prompt_tokens = words(system) + sum(words(_text(c.get("parts"))) for c in contents)
        think = thinking.get("thinkingBudget") != 0
        show = bool(thinking.get("includeThoughts"))
        candidates, shown, thought_tokens, cached = [], 0, 0, 0
        blocked = False
        for i, a in enumerate(self.answers(body, prompt, n, config.get("maxOutputTokens"), think)):
            blocked = blocked or bool(a.reply.get("blocked"))
            parts = []
            if show and a.reasoning:
                parts.append({"text": a.reasoning, "thought": True})
            parts.append({"text": a.text})
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

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        self.models_asked.append(request.match_info["model"])
        return await self._chat(request)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{version:v1|v1beta}/models/{model}:generateContent", self._generate)
