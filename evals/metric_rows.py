"""The rows a run's metrics are read out as: one ``MetricRow`` per (task, model,
setting) with its accuracy, interval, @k estimates, failure shares, tokens, cost and
latency, and one ``CostRow``; how they are assembled from a group's per-problem
values. evals/metrics.py computes those values in one streaming pass.

Only the standard library is imported (the CLI imports this module at start).
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from evals.stats import mean_interval

GroupKey = tuple[str, str, str]  # (task, model, setting)



# ------------------------------------------------------------ summarize

@dataclass(slots=True)
class MetricRow:
    """One metric of one (task, model, setting).

    ``n``: problems the value averages (for @K rows, those with >= K scored
    generations).  ``samples``: the most generations seen for one problem.
    ``errors``: generations whose last record is an error (not scored).
    ``cost_per_problem``: what the metric costs per problem, K times the mean
    cost of a scored generation (1x for accuracy); None when a cost is unknown.
    ``ci_low``/``ci_high`` are None when undefined (fewer than two problems).
    """

    task: str
    model: str
    setting: str
    metric: str
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int
    samples: int
    errors: int
    effort: str | None = None
    thinking_budget: int | None = None
    max_tokens: int | None = None
    cost_per_problem: float | None = None
    k: int | None = None  # K of pass@K / maj@K / best@K; None for accuracy
    se: float | None = None
    ci_method: str = "none"
    # an agent's limits per episode (the setting's, evals.config.AGENT_AXES)
    max_steps: int | None = None
    agent_max_tokens: int | None = None
    agent_max_cost: float | None = None


@dataclass(slots=True)
class CostRow:
    """What one (task, model, setting) spent.

    Spend counts every record read, including errored calls and attempts a
    later record replaced: that is what was paid.  Token and cost means are
    per problem.  ``cost_per_generation`` divides spend by scored generations
    (so waste is charged to the usable ones); ``cost_per_correct`` by the sum of
    their scores.  Costs are None when a non-error record has no cost (an
    error record without a cost counts 0: failed calls are not billed).
    Latency and the share of ``finish_reason == "length"`` are over non-error
    records; latency is per record as logged (a request's wall time).
    Under a thinking budget, ``budget_use`` is the mean of reasoning tokens /
    budget and ``over_budget_share`` the share of generations whose reasoning
    exceeded it (per record usage: a request's n generations share its mean).
    """

    task: str
    model: str
    setting: str
    problems: int
    generations: int  # scored (non-error) generations after de-duplication
    errors: int  # generations whose last record is an error
    records: int  # records read, duplicates and errors included
    prompt_tokens: float
    completion_tokens: float
    reasoning_tokens: float
    cost_per_problem: float | None
    cost_per_generation: float | None
    cost_per_correct: float | None
    latency_mean: float | None
    latency_p90: float | None
    length_share: float | None
    budget_use: float | None = None
    over_budget_share: float | None = None
    effort: str | None = None
    thinking_budget: int | None = None
    max_tokens: int | None = None
    # Shares of scored generations whose answer was never judged (see VERDICT_FAILURES),
    # on length_share's basis: non-error records, cached re-scores not counted again.
    no_answer_share: float | None = None
    timeout_share: float | None = None
    parse_failure_share: float | None = None
    # Agent runs: the mean of records' ``steps`` (an episode's steps) over scored
    # generations, on length_share's basis; None where no record has steps.
    steps_mean: float | None = None


# The agent axes of a setting (evals.config.Setting): an episode's step, token and
# USD limits. Defined here, where the stdlib-only readers of records can import them.
AGENT_AXES = ("max_steps", "agent_max_tokens", "agent_max_cost")

# A scored status -> the failure share it counts in: nothing extracted, the verifier
# out of time, the answer or the verifier's input not parsed (math's checker failing).
VERDICT_FAILURES = {"no_answer": 0, "timeout": 1, "parse_error": 2, "verifier_error": 2}
FAILURE_SHARES = ("no_answer_share", "timeout_share", "parse_failure_share")


def _quantile(values: array, q: float) -> float:
    """Linear interpolation between order statistics (numpy's default).

    Millions of values: numpy's partition picks the two order statistics in
    linear time (a full sort took seconds); the arithmetic is the same.
    """
    n = len(values)
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    if n > 100_000:
        import numpy as np  # here, not at import: the CLI starts without it

        part = np.partition(np.frombuffer(values, dtype=np.float64), (lo, hi))
        a, b = float(part[lo]), float(part[hi])
    else:
        ordered = sorted(values)
        a, b = ordered[lo], ordered[hi]
    return a + (b - a) * (pos - lo)


def _latency(values: array) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return math.fsum(values) / len(values), _quantile(values, 0.9)


def cost_row(key: GroupKey, settings: Mapping[str, Any], problems: int, scored: int,
             errors: int, correct: float, records: int, tokens: tuple[float, float, float],
             cost: float, cost_known: bool, latency: tuple[float | None, float | None],
             length: int, finished: int, budget_use: float, over_budget: int,
             failures: Sequence[int] = (0, 0, 0), steps: tuple[float, int] = (0.0, 0)
             ) -> CostRow:
    """A CostRow from one group's sums (see CostRow for the definitions);
    ``latency``: (mean, p90); ``failures``: non-error records by VERDICT_FAILURES;
    ``steps``: (sum, records with steps)."""
    per = 1.0 / problems if problems else math.nan
    budget = settings.get("thinking_budget")
    return CostRow(
        *key, problems=problems, generations=scored, errors=errors, records=records,
        prompt_tokens=tokens[0] * per, completion_tokens=tokens[1] * per,
        reasoning_tokens=tokens[2] * per,
        cost_per_problem=cost * per if cost_known and problems else None,
        cost_per_generation=cost / scored if cost_known and scored else None,
        cost_per_correct=cost / correct if cost_known and correct > 0 else None,
        latency_mean=latency[0], latency_p90=latency[1],
        length_share=length / finished if finished else None,
        budget_use=budget_use / finished if budget and finished else None,
        over_budget_share=over_budget / finished if budget and finished else None,
        effort=settings.get("effort"), thinking_budget=budget,
        max_tokens=settings.get("max_tokens"),
        steps_mean=steps[0] / steps[1] if steps[1] else None,
        **{name: count / finished if finished else None
           for name, count in zip(FAILURE_SHARES, failures)})


def assemble_rows(key: GroupKey, settings: Mapping[str, Any], samples: int, errors: int,
                  per_gen: float | None, acc: Sequence[float],
                  tables: Mapping[str, Mapping[int, Sequence[float]]], ranked: bool,
                  wanted: Sequence[int], confidence: float) -> list[MetricRow]:
    """The rows of one group from its per-problem values: accuracy, then pass@K,
    maj@K and (when ranked) best@K for each K some problem reached."""
    task, model, setting = key

    def row(metric: str, values: Sequence[float], k: int | None) -> MetricRow:
        # Wilson when every per-problem value is 0 or 1 (see evals.stats).
        ci = mean_interval(values, confidence)
        defined = ci.method != "none"
        return MetricRow(task, model, setting, metric, ci.mean,
                         ci.low if defined else None, ci.high if defined else None,
                         ci.n, samples, errors, settings.get("effort"),
                         settings.get("thinking_budget"), settings.get("max_tokens"),
                         None if per_gen is None else per_gen * (k or 1), k,
                         ci.se if defined else None, ci.method,
                         *(settings.get(name) for name in AGENT_AXES))

    rows = [row("accuracy", acc, None)]
    for name in ("pass", "maj", "best"):
        if name == "best" and not ranked:
            continue
        for k in wanted:
            values = tables[name][k]
            if values:
                rows.append(row(f"{name}@{k}", values, k))
    return rows
