"""Accuracy with 95% intervals per high-level domain and subdomain, and the
rate of unparseable answers, from result records (intervals from evals.stats)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from evals.stats import normal_interval, wilson_interval

NONE = "(none)"


def _row(level: str, domain: str | None, subdomain: str | None,
         records: list[dict[str, Any]]) -> dict[str, Any]:
    errors = 0
    no_answer = 0
    scored = 0
    per_sample: dict[str, list[float]] = defaultdict(list)
    for r in records:
        value = r.get("score")
        if value is None or r.get("status") == "error":
            errors += 1
            continue
        scored += 1
        if r.get("status") == "no_answer":
            no_answer += 1
        per_sample[str(r.get("sample_id"))].append(float(value))
    means = [sum(v) / len(v) for v in per_sample.values()]
    n = len(means)
    accuracy = sum(means) / n if n else None
    if not n:
        low = high = None
        method = None
    elif all(m in (0.0, 1.0) for m in means):
        low, high = wilson_interval(sum(means), n)
        method = "wilson"
    else:
        low, high = normal_interval(means)
        method = "clt"
    return {"level": level, "domain": domain, "subdomain": subdomain, "n": n,
            "records": scored, "accuracy": accuracy, "ci_low": low, "ci_high": high,
            "interval": method, "no_answer": no_answer,
            "no_answer_rate": no_answer / scored if scored else None, "errors": errors}


def breakdown(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy and its 95% interval overall, per domain and per subdomain.

    ``records``: result records of one task/model/setting, each with
    ``sample_id``, ``score`` (float, None for an error), ``status``
    (``ok``/``no_answer``/``error``) and ``metadata`` (the sample's, with
    ``domain`` and ``subdomain``).

    Accuracy is the mean over samples of each sample's mean score (several
    generations per sample count once); ``n`` is the number of samples with
    at least one scored record. The interval is Wilson's when every sample's
    mean is 0 or 1, else the CLT one over the per-sample means. ``no_answer``
    counts records (generations) whose answer could not be extracted; they
    score 0 and are also reported as ``no_answer_rate`` = no_answer / records.
    Errors are left out of both and counted in ``errors``.

    Rows: overall first, then each domain (sorted) followed by its subdomains.
    """
    records = list(records)
    by_domain: dict[str, list[dict]] = defaultdict(list)
    by_sub: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        meta = r.get("metadata") or {}
        domain = meta.get("domain") or NONE
        sub = meta.get("subdomain") or NONE
        by_domain[domain].append(r)
        by_sub[(domain, sub)].append(r)
    rows = [_row("overall", None, None, records)]
    for domain in sorted(by_domain):
        rows.append(_row("domain", domain, None, by_domain[domain]))
        for (d, sub) in sorted(k for k in by_sub if k[0] == domain):
            rows.append(_row("subdomain", d, sub, by_sub[(d, sub)]))
    return rows
