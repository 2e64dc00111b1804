"""The fake OpenAI server (evals.fake_openai) as a client sees it over real HTTP."""

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest

from evals.fake_openai import FakeServer

REPO = Path(__file__).resolve().parent.parent


def body(prompt="What is 6*7?", **extra):
    return {"model": "m-1", "messages": [{"role": "system", "content": "be brief"},
                                         {"role": "user", "content": prompt}], **extra}


async def chat(srv, payload=None, headers=None, timeout=5.0):
    """(status, headers, raw body) of one POST /chat/completions on a fresh connection."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
        async with s.post(f"{srv.url}/chat/completions", json=payload or body(),
                          headers=headers) as r:
            return r.status, r.headers, await r.read()


async def ok(srv, payload=None, **kw):
    status, _, raw = await chat(srv, payload, **kw)
    assert status == 200, raw
    return orjson.loads(raw)


@pytest.fixture
def srv():
    with FakeServer(script={"hi": "hello there", "long": "one two three four five"}) as s:
        yield s


async def test_scripted_and_default_replies_in_openai_shape(srv):
    out = await ok(srv, body("hi"))
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert out["model"] == "m-1" and isinstance(out["created"], int)
    assert out["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "hello there"},
                               "finish_reason": "stop", "logprobs": None}]
    assert (await ok(srv, body("unknown")))["choices"][0]["message"]["content"] == "ANSWER: 42"
    assert [b["messages"][-1]["content"] for b in srv.requests] == ["hi", "unknown"]
    assert srv.count == 2 and srv.in_flight == 0 and not srv.saw_auth


async def test_last_user_message_picks_the_reply():
    with FakeServer(script={"second": "yes"}, default="no") as s:
        msgs = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                {"role": "user", "content": [{"type": "text", "text": "second"}]}]
        assert (await ok(s, {"model": "m", "messages": msgs}))["choices"][0]["message"]["content"] == "yes"


async def test_n_choices_callable_list_and_honour_n():
    def script(b, i):
        return f"sample {i} of {b['n']}"
    with FakeServer(script=script) as s:
        out = await ok(s, body(n=3))
        assert [c["message"]["content"] for c in out["choices"]] == [
            "sample 0 of 3", "sample 1 of 3", "sample 2 of 3"]
        assert [c["index"] for c in out["choices"]] == [0, 1, 2]
    with FakeServer(default=["a", {"content": "b", "finish_reason": "content_filter"}]) as s:
        out = await ok(s, body(n=3))
        assert [(c["message"]["content"], c["finish_reason"]) for c in out["choices"]] == [
            ("a", "stop"), ("b", "content_filter"), ("a", "stop")]
    with FakeServer(script={"hi": "same"}) as s:
        assert [c["message"]["content"] for c in (await ok(s, body("hi", n=2)))["choices"]] == [
            "same", "same"]
    with FakeServer(honour_n=False, script=script) as s:
        out = await ok(s, body(n=4))
        assert len(out["choices"]) == 1 and out["choices"][0]["message"]["content"] == "sample 0 of 4"


async def test_usage_counts_words_and_can_be_overridden():
    reply = {"content": "the answer is 42", "reasoning_content": "six times seven"}
    with FakeServer(default=reply) as s:
        out = await ok(s, body("what is six times seven", n=2))
        assert out["choices"][0]["message"]["reasoning_content"] == "six times seven"
        # prompt: "be brief" + 5 words; completion per choice: 4 content + 3 reasoning
        assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 14, "total_tokens": 21,
                                "completion_tokens_details": {"reasoning_tokens": 6}}
    with FakeServer(default={"content": "x", "usage": {"prompt_tokens": 1000,
                                                      "reasoning_tokens": 50}}) as s:
        assert (await ok(s))["usage"] == {"prompt_tokens": 1000, "completion_tokens": 1,
                                          "total_tokens": 1001,
                                          "completion_tokens_details": {"reasoning_tokens": 50}}


async def test_max_tokens_truncates_with_finish_reason_length(srv):
    out = await ok(srv, body("long", max_tokens=3))
    assert out["choices"][0]["message"]["content"] == "one two three"
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"]["completion_tokens"] == 3
    assert (await ok(srv, body("long", max_tokens=5)))["choices"][0]["finish_reason"] == "stop"
    with FakeServer(default={"content": "a b c", "reasoning_content": "r1 r2 r3 r4"}) as s:
        c = (await ok(s, body(max_completion_tokens=5)))["choices"][0]
        assert c["finish_reason"] == "length"
        assert c["message"] == {"role": "assistant", "content": "a", "reasoning_content": "r1 r2 r3 r4"}


async def until(condition, seconds=30.0):
    """Poll ``condition`` on the event loop; the deadline only bounds the wait."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_latency_is_respected():
    with FakeServer(latency=60) as s:  # far beyond what the client waits
        with pytest.raises(asyncio.TimeoutError):
            await chat(s, timeout=0.5)
        assert len(s.requests) == 1  # it arrived and was not answered
    with FakeServer(latency=0.01) as s:
        assert (await ok(s))["choices"][0]["message"]["content"] == "ANSWER: 42"


async def test_capacity_answers_429_beyond_it():
    with FakeServer(latency=60, record=False, capacity=2) as s:
        held = [asyncio.create_task(ok(s, timeout=120)) for _ in range(2)]
        assert await until(lambda: s.in_flight == 2)
        status, headers, _ = await chat(s)  # a third while two are held: over capacity
        assert (status, headers.get("Retry-After"), s.overloaded) == (429, "0.1", 1)
        for call in held:
            call.cancel()
        await asyncio.gather(*held, return_exceptions=True)


async def test_concurrent_requests_overlap_and_are_counted():
    with FakeServer(latency=60, record=False) as s:  # none is answered while the test looks
        calls = [asyncio.create_task(ok(s, timeout=120)) for _ in range(20)]
        assert await until(lambda: s.in_flight == 20), s.in_flight  # all at once, not in series
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        assert await until(lambda: s.in_flight == 0), s.in_flight  # dropped clients end
        assert s.max_in_flight == 20 and s.count == 20 and s.requests == []
    with FakeServer(latency=0.01) as s:
        replies = await asyncio.gather(*(ok(s) for _ in range(20)))
        assert len(replies) == 20 and s.count == 20 and s.in_flight == 0


@pytest.mark.parametrize("kind,status", [("500", 500), ("503", 503), ("400", 400)])
async def test_error_faults(srv, kind, status):
    srv.inject(kind, message="custom words" if kind == "400" else None)
    code, _, raw = await chat(srv)
    err = orjson.loads(raw)["error"]
    assert code == status and {"message", "type", "code"} <= err.keys()
    if kind == "400":
        assert err["message"] == "custom words" and err["type"] == "invalid_request_error"
    assert srv.faults_pending() == 0
    assert (await ok(srv, body("hi")))["choices"][0]["message"]["content"] == "hello there"


async def test_429_has_retry_after_and_times(srv):
    srv.inject("429", times=2, retry_after=3)
    assert srv.faults_pending() == 2
    for _ in range(2):
        status, headers, raw = await chat(srv)
        assert status == 429 and headers["Retry-After"] == "3"
        assert orjson.loads(raw)["error"]["code"] == "rate_limit_exceeded"
    assert srv.faults_pending() == 0
    await ok(srv)
    assert srv.count == 3


async def test_hang_makes_the_client_time_out(srv):
    srv.inject("hang", seconds=30)
    with pytest.raises(asyncio.TimeoutError):
        await chat(srv, timeout=0.3)
    assert srv.faults_pending() == 0
    await ok(srv)  # the server is not stuck behind the hanging request


async def test_short_hang_still_answers(srv):
    srv.inject("hang", seconds=0.2)
    out = await ok(srv, body("hi"))
    assert out["choices"][0]["message"]["content"] == "hello there"
    assert srv.faults_pending() == 0 and srv.count == 1  # the hang answered this very request


async def test_malformed_json(srv):
    srv.inject("malformed")
    status, headers, raw = await chat(srv)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)


async def test_drop_closes_the_connection_without_a_response(srv):
    srv.inject("drop")
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await chat(srv)
    # also on a kept-alive connection that has already served a request
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{srv.url}/chat/completions", json=body()) as r:
            assert r.status == 200
        srv.inject("drop")
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            async with s.post(f"{srv.url}/chat/completions", json=body()) as r:
                await r.read()
    await ok(srv)
    assert srv.count == 4 and srv.in_flight == 0


async def test_empty_choices(srv):
    out = await ok(srv)
    srv.inject("empty_choices")
    out = await ok(srv)
    assert out["choices"] == [] and out["object"] == "chat.completion"


async def test_match_filters_faults(srv):
    srv.inject("503", times=2, match="poison")
    assert (await chat(srv, body("harmless")))[0] == 200
    assert (await chat(srv, body("a poison pill")))[0] == 503
    assert (await chat(srv, body("hi")))[0] == 200
    assert srv.faults_pending() == 1
    assert (await chat(srv, body("poison")))[0] == 503
    assert (await chat(srv, body("poison")))[0] == 200


def test_unknown_fault_kind_is_rejected(srv):
    with pytest.raises(ValueError):
        srv.inject("teapot")


async def test_api_key_is_checked_and_never_stored():
    with FakeServer(api_key="sk-right") as s:
        for headers in (None, {"Authorization": "Bearer sk-wrong"}):
            status, _, raw = await chat(s, headers=headers)
            assert status == 401 and orjson.loads(raw)["error"]["code"] == "invalid_api_key"
        await ok(s, headers={"Authorization": "Bearer sk-right"})
        assert s.saw_auth and s.count == 3
        assert "sk-right" not in repr(s.requests) and "sk-wrong" not in repr(vars(s))


async def test_models_and_health(srv):
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{srv.url}/models") as r:
            assert [m["id"] for m in (await r.json())["data"]] == ["fake-model"]
        async with s.get(srv.url.removesuffix("/v1") + "/health") as r:
            assert r.status == 200 and (await r.json()) == {"status": "ok"}


async def test_openai_sdk_is_compatible():
    reply = {"content": "ANSWER: 7", "reasoning_content": "think hard"}
    with FakeServer(script={"q": reply}, api_key="sk-test") as s:
        client = openai.AsyncOpenAI(base_url=s.url, api_key="sk-test", max_retries=0)
        out = await client.chat.completions.create(
            model="gpt-fake", messages=[{"role": "user", "content": "q"}], n=2, max_tokens=100)
        assert out.model == "gpt-fake" and len(out.choices) == 2
        assert out.choices[1].message.content == "ANSWER: 7"
        assert out.choices[0].message.model_extra["reasoning_content"] == "think hard"
        assert out.usage.completion_tokens == 8
        assert out.usage.completion_tokens_details.reasoning_tokens == 4
        s.inject("429", retry_after=0)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
        assert [m.id async for m in client.models.list()] == ["fake-model"]
        bad = openai.AsyncOpenAI(base_url=s.url, api_key="sk-nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
        await client.close()
        await bad.close()


async def test_stop_ends_the_server_with_a_request_still_hanging():
    s = FakeServer().start()
    s.inject("hang")  # an hour
    task = asyncio.create_task(chat(s, timeout=30))
    assert await until(lambda: s.in_flight == 1)
    thread = s._thread
    await asyncio.to_thread(s.stop)
    assert not thread.is_alive()  # shut down, not given up on while still serving the hang
    with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
        await task


def test_busy_port_raises_from_start():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(OSError):
            FakeServer(port=sock.getsockname()[1]).start()


async def test_command_line_serves_until_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "evals.fake_openai", "--port", "0",
                             "--latency", "0.01", "--reply", "ANSWER: 9", "--no-record"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.startswith("listening on http://127.0.0.1:") and line.rstrip().endswith("/v1")

        class Srv:
            url = line.split()[-1]
        out = await ok(Srv, body(n=2))
        assert [c["message"]["content"] for c in out["choices"]] == ["ANSWER: 9"] * 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert "served 1 requests" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
