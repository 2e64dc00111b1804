"""The math scorer: extract, compare in-process if cheap, else in the pool.

``Score.answer`` (what maj@k votes count) is a canonical string: an answer
judged equal to the gold gets the gold's canonical form, so every correct
completion votes for the same string whatever its spelling (``1/2``,
``0.5``, ``\\frac12``); any other answer gets its own canonical form (exact
rationals as ``p/q``, other expressions as sympy prints them after
``simplify``, sets sorted). With ``redact`` it is an HMAC of that string.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from evals.task import Sample, Score

from .answer import Extracted, extract_answer
from .compare import canon, compare
from .leaves import CheapLeaves
from .normalize import decimal_commas, normalize, unit_of
from .pool import VerifierPool, shared_pool
from .structure import Node, parse
from .verifiers import (ProgramRunner, ProgramVerifier, PythonVerifier, Verifier, run_program)

_LONG = 300  # canonical strings past this many characters are stored as a digest


@dataclass
class Options:
    rtol: float = 1e-6
    decimal_comma: str = "auto"  # "auto", "on" or "off": docs/math.md, Decimal commas
    # An answer found only in an unclosed <think> (the output was cut by the token
    # limit while thinking): "no_answer" (default) or "extract" to grade it.
    truncated: str = "no_answer"
    timeout: float = 5.0  # CPU seconds per check (tasks/math/pool.py)
    # An undecided check is tried once more with this many times the limit before it
    # counts as a timeout (scored wrong, flagged): a correct answer that is slow to
    # verify is not wrong because the machine was busy.
    retry_factor: float = 4.0
    answer_regex: re.Pattern | None = None
    redact: bool = False
    salt: bytes = b""
    workers: int = 2
    memory_mb: int = 2048
    program_runner: ProgramRunner | None = None


@dataclass(frozen=True)
class Gold:
    """What the scorer knows of a problem and the records may not show."""

    answer: str
    verifier: Verifier | None = None
    metadata: dict[str, Any] | None = None


def _rule(rules: list[str]) -> str:
    for name in ("numeric", "symbolic", "equation"):
        if name in rules:
            return name
    return "exact"


class MathScorer:
    """``await scorer(sample, completion)``; gold answers looked up by sample id."""

    def __init__(self, options: Options, verifier: Verifier | None = None,
                 pool: VerifierPool | None = None):
        self.options = options
        self.verifier = verifier
        self.golds: dict[str, Gold] = {}
        self._pool = pool
        self._nodes: dict[str, Node] = {}
        self._gold_canon: dict[str, str] = {}

    @property
    def pool(self) -> VerifierPool:
        if self._pool is None:
            self._pool = shared_pool(self.options.workers, self.options.memory_mb)
        return self._pool

    # ---------------------------------------------------------------- helpers

    def hide(self, text: str) -> str:
        """What a record may show of an answer: itself, a digest if long, an HMAC if redacted."""
        if self.options.redact:
            return "h:" + hmac.new(self.options.salt, text.encode("utf-8"),
                                   hashlib.sha256).hexdigest()[:16]
        if len(text) > _LONG:
            return f"{text[:40]}...#{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}"
        return text

    def _gold_node(self, gold: str) -> Node:
        node = self._nodes.get(gold)
        if node is None:
            node = self._nodes[gold] = parse(normalize(gold))
        return node

    def _score(self, value: float, answer: str | None, found: Extracted, gold: str,
               rule: str, status: str = "ok", note: str = "", **meta: Any) -> Score:
        metadata: dict[str, Any] = {"rule": rule, "extracted_by": found.rule,
                                    "where": found.where, **meta}
        verdict = {1.0: "equal", 0.0: "different"}.get(value, f"score {value:g}")
        if status != "ok":
            verdict = status
        if self.options.redact:
            explanation = f"{found.rule}: {verdict} ({rule}){'; ' + note if note else ''}"
        else:
            metadata["extracted"] = found.text
            explanation = (f"{found.rule}: {found.text[:200]!r} vs gold {gold[:200]!r}: "
                           f"{verdict} ({rule}){'; ' + note if note else ''}")
        return Score(value, None if answer is None else self.hide(answer), explanation,
                     status, metadata)

    async def _gold_canonical(self, gold: str) -> str:
        """The gold's canonical form (cheap, or one worker job per gold), cached."""
        if gold in self._gold_canon:
            return self._gold_canon[gold]
        node = self._gold_node(gold)
        text = canon(node, CheapLeaves(self.options.rtol), "gold")
        if text is None:
            out = await self.pool.run({"op": "canon", "text": gold, "role": "gold"},
                                      self.options.timeout)
            text = out.result if out.status == "ok" and isinstance(out.result, str) \
                else normalize(gold)
        return self._gold_canon.setdefault(gold, text)

    # ---------------------------------------------------------------- scoring

    async def __call__(self, sample: Sample, completion: str) -> Score:
        known = self.golds.get(sample.id)
        gold = known if known is not None else Gold(str(sample.target))
        found = extract_answer(completion, self.options.answer_regex)
        if found is None:
            note = "" if self.options.redact else f"; gold is {gold.answer[:200]!r}"
            return Score(0.0, None, f"no marked answer (\\boxed{{}}, Answer:){note}",
                         "no_answer")
        if found.where == "unclosed_reasoning" and self.options.truncated == "no_answer":
            note = "" if self.options.redact else f" ({found.text[:100]!r})"
            return Score(0.0, None, f"no answer: one only inside unfinished reasoning{note} "
                         "(output cut while thinking)", "no_answer",
                         {"where": found.where, "extracted_by": found.rule})
        verifier = gold.verifier or self.verifier
        if verifier is not None:
            return await self._custom(verifier, sample, gold, found)
        return await self.check(gold.answer, found)

    async def check(self, gold: str, found: Extracted) -> Score:
        """Built-in equivalence: in-process when the cheap rules decide, else a worker."""
        # The texts as the decimal-comma policy reads them; the record shows them as written.
        gold_text, cand_text = decimal_commas(gold, found.text, self.options.decimal_comma)
        gold_unit, unit = unit_of(gold_text), unit_of(cand_text)
        if gold_unit and unit and gold_unit != unit:  # 5 m is not 5 cm; a bare 5 may be
            return self._score(0.0, normalize(cand_text), found, gold, "units",
                               note=f"{unit} is not {gold_unit}")
        leaves = CheapLeaves(self.options.rtol)
        c_node = parse(normalize(cand_text))
        verdict = compare(self._gold_node(gold_text), c_node, leaves)
        if verdict:
            return self._score(1.0, await self._gold_canonical(gold_text), found, gold,
                               _rule(leaves.rules))
        if verdict is False:
            text = canon(c_node, CheapLeaves(self.options.rtol), "candidate")
            if text is not None:
                return self._score(0.0, text, found, gold, "different")
        out = await self._in_pool({"op": "compare", "gold": gold_text, "cand": cand_text,
                                   "rtol": self.options.rtol})
        fallback = normalize(cand_text)
        if out.status == "timeout":
            return self._score(0.0, fallback, found, gold, "timeout", "timeout", out.detail,
                               check_s=round(out.elapsed, 3))
        if out.status != "ok":  # the grader's own failure: unscored, retried on resume
            return self._score(0.0, fallback, found, gold, "error", "verifier_error", out.detail)
        result = out.result
        if result["equal"]:
            if result.get("gold_canon"):
                self._gold_canon.setdefault(gold_text, result["gold_canon"])
            return self._score(1.0, await self._gold_canonical(gold_text), found, gold,
                               result["rule"], check_s=round(out.elapsed, 3))
        note = "; ".join(result.get("errors") or []) if not self.options.redact else ""
        # A side the parser could not read: "different" rests on that, so it is flagged
        # (scored 0, counted as a parse failure, listed by evals audit) for a person to
        # check, and a later parser can settle it with evals rescore.
        status = "parse_error" if result.get("errors") else "ok"
        return self._score(0.0, result.get("cand_canon") or fallback, found, gold,
                           "different", status, note=note, check_s=round(out.elapsed, 3))

    async def _in_pool(self, job: dict[str, Any]):
        """A pool check; undecided at the limit, once more at ``retry_factor`` times it."""
        out = await self.pool.run(job, self.options.timeout)
        if out.status == "timeout" and not out.resource and self.options.retry_factor > 1:
            limit = self.options.timeout * self.options.retry_factor
            out = await self.pool.run(job, limit)
            if out.status == "timeout":
                out.detail = f"undecided at {self.options.timeout:g}s and again at " \
                             f"{limit:g}s of CPU ({out.detail})"
        return out

    async def _custom(self, verifier: Verifier, sample: Sample, gold: Gold,
                      found: Extracted) -> Score:
        if isinstance(verifier, PythonVerifier):
            meta = {"id": sample.id, **(gold.metadata or {})}
            out = await self._in_pool({"op": "call", "spec": verifier.spec, "answer": found.text,
                                       "target": gold.answer, "sample": meta})
            status, verdict = out.status, (out.result if out.status == "ok" else out.detail)
            rule = "custom"
        else:
            assert isinstance(verifier, ProgramVerifier) and self.options.program_runner
            loop = asyncio.get_running_loop()
            status, verdict = "timeout", None
            limits = [self.options.timeout]
            if self.options.retry_factor > 1:
                limits.append(self.options.timeout * self.options.retry_factor)
            for limit in limits:  # a program's limit is wall time (it runs in a container)
                status, verdict = await loop.run_in_executor(
                    None, run_program, verifier, self.options.program_runner, found.text,
                    gold.answer, sample.id, limit)
                if status != "timeout":
                    break
            rule = "program"
        fallback = normalize(found.text)
        if status != "ok" or not isinstance(verdict, dict):
            word = "timeout" if status == "timeout" else "verifier_error"
            return self._score(0.0, fallback, found, gold.answer, rule, word, str(verdict))
        return self._score(float(verdict["value"]), verdict.get("answer") or fallback, found,
                           gold.answer, rule,
                           note="" if self.options.redact else verdict.get("explanation", ""))
