"""evals.metrics against closed forms, brute-force enumeration, numpy and scipy."""

import itertools
import math
import random
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from evals.metrics import (
    CI, Aggregator, MetricRow, best_of_k, cost_summary, default_ks, maj_at_k, mean_ci,
    paired_difference, pass_at_k, summarize, t_ppf, t_sf,
)


# ------------------------------------------------------------ references

def brute_pass(scores, k):
    """Mean over all k-subsets of the subset's best score."""
    subs = list(itertools.combinations(scores, k))
    return sum(max(s) for s in subs) / len(subs)


def brute_maj(answers, correct, k):
    total = 0.0
    subs = list(itertools.combinations(answers, k))
    for sub in subs:
        votes = {}
        for a in sub:
            if a is not None:
                votes[a] = votes.get(a, 0) + 1
        if votes:
            top = max(votes.values())
            tied = [correct.get(a, 0.0) for a, v in votes.items() if v == top]
            total += sum(tied) / len(tied)
    return total / len(subs)


def brute_best(ranks, scores, k):
    total = 0.0
    subs = list(itertools.combinations(range(len(ranks)), k))
    for sub in subs:
        top = max(ranks[i] for i in sub)
        tied = [scores[i] for i in sub if ranks[i] == top]
        total += sum(tied) / len(tied)
    return total / len(subs)


def random_answers(rng, n, pool_size, none_rate=0.2):
    pool = [f"a{i}" for i in range(pool_size)]
    return [None if rng.random() < none_rate else rng.choice(pool) for _ in range(n)]


# ------------------------------------------------------------ pass@k

def test_pass_at_k_closed_form():
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5), abs=1e-15)
    for n, c, k in [(10, 0, 3), (10, 10, 1), (5, 2, 4), (20, 7, 1), (64, 1, 64), (64, 3, 10)]:
        expected = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert pass_at_k(n, c, k) == pytest.approx(float(expected), abs=1e-14)


def test_pass_at_k_edges():
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 6, 5) == 1.0  # n - c < k: every 5-subset holds a correct one
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(7, 3, 1) == pytest.approx(3 / 7)  # pass@1 is the fraction correct


def test_pass_at_k_stable_at_large_n():
    for n, c, k in [(1000, 1, 1), (1000, 3, 500), (1000, 10, 100), (1000, 999, 1), (1000, 500, 501)]:
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        got = pass_at_k(n, c, k)
        assert abs(got - float(exact)) <= 1e-12 * max(1e-300, float(exact)) + 1e-15
        assert 0.0 <= got <= 1.0


@pytest.mark.parametrize("args", [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6),
                                  (5.0, 2, 1), (5, 2, 1.5)])
def test_pass_at_k_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        pass_at_k(*args)


# ------------------------------------------------------------ best-of-k

def test_best_of_k_matches_enumeration_with_ties():
    rng = random.Random(7)
    for _ in range(150):
        n = rng.randint(1, 9)
        ranks = [rng.choice([0.1, 0.5, 0.5, 0.9, rng.random()]) for _ in range(n)]
        scores = [rng.choice([0.0, 1.0, rng.random()]) for _ in range(n)]
        for k in range(1, n + 1):
            assert best_of_k(ranks, scores, k) == pytest.approx(brute_best(ranks, scores, k),
                                                                abs=1e-12)


def test_best_of_k_simple_cases():
    assert best_of_k([3, 2, 1], [1.0, 0.0, 0.0], 3) == 1.0  # whole set: the top one
    assert best_of_k([3, 2, 1], [1.0, 0.0, 0.0], 1) == pytest.approx(1 / 3)
    assert best_of_k([1, 1, 1], [1.0, 0.0, 0.0], 3) == pytest.approx(1 / 3)  # all tied: share
    with pytest.raises(ValueError):
        best_of_k([1, 2], [1.0], 1)
    with pytest.raises(ValueError):
        best_of_k([1, float("nan")], [1.0, 0.0], 1)


# ------------------------------------------------------------ maj@k

def test_maj_at_k_matches_enumeration_on_random_small_cases():
    rng = random.Random(1)
    for _ in range(250):
        n = rng.randint(1, 11)
        answers = random_answers(rng, n, rng.randint(1, 5), none_rate=rng.choice([0, 0.2, 0.6]))
        correct = {f"a{i}": rng.choice([0.0, 1.0, 1.0, rng.random()]) for i in range(5)}
        for k in range(1, n + 1):
            expected = brute_maj(answers, correct, k)
            assert maj_at_k(answers, correct, k) == pytest.approx(expected, abs=1e-12)
            assert maj_at_k(answers, correct, k, method="enumerate") == pytest.approx(
                expected, abs=1e-12)


def test_maj_at_k_ties_and_no_votes():
    # Two answers, one vote each at k=2: the tie splits the credit.
    assert maj_at_k(["x", "y"], {"x": 1.0}, 2) == 0.5
    # No votes at all: 0; a subset without votes scores 0.
    assert maj_at_k([None, None, None], {"x": 1.0}, 2) == 0.0
    assert maj_at_k(["x", None], {"x": 1.0}, 1) == 0.5
    # Unknown answers score 0.
    assert maj_at_k(["x", "x", "y"], {}, 3) == 0.0
    # k = N is the plain majority of all generations.
    assert maj_at_k(["x", "x", "y", None], {"x": 1.0}, 4) == 1.0
    assert maj_at_k(["x", "y", "y", "x"], {"x": 1.0, "y": 0.25}, 4) == pytest.approx(0.625)


@pytest.mark.parametrize("n,k", [(60, 2), (60, 58), (64, 3), (64, 62), (70, 2), (70, 68)])
def test_maj_at_k_exact_at_large_n_matches_enumeration(n, k):
    # n in 57..64 takes the 8-byte fast path, n = 70 the generic one.
    rng = random.Random(n * 100 + k)
    for pool in (2, 5, 25):
        answers = random_answers(rng, n, pool, none_rate=0.1)
        correct = {"a0": 1.0, "a1": 0.5, "a3": 1.0}
        expected = brute_maj(answers, correct, k)
        assert maj_at_k(answers, correct, k, method="count") == pytest.approx(expected, abs=1e-12)


def test_maj_at_k_structured_profiles_match_enumeration():
    # Profiles that exercise each path: leader alone, two leaders, pair levels, many ties.
    cases = [
        ["a"] * 6 + ["b"] * 3 + ["c"] * 2 + [None] * 2,
        ["a"] * 5 + ["b"] * 5 + ["c"] + [None],
        ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
        ["a"] * 7 + ["b"] * 6 + ["c"],
        ["a", "b", "c", "d", "e", "f", "g", "h", "a", "b"],
    ]
    for answers in cases:
        for correct in ({"a": 1.0}, {"b": 1.0}, {"c": 1.0}, {"a": 0.3, "b": 1.0, "c": 0.7}):
            for k in range(1, len(answers) + 1):
                assert maj_at_k(answers, correct, k) == pytest.approx(
                    brute_maj(answers, correct, k), abs=1e-12)


def test_maj_at_k_monte_carlo_agrees_with_exact():
    rng = random.Random(3)
    answers = random_answers(rng, 64, 8, none_rate=0.1)
    correct = {"a0": 1.0, "a1": 1.0, "a5": 0.5}
    for k in (5, 16, 40):
        exact = maj_at_k(answers, correct, k)
        mc = maj_at_k(answers, correct, k, method="mc", max_subsets=20_000, seed=5)
        # Bernoulli-ish per draw: standard error <= 0.5 / sqrt(20000) = 0.0035.
        assert abs(mc - exact) < 0.015
        # Seeded: the same seed gives the same estimate.
        assert mc == maj_at_k(answers, correct, k, method="mc", max_subsets=20_000, seed=5)
    # C(64, 16) subsets are far beyond max_subsets: auto still counts exactly.
    assert maj_at_k(answers, correct, 16) == maj_at_k(answers, correct, 16, method="count")


def test_maj_at_k_auto_falls_back_beyond_counting_range():
    answers = ["a"] * 700 + ["b"] * 500 + [None] * 100
    value = maj_at_k(answers, {"a": 1.0}, 3, max_subsets=4000)  # N > 1000: Monte Carlo
    # Exact by hand: a wins unless b gets >= 2 of 3 votes (ties need 3 votes: impossible
    # with 2 answers and k=3 except a=b=1 plus one None).
    total = math.comb(1300, 3)
    a_wins = sum(math.comb(700, x) * math.comb(500, y) * math.comb(100, 3 - x - y)
                 for x in range(4) for y in range(4) if x + y <= 3 and x > y)
    ties = math.comb(700, 1) * math.comb(500, 1) * 100
    assert value == pytest.approx((a_wins + ties / 2) / total, abs=0.03)
    with pytest.raises(ValueError):
        maj_at_k(answers, {"a": 1.0}, 3, method="count")


def test_maj_at_k_counts_beyond_256_and_enumerates_when_it_must():
    rng = random.Random(4)
    answers = random_answers(rng, 300, 3, none_rate=0.1)
    correct = {"a0": 1.0, "a2": 0.5}
    assert maj_at_k(answers, correct, 2) == pytest.approx(brute_maj(answers, correct, 2),
                                                          abs=1e-12)
    # N > 1000 and few subsets: enumeration.
    answers = ["a"] * 600 + ["b"] * 400 + [None]
    assert maj_at_k(answers, {"a": 1.0, "b": 0.5}, 1) == pytest.approx(800 / 1001, abs=1e-12)


def test_maj_at_k_rejects_bad_arguments():
    with pytest.raises(ValueError):
        maj_at_k([], {}, 1)
    with pytest.raises(ValueError):
        maj_at_k(["a"], {}, 2)
    with pytest.raises(ValueError):
        maj_at_k(["a"], {}, 1, method="magic")


def test_pass_from_scores_matches_enumeration():
    # summarize's pass@K for fractional scores: expected best score of K generations.
    from evals.metrics import _max_of_k
    rng = random.Random(11)
    for _ in range(100):
        n = rng.randint(1, 9)
        scores = [rng.choice([0.0, 1.0, 0.5, rng.random()]) for _ in range(n)]
        for k in range(1, n + 1):
            assert _max_of_k(scores, k) == pytest.approx(brute_pass(scores, k), abs=1e-12)
    binary = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    for k in range(1, 8):
        assert _max_of_k(binary, k) == pytest.approx(pass_at_k(7, 2, k), abs=1e-14)


# ------------------------------------------------------------ Student t

@pytest.mark.parametrize("df", [1, 2, 3, 7, 30, 999, 100_000])
def test_t_distribution_matches_scipy(df):
    for t in [0.0, 0.1, 0.7, 1.5, 2.0, 3.3, 8.0, 40.0, -1.2, -5.0]:
        assert t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-9, abs=1e-300)
    for p in [0.6, 0.9, 0.95, 0.975, 0.995, 0.9995, 0.025]:
        assert t_ppf(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)


# ------------------------------------------------------------ mean_ci

def test_mean_ci_clustered_matches_numpy_reference():
    rng = np.random.default_rng(0)
    data = [list(rng.binomial(1, p, size=rng.integers(1, 9)).astype(float))
            for p in rng.uniform(0, 1, size=40)]
    ci = mean_ci(data, 0.95)
    means = np.array([np.mean(v) for v in data])
    se = means.std(ddof=1) / np.sqrt(len(means))
    half = stats.t.ppf(0.975, len(means) - 1) * se
    assert ci.method == "cluster-t"
    assert ci.n == 40
    assert ci.mean == pytest.approx(means.mean(), abs=1e-14)
    assert ci.se == pytest.approx(se, rel=1e-12)
    assert ci.low == pytest.approx(max(0.0, means.mean() - half), rel=1e-9)
    assert ci.high == pytest.approx(min(1.0, means.mean() + half), rel=1e-9)


def test_mean_ci_equals_sandwich_with_small_sample_correction():
    # Equal cluster sizes: cluster-means SE^2 = n/(n-1) * clustered sandwich SE^2 (Miller 2024).
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 1, size=(25, 4))
    n, k = scores.shape
    resid = scores - scores.mean()
    sandwich = (resid.sum(axis=1) ** 2).sum() / (n * k) ** 2
    ci = mean_ci(scores.tolist())
    assert ci.se ** 2 == pytest.approx(sandwich * n / (n - 1), rel=1e-12)


def test_mean_ci_uses_wilson_for_single_binary_samples():
    values = [[1.0]] * 7 + [[0.0]] * 3
    ci = mean_ci(values, 0.95)
    z = stats.norm.ppf(0.975)
    n, p = 10, 0.7
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert ci.method == "wilson"
    assert (ci.low, ci.high) == pytest.approx((centre - half, centre + half), rel=1e-12)
    # All correct: not a zero-width interval, unlike the t interval.
    perfect = mean_ci([[1.0]] * 10)
    assert perfect.high == 1.0 and perfect.low == pytest.approx(0.722467, abs=1e-6)
    forced = mean_ci(values, method="cluster")
    assert forced.method == "cluster-t"
    with pytest.raises(ValueError):
        mean_ci([[0.5], [1.0]], method="wilson")


def test_mean_ci_edges():
    empty = mean_ci([])
    assert empty.n == 0 and math.isnan(empty.mean)
    one = mean_ci([[0.2, 0.4]])
    assert one.mean == pytest.approx(0.3) and one.method == "none" and math.isnan(one.low)
    skipped = mean_ci([[0.5, 0.5], [], [1.0, 0.0]])
    assert skipped.n == 2
    # Values outside [0, 1] are not clipped.
    wide = mean_ci([[-5.0], [5.0], [0.0]])
    assert wide.low < -1 and wide.high > 1
    with pytest.raises(ValueError):
        mean_ci([[1.0]], confidence=1.5)
    assert isinstance(one, CI)


# ------------------------------------------------------------ paired_difference

def test_paired_difference_matches_scipy_ttest_rel():
    rng = np.random.default_rng(2)
    ids = [f"p{i}" for i in range(50)]
    base = rng.uniform(0, 1, size=50)
    a = {i: float(np.clip(x + rng.normal(0.05, 0.1), 0, 1)) for i, x in zip(ids, base)}
    b = {i: float(x) for i, x in zip(ids, base)}
    b["only_b"] = 1.0
    a["only_a"] = 0.0
    cmp = paired_difference(a, b, 0.9)
    xs = np.array([a[i] for i in ids])
    ys = np.array([b[i] for i in ids])
    ref = stats.ttest_rel(xs, ys)
    ci = ref.confidence_interval(0.9)
    assert cmp.n == 50
    assert cmp.diff == pytest.approx(float(np.mean(xs - ys)), abs=1e-14)
    assert cmp.t == pytest.approx(ref.statistic, rel=1e-10)
    assert cmp.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert (cmp.low, cmp.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert cmp.mean_a == pytest.approx(xs.mean()) and cmp.mean_b == pytest.approx(ys.mean())


def test_paired_difference_edges():
    assert paired_difference({"a": 1.0}, {"b": 1.0}).n == 0
    same = paired_difference({"a": 0.5, "b": 1.0}, {"a": 0.5, "b": 1.0})
    assert same.diff == 0.0 and same.p_value == 1.0
    shifted = paired_difference({"a": 1.0, "b": 1.0}, {"a": 0.5, "b": 0.5})
    assert shifted.diff == 0.5 and shifted.p_value == 0.0
    single = paired_difference({"a": 1.0}, {"a": 0.0})
    assert single.n == 1 and math.isnan(single.p_value)


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
    assert by["pass@2"].n == 0 if "pass@2" in by else True
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
