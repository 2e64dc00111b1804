"""evals.stats (Student t, clustered and Wilson intervals, paired tests) against numpy/scipy."""

import math

import numpy as np
import pytest
from scipy import stats

import evals.metrics
import evals.stats
from evals.stats import CI, mean_ci, paired_difference, t_ppf, t_sf


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


# ------------------------------------------------------------ unanimous problems

def wilson_reference(successes, n, confidence=0.95):
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def test_mean_ci_uses_wilson_on_problems_when_every_problem_is_unanimous():
    # A gold run, N = 2: the t interval on per-problem means would be the point [1, 1].
    gold = mean_ci([[1.0, 1.0]] * 12)
    assert gold.method == "wilson" and gold.n == 12 and gold.mean == 1.0
    assert gold.high == 1.0 and gold.low == pytest.approx(0.7575, abs=5e-4)
    assert (gold.low, gold.high) == pytest.approx(wilson_reference(12, 12), rel=1e-12)
    # The same as one sample per problem: N agreeing samples carry no more information
    # about the problem-level rate.
    assert (gold.low, gold.high) == (mean_ci([[1.0]] * 12).low, mean_ci([[1.0]] * 12).high)
    # Unanimous problems of both kinds, with unequal N: Wilson on 7 of 10 problems.
    mixed = mean_ci([[1.0] * 3] * 7 + [[0.0, 0.0]] * 3)
    assert mixed.method == "wilson"
    assert (mixed.low, mixed.high) == pytest.approx(wilson_reference(7, 10), rel=1e-12)
    all_wrong = mean_ci([[0.0] * 4] * 5)
    assert all_wrong.low == 0.0 and all_wrong.high == pytest.approx(wilson_reference(0, 5)[1])
    # One problem that disagrees: back to the clustered t interval.
    assert mean_ci([[1.0, 1.0]] * 11 + [[1.0, 0.0]]).method == "cluster-t"
    # Forcing still works both ways; Wilson refuses non-binary problem means.
    assert mean_ci([[1.0, 1.0]] * 12, method="cluster").method == "cluster-t"
    assert mean_ci([[1.0, 1.0], [0.0, 0.0]], method="wilson").method == "wilson"
    with pytest.raises(ValueError):
        mean_ci([[1.0, 0.0], [1.0, 1.0]], method="wilson")


def test_metrics_reexports_the_same_objects():
    for name in ("CI", "Comparison", "mean_ci", "paired_difference", "t_sf", "t_ppf"):
        assert getattr(evals.metrics, name) is getattr(evals.stats, name)

