"""Scoring a needle completion: exact for single and multikey, recall for the rest.

An expected item counts as present when it occurs in the completion as a
whole token: case-insensitive, and not inside a longer run of letters or
digits (so ``1234567`` is not found in ``91234567``). ``Score.answer`` is
the sorted list of candidate items the completion names (values, variable
names or list words), so equal answers vote together in maj@k.
"""

from __future__ import annotations

import re

from evals.task import Sample, Score

from .variants import EXACT

_NUMBER = re.compile(r"(?<![0-9])[0-9]{5,}(?![0-9])")
_VAR = re.compile(r"(?<![A-Za-z0-9])[A-Z]{5}(?![A-Za-z0-9])")


def present(item: str, text: str) -> bool:
    pattern = rf"(?<![A-Za-z0-9]){re.escape(item)}(?![A-Za-z0-9])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def score(sample: Sample, completion: str) -> Score:
    meta = sample.metadata
    variant = meta["variant"]
    expected = [str(x) for x in sample.target]
    found = [x for x in expected if present(x, completion)]
    if variant == "cwe":
        candidates = sorted(x.lower() for x in found)
    elif variant == "vt":
        candidates = sorted(set(_VAR.findall(completion)))
    else:
        candidates = sorted(set(_NUMBER.findall(completion)))
    answer = ",".join(candidates) if candidates else None
    if variant in EXACT:
        wrong = [d for d in meta.get("distractors", ()) if present(d, completion)]
        value = float(bool(found) and not wrong)
        if wrong:
            why = f"names distractor value(s) {', '.join(wrong)}; expected {expected[0]}"
        else:
            why = "found" if found else f"expected {expected[0]}"
    else:
        value = len(found) / len(expected)
        missing = [x for x in expected if x not in found]
        why = (f"{len(found)}/{len(expected)} expected items"
               + (f"; missing {', '.join(missing[:5])}" if missing else ""))
    # cwe's words are free text: any non-empty reply is an answer, right or wrong.
    answered = answer is not None or (variant == "cwe" and completion.strip())
    status = "ok" if answered else "no_answer"
    return Score(value, answer, why, status, {"found": len(found), "expected": len(expected)})
