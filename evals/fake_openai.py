"""A fake OpenAI-compatible chat-completions server for tests and benchmarks.

In tests, run it in a background thread and point any OpenAI client at ``url``::

    with FakeServer(script={"What is 6*7?": "ANSWER: 42"}, latency=0.05) as srv:
        client = AsyncOpenAI(base_url=srv.url, api_key="x")
        srv.inject("429", times=2, retry_after=0)   # the next two requests get rate-limited
        ...
        assert srv.count == 3 and srv.requests[0]["model"] == "m"

A *reply* is a ``str`` (the content), a ``dict`` with keys ``content``,
``reasoning_content``, ``tool_calls`` (``[{"name", "arguments"}]``: answered as OpenAI
function calls, finish_reason "tool_calls"), ``finish_reason`` (default "stop") and ``usage`` (overrides of
``prompt_tokens``/``completion_tokens``/``total_tokens``/``reasoning_tokens``), or a
list of such replies, one per choice index (cycled).  ``script`` is either a dict from the
*last user message* to a reply, or a callable ``script(body, index) -> reply`` called once
per choice (``index`` in ``range(n)``), so it can vary samples.  Token counts are
whitespace word counts.  If ``max_tokens`` (or ``max_completion_tokens``) is below the
completion's word count, the reply is cut to that many words (reasoning first, then
content) and ``finish_reason`` becomes "length".  Streaming is not supported.

Faults (``inject``) apply to the next ``times`` requests, or only to requests whose last
user message contains ``match``: "429" (``Retry-After: retry_after``, default 1), "500",
"503", "400" (all OpenAI-style error JSON; kw ``message`` overrides the text), "hang"
(sleeps ``seconds``, default 3600, then answers), "malformed" (200 with invalid JSON),
"drop" (connection closed with no response) and "empty_choices".  Faults skip ``latency``.

From the command line, for other harnesses to hit::

    python -m evals.fake_openai --port 8000 --latency 0.2 --reply "ANSWER: 42" [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

Reply = str | dict[str, Any] | list[Any]
Script = dict[str, Reply] | Callable[[dict[str, Any], int], Reply]
FAULT_KINDS = ("429", "500", "503", "400", "hang", "malformed", "drop", "empty_choices")
_ERRORS = {  # kind -> (status, default message, OpenAI error type, code)
    "429": (429, "Rate limit reached (fake)", "requests", "rate_limit_exceeded"),
    "500": (500, "The server had an error (fake)", "server_error", None),
    "503": (503, "The server is overloaded (fake)", "server_error", None),
    "400": (400, "Invalid request (fake)", "invalid_request_error", "invalid_request"),
}


@dataclass
class _Fault:
    kind: str
    times: int
    match: str | Callable[[dict[str, Any]], bool] | None
    kw: dict[str, Any]


def _text(content: Any) -> str:
    """Message content as text; multimodal content is a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _last_user(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if msg.get("role") == "user":
            return _text(msg.get("content"))
    return ""


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                        content_type="application/json")


def _error(status: int, message: str, type_: str, code: str | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    err = {"message": message, "type": type_, "param": None, "code": code}
    return _json({"error": err}, status, headers)


class FakeServer:
    """OpenAI-compatible fake server on its own thread and event loop; see module docs."""

    def __init__(self, script: Script | None = None, default: Reply = "ANSWER: 42", *,
                 latency: float = 0.0, honour_n: bool = True, api_key: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, record: bool = True,
                 models: Sequence[str] = ("fake-model",), capacity: int | None = None) -> None:
        self.script, self.default, self.latency = script, default, latency
        self.honour_n, self.api_key, self.record = honour_n, api_key, record
        self.host, self.port, self.models = host, port, list(models)
        # A replica's capacity: requests beyond it in flight get 429 (Retry-After 0.1 s),
        # as an overloaded vLLM or a rate-limited endpoint answers.
        self.capacity = capacity
        self.overloaded = 0
        # Written only by the server loop; other threads may read them at any time (each
        # update is a single GIL-atomic operation). count covers every finished request:
        # answered, faulted, refused (401) or abandoned by the client.
        self.requests: list[dict[str, Any]] = []
        self.count = self.in_flight = self.max_in_flight = 0
        self.saw_auth = False  # headers are never stored: they carry API keys
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()  # faults are queued from the test thread
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def inject(self, kind: str, times: int = 1,
               match: str | Callable[[dict[str, Any]], bool] | None = None, **kw: Any) -> None:
        """Queue ``kind`` for the next ``times`` (matching) requests; kw: retry_after, seconds,
        message. ``match`` is text the last user message contains, or a predicate on the
        request body (``lambda body: body.get("seed") == 9``)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
        with self._lock:
            self._faults.append(_Fault(kind, times, match, kw))

    def faults_pending(self) -> int:
        """How many fault applications are still queued (summing ``times``)."""
        with self._lock:
            return sum(f.times for f in self._faults)

    def _take_fault(self, prompt: str, body: dict[str, Any]) -> _Fault | None:
        if not self._faults:  # fast path for benchmarks: no lock
            return None
        with self._lock:
            for f in self._faults:
                if f.match is None or (f.match(body) if callable(f.match) else f.match in prompt):
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
                    return f
        return None

    async def _fault(self, request: web.Request, f: _Fault,
                     body: dict[str, Any]) -> web.StreamResponse:
        if f.kind in _ERRORS:
            status, message, type_, code = _ERRORS[f.kind]
            headers = {"Retry-After": str(f.kw.get("retry_after", 1))} if status == 429 else None
            return _error(status, f.kw.get("message") or message, type_, code, headers)
        if f.kind == "malformed":
            return web.Response(body=b'{"id": "chatcmpl-broken", "choices": [',
                                content_type="application/json")
        if f.kind == "drop":
            assert request.transport is not None
            request.transport.abort()  # no response bytes at all: the client sees a disconnect
            raise asyncio.CancelledError  # aiohttp takes this as "connection gone", quietly
        if f.kind == "hang":  # a client with a shorter timeout never sees the answer
            await asyncio.sleep(f.kw.get("seconds", 3600))
        return _json(self._completion(body, n=1 if f.kind == "hang" else 0))

    def _reply(self, body: dict[str, Any], prompt: str, index: int) -> dict[str, Any]:
        script = self.script
        r: Any = script(body, index) if callable(script) else (script or {}).get(prompt)
        r = self.default if r is None else r
        if isinstance(r, list):
            r = r[index % len(r)]
        return {"content": r} if isinstance(r, str) else dict(r)

    def _completion(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        prompt = _last_user(body)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        choices, override = [], {}
        completion = reasoning = 0
        for i in range(n):
            r = self._reply(body, prompt, i)
            msg: dict[str, Any] = {"role": "assistant", "content": str(r.get("content") or "")}
            if "reasoning_content" in r:
                msg["reasoning_content"] = str(r["reasoning_content"] or "")
            words, think = msg["content"].split(), msg.get("reasoning_content", "").split()
            finish = r.get("finish_reason", "stop")
            if limit is not None and len(words) + len(think) > limit:
                # Reasoning models spend the budget on thinking before the answer.
                think, finish = think[:limit], "length"
                words = words[:limit - len(think)]
                msg["content"] = " ".join(words)
                if "reasoning_content" in msg:
                    msg["reasoning_content"] = " ".join(think)
            if r.get("tool_calls"):  # [{"name", "arguments": dict or JSON text}, ...]
                msg["tool_calls"] = [
                    {"id": f"call_{next(self._ids)}", "type": "function",
                     "function": {"name": t["name"], "arguments": t["arguments"]
                                  if isinstance(t["arguments"], str)
                                  else orjson.dumps(t["arguments"]).decode()}}
                    for t in r["tool_calls"]]
                msg["content"] = msg["content"] or None
                finish = r.get("finish_reason", "tool_calls")
                words += [w for t in msg["tool_calls"] for w in
                          (t["function"]["name"] + " " + t["function"]["arguments"]).split()]
            choices.append({"index": i, "message": msg, "finish_reason": finish, "logprobs": None})
            completion += len(words) + len(think)
            reasoning += len(think)
            override.update(r.get("usage") or {})
        prompt_tokens = sum(len(_text(m.get("content")).split()) for m in body.get("messages") or [])
        p = override.get("prompt_tokens", prompt_tokens)
        c = override.get("completion_tokens", completion)
        usage = {"prompt_tokens": p, "completion_tokens": c,
                 "total_tokens": override.get("total_tokens", p + c),
                 "completion_tokens_details": {
                     "reasoning_tokens": override.get("reasoning_tokens", reasoning)}}
        return {"id": f"chatcmpl-fake-{next(self._ids)}", "object": "chat.completion",
                "created": int(time.time()), "model": body.get("model", "fake-model"),
                "choices": choices, "usage": usage}

    def _refuse(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization")
        self.saw_auth = self.saw_auth or auth is not None
        if self.api_key is None or auth == f"Bearer {self.api_key}":
            return None
        return _error(401, "Incorrect API key provided (fake)", "invalid_request_error",
                      "invalid_api_key")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if refused := self._refuse(request):
                return refused
            try:
                body = orjson.loads(await request.read())
                assert isinstance(body, dict)
            except (orjson.JSONDecodeError, AssertionError):
                return _error(400, "Request body is not a JSON object", "invalid_request_error")
            if self.record:
                self.requests.append(body)
            if body.get("stream"):
                return _error(400, "stream=true is not supported by the fake server",
                              "invalid_request_error")
            fault = self._take_fault(_last_user(body), body)
            if fault is not None:
                return await self._fault(request, fault, body)
            if self.capacity is not None and self.in_flight > self.capacity:
                self.overloaded += 1
                return _error(429, "Over capacity (fake)", "requests", "rate_limit_exceeded",
                              {"Retry-After": "0.1"})
            if self.latency:
                await asyncio.sleep(self.latency)
            n = int(body.get("n") or 1) if self.honour_n else 1
            return _json(self._completion(body, n))
        finally:
            self.in_flight -= 1
            self.count += 1

    async def _models(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return _json({"object": "list", "data": data})

    async def _health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    def serve_until_signal(self) -> None:
        """For a command line: print the URL, serve until SIGINT or SIGTERM, then stop."""
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        print(f"listening on {self.url}", flush=True)
        done.wait()
        self.stop()
        print(f"served {self.count} requests (max in flight {self.max_in_flight})", flush=True)

    def add_routes(self, app: web.Application) -> None:
        """A subclass's own routes (the router is frozen once the server starts)."""

    async def _serve(self) -> None:
        app = web.Application(client_max_size=256 * 2**20)  # long-context prompts are big
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        self.add_routes(app)
        # handler_cancellation: a client that gives up on a "hang" must not pin a task;
        # a short shutdown_timeout keeps stop() quick while a "hang" is still connected.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=0.25)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def _run(self, started: threading.Event, errors: list[BaseException]) -> None:
        try:
            import uvloop  # type: ignore[import-not-found]
            loop = self._loop = uvloop.new_event_loop()
        except ImportError:
            loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # re-raised by start() on the caller's thread
            errors.append(e)
        started.set()
        if not errors:
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
        loop.close()

    def start(self) -> FakeServer:
        """Start serving on a daemon thread; returns once the port is listening."""
        started, errors = threading.Event(), []
        self._thread = threading.Thread(target=self._run, args=(started, errors),
                                        name="fake-openai", daemon=True)
        self._thread.start()
        started.wait()
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Fake OpenAI-compatible server.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    p.add_argument("--reply", default="ANSWER: 42", help="content of every answer")
    p.add_argument("--api-key", default=None)
    p.add_argument("--no-record", action="store_true", help="do not keep request bodies")
    a = p.parse_args(argv)
    FakeServer(default=a.reply, latency=a.latency, api_key=a.api_key, host=a.host,
               port=a.port, record=not a.no_record).serve_until_signal()


if __name__ == "__main__":
    main()
