"""Uncertainty of eval scores: Student t, clustered intervals, paired tests (stdlib only).

Follows Miller (2024), "Adding Error Bars to Evals": the unit of sampling is
the *problem*, so generations of one problem are averaged first and the
standard error is that of the per-problem means (the cluster-means form of
the clustered standard error), with a Student-t interval.  When every
per-problem mean is 0 or 1 (one 0/1 score per problem, or N generations that
agree) the data are one Bernoulli outcome per problem: a Wilson score
interval on the number of problems is used instead, which stays inside
[0, 1] and is not degenerate at 0% or 100%.

The t distribution is computed here (incomplete beta by continued fraction)
so that the CLI never imports scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Iterable, Mapping, Sequence

__all__ = ["CI", "Comparison", "mean_ci", "paired_difference", "t_sf", "t_ppf"]

# ------------------------------------------------------- Student t (pure Python)

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df}")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    # I_x(df/2, 1/2) with x = df/(df+t^2) is P(|T| > |t|); writing 1-x as
    # t^2/(df+t^2) keeps small |t| accurate.
    tail = 0.5 * _betainc_pair(df / 2.0, 0.5, df / (df + t * t), t * t / (df + t * t))
    return tail if t > 0 else 1.0 - tail


def _betainc_pair(a: float, b: float, x: float, y: float) -> float:
    """I_x(a, b) given x and y = 1 - x, each computed without cancellation."""
    if y <= 0.0:
        return 1.0
    if x <= 0.0:
        return 0.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log(y))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


@lru_cache(maxsize=1024)
def t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t: the t with P(T <= t) = p (bisection on ``t_sf``)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    if p == 0.5:
        return 0.0
    target = 1.0 - p
    lo, hi = 0.0, max(1.0, NormalDist().inv_cdf(p))
    while t_sf(hi, df) > target:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if t_sf(mid, df) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ------------------------------------------------------------ intervals

@dataclass(frozen=True, slots=True)
class CI:
    """A mean with its interval.  ``n`` counts problems (clusters), not generations.

    ``method`` is ``cluster-t`` (Student t on per-problem means), ``wilson``
    (every per-problem mean is 0 or 1), or ``none`` (fewer than two problems: low,
    high and se are NaN).
    """

    mean: float
    low: float
    high: float
    se: float
    n: int
    method: str


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion of ``n`` Bernoulli outcomes."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def normal_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Normal-approximation (CLT) interval for a mean (sample sd), clipped to [0, 1];
    (0, 1) for fewer than two values."""
    n = len(values)
    if n < 2:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = z * math.sqrt(var / n)
    return (max(0.0, mean - half), min(1.0, mean + half))


def _binary(means: Sequence[float]) -> bool:
    """Every per-problem mean is exactly 0 or 1: one Bernoulli outcome per problem."""
    return all(x == 0.0 or x == 1.0 for x in means)


def mean_interval(means: Sequence[float], confidence: float, *, method: str = "auto",
              clip: bool | None = None) -> CI:
    """CI of the mean of per-problem values (see ``mean_ci``)."""
    _check_confidence(confidence)
    n = len(means)
    nan = math.nan
    if n == 0:
        return CI(nan, nan, nan, nan, 0, "none")
    mean = math.fsum(means) / n
    if method == "wilson" or (method == "auto" and _binary(means)):
        if method == "wilson" and not _binary(means):
            raise ValueError("a Wilson interval needs every per-problem mean to be 0 or 1")
        low, high = wilson_interval(math.fsum(means), n, confidence)
        return CI(mean, low, high, math.sqrt(mean * (1.0 - mean) / n), n, "wilson")
    if method not in ("auto", "cluster"):
        raise ValueError(f"method must be auto, cluster or wilson, got {method!r}")
    if n < 2:
        return CI(mean, nan, nan, nan, n, "none")
    var = math.fsum((x - mean) ** 2 for x in means) / (n - 1)
    se = math.sqrt(var / n)
    half = t_ppf(0.5 + confidence / 2.0, n - 1) * se
    low, high = mean - half, mean + half
    if clip is None:
        clip = all(0.0 <= x <= 1.0 for x in means)
    if clip:
        low, high = max(0.0, low), min(1.0, high)
    return CI(mean, low, high, se, n, "cluster-t")


def mean_ci(values_by_problem: Iterable[Sequence[float]], confidence: float = 0.95, *,
            method: str = "auto", clip: bool | None = None) -> CI:
    """Mean score with a clustered confidence interval (problems are the clusters).

    Method (Miller 2024, "Adding Error Bars to Evals", cluster-means form):
    average each problem's values first, then use the mean of those problem
    means, SE = sd(problem means, ddof=1) / sqrt(n_problems), and a Student
    t_{n-1} interval.  With equal cluster sizes this is the clustered
    (sandwich) SE times sqrt(n/(n-1)), the usual small-sample correction; the
    t quantile is z's small-n counterpart.  Each problem weighs the same, also
    when some lost generations to errors.

    ``method="auto"`` switches to a Wilson score interval on the number of
    problems when every per-problem mean is 0 or 1: one 0/1 sample per
    problem, or N samples that agree on every problem (a gold run, an easy
    task).  There the t interval is a Wald interval on Bernoulli outcomes: it
    collapses to a point at 0% or 100% and undercovers at small n; Wilson
    does neither, and matches the pass@1 row of the same data.  ``"cluster"``
    and ``"wilson"`` force one.  ``clip=None`` clips the bounds to [0, 1]
    when all values lie in [0, 1].  Empty problems are skipped; fewer than two
    problems give NaN bounds for the t interval (method ``none``).
    """
    means = [math.fsum(vals) / len(vals) if len(vals) != 1 else float(vals[0])
             for vals in values_by_problem if len(vals)]
    return mean_interval(means, confidence, method=method, clip=clip)


@dataclass(frozen=True, slots=True)
class Comparison:
    """A - B on the problems both have: ``diff`` = mean(a_i - b_i), its t interval and p-value."""

    diff: float
    low: float
    high: float
    se: float
    t: float
    p_value: float
    n: int
    mean_a: float
    mean_b: float


def paired_difference(a: Mapping[str, float], b: Mapping[str, float],
                      confidence: float = 0.95) -> Comparison:
    """Paired comparison of two runs/settings from their per-problem mean scores.

    Only problem ids present in both count.  Paired t-test (the same as
    ``scipy.stats.ttest_rel``, two-sided): d_i = a_i - b_i, se =
    sd(d, ddof=1)/sqrt(n), t = mean(d)/se, df = n - 1.  Pairing removes the
    between-problem variance that an unpaired comparison would carry (Miller
    2024, section 4).  Identical differences (se = 0) give p = 1 when they are
    all 0 and p = 0 otherwise; fewer than two shared problems give NaN.
    """
    _check_confidence(confidence)
    shared = [key for key in a if key in b]
    n = len(shared)
    nan = math.nan
    if n == 0:
        return Comparison(nan, nan, nan, nan, nan, nan, 0, nan, nan)
    xs = [float(a[key]) for key in shared]
    ys = [float(b[key]) for key in shared]
    d = [x - y for x, y in zip(xs, ys)]
    diff = math.fsum(d) / n
    mean_a, mean_b = math.fsum(xs) / n, math.fsum(ys) / n
    if n < 2:
        return Comparison(diff, nan, nan, nan, nan, nan, n, mean_a, mean_b)
    se = math.sqrt(math.fsum((x - diff) ** 2 for x in d) / (n - 1) / n)
    if se == 0.0:
        if diff == 0.0:
            return Comparison(diff, diff, diff, 0.0, nan, 1.0, n, mean_a, mean_b)
        return Comparison(diff, diff, diff, 0.0, math.copysign(math.inf, diff), 0.0, n,
                          mean_a, mean_b)
    t = diff / se
    p = min(1.0, 2.0 * t_sf(abs(t), n - 1))
    half = t_ppf(0.5 + confidence / 2.0, n - 1) * se
    return Comparison(diff, diff - half, diff + half, se, t, p, n, mean_a, mean_b)
