"""The swe task without Docker: diffs, parsers, grading, loading, specs, retrieval, bundled set."""

from __future__ import annotations

import json
import sys
import types

import pytest

from evals.task import TaskError
from tasks.swe import bundled, check_instance, load_instances, prepare, prompt, specs, to_sample
from tasks.swe.data import read_file, to_instance
from tasks.swe.grading import EMPTY_PATCH, INFRA_ERROR, RESOLVED, UNRESOLVED, grade
from tasks.swe.parsers import parse, parse_pytest, parse_unittest
from tasks.swe.patch import extract_diff, normalize, refusal, touched_files
from tests.conftest import TEST_EXTRA, require

DIFF = """diff --git a/pkg/mod.py b/pkg/mod.py
--- a/pkg/mod.py
+++ b/pkg/mod.py
@@ -1,2 +1,2 @@
 def f():
-    return 1
+    return 2
"""


# ---------------------------------------------------------------- diffs

def test_extract_fenced_and_bare():
    assert extract_diff(f"Here:\n```diff\n{DIFF}```\nDone.") == DIFF
    assert extract_diff(f"Fix below.\n{DIFF}\nThat is all, thanks!") == DIFF
    assert extract_diff("```python\nprint(1)\n```") == ""
    assert extract_diff("no diff at all") == ""


def test_extract_two_fenced_blocks_joined():
    other = DIFF.replace("pkg/mod.py", "pkg/other.py")
    got = extract_diff(f"```diff\n{DIFF}```\nand\n```\n{other}```")
    assert touched_files(got).paths == ["pkg/mod.py", "pkg/other.py"]


def test_normalize_prefixes_whitespace_and_blank_context():
    raw = ("--- pkg/mod.py\t2024-01-01\n+++ pkg/mod.py   \n@@ -1,3 +1,3 @@  \n def f():\n\n"
           "-    return 1\n+    return 2\n")
    got = normalize(raw)
    assert got.startswith("--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -1,3 +1,3 @@\n")
    assert "\n \n-    return 1" in got  # the blank context line got its space back
    assert normalize(DIFF.replace("a/pkg", "pkg").replace("b/pkg", "pkg")) == DIFF


@pytest.mark.parametrize("path,why", [("../etc/passwd", ".."), ("/etc/passwd", "absolute"),
                                      ("pkg/../../x", ".."), (".git/hooks/pre-commit", ".git")])
def test_refuses_paths_outside_the_repository(path, why):
    diff = f"--- a/{path}\n+++ b/{path}\n@@ -0,0 +1 @@\n+x\n".replace("a//", "/").replace("b//", "/")
    if path.startswith("/"):
        diff = f"--- {path}\n+++ {path}\n@@ -0,0 +1 @@\n+x\n"
    assert why in (refusal(diff) or "")


def test_refuses_symlink_creation():
    diff = ("diff --git a/link b/link\nnew file mode 120000\nindex 0000000..1111111\n"
            "--- /dev/null\n+++ b/link\n@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n")
    assert "symbolic link" in refusal(diff)
    assert refusal(DIFF) is None


# ---------------------------------------------------------------- parsers

UT_LOG = """test_a (tests.test_x.T.test_a) ... ok
test_b (tests.test_x.T.test_b) ... FAIL
test_c (tests.test_x.T)
Docstring line ... skipped 'no'
test_d (tests.test_x.T.test_d) ... some print output
expected failure

======================================================================
FAIL: test_b (tests.test_x.T.test_b)
----------------------------------------------------------------------
Ran 4 tests in 0.001s

FAILED (failures=1, skipped=1, expected failures=1)
"""


def test_unittest_parser_statuses_and_summary():
    got = parse_unittest(UT_LOG)
    assert got.statuses == {"tests.test_x.T.test_a": "PASSED", "tests.test_x.T.test_b": "FAILED",
                            "tests.test_x.T.test_c": "SKIPPED", "tests.test_x.T.test_d": "XFAIL"}
    assert got.complete is True


def test_unittest_parser_flags_forged_lines():
    forged = "test_a (tests.test_x.T.test_a) ... ok\n"
    assert parse_unittest(forged).complete is False  # no summary
    assert parse_unittest(forged + "Ran 5 tests in 0.1s\n\nOK\n").complete is False  # wrong count


def test_pytest_parser():
    log = ("PASSED tests/test_a.py::test_one\nFAILED tests/test_a.py::test_two - AssertionError\n"
           "XFAIL tests/test_a.py::test_three - [NOTRUN] later\nSKIPPED [1] tests/test_a.py:9: no\n"
           "==== 1 failed, 1 passed, 1 skipped, 1 xfailed in 0.10s ====\n")
    got = parse_pytest(log)
    assert got.statuses == {"tests/test_a.py::test_one": "PASSED",
                            "tests/test_a.py::test_two": "FAILED",
                            "tests/test_a.py::test_three": "XFAIL"}
    assert got.complete is True
    assert parse_pytest("PASSED tests/test_a.py::test_one\n").complete is False
    with pytest.raises(KeyError):
        parse("no-such-parser", log)


# ---------------------------------------------------------------- grading

def _grade(log, code=0, f2p=("t.T.test_a",), p2p=("t.T.test_b",), parser=parse_unittest, timed_out=False):
    return grade(parser(log), log, code, timed_out, list(f2p), list(p2p))


def _ut(a="ok", b="ok", verdict=None):
    lines = f"test_a (t.T.test_a) ... {a}\ntest_b (t.T.test_b) ... {b}\n"
    bad = any(s in ("FAIL", "ERROR") for s in (a, b))
    return lines + f"Ran 2 tests in 0.0s\n\n{verdict or ('FAILED (failures=1)' if bad else 'OK')}\n"


def test_grade_outcomes():
    assert _grade(_ut(), f2p=["t.T.test_a"], p2p=["t.T.test_b"]).outcome == RESOLVED
    assert _grade(_ut(a="FAIL"), 1, f2p=["t.T.test_a"], p2p=["t.T.test_b"]).outcome == UNRESOLVED
    assert _grade("", 0).outcome == INFRA_ERROR
    assert _grade("garbage only\n", 1).outcome == INFRA_ERROR
    crashed = "Traceback (most recent call last):\n  ...\nSyntaxError: invalid syntax\n"
    assert _grade(crashed, 1).outcome == UNRESOLVED  # the patch broke the import
    assert _grade(_ut(), 0, f2p=["t.T.test_a"], timed_out=True).outcome == UNRESOLVED


def test_skipped_and_xfail_fail_to_pass_is_a_failure():
    skipped = _ut(a="skipped 'x'", verdict="OK (skipped=1)")
    assert _grade(skipped, 0, f2p=["t.T.test_a"], p2p=["t.T.test_b"]).outcome == UNRESOLVED
    log = ("XFAIL t.py::a - [NOTRUN] x\nPASSED t.py::b\n==== 1 passed, 1 xfailed in 0.1s ====\n")
    assert _grade(log, 0, ["t.py::a"], ["t.py::b"], parse_pytest).outcome == UNRESOLVED


def test_exit_code_must_agree_with_statuses():
    forged = _ut()
    got = _grade(forged, 1, f2p=["t.T.test_a"], p2p=["t.T.test_b"])
    assert got.outcome == UNRESOLVED and "exit code 1" in got.explanation
    failing = _ut(a="FAIL")
    assert _grade(failing, 0, f2p=["t.T.test_b"], p2p=[]).outcome == UNRESOLVED


# ---------------------------------------------------------------- loading and specs

ROW = {"instance_id": "o__r-1", "repo": "o/r", "base_commit": "abc", "patch": DIFF,
       "test_patch": DIFF.replace("pkg/mod.py", "tests/test_mod.py"), "problem_statement": "bug",
       "FAIL_TO_PASS": json.dumps(["tests/test_mod.py::test_f"]), "PASS_TO_PASS": "[]",
       "version": "1.0"}


def test_reads_jsonl_json_parquet(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps(ROW) + "\n")
    (tmp_path / "a.json").write_text(json.dumps([{**ROW, "FAIL_TO_PASS": ["x"]}]))
    assert read_file(tmp_path / "a.jsonl")[0].fail_to_pass == ["tests/test_mod.py::test_f"]
    assert read_file(tmp_path / "a.json")[0].fail_to_pass == ["x"]
    pa = require("pyarrow", hint=TEST_EXTRA)
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist([ROW]), tmp_path / "a.parquet")
    assert read_file(tmp_path / "a.parquet")[0].instance_id == "o__r-1"


def test_load_errors_name_the_line(tmp_path):
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps(ROW) + "\n\n" + json.dumps({**ROW, "repo": None}) + "\n")
    with pytest.raises(TaskError, match=r"b.jsonl:3: missing 'repo'"):
        read_file(bad)
    bad.write_text(json.dumps(ROW) + "\n{nope\n")
    with pytest.raises(TaskError, match=r"b.jsonl:2: invalid JSON"):
        read_file(bad)
    with pytest.raises(TaskError, match="FAIL_TO_PASS is not a JSON list"):
        to_instance({**ROW, "FAIL_TO_PASS": "[oops"}, "here")


def test_spec_precedence(tmp_path):
    inst = to_instance({**ROW, "env_spec": {"test_cmd": "nope", "timeout": 5},
                        "log_parser": "unittest"}, "row")
    spec_file = tmp_path / "specs.json"
    spec_file.write_text(json.dumps({"o/r": {"install": "pip install -e .", "test_cmd": "pytest -x"},
                                     "o/r@1.0": {"pip_packages": ["six"]}}))
    got = specs.resolve(inst, specs.read_spec_file(str(spec_file)), use_swebench=False)
    assert (got.install, got.packages, got.test_cmd, got.timeout, got.log_parser) == (
        "pip install -e .", ("six",), "pytest -x", 5.0, "unittest")
    assert got.test_command(inst, ["tests/test_mod.py"]) == "pytest -x tests/test_mod.py"
    scripted = to_instance({**ROW, "eval_script": "#!/bin/bash\nrun"}, "row")
    assert specs.resolve(scripted, use_swebench=False).writable_repo is True
    spec_file.write_text(json.dumps({"o/r": {"bogus": 1}}))
    with pytest.raises(TaskError, match="unknown spec field 'bogus'"):
        specs.read_spec_file(str(spec_file))


def test_swebench_specs_used_when_the_package_is_there(monkeypatch):
    constants = types.ModuleType("swebench.harness.constants")
    constants.MAP_REPO_VERSION_TO_SPECS = {"o/r": {"1.0": {
        "python": "3.9", "packages": "requirements.txt", "install": "pip install -e .",
        "pip_packages": ["pytest==7.4.0"], "test_cmd": "pytest -rA"}}}
    parsers_mod = types.ModuleType("swebench.harness.log_parsers")
    parsers_mod.MAP_REPO_TO_PARSER = {"o/r": lambda log, spec: {"t": "PASSED"}}
    for name, mod in {"swebench": types.ModuleType("swebench"),
                      "swebench.harness": types.ModuleType("swebench.harness"),
                      "swebench.harness.constants": constants,
                      "swebench.harness.log_parsers": parsers_mod}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    sys.modules["swebench.harness"].log_parsers = parsers_mod
    got = specs.resolve(to_instance(ROW, "row"))
    assert (got.python, got.requirements, got.packages, got.log_parser, got.source) == (
        "3.9", "requirements.txt", ("pytest==7.4.0",), "o/r", ("swebench",))
    assert parse("o/r", "anything", "o/r").statuses == {"t": "PASSED"}


# ---------------------------------------------------------------- anti-gaming rules

def test_discovery_files():
    assert prepare.discovery_reason("conftest.py", [], False, [])
    assert prepare.discovery_reason("src/x/conftest.py", [], True, [])
    assert prepare.discovery_reason("lib/evil.pth", [], True, [])
    assert prepare.discovery_reason("tests/__init__.py", ["tests"], False, [])
    assert prepare.discovery_reason("unittest.py", [], True, [])  # shadows the runner
    assert prepare.discovery_reason("tests/runtests.py", [], False, ["tests/runtests.py"])
    assert prepare.discovery_reason("pkg/mod.py", ["tests"], True, []) is None
    old = "[metadata]\nname = x\n[tool:pytest]\naddopts = -q\n"
    assert prepare.test_sections("setup.cfg", old) != prepare.test_sections(
        "setup.cfg", old.replace("-q", "-q -k nothing"))
    assert prepare.test_sections("setup.cfg", old) == prepare.test_sections(
        "setup.cfg", old.replace("name = x", "name = y"))


def test_check_instance_flags_gold_patches_touching_test_infrastructure():
    inst = to_instance({**ROW, "patch": DIFF + DIFF.replace("pkg/mod.py", "conftest.py")}, "row")
    warnings = check_instance(to_sample(inst, {}, False))
    assert any("conftest.py" in w for w in warnings)
    assert check_instance(to_sample(to_instance(ROW, "row"), {}, False)) == []


# ---------------------------------------------------------------- bundled set and prompts

def test_bundled_set_is_reproducible(tmp_path):
    rows = bundled.instances(tmp_path / "repos")
    assert len(rows) == 6 and len({r["repo"] for r in rows}) == 2
    for spec in bundled.REPOS:
        head = bundled.commits(tmp_path / "repos" / bundled.mirror_name(spec.repo))[-1]
        assert head == bundled.EXPECTED_HEADS[spec.repo]
    for row in rows:
        assert row["FAIL_TO_PASS"] and row["patch"].startswith("diff --git")
        assert all(p.startswith("tests/") for p in touched_files(row["test_patch"]).paths)
        assert not any(p.startswith("tests/") for p in touched_files(row["patch"]).paths)
    insts = load_instances("bundled", tmp_path / "repos")
    assert all(check_instance(to_sample(i, {}, False)) == [] for i in insts)


def test_oracle_and_bm25_context(tmp_path):
    insts = load_instances("bundled", tmp_path / "repos")
    roman = next(i for i in insts if i.instance_id == "evalsfix__numkit-3")
    mirror = tmp_path / "repos" / "evalsfix__numkit"
    assert list(prompt.context_files(roman, mirror, "oracle")) == ["numkit/roman.py"]
    ranked = list(prompt.context_files(roman, mirror, "bm25", budget=800))
    assert ranked[0] == "numkit/roman.py"
    text = prompt.render(roman, {"numkit/roman.py": "x = 1\n"})
    assert "[start of numkit/roman.py]" in text and "1 x = 1" in text
    assert prompt.bm25_rank("median of values", {"a.py": "def median(values): pass",
                                                  "b.py": "def merge(): pass"})[0] == "a.py"


def test_task_parameters_are_checked():
    from tasks.swe import swe
    with pytest.raises(TaskError, match="context"):
        swe(context="everything")
    with pytest.raises(TaskError, match="network"):
        swe(network="bridge")
    assert EMPTY_PATCH == "empty_patch"
