"""Paired comparison of two runs, or of two settings or models within one run.

The unit is the problem: each side's score on a problem is the mean over its
scored generations, and only problems both sides scored are compared
(``paired_difference`` in evals.stats gives the interval and p-value).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evals.metrics import paired_difference
from evals.metrics_columnar import indexed
from evals.records import iter_records
from evals.score_index import hash64


@dataclass(frozen=True)
class Side:
    samples_path: Path
    label: str
    setting: str | None = None
    model: str | None = None


def problem_means(path: Path) -> dict[tuple[str, str, str], dict[int, float]]:
    """(task, model, setting) -> {hash64(sample_id): mean score}, the last record of a key
    winning. Keyed by the id's hash so a run summed from its score index (a big one)
    pairs with one read from JSON."""
    fast = indexed(path)
    if fast is not None:
        return fast.problem_means()
    latest: dict[tuple, float | None] = {}
    for r in iter_records(path):
        # as evals.metrics.Aggregator and the score index: the run writes no score for
        # an unscored status (UNSCORED), and a failed call has none
        score = None if r.get("status") == "error" else r.get("score")
        latest[(r["task"], r["model"], r["setting"], r["sample_id"], r["gen"])] = score
    sums: dict[tuple, dict[str, list[float]]] = {}
    for (task, model, setting, sample_id, _), score in latest.items():
        if score is not None:
            sums.setdefault((task, model, setting), {}).setdefault(sample_id, []).append(score)
    return {group: {hash64(sid): sum(v) / len(v) for sid, v in problems.items()}
            for group, problems in sums.items()}


def compare(a: Side, b: Side, tasks: list[str] | None = None, confidence: float = 0.95) -> list[dict]:
    means_a = problem_means(a.samples_path)
    means_b = means_a if b.samples_path == a.samples_path else problem_means(b.samples_path)
    rows = []
    for (task, model, setting), scores_a in sorted(means_a.items()):
        if (tasks and task not in tasks) or (a.model and model != a.model) \
                or (a.setting and setting != a.setting):
            continue
        key_b = (task, b.model or model, b.setting or setting)
        scores_b = means_b.get(key_b)
        if scores_b is None or key_b == (task, model, setting) and means_b is means_a:
            continue
        if not set(scores_a) & set(scores_b):
            continue
        result = paired_difference(scores_b, scores_a, confidence)  # B - A
        rows.append({"task": task, "a": f"{a.label} {model} {setting}",
                     "b": f"{b.label} {key_b[1]} {key_b[2]}", "n": result.n,
                     "mean_a": result.mean_b, "mean_b": result.mean_a, "diff": result.diff,
                     "ci_low": result.low, "ci_high": result.high, "p_value": result.p_value})
    return rows
