"""Per-problem estimators over all N generations of one problem (pure, stdlib only).

Each is exact, from all N generations, not from one draw:

* ``pass_at_k`` -- unbiased pass@k of Chen et al. (2021): the chance that a
  uniformly random k-subset of the N generations holds a correct one.
* ``maj_at_k`` -- expected score of a majority vote over a random k-subset;
  generations without an answer do not vote, ties share the credit equally
  (the expected value of a random tie-break).
* ``best_of_k`` -- expected score of the best-ranked generation (by a
  verifier's or reward model's ``rank``) of a random k-subset; equal ranks share.

The private helpers (weight tables, rank groups, the counting form of maj@k)
are what ``evals.metrics.Aggregator`` calls in its hot loop, so that a group
of problems shares tables and caches instead of going through the checked
public functions one call at a time.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
from collections import Counter
from functools import lru_cache
from operator import itemgetter, mul, truediv
from typing import Iterable, Mapping, Sequence

__all__ = ["pass_at_k", "maj_at_k", "best_of_k"]

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
def order_weights(n: int, k: int) -> tuple[float, ...]:
    """w[j] = C(j, k) / C(n, k) for j = 0..n: P(a random k-subset of n lies in a fixed j-set).

    Every order-statistic estimator below is a difference of these, so one
    table per (n, k) turns per-problem work into a few lookups.  Exact integer
    binomials, one rounding per entry.
    """
    total = math.comb(n, k)
    return tuple(math.comb(j, k) / total for j in range(n + 1))


@lru_cache(maxsize=4096)
def top_probs(n: int, k: int) -> tuple[float, ...]:
    """p[j-1] = C(j-1, k-1) / C(n, k): P(the j-th smallest of n is a random k-subset's max)."""
    total = math.comb(n, k)
    return tuple(math.comb(j - 1, k - 1) / total for j in range(1, n + 1))


def max_of_k(scores: Sequence[float], k: int) -> float:
    """Expected max score of a random k-subset (pass@k for scores in [0, 1]).

    The j-th smallest of n scores is the subset's max with probability
    C(j-1, k-1) / C(n, k); ties do not matter, tied scores are equal.  With
    0/1 scores this is pass@k.
    """
    return sum(map(mul, sorted(scores), top_probs(len(scores), k)))


# ------------------------------------------------------------------ best-of-k

FIRST = itemgetter(0)

def rank_groups(ranks: Sequence[float], scores: Sequence[float]) -> list[tuple[int, float]]:
    """(size, score sum) of each set of equal ranks, lowest rank first."""
    groups: list[tuple[int, float]] = []
    last = None
    size = 0
    total = 0.0
    for r, s in sorted(zip(ranks, scores), key=FIRST):
        if size and r != last:
            groups.append((size, total))
            size, total = 0, 0.0
        last = r
        size += 1
        total += s
    if size:
        groups.append((size, total))
    return groups


def best_from_groups(groups: list[tuple[int, float]], w: Sequence[float]) -> float:
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
    return best_from_groups(rank_groups(ranks, scores), order_weights(n, k))


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
COUNT_BUDGET = 4_000_000
_COUNT_MAX_N = 1000  # coefficients must stay below the float range (2**1000)


def count_cost(counts: Sequence[int], n_none: int, kmax: int) -> float:
    """Rough bytes of integer state of ``maj_exact``'s general levels; 0 when surely small."""
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


def maj_exact(counts: Sequence[int], corrs: Sequence[float], n_none: int,
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

    ``method="auto"`` counts exactly (``maj_exact``: always for N <= 256, up
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
        if count_cost(counts, n_none, k) <= COUNT_BUDGET:
            method = "count"
        elif math.comb(n, k) <= max_subsets:
            method = "enumerate"
        else:
            method = "mc"
    if method == "count":
        if n > _COUNT_MAX_N:
            raise ValueError(f"exact counting supports N <= {_COUNT_MAX_N}, got {n}")
        return maj_exact(counts, corrs, n_none, [k])[0]
    ids: dict[str, int] = {}
    index = [-1 if a is None else ids.setdefault(a, len(ids)) for a in answers]
    corr = [0.0] * len(ids)
    for a, i in ids.items():
        corr[i] = float(correct.get(a, 0.0))
    if method == "enumerate":
        return _maj_enumerate(index, corr, k)
    return _maj_monte_carlo(index, corr, k, max_subsets, seed)
