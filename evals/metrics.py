"""Metric and cost rows over result records: one streaming pass, stdlib only.

``summarize`` streams records into per-(task, model, setting) rows; see its
docstring for the exact definitions.  ``Aggregator`` does the same in one pass
and gives the cost summary (``CostRow``) as well.

The per-problem estimators live in ``evals.estimators`` (pass@k, maj@k,
best@k) and the intervals in ``evals.stats`` (clustered t, Wilson, paired
differences); both are re-exported here, so ``from evals.metrics import ...``
keeps working for every public name.

Only the standard library is imported (the CLI imports this module at start).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass
from operator import itemgetter, mul
from typing import Any, Callable, Iterable, Mapping, Sequence

from evals.estimators import (
    COUNT_BUDGET, FIRST, best_from_groups, count_cost, maj_exact, max_of_k,
    rank_groups, top_probs, order_weights, best_of_k, maj_at_k, pass_at_k,
)
from evals.stats import CI, Comparison, mean_interval, mean_ci, paired_difference, t_ppf, t_sf

__all__ = [
    "CI", "Comparison", "MetricRow", "CostRow", "GroupKey", "Aggregator",
    "pass_at_k", "maj_at_k", "best_of_k", "mean_ci", "paired_difference",
    "summarize", "cost_summary", "default_ks", "t_sf", "t_ppf",
]

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


def default_ks(n: int) -> list[int]:
    """1, 2, 4, 8, ... up to n, plus n itself."""
    ks = []
    k = 1
    while k <= n:
        ks.append(k)
        k *= 2
    if n >= 1 and ks[-1] != n:
        ks.append(n)
    return ks


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


_SCORE = itemgetter(0)  # of a (score, answer, rank) item
_VOTE = itemgetter(1, 0)  # (answer, score)
_ERROR = 0  # slot of a generation whose last record is an error (falsy, unlike a tuple)
_INTERN_LIMIT = 1_000_000  # distinct (score, answer) tuples shared; beyond, stored as they come


class _Group:
    __slots__ = ("key", "settings", "problems", "records", "error_records", "prompt",
                 "completion", "reasoning", "cost", "cost_known", "latencies", "length",
                 "finished", "ranked", "budget", "budget_use", "over_budget", "failures",
                 "steps", "stepped")

    def __init__(self, key: GroupKey, settings: Mapping[str, Any] | None):
        self.key = key
        self.settings = dict(settings or {})
        # sample_id -> list indexed by gen: None (unseen), _ERROR, or (score, answer, rank)
        self.problems: dict[Any, list] = {}
        self.records = 0
        self.error_records = 0
        self.prompt = 0.0
        self.completion = 0.0
        self.reasoning = 0.0
        self.cost = 0.0
        self.cost_known = True
        self.latencies = array("d")
        self.length = 0  # non-error records that stopped at the token limit
        self.finished = 0  # non-error records
        self.ranked = False
        self.budget = self.settings.get("thinking_budget") or 0
        self.budget_use = 0.0  # sum over non-error records of reasoning tokens / budget
        self.over_budget = 0
        self.failures = [0, 0, 0]  # non-error records by VERDICT_FAILURES
        self.steps = 0.0  # sum of an agent's steps over non-error records that have them
        self.stepped = 0


class Aggregator:
    """Streaming aggregation of records by (task, model, setting).

    Per generation it keeps one small tuple (score, answer, rank), shared
    between identical generations, in a per-problem list indexed by ``gen``
    (a later record for the same key overwrites: last wins), plus per-group
    running sums for costs and one float per record for latency quantiles.
    ``add``/``update`` may be called repeatedly; ``metric_rows`` and
    ``cost_rows`` read the state without changing it.
    """

    def __init__(self) -> None:
        self._groups: dict[GroupKey, _Group] = {}
        # One shared tuple per distinct (score, answer, rank): most generations
        # repeat a few answers, so this keeps memory to a pointer per generation.
        self._interned: dict[tuple, tuple] = {}

    def add(self, record: Mapping[str, Any]) -> None:
        self.update((record,))

    def update(self, records: Iterable[Mapping[str, Any]]) -> "Aggregator":
        groups = self._groups
        intern = self._interned
        intern_get = intern.get
        g: _Group | None = None
        task = model = setting = None
        sid: Any = object()
        slots: list = []
        for rec in records:
            t, m, s = rec["task"], rec["model"], rec["setting"]
            if g is None or s != setting or m != model or t != task:
                task, model, setting = t, m, s
                key = (t, m, s)
                g = groups.get(key)
                if g is None:
                    g = groups[key] = _Group(key, rec.get("settings"))
                sid = object()  # forget the cached problem
            if rec["sample_id"] != sid:
                sid = rec["sample_id"]
                slots = g.problems.get(sid)
                if slots is None:
                    slots = g.problems[sid] = []
            gen = rec["gen"]
            if gen >= len(slots):
                slots.extend([None] * (gen + 1 - len(slots)))
            elif gen < 0:
                raise ValueError(f"negative gen {gen} in record {rec.get('sample_id')!r}")
            g.records += 1
            # A cached answer re-scored after an unscored attempt (infra_error, scorer_error)
            # replaces that attempt's verdict; its tokens and cost were already counted.
            replay = slots[gen] is not None and rec.get("cached")
            score = rec["score"]
            if score is None or rec.get("status") == "error":
                slots[gen] = _ERROR
                g.error_records += 1
                cost = rec.get("cost")
                if cost is not None:
                    g.cost += cost
            else:
                rank = rec.get("rank")
                item = (score, rec.get("answer"), rank)
                if rank is None:  # ranks are continuous: nothing to share
                    shared = intern_get(item)
                    if shared is None:
                        if len(intern) < _INTERN_LIMIT:
                            intern[item] = item
                        shared = item
                    item = shared
                else:
                    g.ranked = True
                slots[gen] = item
                if replay:
                    continue
                g.finished += 1
                cost = rec.get("cost")
                if cost is None:
                    g.cost_known = False
                else:
                    g.cost += cost
                lat = rec.get("latency")
                if lat is not None:
                    g.latencies.append(lat)
                if rec.get("finish_reason") == "length":
                    g.length += 1
                failure = VERDICT_FAILURES.get(rec.get("status"))
                if failure is not None:
                    g.failures[failure] += 1
                if (steps := rec.get("steps")) is not None:
                    g.steps += steps
                    g.stepped += 1
                if g.budget and (usage := rec.get("usage")):
                    use = (usage.get("reasoning") or 0.0) / g.budget
                    g.budget_use += use
                    g.over_budget += use > 1.0
            usage = rec.get("usage")
            if usage:
                g.prompt += usage.get("prompt") or 0.0
                g.completion += usage.get("completion") or 0.0
                g.reasoning += usage.get("reasoning") or 0.0
        return self

    # -- reading out

    def _problems(self, g: _Group):
        """Per problem: (scored items, generations seen, errors)."""
        for slots in g.problems.values():
            items = [x for x in slots if x]
            errors = slots.count(_ERROR)
            yield items, len(items) + errors, errors

    def metric_rows(self, ks: Sequence[int] | None = None, confidence: float = 0.95
                    ) -> list[MetricRow]:
        rows: list[MetricRow] = []
        for key in sorted(self._groups):
            rows.extend(self._group_rows(self._groups[key], ks, confidence))
        return rows

    def _group_rows(self, g: _Group, ks: Sequence[int] | None, confidence: float
                    ) -> list[MetricRow]:
        acc: list[float] = []
        samples = 0
        errors = 0
        scored = 0
        problems: list[tuple[list, list[float]]] = []
        for items, seen, err in self._problems(g):
            samples = max(samples, seen)
            errors += err
            if not items:
                continue
            scored += len(items)
            scores = list(map(_SCORE, items))
            acc.append(math.fsum(scores) / len(items))
            problems.append((items, scores))
        per_gen = g.cost / scored if g.cost_known and scored else None
        wanted = _wanted(ks, samples) if samples > 1 and problems else []
        tables: dict[str, dict[int, list[float]]] = {
            name: {k: [] for k in wanted} for name in ("pass", "maj", "best")}
        maj_cache: dict[tuple, list[float]] = {}
        for items, scores in problems:
            n = len(items)
            kk = [k for k in wanted if k <= n]
            if not kk:
                continue
            # pass@K: expected best score of K generations (= unbiased pass@K for 0/1).
            ones = scores.count(1.0)
            if ones + scores.count(0.0) == n:
                vals = [1.0 - order_weights(n, k)[n - ones] for k in kk]
            else:
                vals = [max_of_k(scores, k) for k in kk]
            _extend(tables["pass"], kk, vals)
            # maj@K: an answer's score is the mean score of its generations.
            pairs = Counter(map(_VOTE, items))
            tally: dict[str, list] = {}
            n_none = 0
            for (answer, score), c in pairs.items():
                if answer is None:
                    n_none += c
                    continue
                e = tally.get(answer)
                if e is None:
                    tally[answer] = [c, score * c]
                else:
                    e[0] += c
                    e[1] += score * c
            profile = tuple(sorted((c, s / c) for c, s in tally.values()))
            _extend(tables["maj"], kk, maj_values(
                n_none, profile, kk, maj_cache,
                lambda: ([x[1] for x in items], {a: s / c for a, (c, s) in tally.items()})))
            if g.ranked:  # generations without a rank rank below every ranked one
                ranks = [-math.inf if x[2] is None else x[2] for x in items]
                _extend(tables["best"], kk, best_values(ranks, scores, kk))
        return assemble_rows(g.key, g.settings, samples, errors, per_gen, acc, tables,
                             g.ranked, wanted, confidence)

    def cost_rows(self) -> dict[GroupKey, CostRow]:
        out: dict[GroupKey, CostRow] = {}
        for key in sorted(self._groups):
            g = self._groups[key]
            scored = errors = 0
            correct = 0.0
            for items, _, err in self._problems(g):
                scored += len(items)
                errors += err
                correct += math.fsum(map(_SCORE, items))
            out[key] = cost_row(key, g.settings, len(g.problems), scored, errors, correct,
                                g.records, (g.prompt, g.completion, g.reasoning), g.cost,
                                g.cost_known, _latency(g.latencies), g.length, g.finished,
                                g.budget_use, g.over_budget, g.failures,
                                (g.steps, g.stepped))
        return out


# ------------------------------------------------ shared with evals.metrics_columnar

def _wanted(ks: Sequence[int] | None, samples: int) -> list[int]:
    wanted = sorted(set(ks)) if ks is not None else default_ks(samples)
    if any(not isinstance(k, int) or k < 1 for k in wanted):
        raise ValueError(f"ks must be positive integers, got {ks!r}")
    return [k for k in wanted if k <= samples]


def _extend(table: dict[int, list[float]], kk: Sequence[int], values: Iterable[float]) -> None:
    for k, v in zip(kk, values):
        table[k].append(v)


def maj_values(n_none: int, profile: tuple, kk: Sequence[int], cache: dict,
               answers_and_scores: Callable[[], tuple[list, dict]]) -> list[float]:
    """maj@K for each K in ``kk`` of one problem whose vote profile is ``profile``
    (sorted (votes, mean score) per answer) with ``n_none`` generations voting for
    nothing. Problems share profiles, so values are cached by them."""
    ck = (n_none, profile, tuple(kk))
    vals = cache.get(ck)
    if vals is None:
        counts = [c for c, _ in profile]
        corrs = [s for _, s in profile]
        if count_cost(counts, n_none, kk[-1]) <= COUNT_BUDGET:
            vals = maj_exact(counts, corrs, n_none, kk)
        else:  # too big to count (N in the hundreds+): maj_at_k's fallback
            answers, correct = answers_and_scores()
            vals = [maj_at_k(answers, correct, k) for k in kk]
        if len(cache) < 100_000:
            cache[ck] = vals
    return vals


def best_values(ranks: Sequence[float], scores: Sequence[float], kk: Sequence[int]
                ) -> list[float]:
    """best@K for each K in ``kk`` of one problem (``ranks``: -inf for unranked)."""
    n = len(ranks)
    if len(set(ranks)) == n:  # no ties: the max-of-k weights apply as they are
        ordered = [s for _, s in sorted(zip(ranks, scores), key=FIRST)]
        return [sum(map(mul, ordered, top_probs(n, k))) for k in kk]
    groups = rank_groups(ranks, scores)
    return [best_from_groups(groups, order_weights(n, k)) for k in kk]


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


def summarize(records: Iterable[Mapping[str, Any]], *, ks: Sequence[int] | None = None,
              confidence: float = 0.95) -> list[MetricRow]:
    """Metric rows per (task, model, setting), sorted by that key, from one pass over records.

    Records: one dict per generation (samples.jsonl).  A later record with the
    same (task, model, setting, sample_id, gen) replaces an earlier one.  A
    record with status "error" (or no score) is a failed call: counted in
    ``errors``, never scored.  Per group, in this order:

    * ``accuracy``: mean over problems of each problem's mean score over its
      non-error generations; clustered CI (``mean_ci``).  A group whose
      records are all errors still gets this row, with value NaN and n = 0.
    * when some problem has N > 1 generations, for K in ``ks`` (default
      1, 2, 4, ... up to N, plus N): ``pass@K`` (expected best score of K
      generations: unbiased pass@K for 0/1 scores), ``maj@K`` (an answer's
      score is the mean score of its generations), and ``best@K`` if any
      record has a ``rank``.  Each problem uses its own count n_i of scored
      generations and is skipped for K > n_i; ``n`` says how many counted.
      The CI treats each problem's estimate as one observation.

    maj@K is exact (counting) for n_i up to ~1000, Monte Carlo beyond.  Costs:
    ``cost_summary`` or ``Aggregator`` (one pass for both).
    """
    return Aggregator().update(records).metric_rows(ks, confidence)


def cost_summary(records: Iterable[Mapping[str, Any]]) -> dict[GroupKey, CostRow]:
    """Cost rows per (task, model, setting); see ``CostRow``."""
    return Aggregator().update(records).cost_rows()
