"""The one plugin registry, and the multiple-choice pieces any such task shares."""

import sys

import pytest

from evals.registry import KINDS, Registry
from evals.runner import ConfigError, RUNNERS
from tasks.multiple_choice import choice_sample, multiple_choice


def test_lazy_entries_import_on_first_use_and_unknown_names_fail_alike():
    reg = Registry("widget", None, {"json": "json:dumps"}, error=ConfigError)
    assert reg.entries()["json"].target == "json:dumps"  # not imported by listing
    assert reg.get("json") is sys.modules["json"].dumps
    with pytest.raises(ConfigError, match=r"unknown widget 'nope' \(not registered; known: json\)"):
        reg.get("nope")
    reg.register("mine", len)
    assert reg.names() == ["json", "mine"] and reg.get("mine") is len


def test_a_broken_entry_names_itself():
    reg = Registry("widget", None, {"bad": "no_such_module_anywhere:x"})
    with pytest.raises(LookupError, match="bad=no_such_module_anywhere:x.*ModuleNotFoundError"):
        reg.get("bad")


def test_entry_point_group_extends_a_registry(tmp_path, monkeypatch):
    (tmp_path / "private_widgets.py").write_text("def make(name):\n    return name * 2\n")
    dist = tmp_path / "private_widgets-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: private-widgets\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[evals.test_widgets]\ntwice = private_widgets:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("widget", "evals.test_widgets")
    assert reg.entries()["twice"].source == "entry point twice=private_widgets:make"
    assert reg.get("twice")("ab") == "abab"


def test_every_kind_is_a_registry():
    import tasks  # noqa: F401 - the tasks register the kinds they declare

    for name in ("task", "runner", "ranker", "command", "program-runner", "log-parser",
                 "image-builder"):
        assert isinstance(KINDS.get(name), Registry), name
    assert {"openai", "gold", "hf"} <= set(RUNNERS.names())


@pytest.mark.parametrize("kind, entry", [("batch-api", "anthropic"), ("cluster", "ray"),
                                         ("command", "sandbox"), ("log-parser", "pytest")])
def test_evals_list_shows_every_kind_from_a_fresh_process(kind, entry):
    """The core's kinds are found by name even when nothing imported their module yet
    (batch-api and cluster were only known once a batch or cluster run had started)."""
    from tests.conftest import run_cli

    listed = run_cli("list", "--kind", kind)
    assert listed.returncode == 0 and entry in listed.stdout, listed.stderr


def test_a_ten_option_benchmark_is_a_dataset_and_a_template():
    options = [str(i) for i in range(10)]
    samples = [choice_sample("q1", "2+2?", options, 4, shuffle_seed=1)]
    task = multiple_choice(samples, letters="ABCDEFGHIJ", task="ten")
    (s,) = task.samples()
    prompt = task.prompt(s)[0]["content"]
    assert "one of A, B, C, D, E, F, G, H, I or J" in prompt and "\nJ) " in prompt
    gold = task.scorer(s, s.solution)
    assert gold.value == 1.0 and gold.answer == "4"  # votes count the option, not the letter
    wrong = next(letter for letter in "ABCDEFGHIJ" if letter != s.target)
    assert task.scorer(s, f"ANSWER: {wrong}").value == 0.0
    assert task.scorer(s, "no idea").status == "no_answer"
    cut = f"<think>so ANSWER: {s.target}"
    assert task.scorer(s, cut).status == "no_answer"
    assert multiple_choice(samples, letters="ABCDEFGHIJ", truncated="extract").scorer(
        s, cut).value == 1.0
