"""Breakdowns are what a task declares (evals.task.Breakdown), not field names the core
knows: a private task's own keys get the report's table and heatmaps."""

from __future__ import annotations

import json

from evals.records import RunLog
from evals.report import build_report
from evals.run import RunConfig, execute

PLUGIN = '''
from evals import Sample, Score, Task, task
from evals.task import Breakdown

@task
def graded() -> Task:
    samples = [Sample(id=f"q{i}", input=f"q{i}", target="1" if i % 3 else "0",
                      metadata={"level": ("easy", "hard")[i % 2],
                                "topic": ("algebra", "geometry")[i % 4 // 2],
                                "size": (10, 100)[i % 2], "noise": (0, 50)[i % 4 // 2],
                                "form": "short"})
               for i in range(8)]
    return Task(dataset=samples, scorer=lambda s, c: Score(float(c == "1"), c),
                breakdowns=(Breakdown("tree", ("level", "topic"), ("level", "topic")),
                            Breakdown("grid", ("size", "noise"), ("items", "noise"), "form",
                                      ("text", "percent"))))
'''


def test_a_private_tasks_declared_breakdowns_reach_the_report(tmp_path):
    plugin = tmp_path / "graded.py"
    plugin.write_text(PLUGIN)
    log = RunLog(tmp_path / "res" / "r")
    execute(RunConfig(tasks=["graded"], models=["gold"], tasks_dirs=[str(plugin)]), log,
            ["evals"])
    declared = json.loads(log.meta_path.read_text())["breakdowns"]
    assert declared["graded"][0]["keys"] == ["level", "topic"]
    html = build_report(tmp_path / "res", tmp_path / "r.html").read_text()
    assert "graded by level" in html and "level / topic" in html
    assert "<b>easy</b>" in html and "<b>hard</b>" in html  # the categories
    assert "&nbsp;&nbsp;&nbsp;algebra" in html  # a sub-category under its category
    assert "score by items and noise" in html  # the grid, with the declared labels
    assert ">50%<" in html  # noise written in its declared format


def test_the_viewer_filters_by_the_declared_keys(tmp_path):
    from evals.view.store import Filters, RunView

    plugin = tmp_path / "graded.py"
    plugin.write_text(PLUGIN)
    log = RunLog(tmp_path / "res" / "r")
    execute(RunConfig(tasks=["graded"], models=["gold"], tasks_dirs=[str(plugin)]), log,
            ["evals"])
    view = RunView(log)
    facets = view.facets()
    assert facets["domains"] == ["easy", "hard"]
    assert facets["subdomains"] == ["easy / algebra", "easy / geometry", "hard / algebra",
                                    "hard / geometry"]
    assert set(facets["cells"]) == {"short|10|0", "short|10|50", "short|100|0", "short|100|50"}
    hard = view.page(Filters(categories=view.category_codes(domain="hard")), limit=50)
    assert hard["total"] == 4
