"""Example custom verifiers (docs/math.md; the bundled sample uses one).

A verifier is ``fn(answer, target, sample) -> bool | float | dict``:
``answer`` is the extracted answer as written, ``target`` the row's gold
answer, ``sample`` the problem's id and metadata.
"""

from __future__ import annotations

from typing import Any


def prime_in_range(answer: str, target: str, sample: dict[str, Any]) -> dict[str, Any]:
    """Any prime in [sample["low"], sample["high"]] is correct (the target is one example)."""
    text = answer.strip().strip("$").strip()
    if not text.lstrip("-").isdigit() or len(text) > 12:
        return {"value": 0.0, "explanation": "not an integer"}
    n = int(text)
    low, high = int(sample.get("low", 0)), int(sample.get("high", 0))
    prime = n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))
    # Every correct answer votes as "prime": any prime in range is the same answer.
    ok = prime and low <= n <= high
    return {"value": float(ok), "answer": "prime in range" if ok else text,
            "explanation": f"{n} is {'' if prime else 'not '}prime"}
