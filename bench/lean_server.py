"""A lean OpenAI-compatible chat server for the request-phase benchmark.

Same command line and ``/stats`` protocol as ``bench/timed_server.py``, but an
``asyncio.Protocol`` speaking just enough HTTP/1.1 (keep-alive, Content-Length
bodies) on uvloop where installed: about 0.03 ms of CPU per request against
the aiohttp server's ~0.13 ms. At 100 requests in flight that difference is
what separates the measured request phase from the ideal N/C x latency, so a
harness measured against this server is measured, not the server.

    python bench/lean_server.py --port 0 --latency 0.2 [--answers FILE] [--capacity K]

``GET /trace`` answers, for every chat request since the last reset, ``[connection,
arrival, response]`` (``time.monotonic()`` seconds; response null while in flight):
what ``bench/request_phase.py`` reads to split a request phase into its ramp, the
client's turnaround between a response and the next request, and the tail.
``--capacity K`` answers 429 (``Retry-After: 0.1``) beyond K requests in flight, as an
overloaded replica does (``bench/pool_bench.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timed_server import load_answers  # noqa: E402


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> dict[str, Any]:
        before = self.as_dict() if hasattr(self, "count") else {}
        self.count = self.in_flight = self.max_in_flight = self.overloaded = 0
        # [connection, arrival, response] per chat request, for GET /trace
        self.trace: list[list[Any]] = []
        self.first_request_at: float | None = None
        self.last_response_at: float | None = None
        self.cpu_at_reset = time.process_time()
        return before

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "max_in_flight": self.max_in_flight,
                "in_flight": self.in_flight, "overloaded": self.overloaded,
                "first_request_at": self.first_request_at,
                "last_response_at": self.last_response_at,
                "cpu_s": time.process_time() - self.cpu_at_reset}


def _http(status: bytes, body: bytes, headers: bytes = b"") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\n" + headers
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class ChatProtocol(asyncio.Protocol):
    opened = 0

    def __init__(self, server: "LeanServer") -> None:
        self.server = server
        ChatProtocol.opened += 1
        self.number = ChatProtocol.opened  # names the connection in the trace
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            body, self.buffer = self.buffer[head_end + 4:end], self.buffer[end:]
            method, path = head.split(" ", 2)[:2]
            self.server.handle(self, method, path, body)

    def send(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)


class LeanServer:
    def __init__(self, answers: dict[str, str], default: str, latency: float,
                 capacity: int = 0) -> None:
        self.answers, self.default, self.latency = answers, default, latency
        self.capacity = capacity  # 0: no limit
        self.stats = Stats()
        self.loop = asyncio.get_event_loop()
        self.ids = 0

    def handle(self, conn: ChatProtocol, method: str, path: str, body: bytes) -> None:
        if path.endswith("/chat/completions") and method == "POST":
            stats = self.stats
            if self.capacity and stats.in_flight >= self.capacity:
                stats.overloaded += 1
                conn.send(_http(b"429 Too Many Requests",
                                b'{"error":{"message":"overloaded","type":"rate_limit"}}',
                                b"Retry-After: 0.1\r\n"))
                return
            if stats.first_request_at is None:
                stats.first_request_at = time.time()
            entry = [conn.number, time.monotonic(), None]
            stats.trace.append(entry)
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            request = orjson.loads(body)
            prompt = request["messages"][-1]["content"]
            reply = self.answers.get(prompt, self.default)
            self.ids += 1
            payload = _http(b"200 OK", orjson.dumps({
                "id": f"chatcmpl-{self.ids}", "object": "chat.completion", "created": 0,
                "model": request.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply}}],
                "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 2,
                          "total_tokens": len(prompt.split()) + 2}}))
            if self.latency > 0:
                self.loop.call_later(self.latency, self.respond, conn, payload, entry)
            else:
                self.respond(conn, payload, entry)
        elif path == "/trace":
            conn.send(_http(b"200 OK", orjson.dumps(self.stats.trace)))
        elif path == "/stats":
            body = self.stats.reset() if method == "POST" else self.stats.as_dict()
            conn.send(_http(b"200 OK", orjson.dumps(body)))
        elif path.endswith("/models"):
            conn.send(_http(b"200 OK", b'{"object":"list","data":[{"id":"fake-model"}]}'))
        elif path == "/health":
            conn.send(_http(b"200 OK", b"{}"))
        elif path == "/stats/reset":
            conn.send(_http(b"200 OK", orjson.dumps(self.stats.reset())))
        else:
            conn.send(_http(b"404 Not Found", b'{"error":{"message":"not found"}}'))

    def respond(self, conn: ChatProtocol, payload: bytes, entry: list[Any]) -> None:
        conn.send(payload)
        entry[2] = time.monotonic()
        self.stats.in_flight -= 1
        self.stats.count += 1
        self.stats.last_response_at = time.time()


async def serve(host: str, port: int, server_args: tuple) -> None:
    server = LeanServer(*server_args)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: ChatProtocol(server), host, port, backlog=1024)
    bound = listener.sockets[0].getsockname()[1]
    print(f"listening on http://{host}:{bound}/v1", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    listener.close()
    print(f"served {server.stats.count} requests", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--reply", default="ANSWER: 42")
    p.add_argument("--answers", type=Path)
    p.add_argument("--capacity", type=int, default=0,
                   help="answer 429 beyond this many requests in flight (0: no limit)")
    a = p.parse_args(argv)
    answers = load_answers(a.answers) if a.answers else {}
    try:
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(serve(a.host, a.port, (answers, a.reply, a.latency, a.capacity)))


if __name__ == "__main__":
    main()
