"""evals.estimators (pass@k, maj@k, best@k) against closed forms and brute-force enumeration.

The brute-force references here are also used by the summarize tests (tests/test_metrics.py).
"""

import itertools
import math
import random
from fractions import Fraction

import pytest

import evals.estimators
import evals.metrics
from evals.estimators import max_of_k, best_of_k, maj_at_k, pass_at_k


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
    rng = random.Random(11)
    for _ in range(100):
        n = rng.randint(1, 9)
        scores = [rng.choice([0.0, 1.0, 0.5, rng.random()]) for _ in range(n)]
        for k in range(1, n + 1):
            assert max_of_k(scores, k) == pytest.approx(brute_pass(scores, k), abs=1e-12)
    binary = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    for k in range(1, 8):
        assert max_of_k(binary, k) == pytest.approx(pass_at_k(7, 2, k), abs=1e-14)


def test_metrics_reexports_the_same_objects():
    # The CLI, leaderboard and plugins import from evals.metrics: the split must not
    # change what they get.
    for name in ("pass_at_k", "maj_at_k", "best_of_k"):
        assert getattr(evals.metrics, name) is getattr(evals.estimators, name)

