"""The swe task without Docker: diffs, parsers, grading, loading, specs, retrieval, bundled set."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import replace

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


def test_pytest_results_of_runs_inside_the_tests_are_not_this_runs():
    """pytest's own suite runs pytest in its tests; -rA prints their summaries first."""
    nested = ("----- Captured stdout call -----\n"
              "=========================== short test summary info ============================\n"
              "FAILED test_inner.py::test_fails - assert 0\n"
              "==== 1 failed in 0.01s ====\n")
    log = (nested + "=========================== short test summary info ============================\n"
           "PASSED testing/test_a.py::test_runs_inner\n==== 1 passed in 0.50s ====\n")
    for parser in ("pytest", "parse_log_pytest"):
        if parser != "pytest":
            _swebench()
        got = parse(parser, log, "o/r")
        assert got.statuses == {"testing/test_a.py::test_runs_inner": "PASSED"}, parser
        assert grade(got, log, 0, False, ["testing/test_a.py::test_runs_inner"], []).outcome \
            == RESOLVED
    colored = log.replace("=== short test summary info ===", "=== \x1b[1mshort test summary info\x1b[0m ===")
    assert "test_inner.py::test_fails" not in parse_pytest(colored).statuses


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


def _swebench():
    """The real swebench package (the test extra installs it; CI must have it)."""
    try:
        from swebench.harness import constants
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI installs swebench==4.1.0 with the test extra")
        pytest.skip("swebench is not installed: pip install -e '.[test]'")
    return constants


def test_every_swebench_spec_gives_valid_env_layer_inputs():
    """Each spec of swebench 4.1.0, resolved to the env layer it would build (no build)."""
    constants = _swebench()
    from packaging.requirements import Requirement

    from sandbox.base import SUITES
    from sandbox.engine import SandboxError
    from tasks.swe.layers import BUILD_TOOLS_DEFAULT, env_layer, interpreter
    from tasks.swe.parsers import known

    substituted: dict[str, int] = {}
    python_specs = 0
    for repo, versions in constants.MAP_REPO_VERSION_TO_SPECS.items():
        for version, raw in versions.items():
            where = f"{repo}@{version}"
            got = specs.from_swebench(repo, version)
            if not raw.get("python"):  # another language: not a spec this sandbox builds
                assert got is None, where
                continue
            python_specs += 1
            spec = specs.EnvSpec(**specs._coerce(got, where))
            assert spec.network == "sealed" and spec.test_directives == "swebench", where
            # SWE-bench's base image has a compiler and locales; Debian's Python needs headers
            assert {"build-essential", "python3-dev", "locales"} <= set(spec.system_packages)
            # the tests run unprivileged: only exports stay with the test command
            assert all(c.startswith("export ") for c in spec.eval_commands), where
            assert spec.test_cmd and known(spec.log_parser, repo), where
            for package in spec.packages:  # pip gets requirements, never quoted words
                assert not set(package) & set("'\" "), (where, package)
                Requirement(package)
            if raw.get("packages") == "requirements.txt":
                assert spec.requirements.split() == constants.MAP_REPO_TO_REQS_PATHS[repo], where
            inst = to_instance({**ROW, "repo": repo, "version": version}, where)
            used, note = interpreter(spec, None, nearest=True)
            assert used in SUITES, where
            if note:
                substituted[spec.python] = substituted.get(spec.python, 0) + 1
                with pytest.raises(SandboxError, match=rf"Python {spec.python}\b.*-T base_image="):
                    interpreter(spec, None, nearest=False)
            layer = env_layer("parent", inst, replace(spec, requirements=None), None, used)
            runs = [line[4:] for line in layer.dockerfile.splitlines() if line.startswith("RUN ")]
            if not (spec.packages or spec.install or raw.get("packages")):
                assert runs == [] and layer.network == "none", where  # nothing to install
                continue
            assert "python3 -m venv" in runs[0] and "ln -sf /usr/bin/python3" in runs[0]
            assert " ".join(layer.inputs["build_tools"]) in runs[0], where
            # PyPI as SWE-bench's environments saw it, for every later pip of the image
            assert f"ENV PIP_UPLOADED_PRIOR_TO={specs.SWEBENCH_PIP_CUTOFF}" in layer.dockerfile
            if spec.packages:
                installs = [r for r in runs if r.startswith("python -m pip install ")]
                assert shlex.split(installs[-1])[4:] == list(spec.packages), where
            assert layer.network == "bridge" and layer.inputs["python"] == used
            old_python = spec.python in ("3.5", "3.6")
            assert (layer.inputs.get("compat") == "py36-unittest-descriptions") == old_python, where
            assert ("evals_py36_compat.pth" in layer.files) == old_python, where
    assert python_specs >= 190
    assert set(substituted) == {"3.5", "3.6", "3.7", "3.8", "3.10"}, substituted
    sklearn = specs.from_swebench("scikit-learn/scikit-learn", "1.3")["packages"]
    assert "numpy==1.19.2" in sklearn and "pandas<2.0.0" in sklearn
    django = specs.from_swebench("django/django", "3.1")
    assert django["requirements"] == "tests/requirements/py3.txt"
    assert any("locale-gen" in c for c in django["pre_install"])  # as root, at build time
    assert "export LANG=en_US.UTF-8" in django["eval_commands"]
    assert BUILD_TOOLS_DEFAULT[0].startswith("pip==")


def test_swebench_specs_merge_under_instance_and_file_specs(tmp_path):
    _swebench()
    inst = to_instance({**ROW, "repo": "psf/requests", "version": "2.9"}, "row")
    got = specs.resolve(inst)
    assert (got.python, got.network, got.log_parser, got.source) == (
        "3.9", "sealed", "psf/requests", ("swebench",))
    spec_file = tmp_path / "s.json"
    spec_file.write_text(json.dumps({"psf/requests": {"network": "none",
                                                      "packages": "'pytest<8' six"}}))
    mine = specs.resolve(inst, specs.read_spec_file(str(spec_file)))
    assert (mine.network, mine.packages) == ("none", ("pytest<8", "six"))


def test_requirements_file_read_as_swebench_does(tmp_path):
    from tasks.swe.layers import requirements_text

    repo = tmp_path / "r"
    (repo / "reqs").mkdir(parents=True)
    (repo / "reqs" / "base.txt").write_text("six\n# a comment\n")
    (repo / "reqs" / "dev.txt").write_text("-r base.txt\n-e .\n.[test]\npytest==7.4.0\n")
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t",
                                                  "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True).stdout.strip()
    path, text = requirements_text(repo, head, "requirements.txt reqs/dev.txt")
    assert path == "reqs/dev.txt" and text.split() == ["six", "pytest==7.4.0"]


def test_real_swebench_parser_and_directives():
    _swebench()
    log = ("PASSED tests/test_a.py::test_one\nFAILED tests/test_a.py::test_two - boom\n"
           "==== 1 failed, 1 passed in 0.10s ====\n")
    for name in ("psf/requests", "parse_log_pytest"):
        got = parse(name, log, "psf/requests")
        assert got.statuses == {"tests/test_a.py::test_one": "PASSED",
                                "tests/test_a.py::test_two": "FAILED"}
        assert "parse_log_pytest" in got.detail
    django = to_instance({**ROW, "repo": "django/django", "test_patch": DIFF.replace(
        "pkg/mod.py", "tests/auth_tests/test_views.py")}, "row")
    assert specs.directives("swebench", django, []) == ["auth_tests.test_views"]


def test_validate_names_a_substituted_interpreter():
    _swebench()
    from tasks.swe import swe

    row = {**ROW, "repo": "django/django", "version": "3.1"}
    sample = to_sample(to_instance(row, "row"), {}, False)
    [note] = swe().check(sample)
    assert "Python 3.6" in note and "Python 3.9" in note and "-T base_image=" in note
    [exact] = swe(interpreter="exact").check(sample)
    assert "infra_error" in exact
    assert swe(base_image="mine:3.6").check(sample) == []


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
    assert len(rows) == 7 and len({r["repo"] for r in rows}) == 3
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


def test_py36_compat_restores_unittest_descriptions(tmp_path):
    """On a newer Python, a test whose docstring starts with a newline prints as 3.6
    printed it: ``name (class) ... ok`` on one line (django's SWE-bench test ids)."""
    from tasks.swe.layers import PY36_COMPAT

    site = tmp_path / "site"
    site.mkdir()
    (site / "evals_py36_compat.py").write_bytes(PY36_COMPAT.read_bytes())
    (site / "evals_py36_compat.pth").write_text("import evals_py36_compat\n")
    (tmp_path / "test_doc.py").write_text(
        "import unittest\n\nclass T(unittest.TestCase):\n"
        "    def test_blank_first_line(self):\n        \"\"\"\n        Said below.\n        \"\"\"\n\n"
        "    def test_first_line(self):\n        \"\"\"Said here.\"\"\"\n")
    run = ["-m", "unittest", "-v", "test_doc"]
    plain = subprocess.run([sys.executable, *run], cwd=tmp_path, capture_output=True, text=True)
    assert "test_blank_first_line (test_doc.T" in plain.stderr and "Said below. ... ok" in plain.stderr
    shim = ("import site, sys; site.addsitedir(sys.argv.pop(1)); import runpy; "
            "sys.argv[0] = 'python -m unittest'; runpy.run_module('unittest', run_name='__main__')")
    fixed = subprocess.run([sys.executable, "-c", shim, str(site), "-v", "test_doc"],
                           cwd=tmp_path, capture_output=True, text=True)
    lines = fixed.stderr.splitlines()
    assert any(line.startswith("test_blank_first_line (test_doc.T") and line.endswith(" ... ok")
               for line in lines), fixed.stderr
    assert "Said below." not in fixed.stderr
    assert "Said here. ... ok" in fixed.stderr  # a first-line docstring still prints, as in 3.6
