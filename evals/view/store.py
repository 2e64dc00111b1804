"""A run as the viewer reads it: compact columns from the score index, records by offset.

Opening a run reads its ``samples.jsonl.index2`` (evals.score_index) once, in chunks, into
a few numpy columns of about 45 bytes a record whatever the records' size: where each line
ends, its (task, model, setting) and breakdown category as small codes, the sample id's
hash, gen, status flags, score, latency, cost and completion tokens. Listing, filtering,
sorting, pairing a problem across settings and finding verdicts that differ are numpy over
those columns; a record's JSON is read, by seeking to its byte offsets, only for the rows
a page shows. A run without a usable index (small, or written by another tool) is
encoded in memory from its JSON, as the metrics readers do.

Filters on fields the index does not hold (the extraction rule, the SWE outcome) read
the candidate records in order until the page is full, within a time budget; the total
is then a lower bound, and says so (``exact``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import orjson

from evals import score_index
from evals.records import RunLog
from evals.score_index import CACHED, ERROR, LENGTH, NO_ANSWER, PARSE, TIMEOUT

OUTCOMES = ("correct", "incorrect", "partial", "unscored")
SORTS = ("file", "score", "latency", "cost", "tokens", "gen")
JSON_SCAN_SECONDS = 1.5  # how long a filter on record fields may read records per page
_CHUNK = 1 << 17


@dataclass
class Filters:
    """What the sample list keeps. Empty fields keep everything."""

    groups: set[int] | None = None  # group codes (task, model, setting)
    outcome: str | None = None  # one of OUTCOMES
    score_min: float | None = None
    score_max: float | None = None
    no_answer: bool = False
    length_cut: bool = False
    categories: set[int] | None = None  # category codes (domain, subdomain, needle cell)
    rule: str | None = None  # the extraction rule (score_metadata), read from the records
    swe: str | None = None  # the SWE outcome (score_metadata.outcome), read from the records

    @property
    def on_records(self) -> bool:
        return bool(self.rule or self.swe)

    def key(self) -> tuple:
        return (None if self.groups is None else tuple(sorted(self.groups)), self.outcome,
                self.score_min, self.score_max, self.no_answer, self.length_cut,
                None if self.categories is None else tuple(sorted(self.categories)))


def extraction_rule(rec: Mapping[str, Any]) -> str | None:
    """The rule that extracted the answer: math's ``extracted_by``, a choice task's ``rule``."""
    meta = rec.get("score_metadata") or {}
    if not isinstance(meta, dict):
        return None
    rule = meta.get("extracted_by") or meta.get("rule")
    return None if rule is None else str(rule)


def swe_outcome(rec: Mapping[str, Any]) -> str | None:
    meta = rec.get("score_metadata") or {}
    return str(meta["outcome"]) if isinstance(meta, dict) and "outcome" in meta else None


def _codes(values: np.ndarray, table: dict[int, int], at: int, firsts: list[int]) -> np.ndarray:
    """Small integer codes of 64-bit hashes, numbered in order of first appearance;
    ``firsts`` gets each new code's first entry."""
    first = values[0]
    if len(values) and bool(np.all(values == first)):  # the usual chunk: one group
        code = table.get(int(first))
        if code is None:
            code = table[int(first)] = len(table)
            firsts.append(at)
        return np.full(len(values), code, dtype=np.int32)
    import pandas as pd  # factorize: hash-based and linear (np.unique sorts)

    inverse, uniques = pd.factorize(values)
    mapped = np.empty(len(uniques), dtype=np.int32)
    for j, h in enumerate(uniques.tolist()):
        code = table.get(h)
        if code is None:
            code = table[h] = len(table)
            firsts.append(at + int(np.argmax(values == h)))
        mapped[j] = code
    return mapped[inverse]


class RunView:
    """One run's columns (see the module docstring). Not thread-safe: the server calls
    it from one thread."""

    def __init__(self, log: RunLog):
        self.log = log
        self.id = log.dir.name
        self.meta = log.read_meta()
        self.samples = log.samples_path
        entries = score_index.load(self.samples) if self.samples.exists() else None
        if entries is None:  # no index worth using: encode the JSON in memory
            encoder = score_index.Encoder(score_index.breakdown_fields(self.samples))
            tail = b"".join(encoder.entry(r, e) for r, e in score_index.iter_lines(
                self.samples, 0, self.samples.stat().st_size if self.samples.exists() else 0,
                unterminated=True)) if self.samples.exists() else b""
            entries = score_index.Entries(score_index.index_path(self.samples), 0, tail)
        self.entries = entries
        R = self.size = len(entries)
        self.end = np.empty(R, dtype=np.uint64)
        self.group = np.empty(R, dtype=np.int16)
        self.problem = np.empty(R, dtype=np.uint64)
        self.category = np.empty(R, dtype=np.int32)
        self.gen = np.empty(R, dtype=np.uint32)
        self.flags = np.empty(R, dtype=np.uint8)
        self.score = np.empty(R, dtype=np.float32)
        self.latency = np.empty(R, dtype=np.float32)
        self.cost = np.empty(R, dtype=np.float32)
        self.tokens = np.empty(R, dtype=np.float32)
        groups: dict[int, int] = {}
        categories: dict[int, int] = {}
        group_first: list[int] = []
        self.category_first: list[int] = []
        self.category_hash: list[int] = []
        at = 0
        chunks = entries.chunks(_CHUNK) if entries.count else (
            [np.frombuffer(entries.tail, dtype=np.dtype(score_index.FIELDS))] if R else [])
        for chunk in chunks:
            n = len(chunk)
            sl = slice(at, at + n)
            self.end[sl] = chunk["end"]
            self.group[sl] = _codes(chunk["group"], groups, at, group_first)
            self.category[sl] = _codes(chunk["category"], categories, at, self.category_first)
            self.problem[sl] = chunk["problem"]
            self.gen[sl] = chunk["gen"]
            self.flags[sl] = chunk["flags"]
            self.score[sl] = chunk["score"]
            self.latency[sl] = chunk["latency"]
            self.cost[sl] = chunk["cost"]
            self.tokens[sl] = chunk["completion"]
            at += n
        if R > 1 and not bool(np.all(self.end[1:] > self.end[:-1])):
            raise score_index.StaleIndex(f"{self.samples}: its index is out of order")
        self.category_hash = list(categories)
        # Names from each group's first record, which also checks index against file.
        self.groups: list[tuple[str, str, str]] = []
        for i in group_first:
            rec = self.record(i)
            self.groups.append((rec["task"], rec["model"], rec["setting"]))
        self._categories: list[dict] | None = None
        self._lists: dict[tuple, np.ndarray] = {}  # filters -> matching entries (a few)
        self._seen_rules: set[str] = set()
        self._seen_swe: set[str] = set()
        self._differ: dict[int, Any] = {}

    # ------------------------------------------------------------ records

    def span(self, i: int) -> tuple[int, int]:
        return (int(self.end[i - 1]) if i else 0), int(self.end[i])

    def record(self, i: int) -> dict:
        """Record ``i``, read at its byte offsets; ValueError when the line does not match
        its index entry (the file changed under the viewer)."""
        if not 0 <= i < self.size:
            raise IndexError(f"no record {i} in run {self.id}")
        start, end = self.span(i)
        with open(self.samples, "rb") as f:
            f.seek(start)
            return self._checked(i, f.read(end - start))

    def records(self, indices: Iterable[int]) -> list[dict]:
        out = []
        with open(self.samples, "rb") as f:
            for i in indices:
                start, end = self.span(int(i))
                f.seek(start)
                out.append(self._checked(int(i), f.read(end - start)))
        return out

    def _checked(self, i: int, line: bytes) -> dict:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict) or rec.get("gen") != int(self.gen[i]) \
                or score_index.hash64(rec.get("sample_id")) != int(self.problem[i]):
            raise ValueError(f"{self.samples}: record {i} does not match its index entry "
                             "(the file changed; reopen the viewer)")
        return rec

    # ------------------------------------------------------------ facets

    def categories(self) -> list[dict]:
        """Each category code's place in the run's declared breakdowns (run.json, else
        LEGACY_BREAKDOWNS): ``top`` and ``sub`` of a tree (GPQA's domain and subdomain),
        ``cell`` of a grid (needle's variant, length and depth)."""
        if self._categories is None:
            from evals.task import LEGACY_BREAKDOWNS, Breakdown

            declared = self.meta.get("breakdowns")
            specs = LEGACY_BREAKDOWNS if not isinstance(declared, dict) else [
                Breakdown.from_json(b) for task in declared.values() for b in task]
            out = []
            for code, first in enumerate(self.category_first):
                meta = (self.record(first).get("metadata") or {}) if self.category_hash[code] \
                    else {}
                c: dict[str, Any] = {}
                for spec in specs:
                    if spec.kind == "tree" and meta.get(spec.keys[0]) is not None:
                        c["top"] = str(meta[spec.keys[0]])
                        if len(spec.keys) > 1 and meta.get(spec.keys[1]) is not None:
                            c["sub"] = f"{c['top']} / {meta[spec.keys[1]]}"
                    elif spec.kind == "grid" and all(k in meta for k in spec.keys[:2]):
                        c["cell"] = "|".join(str(v) for v in (
                            meta.get(spec.split, "") if spec.split else "",
                            meta[spec.keys[0]], meta[spec.keys[1]]))
                out.append(c)
            self._categories = out
        return self._categories

    def facets(self) -> dict:
        cats = self.categories()
        cells = sorted({c["cell"] for c in cats if "cell" in c})
        return {
            "groups": [{"code": g, "task": t, "model": m, "setting": s,
                        "records": int(np.count_nonzero(self.group == g))}
                       for g, (t, m, s) in enumerate(self.groups)],
            "domains": sorted({c["top"] for c in cats if "top" in c}),
            "subdomains": sorted({c["sub"] for c in cats if "sub" in c}),
            "cells": cells,
            "rules": sorted(self._seen_rules),
            "swe": sorted(self._seen_swe),
        }

    def category_codes(self, domain: str | None = None, subdomain: str | None = None,
                       cell: str | None = None) -> set[int] | None:
        """The category codes matching the breakdown filters; None when none is set."""
        if not (domain or subdomain or cell):
            return None
        keep = set()
        for code, c in enumerate(self.categories()):
            if domain and c.get("top") != domain:
                continue
            if subdomain and c.get("sub") != subdomain:
                continue
            if cell and c.get("cell") != cell:
                continue
            keep.add(code)
        return keep

    # ------------------------------------------------------------ listing

    def matching(self, f: Filters) -> np.ndarray | None:
        """Entries passing the index-level filters, in file order (cached for paging);
        None when no filter is set (every entry)."""
        key = f.key()
        if key == Filters().key():
            return None  # every entry
        hit = self._lists.get(key)
        if hit is not None:
            return hit
        mask = np.ones(self.size, dtype=bool)
        if f.groups is not None:
            mask &= np.isin(self.group, np.fromiter(f.groups, dtype=np.int16))
        if f.categories is not None:
            mask &= np.isin(self.category, np.fromiter(f.categories, dtype=np.int32))
        if f.outcome == "unscored":
            mask &= (self.flags & ERROR).astype(bool)
        elif f.outcome == "correct":
            mask &= self.score >= 1.0
        elif f.outcome == "incorrect":
            mask &= self.score <= 0.0
        elif f.outcome == "partial":
            mask &= (self.score > 0.0) & (self.score < 1.0)
        if f.score_min is not None:
            mask &= self.score >= f.score_min
        if f.score_max is not None:
            mask &= self.score <= f.score_max
        if f.no_answer:
            mask &= (self.flags & NO_ANSWER).astype(bool)
        if f.length_cut:
            mask &= (self.flags & LENGTH).astype(bool)
        found = np.flatnonzero(mask).astype(np.int32 if self.size < 2**31 else np.int64)
        if len(self._lists) >= 4:
            self._lists.pop(next(iter(self._lists)))
        self._lists[key] = found
        return found

    def ordered(self, found: np.ndarray | None, sort: str, descending: bool, lo: int,
                hi: int) -> np.ndarray:
        """Positions ``lo:hi`` of ``found`` (None: every entry) in the sort order, ties in
        file order, NaN last: a partial sort, linear in ``len(found)`` at any offset."""
        n = self.size if found is None else len(found)
        hi = min(hi, n)
        if lo >= hi:
            return np.empty(0, dtype=np.int64)
        if sort == "file":
            pos = np.arange(lo, hi) if not descending else np.arange(n - 1 - lo, n - 1 - hi, -1)
            return pos if found is None else found[pos].astype(np.int64)
        column = {"score": self.score, "latency": self.latency, "cost": self.cost,
                  "tokens": self.tokens, "gen": self.gen}[sort]
        vals = column.astype(np.float32) if found is None else column[found].astype(np.float32)
        if descending:
            np.negative(vals, out=vals)
        vals[np.isnan(vals)] = np.inf  # missing values last, either way
        part = np.partition(vals, [lo, hi - 1]) if hi - lo > 1 else np.partition(vals, lo)
        v_lo, v_hi = part[lo], part[hi - 1]
        del part
        # Ranks lo..hi-1 are: the tail of v_lo's ties, the values between, the head of v_hi's.
        below = int(np.count_nonzero(vals < v_lo))
        ties = np.flatnonzero(vals == v_lo)[lo - below:lo - below + (hi - lo)]
        if v_hi == v_lo:
            pos = ties
        else:
            mid = np.flatnonzero((vals > v_lo) & (vals < v_hi))
            mid = mid[np.lexsort((mid, vals[mid]))]
            rest = hi - lo - len(ties) - len(mid)
            pos = np.concatenate([ties, mid, np.flatnonzero(vals == v_hi)[:rest]])
        return pos if found is None else found[pos].astype(np.int64)

    def page(self, f: Filters, sort: str = "file", descending: bool = False, offset: int = 0,
             limit: int = 50) -> dict:
        """One page of the sample list: ``{"total", "exact", "rows"}``."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        found = self.matching(f)
        total = self.size if found is None else len(found)
        if not f.on_records:
            chosen = self.ordered(found, sort, descending, offset, offset + limit)
            return {"total": int(total), "exact": True,
                    "rows": [self.row(i, r) for i, r in zip(chosen.tolist(),
                                                             self.records(chosen))]}
        # Fields only the records hold: read candidates in order until the page is full.
        rows: list[dict] = []
        seen = matched = 0
        deadline = time.monotonic() + JSON_SCAN_SECONDS
        batch = 256
        exact = True
        while seen < total:
            chosen = self.ordered(found, sort, descending, seen, seen + batch)
            for i, rec in zip(chosen.tolist(), self.records(chosen)):
                if self._keep(rec, f):
                    if offset <= matched < offset + limit:
                        rows.append(self.row(i, rec))
                    matched += 1
            seen += len(chosen)
            batch = min(batch * 2, 1 << 14)
            if matched >= offset + limit + 1 or time.monotonic() > deadline:
                exact = seen >= total
                break
        return {"total": matched, "exact": exact, "rows": rows}

    def _keep(self, rec: Mapping[str, Any], f: Filters) -> bool:
        rule, swe = extraction_rule(rec), swe_outcome(rec)
        if rule is not None:
            self._seen_rules.add(rule)
        if swe is not None:
            self._seen_swe.add(swe)
        return (not f.rule or rule == f.rule) and (not f.swe or swe == f.swe)

    def row(self, i: int, rec: Mapping[str, Any]) -> dict:
        """A sample-list row: the index's numbers and the record's names and verdict."""
        self._keep(rec, Filters())  # remember the rules and outcomes seen, for the facets
        flags = int(self.flags[i])
        return {"i": i, "task": rec["task"], "model": rec["model"], "setting": rec["setting"],
                "sample_id": rec["sample_id"], "gen": rec["gen"], "status": rec.get("status"),
                "score": rec.get("score"), "answer": _short(rec.get("answer")),
                "target": _short(rec.get("target")), "rule": extraction_rule(rec),
                "latency": _num(self.latency[i]), "cost": _num(self.cost[i]),
                "tokens": _num(self.tokens[i]), "length_cut": bool(flags & LENGTH),
                "cached": bool(flags & CACHED),
                "failure": ("no_answer" if flags & NO_ANSWER else "timeout" if flags & TIMEOUT
                            else "parse" if flags & PARSE else None)}

    # ------------------------------------------------------------ one problem

    def problem_entries(self, task: str, sample_hash: int) -> dict[int, list[int]]:
        """Group code -> the entries of one problem (by sample id hash) in that task."""
        hits = np.flatnonzero(self.problem == np.uint64(sample_hash))
        out: dict[int, list[int]] = {}
        for i in hits.tolist():
            g = int(self.group[i])
            if self.groups[g][0] == task:
                out.setdefault(g, []).append(i)
        return out

    def problem_scores(self, g: int) -> dict[int, tuple[float, int, int]]:
        """sample id hash -> (mean score, scored generations, first entry) in group ``g``;
        the last record of a (problem, gen) wins, errors are left out."""
        hit = self._differ.get(g)
        if hit is not None:
            return hit
        import pandas as pd

        idx = np.flatnonzero((self.group == g) & ~(self.flags & ERROR).astype(bool))
        codes, uniques = pd.factorize(self.problem[idx])
        P = len(uniques)
        width = int(self.gen[idx].max()) + 1 if len(idx) else 1
        slot = codes.astype(np.int64) * width + self.gen[idx]
        if np.bincount(slot, minlength=P * width).max(initial=0) > 1:  # a retried slot
            last = len(slot) - 1 - np.unique(slot[::-1], return_index=True)[1]
            keep = np.sort(last)
            idx, codes = idx[keep], codes[keep]
        n = np.bincount(codes, minlength=P)
        mean = np.bincount(codes, weights=self.score[idx].astype(np.float64), minlength=P) / n
        first = np.empty(P, dtype=np.int64)
        first[codes[::-1]] = idx[::-1]  # the last assignment wins: each problem's first entry
        out = dict(zip(uniques.astype(np.uint64).tolist(),
                       zip(mean.tolist(), n.tolist(), first.tolist())))
        if len(self._differ) >= 8:
            self._differ.pop(next(iter(self._differ)))
        self._differ[g] = out
        return out


def differing(a: RunView, ga: int, b: RunView, gb: int, offset: int = 0, limit: int = 50,
              threshold: float = 0.5) -> dict:
    """Problems of one task whose verdict differs between two groups: a problem's verdict
    is right when its mean score over its generations is at least ``threshold`` (one
    generation: its score). Largest differences first."""
    if a.groups[ga][0] != b.groups[gb][0]:
        raise ValueError("the two sides must be the same task")
    sa, sb = a.problem_scores(ga), b.problem_scores(gb)
    both = [(abs(ma - sb[p][0]), p, ma, na, ia, sb[p]) for p, (ma, na, ia) in sa.items()
            if p in sb and (ma >= threshold) != (sb[p][0] >= threshold)]
    both.sort(key=lambda t: (-t[0], t[4]))
    a_only = sum(1 for t in both if t[2] >= threshold)
    page = both[offset:offset + limit]
    recs = a.records([t[4] for t in page])
    return {"total": len(both), "common": sum(1 for p in sa if p in sb),
            "a_right": a_only, "b_right": len(both) - a_only,
            "rows": [{"sample_id": rec["sample_id"], "a": {"i": ia, "mean": ma, "n": na},
                      "b": {"i": ib, "mean": mb, "n": nb}}
                     for (_, _, ma, na, ia, (mb, nb, ib)), rec in zip(page, recs)]}


def _num(v: Any) -> float | None:
    v = float(v)
    return None if v != v else v


def _short(v: Any, n: int = 120) -> Any:
    if isinstance(v, str) and len(v) > n:
        return v[:n] + "..."
    return v
