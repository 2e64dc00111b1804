"""``hf/`` on CPU with tiny random Llamas built at test time (the hub is not reachable).

Three checkpoints, from runners/hf_tiny.py: a word-level tokenizer (so re-encoding a
generation gives back its ids and counts can be checked against the tokenizer) whose
chat template opens ``<think>`` in the generation prompt, and a 2-layer Llama with
hidden size 32 and random weights. The weights are edited so that a constant residual
feature acts as a logit bias (see ``bias_tokens``):

* ``thinker`` never emits special tokens, EOS or ``</think>``: it thinks until stopped;
* ``ender`` always wants to emit ``</think>``: every thought ends at once unless the
  runner replaces the end with "Wait";
* ``stopper`` always emits EOS.
"""

import asyncio
import subprocess
import sys

import pytest

from tests.conftest import REPO, TEST_EXTRA, TORCH_HINT, require

require("torch", hint=TORCH_HINT)
require("transformers", hint=TEST_EXTRA)

from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from evals.runner import ConfigError, Request, RunnerError, make_runner
from runners.hf_tiny import SPECIAL, THINK, save_tiny

NO_SPECIALS = list(SPECIAL)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "thinker": save_tiny(root / "thinker", ban=NO_SPECIALS + THINK),
        "ender": save_tiny(root / "ender", ban=NO_SPECIALS + ["<think>"], favour=["</think>"]),
        "stopper": save_tiny(root / "stopper", ban=[t for t in NO_SPECIALS if t != "</s>"] + THINK,
                             favour=["</s>"]),
    }


def runner(path, **options):
    return make_runner(f"hf/{path}", **{k: str(v) for k, v in options.items()})


def ask(text, **kw):
    return Request([{"role": "user", "content": text}], **kw)


def run(coro):
    return asyncio.run(coro)


async def gather(r, requests):
    return await asyncio.gather(*(r.generate(q) for q in requests))


def count(r, text):
    return len(r.tokenizer.encode(text, add_special_tokens=False)) if text else 0


def prompt_len(r, request):
    text = r.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True,
                                           tokenize=False)
    return len(r.tokenizer.encode(text, add_special_tokens=False))


PROMPTS = ["Compute 3 + 4", "hmm", "so the answer is 12 * 7 = ( 84 )", "ok yes no",
           "Compute 1", "think step by step so the answer is 5"]


def test_cli_does_not_import_torch():
    code = ("import sys, evals.cli, runners.hf, runners.vllm; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_batched_greedy_equals_one_by_one(models):
    r = runner(models["thinker"], think_start="none", batch_size=8)
    requests = [ask(p, max_tokens=10, temperature=0) for p in PROMPTS]
    batched = run(gather(r, requests))
    assert r.stats.sizes == [6]  # one left-padded generate for prompts of 2 to 14 tokens
    alone = [run(r.generate(q)) for q in requests]
    assert r.stats.sizes == [6, 1, 1, 1, 1, 1, 1]
    assert [b.completions for b in batched] == [a.completions for a in alone]
    assert len({b.completions[0].text for b in batched}) == 6
    for q, b in zip(requests, batched):
        c = b.completions[0]
        assert c.reasoning is None and c.finish_reason == "length"
        assert b.usage.prompt_tokens == prompt_len(r, q)
        assert b.usage.completion_tokens == count(r, c.text) == 10


def test_every_batch_runs_on_the_runners_one_generation_thread(models):
    # torch caches per thread (cuBLAS handles, cuDNN attention graphs): a fresh thread per
    # batch made an H100 decode 4x slower (bench/README.md), also across event loops.
    import threading

    r = runner(models["thinker"], think_start="none", batch_size=2)
    threads, engine_run = [], r.engine.run

    def recording_run(jobs):
        threads.append(threading.current_thread())
        return engine_run(jobs)

    r.engine.run = recording_run
    run(gather(r, [ask(p, max_tokens=2) for p in PROMPTS[:4]]))
    run(r.generate(ask("hmm", max_tokens=2)))
    assert r.stats.sizes == [2, 2, 1]
    assert len(set(threads)) == 1 and threads[0] is not threading.main_thread()
    assert threads[0].name.startswith("hf-generate")


def test_batch_size_caps_sequences_and_groups_by_settings(models):
    r = runner(models["thinker"], think_start="none", batch_size=4)
    requests = [ask(p, max_tokens=4) for p in PROMPTS[:5]]
    requests += [ask("Compute 2", max_tokens=4, n=3), ask("Compute 9", max_tokens=6)]
    out = run(gather(r, requests))
    # Oldest group first: 4 + 1 sequences of the n=1/4-token group, then n=3, then 6 tokens.
    assert r.stats.sizes == [4, 1, 3, 1]
    assert [len(o.completions) for o in out] == [1] * 5 + [3, 1]


def test_n_samples_from_one_prompt(models):
    r = runner(models["thinker"], think_start="none")
    greedy = run(r.generate(ask("Compute 3 + 4", n=3, max_tokens=6, temperature=0)))
    assert len(greedy.completions) == 3 and len({c.text for c in greedy.completions}) == 1
    sampled = run(r.generate(ask("Compute 3 + 4", n=4, max_tokens=6, temperature=1.0, seed=1)))
    assert len(sampled.completions) == 4 and len({c.text for c in sampled.completions}) > 1
    assert r.stats.sizes == [3, 4]  # n rows in one generate (num_return_sequences)
    assert sampled.usage.prompt_tokens == prompt_len(r, ask("Compute 3 + 4"))  # counted once
    assert sampled.usage.completion_tokens == 4 * 6


def test_seed_reproduces_sampling_whatever_the_batch(models):
    r = runner(models["thinker"], think_start="none")
    q = ask("Compute 5", n=2, max_tokens=8, temperature=1.0, seed=7)
    alone = run(r.generate(q)).completions
    others = [ask(p, n=2, max_tokens=8, temperature=1.0) for p in PROMPTS]
    in_batch = run(gather(r, others + [q]))[-1].completions
    assert r.stats.sizes[-1] == 14  # it really shared a batch with unseeded neighbours
    assert alone == in_batch
    assert alone[0] != alone[1]  # sample i draws from seed + i
    assert run(r.generate(ask("Compute 5", n=2, max_tokens=8, temperature=1.0, seed=8))
               ).completions != alone


def test_a_generation_asked_alone_equals_itself_in_a_batch(models):
    """Resume asks for just the missing generation: it must be that generation, not a copy
    of generation 0 (generation g draws from seed + g however it is asked)."""
    r = runner(models["thinker"], think_start="none")
    q = ask("Compute 5", n=4, max_tokens=8, temperature=1.0, seed=7)
    batch = run(r.generate(q)).completions
    assert len({c.text for c in batch}) > 1
    alone = run(r.generate(q.for_gens([2]))).completions
    assert alone == [batch[2]] and alone[0] != batch[0]
    pair = run(r.generate(q.for_gens([1, 3]))).completions
    assert pair == [batch[1], batch[3]]


def test_budget_forcing_stops_thinking_at_the_budget(models):
    r = runner(models["thinker"])
    assert r.think.end_insert == "\n</think>\n\n"
    # The word-level tokenizer drops whitespace: the insert is the one token </think>.
    assert r.think.end_insert_ids == r.think.end_ids
    budgets = [0, 3, 5]
    out = run(gather(r, [ask("Compute 3 + 4", max_tokens=12, thinking_budget=b, n=2)
                         for b in budgets]))
    for budget, response in zip(budgets, out):
        for c in response.completions:
            assert count(r, c.reasoning) == budget  # exactly B thought tokens, then forced
            assert "</think>" not in c.reasoning
            assert count(r, c.text) == 12 - budget - 1  # the answer gets what is left
            assert c.finish_reason == "length"
        assert response.usage.reasoning_tokens == 2 * budget
        assert response.usage.completion_tokens == 2 * 12
    assert r.stats.sizes == [2, 2, 2]  # one batch per budget (a group each)


def test_budget_larger_than_max_tokens_leaves_no_answer(models):
    r = runner(models["thinker"])
    out = run(r.generate(ask("Compute 1", max_tokens=4, thinking_budget=10)))
    c = out.completions[0]
    assert count(r, c.reasoning) == 4 and c.text == "" and c.finish_reason == "length"
    assert out.usage.completion_tokens == 4 and out.usage.reasoning_tokens == 4


def test_thinking_without_budget_is_split_into_reasoning(models):
    r = runner(models["thinker"])
    out = run(r.generate(ask("Compute 1", max_tokens=6)))
    c = out.completions[0]  # never closed: all of it is thought, as vLLM reports it
    assert c.text == "" and count(r, c.reasoning) == 6 and out.usage.reasoning_tokens == 6
    ender = runner(models["ender"])
    out = run(ender.generate(ask("Compute 1", max_tokens=4)))
    c = out.completions[0]  # closes at once; the answer keeps wanting </think>
    assert c.reasoning == "" and out.usage.reasoning_tokens == 0
    assert c.text == "</think> </think> </think>" and out.usage.completion_tokens == 4


def test_wait_extensions_replace_an_early_end_of_thinking(models):
    r = runner(models["ender"], wait_extensions=2)
    assert r.think.wait == "Wait"
    out = run(r.generate(ask("Compute 3", max_tokens=10, thinking_budget=8, n=2)))
    for c in out.completions:
        # Two ends of thinking became "Wait"; the third was the model's own and stood.
        assert c.reasoning == "Wait Wait"
        assert count(r, c.text) == 10 - 2 - 1
    assert out.usage.reasoning_tokens == 4 and out.usage.completion_tokens == 20
    # A budget smaller than the extensions: the thought is cut at B and the end forced.
    r = runner(models["ender"], wait_extensions=5)
    c = run(r.generate(ask("Compute 3", max_tokens=10, thinking_budget=3))).completions[0]
    assert c.reasoning == "Wait Wait Wait"
    # Without a budget, the extensions still apply (thinking up to max_tokens).
    r = runner(models["ender"], wait_extensions=1, wait_string="hmm")
    c = run(r.generate(ask("Compute 3", max_tokens=5))).completions[0]
    assert c.reasoning == "hmm"


def test_eos_ends_a_row_and_is_counted(models):
    r = runner(models["stopper"], think_start="none")
    out = run(gather(r, [ask("Compute 3", max_tokens=5), ask("hmm", max_tokens=5)]))
    for o in out:
        assert o.completions[0].text == "" and o.completions[0].finish_reason == "stop"
        assert o.usage.completion_tokens == 1  # the EOS token, as vLLM counts it
    bench = runner(models["stopper"], think_start="none", ignore_eos="true")
    out = run(bench.generate(ask("Compute 3", max_tokens=5)))
    assert out.usage.completion_tokens == 5 and out.completions[0].finish_reason == "length"


def test_stop_strings_cut_the_answer(models):
    r = runner(models["thinker"], think_start="none")
    full = run(r.generate(ask("Compute 3 + 4", max_tokens=12))).completions[0].text.split()
    k = 4
    while full[k] in full[:k]:
        k += 1
    out = run(r.generate(ask("Compute 3 + 4", max_tokens=12, stop=[full[k], "never"])))
    c = out.completions[0]
    assert c.text == " ".join(full[:k]) and c.finish_reason == "stop"
    assert out.usage.completion_tokens == k + 1  # generation ended on the stop's token


def test_bfloat16_on_cpu(models):
    r = runner(models["thinker"], dtype="bfloat16", device="cpu")
    out = run(r.generate(ask("Compute 3", max_tokens=3, thinking_budget=1)))
    assert out.usage.completion_tokens == 3 and out.usage.reasoning_tokens == 1


def test_bad_options_are_config_errors(models, tmp_path):
    with pytest.raises(ConfigError, match="dtype must be"):
        runner(models["thinker"], dtype="float64")
    with pytest.raises(ConfigError, match="no option 'colour'"):
        runner(models["thinker"], colour="red")
    with pytest.raises(ConfigError, match="--base-url is for openai"):
        runner(models["thinker"], base_url="http://localhost:1/v1")
    with pytest.raises(ConfigError, match="bad option value"):
        runner(models["thinker"], batch_size="lots")
    with pytest.raises(ConfigError, match="no such model directory"):
        runner(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="cannot load the model"):
        runner(tmp_path / "empty")
    with pytest.raises(ConfigError, match="both"):
        runner(models["thinker"], think_start="<reasoning>")
    plain = runner(models["thinker"], think_start="none")
    with pytest.raises(RunnerError, match="needs a thinking model"):
        run(plain.generate(ask("hmm", thinking_budget=4)))


def test_end_to_end_through_the_orchestrator(models, tmp_path):
    spec = f"hf/{models['thinker']}"
    config = RunConfig(tasks=["arithmetic"], models=[spec], task_params={"count": "4"},
                       max_tokens=8, thinking_budgets=[2], concurrency=4,
                       model_options={"batch_size": "4"})
    stats = execute(config, RunLog(tmp_path / "run"), [])
    records = list(iter_records(tmp_path / "run" / "samples.jsonl"))
    assert stats.done == 4 and stats.errors == 0 and len(records) == 4
    for rec in records:
        assert rec["model"] == spec and rec["status"] in ("ok", "no_answer")
        assert rec["usage"]["reasoning"] == 2 and rec["usage"]["completion"] == 8
        assert len(rec["reasoning"].split()) == 2


def test_delimiters_are_configurable_per_family(models):
    # A family whose thought is "hmm ... ok": ordinary words here, escapes as the CLI sends them.
    r = runner(models["thinker"], think_start="hmm", think_end="ok",
               think_end_insert="\\nok\\n\\n")
    assert (r.think.start, r.think.end, r.think.end_insert) == ("hmm", "ok", "\nok\n\n")
    out = run(r.generate(ask("Compute 3", max_tokens=12, thinking_budget=4)))
    c = out.completions[0]
    assert count(r, c.reasoning) == out.usage.reasoning_tokens <= 4
    assert "ok" not in c.reasoning.split()
    assert out.usage.completion_tokens == 12
    # The template does not open "hmm": the runner opened it, and counts it as prompt.
    assert out.usage.prompt_tokens == prompt_len(r, ask("Compute 3")) + 1


def test_split_generation_finds_the_thought():
    from runners.hf_think import ThinkConfig, split_generation

    think = ThinkConfig("<think>", "</think>", "\n</think>\n\n", "Wait", 0, (1,), (2,), (2,), (9,))
    assert split_generation([5, 6, 2, 7], think, opened=True).thought == [5, 6]
    assert split_generation([5, 6, 2, 7], think, opened=True).answer == [7]
    assert split_generation([1, 5, 2, 7], think, opened=False).thought == [5]
    assert split_generation([5, 6], think, opened=True).answer == []  # never closed
    plain = split_generation([5, 6, 7], think, opened=False)
    assert plain.thought is None and plain.answer == [5, 6, 7]
    assert split_generation([5, 2, 7], None, opened=True).answer == [5, 2, 7]


def test_cache_identity_follows_the_checkpoint_and_options(models, tmp_path):
    import os
    import shutil

    copy = tmp_path / "ckpt"
    shutil.copytree(models["thinker"], copy)
    first = runner(copy).cache_identity
    assert runner(copy).cache_identity == first
    assert runner(copy, dtype="bfloat16").cache_identity != first
    weights = next(p for p in copy.iterdir() if p.suffix == ".safetensors")
    stamp = weights.stat().st_mtime + 100
    os.utime(weights, (stamp, stamp))  # "retrained" at the same path
    assert runner(copy).cache_identity != first
