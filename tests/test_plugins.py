"""Task plugins load from --tasks-dir, EVALS_TASKS_PATH and the evals.tasks entry points."""

import textwrap

import pytest

from evals.task import TaskError, registry
from evals.plugins import load_tasks
from tests.conftest import REPO, run_cli

PLUGIN = textwrap.dedent('''
    from evals import Sample, Score, Task, task

    @task
    def {name}(count: int = 3, shout: bool = False) -> Task:
        """Echo numbers ({name})."""
        samples = [Sample(id=str(i), input=f"say {{i}}", target=str(i)) for i in range(count)]
        return Task(dataset=samples,
                    scorer=lambda s, c: Score(float(c.strip() == s.target), c.strip()))
''')


def test_docs_example_loads_and_validates():
    load_tasks([str(REPO / "docs" / "examples")])
    spec = registry()["capitals"]
    task = spec.build({"countries": "France,Peru"})
    samples = list(task.samples())
    assert [s.id for s in samples] == ["france", "peru"]
    assert task.scorer(samples[0], " paris. ").value == 1.0
    assert task.scorer(samples[0], "Lyon").value == 0.0
    assert task.scorer(samples[0], "").status == "no_answer"
    result = run_cli("validate", "capitals", "--tasks-dir", "docs/examples")
    assert result.returncode == 0, result.stderr
    assert "6/6" in result.stdout


def test_plain_file_and_package_from_tasks_dir(tmp_path):
    (tmp_path / "echo_file.py").write_text(PLUGIN.format(name="echo_file"))
    pkg = tmp_path / "echo_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(PLUGIN.format(name="echo_pkg"))
    result = run_cli("list", "--tasks-dir", str(tmp_path), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "echo_file" in result.stdout and "echo_pkg" in result.stdout
    assert "count=3" in result.stdout and "shout=False" in result.stdout


def test_env_var_path(tmp_path):
    (tmp_path / "envtask.py").write_text(PLUGIN.format(name="envtask"))
    result = run_cli("validate", "envtask", env={"EVALS_TASKS_PATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "3/3" in result.stdout


def test_entry_point_group(tmp_path):
    """An installed private package (a dist-info on sys.path) adds tasks."""
    (tmp_path / "private_evals.py").write_text(PLUGIN.format(name="private_echo"))
    dist = tmp_path / "private_evals-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: private-evals\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[evals.tasks]\nprivate = private_evals\n")
    result = run_cli("list", env={"PYTHONPATH": str(tmp_path), "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "private_echo" in result.stdout
    assert "entry point private=private_evals" in result.stdout


def test_parameters_are_coerced_and_checked(tmp_path):
    (tmp_path / "typed.py").write_text(PLUGIN.format(name="typed"))
    load_tasks([str(tmp_path / "typed.py")])
    spec = registry()["typed"]
    assert len(list(spec.build({"count": "5", "shout": "yes"}).samples())) == 5
    with pytest.raises(TaskError, match="no parameter 'colour'"):
        spec.build({"colour": "red"})
    with pytest.raises(TaskError, match="count='many' is not a valid int"):
        spec.build({"count": "many"})


def test_broken_plugin_names_its_file(tmp_path):
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    result = run_cli("list", "--tasks-dir", str(tmp_path))
    assert result.returncode != 0
    assert "broken.py" in result.stderr and "ModuleNotFoundError" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_tasks_dir_is_one_line():
    result = run_cli("list", "--tasks-dir", "/nonexistent/dir")
    assert result.returncode != 0
    assert "/nonexistent/dir does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_task_and_parameter_messages():
    result = run_cli("run", "nosuchtask", "--model", "gold")
    assert result.returncode != 0 and "unknown task 'nosuchtask'" in result.stderr
    result = run_cli("run", "arithmetic", "--model", "gold", "-T", "bogus=1")
    assert result.returncode != 0 and "has no parameter 'bogus'" in result.stderr
    result = run_cli("run", "arithmetic", "--model", "nosuch/model")
    assert result.returncode != 0 and "unknown model 'nosuch/model'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_prompt_that_raises_stops_the_run_with_one_line(tmp_path):
    (tmp_path / "badprompt.py").write_text(textwrap.dedent('''
        from evals import Sample, Score, Task, task

        def prompt(sample):
            return [{"role": "user", "content": sample.metadata["missing"]}]

        @task
        def badprompt() -> Task:
            return Task(dataset=[Sample(id="a", input="q")], prompt=prompt,
                        scorer=lambda s, c: Score(1.0, c))
    '''))
    result = run_cli("run", "badprompt", "--tasks-dir", str(tmp_path), "-m", "gold",
                     "--results-dir", str(tmp_path / "res"), "--run-id", "x")
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: task 'badprompt', sample 'a': building the prompt "
                                     "failed: KeyError: 'missing'")
