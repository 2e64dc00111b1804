"""What the fake provider servers share (fake_responses, fake_anthropic, fake_gemini).

Each is a ``FakeServer`` (evals.fake_openai) with its own routes and wire format; the
scripting, fault injection, latency, request recording and threading are the base
class's, so tests drive all four servers the same way. A reply may carry, besides
``content``, ``reasoning_content`` and ``finish_reason``: ``redacted`` (Anthropic: a
redacted_thinking block) and ``usage`` overrides, where ``cached_tokens`` is also
understood, and ``tool_calls`` (``[{"name", "arguments"}]``, as for the OpenAI fake),
answered in the provider's own tool-call form. Script callables receive the provider's
own request body; each fake's ``tool_results(body)`` gives the tool answers the body
carries, so a script can act on how far an episode has got.

Each fake checks a tool-using conversation as its provider does, with a 400 in the
provider's error shape: an answer to a call that no earlier turn made, a call left
unanswered, and the reasoning state the provider requires back verbatim (signed with
``sign``, so a dropped or altered block is caught).

Token counts are whitespace word counts; a reply longer than the request's output
limit is cut to it, thinking first, and ends for length. Faults: the base class's
kinds, answered in each provider's own error shape; match-based faults look at the
last user message where the wire format has ``messages`` (Anthropic) and at nothing
otherwise.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from evals.fake_openai import FakeServer


@dataclass
class Answer:
    text: str
    reasoning: str | None  # None: no thinking in the answer
    length: bool  # cut at the output limit
    out_tokens: int  # answer, thinking and tool calls
    think_tokens: int
    reply: dict[str, Any]  # the scripted reply, for provider-specific keys
    calls: list["ScriptedCall"]

    def usage(self, key: str, default: int) -> int:
        return int((self.reply.get("usage") or {}).get(key, default))


def words(text: str) -> int:
    return len(text.split())


@dataclass
class ScriptedCall:
    """A tool call a reply scripts (``{"name", "arguments": dict or JSON text}``)."""

    name: str
    arguments: str  # JSON text, as written by the script (a malformed one stays so)

    def object(self) -> Any:
        """The arguments as the object Anthropic and Gemini carry (the text itself when
        it is not JSON: a server that lets a malformed call through)."""
        try:
            return orjson.loads(self.arguments)
        except orjson.JSONDecodeError:
            return self.arguments

    @property
    def words(self) -> int:
        return words(f"{self.name} {self.arguments}")


def scripted_calls(reply: dict[str, Any]) -> list[ScriptedCall]:
    return [ScriptedCall(str(t["name"]), t["arguments"] if isinstance(t["arguments"], str)
                         else orjson.dumps(t["arguments"]).decode())
            for t in reply.get("tool_calls") or ()]


def sign(*parts: str) -> str:
    """The fake's signature over a thinking block, a reasoning item or a thought: a
    keyed hash that only this module makes, the same in every server (a resumed run
    talks to a new one), so an altered or invented block is told apart."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), key=b"evals-fake-provider",
                             digest_size=24).digest()
    return base64.b64encode(digest).decode()


class NativeFake(FakeServer):
    """A ``FakeServer`` for a non-OpenAI wire format; subclasses add routes."""

    def answers(self, body: dict[str, Any], prompt: str, n: int, limit: int | None,
                think: bool) -> list[Answer]:
        out = []
        for i in range(n):
            r = self._reply(body, prompt, i)
            text = str(r.get("content") or "").split()
            thought = str(r.get("reasoning_content") or "").split() if think else []
            cut = limit is not None and len(text) + len(thought) > limit
            if cut:  # thinking spends the limit before the answer does
                thought = thought[:limit]
                text = text[:limit - len(thought)]
            reasoning = " ".join(thought) if think and "reasoning_content" in r else None
            calls = scripted_calls(r)
            out.append(Answer(" ".join(text), reasoning, cut or r.get("finish_reason") == "length",
                              len(text) + len(thought) + sum(c.words for c in calls),
                              len(thought), r, calls))
        return out

    @staticmethod
    def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                            content_type="application/json")

    def invalid(self, message: str) -> web.HTTPException:
        """A 400 in this provider's error shape, raised from inside ``_completion``."""
        return web.HTTPBadRequest(text=orjson.dumps(self.error_body(400, message)).decode(),
                                  content_type="application/json")

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """OpenAI's shape; the other providers' fakes override it."""
        return {"error": {"message": message, "type": "invalid_request_error" if status < 500
                          else "server_error", "param": None, "code": None}}

    async def _fault(self, request: web.Request, f, body: dict[str, Any]) -> web.StreamResponse:
        from evals.fake_openai import _ERRORS

        if f.kind in _ERRORS:
            status, message, _, _ = _ERRORS[f.kind]
            headers = {"Retry-After": str(f.kw.get("retry_after", 1))} if status == 429 else None
            return self.json(self.error_body(status, f.kw.get("message") or message), status,
                             headers)
        return await super()._fault(request, f, body)

    def _refuse_header(self, request: web.Request, name: str) -> web.Response | None:
        """The key travels in header ``name``; a wrong or missing one is a 401."""
        key = request.headers.get(name)
        self.saw_auth = self.saw_auth or key is not None
        if self.api_key is None or key == self.api_key:
            return None
        return self.json(self.error_body(401, "invalid x-api-key (fake)"), 401)
