"""--ranker reward/PATH: a reward model (tiny, random, built here) ranks completions for best@k."""

import asyncio
import math
import threading
from collections import defaultdict

import pytest

from tests.conftest import TEST_EXTRA, TORCH_HINT, require

require("torch", hint=TORCH_HINT)
require("transformers", hint=TEST_EXTRA)

from evals.estimators import best_of_k
from evals.fake_openai import FakeServer
from evals.metrics import summarize
from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from evals.runner import ConfigError, RunnerError
from evals.task import Sample
from runners.hf_tiny import save_tiny
from runners.reward import make_ranker

COMPLETIONS = ["the answer is 7", "hmm 8", "ok yes no", "so the answer is ( 12 )", "7",
               "think step by step the answer is 7 ANSWER: 7"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("rm") / "rm", reward=True)


def test_batched_scores_equal_each_conversation_scored_alone(reward_dir):
    ranker = make_ranker(str(reward_dir), batch_size="4", batch_wait="0.01")
    sample = Sample(id="a", input="Compute 3 + 4", target="7")

    async def rank_all():
        try:
            return await asyncio.gather(*(ranker.rank(sample, c) for c in COMPLETIONS))
        finally:
            await ranker.aclose()

    got = asyncio.run(rank_all())
    assert ranker.batches == [4, 2]  # padded batches of the six
    alone = [ranker.score([ranker.text(sample, c)])[0] for c in COMPLETIONS]
    assert got == pytest.approx(alone, abs=1e-5)
    assert len({round(x, 4) for x in got}) == len(got)  # it tells them apart
    # The model reads the conversation the chat template renders: problem, then answer.
    assert ranker.text(sample, "hmm 8") == "<|user|> Compute 3 + 4\n<|assistant|> hmm 8\n"


def test_long_conversations_keep_their_end(reward_dir):
    ranker = make_ranker(str(reward_dir), max_length="16")
    sample = Sample(id="a", input="Compute 1", target="1")
    long = " ".join(["hmm"] * 50)
    a, b = ranker.score([ranker.text(sample, long + " 7"), ranker.text(sample, long + " 8")])
    assert a != pytest.approx(b)  # cut from the left: the differing last word is kept


def test_best_at_k_follows_the_reward_models_ranks(reward_dir, tmp_path):
    def script(body, index):
        value = eval(body["messages"][-1]["content"].split("Compute ")[1].split(". Think")[0])
        return [f"so the answer is ANSWER: {value}", f"hmm ANSWER: {value + 1}",
                f"ANSWER: {value}", f"ok no ANSWER: {value - 1}"][index]

    with FakeServer(script=script) as srv:
        cfg = RunConfig(tasks=["arithmetic"], models=["openai/fake-model"],
                        model_options={"base_url": srv.url}, task_params={"count": "6"},
                        samples=4, ranker=f"reward/{reward_dir}",
                        ranker_options={"batch_size": "8"})
        execute(cfg, RunLog(tmp_path / "r"), ["evals"])
    records = list(iter_records(tmp_path / "r" / "samples.jsonl"))
    assert len(records) == 24 and all(isinstance(r["rank"], float) for r in records)
    by_problem = defaultdict(list)
    for r in records:
        by_problem[r["sample_id"]].append(r)
    rows = {r.metric: r.value for r in summarize(records)}
    for k in (1, 2, 4):  # the harness's best@k is the estimator's over the recorded ranks
        expected = sum(best_of_k([r["rank"] for r in rs], [r["score"] for r in rs], k)
                       for rs in by_problem.values()) / len(by_problem)
        assert rows[f"best@{k}"] == pytest.approx(expected)
    assert math.isclose(rows["accuracy"], 0.5)  # completions 0 and 2 are right


def test_bad_reward_ranker_settings_are_config_errors(reward_dir, tmp_path):
    with pytest.raises(ConfigError, match="no option 'temperature'"):
        make_ranker(str(reward_dir), temperature="0")
    with pytest.raises(ConfigError, match="label 1 but the head has 1 output"):
        make_ranker(str(reward_dir), label="1")
    with pytest.raises(ConfigError, match="no such model directory"):
        make_ranker(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="needs a local path"):
        make_ranker("")


def test_closing_ends_every_caller_also_those_being_scored(reward_dir):
    ranker = make_ranker(str(reward_dir), batch_size="2", batch_wait="0")
    score = ranker.score
    in_pass, release = threading.Event(), threading.Event()

    def held_score(texts):
        in_pass.set()  # a forward pass in progress when the run stops
        release.wait(60)
        return score(texts)

    ranker.score = held_score
    sample = Sample(id="a", input="Compute 3 + 4", target="7")

    async def stop_midway():
        calls = [asyncio.ensure_future(ranker.rank(sample, c)) for c in COMPLETIONS[:5]]
        assert await asyncio.to_thread(in_pass.wait, 60)
        await ranker.aclose()
        # Every caller has its answer while the forward pass is still held.
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 60)

    try:
        results = asyncio.run(stop_midway())
    finally:
        release.set()
    assert len(results) == 5 and all(isinstance(r, RunnerError) for r in results), results
    assert all("ranker closed" in str(r) for r in results) and ranker.batches == []


def test_rows_are_read_at_their_last_token_whatever_pad_id_the_config_names(reward_dir):
    from runners.reward import RewardOptions, RewardRanker, load

    model, tokenizer = load(str(reward_dir), RewardOptions())
    model.config.pad_token_id = tokenizer.unk_token_id  # not the tokenizer's own pad
    ranker = RewardRanker("reward/x", model, tokenizer, RewardOptions())
    sample = Sample(id="a", input="Compute 3 + 4", target="7")
    texts = [ranker.text(sample, c) for c in COMPLETIONS]
    assert ranker.score(texts) == pytest.approx([ranker.score([t])[0] for t in texts], abs=1e-5)
