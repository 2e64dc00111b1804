"""evals.metrics: summarize, Aggregator and cost_summary over result records."""

import math
import random

import numpy as np
import pytest

from evals.metrics import Aggregator, MetricRow, cost_summary, default_ks, maj_at_k, summarize
from tests.test_metrics_estimators import brute_best, brute_maj, brute_pass, random_answers


# ------------------------------------------------------------ summarize

SETTINGS = {"effort": "high", "thinking_budget": 1024, "max_tokens": 4096, "samples": 4}


def rec(sid, gen, score, answer=None, *, status="ok", task="t", model="m", setting="s",
        rank=None, cost=0.01, latency=1.0, finish="stop", usage=(10.0, 100.0, 50.0)):
    r = {"task": task, "model": model, "setting": setting, "sample_id": sid, "gen": gen,
         "status": status, "score": score, "settings": SETTINGS}
    if status == "error":
        r["score"] = None
        r["error"] = "HTTP 500"
        return r
    r.update(answer=answer, finish_reason=finish, latency=latency, cost=cost,
             usage={"prompt": usage[0], "completion": usage[1], "reasoning": usage[2]})
    if rank is not None:
        r["rank"] = rank
    return r


def hand_records():
    return [
        # p1: 3 of 4 correct, majority correct.
        rec("p1", 0, 1.0, "7"), rec("p1", 1, 1.0, "7"), rec("p1", 2, 0.0, "8"),
        rec("p1", 3, 1.0, "7"),
        # p2: one correct, the majority wrong, one generation without an answer.
        rec("p2", 0, 0.0, "3"), rec("p2", 1, 0.0, "3"), rec("p2", 2, 1.0, "5"),
        rec("p2", 3, 0.0, None, finish="length"),
        # p3: gen 3 errored, then was retried successfully (last record wins);
        # gen 2 errored for good.
        rec("p3", 0, 1.0, "1"), rec("p3", 1, 0.0, "2"), rec("p3", 2, None, status="error"),
        rec("p3", 3, None, status="error"), rec("p3", 3, 1.0, "1"),
        # p1 gen 2 rescored later: the later record wins.
        rec("p1", 2, 1.0, "7"),
    ]


def rows_by_metric(rows):
    return {r.metric: r for r in rows}


def test_summarize_hand_made_records():
    rows = summarize(hand_records())
    assert all(isinstance(r, MetricRow) for r in rows)
    by = rows_by_metric(rows)
    assert list(by) == ["accuracy", "pass@1", "pass@2", "pass@4", "maj@1", "maj@2", "maj@4"]
    acc = by["accuracy"]
    # p1 4/4 (rescored), p2 1/4, p3 2/3 (one error not scored).
    assert acc.value == pytest.approx((1.0 + 0.25 + 2 / 3) / 3)
    assert (acc.n, acc.samples, acc.errors) == (3, 4, 1)
    assert (acc.effort, acc.thinking_budget, acc.max_tokens) == ("high", 1024, 4096)
    assert acc.ci_method == "cluster-t" and acc.ci_low < acc.value < acc.ci_high
    # pass@2: p1 1, p2 1 - C(3,2)/C(4,2) = 0.5, p3 (n=3, c=2) 1.
    assert by["pass@2"].value == pytest.approx((1 + 0.5 + 1) / 3)
    # pass@4 and maj@4 only count p1 and p2 (p3 has 3 scored generations).
    assert by["pass@4"].n == 2 and by["pass@4"].value == pytest.approx(1.0)
    assert by["maj@4"].n == 2 and by["maj@4"].value == pytest.approx((1.0 + 0.0) / 2)
    assert by["maj@2"].value == pytest.approx(np.mean([
        brute_maj(["7"] * 4, {"7": 1.0}, 2),
        brute_maj(["3", "3", "5", None], {"5": 1.0}, 2),
        brute_maj(["1", "2", "1"], {"1": 1.0}, 2)]))
    assert by["maj@1"].value == pytest.approx(acc.value)
    assert "best@2" not in by  # no ranks
    # K times the cost of a scored generation: 12 non-error records at 0.01 (errors
    # carry no cost) spread over the 11 scored generations.
    assert by["maj@4"].cost_per_problem == pytest.approx(4 * 0.12 / 11)
    assert acc.cost_per_problem == pytest.approx(0.12 / 11)


def test_summarize_counts_errors_apart_and_last_record_wins():
    records = [rec("a", 0, None, status="error"), rec("a", 1, 0.0, "x"),
               rec("b", 0, 1.0, "y"), rec("b", 1, 1.0, "y"),
               rec("b", 0, None, status="error")]  # a later error replaces a success
    by = rows_by_metric(summarize(records))
    acc = by["accuracy"]
    assert acc.errors == 2
    assert acc.value == pytest.approx(0.5)  # a: 0/1, b: 1/1; errors never count as wrong
    # Each problem has one scored generation (errors are not samples), so no k=2 row.
    assert sorted(by) == ["accuracy", "maj@1", "pass@1"]
    # A group that only errored still reports, with no value.
    only_errors = summarize([rec("a", 0, None, status="error", setting="x")])
    assert len(only_errors) == 1 and only_errors[0].n == 0 and math.isnan(only_errors[0].value)
    assert only_errors[0].errors == 1 and only_errors[0].ci_low is None


def test_summarize_groups_and_sorts_by_key():
    records = [rec("p", 0, 1.0, "1", model="z"), rec("p", 0, 0.0, "2", model="a"),
               rec("p", 0, 1.0, "1", task="b", model="a"), rec("q", 0, 1.0, "1", model="z")]
    rows = summarize(records)
    assert [(r.task, r.model, r.metric) for r in rows] == [
        ("b", "a", "accuracy"), ("t", "a", "accuracy"), ("t", "z", "accuracy")]
    z = rows[2]
    # One 0/1 sample per problem: Wilson interval.
    assert z.n == 2 and z.value == 1.0 and z.ci_method == "wilson" and z.ci_high == 1.0


def test_summarize_best_of_k_and_explicit_ks():
    records = [rec("p", g, s, a, rank=r) for g, (s, a, r) in
               enumerate([(1.0, "x", 0.9), (0.0, "y", 0.2), (0.0, "y", 0.9), (1.0, "x", 0.1)])]
    records.append(rec("p", 4, 0.0, "z"))  # no rank: below every ranked one
    by = rows_by_metric(summarize(records, ks=[2, 5, 9]))
    assert set(by) == {"accuracy", "pass@2", "pass@5", "maj@2", "maj@5", "best@2", "best@5"}
    ranks = [0.9, 0.2, 0.9, 0.1, -math.inf]
    scores = [1.0, 0.0, 0.0, 1.0, 0.0]
    assert by["best@2"].value == pytest.approx(brute_best(ranks, scores, 2))
    assert by["best@5"].value == pytest.approx(0.5)
    assert by["best@2"].k == 2 and by["best@2"].cost_per_problem == pytest.approx(0.02)
    with pytest.raises(ValueError):
        summarize(records, ks=[0])


def test_summarize_random_records_match_per_problem_references():
    rng = random.Random(5)
    records, answers_by, scores_by = [], {}, {}
    for p in range(30):
        n = 8
        answers = random_answers(rng, n, rng.randint(1, 4))
        score_of = {f"a{i}": rng.choice([0.0, 1.0]) for i in range(4)}
        scores = [0.0 if a is None else score_of[a] for a in answers]
        answers_by[p], scores_by[p] = answers, scores
        records += [rec(f"p{p}", g, s, a) for g, (s, a) in enumerate(zip(scores, answers))]
    rng.shuffle(records)  # order must not matter
    by = rows_by_metric(summarize(records))
    for k in default_ks(8):
        maj = np.mean([brute_maj(answers_by[p], {a: s for a, s in zip(answers_by[p], scores_by[p])
                                                  if a is not None}, k) for p in range(30)])
        pas = np.mean([brute_pass(scores_by[p], k) for p in range(30)])
        assert by[f"maj@{k}"].value == pytest.approx(maj, abs=1e-12)
        assert by[f"pass@{k}"].value == pytest.approx(pas, abs=1e-12)
        assert by[f"maj@{k}"].n == 30


def test_summarize_fractional_scores():
    # Partial credit: pass@K is the expected best score of K generations; an answer
    # scored differently across generations counts at its mean score in votes.
    scored = [(0.5, "x"), (0.25, "y"), (1.0, "z"), (0.0, "x")]
    records = [rec("p", g, s, a) for g, (s, a) in enumerate(scored)]
    records.append(rec("p", 4, None, status="error") | {"cost": 0.5})
    by = rows_by_metric(summarize(records))
    scores = [s for s, _ in scored]
    for k in (1, 2, 4):
        assert by[f"pass@{k}"].value == pytest.approx(brute_pass(scores, k))
        assert by[f"maj@{k}"].value == pytest.approx(
            brute_maj([a for _, a in scored], {"x": 0.25, "y": 0.25, "z": 1.0}, k))
    assert by["accuracy"].samples == 5 and by["accuracy"].errors == 1
    # The errored call's cost is spent: (4 * 0.01 + 0.5) over 4 scored generations.
    assert by["accuracy"].cost_per_problem == pytest.approx(0.54 / 4)


def test_default_ks():
    assert default_ks(1) == [1]
    assert default_ks(8) == [1, 2, 4, 8]
    assert default_ks(10) == [1, 2, 4, 8, 10]
    assert default_ks(64) == [1, 2, 4, 8, 16, 32, 64]


def test_cost_summary():
    records = hand_records() + [rec("p4", 0, 0.0, "9", model="other", cost=None)]
    costs = cost_summary(records)
    row = costs[("t", "m", "s")]
    assert (row.problems, row.generations, row.errors, row.records) == (3, 11, 1, 14)
    # 12 successful records of usage (10, 100, 50), all counted as spent (a replaced
    # one too), over 3 problems.
    assert row.prompt_tokens == pytest.approx(12 * 10 / 3)
    assert row.completion_tokens == pytest.approx(12 * 100 / 3)
    assert row.reasoning_tokens == pytest.approx(12 * 50 / 3)
    assert row.cost_per_problem == pytest.approx(0.12 / 3)
    assert row.cost_per_generation == pytest.approx(0.12 / 11)
    correct = 4 + 1 + 2  # final scores
    assert row.cost_per_correct == pytest.approx(0.12 / correct)
    assert row.latency_mean == pytest.approx(1.0)
    assert row.length_share == pytest.approx(1 / 12)
    assert row.effort == "high"
    unknown = costs[("t", "other", "s")]
    assert unknown.cost_per_problem is None and unknown.cost_per_correct is None
    assert rows_by_metric(summarize(records[-1:]))["accuracy"].cost_per_problem is None


def test_latency_p90_matches_numpy():
    rng = random.Random(2)
    lat = [rng.expovariate(1.0) for _ in range(37)]
    records = [rec(f"p{i}", 0, 1.0, "x", latency=x) for i, x in enumerate(lat)]
    row = cost_summary(records)[("t", "m", "s")]
    assert row.latency_p90 == pytest.approx(float(np.percentile(lat, 90)), rel=1e-12)
    assert row.latency_mean == pytest.approx(float(np.mean(lat)), rel=1e-12)


def test_latency_p90_of_millions_selects_instead_of_sorting():
    # Above 100,000 latencies the two order statistics come from numpy's partition:
    # the same numbers as the sort, and numpy's percentile.
    from array import array

    from evals.metrics import _quantile
    rng = random.Random(3)
    values = array("d", (rng.expovariate(1.0) for _ in range(150_001)))
    ordered = sorted(values)
    for q in (0.0, 0.5, 0.9, 0.999, 1.0):
        pos = q * (len(ordered) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(ordered) - 1)
        assert _quantile(values, q) == ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
        assert _quantile(values, q) == pytest.approx(float(np.percentile(values, 100 * q)),
                                                     rel=1e-14)
    assert _quantile(array("d", ordered[:1000]), 0.9) == pytest.approx(
        float(np.percentile(ordered[:1000], 90)), rel=1e-14)


def test_aggregator_streams_in_parts():
    records = hand_records()
    agg = Aggregator()
    for r in records[:5]:
        agg.add(r)
    agg.update(iter(records[5:]))
    assert agg.metric_rows() == summarize(records)
    assert agg.cost_rows() == cost_summary(records)
    with pytest.raises(ValueError):
        summarize([rec("p", -1, 1.0, "x")])


def test_summarize_many_generations_is_exact_and_quick():
    # N = 64: maj@K by counting, compared with Monte Carlo on one problem.
    rng = random.Random(9)
    answers = random_answers(rng, 64, 6, none_rate=0.05)
    records = [rec("p", g, 1.0 if a == "a1" else 0.0, a) for g, a in enumerate(answers)]
    by = rows_by_metric(summarize(records))
    for k in (8, 32):
        mc = maj_at_k(answers, {"a1": 1.0}, k, method="mc", max_subsets=20_000)
        assert by[f"maj@{k}"].value == pytest.approx(mc, abs=0.015)
        assert by[f"maj@{k}"].value == maj_at_k(answers, {"a1": 1.0}, k)


def test_summarize_unanimous_generations_get_wilson_on_problems():
    # A gold run with N = 2: 12 problems, every generation correct.  The accuracy
    # interval is Wilson's on 12/12 problems, the same as pass@1's, not the point [1, 1].
    records = [rec(f"p{i}", g, 1.0, "7") for i in range(12) for g in range(2)]
    by = rows_by_metric(summarize(records))
    acc = by["accuracy"]
    assert acc.value == 1.0 and acc.ci_method == "wilson"
    assert acc.ci_high == 1.0 and acc.ci_low == pytest.approx(0.7575, abs=5e-4)
    assert (acc.ci_low, acc.ci_high) == (by["pass@1"].ci_low, by["pass@1"].ci_high)
    # Problems that disagree within themselves keep the clustered t interval.
    records[1] = rec("p0", 1, 0.0, "8")
    assert rows_by_metric(summarize(records))["accuracy"].ci_method == "cluster-t"



def test_thinking_budget_adherence():
    def rec(sid, gen, reasoning, budget):
        return {"task": "t", "model": "m", "setting": f"budget={budget}", "sample_id": sid,
                "gen": gen, "status": "ok", "score": 1.0, "answer": "a",
                "usage": {"prompt": 10, "completion": reasoning + 5, "reasoning": reasoning},
                "latency": 0.1, "cost": None, "finish_reason": "stop",
                "settings": {"thinking_budget": budget, "samples": 2}}
    records = [rec("a", 0, 50, 100), rec("a", 1, 150, 100), rec("b", 0, 100, 100),
               rec("b", 1, 0, 100), rec("a", 0, 999, None)]
    rows = cost_summary(records)
    budgeted = rows[("t", "m", "budget=100")]
    assert budgeted.budget_use == pytest.approx((0.5 + 1.5 + 1.0 + 0.0) / 4)
    assert budgeted.over_budget_share == pytest.approx(0.25)  # exactly at the budget is within
    unbudgeted = rows[("t", "m", "budget=None")]
    assert unbudgeted.budget_use is None and unbudgeted.over_budget_share is None


def test_a_cached_replay_of_an_unscored_generation_is_not_spent_twice():
    def rec(status, score, cached):
        return {"task": "t", "model": "m", "setting": "s", "sample_id": "a", "gen": 0,
                "status": status, "score": score, "answer": "x", "cached": cached,
                "usage": {"prompt": 10, "completion": 5, "reasoning": 0}, "latency": 1.0,
                "cost": 0.5, "finish_reason": "stop", "settings": {"samples": 1}}
    once = cost_summary([rec("ok", 1.0, False)])[("t", "m", "s")]
    replayed = cost_summary([rec("infra_error", None, False), rec("ok", 1.0, True)])[("t", "m", "s")]
    assert (replayed.prompt_tokens, replayed.cost_per_problem) == (once.prompt_tokens, once.cost_per_problem)
    assert replayed.generations == 1 and replayed.errors == 0
