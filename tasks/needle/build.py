"""Building one prompt to an exact token length, with needles at sentence boundaries.

The target length counts the whole rendered conversation (see ``tokens``).
Fitting works in token space, never by trial and error on text:

1. budget = target - tokens of the prompt with an empty context - tokens
   of the needle sentences;
2. a window of whole haystack sentences holding exactly ``budget`` tokens is
   found by binary search over the cached prefix sums (``haystack``);
3. each needle goes to the sentence boundary nearest its depth, measured in
   haystack tokens;
4. the prompt's length is predicted from the prefix sums plus short
   tokenisations of the few places where pieces meet (the window's two ends,
   each needle's neighbours), and the budget moves until the prediction hits
   the target: no long text is tokenised in this loop;
5. the final prompt is tokenised once to verify; a miss (rare) is fed back
   into the prediction and steps 2-5 run again, at most four full counts in
   all. A prompt that still misses by more than 1% is an error.

``build_messages`` also records in the sample's metadata what was achieved:
``tokens`` (the prompt's exact count) and ``needle_depths`` (percent).
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from evals.task import Sample

from . import haystack as hs
from .tokens import Counter
from .variants import (CONSONANTS, VOWELS, WORD_SPACE, needle_depths, needle_sentences,
                       pseudo_word, render)

Message = dict[str, str]
TOLERANCE = 0.01  # the promised bound; exact is the aim
MAX_ATTEMPTS = 4  # full tokenisations of one prompt, at most
MAX_STEPS = 24  # window choices, most of them checked locally only


class LengthError(ValueError):
    """A prompt could not be fitted to its length (too short for the template, say)."""


def place_rng(sample: Sample) -> random.Random:
    """Placement and filler randomness: fixed per sample, so a resent prompt is identical."""
    return random.Random(f"needle-place:{sample.metadata['seed']}:{sample.id}")


def build_messages(sample: Sample, counter: Counter, grid_max: int) -> list[Message]:
    """The sample's messages at ``metadata['length']`` tokens (``grid_max`` sizes the cache)."""
    meta = sample.metadata
    if meta["variant"] == "cwe":
        return _build_cwe(sample, counter)
    return _build_niah(sample, counter, grid_max)


def _settle(meta: dict[str, Any], target: int, attempts: list[tuple[int, Any]]) -> Any:
    """The attempt closest to ``target``; raise LengthError past the tolerance."""
    actual, best = min(attempts, key=lambda a: abs(a[0] - target))
    if abs(actual - target) > TOLERANCE * target:
        raise LengthError(f"needle: could not fit {meta['variant']} sample to {target} tokens "
                          f"(closest {actual}); is the length too short for the prompt?")
    meta["tokens"] = actual
    return best


def _template_ends(meta: dict[str, Any]) -> tuple[str, str]:
    """The user text right before and right after the context."""
    marker = "\x00"
    content = next(m["content"] for m in render(meta, marker) if marker in m["content"])
    head, tail = content.split(marker)
    return head, tail


def _insert_delta(counter: Counter, left: str, right: str, needles: Sequence[str],
                  at_start: bool) -> int:
    """Tokens that inserting ``needles`` between ``left`` and ``right`` really adds.

    Counted on the two neighbours only: a needle's full stop can absorb the
    paragraph break that follows it, and the window's first unit keeps its
    separator once a needle precedes it, so the needle's own count is not it.
    """
    text = "".join(n if at_start and i == 0 else " " + n for i, n in enumerate(needles))
    base = left + (right.lstrip() if at_start else right)
    return counter.count(left + text + right) - counter.count(base)


def _predict(counter: Counter, st: hs.Stream, start: int, units: Sequence[str],
             inserts: dict[int, list[str]], head: str, tail: str) -> int:
    """Tokens of head + context + tail, from stream counts and a few short tokenisations.

    Interior units cost what the stream says (their left neighbour is the
    same); the window's two ends and each needle's neighbours are tokenised
    with their real neighbours, which is where tokens merge or split.
    """
    k = len(units)
    total = counter.count(head + units[0].lstrip() + units[1])
    total += int(st.cum[start + k - 1] - st.cum[start + 2])  # units 2 .. k-2
    total += counter.count(units[k - 2] + units[k - 1] + tail) - counter.count(units[k - 2])
    for j, group in inserts.items():
        total += _insert_delta(counter, units[j - 1] if j else head,
                               units[j] if j < k else tail, group, at_start=(j == 0))
    return total


def _build_niah(sample: Sample, counter: Counter, grid_max: int) -> list[Message]:
    meta = sample.metadata
    target = int(meta["length"])
    rng = place_rng(sample)
    sentences = needle_sentences(meta)
    depths = needle_depths(meta, rng)
    head, tail = _template_ends(meta)
    empty = counter.count_messages(render(meta, ""))
    wrapper = empty - counter.count(head + tail)  # chat markup around the user text
    budget = target - empty - sum(counter.unit_counts([" " + s for s in sentences]))
    if budget < 1:
        raise LengthError(f"needle: length {target} leaves no room for a haystack "
                          f"(template and needles take {target - budget} tokens)")
    st = hs.stream(counter, meta["haystack"], int(meta["seed"]), max(grid_max, target) + 64)
    attempts: list[tuple[int, Any]] = []
    bias = 0  # what the prediction missed, learnt from a full count
    full = 0
    for step in range(MAX_STEPS):
        start, end, _gap = hs.find_window(st, max(budget, 1), rng)
        units = st.text(start, end)
        positions = hs.boundary_positions(st, start, end)
        total = int(positions[-1])
        # Needles meeting at one boundary keep their list order (a chain needs it).
        slots = [hs.nearest_boundary(positions, d / 100.0 * total) for d in depths]
        inserts: dict[int, list[str]] = {}
        for slot, sentence in zip(slots, sentences):
            inserts.setdefault(slot, []).append(sentence)
        predicted = None
        if len(units) >= 4:
            predicted = wrapper + bias + _predict(counter, st, start, units, inserts, head, tail)
            if predicted != target and MAX_STEPS - step > MAX_ATTEMPTS - full:
                budget += target - predicted  # cheap: no full tokenisation yet
                continue
        messages = render(meta, hs.join_with_inserts(units, inserts))
        actual = counter.count_messages(messages)  # the one full count, normally
        full += 1
        achieved = [round(100.0 * int(positions[s]) / total, 2) if total else 0.0 for s in slots]
        attempts.append((actual, (messages, achieved)))
        if actual == target or full >= MAX_ATTEMPTS:
            break
        if predicted is not None:
            bias += actual - predicted
        budget += target - actual
    messages, achieved = _settle(meta, target, attempts)
    meta["needle_depths"] = achieved
    return messages


# ------------------------------------------------------------ common words

def _cwe_frequencies(target: int) -> tuple[int, int]:
    """(common, uncommon) repetitions: RULER's 30 and 3, or 2 and 1 below 4K tokens."""
    return (30, 3) if target >= 4096 else (2, 1)


def _entries(words: Sequence[str], first: int = 0) -> list[str]:
    """Numbered list entries ``first + 1``, ``first + 2``, ...; each but the first after a newline."""
    return [("" if i == 0 else "\n") + f"{i + 1}. {w}" for i, w in enumerate(words, first)]


def _word_list(common: Sequence[str], size: int, safe: int, target: int,
               rng: random.Random) -> list[str]:
    """``size`` words; every common occurrence lies in the first ``safe`` (kept whatever the cut)."""
    f_common, f_rare = _cwe_frequencies(target)
    f_common = max(f_rare + 1, min(f_common, safe // (2 * len(common))))
    slots: list[str | None] = [None] * size
    for pos, word in zip(rng.sample(range(safe), f_common * len(common)),
                         [w for w in common for _ in range(f_common)]):
        slots[pos] = word
    free = [i for i, w in enumerate(slots) if w is None]
    taken = set(common)
    rare: list[str] = []
    for i in rng.sample(range(WORD_SPACE), min(WORD_SPACE, len(free) // f_rare + len(common) + 1)):
        word = pseudo_word(i)
        if word not in taken:
            rare.extend([word] * f_rare)
    rng.shuffle(rare)
    for i, word in zip(free, rare):
        slots[i] = word
    return [w or rare[0] for w in slots]


def _build_cwe(sample: Sample, counter: Counter) -> list[Message]:
    meta = sample.metadata
    target = int(meta["length"])
    common = meta["words"]
    rng = place_rng(sample)
    import numpy as np

    budget = target - counter.count_messages(render(meta, ""))
    per_entry = 4.0
    for _ in range(2):  # numbers grow longer down the list: probe near its middle
        first = int(budget / per_entry / 2)
        probe = _entries([pseudo_word(rng.randrange(WORD_SPACE)) for _ in range(201)], first)
        per_entry = max(1.0, sum(counter.unit_counts(probe[1:], lead=probe[0])) / 200)
    for _ in range(3):  # re-estimate if the first guess of tokens per entry was off
        estimate = max(len(common) * 4, int(budget / per_entry))
        safe, size = int(estimate * 0.9), int(estimate * 1.15) + 20
        entries = _entries(_word_list(common, size, safe, target, rng))
        cum = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(counter.unit_counts(entries), out=cum[1:])
        k = int(np.searchsorted(cum, budget, side="right")) - 1
        if safe <= k < size:
            break
        per_entry = max(1.0, float(cum[-1]) / size)
    attempts: list[tuple[int, Any]] = []
    for _ in range(MAX_ATTEMPTS):
        k = max(min(k, size), safe + 1)  # the last entry is then a rare word
        body = entries[:k]
        messages = render(meta, "".join(body))
        actual = counter.count_messages(messages)
        attempts.append((actual, messages))
        need = target - actual
        if 0 < need <= 16:
            # Whole entries cost ~5 tokens: the rest comes from a longer last word.
            padded = _pad_entry(counter, body[-2], body[-1], need, rng)
            if padded is not None:
                messages = render(meta, "".join(body[:-1]) + padded)
                attempts.append((counter.count_messages(messages), messages))
                if attempts[-1][0] == target:
                    break
        elif need == 0:
            break
        k = int(np.searchsorted(cum, cum[k] + need, side="right")) - 1
    return _settle(meta, target, attempts)


def _pad_entry(counter: Counter, prev: str, last: str, need: int,
               rng: random.Random) -> str | None:
    """``last`` with its word replaced so that it costs ``need`` more tokens, or None."""
    prefix = last[:last.rindex(" ") + 1]
    base = counter.count(prev + last)
    for _ in range(300):
        word = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS)
                       for _ in range(rng.randint(2, 3 + 2 * need)))
        if counter.count(prev + prefix + word) - base == need:
            return prefix + word
    return None
