"""The math task (issue 5): extraction, loaders, redaction, custom verifiers,
gold validation of the bundled sample."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import sys
from pathlib import Path

import pytest

import tasks.math  # noqa: F401 - registers the task
from evals.task import Sample, TaskError, registry
from tasks.math import extract_answer
from tasks.math.data import read_hub
from tasks.math.pool import VerifierPool

from tests.conftest import TEST_EXTRA, alive, require, run_cli

REPO = Path(__file__).resolve().parent.parent
ROWS = [{"id": "a", "problem": "What is 1+1?", "answer": "2", "level": 1},
        {"id": "b", "problem": "Half of one, as a fraction?", "answer": "\\frac{1}{2}",
         "solution": "It is $\\boxed{0.5}$."},
        {"id": "c", "problem": "Solve x^2=4, comma-separated.", "answer": "-2, 2", "topic": "algebra"}]


@pytest.fixture(scope="module")
def pool():
    p = VerifierPool(size=2)
    yield p
    p.close()


def build(**params):
    return registry()["math"].build({k: str(v) for k, v in params.items()})


def score(task, sample: Sample, text: str, pool=None):
    if pool is not None:
        task.scorer._pool = pool
    return asyncio.run(task.scorer(sample, text))


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------ extraction

EXTRACTION = [
    ("We get \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", "boxed"),
    ("first \\boxed{1} then \\boxed{\\{1, \\{2\\}\\}}", "\\{1, \\{2\\}\\}", "boxed"),
    ("\\fbox{7}", "7", "boxed"),
    ("$\\boxed{\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}}$",
     "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "boxed"),
    ("Work...\nAnswer: $x = 3$.", "$x = 3$", "answer_line"),
    ("**Final Answer:** 12 cm", "12 cm", "answer_line"),
    ("\\boxed{3}\nOn reflection, Answer: 4", "4", "answer_line"),
    ("Answer: 4, no wait: \\boxed{5}", "5", "boxed"),
    ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "$\\frac{3}{4}$",
     "answer_line"),
    ("Thus the answer is 3.5.", "3.5", "phrase"),
    ("<think>try \\boxed{3}</think>\nThe answer is \\boxed{4}", "4", "boxed"),
    ("The value is 42 and nothing is marked", None, None),
    ("\\boxed{}", None, None),
]


@pytest.mark.parametrize("text,expected,rule", EXTRACTION)
def test_extraction(text, expected, rule):
    found = extract_answer(text)
    if expected is None:
        assert found is None, found
        return
    assert found is not None and found.where == "text", found
    assert (found.text, found.rule) == (expected, rule), found


def test_reasoning_is_a_fallback():
    found = extract_answer("<think>\\boxed{3}</think> I am not sure.")
    assert found is not None and found.where == "reasoning" and found.text == "3"
    found = extract_answer("<think>try \\boxed{3}</think>\nso it is 4")  # nothing marked after
    assert (found.text, found.rule, found.where) == ("3", "boxed", "reasoning")
    found = extract_answer("<think>truncated while thinking \\boxed{6}")  # never closed
    assert (found.text, found.rule, found.where) == ("6", "boxed", "unclosed_reasoning")
    found = extract_answer("<think>\\boxed{3}</think> \\boxed{4}")
    assert found.where == "text" and found.text == "4"


def test_an_answer_only_in_cut_off_reasoning_is_no_answer_by_default(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "c", "problem": "2+4?", "answer": "6"}])
    cut = "<think>so far it looks like \\boxed{6} but let me check the"
    default = build(path=path)
    (s,) = default.samples()
    got = score(default, s, cut)
    assert (got.value, got.status, got.answer) == (0.0, "no_answer", None)
    assert got.metadata["where"] == "unclosed_reasoning" and "unfinished" in got.explanation
    credited = build(path=path, truncated="extract")
    (s,) = credited.samples()
    got = score(credited, s, cut)
    assert (got.value, got.status, got.metadata["where"]) == (1.0, "ok", "unclosed_reasoning")
    with pytest.raises(TaskError, match="truncated"):
        build(path=path, truncated="maybe")


def test_answer_regex():
    pattern = re.compile(r"RESULT=(?P<answer>[^;]+);")
    assert extract_answer("RESULT=5; RESULT=7; \\boxed{9}", pattern).text == "7"
    assert extract_answer("no match, \\boxed{9}", pattern).text == "9"  # then the defaults
    assert extract_answer("x #12#", re.compile(r"#(\d+)#")).text == "12"
    task = build(path="sample", answer_regex=r"FINAL\[(.+?)\]")
    sample = next(s for s in task.samples() if s.id == "s01")
    assert score(task, sample, "FINAL[391] and \\boxed{1}").value == 1.0
    with pytest.raises(TaskError, match="not a valid regex"):
        build(path="sample", answer_regex="(")


# ------------------------------------------------------------------ loading


def test_formats_agree(tmp_path):
    import pandas as pd

    write_jsonl(tmp_path / "p.jsonl", ROWS)
    (tmp_path / "p.json").write_text(json.dumps(ROWS), encoding="utf-8")
    with open(tmp_path / "p.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["id", "problem", "answer", "solution", "level", "topic"])
        w.writeheader()
        w.writerows(ROWS)
    pd.DataFrame(ROWS).to_parquet(tmp_path / "p.parquet")
    seen = {}
    for name in ("p.jsonl", "p.json", "p.csv", "p.parquet"):
        samples = list(build(path=tmp_path / name).samples())
        seen[name] = [(s.id, s.target) for s in samples]
        assert "What is 1+1?" in samples[0].input and "\\boxed{}" in samples[0].input
        assert samples[1].solution == "It is $\\boxed{0.5}$."
        assert samples[0].solution.endswith("\\boxed{2}")  # no solution: the answer, boxed
        assert samples[2].metadata["topic"] == "algebra"
    assert len({tuple(v) for v in seen.values()}) == 1, seen


def test_directory(tmp_path):
    write_jsonl(tmp_path / "one.jsonl", ROWS[:2])
    sub = tmp_path / "more"
    sub.mkdir()
    write_jsonl(sub / "two.jsonl", [{"problem": "p", "answer": "1"}, {"problem": "q", "answer": "2"}])
    (tmp_path / ".hidden.jsonl").write_text("garbage\n")
    (tmp_path / "notes.txt").write_text("ignored\n")
    ids = [s.id for s in build(path=tmp_path).samples()]
    assert ids == ["more/two-1", "more/two-2", "a", "b"]  # files sorted by relative path


def test_field_mapping_and_aliases(tmp_path):
    path = write_jsonl(tmp_path / "aime.jsonl", [{"ID": "2024-I-1", "Question": "Q?", "Answer": 204}])
    (s,) = build(path=path).samples()
    assert (s.id, s.target) == ("2024-I-1", "204")
    path = write_jsonl(tmp_path / "odd.jsonl", [{"k": "x1", "text": "Q?", "gold_value": "3"}])
    (s,) = build(path=path, fields="id=k,problem=text,answer=gold_value").samples()
    assert (s.id, s.target) == ("x1", "3")
    with pytest.raises(TaskError, match="OURS=THEIRS"):
        build(path=path, fields="nonsense")


@pytest.mark.parametrize("content,where,message", [
    ('{"problem": "p", "answer": "1"}\n{"problem": "q", "answer": "2"}\n{bad json\n', ":3", "invalid JSON"),
    ('{"problem": "p", "answer": "1"}\n\n{"problem": "q"}\n', ":3", "missing field 'answer'"),
    ('{"problem": "p", "answer": ""}\n', ":1", "empty field 'answer'"),
    ('{"problem": ["a"], "answer": "1"}\n', ":1", "'problem' is a list"),
    ('{"id": "x", "problem": "p", "answer": "1"}\n{"id": "x", "problem": "q", "answer": "2"}\n',
     ":2", "duplicate id 'x'"),
    ('[1, 2]\n', ":1", "expected an object"),
])
def test_malformed_jsonl_names_file_and_line(tmp_path, content, where, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TaskError) as e:
        list(build(path=path).samples())
    assert f"{path}{where}" in str(e.value) and message in str(e.value), str(e.value)


def test_malformed_csv_and_parquet(tmp_path):
    import pandas as pd

    path = tmp_path / "bad.csv"
    path.write_text('problem,answer\n"p",1\n"q",\n', encoding="utf-8")
    with pytest.raises(TaskError, match=re.escape(f"{path}:3: missing field 'answer'")):
        list(build(path=path).samples())
    path = tmp_path / "bad.parquet"
    pd.DataFrame([{"problem": "p", "answer": "1"}, {"problem": "q", "answer": None}]).to_parquet(path)
    with pytest.raises(TaskError, match=re.escape(f"{path}:row 2: missing field 'answer'")):
        list(build(path=path).samples())


def test_bad_parameters(tmp_path):
    with pytest.raises(TaskError, match="exactly one of"):
        build()
    with pytest.raises(TaskError, match="exactly one of"):
        build(path="sample", dataset="x/y")
    with pytest.raises(TaskError, match="no such file"):
        list(build(path=tmp_path / "missing.jsonl").samples())
    with pytest.raises(TaskError, match="must contain"):
        build(path="sample", template="no placeholder")


def test_hub_failure_is_a_clear_task_error(monkeypatch):
    datasets = require("datasets", hint=TEST_EXTRA)

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TaskError, match="cannot load HuggingFaceH4/MATH-500.*offline mode is on"):
        read_hub("math500", None, "test", {})
    task = build(dataset="HuggingFaceH4/MATH-500")  # building does not touch the network
    with pytest.raises(TaskError, match="-T path=FILE"):
        list(task.samples())


def test_hub_rows_are_mapped(monkeypatch):
    datasets = require("datasets", hint=TEST_EXTRA)
    rows = [{"problem": "P1", "solution": "so \\boxed{3}", "answer": "3", "subject": "Algebra",
             "level": 2, "unique_id": "test/algebra/1.json"}]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: rows)
    (s,) = build(dataset="math500").samples()
    assert s.id == "test/algebra/1.json" and s.target == "3" and s.metadata["subject"] == "Algebra"
    assert s.metadata["source"] == "hub:math500"


# ------------------------------------------------------------------ redaction


def test_redaction(tmp_path, pool):
    secret_problem = "What is the secret number of Zorblax?"
    path = write_jsonl(tmp_path / "private.jsonl", [
        {"id": "z1", "problem": secret_problem, "answer": "\\frac{7}{9}", "note": "x" * 500,
         "level": 3}])
    task = build(path=path, redact="true")
    (s,) = task.samples()
    assert secret_problem in s.input  # the model must see it...
    dumped = json.dumps(s.metadata)
    assert "Zorblax" not in dumped and "7}{9" not in dumped and "note" not in s.metadata
    assert s.metadata["level"] == 3
    assert re.fullmatch(r"h:[0-9a-f]{16}", str(s.target))
    right = score(task, s, "\\boxed{\\frac{14}{18}}", pool)
    also_right = score(task, s, "Answer: 7/9")
    wrong = score(task, s, "\\boxed{0.5}")
    assert right.value == 1.0 and also_right.value == 1.0 and wrong.value == 0.0
    assert right.answer == also_right.answer and right.answer.startswith("h:")
    leaks = ("7/9", "{7}", "{14}", "0.5", "frac")  # never inside a hex digest
    for sc in (right, wrong):
        text = sc.explanation + json.dumps(sc.metadata) + str(sc.answer)
        assert not any(leak in text for leak in leaks), text
    none = score(task, s, "no idea")
    assert none.status == "no_answer" and "{7}" not in none.explanation


def test_redacted_run_records(tmp_path):
    secret = "Compute the Quux constant."
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "q1", "problem": secret, "answer": "31337", "solution": "Done: \\boxed{31337}"}])
    plugin = tmp_path / "plugins"
    plugin.mkdir()
    (plugin / "register_math.py").write_text("import tasks.math  # noqa: F401\n")
    out = run_cli("validate", "math", "--tasks-dir", str(plugin), "-T", f"path={path}",
                  "-T", "redact=true", "--results-dir", str(tmp_path / "run"))
    assert out.returncode == 0, out.stdout + out.stderr
    (records_file,) = (tmp_path / "run").glob("*/samples.jsonl")
    records = records_file.read_text()
    assert "Quux" not in records
    record = json.loads(records.splitlines()[0])
    assert record["score"] == 1.0 and "31337" not in str(record["target"])
    assert "31337" not in str(record["answer"]) and "31337" not in record["explanation"]
    # Nor the completion: the model's text restates the answer (here the gold solution).
    assert record["redacted"] and record["completion"] is None and record["completion_chars"] > 0
    assert "31337" not in records


# ------------------------------------------------------------------ custom verifiers


def test_python_verifier_per_task(tmp_path, pool):
    module = tmp_path / "myverifier.py"
    module.write_text(
        "def parity(answer, target, sample):\n"
        "    ok = int(answer) % 2 == int(target) % 2\n"
        "    return {'value': ok, 'answer': 'even' if int(answer) % 2 == 0 else 'odd',\n"
        "            'explanation': f'checked {sample[\"id\"]}'}\n"
        "def slow(answer, target, sample):\n"
        "    import time; time.sleep(60)\n"
        "def noisy(answer, target, sample):\n"
        "    print('chatter on stdout'); return answer == target\n")
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "n", "problem": "An even number?", "answer": "2"}])
    task = build(path=path, verifier=f"{module}:parity")
    (s,) = task.samples()
    a, b = score(task, s, "\\boxed{8}", pool), score(task, s, "\\boxed{4}")
    assert (a.value, a.answer, a.metadata["rule"]) == (1.0, "even", "custom")
    assert b.answer == a.answer and "checked n" in a.explanation
    assert score(task, s, "\\boxed{3}").value == 0.0
    assert score(task, s, "\\boxed{x}").status == "verifier_error"
    noisy = build(path=path, verifier=f"{module}:noisy")
    (s,) = noisy.samples()
    assert score(noisy, s, "\\boxed{2}", pool).value == 1.0  # stdout chatter cannot break the pool
    slow = build(path=path, verifier=f"{module}:slow", timeout="1", retry_factor="1")
    (s,) = slow.samples()
    timeouts = pool.timeouts
    assert score(slow, s, "\\boxed{2}", pool).status == "timeout"
    assert pool.timeouts == timeouts + 1  # its worker was killed at the deadline
    with pytest.raises(TaskError, match="has no function 'missing'"):
        build(path=path, verifier=f"{module}:missing")
    with pytest.raises(TaskError, match="not 'module:function'"):
        build(path=path, verifier="nocolon")


def test_row_verifiers(tmp_path, pool):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "r1", "problem": "A prime in [10, 20]?", "answer": "11", "low": 10, "high": 20,
         "verifier": "tasks.math.examples:prime_in_range"},
        {"id": "r2", "problem": "2+2?", "answer": "4"}])
    task = build(path=path)
    r1, r2 = task.samples()
    assert score(task, r1, "\\boxed{17}", pool).value == 1.0
    assert score(task, r1, "\\boxed{15}").value == 0.0
    assert score(task, r2, "\\boxed{4}").metadata["rule"] == "exact"  # the built-in check
    ignored = build(path=path, row_verifiers="false")
    r1, _ = ignored.samples()
    assert score(ignored, r1, "\\boxed{17}", pool).value == 0.0
    bad = write_jsonl(tmp_path / "bad.jsonl", [
        {"problem": "p", "answer": "1"}, {"problem": "q", "answer": "2", "verifier": "tasks.nope:fn"}])
    with pytest.raises(TaskError, match=re.escape(f"{bad}:2")):
        list(build(path=bad).samples())


def test_program_verifier(tmp_path):
    check = tmp_path / "check.py"
    pid_file = tmp_path / "hung.pid"
    check.write_text(
        "import os, sys, time\n"
        "answer = sys.stdin.read().strip()\n"
        f"if answer == 'hang': open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
        "time.sleep(60)\n"
        "if answer == 'crash': sys.exit(3)\n"
        "print('1 matches' if answer == os.environ['EVALS_TARGET'] else '0 differs')\n")
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "g", "problem": "Say hi", "answer": "hi"}])
    task = build(path=path, verifier=f"run:{sys.executable} {check}", timeout="1",
                 retry_factor="1")
    (s,) = task.samples()
    good = score(task, s, "\\boxed{hi}")
    assert (good.value, good.status, good.metadata["rule"]) == (1.0, "ok", "program")
    assert "matches" in good.explanation
    assert score(task, s, "\\boxed{bye}").value == 0.0
    hung = score(task, s, "\\boxed{hang}")
    assert hung.status == "timeout" and "no verdict within 1s" in hung.explanation, hung
    assert not alive(int(pid_file.read_text()))  # killed at the deadline, not left running
    assert score(task, s, "\\boxed{crash}").status == "verifier_error"
    with pytest.raises(TaskError, match="not registered"):
        build(path=path, verifier="run:true", program_runner="nosuch")


def test_program_runner_hook(tmp_path):
    from tasks.math.verifiers import ProgramResult, register_program_runner

    calls = []

    def fake(argv, stdin, env, timeout):
        calls.append((argv, stdin, env["EVALS_TARGET"], timeout))
        return ProgramResult(0, "true\n", "")

    register_program_runner("fake-sandbox", fake)
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "g", "problem": "p", "answer": "5"}])
    task = build(path=path, verifier="run:checker --strict", program_runner="fake-sandbox")
    (s,) = task.samples()
    assert score(task, s, "\\boxed{5}").value == 1.0
    assert calls == [(["checker", "--strict"], "5", "5", 5.0)]


# ------------------------------------------------------------------ gold validation


def test_sample_file_validates(tmp_path):
    plugin = tmp_path / "plugins"
    plugin.mkdir()
    (plugin / "register_math.py").write_text("import tasks.math  # noqa: F401\n")
    out = run_cli("validate", "math", "--tasks-dir", str(plugin), "-T", "path=sample")
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"(\d+)/\1 samples correct", out.stdout), out.stdout
    count = len((REPO / "tasks" / "math" / "sample.jsonl").read_text().splitlines())
    assert count >= 20 and f"{count}/{count}" in out.stdout


def test_sample_file_covers_answer_types():
    rows = [json.loads(x) for x in (REPO / "tasks" / "math" / "sample.jsonl").read_text().splitlines()]
    assert all(r.get("solution") for r in rows)
    types = {r["type"] for r in rows}
    assert {"fraction", "interval", "matrix", "equation", "percent", "multiple",
            "custom verifier"} <= types


def test_redaction_key_is_stable_and_private(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALS_CACHE_DIR", str(tmp_path / "cache"))
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "k", "problem": "p", "answer": "12"}])
    first = next(iter(build(path=path, redact="true").samples())).target
    second = next(iter(build(path=path, redact="true").samples())).target
    assert first == second  # a resumed run hashes as the first session did
    key = tmp_path / "cache" / "math_redact.key"
    assert key.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("EVALS_MATH_REDACT_KEY", "another key")
    assert next(iter(build(path=path, redact="true").samples())).target != first

