"""openai-responses/ against the fake Responses server (evals.fake_responses)."""

import asyncio
import os
import subprocess
import sys

import aiohttp
import orjson
import pytest

from evals.fake_responses import FakeResponses
from evals.runner import ConfigError, Request, RunnerError
from runners.attach import ResponseJournal
from runners.openai_responses import make_runner
from tests.conftest import REPO

REPLY = {"content": "hello there", "reasoning_content": "think think"}


def messages(text="hi"):
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


@pytest.fixture
def server():
    with FakeResponses(script={"hi": REPLY, "long": "one two three four five"}) as srv:
        yield srv


async def test_request_fields_and_response(server):
    runner = make_runner("o3", base_url=server.url, api_key="k")
    response = await runner.generate(Request(messages(), n=2, max_tokens=50, temperature=1.0,
                                             seed=3, stop=["\n\n"], effort="high"))
    await runner.aclose()
    assert server.count == 2  # no n in this API: one request per sample
    body = server.requests[-1]
    assert body == {"model": "o3", "input": messages(), "store": False, "max_output_tokens": 50,
                    "temperature": 1.0, "reasoning": {"effort": "high", "summary": "auto"}}
    assert [(c.text, c.reasoning, c.finish_reason) for c in response.completions] == [
        ("hello there", "think think", "stop")] * 2
    u = response.usage
    assert (u.prompt_tokens, u.completion_tokens, u.reasoning_tokens) == (6, 8, 4)
    assert response.applied == {"effort": "high", "source": "provider"}


async def test_silently_remapped_effort_is_recorded_as_applied():
    with FakeResponses(effort_map={"medium": "high"}) as srv:
        runner = make_runner("o4-mini", base_url=srv.url, api_key="k")
        medium = await runner.generate(Request(messages(), effort="medium"))
        low = await runner.generate(Request(messages(), effort="low"))
        await runner.aclose()
    assert medium.applied["effort"] == "high" and low.applied["effort"] == "low"


async def test_summary_none_and_non_reasoning_models_send_no_reasoning(server):
    runner = make_runner("o3", base_url=server.url, api_key="k", summary="none")
    response = await runner.generate(Request(messages()))
    assert "reasoning" not in server.requests[-1] and response.completions[0].reasoning is None
    plain = make_runner("gpt-4.1", base_url=server.url, api_key="k")
    await plain.generate(Request(messages()))
    assert "reasoning" not in server.requests[-1]
    await runner.aclose()
    await plain.aclose()


def test_settings_a_family_cannot_take_are_refused():
    runner = make_runner("o3", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match="takes no --thinking-budget.*--effort"):
        runner.body(Request(messages(), thinking_budget=1024))
    with pytest.raises(ConfigError, match="takes --effort low\\|medium\\|high, not 'minimal'"):
        runner.body(Request(messages(), effort="minimal"))
    assert make_runner("gpt-5-mini", base_url="http://x/v1").body(
        Request(messages(), effort="minimal"))["reasoning"]["effort"] == "minimal"
    with pytest.raises(ConfigError, match="gpt-4o takes no --effort; it is not a reasoning"):
        make_runner("gpt-4o", base_url="http://x/v1").body(Request(messages(), effort="low"))
    # a model the table does not know gets the effort as asked
    assert make_runner("my-model", base_url="http://x/v1").body(
        Request(messages(), effort="extreme"))["reasoning"]["effort"] == "extreme"
    with pytest.raises(ConfigError, match="summary must be"):
        make_runner("o3", base_url="http://x/v1", summary="long")


async def test_stop_strings_cut_the_text_and_length_is_a_cut(server):
    runner = make_runner("o3", base_url=server.url, api_key="k")
    stopped = await runner.generate(Request(messages("long"), stop=[" three"]))
    assert stopped.completions[0].text == "one two"
    assert stopped.completions[0].finish_reason == "stop"
    cut = await runner.generate(Request(messages("long"), max_tokens=2))
    assert cut.completions[0].text == "one two" and cut.completions[0].finish_reason == "length"
    await runner.aclose()


async def test_background_mode_polls_until_done(tmp_path):
    with FakeResponses(script={"hi": REPLY}, polls=3) as srv:
        runner = make_runner("o3", base_url=srv.url, api_key="k", background="true", poll=0.01,
                             attach_dir=str(tmp_path))
        response = await runner.generate(Request(messages()))
        await runner.aclose()
        body = srv.requests[-1]
        assert body["background"] is True and body["store"] is True
        assert srv.count == 1 and srv.gets == 4  # three in progress, then the answer
    assert response.completions[0].text == "hello there"
    assert ResponseJournal(tmp_path).pending() == 0


def test_pro_models_use_background_mode_by_default():
    assert make_runner("o3-pro", base_url="http://x/v1").background
    assert make_runner("gpt-5-pro", base_url="http://x/v1").background
    assert not make_runner("o3", base_url="http://x/v1").background
    assert not make_runner("o3-pro", base_url="http://x/v1", background="false").background


async def test_a_failed_poll_is_retried_by_attaching_not_by_paying_again(tmp_path):
    with FakeResponses(script={"hi": REPLY}, hold=True) as srv:
        runner = make_runner("o3", base_url=srv.url, api_key="k", background="true", poll=0.01,
                             attach_dir=str(tmp_path))
        first = asyncio.create_task(runner.generate(Request(messages())))
        while srv.gets == 0:
            await asyncio.sleep(0.01)
        srv.inject("500")  # a poll fails
        with pytest.raises(RunnerError) as info:
            await first
        assert info.value.retryable and ResponseJournal(tmp_path).pending() == 1
        srv.release()
        response = await runner.generate(Request(messages()))  # the orchestrator's retry
        await runner.aclose()
        assert srv.count == 1  # one POST: the retry attached to the stored id
    assert response.completions[0].text == "hello there"
    assert ResponseJournal(tmp_path).pending() == 0


async def test_an_id_the_provider_forgot_is_created_again(tmp_path):
    with FakeResponses(script={"hi": REPLY}) as srv:
        runner = make_runner("o3", base_url=srv.url, api_key="k", background="true", poll=0.01,
                             attach_dir=str(tmp_path))
        key = Request(messages()).cache_key(runner.cache_identity)
        ResponseJournal(tmp_path).add(key, "resp_gone")
        response = await runner.generate(Request(messages()))
        await runner.aclose()
        assert srv.count == 1 and response.completions[0].text == "hello there"
    assert ResponseJournal(tmp_path).pending() == 0


async def test_identical_requests_in_flight_get_their_own_responses(tmp_path):
    with FakeResponses(script=lambda body, i: f"answer {len(body)}", polls=2) as srv:
        runner = make_runner("o3", base_url=srv.url, api_key="k", background="true", poll=0.01,
                             attach_dir=str(tmp_path))
        await asyncio.gather(*(runner.generate(Request(messages())) for _ in range(3)))
        await runner.aclose()
        assert srv.count == 3 and len(srv.stored) == 3


async def test_failed_background_response_is_an_error(tmp_path):
    with FakeResponses(script={"hi": REPLY}) as srv:
        runner = make_runner("o3", base_url=srv.url, api_key="k", background="true", poll=0.01,
                             attach_dir=str(tmp_path))
        await runner.generate(Request(messages()))
        rid = next(iter(srv.stored))
        srv.stored[rid]["final"] = {**srv.stored[rid]["final"], "status": "failed",
                                    "error": {"code": "server_error", "message": "boom"}}
        srv.stored[rid]["polls"] = 0
        ResponseJournal(tmp_path).add(Request(messages("x")).cache_key(runner.cache_identity), rid)
        with pytest.raises(RunnerError, match="failed: boom") as info:
            await runner.generate(Request(messages("x")))
        assert info.value.retryable
        await runner.aclose()
    assert ResponseJournal(tmp_path).pending() == 0  # a failed response is not attached again


CHILD = """
import asyncio, sys
from evals.runner import Request
from runners.openai_responses import make_runner
async def main():
    runner = make_runner("o3-pro", base_url=sys.argv[1], api_key="k", poll=0.02,
                         attach_dir=sys.argv[2])
    await runner.generate(Request([{"role": "user", "content": "hi"}], effort="high"))
asyncio.run(main())
"""


async def test_resumed_run_reattaches_after_kill_9(tmp_path):
    with FakeResponses(script={"hi": REPLY}, hold=True) as srv:
        child = subprocess.Popen([sys.executable, "-c", CHILD, srv.url, str(tmp_path)],
                                 cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            for _ in range(500):  # until the child has created the response and polled it
                if srv.gets >= 2 or child.poll() is not None:
                    break
                await asyncio.sleep(0.02)
            assert srv.gets >= 2, "the child never polled"
        finally:
            child.kill()  # SIGKILL: no cleanup runs in the child
            child.wait()
        assert srv.count == 1 and ResponseJournal(tmp_path).pending() == 1
        srv.release()
        runner = make_runner("o3-pro", base_url=srv.url, api_key="k", poll=0.02,
                             attach_dir=str(tmp_path))
        response = await runner.generate(Request(messages("hi")[1:], effort="high"))
        await runner.aclose()
        assert srv.count == 1  # re-attached: no second POST, nothing paid twice
    assert response.completions[0].text == "hello there"
    assert ResponseJournal(tmp_path).pending() == 0


async def test_fake_server_speaks_the_wire_format(server):
    async with aiohttp.ClientSession() as s:
        async with s.post(server.url + "/responses", json={
                "model": "o3", "input": "hi", "reasoning": {"summary": "detailed"},
                "background": True}) as r:
            queued = await r.json()
        assert queued["status"] == "queued" and queued["id"].startswith("resp_")
        async with s.get(f"{server.url}/responses/{queued['id']}") as r:
            assert (await r.json())["status"] == "in_progress"
        async with s.get(f"{server.url}/responses/{queued['id']}") as r:
            done = await r.json()
        async with s.get(f"{server.url}/responses/resp_nope") as r:
            assert r.status == 404 and "error" in orjson.loads(await r.read())
    assert done["status"] == "completed"
    assert [item["type"] for item in done["output"]] == ["reasoning", "message"]
    assert done["output"][0]["summary"] == [{"type": "summary_text", "text": "think think"}]
    assert done["output"][1]["content"][0] == {"type": "output_text", "text": "hello there",
                                               "annotations": []}
    assert done["usage"]["output_tokens_details"] == {"reasoning_tokens": 2}
    assert done["usage"]["input_tokens_details"] == {"cached_tokens": 0}


RUN_CHILD = """
import sys
from evals.records import RunLog
from evals.run import RunConfig, execute
from evals.runner import register_runner, runner_families
from runners import openai_responses
if "openai-responses" not in runner_families():
    register_runner("openai-responses")(openai_responses.make_runner)
execute(RunConfig(tasks=["arithmetic"], models=["openai-responses/o3-pro"],
                  model_options={"base_url": sys.argv[1], "poll": "0.02"},
                  task_params={"count": "4"}, efforts=["high"], concurrency=8),
        RunLog(sys.argv[2]), ["evals"])
"""


def arithmetic(body, index):
    expr = body["input"][-1]["content"].split("Compute ")[1].split(". Think")[0]
    return {"content": f"ANSWER: {eval(expr)}", "reasoning_content": "carry the one"}


async def test_killed_run_resumes_by_reattaching_to_its_background_responses(tmp_path):
    from evals.records import RunLog, iter_records
    from evals.run import RunConfig, execute
    from evals.runner import register_runner, runner_families
    from runners import openai_responses

    if "openai-responses" not in runner_families():
        register_runner("openai-responses")(openai_responses.make_runner)
    run_dir = tmp_path / "run"
    with FakeResponses(script=arithmetic, hold=True) as srv:
        child = subprocess.Popen([sys.executable, "-c", RUN_CHILD, srv.url, str(run_dir)],
                                 cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            for _ in range(1000):  # every sample's response created and polled twice
                if (srv.count == 4 and srv.gets >= 8) or child.poll() is not None:
                    break
                await asyncio.sleep(0.02)
            assert srv.count == 4 and srv.gets >= 8
        finally:
            child.kill()
            child.wait()
        assert not list(iter_records(RunLog(run_dir).samples_path))  # nothing finished
        srv.release()
        config = RunConfig(tasks=["arithmetic"], models=["openai-responses/o3-pro"],
                           model_options={"base_url": srv.url, "poll": "0.02"},
                           task_params={"count": "4"}, efforts=["high"], concurrency=8)
        stats = await asyncio.to_thread(execute, config, RunLog(run_dir), ["evals"])
        assert srv.count == 4  # the resumed run created nothing: it polled the stored ids
    records = list(iter_records(RunLog(run_dir).samples_path))
    assert stats.errors == 0 and len(records) == 4 and all(r["score"] == 1.0 for r in records)
