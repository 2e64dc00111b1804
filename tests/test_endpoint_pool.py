"""One model over several endpoints: adaptive concurrency per endpoint (AIMD), a dead
endpoint taken out and probed again, nothing lost or written twice. Three real fake
servers of different speeds on 127.0.0.1; one is stopped in the middle of the run."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest

import evals.orchestrator as run_module
from evals.fake_openai import FakeServer
from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from evals.runner import Request, RunnerError
from runners.endpoint_pool import EndpointPool
from runners.openai_api import OpenAIRunner, make_runner


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(run_module, "backoff", lambda attempt, retry_after: 0.01)


def test_several_base_urls_make_a_pool():
    pool = make_runner("m", base_url="http://127.0.0.1:1/v1,http://127.0.0.1:2/v1")
    assert isinstance(pool, EndpointPool) and len(pool.endpoints) == 2
    assert pool.model == "openai/m" and "127.0.0.1:1" in pool.cache_identity
    assert isinstance(make_runner("m", base_url="http://127.0.0.1:1/v1"), OpenAIRunner)


def test_nothing_lost_or_doubled_and_load_follows_capacity(tmp_path):
    fast, medium, slow = (FakeServer(latency=s, record=False) for s in (0.01, 0.04, 0.12))
    for s in (fast, medium, slow):
        s.start()
    stopped = threading.Event()

    def kill_medium_midway():  # the medium replica dies once it has answered 40
        while medium.count < 40:
            if stopped.wait(0.005):
                return
        medium.stop()

    killer = threading.Thread(target=kill_medium_midway)
    killer.start()
    try:
        cfg = RunConfig(tasks=["arithmetic"], models=["openai/fake-model"],
                        model_options={"base_url": f"{fast.url},{medium.url},{slow.url}"},
                        task_params={"count": "300"}, concurrency=12, retries=8)
        log = RunLog(tmp_path / "r")
        stats = execute(cfg, log, ["evals"])
    finally:
        stopped.set()
        killer.join()
        fast.stop()
        slow.stop()
    records = list(iter_records(log.samples_path))
    keys = Counter((r["sample_id"], r["gen"]) for r in records)
    assert len(keys) == 300 and set(keys.values()) == {1}  # each generation once
    assert stats.errors == 0 and all(r["status"] == "ok" for r in records)
    answered = {"fast": fast.count, "medium": medium.count, "slow": slow.count}
    assert answered["medium"] >= 40  # it did take part before it died
    assert answered["fast"] > answered["slow"]  # load follows capacity


async def _pool_of(*servers, ceiling=8):
    runners = [OpenAIRunner("fake-model", base_url=s.url) for s in servers]
    pool = EndpointPool(runners)
    pool.set_ceiling(ceiling)
    return pool


def test_aimd_grows_to_the_ceiling_and_halves_on_429():
    async def main(a, b):
        pool = await _pool_of(a, b, ceiling=8)
        ask = Request([{"role": "user", "content": "hi"}])
        for _ in range(6):  # eight at a time: both endpoints take part
            await asyncio.gather(*(pool.generate(ask) for _ in range(8)))
        first = pool.endpoints[0]
        grown = [e.limit for e in pool.endpoints]
        a.inject("429", times=1, retry_after=0)
        before = b.count
        await pool.generate(ask)  # a answers 429: halved, and the request goes to b
        moved = b.count - before
        for _ in range(4):
            await pool.generate(ask)
        await pool.aclose()
        return grown, [e.halvings for e in pool.endpoints], first.history, moved, \
            pool.limits_text()

    with FakeServer() as a, FakeServer() as b:
        grown, halvings, history, moved, shown = asyncio.run(main(a, b))
    assert grown == [8.0, 8.0]  # one more per success, capped at --concurrency
    assert halvings == [1, 0] and moved == 1
    assert history[-5:] == [4.0, 5.0, 6.0, 7.0, 8.0]  # halved on the 429, growing again
    assert shown == "limit 8/8"


def test_every_endpoint_down_is_one_retryable_connection_error():
    async def main():
        pool = EndpointPool([OpenAIRunner("m", base_url="http://127.0.0.1:9/v1"),
                             OpenAIRunner("m", base_url="http://127.0.0.1:7/v1")])
        try:
            await pool.generate(Request([{"role": "user", "content": "hi"}]))
        finally:
            await pool.aclose()

    with pytest.raises(RunnerError) as caught:
        asyncio.run(main())
    assert caught.value.retryable and caught.value.status == -1


def test_limits_start_at_the_ceiling_no_ramp():
    """--concurrency requests go out at once, spread over the endpoints: the limits start
    at the ceiling instead of ramping up from a few requests (one more per success)."""
    async def main(a, b):
        pool = await _pool_of(a, b, ceiling=8)
        assert [e.limit for e in pool.endpoints] == [8.0, 8.0]
        ask = Request([{"role": "user", "content": "hi"}])
        await asyncio.gather(*(pool.generate(ask) for _ in range(16)))
        await pool.aclose()
        return [e.history for e in pool.endpoints]

    with FakeServer(latency=0.2) as a, FakeServer(latency=0.2) as b:
        history = asyncio.run(main(a, b))
        assert a.max_in_flight == b.max_in_flight == 8 and a.count == b.count == 8
    assert history == [[], []]  # never halved, nothing to grow into


def test_a_burst_of_429s_halves_the_limit_once():
    """Four requests sent together all answered 429: one overload episode, one halving
    (the answers to requests sent before the halving do not halve it again)."""
    async def main(a, b):
        pool = await _pool_of(a, b, ceiling=4)
        ask = Request([{"role": "user", "content": "hi"}])
        a.inject("429", times=4, retry_after=0)
        await asyncio.gather(*(pool.generate(ask) for _ in range(8)))
        await pool.aclose()
        return pool.endpoints[0]

    with FakeServer() as a, FakeServer() as b:
        first = asyncio.run(main(a, b))
    assert first.halvings == 1 and first.history[0] == 2.0
    assert first.failures == 4


def test_a_dead_endpoint_is_taken_out_once_per_failure_episode():
    """Eight requests in flight to an endpoint that refuses connections: it is taken out
    once (its probe pause doubles once, not eight times) and every request is answered
    by the other endpoint."""
    async def main(server):
        dead = OpenAIRunner("fake-model", base_url="http://127.0.0.1:9/v1")
        pool = EndpointPool([dead, OpenAIRunner("fake-model", base_url=server.url)])
        pool.set_ceiling(8)
        ask = Request([{"role": "user", "content": "hi"}])
        answers = await asyncio.gather(*(pool.generate(ask) for _ in range(16)))
        await pool.aclose()
        return pool.endpoints[0], answers

    with FakeServer() as server:
        dead, answers = asyncio.run(main(server))
        assert server.count == 16 and len(answers) == 16
    assert dead.failures == 8 and dead.halvings == 1 and dead.probe == 2.0


def test_growth_slows_near_the_last_overload():
    """After a halving the limit grows by one per success up to 90% of where the overload
    came, then by one per round trip (1/limit per success): it stays near a replica's
    capacity instead of overshooting it again at once."""
    async def main(a, b):
        pool = await _pool_of(a, b, ceiling=16)
        ask = Request([{"role": "user", "content": "hi"}])
        a.inject("429", times=1, retry_after=0)
        await pool.generate(ask)  # a answers 429 at limit 16: halved to 8, b answers
        first = pool.endpoints[0]
        for _ in range(7):  # one at a time: idle endpoints tie on room, the first wins
            await pool.generate(ask)
        fast = first.limit
        for _ in range(7):
            await pool.generate(ask)
        await pool.aclose()
        return first, fast

    with FakeServer() as a, FakeServer() as b:
        first, fast = asyncio.run(main(a, b))
    assert first.overloaded_at == 16.0 and fast == 15.0  # 8 -> 15, one per success
    assert 15.0 < first.limit < 16.0  # then 7 successes: less than one more
    assert first.history == [8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0]


def test_an_overload_burst_brings_the_limit_down_to_what_the_replica_held():
    """Eight requests sent together, six refused (429), two held: the first 429 halves the
    limit (8 -> 4) and the later ones of the same burst bring it down to the requests the
    replica was holding beside them (2), without halving again: one round of 429s, not
    one per halving (bench/README.md, endpoint pools). Retry-After keeps the replica
    paused past the end of the test, so nothing else moves its limit."""
    async def main(a, b):
        pool = await _pool_of(a, b, ceiling=8)
        ask = Request([{"role": "user", "content": "hi"}])
        a.inject("429", times=6, retry_after=30)
        answers = await asyncio.gather(*(pool.generate(ask) for _ in range(16)))
        await pool.aclose()
        return pool.endpoints[0], answers

    with FakeServer(latency=0.5) as a, FakeServer(latency=0.5) as b:
        first, answers = asyncio.run(main(a, b))
        assert a.count == 8 and b.count == 14  # the refused six were answered by b
    assert len(answers) == 16 and first.halvings == 1 and first.failures == 6
    assert first.history[:3] == [4.0, 3.0, 2.0] and first.overloaded_at == 3.0
