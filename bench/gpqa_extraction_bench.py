"""GPQA answer extraction: ``tasks.extract.extract_choice`` against other harnesses' rules.

Method
------
Each labelled table (JSONL; one row per line with ``completion``, ``options``
(the four option texts in letter order), ``expected`` (the letter the
completion finally commits to, or ``null`` when it commits to none), ``kind``
and optionally ``id``) is run through every extractor below, and each
extractor's answer is compared with the label. A row is right when the
extractor returns the labelled letter, or returns nothing for a ``null`` row.
Wrong rows are split into:

* false commits: a letter (or any other answer) for a ``null`` row;
* wrong letters: a different answer than the labelled letter;
* misses: nothing for a row that has a letter.

Extractors
----------
* ``evals``: this project's ``tasks.choice.extract_choice(completion, options)``.

The others are small reimplementations, written for this comparison from the
public descriptions and task configurations of each harness (no code taken
from them). They reproduce the extraction step only, as each harness applies
it to a GPQA completion, and may differ from the originals in corner cases:

* ``simple-evals``: openai/simple-evals' GPQA grading: the first match of the
  case-insensitive pattern ``Answer[ \\t]*:[ \\t]*\\$?([A-D])\\$?`` anywhere in
  the response (no handling of reasoning blocks). The letter is compared
  as captured, so a lowercase ``answer: c`` does not score as ``C``.
* ``lm-eval strict``: lm-evaluation-harness' GPQA chain-of-thought tasks,
  ``strict-match`` filter: the text after the first ``The answer is `` (case
  sensitive) up to one character before the line's end; punctuation and
  case are ignored when compared with ``(X)``, so ``C``, ``(C)`` and
  ``(c)`` all count as C, and anything else (``Vitamin D``) as an answer
  that is not a letter.
* ``lm-eval flexible``: the same tasks' ``flexible-extract`` filter
  (``multi_choice_regex``, ``group_select: -1``, ``ignore_case``,
  ``ignore_punctuation``): the last ``(X)`` with X any capital letter; if
  there is none, the last occurrence of an option's text (both sides
  lower-cased, punctuation removed); if none, the last ``:`` followed by a
  capital A-D. ``(R)`` from ``(R)-butan-2-ol`` is an answer too (not a
  letter of the options). The harness' plain GPQA configurations do not
  remove ``<think>`` blocks, so neither does this.
* ``lighteval``: lighteval's GPQA instruct metric (extractive match on
  capital letters A-D), after its default removal of closed
  ``<think>...</think>`` blocks. Patterns are tried by priority: "final
  answer is X ... I hope", "final answer ... is X", "answer:" then a letter
  within 50 characters, "answer" then a letter within 50 characters, a
  letter at the start of the text, at the start of a line, and (the current
  GPQA metric sets ``try_extract_without_anchor``) a letter standing alone
  between spaces/punctuation, then any capital A-D at all. Within the first
  priority that matches, the match that ends last wins.
  ``lighteval anchored`` is the same without the two anchor-free patterns
  (the library's default for letter extraction).

Usage (from the repository root)::

    PYTHONPATH=$PWD python bench/gpqa_extraction_bench.py
    PYTHONPATH=$PWD python bench/gpqa_extraction_bench.py tests/data/gpqa_reasoning.jsonl --show-wrong all

By default both ``tests/data/gpqa_reasoning.jsonl`` and
``tests/data/gpqa_extraction.jsonl`` are scored, each on its own. The output
is Markdown: per table, accuracy overall and per kind for every extractor,
the false-commit / wrong-letter / miss counts, and every row that ``evals``
gets wrong (``--show-wrong`` adds the other extractors' wrong rows).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Callable, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks.choice import extract_choice  # noqa: E402

DEFAULT_TABLES = [REPO / "tests" / "data" / "gpqa_reasoning.jsonl",
                  REPO / "tests" / "data" / "gpqa_extraction.jsonl"]
LETTERS = "ABCD"

Extractor = Callable[[str, Sequence[str]], Optional[str]]


# --- this project -----------------------------------------------------------------

def ours(text: str, options: Sequence[str]) -> str | None:
    """As the gpqa task scores it, with its default ``-T truncated=no_answer``: an
    answer found only in an unclosed reasoning block is no answer."""
    choice = extract_choice(text, options)
    return choice.letter if choice and choice.where != "unclosed_reasoning" else None


# --- openai/simple-evals (reimplementation) -------------------------------------

_SIMPLE_EVALS = re.compile(r"answer[ \t]*:[ \t]*\$?([a-d])\$?", re.IGNORECASE)


def simple_evals(text: str, options: Sequence[str]) -> str | None:
    hit = _SIMPLE_EVALS.search(text)
    return hit.group(1) if hit else None  # case kept: "c" is not "C" when graded


# --- lm-evaluation-harness (reimplementation) -----------------------------------

def _drop_punctuation(text: str) -> str:
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


def _as_letter(answer: str) -> str:
    """An lm-eval answer string as a letter when it compares equal to "(X)"."""
    key = _drop_punctuation(answer).strip().lower()
    if len(key) == 1 and key.upper() in LETTERS:
        return key.upper()
    return answer  # an answer, but not one of the letters


_STRICT = re.compile(r"(?<=The answer is )(.*)(?=.)")


def lm_eval_strict(text: str, options: Sequence[str]) -> str | None:
    found = _STRICT.findall(text)
    if not found or not found[0].strip():
        return None
    return _as_letter(found[0].strip())


_PAREN_CAPITAL = re.compile(r"\([A-Z]\)")
_COLON_LETTER = re.compile(r":\s*([ABCD])")


def lm_eval_flexible(text: str, options: Sequence[str]) -> str | None:
    found = _PAREN_CAPITAL.findall(text)
    if found:
        return _as_letter(found[-1])
    # option texts, compared lower-cased and without punctuation; a later option
    # with the same normalised text takes the key, as in a dict built in order
    keys = [_drop_punctuation(o.strip()).lower() for o in options]
    owner = {}
    for letter, key in zip(LETTERS, keys):
        owner[key] = letter
    pattern = re.compile("|".join(re.escape(k) for k in keys))
    found = pattern.findall(_drop_punctuation(text).lower())
    if found and found[-1] in owner:
        return owner[found[-1]]
    found = _COLON_LETTER.findall(text)
    if found:
        return found[-1]
    return None


# --- lighteval (reimplementation) ------------------------------------------------

def _without_closed_think(text: str) -> str:
    start_tag, end_tag = "<think>", "</think>"
    while True:
        start = text.find(start_tag)
        if start < 0:
            return text
        end = text.find(end_tag, start)
        if end < 0:
            return text
        text = text[:start] + text[end + len(end_tag):]


_IDX = r"(?P<idx>[ABCD]|\([ABCD]\))"
_BEFORE = r"(?:^| )(?:\*\*)?"
_AFTER = r"(?:\*\*)?(?:\.|,|\s?:| |$)"
_ANCHORED = [
    (0, [rf"(?i:final answer is):?\s*{_IDX}\.?\s?I hope"]),
    (50, [rf"(?i:final answer.{{0,100}}?)\s+is:?\s*{_IDX}"]),
    (100, [rf"(?i:answer)\s?:.{{0,50}}?{_BEFORE}{_IDX}{_AFTER}"]),
    (150, [rf"(?i:answer).{{0,50}}?{_BEFORE}{_IDX}{_AFTER}"]),
    (200, [rf"^(?:\*\*)?{_IDX}{_AFTER}"]),
    (210, [rf"\n(?:\*\*)?{_IDX}{_AFTER}"]),
]
_FREE = [(250, [rf"{_BEFORE}{_IDX}{_AFTER}"]), (300, [_IDX])]


def _compile(levels):
    return [(priority, [re.compile(p) for p in patterns]) for priority, patterns in levels]


_LIGHTEVAL_ANCHORED = _compile(_ANCHORED)
_LIGHTEVAL_FREE = _compile(_ANCHORED + _FREE)


def _lighteval(text: str, levels) -> str | None:
    text = _without_closed_think(text)
    for _priority, patterns in levels:
        hits = [m for p in patterns for m in p.finditer(text)]
        if hits:
            best = max(hits, key=lambda m: (m.end(), -m.start()))
            return best.group("idx").strip("()")
    return None


def lighteval(text: str, options: Sequence[str]) -> str | None:
    return _lighteval(text, _LIGHTEVAL_FREE)


def lighteval_anchored(text: str, options: Sequence[str]) -> str | None:
    return _lighteval(text, _LIGHTEVAL_ANCHORED)


EXTRACTORS: dict[str, Extractor] = {
    "evals": ours,
    "simple-evals": simple_evals,
    "lm-eval strict": lm_eval_strict,
    "lm-eval flexible": lm_eval_flexible,
    "lighteval": lighteval,
    "lighteval anchored": lighteval_anchored,
}


# --- scoring ---------------------------------------------------------------------

def load(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            row.setdefault("id", f"{path.stem}:{n}")
            rows.append(row)
    return rows


def outcome(expected: str | None, got: str | None) -> str:
    if got == expected:
        return "right"
    if expected is None:
        return "false_commit"
    if got is None:
        return "miss"
    return "wrong_letter"


def score(rows: list[dict], extract: Extractor) -> list[tuple[dict, str | None, str]]:
    results = []
    for row in rows:
        got = extract(row["completion"], row["options"])
        results.append((row, got, outcome(row["expected"], got)))
    return results


def pct(right: int, total: int) -> str:
    return f"{100.0 * right / total:.1f}" if total else "-"


def report(path: Path, names: list[str], show_wrong: set[str]) -> None:
    rows = load(path)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    per = {name: score(rows, EXTRACTORS[name]) for name in names}
    print(f"## {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({len(rows)} rows)\n")
    print("| kind | rows | null | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for kind in kinds + [None]:
        subset = [r for r in rows if kind is None or r["kind"] == kind]
        cells = []
        for name in names:
            right = sum(1 for row, _, o in per[name]
                        if (kind is None or row["kind"] == kind) and o == "right")
            cells.append(pct(right, len(subset)))
        label = "**all**" if kind is None else kind
        nulls = sum(1 for r in subset if r["expected"] is None)
        print(f"| {label} | {len(subset)} | {nulls} | " + " | ".join(cells) + " |")
    print()
    print("| counts | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for what in ("right", "false_commit", "wrong_letter", "miss"):
        counts = [sum(1 for _, _, o in per[name] if o == what) for name in names]
        print(f"| {what.replace('_', ' ')} | " + " | ".join(map(str, counts)) + " |")
    print()
    for name in names:
        if name != "evals" and name not in show_wrong and "all" not in show_wrong:
            continue
        wrong = [(row, got, o) for row, got, o in per[name] if o != "right"]
        print(f"Rows `{name}` gets wrong: {len(wrong)}\n")
        if wrong:
            print("| id | kind | expected | got | outcome |")
            print("|---|---|---|---|---|")
            for row, got, o in wrong:
                print(f"| {row['id']} | {row['kind']} | {row['expected']} | {got} | "
                      f"{o.replace('_', ' ')} |")
            print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("tables", nargs="*", type=Path,
                        help="labelled JSONL tables (default: the two GPQA tables in tests/data)")
    parser.add_argument("--extractors", default=",".join(EXTRACTORS),
                        help="comma-separated subset of: " + ", ".join(EXTRACTORS))
    parser.add_argument("--show-wrong", default="",
                        help="comma-separated extractors whose wrong rows are listed too "
                             "(evals' always are), or 'all'")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.extractors.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXTRACTORS]
    if unknown:
        parser.error(f"unknown extractor(s): {', '.join(unknown)}")
    show = {n.strip() for n in args.show_wrong.split(",") if n.strip()}
    for table in args.tables or DEFAULT_TABLES:
        report(table.resolve(), names, show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
