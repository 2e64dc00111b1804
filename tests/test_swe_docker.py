"""The swe task end to end on a real Docker engine, with the bundled instances.

Every outcome, and each anti-gaming rule with a planted bad patch. The base
image is built once per machine (cached by name); instance images once per
input hash. Patches are made with git against the bundled mirrors.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import textwrap
from pathlib import Path

import pytest

from tasks.swe import bundled, swe
from tasks.swe.bundled.content import TEXTKIT_CORE
from tasks.swe.data import Instance

SLUG = "evalsfix__textkit-1"
FIXED = TEXTKIT_CORE.replace('words = re.split(r"[^a-z0-9]", text.lower())',
                             'words = [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]')


@pytest.fixture(scope="module")
def repos(tmp_path_factory, sandbox_base):
    path = tmp_path_factory.mktemp("swe") / "repos"
    bundled.ensure_mirrors(path)
    return path


def make_task(repos: Path, **params):
    return swe(repos=str(repos), sandboxes=2, **params)


def run(task, pairs):
    """Score (sample, completion) pairs concurrently, as the orchestrator would."""
    async def go():
        return await asyncio.gather(*(task.scorer(s, c) for s, c in pairs))
    return asyncio.run(go())


def diff_of(repos: Path, changes: dict[str, str | None], tmp: Path) -> str:
    """A git diff against textkit's base commit: path -> new text (None deletes)."""
    work = tmp / "work"
    subprocess.run(["git", "clone", "-q", str(repos / "evalsfix__textkit"), str(work)], check=True)
    base = bundled.commits(work)[0]
    subprocess.run(["git", "checkout", "-q", base], cwd=work, check=True)
    for path, text in changes.items():
        target = work / path
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    out = subprocess.run(["git", "diff", "--cached"], cwd=work, capture_output=True, text=True)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    return f"```diff\n{out.stdout}```"


def samples_by_id(task):
    return {s.id: s for s in task.samples()}


def test_gold_resolves_every_instance_and_empty_none(repos):
    task = make_task(repos)
    samples = list(task.samples())
    assert len(samples) == 7
    gold = run(task, [(s, s.solution) for s in samples])
    assert [g.status for g in gold] == ["resolved"] * 7, [g.explanation for g in gold]
    meta = gold[0].metadata
    assert meta["tests"]["FAIL_TO_PASS"] == {
        "tests.test_slugify.SlugifyTests.test_collapses_separators": "PASSED"}
    assert meta["applied_with"] == "git apply" and "textkit/core.py" in meta["applied_diff"]
    assert "Ran 3 tests" in meta["test_log"] and meta["exit_code"] == 0
    assert {"start", "apply", "test", "remove", "overhead"} <= set(meta["timings"])
    json.dumps(meta)  # records must be able to store it
    empty = run(task, [(s, "I could not find the bug.") for s in samples])
    assert [e.status for e in empty] == ["empty_patch"] * 7
    # The gold patch, but the instance's F2P test still failing at base: the bug is real.
    noop = run(task, [(s, diff_of(repos, {"README.md": "changed\n"}, Path(repos).parent / s.id))
                      for s in samples[:1]])
    assert noop[0].status == "unresolved" and "FAIL_TO_PASS 0/1" in noop[0].explanation


def test_pyproject_package_and_hanging_connection_with_swebench_parser(repos, tmp_path):
    """netkit: an editable install of a setuptools_scm pyproject.toml package on the 3.9
    env, and a test that needs a connection to hang (the sealed network). Graded with
    swebench's own pytest log parser and test directives; with `network=none` the
    connection fails at once and so does that test."""
    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps({"evalsfix/netkit": {"log_parser": "parse_log_pytest",
                                                     "test_directives": "swebench"}}))
    task = make_task(repos, specs_file=str(specs))
    sample = samples_by_id(task)["evalsfix__netkit-1"]
    closed = make_task(repos, specs_file=str(specs), network="none")
    got = run(task, [(sample, sample.solution)])
    got += run(closed, [(samples_by_id(closed)["evalsfix__netkit-1"], sample.solution)])
    sealed, none = got
    assert sealed.status == "resolved", sealed.explanation
    assert sealed.metadata["log_check"] == "parsed by swebench.parse_log_pytest"
    assert sealed.metadata["test_cmd"] == "pytest -rA tests/test_probe.py tests/test_urls.py"
    assert sealed.metadata["python"] == "3.9"
    assert "PytestCacheWarning" not in sealed.metadata["test_log"]  # its cache dir is writable
    assert sealed.metadata["tests"]["PASS_TO_PASS"] == {
        "tests/test_urls.py::test_version_from_the_git_tag": "PASSED",
        "tests/test_urls.py::test_plain": "PASSED",
        "tests/test_probe.py::test_unroutable_address_times_out": "PASSED"}
    assert none.status == "unresolved"
    assert none.metadata["tests"]["PASS_TO_PASS"][
        "tests/test_probe.py::test_unroutable_address_times_out"] == "FAILED"
    assert "Network is unreachable" in none.metadata["test_log"]


def test_outcomes_unresolved_patch_failed_and_infra(repos, tmp_path):
    task = make_task(repos)
    sample = samples_by_id(task)[SLUG]
    wrong = TEXTKIT_CORE.replace('re.split(r"[^a-z0-9]", text', 're.split(r"[^a-z0-9]+", text')
    bad_context = ("```diff\n--- a/textkit/core.py\n+++ b/textkit/core.py\n@@ -1,3 +1,3 @@\n"
                   " no such line\n-nor this\n+x\n```")
    got = run(task, [(sample, diff_of(repos, {"textkit/core.py": wrong}, tmp_path / "a")),
                     (sample, bad_context)])
    assert got[0].status == "unresolved" and got[0].value == 0
    assert got[0].metadata["tests"]["FAIL_TO_PASS"] == {
        "tests.test_slugify.SlugifyTests.test_collapses_separators": "FAILED"}
    assert got[1].status == "patch_failed" and "patch --fuzz" in got[1].metadata["apply_log"]
    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps({"evalsfix/textkit": {"test_cmd": "true", "test_directives": "none"}}))
    silent = make_task(repos, specs_file=str(specs))
    missing = make_task(repos, base_image="evals-no-such-base:never")
    got = run(silent, [(samples_by_id(silent)[SLUG], sample.solution)])
    got += run(missing, [(samples_by_id(missing)[SLUG], sample.solution)])
    assert [g.status for g in got] == ["infra_error", "infra_error"]
    assert "empty test log" in got[0].explanation and "not here" in got[1].explanation


def test_planted_patches_that_touch_tests_or_discovery(repos, tmp_path):
    task = make_task(repos)
    sample = samples_by_id(task)[SLUG]
    test_file = (repos / "evalsfix__textkit" / "tests" / "test_slugify.py")
    base_tests = subprocess.run(["git", "show", f"{bundled.commits(repos / 'evalsfix__textkit')[0]}"
                                 ":tests/test_slugify.py"], cwd=test_file.parent.parent,
                                capture_output=True, text=True).stdout
    neuter = "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n"
    fake_runner = textwrap.dedent('''
        import sys
        names = ["test_basic", "test_collapses_separators", "test_digits"]
        for n in names:
            sys.stderr.write("%s (tests.test_slugify.SlugifyTests.%s) ... ok\\n" % (n, n))
        sys.stderr.write("\\nRan 3 tests in 0.001s\\n\\nOK\\n")
        ''')
    planted = {
        "edits the test file": {"tests/test_slugify.py": base_tests.replace(
            "class SlugifyTests", "def slugify(t):\n    return 'hello-world'\n\n\nclass SlugifyTests")},
        "neuters asserts in tests/__init__": {"tests/__init__.py": neuter},
        "adds a conftest": {"conftest.py": neuter},
        "shadows unittest": {"unittest.py": fake_runner},
        "skips the failing test": {"textkit/core.py": TEXTKIT_CORE.replace(
            '    words = re.split', '    if "," in text:\n        import unittest\n'
            '        raise unittest.SkipTest("later")\n    words = re.split')},
        "rewrites tests at run time": {"textkit/core.py": TEXTKIT_CORE + textwrap.dedent('''
            import pathlib
            pathlib.Path(__file__).parent.parent.joinpath("tests", "test_slugify.py").write_text(
                "import unittest\\nclass SlugifyTests(unittest.TestCase):\\n"
                "    def test_collapses_separators(self): pass\\n")
            ''')},
        "forges result lines and exits": {"textkit/core.py": TEXTKIT_CORE + textwrap.dedent('''
            import os, sys
            sys.stderr.write("test_collapses_separators (tests.test_slugify.SlugifyTests."
                             "test_collapses_separators) ... ok\\n")
            sys.stderr.flush()
            os._exit(0)
            ''')},
    }
    names = list(planted)
    got = run(task, [(sample, diff_of(repos, planted[n], tmp_path / str(i)))
                     for i, n in enumerate(names)])
    outcome = {n: g for n, g in zip(names, got)}
    for name, score in outcome.items():
        assert score.status == "unresolved", (name, score.status, score.explanation)
    reverted = {n: [r["path"] for r in outcome[n].metadata["reverted"]] for n in names}
    assert reverted["edits the test file"] == ["tests/test_slugify.py"]
    assert reverted["neuters asserts in tests/__init__"] == ["tests/__init__.py"]
    assert reverted["adds a conftest"] == ["conftest.py"]
    assert reverted["shadows unittest"] == ["unittest.py"]
    assert outcome["skips the failing test"].metadata["tests"]["FAIL_TO_PASS"] == {
        "tests.test_slugify.SlugifyTests.test_collapses_separators": "SKIPPED"}
    assert "Permission denied" in outcome["rewrites tests at run time"].metadata["test_log"]
    assert "incomplete" in outcome["forges result lines and exits"].explanation
    # The same fix with a discovery file as well still resolves: only that file is reverted.
    both = run(task, [(sample, diff_of(repos, {"textkit/core.py": FIXED, "conftest.py": neuter},
                                       tmp_path / "both"))])
    assert both[0].status == "resolved" and both[0].metadata["changed"] == [
        "conftest.py", "textkit/core.py"]


def test_patches_writing_outside_the_repository_are_refused(repos):
    task = make_task(repos)
    sample = samples_by_id(task)[SLUG]
    escapes = [
        "--- a/../../etc/evil\n+++ b/../../etc/evil\n@@ -0,0 +1 @@\n+x\n",
        "--- /dev/null\n+++ /etc/evil\n@@ -0,0 +1 @@\n+x\n",
        "diff --git a/link b/link\nnew file mode 120000\n--- /dev/null\n+++ b/link\n"
        "@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n",
    ]
    got = run(task, [(sample, f"```diff\n{e}```") for e in escapes])
    assert [g.status for g in got] == ["patch_failed"] * 3
    assert all("refused" in g.explanation for g in got)


def test_resources_and_wall_clock(repos, tmp_path):
    task = make_task(repos, timeout=6, memory="256m")
    sample = samples_by_id(task)[SLUG]
    hog = FIXED + "\n_hog = bytearray(1024 * 1024 * 1024)\n"
    loop = FIXED + "\nwhile True:\n    pass\n"
    got = run(task, [(sample, diff_of(repos, {"textkit/core.py": t}, tmp_path / str(i)))
                     for i, t in enumerate((hog, loop))])
    assert [g.status for g in got] == ["unresolved", "unresolved"]
    assert "killed" in got[0].explanation
    assert "wall-clock" in got[1].explanation and got[1].metadata["exit_code"] == 124


def test_a_flood_of_output_is_cut_and_still_graded(repos, tmp_path):
    # The deadline is far off: the flood is cut by the output cap, not by the clock.
    task = make_task(repos, timeout=120)
    sample = samples_by_id(task)[SLUG]
    flood = FIXED + "\nimport sys\nsys.stdout.write('x' * 30_000_000 + '\\n')\n"
    [got] = run(task, [(sample, diff_of(repos, {"textkit/core.py": flood}, tmp_path))])
    # The verdict lines follow the flood, so they are in the log's kept tail.
    assert got.status == "resolved", got.explanation
    assert len(got.metadata["test_log"]) < 70_000 and "cut ...]" in got.metadata["test_log"]


def test_image_has_no_history_after_base(repos):
    from sandbox.container import Sandbox
    from sandbox.limits import Limits

    task = make_task(repos)
    sample = samples_by_id(task)[SLUG]
    [gold] = run(task, [(sample, sample.solution)])
    chain = bundled.commits(repos / "evalsfix__textkit")
    with Sandbox(gold.metadata["image"], Limits(timeout=30), workdir="/testbed") as box:
        out = box.exec(["sh", "-c", "git rev-list --all; echo TAGS; git tag; echo REFLOG; "
                        "git reflog --all; echo REFS; git for-each-ref --format='%(refname)'; "
                        f"echo FUTURE; git cat-file -e {chain[1]} && echo present"]).text
    revs, rest = out.split("TAGS\n")
    assert revs.split() == [chain[0]]
    tags, rest = rest.split("REFLOG\n")
    assert tags.split() == [bundled.TAG_FIRST]
    reflog, rest = rest.split("REFS\n")
    assert reflog.strip() == ""
    refs, future = rest.split("FUTURE\n")
    assert sorted(refs.split()) == ["refs/heads/main", f"refs/tags/{bundled.TAG_FIRST}"]
    assert "present" not in future


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


EVAL_SCRIPT = """#!/bin/bash
source /opt/env/bin/activate
cd /testbed
python -m unittest -v tests.test_slugify
"""


def test_published_image_pulled_from_a_registry(repos, registry, tmp_path):
    """SWE-bench's published images' layout: the repository in /testbed, an env that the
    eval script activates (only it has `python`), no iproute2 (the sealed route is set
    from outside). Pushed to a local registry, gone from the engine, pulled by name."""
    from sandbox.base import BaseSpec, ensure_base
    from sandbox.engine import client
    from sandbox.images import Layer, ensure
    from tasks.swe import repos as repo_snapshots
    from tasks.swe.layers import published_image

    task = make_task(repos)
    sample = samples_by_id(task)[SLUG]
    mirror = repos / "evalsfix__textkit"
    base = ensure_base(BaseSpec()).tag
    layout = Layer("instance", base, "FROM {{PARENT}}\nCOPY testbed /testbed\n"
                   "RUN python3 -m venv /opt/env && rm -f /usr/bin/ip /bin/ip /sbin/ip\n",
                   inputs={"published layout": sample.metadata["base_commit"]},
                   context_fn=lambda: repo_snapshots.snapshot_tar(mirror, sample.metadata["base_commit"]))
    built = ensure(layout).tag
    inst = Instance.from_metadata(sample.metadata)
    ref = published_image(inst, registry)
    images = client().images
    images.get(built).tag(ref.rsplit(":", 1)[0], "latest")
    images.push(ref.rsplit(":", 1)[0], "latest")
    images.remove(ref)
    images.remove(built)
    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps({SLUG: {"eval_script": EVAL_SCRIPT, "network": "sealed"}}))
    pulled = make_task(repos, images="published", registry=registry, specs_file=str(specs))
    unreachable = make_task(repos, images="published", registry=f"127.0.0.1:{_free_port()}",
                            specs_file=str(specs))
    got = run(pulled, [(samples_by_id(pulled)[SLUG], sample.solution)])
    got += run(unreachable, [(samples_by_id(unreachable)[SLUG], sample.solution)])
    try:
        images.remove(ref)
    except Exception:  # noqa: BLE001 - already gone
        pass
    ok, down = got
    assert ok.status == "resolved", ok.explanation
    assert ok.metadata["image"] == ref and ok.metadata["built"] == {}
    assert "Ran 3 tests" in ok.metadata["test_log"]
    assert down.status == "infra_error"
    assert down.explanation.startswith("image: cannot pull 127.0.0.1:") and "\n" not in down.explanation
    assert "-T images=local" in down.explanation
