"""Metric and cost rows from the score index, vectorised with numpy.

``evals.metrics.Aggregator`` defines every number and stays the reference; this
module computes the same rows from ``samples.jsonl.index`` (evals.score_index)
without parsing JSON: 6.4M records in seconds instead of half a minute. Tests
check both give the same rows on records with every complication (duplicates,
errors, cached re-scores, unanswered and fractional scores, ranks with ties).

The per-record parts (which record wins a slot, what counts towards cost and
tokens) are numpy over all records; the per-problem estimators are shared with
the Aggregator, called once per distinct vote profile (maj@K) or per problem
only where no closed form applies (fractional scores, best@K).

``aggregate(path)`` picks: the index when the file is large and the index
agrees with it, else the streaming Aggregator.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from evals import score_index
from evals.estimators import COUNT_BUDGET, count_cost, maj_exact, maj_at_k
from evals.metrics import (
    Aggregator, CostRow, GroupKey, MetricRow, _extend, max_of_k, _quantile, _wanted, order_weights,
    assemble_rows, best_values, cost_row,
)
from evals.records import iter_records
from evals.score_index import CACHED, ERROR, LENGTH, NO_ANSWER, PARSE, TIMEOUT, USAGE, StaleIndex

# Below this, parsing the JSON takes well under a second and numpy/pandas would
# cost more to import than they save.
MIN_BYTES = 32 * 2**20
PARALLEL_MIN = 2000  # distinct maj@K profiles before counting them in worker processes
_MIX = 0x9E3779B97F4A7C15  # odd: (group, sample id) hashes -> one 64-bit problem key


def aggregate(samples: Path, min_bytes: int | None = None) -> "Aggregator | ColumnarMetrics":
    """Metrics of one records file: from its index when that pays (``min_bytes``,
    default MIN_BYTES) and can be trusted, else the streaming Aggregator."""
    return indexed(samples, min_bytes) or Aggregator().update(iter_records(Path(samples)))


def indexed(samples: Path, min_bytes: int | None = None) -> "ColumnarMetrics | None":
    """``ColumnarMetrics`` of a records file whose index pays and can be trusted; else None."""
    samples = Path(samples)
    if (samples.parent / "trajectories").is_dir():
        return None  # an agent's run: its records' steps are not in the index
    if samples.exists() and samples.stat().st_size >= (MIN_BYTES if min_bytes is None
                                                        else min_bytes):
        entries = score_index.load(samples)
        if entries is not None and len(entries):
            try:
                return ColumnarMetrics(samples, entries)
            except StaleIndex:
                pass
    return None


def _count_maj(key: tuple) -> list[float]:
    n_none, profile, kk = key
    return maj_exact([c for c, _ in profile], [m for _, m in profile], n_none, kk)


def _map(fn: Callable[[Any], Any], items: list) -> list:
    """``map`` over worker processes when it pays: 22k distinct vote profiles of
    100,000 problems take ~3 s of exact counting on one core."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    workers = min(cpus, 8)
    if workers < 2 or len(items) < PARALLEL_MIN or "fork" not in mp.get_all_start_methods():
        return list(map(fn, items))
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return list(pool.map(fn, items, chunksize=max(1, len(items) // (workers * 8))))


class ColumnarMetrics:
    """``metric_rows`` and ``cost_rows`` as ``Aggregator`` gives them, from index entries.

    Two passes over the entries in chunks, so memory is a few compact columns, not the
    index: the first finds each (problem, gen) slot's records, the second sums what
    each record counts for and keeps the winning records' score, answer and rank.
    """

    # Entries per read: 6 MB stays in cache between the passes over a chunk's fields
    # (1M-entry chunks made the whole pass twice as slow).
    chunk = 1 << 16

    def __init__(self, samples: Path, entries: score_index.Entries):
        import numpy as np
        import pandas as pd  # factorize: hash-based, linear; np.unique sorts

        R = len(entries)
        gi = np.empty(R, dtype=np.int32)  # group code
        problem = np.empty(R, dtype=np.uint64)  # (group, sample id) hash
        gen = np.empty(R, dtype=np.uint32)
        codes: dict[int, int] = {}
        firsts: list[int] = []  # each group's first entry
        last_end, at = 0, 0
        for chunk in entries.chunks(self.chunk):
            n = len(chunk)
            ends = chunk["end"]
            if ends[0] <= last_end or (n > 1 and not bool(np.all(ends[1:] > ends[:-1]))):
                raise StaleIndex(f"{samples}: its index is out of order")
            last_end = int(ends[-1])
            local, uniques = pd.factorize(chunk["group"])
            for j, h in enumerate(uniques.tolist()):
                if h not in codes:
                    codes[h] = len(codes)
                    firsts.append(at + int(np.argmax(local == j)))
            gi[at:at + n] = np.array([codes[h] for h in uniques.tolist()], dtype=np.int32)[local]
            problem[at:at + n] = chunk["problem"] ^ (chunk["group"] * np.uint64(_MIX))
            gen[at:at + n] = chunk["gen"]
            at += n
        self.G = G = len(codes)
        # Names and settings from each group's first line, which also checks the index.
        self.keys: list[GroupKey] = []
        self.settings: list[dict] = []
        for i in [*firsts, R - 1]:
            rec = score_index.read_record(samples, entries, i)
            if rec is None:
                raise StaleIndex(f"{samples}: its index does not match the record at entry {i}")
            if rec.get("steps") is not None:  # CostRow.steps_mean needs the JSON
                raise StaleIndex(f"{samples}: an agent's records (steps are not indexed)")
            if len(self.keys) < G:
                self.keys.append((rec["task"], rec["model"], rec["setting"]))
                self.settings.append(dict(rec.get("settings") or {}))

        # Slots (problem, gen): the last record wins, as in Aggregator.update.
        pi, problem_keys = pd.factorize(problem)
        del problem
        P = len(problem_keys)
        pg = np.empty(P, dtype=np.int64)  # problem -> group
        pg[pi] = gi
        group_hashes = np.array(list(codes), dtype=np.uint64)  # by code
        self.sample_hash = problem_keys ^ (group_hashes[pg] * np.uint64(_MIX))  # hash64(id)
        width = int(gen.max()) + 1
        if P * width >= 2**62:
            raise StaleIndex("too many problems x generations to number their slots")
        slot = pi * width
        slot += gen
        del gen
        order = np.argsort(slot, kind="stable")  # records arrive nearly sorted: cheap
        ordered = slot[order]
        del slot
        new = np.empty(R, dtype=bool)
        new[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
        del ordered
        first = np.empty_like(new)
        first[order] = new
        is_last = np.empty_like(new)
        is_last[:-1], is_last[-1] = new[1:], True
        final = order[is_last]  # one record per slot, by problem (first seen) then gen
        del order, new, is_last
        F = len(final)
        place = np.full(R, -1, dtype=np.int32 if F < 2**31 else np.int64)  # record -> final row
        place[final] = np.arange(F)
        fp = pi[final]
        del final, pi

        # Second pass: what each record counts for, and the winning records' verdicts.
        budget = np.array([float(st.get("thinking_budget") or 0) for st in self.settings])
        zeros = lambda: np.zeros(G)  # noqa: E731
        self.records = np.bincount(gi, minlength=G)
        self.cost, self.budget_use = zeros(), zeros()
        self.tokens = [zeros(), zeros(), zeros()]
        self.unknown_cost, self.finished, self.length, self.over_budget, ranks_seen = (
            zeros(), zeros(), zeros(), zeros(), zeros())
        self.failures = [zeros(), zeros(), zeros()]  # evals.metrics.VERDICT_FAILURES
        latencies: list[list[Any]] = [[] for _ in range(G)]
        ferr = np.empty(F, dtype=bool)
        fscore = np.empty(F)
        fans = np.empty(F, dtype=np.uint64)
        frank = None  # allocated when a rank shows up: most runs have none
        fcat = np.zeros(F, dtype=np.uint64)
        self.category_at: dict[int, int] = {}  # breakdown category -> its first entry
        at = 0
        for chunk in entries.chunks(self.chunk):
            n = len(chunk)
            g = gi[at:at + n]
            flags = chunk["flags"]
            err = (flags & ERROR) != 0
            # A cached re-score after an unscored attempt replaces its verdict but was
            # already paid for: it counts for nothing else.
            replay = ((flags & CACHED) != 0) & ~err & ~first[at:at + n]
            counted = ~replay
            scored_new = ~err & counted
            cost = chunk["cost"]
            cost_nan = np.isnan(cost)

            def add(total: Any, mask: Any, weights: Any = None) -> None:
                total += np.bincount(g[mask], None if weights is None else weights[mask],
                                     minlength=G)

            add(self.cost, counted & ~cost_nan, cost)
            add(self.unknown_cost, scored_new & cost_nan)
            for total, name in zip(self.tokens, ("prompt", "completion", "reasoning")):
                add(total, counted, chunk[name])
            add(self.finished, scored_new)
            add(self.length, scored_new & ((flags & LENGTH) != 0))
            for total, bit in zip(self.failures, (NO_ANSWER, TIMEOUT, PARSE)):
                add(total, scored_new & ((flags & bit) != 0))
            lat = chunk["latency"]
            has_lat = scored_new & ~np.isnan(lat)
            lat_g, lat_v = g[has_lat], lat[has_lat]
            by = np.argsort(lat_g, kind="stable")
            bounds = np.searchsorted(lat_g[by], np.arange(G + 1))
            for k in range(G):
                latencies[k].append(lat_v[by[bounds[k]:bounds[k + 1]]])
            b = budget[g]
            under = scored_new & ((flags & USAGE) != 0) & (b > 0)
            use = chunk["reasoning"] / np.where(b > 0, b, 1.0)
            add(self.budget_use, under, use)
            add(self.over_budget, under & (use > 1.0))
            rank = chunk["rank"]
            has_rank = ~np.isnan(rank)
            add(ranks_seen, ~err & has_rank)
            rows = place[at:at + n]
            won = rows >= 0
            to = rows[won]
            ferr[to] = err[won]
            fscore[to] = chunk["score"][won]
            fans[to] = chunk["answer"][won]
            cats = chunk["category"]
            fcat[to] = cats[won]
            tagged = np.flatnonzero(cats)
            if len(tagged):
                hashes, where = np.unique(cats[tagged], return_index=True)
                for h, i in zip(hashes.tolist(), where.tolist()):
                    self.category_at.setdefault(h, at + int(tagged[i]))
            if frank is None and has_rank.any():
                frank = np.full(F, np.nan)
            if frank is not None:
                frank[to] = rank[won]
            at += n
        del place, first, gi
        self.latency = []  # (mean, p90) per group
        for parts in latencies:
            values = np.concatenate(parts)
            parts.clear()
            self.latency.append((float(values.mean()), _quantile(values, 0.9)) if len(values)
                                else (None, None))
        self.cost_known = self.unknown_cost == 0
        self.ranked = ranks_seen > 0

        # Per problem, from the winning records (fp ascends: slots sort by problem).
        seen = np.bincount(fp, minlength=P)
        perr = np.bincount(fp[ferr], minlength=P)
        n_items = seen - perr
        ok = ~ferr
        psum = np.bincount(fp[ok], weights=fscore[ok], minlength=P)
        self.samples = np.zeros(G, dtype=np.int64)
        np.maximum.at(self.samples, pg, seen)
        self.errors = np.bincount(pg, weights=perr, minlength=G)
        self.scored = np.bincount(pg, weights=n_items, minlength=G)
        self.correct = np.bincount(pg, weights=psum, minlength=G)
        self.problems = np.bincount(pg, minlength=G)
        self.pg, self.n_items, self.psum = pg, n_items, psum
        self.ones = np.bincount(fp[ok & (fscore == 1.0)], minlength=P)
        self.binary = self.ones + np.bincount(fp[ok & (fscore == 0.0)], minlength=P) == n_items
        self.bounds = np.concatenate([[0], np.cumsum(seen)])  # problem p: rows b[p]:b[p+1]
        self.seen, self.perr = seen, perr
        # A problem's category: any of its generations' (all carry the sample's metadata;
        # failed calls of runs before they did carry none).
        self.pcat = np.maximum.reduceat(fcat, self.bounds[:-1]) if P else fcat[:0]
        self.samples_path, self.entries = samples, entries
        self.fok, self.fscore, self.fans, self.frank = ok, fscore, fans, frank
        # Vote runs, one per (problem, answer): its votes and mean score. Factorizing a
        # (problem, answer) hash numbers them in order of first appearance, hence by problem.
        voted = ok & (fans != 0)
        self.n_none = np.bincount(fp[ok & (fans == 0)], minlength=P)
        vp = fp[voted]
        run, run_count = pd.factorize(fans[voted] ^ (vp.astype(np.uint64) * np.uint64(_MIX)))
        votes = np.bincount(run, minlength=len(run_count))
        sums = np.bincount(run, weights=fscore[voted], minlength=len(run_count))
        run_problem = np.empty(len(run_count), dtype=np.int64)
        run_problem[run] = vp
        self.run_bounds = np.searchsorted(run_problem, np.arange(P + 1))
        self.run_votes, self.run_means = votes.tolist(), (sums / np.maximum(votes, 1)).tolist()
    def metric_rows(self, ks: Sequence[int] | None = None, confidence: float = 0.95
                    ) -> list[MetricRow]:
        rows: list[MetricRow] = []
        for g in sorted(range(self.G), key=self.keys.__getitem__):
            rows.extend(self._group_rows(g, ks, confidence))
        return rows

    def _group_rows(self, g: int, ks: Sequence[int] | None, confidence: float
                    ) -> list[MetricRow]:
        import numpy as np

        mine = np.flatnonzero((self.pg == g) & (self.n_items > 0))  # in order first seen
        n = self.n_items[mine]
        acc = (self.psum[mine] / n).tolist()
        samples, scored = int(self.samples[g]), int(self.scored[g])
        per_gen = float(self.cost[g]) / scored if self.cost_known[g] and scored else None
        wanted = _wanted(ks, samples) if samples > 1 and len(mine) else []
        tables: dict[str, dict[int, list[float]]] = {
            name: {k: [] for k in wanted} for name in ("pass", "maj", "best")}
        ones, binary = self.ones[mine], self.binary[mine]
        for k in wanted:  # pass@K: closed form for 0/1 scores, max-of-K otherwise
            reach = n >= k
            values = np.empty(int(reach.sum()))
            nk, ok_k, bin_k = n[reach], ones[reach], binary[reach]
            for size in np.unique(nk[bin_k]).tolist():
                at = bin_k & (nk == size)
                values[at] = 1.0 - np.asarray(order_weights(size, k))[size - ok_k[at]]
            for j in np.flatnonzero(~bin_k).tolist():
                values[j] = max_of_k(self._scores(int(mine[reach][j])), k)
            tables["pass"][k] = values.tolist()
        rb, votes, means = self.run_bounds.tolist(), self.run_votes, self.run_means
        n_none = self.n_none.tolist()
        # Each problem's maj@K key: (no-vote count, vote profile, its Ks), numbered once
        # (hashing a profile again per K cost more than the counting it saves).
        ids: dict[tuple, int] = {}
        keyed: list[tuple[int, int]] = []  # (problem, key id), problems in order
        ks_of = {size: tuple(k for k in wanted if k <= size) for size in set(n.tolist())}
        for p, size in zip(mine.tolist(), n.tolist()):
            kk = ks_of[size]
            if kk:
                a, b = rb[p], rb[p + 1]
                key = (n_none[p], tuple(sorted(zip(votes[a:b], means[a:b]))), kk)
                keyed.append((p, ids.setdefault(key, len(ids))))
        maj = self._maj_by_key(list(ids), {kid: p for p, kid in reversed(keyed)})
        counts = [len(key[2]) for key in ids]
        # A problem's Ks are a prefix of ``wanted``: the j-th value is for wanted[j].
        for j, k in enumerate(wanted):
            tables["maj"][k] = [maj[kid][j] for _, kid in keyed if counts[kid] > j]
        if self.ranked[g]:
            for p, kid in keyed:
                kk = wanted[:counts[kid]]
                ranks = [-math.inf if r != r else r for r in self._ranks(p)]
                _extend(tables["best"], kk, best_values(ranks, self._scores(p), kk))
        return assemble_rows(self.keys[g], self.settings[g], samples, int(self.errors[g]),
                             per_gen, acc, tables, bool(self.ranked[g]), wanted, confidence)

    def _maj_by_key(self, keys: list[tuple], first: dict[int, int]) -> list[list[float]]:
        """maj@K values of each distinct key (no-vote count, vote profile, Ks): counted
        exactly, on all CPUs when there are many; maj_at_k's fallback where counting is
        too big, from the first problem with that key (``first``: key id -> problem), as
        the Aggregator's cache does."""
        countable = [i for i, (n_none, profile, kk) in enumerate(keys)
                     if count_cost([c for c, _ in profile], n_none, kk[-1]) <= COUNT_BUDGET]
        out: list[Any] = [None] * len(keys)
        for i, values in zip(countable, _map(_count_maj, [keys[i] for i in countable])):
            out[i] = values
        for i, key in enumerate(keys):
            if out[i] is None:
                answers, correct = self._answers(first[i])
                out[i] = [maj_at_k(answers, correct, k) for k in key[2]]
        return out

    def _items(self, p: int) -> slice:
        return slice(int(self.bounds[p]), int(self.bounds[p + 1]))

    def _scores(self, p: int) -> list[float]:
        s = self._items(p)
        return self.fscore[s][self.fok[s]].tolist()

    def _ranks(self, p: int) -> list[float]:
        s = self._items(p)
        return self.frank[s][self.fok[s]].tolist()

    def _answers(self, p: int) -> tuple[list, dict]:
        """Votes in generation order (answer hashes; None: no answer) and each answer's
        mean score: what maj_at_k's fallback takes."""
        s = self._items(p)
        answers = [a or None for a in self.fans[s][self.fok[s]].tolist()]
        totals: dict[int, list[float]] = {}
        for a, score in zip(answers, self._scores(p)):
            if a is not None:
                t = totals.setdefault(a, [0, 0.0])
                t[0] += 1
                t[1] += score
        return answers, {a: total / c for a, (c, total) in totals.items()}

    def by_category(self, g: int) -> dict[int, tuple[list[float], int, int]]:
        """Group ``g``'s problems by breakdown category (``score_index.category``): each
        one's per-problem accuracies, most generations of a problem, errored generations."""
        import numpy as np

        mine = np.flatnonzero((self.pg == g) & (self.pcat != 0))
        cats = self.pcat[mine]
        out = {}
        for h in np.unique(cats).tolist():
            ps = mine[cats == h]
            scored = ps[self.n_items[ps] > 0]
            out[h] = ((self.psum[scored] / self.n_items[scored]).tolist(),
                      int(self.seen[ps].max()), int(self.perr[ps].sum()))
        return out

    def problem_means(self) -> dict[GroupKey, dict[int, float]]:
        """Per group, each scored problem's mean score, keyed by ``hash64(sample_id)``
        (what ``evals compare`` pairs on)."""
        import numpy as np

        out = {}
        for g, key in enumerate(self.keys):
            mine = np.flatnonzero((self.pg == g) & (self.n_items > 0))
            if len(mine):
                out[key] = dict(zip(self.sample_hash[mine].tolist(),
                                    (self.psum[mine] / self.n_items[mine]).tolist()))
        return out

    def category_metadata(self, category: int) -> dict:
        """The metadata of the first record in a breakdown category."""
        rec = score_index.read_record(self.samples_path, self.entries, self.category_at[category])
        if rec is None:
            raise StaleIndex(f"{self.samples_path}: changed while it was read")
        return rec.get("metadata") or {}

    def cost_rows(self) -> dict[GroupKey, CostRow]:
        out: dict[GroupKey, CostRow] = {}
        for g in sorted(range(self.G), key=self.keys.__getitem__):
            key = self.keys[g]
            out[key] = cost_row(
                key, self.settings[g], int(self.problems[g]), int(self.scored[g]),
                int(self.errors[g]), float(self.correct[g]), int(self.records[g]),
                tuple(float(t[g]) for t in self.tokens), float(self.cost[g]),
                bool(self.cost_known[g]), self.latency[g], int(self.length[g]),
                int(self.finished[g]), float(self.budget_use[g]), int(self.over_budget[g]),
                [int(f[g]) for f in self.failures])
        return out
