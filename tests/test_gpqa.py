"""GPQA task (issue 4): loader, shuffle, prompts, extraction, scoring, breakdown."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import tasks.gpqa  # noqa: F401 - registers the task
from evals.task import TaskError, registry
from tasks.choice import extract_choice, parse_choice
from tasks.extract import (boxed_contents, last_answer_line, last_boxed, split_think,
                           strip_think)
from tasks.gpqa import (COT_TEMPLATE, DIRECT_TEMPLATE, breakdown, correct_letter,
                        make_sample, permutation, score)
from tasks.gpqa.data import SAMPLE_FILE, Record, load_hub, read_file
from evals.stats import wilson_interval as wilson

REPO = Path(__file__).resolve().parent.parent
TABLE = Path(__file__).parent / "data" / "gpqa_extraction.jsonl"
COLUMNS = ["Record ID", "High-level domain", "Subdomain", "Question", "Correct Answer",
           "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]


def build(**params):
    return registry()["gpqa"].build(params)


def text(task, sample):
    (message,) = task.prompt(sample)
    assert message["role"] == "user"
    return message["content"]


def rows(n=3):
    return [{"Record ID": f"recT{i}", "High-level domain": "Physics" if i % 2 else "Biology",
             "Subdomain": "Optics" if i % 2 else "Genetics",
             "Question": f"Question {i}, with a comma\nand a second line?",
             "Correct Answer": f"right {i}", "Incorrect Answer 1": f"wrong {i}.1",
             "Incorrect Answer 2": f"wrong {i}.2", "Incorrect Answer 3": f"wrong {i}.3"}
            for i in range(n)]


def write_csv(path: Path, data, columns=COLUMNS):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(data)
    return path


def write_jsonl(path: Path, data):
    path.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    return path


# ------------------------------------------------------------------ loading


def test_registered_with_typed_params():
    spec = registry()["gpqa"]
    params = {p.name: p for p in spec.params}
    assert list(params) == ["subset", "path", "shuffle_seed", "cot", "template", "truncated"]
    assert params["subset"].default == "diamond" and params["shuffle_seed"].default == 0
    assert params["cot"].default is True and params["path"].default is None
    assert spec.description


def test_import_is_cheap():
    code = "import sys, tasks.gpqa, tasks.extract; assert 'datasets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


@pytest.mark.parametrize("writer,name", [(write_csv, "q.csv"), (write_jsonl, "q.jsonl")])
def test_loader_reads_gpqa_columns(tmp_path, writer, name):
    path = writer(tmp_path / name, rows(3))
    task = build(path=str(path))
    samples = list(task.samples())
    assert [s.id for s in samples] == ["recT0", "recT1", "recT2"]
    for i, s in enumerate(samples):
        assert s.metadata["domain"] == ("Physics" if i % 2 else "Biology")
        assert s.metadata["subdomain"] == ("Optics" if i % 2 else "Genetics")
        assert sorted(s.metadata["choices"]) == sorted(
            [f"right {i}", f"wrong {i}.1", f"wrong {i}.2", f"wrong {i}.3"])
        letter = s.target
        assert s.metadata["choices"]["ABCD".index(letter)] == f"right {i}"
        assert s.metadata["choice_ids"]["ABCD".index(letter)] == "correct"
        assert s.input == f"Question {i}, with a comma\nand a second line?"
        assert s.input in text(task, s)
        assert s.solution == f"ANSWER: {letter}"


def test_loader_optional_columns_and_values(tmp_path):
    data = [{"Question": "Q?", "Correct Answer": 3, "Incorrect Answer 1": 4,
             "Incorrect Answer 2": "5", "Incorrect Answer 3": " 6 "}]
    (record,) = read_file(write_jsonl(tmp_path / "q.jsonl", data))
    assert record.options == ("3", "4", "5", "6")
    assert record.record_id.startswith("q-") and record.domain == ""
    # the fallback id follows the content, so the shuffle is stable too
    (again,) = read_file(write_jsonl(tmp_path / "r.jsonl", data))
    assert again.record_id == record.record_id


def test_bundled_sample():
    samples = list(build(path="sample").samples())
    assert len(samples) >= 12
    domains = Counter(s.metadata["domain"] for s in samples)
    assert set(domains) == {"Biology", "Chemistry", "Physics"}
    assert all(s.metadata["subdomain"] for s in samples)
    assert len({s.id for s in samples}) == len(samples)
    assert all(s.metadata["source"] == "sample" for s in samples)
    with open(SAMPLE_FILE, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert {"Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
            "Incorrect Answer 3", "Record ID", "High-level domain", "Subdomain"} <= set(header)


def test_malformed_csv_rows_name_file_and_line(tmp_path):
    data = rows(3)
    data[2]["Correct Answer"] = "   "
    path = write_csv(tmp_path / "gpqa.csv", data)
    # rows 0 and 1 have two-line questions: header line 1, rows at 2-3, 4-5, 6-7
    with pytest.raises(TaskError, match=rf"^{path}:6: empty 'Correct Answer'$"):
        list(build(path=str(path)).samples())

    path = write_csv(tmp_path / "nocol.csv", rows(2),
                     [c for c in COLUMNS if c != "Correct Answer"])
    with pytest.raises(TaskError, match=rf"^{path}:1: missing column 'Correct Answer'"):
        read_file(path)

    path = tmp_path / "short.csv"
    path.write_text("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,"
                    "Incorrect Answer 3\nQ1,a,b,c,d\n\nQ2,a,b\n", encoding="utf-8")
    with pytest.raises(TaskError, match=rf"^{path}:4: missing column 'Incorrect Answer 2'$"):
        read_file(path)

    path = tmp_path / "long.csv"
    path.write_text("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,"
                    "Incorrect Answer 3\nQ1,a,b,c,d,e\n", encoding="utf-8")
    with pytest.raises(TaskError, match=rf"^{path}:2: 6 fields, but the header has 5"):
        read_file(path)


def test_malformed_jsonl_rows_name_file_and_line(tmp_path):
    data = rows(3)
    del data[2]["Correct Answer"]
    path = tmp_path / "gpqa.jsonl"
    path.write_text(json.dumps(data[0]) + "\n\n" + json.dumps(data[1]) + "\n"
                    + json.dumps(data[2]) + "\n", encoding="utf-8")
    with pytest.raises(TaskError, match=rf"^{path}:4: missing column 'Correct Answer'$"):
        read_file(path)

    path.write_text(json.dumps(rows(1)[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(TaskError, match=rf"^{path}:2: invalid JSON"):
        read_file(path)

    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(TaskError, match=rf"^{path}:1: expected an object"):
        read_file(path)

    dup = rows(2)
    dup[1]["Record ID"] = dup[0]["Record ID"]
    path = write_jsonl(tmp_path / "dup.jsonl", dup)
    with pytest.raises(TaskError, match=rf"^{path}:2: duplicate Record ID 'recT0' "
                                        rf"\(first at {path}:1\)$"):
        read_file(path)


def test_missing_file_and_bad_params(tmp_path):
    with pytest.raises(TaskError, match="no such file"):
        list(build(path=str(tmp_path / "nope.csv")).samples())
    with pytest.raises(TaskError, match="subset='tiny' must be one of diamond, main, extended"):
        build(subset="tiny")
    with pytest.raises(TaskError, match="subset='gpqa_tiny' must be one of"):
        build(subset="gpqa_tiny")
    with pytest.raises(TaskError, match="not a valid int"):
        build(shuffle_seed="x")


def test_subset_names_with_the_hub_prefix_load_that_subset(monkeypatch):
    import tasks.gpqa

    asked = []

    def fake_hub(subset):
        asked.append(subset)
        return read_file(SAMPLE_FILE)

    monkeypatch.setattr(tasks.gpqa, "load_hub", fake_hub)
    for name in ("gpqa_main", "GPQA_Main", "main"):
        samples = list(build(subset=name).samples())
        assert samples and {s.metadata["source"] for s in samples} == {"hub:gpqa_main"}
    assert asked == ["main"] * 3


def test_hub_loader_offline_message(tmp_path, monkeypatch):
    import datasets  # imported before the variables are set: they must still count
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    before = datasets.config.HF_HUB_OFFLINE
    with pytest.raises(TaskError) as err:
        load_hub("diamond", cache_dir=str(tmp_path / "empty-cache"))
    message = str(err.value)
    assert "Idavidrein/gpqa" in message and "gpqa_diamond" in message
    assert "gated" in message and "huggingface-cli login" in message
    assert "-T path=" in message and "offline" in message.lower()
    assert "\n" not in message
    assert datasets.config.HF_HUB_OFFLINE == before  # restored
    # through the task: building is lazy, loading fails with the same advice
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    task = build(subset="main")
    with pytest.raises(TaskError, match="gpqa_main.*huggingface-cli login"):
        list(task.samples())


# ------------------------------------------------------------------ shuffle


def test_shuffle_matches_documented_formula():
    perms = list(itertools.permutations(range(4)))
    for i in range(200):
        rid = f"rec{i:04d}"
        digest = hashlib.sha256(f"gpqa:7:{rid}".encode()).digest()
        assert permutation(rid, 7) == perms[int.from_bytes(digest[:8], "big") % 24]
    # pinned, so a change of algorithm cannot slip through
    assert permutation("recDemoPhys0001", 0) == (0, 2, 1, 3)
    assert correct_letter("recDemoPhys0001", 0) == "A"


def test_shuffle_deterministic_and_seeded():
    a = [s.metadata["choices"] for s in build(path="sample").samples()]
    b = [s.metadata["choices"] for s in build(path="sample", shuffle_seed=0).samples()]
    c = [s.metadata["choices"] for s in build(path="sample", shuffle_seed="1").samples()]
    assert a == b and a != c
    ids = [f"rec{i:05d}" for i in range(400)]
    changed = sum(permutation(r, 0) != permutation(r, 1) for r in ids)
    assert changed > 300  # 23/24 expected


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_correct_letter_uniform(seed):
    n = 4000
    counts = Counter(correct_letter(f"rec{i:05d}", seed) for i in range(n))
    expected = n / 4
    chi2 = sum((counts[x] - expected) ** 2 / expected for x in "ABCD")
    assert chi2 < 16.27, counts  # p = 0.001 with 3 degrees of freedom; fixed ids, no flake
    # and the whole permutation is spread over all 24 orders
    perms = Counter(permutation(f"rec{i:05d}", seed) for i in range(n))
    assert len(perms) == 24 and min(perms.values()) > n / 24 / 2


# ------------------------------------------------------------------ prompt


def test_cot_prompt_format():
    task = build(path="sample")
    s = next(iter(task.samples()))
    prompt = text(task, s)
    assert prompt == COT_TEMPLATE.format(question=s.input, A=s.metadata["choices"][0],
                                         B=s.metadata["choices"][1], C=s.metadata["choices"][2],
                                         D=s.metadata["choices"][3])
    assert prompt.startswith("Answer the following multiple-choice question. Think step by step")
    assert '"ANSWER: X"' in prompt
    lines = prompt.splitlines()
    assert [ln[:3] for ln in lines[-4:]] == ["A) ", "B) ", "C) ", "D) "]
    assert [ln[3:] for ln in lines[-4:]] == s.metadata["choices"]
    assert "$x=2L$" in prompt  # LaTeX in the question is left alone


def test_direct_prompt_and_custom_template(tmp_path):
    task = build(path="sample", cot="false")
    prompt = text(task, next(iter(task.samples())))
    assert prompt.startswith(DIRECT_TEMPLATE.split("{question}")[0])
    assert "step by step" not in prompt

    t = "Q: {question}\n{choices}\nKeep \\frac{a}{b} and {other} as they are."
    task = build(path="sample", template=t)
    prompt = text(task, next(iter(task.samples())))
    assert prompt.startswith("Q: A particle")
    assert "\nA) " in prompt and "\nD) " in prompt
    assert prompt.endswith("Keep \\frac{a}{b} and {other} as they are.")

    f = tmp_path / "t.txt"
    f.write_text("{question}\n(A) {A}\n(B) {B}\n(C) {C}\n(D) {D}\nANSWER: ?", encoding="utf-8")
    task = build(path="sample", template="@" + str(f))
    s = next(iter(task.samples()))
    assert "\n(A) " + s.metadata["choices"][0] + "\n" in text(task, s)

    with pytest.raises(TaskError, match=r"must contain \{question\}"):
        build(template="{choices}")
    with pytest.raises(TaskError, match=r"\{choices\} or all of"):
        build(template="{question} {A} {B}")
    with pytest.raises(TaskError, match="template=@"):
        build(template="@" + str(tmp_path / "missing.txt"))


# ------------------------------------------------------------------ extraction


def load_table():
    return [json.loads(line) for line in TABLE.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def test_extraction_table_size_and_kinds():
    table = load_table()
    assert len(table) >= 60
    kinds = Counter(r["kind"] for r in table)
    for kind in ("answer_line", "boxed", "phrase", "option_text", "lowercase", "think",
                 "several", "lone_letter", "none"):
        assert kinds[kind] >= 3, kind
    assert sum(r["expected"] is None for r in table) >= 8


REASONING_TABLE = Path(__file__).parent / "data" / "gpqa_reasoning.jsonl"


def scored_letter(row) -> str | None:
    """The letter the gpqa task credits (default policy: none from unclosed reasoning)."""
    found = extract_choice(row["completion"], row["options"])
    return found.letter if found and found.where != "unclosed_reasoning" else None


@pytest.mark.parametrize("row", load_table(), ids=lambda r: f"{r['kind']}:{r['completion'][:30]!r}")
def test_extraction_table(row):
    assert scored_letter(row) == row["expected"]


def test_reasoning_table_is_read_exactly():
    """Completions in reasoning-model style, labelled from the text alone: every
    label met, so no false commitment (an answer where a reader sees none) and no
    wrong letter."""
    rows = [json.loads(x) for x in REASONING_TABLE.read_text(encoding="utf-8").splitlines()
            if x.strip()]
    assert len(rows) >= 200 and sum(r["expected"] is None for r in rows) >= 40
    wrong = [(r["id"], r["expected"], scored_letter(r)) for r in rows
             if scored_letter(r) != r["expected"]]
    false_commits = [w for w in wrong if w[1] is None]
    assert false_commits == []
    assert wrong == []


def test_fresh_reasoning_table_has_no_false_commit_or_wrong_letter():
    """A second table, written after the extractor was tuned on the first. Misses (an
    answer only a reader who follows the argument can place, e.g. "That's the one I'd
    pick" after a discussion of D) are allowed; committing where a reader sees nothing,
    or to the wrong letter, is not."""
    path = Path(__file__).parent / "data" / "gpqa_reasoning_fresh.jsonl"
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    got = {r["id"]: scored_letter(r) for r in rows}
    wrong = [(r["id"], r["expected"], got[r["id"]]) for r in rows
             if got[r["id"]] is not None and got[r["id"]] != r["expected"]]
    assert wrong == []
    right = sum(got[r["id"]] == r["expected"] for r in rows)
    assert right / len(rows) >= 0.95


def test_extraction_helpers():
    visible, reasoning = split_think("<think>a</think>B<think>c")
    assert visible.strip() == "B" and reasoning == "a\nc"
    assert strip_think("r1\n</think>\nfinal") .strip() == "final"
    assert last_boxed(r"x \boxed{\frac{1}{2}} y \boxed{\text{C}}") == r"\text{C}"
    assert [c for _, c in boxed_contents(r"\boxed{a{b{c}}d}")] == ["a{b{c}}d"]
    assert last_boxed(r"\boxed{unclosed") is None
    assert last_answer_line("Answer: A\nmore\n**ANSWER:** C  \n") == "C"
    assert parse_choice(" (b) 42") == "B"
    assert parse_choice("a photon") is None and parse_choice("a.") == "A"
    assert parse_choice("E") is None and parse_choice("E", letters="ABCDE") == "E"


# The cases: commitments read in order, takebacks, asides, truncation.
COMMITMENT_CASES = [
    ("Answer: B can't be right, since it ignores the degeneracy. Working through the "
     "levels gives D.", "D", "conclusion"),
    ("ANSWER: B\n\nHold on, I dropped a factor of two. Redoing it, the correct answer is D.",
     "D", "phrase"),
    ("Is the answer: B? No. The spin factor doubles it, so **D**.", "D", "conclusion"),
    ("Having ruled out A and C, only D remains as the answer.", "D", "elimination"),
    ("(C)\nBut the answer: C fails a check on units.\nThe correct answer is B.", "B", "phrase"),
    ("ANSWER: C\n\nNote that B would be right if the field were reversed.", "C",
     "answer_line"),
    ("ANSWER: C\n\nThis points to a subtle effect; B is a common trap.", "C", "answer_line"),
    ("Answer: B. Hmm, actually no, it's D.", "D", "conclusion"),
    ("If the field were reversed, the answer would be B. It is not, so the answer is D.",
     "D", "phrase"),
    ("If we account for the degeneracy, the answer is D.", "D", "phrase"),
    ("Not A or B; the answer is C", "C", "phrase"),
    ("Could it be (A)? No. Could it be (C)? Yes, that works. So it's C.", "C", "conclusion"),
]
NOT_COMMITTED = [
    "The total available is 33.9 MeV, which is split between",
    "Options:\nA) 4.1 MeV\nB) 29.8 MeV\nC) 33.9 MeV\nD) 16.9 MeV",
    "The answer is (A) or maybe (B); I'm unsure.",
    "the answer is a factor of two larger than the naive estimate",
    "Is the answer B? Let me check the units first, then",
]


@pytest.mark.parametrize("text,letter,rule", COMMITMENT_CASES)
def test_extraction_reads_the_final_commitment(text, letter, rule):
    found = extract_choice(text, ["4.1 MeV", "29.8 MeV", "33.9 MeV", "16.9 MeV"])
    assert (found.letter, found.rule, found.where) == (letter, rule, "text")


# Found by a review that tried to break the extractor: abbreviations, checking asides,
# retractions, tag questions, reported speech, hedges, hypotheticals, named letters.
REVIEW_CASES = [
    ("Answer: B\n\nForgetting the factor 1/2 gives 10 J, i.e. D.", "B"),
    ("Answer: B\n\nNote: the series value is 2.5 J vs. A.", "B"),
    ("Answer: B\n\nDouble-check: doubling the voltage would give 10 J, that's D.", "B"),
    ("Answer: B\n\nHmm, a student who forgets the 1/2 gets 10 J, which is D.", "B"),
    ("**Answer: B**\n\nNo, wait. I'll keep B. (D would be the answer if the 1/2 were "
     "missing, so D.)", "B"),
    ("The answer is B.\n\nHmm, for comparison the series case gives A.", "B"),
    ("<think>So the answer is B. Wait, that's wrong: I dropped a factor of 2. Let me "
     "recompute.</think>", None),
    ("Answer: B. Wait, that contradicts step 2. Let me redo step 2.", None),
    ("The answer is B, right?", None),
    ("Option C is correct?", None),
    ("My friend said the answer is B.", None),
    ("I think the answer is B, but it could also be C", None),
    ("Final answer: probably B, but possibly D", None),
    ("So the answer is C, or", None),
    ("Let's say the answer is C and check consistency.", None),
    ("So far it's B. Let me check C.", None),
    ("A naive calculation gives \\boxed{B}.", None),
    ("One would get \\boxed{B} if the battery were disconnected.", None),
    ("Hmm, C is the capacitance so C is correct dimensionally for charge Q = CV.", None),
    ("\\boxed{B} is what a naive calculation gives, but the correct answer is \\boxed{D}", "D"),
    ("I initially thought the answer is B, but it's D.", "D"),
    ("The answer is not B but D.", "D"),
    ("Answer: (C) is incorrect; the right one is (D).", "D"),
    ("If we choose C, the energy is 7.5 J, too high. So we choose B.", "B"),
    ("The answer is B.\nWait, A gives 2.5 J. So A is out.", "B"),
]


@pytest.mark.parametrize("text,letter", REVIEW_CASES)
def test_review_cases(text, letter):
    assert scored_letter({"completion": text,
                          "options": ["5.0 J", "2.5 J", "1.25 J", "10 J"]}) == letter


@pytest.mark.parametrize("text", NOT_COMMITTED)
def test_extraction_of_uncommitted_text_is_none(text):
    assert extract_choice(text, ["4.1 MeV", "29.8 MeV", "33.9 MeV", "16.9 MeV"]) is None


def test_changed_mind_lists_every_committed_letter():
    found = extract_choice("ANSWER: B\nWait, I made an error. The correct answer is D.")
    assert found.letter == "D" and found.committed == ("B", "D")


def test_unclosed_reasoning_is_no_answer_by_default():
    s = next(iter(build(path="sample").samples()))
    cut = f"<think>Working it through: ANSWER: {s.target}. Now to verify it with the"
    found = extract_choice(cut, s.metadata["choices"])
    assert (found.letter, found.where) == (s.target, "unclosed_reasoning")
    default = score(s, cut)
    assert (default.value, default.answer, default.status) == (0.0, None, "no_answer")
    assert default.metadata["where"] == "unclosed_reasoning"
    credited = build(path="sample", truncated="extract").scorer(s, cut)
    assert (credited.value, credited.status) == (1.0, "ok")
    closed = score(s, f"<think>So ANSWER: {s.target}</think>")
    assert (closed.value, closed.metadata["where"]) == (1.0, "reasoning")
    with pytest.raises(TaskError, match="truncated"):
        build(path="sample", truncated="maybe")


# ------------------------------------------------------------------ scoring


def test_gold_solutions_all_score_one():
    for params in ({}, {"shuffle_seed": 3}, {"cot": False}):
        task = build(path="sample", **params)
        for s in task.samples():
            result = task.scorer(s, s.solution)
            assert (result.value, result.status, result.answer) == (1.0, "ok", "correct"), s.id


def test_scorer_wrong_and_no_answer():
    s = next(iter(build(path="sample").samples()))
    wrong = next(x for x in "ABCD" if x != s.target)
    result = score(s, f"ANSWER: {wrong}")
    assert result.value == 0.0 and result.status == "ok"
    assert result.answer == s.metadata["choice_ids"]["ABCD".index(wrong)]
    assert result.answer.startswith("incorrect")
    assert result.metadata["letter"] == wrong and result.metadata["rule"] == "answer_line"
    nothing = score(s, "I cannot tell.")
    assert (nothing.value, nothing.answer, nothing.status) == (0.0, None, "no_answer")


def test_votes_count_the_option_not_the_letter():
    record = Record("recVote", "Which?", ("right", "wrong one", "wrong two", "wrong three"),
                    "Physics", "Optics", "x:2")
    seeds = [seed for seed in range(50)]
    samples = [make_sample(record, seed) for seed in seeds]
    letters = {s.metadata["choices"].index("wrong two") for s in samples}
    assert len(letters) == 4  # the option sits under every letter for some seed
    answers = set()
    for s in samples:
        letter = "ABCD"[s.metadata["choices"].index("wrong two")]
        answers.add(score(s, f"So... ANSWER: {letter}").answer)
        answers.add(score(s, "The answer is wrong two.").answer)
    assert answers == {"incorrect2"}
    right = {score(s, f"ANSWER: {s.target}").answer for s in samples}
    assert right == {"correct"}


# ------------------------------------------------------------------ breakdown


def rec(sid, value, status, domain, sub):
    return {"sample_id": sid, "score": value, "status": status,
            "metadata": {"domain": domain, "subdomain": sub}}


def test_breakdown_numbers():
    records = [
        rec("p1", 1.0, "ok", "Physics", "Optics"),
        rec("p2", 0.0, "no_answer", "Physics", "Optics"),
        rec("p3", 1.0, "ok", "Physics", "Astrophysics"),
        rec("c1", 0.0, "ok", "Chemistry", "Organic Chemistry"),
        rec("c2", None, "error", "Chemistry", "Organic Chemistry"),
    ]
    rows_ = breakdown(records)
    assert [(r["level"], r["domain"], r["subdomain"]) for r in rows_] == [
        ("overall", None, None), ("domain", "Chemistry", None),
        ("subdomain", "Chemistry", "Organic Chemistry"), ("domain", "Physics", None),
        ("subdomain", "Physics", "Astrophysics"), ("subdomain", "Physics", "Optics")]
    overall = rows_[0]
    assert (overall["n"], overall["records"], overall["errors"]) == (4, 4, 1)
    assert overall["accuracy"] == 0.5 and overall["interval"] == "wilson"
    assert overall["ci_low"] == pytest.approx(0.1500, abs=1e-4)
    assert overall["ci_high"] == pytest.approx(0.8500, abs=1e-4)
    assert (overall["no_answer"], overall["no_answer_rate"]) == (1, 0.25)
    chem = rows_[1]
    assert (chem["n"], chem["accuracy"], chem["errors"]) == (1, 0.0, 1)
    assert chem["ci_low"] == 0.0 and chem["ci_high"] == pytest.approx(0.7935, abs=1e-4)
    physics = rows_[3]
    assert physics["accuracy"] == pytest.approx(2 / 3)
    assert (physics["ci_low"], physics["ci_high"]) == pytest.approx(wilson(2, 3))
    assert physics["no_answer_rate"] == pytest.approx(1 / 3)
    optics = rows_[5]
    assert (optics["n"], optics["accuracy"], optics["no_answer"]) == (2, 0.5, 1)


def test_breakdown_several_generations_and_empty():
    gen = [("a", 1.0, "ok"), ("a", 0.0, "ok"), ("b", 1.0, "ok"), ("b", 1.0, "ok"),
           ("c", 0.0, "no_answer"), ("c", 0.0, "ok")]
    records = [rec(sid, value, status, "Biology", "Genetics") for sid, value, status in gen]
    overall = breakdown(records)[0]
    assert overall["n"] == 3 and overall["records"] == 6
    assert overall["accuracy"] == pytest.approx(0.5) and overall["interval"] == "clt"
    sd = math.sqrt(((0.5 - 0.5) ** 2 + 0.5 ** 2 + 0.5 ** 2) / 2)
    assert overall["ci_low"] == pytest.approx(max(0.0, 0.5 - 1.959964 * sd / math.sqrt(3)))
    assert overall["no_answer_rate"] == pytest.approx(1 / 6)
    only_errors = breakdown([{"sample_id": "x", "score": None, "status": "error", "metadata": {}}])
    assert only_errors[0]["accuracy"] is None and only_errors[0]["errors"] == 1
    assert only_errors[1]["domain"] == "(none)"


def test_scored_sample_records_feed_breakdown():
    task = build(path="sample")
    records = []
    for s in task.samples():
        result = task.scorer(s, s.solution if s.metadata["domain"] != "Biology" else "no idea")
        records.append({"sample_id": s.id, "score": result.value, "status": result.status,
                        "metadata": s.metadata})
    by = {(r["level"], r["domain"]): r for r in breakdown(records)}
    assert by[("domain", "Physics")]["accuracy"] == 1.0
    assert by[("domain", "Biology")]["accuracy"] == 0.0
    assert by[("domain", "Biology")]["no_answer_rate"] == 1.0
