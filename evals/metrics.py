"""Metrics over result records: pure functions, no I/O, no third-party imports.

Estimators (each exact, from all N generations of a problem, not from one draw):

* ``pass_at_k`` -- unbiased pass@k of Chen et al. (2021): the chance that a
  uniformly random k-subset of the N generations holds a correct one.
* ``maj_at_k`` -- expected score of a majority vote over a random k-subset;
  generations without an answer do not vote, ties share the credit equally
  (the expected value of a random tie-break).
* ``best_of_k`` -- expected score of the best-ranked generation (by a
  verifier's or reward model's ``rank``) of a random k-subset; equal ranks share.

Uncertainty (``mean_ci``, ``paired_difference``) follows Miller (2024),
"Adding Error Bars to Evals": the unit of sampling is the *problem*, so
generations of one problem are averaged first and the standard error is that
of the per-problem means (the cluster-means form of the clustered standard
error), with a Student-t interval.  A run with one 0/1 score per problem gets
a Wilson score interval instead, which stays inside [0, 1] and is not
degenerate at 0% or 100%.

``summarize`` streams records into per-(task, model, setting) rows; see its
docstring for the exact definitions.  ``Aggregator`` does the same in one pass
and gives the cost summary as well.

Only the standard library is imported (the CLI imports this module at start).
"""

from __future__ import annotations

import itertools
import math
import random
import sys
from array import array
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter, mul, truediv
from statistics import NormalDist
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "CI", "Comparison", "MetricRow", "CostRow", "GroupKey", "Aggregator",
    "pass_at_k", "maj_at_k", "best_of_k", "mean_ci", "paired_difference",
    "summarize", "cost_summary", "default_ks", "t_sf", "t_ppf",
]

GroupKey = tuple[str, str, str]  # (task, model, setting)


# --------------------------------------------------------------------- pass@k

def _check_nk(n: int, k: int) -> None:
    if not isinstance(n, int) or not isinstance(k, int):
        raise ValueError(f"n and k must be integers, got n={n!r}, k={k!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n={n}], got {k}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` generations of which ``c`` are correct.

    1 - C(n-c, k) / C(n, k), computed as the product prod_{i=n-c+1..n} (1 - k/i)
    of c factors in (0, 1), so that it never forms huge binomials and stays
    accurate for n in the thousands.  ``n - c < k`` gives 1.0 (every k-subset
    holds a correct one).  Invalid arguments raise ValueError.
    """
    _check_nk(n, k)
    if not isinstance(c, int) or not 0 <= c <= n:
        raise ValueError(f"c must be an integer in [0, n={n}], got {c!r}")
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


@lru_cache(maxsize=4096)
def _weights(n: int, k: int) -> tuple[float, ...]:
    """w[j] = C(j, k) / C(n, k) for j = 0..n: P(a random k-subset of n lies in a fixed j-set).

    Every order-statistic estimator below is a difference of these, so one
    table per (n, k) turns per-problem work into a few lookups.  Exact integer
    binomials, one rounding per entry.
    """
    total = math.comb(n, k)
    return tuple(math.comb(j, k) / total for j in range(n + 1))


@lru_cache(maxsize=4096)
def _top_probs(n: int, k: int) -> tuple[float, ...]:
    """p[j-1] = C(j-1, k-1) / C(n, k): P(the j-th smallest of n is a random k-subset's max)."""
    total = math.comb(n, k)
    return tuple(math.comb(j - 1, k - 1) / total for j in range(1, n + 1))


def _max_of_k(scores: Sequence[float], k: int) -> float:
    """Expected max score of a random k-subset (pass@k for scores in [0, 1]).

    The j-th smallest of n scores is the subset's max with probability
    C(j-1, k-1) / C(n, k); ties do not matter, tied scores are equal.  With
    0/1 scores this is pass@k.
    """
    return sum(map(mul, sorted(scores), _top_probs(len(scores), k)))


# ------------------------------------------------------------------ best-of-k

_FIRST = itemgetter(0)

def _rank_groups(ranks: Sequence[float], scores: Sequence[float]) -> list[tuple[int, float]]:
    """(size, score sum) of each set of equal ranks, lowest rank first."""
    groups: list[tuple[int, float]] = []
    last = None
    size = 0
    total = 0.0
    for r, s in sorted(zip(ranks, scores), key=_FIRST):
        if size and r != last:
            groups.append((size, total))
            size, total = 0, 0.0
        last = r
        size += 1
        total += s
    if size:
        groups.append((size, total))
    return groups


def _best_from_groups(groups: list[tuple[int, float]], w: Sequence[float]) -> float:
    # The subset's top rank falls in group g iff the subset lies within the
    # groups up to g and meets g: probability w[below+size] - w[below].  Given
    # that, the members of g it holds are a uniform draw from g, so the tied
    # winners' mean score is, in expectation, g's mean score.
    total = 0.0
    below = 0
    for size, ssum in groups:
        top = below + size
        total += (w[top] - w[below]) * ssum / size
        below = top
    return total


def best_of_k(ranks: Sequence[float], scores: Sequence[float], k: int) -> float:
    """Expected score of the top-ranked generation of a random k-subset.

    Higher rank is better; generations tied at the top share the credit
    equally.  Closed form over the rank-sorted generations (no enumeration).
    """
    n = len(ranks)
    if len(scores) != n:
        raise ValueError(f"ranks and scores differ in length ({n} != {len(scores)})")
    _check_nk(n, k)
    if any(r != r for r in ranks):
        raise ValueError("ranks must not be NaN")
    return _best_from_groups(_rank_groups(ranks, scores), _weights(n, k))


# -------------------------------------------------------------------- maj@k

def _tally(answers: Sequence[str | None], correct: Mapping[str, float]
           ) -> tuple[list[int], list[float], int]:
    counts = Counter(a for a in answers if a is not None)
    n_none = len(answers) - sum(counts.values())
    keys = list(counts)
    return [counts[a] for a in keys], [float(correct.get(a, 0.0)) for a in keys], n_none


def _vote(votes: Iterable[int], corr: Sequence[float], m: int) -> float:
    """Score of one subset: ``votes`` are answer indices (-1 = no answer)."""
    tally = [0] * m
    for v in votes:
        if v >= 0:
            tally[v] += 1
    top = max(tally, default=0)
    if top == 0:
        return 0.0
    winners = [corr[i] for i in range(m) if tally[i] == top]
    return sum(winners) / len(winners)


def _maj_enumerate(index: Sequence[int], corr: Sequence[float], k: int) -> float:
    m = len(corr)
    total = math.fsum(_vote(sub, corr, m) for sub in itertools.combinations(index, k))
    return total / math.comb(len(index), k)


def _maj_monte_carlo(index: Sequence[int], corr: Sequence[float], k: int,
                     draws: int, seed: int) -> float:
    rng = random.Random(seed)
    m = len(corr)
    return math.fsum(_vote(rng.sample(index, k), corr, m) for _ in range(draws)) / draws


# Above this many bytes of polynomial state the counting method gives way to
# enumeration or Monte Carlo.  N = 64 needs at most ~40 kB per level.
_COUNT_BUDGET = 4_000_000
_COUNT_MAX_N = 1000  # coefficients must stay below the float range (2**1000)


def _count_cost(counts: Sequence[int], n_none: int, kmax: int) -> float:
    """Rough bytes of integer state of ``_maj_exact``'s general levels; 0 when surely small."""
    n = n_none + sum(counts)
    if n <= 256:
        return 0.0
    if n > _COUNT_MAX_N:
        return math.inf
    desc = sorted(counts, reverse=True)
    third = desc[2] if len(desc) > 2 else 0  # levels above it are cheap (_pair_levels)
    slot = (n + 1) * ((n + 7) // 8)
    return sum((sum(1 for c in desc if c >= v) + 1) * slot
               for v in range(1, min(third, kmax) + 1))


@lru_cache(maxsize=64)
def _packed_binomials(n: int, bits: int) -> tuple[int, ...]:
    """(1 + z)^e for e = 0..n, one coefficient per ``bits`` bits of an integer."""
    one_plus_z = (1 << bits) + 1
    out = [1]
    for _ in range(n):
        out.append(out[-1] * one_plus_z)
    return tuple(out)


def _third_count(desc: Sequence[int], groups: Mapping[int, list]) -> int:
    """Third-largest vote count over answers (with multiplicity); 0 if fewer than three."""
    seen = 0
    for c in desc:
        seen += groups[c][0]
        if seen >= 3:
            return c
    return 0


def _pair_levels(a: int, b: int, v_lo: int, v_hi: int, bits: int) -> int:
    """Packed 2 * sum_{v=v_lo..v_hi} C(a, v) z^v (sum_{x<v} C(b, x) z^x + C(b, v) z^v / 2).

    An answer with ``a`` generations holding v votes against the only other
    answer that can reach v (``b`` generations): that one stays below v, or
    ties and halves the credit.  Doubled to stay in integers.
    """
    full = _packed_binomials(b, bits)[b]
    total = 0
    for v in range(v_lo, v_hi + 1):
        below = full & ((1 << (v * bits)) - 1)
        total += (math.comb(a, v) * ((below << 1) + (math.comb(b, v) << (v * bits)))) << (v * bits)
    return total


def _maj_exact(counts: Sequence[int], corrs: Sequence[float], n_none: int,
               ks: Sequence[int]) -> list[float]:
    """Exact maj@k for every k in ``ks``, by counting (never lists subsets).

    A k-subset draws x_i of the c_i generations giving answer i (and some of
    the ``n_none`` that gave none), with multiplicity prod C(c_i, x_i).  Sum,
    over each answer j and each vote count v, the weight of the subsets where
    j has v votes and every other answer has at most v, times 1/(1 + t) where
    t answers tie with j at v.  In generating-function form, with z counting
    generations and u marking ties, answer i contributes the factor

        f_i(z, u) = sum_{x<v} C(c_i, x) z^x + u C(c_i, v) z^v   (c_i >= v)
        (1 + z)^{c_i}                                             (c_i < v: it cannot tie)

    and 1/(1+t) = integral_0^1 u^t du.  Answers with equal counts are
    interchangeable, so only their summed score matters and the product is
    taken per distinct count with integer powers.  Polynomials are packed
    into Python integers (Kronecker substitution: one coefficient per
    ``width`` bytes, every coefficient read being < 2**n), so products run in
    C on exact integers; one float rounding per coefficient read.  Two
    shortcuts: vote counts above the runner-up's have a closed form (only the
    leader reaches them, untied), and above the third answer's only the top
    two compete (``_pair_levels``).  Cost: a few big-integer operations per
    vote level up to the third answer's count, none for answers scoring 0,
    all ks at once: ~0.1 ms for a typical N = 64 problem.
    """
    n = n_none + sum(counts)
    out: dict[int, float] = {}
    groups: dict[int, list] = {}  # count -> [answers with that count, their summed score]
    for c, s in zip(counts, corrs):
        g = groups.get(c)
        if g is None:
            groups[c] = [1, s]
        else:
            g[0] += 1
            g[1] += s
    if not groups or not any(g[1] for g in groups.values()):
        return [0.0] * len(ks)
    desc = sorted(groups, reverse=True)
    lead = desc[0]
    runner_up = lead if groups[lead][0] > 1 else (desc[1] if len(desc) > 1 else 0)
    middle: list[int] = []
    for k in set(ks):
        if k == 1:  # one random generation: its answer's score
            out[k] = math.fsum(c * g[1] for c, g in groups.items()) / n
        elif k == n:  # the whole set: the leaders share the credit
            out[k] = groups[lead][1] / groups[lead][0]
        else:
            middle.append(k)
    if middle:
        num = dict.fromkeys(middle, 0.0)
        inv_total = {k: 1.0 / math.comb(n, k) for k in middle}
        width = (n + 7) // 8  # bytes per coefficient: every one we read is < 2**n
        bits = 8 * width
        binom = _packed_binomials(n, bits)  # binom[e] = (1 + z)^e, packed
        # The leader alone above the runner-up: v > runner_up votes, the others
        # free: (1+z)^rest * sum_{v > runner_up} C(lead, v) z^v.
        s_lead = groups[lead][1] if runner_up < lead else 0.0
        if s_lead:
            low = binom[lead] & ((1 << ((runner_up + 1) * bits)) - 1)
            tail = binom[n] - low * binom[n - lead]
            for k in middle:
                coef = (tail >> (k * bits)) & ((1 << bits) - 1)
                num[k] += s_lead * coef * inv_total[k]
        # Nothing to add once no answer with a nonzero score can reach v votes.
        top_scoring = max(c for c, g in groups.items() if g[1])
        last = min(runner_up, max(middle), top_scoring)
        # Above the third-largest count only the top two answers can reach v:
        # a sum over v of a few integer operations each (_pair_levels).
        third = _third_count(desc, groups)
        if last > third:
            mask = (1 << bits) - 1
            if groups[lead][0] >= 2:  # two leaders, interchangeable
                pairs = [(lead, lead, groups[lead][1])]
            else:
                pairs = [(lead, runner_up, groups[lead][1]),
                         (runner_up, lead, groups[runner_up][1])]
            for own, other, s in pairs:
                if s:
                    twice = (_pair_levels(own, other, third + 1, last, bits)
                             * binom[n - own - other])
                    for k in middle:
                        num[k] += 0.5 * s * ((twice >> (k * bits)) & mask) * inv_total[k]
        # The remaining levels, in general form.  ``big`` (the counts able to
        # reach v) only shrinks as v grows.
        big = list(desc)
        free = n_none
        ties = sum(g[0] for g in groups.values())
        tall_k = [(k, inv_total[k]) for k in middle]
        for v in range(1, min(last, third) + 1):
            while big[-1] < v:  # this count can no longer tie: its answers join the free ones
                c = big.pop()
                free += c * groups[c][0]
                ties -= groups[c][0]
            # Slot t*stride + s holds the coefficient of y^t z^s, where y = u z^v
            # stands for one tie (its v generations implied) and z^s counts the
            # rest: at most v-1 from each other answer plus the free ones.  The
            # short stride keeps the integers, and the divisions, small.
            stride = max((v - 1) * (ties - 1) + free + 1, v + 1)
            step = stride - v  # slot distance between (t, r - t*v) and (t+1, r - (t+1)*v)
            below = (1 << (v * bits)) - 1
            tie_shift = stride * bits
            scoring = [c for c in big if groups[c][1]]
            factors = {}
            poly = 1
            for c in big:
                # sum_{x<v} C(c, x) z^x + C(c, v) y
                f = (binom[c] & below) | (math.comb(c, v) << tie_shift)
                factors[c] = f
                r = groups[c][0]
                if len(scoring) == 1 and c == scoring[0]:
                    r -= 1  # leave out the winner's own factor
                if r:
                    poly *= f ** r if r > 1 else f
            poly *= binom[free]  # the free generations: (1 + z)^free
            for c in scoring:
                s = groups[c][1]
                # All answers but one with count c, and the free generations
                # (exact division when several counts score).
                others = poly if len(scoring) == 1 else poly // factors[c]
                raw = others.to_bytes(ties * stride * width, sys.byteorder)
                coefs = memoryview(raw).cast("Q") if width == 8 else None
                weight = s * math.comb(c, v)
                for k, inv in tall_k:
                    r = k - v  # generations besides j's v votes
                    if r < 0:
                        continue
                    # t ties take t*v of them; the other r - t*v must fit in a row.
                    t_lo = max(0, (r - stride) // v + 1)
                    t_hi = min(ties - 1, r // v)
                    if t_lo > t_hi:
                        continue
                    if coefs is not None:
                        row = coefs[r + t_lo * step:r + t_hi * step + 1:step].tolist()
                    else:
                        row = [int.from_bytes(raw[at:at + width], sys.byteorder)
                               for at in range((r + t_lo * step) * width,
                                               (r + t_hi * step) * width + 1, step * width)]
                    # t other answers tied with j: j's credit is 1/(t+1).
                    num[k] += weight * inv * sum(map(truediv, row, range(t_lo + 1, t_hi + 2)))
        out.update(num)
    return [out[k] for k in ks]


_MAJ_METHODS = ("auto", "count", "enumerate", "mc")


def maj_at_k(answers: Sequence[str | None], correct: Mapping[str, float], k: int, *,
             seed: int = 0, max_subsets: int = 10_000, method: str = "auto") -> float:
    """Expected score of a majority vote over a uniformly random k-subset.

    ``answers`` are the N generations' normalised answers (None: no vote; a
    subset without votes scores 0).  ``correct[answer]`` is that answer's
    score (answers missing from it score 0).  Tied answers share the credit
    equally, i.e. the expected value of a random tie-break.

    ``method="auto"`` counts exactly (``_maj_exact``: always for N <= 256, up
    to N = 1000 while its size estimate allows), else enumerates all C(N, k)
    subsets when there are at most ``max_subsets``, else averages
    ``max_subsets`` random subsets drawn with ``seed`` (Monte Carlo, standard
    error <= 0.5/sqrt(max_subsets)).  ``"count"``, ``"enumerate"`` and
    ``"mc"`` force one path (for tests and checks).
    """
    n = len(answers)
    _check_nk(n, k)
    if method not in _MAJ_METHODS:
        raise ValueError(f"method must be one of {_MAJ_METHODS}, got {method!r}")
    if max_subsets < 1:
        raise ValueError(f"max_subsets must be >= 1, got {max_subsets}")
    counts, corrs, n_none = _tally(answers, correct)
    if method == "auto":
        if _count_cost(counts, n_none, k) <= _COUNT_BUDGET:
            method = "count"
        elif math.comb(n, k) <= max_subsets:
            method = "enumerate"
        else:
            method = "mc"
    if method == "count":
        if n > _COUNT_MAX_N:
            raise ValueError(f"exact counting supports N <= {_COUNT_MAX_N}, got {n}")
        return _maj_exact(counts, corrs, n_none, [k])[0]
    ids: dict[str, int] = {}
    index = [-1 if a is None else ids.setdefault(a, len(ids)) for a in answers]
    corr = [0.0] * len(ids)
    for a, i in ids.items():
        corr[i] = float(correct.get(a, 0.0))
    if method == "enumerate":
        return _maj_enumerate(index, corr, k)
    return _maj_monte_carlo(index, corr, k, max_subsets, seed)


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
    (one 0/1 value per problem), or ``none`` (fewer than two problems: low,
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


def _wilson(successes: float, n: int, confidence: float) -> tuple[float, float]:
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _interval(means: Sequence[float], confidence: float, *, binary_single: bool,
              method: str = "auto", clip: bool | None = None) -> CI:
    """CI of the mean of per-problem values (see ``mean_ci``)."""
    _check_confidence(confidence)
    n = len(means)
    nan = math.nan
    if n == 0:
        return CI(nan, nan, nan, nan, 0, "none")
    mean = math.fsum(means) / n
    if method == "wilson" or (method == "auto" and binary_single):
        if not binary_single:
            raise ValueError("a Wilson interval needs one 0/1 value per problem")
        low, high = _wilson(math.fsum(means), n, confidence)
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

    ``method="auto"`` switches to a Wilson score interval when every problem
    has exactly one value and all values are 0 or 1 (single-sample binary
    data): there the t/Wald interval collapses to a point at 0% or 100% and
    undercovers at small n, Wilson does neither.  ``"cluster"`` and
    ``"wilson"`` force one.  ``clip=None`` clips the bounds to [0, 1] when all
    values lie in [0, 1].  Empty problems are skipped; fewer than two problems
    give NaN bounds (method ``none``).
    """
    means: list[float] = []
    binary_single = True
    for vals in values_by_problem:
        if not len(vals):
            continue
        if len(vals) == 1:
            v = float(vals[0])
            binary_single = binary_single and v in (0.0, 1.0)
            means.append(v)
        else:
            binary_single = False
            means.append(math.fsum(vals) / len(vals))
    return _interval(means, confidence, binary_single=binary_single and bool(means),
                     method=method, clip=clip)


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
    effort: str | None = None
    thinking_budget: int | None = None
    max_tokens: int | None = None


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


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


_ERROR = 0  # slot of a generation whose last record is an error (falsy, unlike a tuple)
_INTERN_LIMIT = 1_000_000  # distinct (score, answer) tuples shared; beyond, stored as they come


class _Group:
    __slots__ = ("key", "settings", "problems", "records", "error_records", "prompt",
                 "completion", "reasoning", "cost", "cost_known", "latencies", "length",
                 "finished", "ranked")

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
        task, model, setting = g.key
        acc: list[float] = []
        single = True
        samples = 0
        errors = 0
        scored = 0
        problems: list[list] = []
        for items, seen, err in self._problems(g):
            samples = max(samples, seen)
            errors += err
            if not items:
                continue
            scored += len(items)
            ssum = math.fsum(x[0] for x in items)
            acc.append(ssum / len(items))
            if len(items) != 1:
                single = False
            problems.append(items)
        per_gen = g.cost / scored if g.cost_known and scored else None
        st = g.settings

        def row(metric: str, values: Sequence[float], k: int | None, binary_single: bool
                ) -> MetricRow:
            ci = _interval(values, confidence, binary_single=binary_single)
            defined = ci.method != "none"
            return MetricRow(task, model, setting, metric, ci.mean,
                             ci.low if defined else None, ci.high if defined else None,
                             ci.n, samples, errors, st.get("effort"), st.get("thinking_budget"),
                             st.get("max_tokens"),
                             None if per_gen is None else per_gen * (k or 1), k,
                             ci.se if defined else None, ci.method)

        rows = [row("accuracy", acc, None,
                    single and all(a in (0.0, 1.0) for a in acc))]
        if samples <= 1 or not problems:
            return rows
        wanted = sorted(set(ks)) if ks is not None else default_ks(samples)
        if any(not isinstance(k, int) or k < 1 for k in wanted):
            raise ValueError(f"ks must be positive integers, got {ks!r}")
        wanted = [k for k in wanted if k <= samples]
        passes: dict[int, list[float]] = {k: [] for k in wanted}
        majs: dict[int, list[float]] = {k: [] for k in wanted}
        bests: dict[int, list[float]] = {k: [] for k in wanted}
        maj_cache: dict[tuple, list[float]] = {}
        for items in problems:
            n = len(items)
            kk = [k for k in wanted if k <= n]
            if not kk:
                continue
            scores = [x[0] for x in items]
            # pass@K: expected best score of K generations (= unbiased pass@K for 0/1).
            ones = scores.count(1.0)
            if ones + scores.count(0.0) == n:
                for k in kk:
                    passes[k].append(1.0 - _weights(n, k)[n - ones])
            else:
                for k in kk:
                    passes[k].append(_max_of_k(scores, k))
            # maj@K: an answer's score is the mean score of its generations.
            pairs = Counter((x[1], x[0]) for x in items)
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
            ck = (n_none, profile, tuple(kk))
            vals = maj_cache.get(ck)
            if vals is None:
                counts = [c for c, _ in profile]
                corrs = [s for _, s in profile]
                if _count_cost(counts, n_none, kk[-1]) <= _COUNT_BUDGET:
                    vals = _maj_exact(counts, corrs, n_none, kk)
                else:  # too big to count (N in the hundreds+): maj_at_k's fallback
                    answers = [x[1] for x in items]
                    correct = {a: s / c for a, (c, s) in tally.items()}
                    vals = [maj_at_k(answers, correct, k) for k in kk]
                if len(maj_cache) < 100_000:
                    maj_cache[ck] = vals
            for k, v in zip(kk, vals):
                majs[k].append(v)
            # best@K: generations without a rank rank below every ranked one.
            if g.ranked:
                ninf = -math.inf
                ranks = [ninf if x[2] is None else x[2] for x in items]
                if len(set(ranks)) == n:  # no ties: the max-of-k weights apply as they are
                    ordered = [s for _, s in sorted(zip(ranks, scores), key=_FIRST)]
                    for k in kk:
                        bests[k].append(sum(map(mul, ordered, _top_probs(n, k))))
                else:
                    groups = _rank_groups(ranks, scores)
                    for k in kk:
                        bests[k].append(_best_from_groups(groups, _weights(n, k)))
        for name, table in (("pass", passes), ("maj", majs), ("best", bests)):
            if name == "best" and not g.ranked:
                continue
            for k in wanted:
                values = table[k]
                if values:
                    rows.append(row(f"{name}@{k}", values, k,
                                    all(v in (0.0, 1.0) for v in values)))
        return rows

    def cost_rows(self) -> dict[GroupKey, CostRow]:
        out: dict[GroupKey, CostRow] = {}
        for key in sorted(self._groups):
            g = self._groups[key]
            problems = len(g.problems)
            scored = errors = 0
            correct = 0.0
            for items, _, err in self._problems(g):
                scored += len(items)
                errors += err
                correct += math.fsum(x[0] for x in items)
            lat = sorted(g.latencies)
            known = g.cost_known
            per = 1.0 / problems if problems else math.nan
            st = g.settings
            out[key] = CostRow(
                *key, problems=problems, generations=scored, errors=errors, records=g.records,
                prompt_tokens=g.prompt * per, completion_tokens=g.completion * per,
                reasoning_tokens=g.reasoning * per,
                cost_per_problem=g.cost * per if known and problems else None,
                cost_per_generation=g.cost / scored if known and scored else None,
                cost_per_correct=g.cost / correct if known and correct > 0 else None,
                latency_mean=math.fsum(lat) / len(lat) if lat else None,
                latency_p90=_quantile(lat, 0.9) if lat else None,
                length_share=g.length / g.finished if g.finished else None,
                effort=st.get("effort"), thinking_budget=st.get("thinking_budget"),
                max_tokens=st.get("max_tokens"))
        return out


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
