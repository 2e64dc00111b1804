"""One model served by several endpoints (vLLM or SGLang replicas, regional deployments).

``--base-url A --base-url B ...`` (or ``-M base_url=A,B``) makes one ``openai/`` runner
whose requests are spread over the endpoints:

* **Adaptive concurrency per endpoint (AIMD).** Each endpoint has its own limit of
  requests in flight. It starts at ``--concurrency`` (the ceiling), is halved on an
  overload answer (429, 503, 529), whose ``Retry-After`` also pauses the endpoint, and
  grows by one on each success, up to the ceiling again; within 10% of the limit at
  which the last overload came, by one per round trip (1/limit per success), so that it
  stays near a replica's capacity instead of overshooting it within a round trip (one
  per success is a doubling per round trip). A limit is halved once per
  overload episode: answers to requests sent before the last halving were already
  answered for by it (as TCP halves once per window), so a burst of 429s from one
  replica halves its limit once, not once per request; each later 429 of the burst
  brings the limit down to the requests the replica was holding beside it, if fewer,
  which is what it has shown it takes. A request goes to the live
  endpoint with the most room (in flight over limit), so a fast replica ends up
  carrying more than a slow one.
* **Why start at the ceiling.** The orchestrator never has more than ``--concurrency``
  requests in flight in all, so a limit's work is to back off from a replica that says
  it is overloaded, not to find capacity by probing up from a few requests: starting at
  4 and growing by one per success (a doubling per round trip), 1,000 requests were in
  flight over three replicas only after 1.1 s of a 2 s ideal request phase at 200 ms
  (bench/README.md).
* **A failing endpoint is taken out** (a connection that cannot be made, a timeout):
  its request is sent again at once to another endpoint (nothing is recorded for the
  failed attempt, so nothing is lost or written twice), and the endpoint is probed
  again after a pause that doubles while it stays down (1 s up to 60 s).

Only when every endpoint is down does the request fail, as a connection error, which
the orchestrator retries with its backoff like any other.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import Any

from evals.runner import PartialResponse, Request, Response, RunnerError

OVERLOAD = frozenset({429, 503, 529})
PROBE_FIRST, PROBE_MAX = 1.0, 60.0
NEAR = 0.9  # growth slows to one per round trip above this share of the last overload


@dataclass
class Endpoint:
    runner: Any  # an OpenAIRunner for one base URL
    ceiling: int
    limit: float
    in_flight: int = 0
    down_until: float = 0.0  # taken out (connection failures) or paused (Retry-After)
    probe: float = PROBE_FIRST
    epoch: int = 0  # halvings so far: a request remembers the epoch it was sent in
    overloaded_at: float = 0.0  # the limit when the last overload episode came
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

    def __init__(self, runners: list[Any], ceiling: int = 32, start: float | None = None):
        """``start``: every endpoint's first limit; the ceiling unless given."""
        if len(runners) < 2:
            raise ValueError("an endpoint pool needs at least two endpoints")
        first = runners[0]
        self.model = first.model
        self.name = first.name
        self.price = getattr(first, "price", None)
        self._start = start
        self.endpoints = [Endpoint(r, ceiling, self._first_limit(ceiling)) for r in runners]
        # The answer does not depend on which replica gave it: one cache identity.
        self.cache_identity = first.cache_identity.replace(
            first.base_url, "|".join(sorted(r.base_url for r in runners)))
        # Requests waiting for room, oldest first; each is woken by a slot coming free.
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    def __repr__(self) -> str:  # no keys, as the runners it holds
        return f"EndpointPool({self.model!r}, {[e.url for e in self.endpoints]!r})"

    def _first_limit(self, ceiling: int) -> float:
        return float(ceiling) if self._start is None else min(float(ceiling), self._start)

    def set_ceiling(self, ceiling: int) -> None:
        """``--concurrency``: no endpoint's limit grows past it (and each starts there)."""
        for e in self.endpoints:
            e.ceiling = max(1, ceiling)
            e.limit = self._first_limit(e.ceiling) if not e.history else \
                min(e.limit, float(e.ceiling))

    def limits_text(self) -> str:
        """The limits in force, for the progress line: ``limit 12/7/0(down)``."""
        now = time.monotonic()
        return "limit " + "/".join(
            f"{int(e.limit)}" + ("(down)" if e.down_until > now else "")
            for e in self.endpoints)

    def _open(self, now: float) -> list[Endpoint]:
        return [e for e in self.endpoints if e.down_until <= now and e.in_flight < int(e.limit)]

    async def _acquire(self, tried: set[int]) -> Endpoint:
        """The live endpoint with the most room, waiting while all are full or paused.
        Endpoints this request already failed on come last, so it moves on."""
        while True:
            now = time.monotonic()
            if open_ := self._open(now):
                best = max(open_, key=lambda e: (id(e) not in tried, e.room()))
                best.in_flight += 1
                return best
            if len(tried) >= len(self.endpoints) and all(
                    e.down_until > now for e in self.endpoints):
                raise RunnerError(
                    f"every endpoint of {self.model} is down "
                    f"({', '.join(e.url for e in self.endpoints)})", retryable=True, status=-1)
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: the slot goes to the next in line
                else:
                    self._waiting.remove(waiter)
                raise

    def _wake(self) -> None:
        """Wake as many waiting requests as there are free slots on live endpoints."""
        if not self._waiting:
            return
        free = sum(int(e.limit) - e.in_flight for e in self._open(time.monotonic()))
        while free > 0 and self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def _pause(self, e: Endpoint, until: float) -> None:
        e.down_until = max(e.down_until, until)
        # the requests waiting on it try again when it is back
        asyncio.get_running_loop().call_later(max(0.0, e.down_until - time.monotonic()),
                                              self._wake)

    def _done(self, e: Endpoint) -> None:
        e.in_flight -= 1
        self._wake()

    async def generate(self, request: Request) -> Response:
        tried: set[int] = set()
        while True:
            endpoint = await self._acquire(tried)
            epoch = endpoint.epoch
            try:
                response = await endpoint.runner.generate(request)
            except PartialResponse:
                self._grow(endpoint)
                self._done(endpoint)
                raise  # its answers are kept by the orchestrator; the rest are asked again
            except RunnerError as e:
                endpoint.failures += 1
                if e.status in OVERLOAD:
                    self._shrink(endpoint, e.retry_after, epoch)
                elif e.status == -1 or "timed out" in str(e) or "connection" in str(e):
                    self._take_out(endpoint, epoch)
                else:  # an answer about the request itself (400, 404, a bad body)
                    self._done(endpoint)
                    raise
                self._done(endpoint)
                tried.add(id(endpoint))
                if len(tried) >= len(self.endpoints) and not any(
                        e.down_until <= time.monotonic() and id(e) not in tried
                        for e in self.endpoints):
                    raise  # tried everywhere: the orchestrator backs off and retries
                continue
            except BaseException:  # cancelled: the slot is free again
                self._done(endpoint)
                raise
            endpoint.requests += 1
            self._grow(endpoint)
            self._done(endpoint)
            return response

    def _grow(self, e: Endpoint) -> None:
        e.probe = PROBE_FIRST
        if e.limit >= e.ceiling:
            return
        before = int(e.limit)
        # one more per success; within 10% of where the last overload came, one more per
        # round trip (1/limit per success), so the limit stays near a replica's capacity
        # instead of overshooting it again within a round trip
        step = 1.0 if e.limit < NEAR * e.overloaded_at else 1.0 / e.limit
        e.limit = min(float(e.ceiling), e.limit + step)
        if int(e.limit) != before:
            e.history.append(float(int(e.limit)))

    def _halve(self, e: Endpoint, epoch: int) -> None:
        """Halve once per overload episode: a request sent before the last halving
        was already answered for by it."""
        if epoch != e.epoch:
            return
        e.epoch += 1
        e.overloaded_at = e.limit
        e.limit = max(1.0, e.limit / 2)
        e.halvings += 1
        e.history.append(e.limit)

    def _shrink(self, e: Endpoint, retry_after: float | None, epoch: int) -> None:
        if epoch == e.epoch:
            self._halve(e, epoch)
        else:  # a later answer of the episode: refused while the replica held the others
            held = e.in_flight - 1  # in flight beside this request
            if held < e.limit:
                e.limit = max(1.0, float(held))
                e.overloaded_at = min(e.overloaded_at, held + 1.0)
                e.history.append(e.limit)
        if retry_after:
            self._pause(e, time.monotonic() + min(retry_after, 300.0))

    def _take_out(self, e: Endpoint, epoch: int) -> None:
        if e.down_until <= time.monotonic():  # not already out for this failure
            self._pause(e, time.monotonic() + e.probe)
            e.probe = min(PROBE_MAX, e.probe * 2)
        self._halve(e, epoch)

    async def aclose(self) -> None:
        for e in self.endpoints:
            await e.runner.aclose()
