"""evals audit: the verdicts a person should look at, from a run's records."""

from __future__ import annotations

import csv
import io
import json

from evals.audit import audit, counts, to_csv
from evals.fake_openai import FakeServer
from tests.conftest import TEST_EXTRA, require, run_cli


def record(sample_id, gen=0, status="ok", score=1.0, **meta):
    return {"task": "t", "model": "m", "setting": "default", "sample_id": sample_id,
            "gen": gen, "status": status, "score": score, "answer": "a", "target": "1",
            "completion": "... so the answer is \\boxed{1}.", "explanation": f"{status}",
            "score_metadata": meta or None}


def test_each_kind_is_found_and_a_later_record_wins():
    records = [
        record("na", status="no_answer", score=0.0),
        record("two", committed="BD", where="text", context="ANSWER: B ... the answer is D"),
        record("think", where="reasoning"),
        record("cut", where="unclosed_reasoning", status="no_answer", score=0.0),
        record("slow", status="timeout", score=0.0),
        record("crash", status="verifier_error", score=None),
        record("fine"),
        record("retried", status="verifier_error", score=None),
        record("retried"),  # graded again on resume: nothing to look at
        {**record("call"), "status": "error", "score": None},  # a failed call: not graded
    ]
    items = audit(records)
    found = {(i.kind, i.sample_id) for i in items}
    assert found == {("no_answer", "na"), ("several_answers", "two"),
                     ("reasoning_only", "think"), ("reasoning_only", "cut"),
                     ("no_answer", "cut"), ("undecided", "slow"), ("grader_error", "crash")}
    two = next(i for i in items if i.sample_id == "two")
    assert two.context == "ANSWER: B ... the answer is D" and "B, D" in two.detail
    assert counts(items)["reasoning_only"] == 2
    assert [i.kind for i in audit(records, kinds=["undecided"])] == ["undecided"]


def test_context_falls_back_to_the_extracted_text_in_the_completion():
    r = record("x", status="timeout", score=0.0, extracted="1")
    r["completion"] = "x" * 500 + " so the answer is \\boxed{1}." + "y" * 500
    (item,) = audit([r])
    assert "\\boxed{1}" in item.context and len(item.context) < 300


def test_a_second_opinion_that_disagrees_is_listed():
    judged = []

    def peer(gold, answer):
        judged.append((gold, answer))
        return answer == "0.5"

    records = [record("same", extracted="0.5", score=1.0),
               record("differs", extracted="1/2", score=1.0),
               record("no-opinion", extracted="?", score=0.0)]
    items = audit(records, peer=lambda g, a: None if a == "?" else peer(g, a))
    assert [(i.kind, i.sample_id) for i in items] == [("peer_disagrees", "differs")]
    assert "math-verify says different; graded equal" in items[0].detail


def test_math_verify_itself_as_the_second_opinion():
    require("math_verify", hint=TEST_EXTRA)
    from evals.audit import math_verify_judge

    judge = math_verify_judge()
    assert judge("\\frac{1}{2}", "0.5") is True
    assert judge("\\frac{1}{2}", "0.6") is False


def test_cli_audit_formats_and_the_report_links_it(tmp_path):
    def script(body, index):
        return ["ANSWER: B\nWait, I made an error. The correct answer is A.",
                "<think>so ANSWER: C</think>", "I cannot decide.", "The answer is (D)."][index]

    res = tmp_path / "res"
    with FakeServer(script=script) as srv:
        run = run_cli("run", "gpqa", "-m", "openai/fake-model", "-M", f"base_url={srv.url}",
                      "-T", "path=sample", "--samples", "4", "--limit", "1", "--run-id", "a",
                      "--results-dir", str(res))
    assert run.returncode == 0, run.stderr
    shown = json.loads(run_cli("audit", "a", "--results-dir", str(res), "-f", "json").stdout)
    assert shown["counts"] == {"no_answer": 1, "several_answers": 1, "reasoning_only": 1,
                               "undecided": 0, "grader_error": 0, "peer_disagrees": 0}
    several = next(i for i in shown["items"] if i["kind"] == "several_answers")
    assert several["gen"] == 0 and "I made an error" in several["context"]
    rows = list(csv.DictReader(io.StringIO(
        run_cli("audit", "a", "--results-dir", str(res), "-f", "csv",
                "--kind", "no_answer").stdout)))
    assert [(r["kind"], r["gen"], r["context"]) for r in rows] == [
        ("no_answer", "2", "I cannot decide.")]
    table = run_cli("audit", "a", "--results-dir", str(res))
    assert "3 verdicts to look at" in table.stdout
    bad = run_cli("audit", "a", "--results-dir", str(res), "--kind", "nonsense")
    assert bad.returncode == 2 and "--kind 'nonsense'" in bad.stderr
    assert run_cli("audit", "nosuch", "--results-dir", str(res)).returncode == 2
    report = tmp_path / "r.html"
    assert run_cli("report", "--results-dir", str(res), "-o", str(report)).returncode == 0
    html = report.read_text()
    assert '<a href="r.audit.a.csv">3 to look at</a>' in html
    assert to_csv([]) .startswith("kind,task,model")
    assert (tmp_path / "r.audit.a.csv").read_text().count("\n") == 4  # header + 3
