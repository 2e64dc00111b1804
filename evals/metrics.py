"""Metric and cost rows over result records: one streaming pass, stdlib only.

``summarize`` streams records into per-(task, model, setting) rows; see its
docstring for the exact definitions.  ``Aggregator`` does the same in one pass
and gives the cost summary (``CostRow``) as well.

The rows themselves (``MetricRow``, ``CostRow``, how a group's values become one)
live in ``evals.metric_rows``. The per-problem estimators live in ``evals.estimators`` (pass@k, maj@k,
best@k) and the intervals in ``evals.stats`` (clustered t, Wilson, paired
differences); both are re-exported here, so ``from evals.metrics import ...``
keeps working for every public name.

Only the standard library is imported (the CLI imports this module at start).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from operator import itemgetter, mul
from typing import Any, Callable, Iterable, Mapping, Sequence

from evals.estimators import (
    COUNT_BUDGET, FIRST, best_from_groups, count_cost, maj_exact, max_of_k,
    rank_groups, top_probs, order_weights, best_of_k, maj_at_k, pass_at_k,
)
from evals.stats import CI, Comparison, mean_ci, paired_difference, t_ppf, t_sf
from evals.metric_rows import (  # noqa: F401 (re-exported)
    AGENT_AXES, FAILURE_SHARES, VERDICT_FAILURES, CostRow, GroupKey, MetricRow, _latency,
    _quantile, assemble_rows, cost_row,
)

__all__ = [
    "CI", "Comparison", "MetricRow", "CostRow", "GroupKey", "Aggregator",
    "pass_at_k", "maj_at_k", "best_of_k", "mean_ci", "paired_difference",
    "summarize", "cost_summary", "default_ks", "t_sf", "t_ppf",
]


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
