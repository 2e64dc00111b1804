"""The verdicts a person should look at: where a grader may have read a completion
differently from a careful reader.

``evals audit RUN`` reads a run's records (nothing is called or re-scored, except
that math answers are judged again by math-verify when it is installed) and lists:

* ``no_answer``: nothing was extracted (a broken extractor looks like a weak model);
* ``several_answers``: the completion committed to more than one answer (the grader
  took the last; ``score_metadata.committed``);
* ``reasoning_only``: the answer was found only in the reasoning, not in the
  visible text (``score_metadata.where``), including cut-off reasoning;
* ``undecided``: a verifier could not decide in time (``timeout``);
* ``grader_error``: the grader failed by itself (``verifier_error``, ``parse_error``,
  ``scorer_error``, ``infra_error``);
* ``peer_disagrees``: math-verify judges the extracted math answer differently.

Each item carries the text around the extraction, so it can be checked by eye.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from evals.records import iter_records

KINDS = ("no_answer", "several_answers", "reasoning_only", "undecided", "grader_error",
         "peer_disagrees")
GRADER_ERRORS = frozenset({"verifier_error", "parse_error", "scorer_error", "infra_error"})
CONTEXT = 200  # characters of text shown around an extraction


@dataclass
class AuditItem:
    kind: str
    task: str
    model: str
    setting: str
    sample_id: str
    gen: int
    status: str
    score: float | None
    answer: str | None
    target: Any
    detail: str  # what the grader said, or why the item is listed
    context: str  # the text around the extraction (or the end of the completion)


def _context(record: dict[str, Any]) -> str:
    meta = record.get("score_metadata") or {}
    if meta.get("context"):
        return str(meta["context"])
    text = record.get("completion") or ""
    extracted = meta.get("extracted")
    at = text.rfind(extracted) if isinstance(extracted, str) and extracted else -1
    if at >= 0:
        snippet = text[max(0, at - CONTEXT // 2):at + len(extracted) + CONTEXT // 2]
    else:
        snippet = text[-CONTEXT:]
    return " ".join(snippet.split())


def math_verify_judge() -> Callable[[str, str], bool | None] | None:
    """math-verify's verdict on (gold, answer), or None when it is not installed."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return None

    def judge(gold: str, answer: str) -> bool | None:
        def wrap(text: str) -> str:
            return text if "$" in text else f"${text}$"
        try:
            return bool(verify(parse(wrap(gold)), parse(wrap(answer))))
        except Exception:  # its own parse failure: no opinion
            return None

    return judge


def reasons(record: dict[str, Any],
            peer: Callable[[str, str], bool | None] | None = None) -> Iterator[tuple[str, str]]:
    """``(kind, detail)`` for every reason a person should look at this record."""
    status = record.get("status")
    meta = record.get("score_metadata") or {}
    explanation = str(record.get("explanation") or "")
    if status == "no_answer":
        yield "no_answer", explanation
    committed = meta.get("committed")
    if committed and len(committed) > 1:
        yield "several_answers", f"committed to {', '.join(committed)}; graded the last"
    if meta.get("where") in ("reasoning", "unclosed_reasoning"):
        yield "reasoning_only", f"answer found only in {meta['where'].replace('_', ' ')}"
    if status == "timeout":
        yield "undecided", explanation
    if status in GRADER_ERRORS:
        yield "grader_error", explanation or str(status)
    extracted = meta.get("extracted")
    if peer is not None and isinstance(extracted, str) and record.get("score") in (0.0, 1.0) \
            and record.get("target") is not None and status == "ok":
        theirs = peer(str(record["target"]), extracted)
        if theirs is not None and theirs != (record["score"] == 1.0):
            yield "peer_disagrees", (f"math-verify says {'equal' if theirs else 'different'}; "
                                     f"graded {'equal' if record['score'] == 1.0 else 'different'}")


def audit(records: Iterable[dict[str, Any]], kinds: Iterable[str] = KINDS,
          peer: Callable[[str, str], bool | None] | None = None) -> list[AuditItem]:
    """The items of ``kinds`` among ``records`` (the last record of a generation wins)."""
    wanted = set(kinds)
    latest: dict[tuple, dict[str, Any]] = {}
    for r in records:
        latest[(r.get("task"), r.get("model"), r.get("setting"), r.get("sample_id"),
                r.get("gen"))] = r
    items = []
    for r in latest.values():
        if r.get("status") == "error":
            continue  # a failed call: nothing was graded
        for kind, detail in reasons(r, peer if "peer_disagrees" in wanted else None):
            if kind in wanted:
                items.append(AuditItem(kind, r.get("task"), r.get("model"), r.get("setting"),
                                       str(r.get("sample_id")), r.get("gen", 0),
                                       r.get("status"), r.get("score"), r.get("answer"),
                                       r.get("target"), detail, _context(r)))
    items.sort(key=lambda i: (KINDS.index(i.kind), i.task, i.model, i.setting, i.sample_id,
                              i.gen))
    return items


def audit_run(path: Path, kinds: Iterable[str] = KINDS, use_peer: bool = True
              ) -> list[AuditItem]:
    return audit(iter_records(path), kinds, math_verify_judge() if use_peer else None)


def counts(items: Iterable[AuditItem]) -> dict[str, int]:
    out = {k: 0 for k in KINDS}
    for item in items:
        out[item.kind] += 1
    return out


def to_csv(items: list[AuditItem]) -> str:
    buffer = io.StringIO()
    fields = list(AuditItem.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for item in items:
        writer.writerow(asdict(item))
    return buffer.getvalue()
