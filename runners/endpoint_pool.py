"""One model served by several endpoints (vLLM or SGLang replicas, regional deployments).

``--base-url A --base-url B ...`` (or ``-M base_url=A,B``) makes one ``openai/`` runner
whose requests are spread over the endpoints:

* **Adaptive concurrency per endpoint (AIMD).** Each endpoint has its own limit of
  requests in flight: it grows by one on each success, up to ``--concurrency``, and is
  halved on an overload answer (429, 503, 529), whose ``Retry-After`` also pauses the
  endpoint. A request goes to the live endpoint with the most room (in flight over
  limit), so a fast replica ends up carrying more than a slow one.
* **A failing endpoint is taken out** (a connection that cannot be made, a timeout):
  its request is sent again at once to another endpoint (nothing is recorded for the
  failed attempt, so nothing is lost or written twice), and the endpoint is probed
  again after a pause that doubles while it stays down (1 s up to 60 s).

Only when every endpoint is down does the request fail, as a connection error, which
the orchestrator retries with its backoff like any other.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from evals.runner import PartialResponse, Request, Response, RunnerError

OVERLOAD = frozenset({429, 503, 529})
PROBE_FIRST, PROBE_MAX = 1.0, 60.0


@dataclass
class Endpoint:
    runner: Any  # an OpenAIRunner for one base URL
    ceiling: int
    limit: float = 4.0
    in_flight: int = 0
    down_until: float = 0.0  # taken out (connection failures) or paused (Retry-After)
    probe: float = PROBE_FIRST
    requests: int = 0  # answered, for the progress line and tests
    failures: int = 0
    halvings: int = 0
    history: list[float] = field(default_factory=list)  # limits after each change (tests)

    @property
    def url(self) -> str:
        return self.runner.base_url

    def room(self) -> float:
        return (int(self.limit) - self.in_flight) / max(1.0, self.limit)


class EndpointPool:
    """A Runner over several OpenAIRunners of one model, one per endpoint."""

    enforces_timeout = True

    def __init__(self, runners: list[Any], ceiling: int = 32, start: float = 4.0):
        if len(runners) < 2:
            raise ValueError("an endpoint pool needs at least two endpoints")
        first = runners[0]
        self.model = first.model
        self.name = first.name
        self.price = getattr(first, "price", None)
        self.endpoints = [Endpoint(r, ceiling, min(float(ceiling), start)) for r in runners]
        # The answer does not depend on which replica gave it: one cache identity.
        self.cache_identity = first.cache_identity.replace(
            first.base_url, "|".join(sorted(r.base_url for r in runners)))
        self._changed: asyncio.Condition | None = None

    def __repr__(self) -> str:  # no keys, as the runners it holds
        return f"EndpointPool({self.model!r}, {[e.url for e in self.endpoints]!r})"

    def set_ceiling(self, ceiling: int) -> None:
        """``--concurrency``: no endpoint's limit grows past it."""
        for e in self.endpoints:
            e.ceiling = max(1, ceiling)
            e.limit = min(e.limit, float(e.ceiling))

    def limits_text(self) -> str:
        """The limits in force, for the progress line: ``limit 12/7/0(down)``."""
        now = time.monotonic()
        return "limit " + "/".join(
            f"{int(e.limit)}" + ("(down)" if e.down_until > now else "")
            for e in self.endpoints)

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _acquire(self, tried: set[int]) -> Endpoint:
        """The live endpoint with the most room, waiting while all are full or paused.
        Endpoints this request already failed on come last, so it moves on."""
        changed = self._condition()
        async with changed:
            while True:
                now = time.monotonic()
                live = [e for e in self.endpoints if e.down_until <= now]
                open_ = [e for e in live if e.in_flight < int(e.limit)]
                if open_:
                    best = max(open_, key=lambda e: (id(e) not in tried, e.room()))
                    best.in_flight += 1
                    return best
                if not live and len(tried) >= len(self.endpoints):
                    raise RunnerError(
                        f"every endpoint of {self.model} is down "
                        f"({', '.join(e.url for e in self.endpoints)})",
                        retryable=True, status=-1)
                wake = min((e.down_until for e in self.endpoints if e.down_until > now),
                           default=now + 1.0)
                try:
                    await asyncio.wait_for(changed.wait(), max(0.01, wake - now))
                except TimeoutError:
                    pass

    async def _release(self) -> None:
        changed = self._condition()
        async with changed:
            changed.notify_all()

    async def generate(self, request: Request) -> Response:
        tried: set[int] = set()
        while True:
            endpoint = await self._acquire(tried)
            try:
                response = await endpoint.runner.generate(request)
            except PartialResponse:
                endpoint.in_flight -= 1
                self._grow(endpoint)
                await self._release()
                raise  # its answers are kept by the orchestrator; the rest are asked again
            except RunnerError as e:
                endpoint.in_flight -= 1
                endpoint.failures += 1
                if e.status in OVERLOAD:
                    self._shrink(endpoint, e.retry_after)
                elif e.status == -1 or "timed out" in str(e) or "connection" in str(e):
                    self._take_out(endpoint)
                else:  # an answer about the request itself (400, 404, a bad body)
                    await self._release()
                    raise
                await self._release()
                tried.add(id(endpoint))
                if len(tried) >= len(self.endpoints) and not any(
                        e.down_until <= time.monotonic() and id(e) not in tried
                        for e in self.endpoints):
                    raise  # tried everywhere: the orchestrator backs off and retries
                continue
            endpoint.in_flight -= 1
            endpoint.requests += 1
            self._grow(endpoint)
            await self._release()
            return response

    def _grow(self, e: Endpoint) -> None:
        e.probe = PROBE_FIRST
        if e.limit < e.ceiling:
            e.limit = min(float(e.ceiling), e.limit + 1.0)
            e.history.append(e.limit)

    def _shrink(self, e: Endpoint, retry_after: float | None) -> None:
        e.limit = max(1.0, e.limit / 2)
        e.halvings += 1
        e.history.append(e.limit)
        if retry_after:
            e.down_until = max(e.down_until, time.monotonic() + min(retry_after, 300.0))

    def _take_out(self, e: Endpoint) -> None:
        e.down_until = time.monotonic() + e.probe
        e.probe = min(PROBE_MAX, e.probe * 2)
        e.limit = max(1.0, e.limit / 2)
        e.history.append(e.limit)

    async def aclose(self) -> None:
        for e in self.endpoints:
            await e.runner.aclose()
