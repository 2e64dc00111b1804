"""Math verifier on a peer's equivalence cases: ``tasks.math`` and math-verify.

The peer suite is the equivalence cases of huggingface/Math-Verify's own test
files, read at run time from a checkout the user gives (``--checkout PATH``,
the repository root or its ``tests/`` folder). Nothing of it is stored in this
project: the cases are parsed as data, never imported or run.

Reading the cases
-----------------
Every ``tests/*.py`` file is parsed with :mod:`ast`. A case is one entry of a
``@pytest.mark.parametrize(NAMES, VALUES)`` decorator whose names include a
gold (``gold``), a prediction (``pred``/``prediction``) and an expected verdict
(``expected``/``result``); entries that are not Python literals are skipped
(counted in the header line).

Which cases (the documented rule)
---------------------------------
A case is kept when

1. its only other parameter, if any, is ``precision`` at the peer's default (6):
   another precision changes the tolerance asked for, and cases with the peer's
   policy switches (``strict``, ``allow_set_relation_comp``) test those policies
   (may ``f(x)`` equal ``f(y)``, may a set gold meet a relation) whatever the
   value, which this project settles in its own way (docs/math.md); and
2. its prediction is an *answer rather than free text*: once math-mode spans
   (``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``) and LaTeX commands are set
   aside, no word of two or more letters is left (a capital may start it), other
   than the connectives ``and``/``or`` and the percent words ``percent``,
   ``pct``, ``percentage``. So ``\\boxed{(2, 2)} \\quad \\text{and} \\quad
   \\boxed{(6, 2)}``, ``28 pct`` and ``W(x)=1orW(x)=-1`` are answers, while
   ``Answer $9$``, ``is $\\boxed{32,\\! 349}$`` and a worked solution are text
   (they test extraction from prose, not equivalence).

The gold may be free text either way (a dataset's solution field).

How each verifier judges a case
-------------------------------
* ``evals``: the answer each side marks, as the ``math`` task reads a
  completion (``tasks.math.answer.extract_answer``: boxes, several adjacent
  boxes read together, ``Answer:`` lines), else the side as written; then
  ``MathScorer.check(gold, answer)`` exactly as in ``bench/math_verify_bench.py``
  (in-process rules, then ``--workers`` sympy workers; defaults: 5 s deadline,
  rtol 1e-6, ``--decimal-comma auto``). Timed sequentially and concurrently.
* math-verify (if installed): ``verify(parse(gold), parse(pred))`` on the raw
  strings, with the extraction the peer's tests use (LaTeX with boxes first,
  then plain expressions) and its defaults otherwise.

Both are also run on ``tests/data/math_equivalence.jsonl`` (the project's own
labelled table, judged as in ``bench/math_verify_bench.py``). For each set the
report gives recall (accepted among the should-match cases), false accepts
(accepted among the should-not-match ones) and checks per second (median of
``--repeats`` timed passes after a warm-up). ``--show-misses`` lists every case
a verifier gets wrong.

    python bench/peer_math_suite.py --checkout /path/to/Math-Verify [--show-misses]
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from math_verify_bench import REPO, load_rows, run_evals, run_math_verify, timed  # noqa: E402

PEER_DEFAULTS = {"precision": 6}  # other parameters (policy switches) exclude a case
GOLD_NAMES, PRED_NAMES, EXPECTED_NAMES = ("gold",), ("pred", "prediction"), ("expected", "result")
_MATH_SPAN = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\[.*?\\\]|\\\(.*?\\\)", re.S)
_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"\b[A-Za-z][a-z]+\b")
_ANSWER_WORDS = {"and", "or", "percent", "pct", "percentage"}


def _parametrize_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)
                        and deco.func.attr == "parametrize" and len(deco.args) >= 2):
                    yield node.name, deco


def _pick(names: list[str], wanted: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in wanted), None)


def read_cases(checkout: Path) -> tuple[list[dict[str, Any]], int]:
    """Every literal (gold, prediction, expected) case of the checkout's tests, and
    how many entries were skipped as not literal."""
    tests = checkout / "tests" if (checkout / "tests").is_dir() else checkout
    files = sorted(tests.glob("*.py"))
    if not files:
        raise SystemExit(f"no test files under {tests}: pass --checkout the repository root")
    cases, skipped = [], 0
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for function, call in _parametrize_calls(tree):
            try:
                names = [n.strip() for n in ast.literal_eval(call.args[0]).split(",")]
            except (ValueError, AttributeError, SyntaxError):
                continue
            gold, pred, expected = (_pick(names, GOLD_NAMES), _pick(names, PRED_NAMES),
                                    _pick(names, EXPECTED_NAMES))
            if not (gold and pred and expected) or not isinstance(call.args[1], (ast.List, ast.Tuple)):
                continue
            for entry in call.args[1].elts:
                try:
                    values = ast.literal_eval(entry)
                except (ValueError, SyntaxError, TypeError):
                    skipped += 1
                    continue
                if not isinstance(values, tuple) or len(values) != len(names):
                    skipped += 1
                    continue
                row = dict(zip(names, values))
                if not isinstance(row[gold], str) or not isinstance(row[pred], str):
                    skipped += 1
                    continue
                cases.append({
                    "where": f"{path.name}:{entry.lineno} ({function})",
                    "gold": row[gold], "pred": row[pred], "equal": bool(row[expected]),
                    "options": {k: v for k, v in row.items() if k not in (gold, pred, expected)}})
    return cases, skipped


def prose_words(text: str) -> list[str]:
    """Words outside math mode and LaTeX commands, connectives and percent words aside."""
    rest = _COMMAND.sub(" ", _MATH_SPAN.sub(" ", text))
    return [w for w in _WORD.findall(rest) if w.lower() not in _ANSWER_WORDS]


def answer_style(case: dict[str, Any]) -> bool:
    """The selection rule of the module docstring."""
    defaults = all(k in PEER_DEFAULTS and PEER_DEFAULTS[k] == v
                   for k, v in case["options"].items())
    return defaults and not prose_words(case["pred"])


def as_answer(text: str) -> str:
    """What the math task reads from a side: its marked answer, else the side itself."""
    from tasks.math.answer import clean, extract_answer

    found = extract_answer(text)
    return found.text if found is not None else clean(text)


def run_peer_math_verify(cases, repeats: int) -> dict[str, Any] | None:
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    except ImportError:
        print("math-verify is not installed (pip install math-verify): skipped", file=sys.stderr)
        return None
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]

    def judge() -> list[bool | None]:
        out: list[bool | None] = []
        for c in cases:
            try:
                out.append(bool(verify(parse(c["gold"], config), parse(c["pred"], config))))
            except Exception:  # noqa: BLE001 - counted as a wrong verdict
                out.append(None)
        return out

    verdicts, took = timed(judge, repeats)
    return {"verdicts": verdicts, "sequential_s": took}


def summary(name: str, rows, verdicts, seconds: float, extra: str, show: bool,
            describe) -> None:
    positives = [v for r, v in zip(rows, verdicts) if r["equal"]]
    negatives = [v for r, v in zip(rows, verdicts) if not r["equal"]]
    accepted = sum(1 for v in positives if v)
    false_accepts = sum(1 for v in negatives if v)
    recall = accepted / len(positives) if positives else float("nan")
    print(f"  {name}: recall {recall:.4f} ({accepted}/{len(positives)}), false accepts "
          f"{false_accepts}/{len(negatives)}, {len(rows) / seconds:.0f} checks/s{extra}")
    if show:
        for r, v in zip(rows, verdicts):
            if bool(v) != r["equal"]:
                kind = "false accept" if v else ("miss" if v is False else "error")
                print(f"      {kind}: {describe(r)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkout", type=Path, required=True,
                        help="a Math-Verify checkout (repository root or its tests/ folder)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--decimal-comma", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()

    from tasks.math import Options

    options = Options(decimal_comma=args.decimal_comma)
    cases, skipped = read_cases(args.checkout.expanduser())
    chosen = [c for c in cases if answer_style(c)]
    peer_rows = [{**c, "gold_answer": as_answer(c["gold"]), "candidate": as_answer(c["pred"])}
                 for c in chosen]
    n_pos = sum(c["equal"] for c in chosen)
    print(f"peer suite: {len(cases)} literal cases in {args.checkout} ({skipped} not literal); "
          f"{len(chosen)} answer-style: {n_pos} should match, {len(chosen) - n_pos} should not")

    def peer_describe(r) -> str:
        return (f"{r['where']}: gold={r['raw_gold'][:90]!r} pred={r['pred'][:90]!r} "
                f"(read as {r['gold'][:60]!r} / {r['candidate'][:60]!r})")

    def table_describe(r) -> str:
        return f"#{r['id']} [{r['category']}] gold={r['gold']!r} cand={r['candidate']!r}"

    table = load_rows()
    ours_rows = [{**r, "gold": r["gold_answer"], "raw_gold": r["gold"]} for r in peer_rows]
    for label, rows, describe in (("peer suite", ours_rows, peer_describe),
                                  (f"project table ({len(table)} rows)", table, table_describe)):
        print(label)
        ours = run_evals(rows, args.workers, args.repeats, options)
        summary("evals tasks.math", rows, ours["verdicts"], ours["sequential_s"],
                f" sequential, {len(rows) / ours['concurrent_s']:.0f} concurrent "
                f"({args.workers} workers)", args.show_misses, describe)
        if rows is ours_rows:
            theirs = run_peer_math_verify(chosen, args.repeats)
        else:
            theirs = run_math_verify(rows, args.repeats)
        if theirs is not None:
            summary("math-verify", rows, theirs["verdicts"], theirs["sequential_s"],
                    " (one process)", args.show_misses, describe)


if __name__ == "__main__":
    main()
