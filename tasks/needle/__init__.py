"""Needle in a haystack, with RULER's variants, at exact token lengths up to 1M and beyond.

``evals run needle -T lengths=1k,4k,16k,64k,128k -T depths=0,10,...,100`` hides
needles (random keys and values, fresh per sample and seed) in a haystack at
each (length, depth) cell and asks for them back. docs/needle.md describes
parameters, variants, scoring and the effective-length readout.

Samples are light: they carry the cell's parameters and the hidden facts in
``metadata``; ``prompt`` builds the long text only when the orchestrator is
about to send the sample, so a large grid never holds its prompts in memory.
Importing this package loads no tokenizer library and no plotting library.
"""

from __future__ import annotations

import random
import re
from typing import Any, Sequence

from evals.task import Breakdown, Sample, Task, TaskError, task

from .analysis import (BASE_LENGTH, NOLIMA_FRACTION, RULER_THRESHOLD, Cell, Effective,
                       LengthScore, cell_scores, effective, effective_length, format_length,
                       length_scores)
from .build import LengthError, build_messages
from .haystack import check_source
from .heatmap import heatmap
from .scoring import score
from .tokens import FALLBACK, load_counter, resolve_spec
from .variants import VARIANTS, make_content, needle_count, normalize_variant, render

__all__ = ["needle", "make_samples", "parse_lengths", "parse_depths", "score", "heatmap",
           "cell_scores", "length_scores", "effective_length", "effective", "Cell",
           "LengthScore", "Effective", "RULER_THRESHOLD", "NOLIMA_FRACTION", "BASE_LENGTH",
           "FALLBACK", "VARIANTS", "LengthError", "format_length"]

MIN_LENGTH = 128
MAX_LENGTH = 16 * 1024 * 1024
_LENGTH = re.compile(r"^(\d+(?:\.\d+)?)([km]?)$")


def parse_lengths(spec: str | Sequence[Any]) -> list[int]:
    """``"1k,4k,128k,1m"`` -> token counts; k = 1024 and m = 1024², as RULER's 4K = 4096."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[int] = []
    for item in items:
        text = str(item).strip().lower().replace("_", "")
        if not text:
            continue
        m = _LENGTH.match(text)
        if not m:
            raise TaskError(f"needle: length {item!r} is not a number with an optional k or m")
        value = round(float(m.group(1)) * {"": 1, "k": 1024, "m": 1024 ** 2}[m.group(2)])
        if not MIN_LENGTH <= value <= MAX_LENGTH:
            raise TaskError(f"needle: length {item!r} must be between {MIN_LENGTH} and "
                            f"{MAX_LENGTH} tokens")
        out.append(value)
    if not out:
        raise TaskError("needle: no lengths given")
    return sorted(set(out))


def parse_depths(spec: str | Sequence[Any]) -> list[float]:
    """``"0,10,...,100"`` -> percents; ``...`` continues the step of the two values before it."""
    items = [str(x).strip() for x in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [x for x in items if x]
    out: list[float] = []
    try:
        for i, item in enumerate(items):
            if item in ("...", "…"):
                if len(out) < 2 or i + 1 >= len(items):
                    raise TaskError("needle: '...' needs two depths before it and one after")
                step, stop = out[-1] - out[-2], float(items[i + 1])
                if step <= 0:
                    raise TaskError("needle: depths before '...' must increase")
                while out[-1] + step < stop - 1e-9:  # stop itself comes next
                    out.append(round(out[-1] + step, 6))
                continue
            out.append(float(item))
    except ValueError:
        raise TaskError(f"needle: depths {spec!r} must be numbers (percent)") from None
    if not out or any(not 0.0 <= d <= 100.0 for d in out):
        raise TaskError(f"needle: depths {spec!r} must be percents between 0 and 100")
    return sorted(set(out))


def _depth_label(depth: float) -> str:
    return f"{depth:g}"


def make_samples(lengths: Sequence[int], depths: Sequence[float], variants: Sequence[str],
                 needles: int, repeats: int, seed: int, haystack: str,
                 tokenizer: str) -> list[Sample]:
    """The grid's samples, repeat-major (``--limit`` then covers every cell once first).

    Only the hidden facts are drawn here (from ``Random(f"needle:{seed}:{id}")``);
    no text is built. ``tokenizer`` is recorded, so results say what length meant.
    """
    samples = []
    for rep in range(repeats):
        for variant in variants:
            n = needle_count(variant, needles)
            for length in lengths:
                for depth in ([None] if variant == "cwe" else depths):
                    where = "" if depth is None else f"-d{_depth_label(depth)}"
                    sid = f"{variant}-{length}{where}-r{rep}"
                    content, target, solution = make_content(
                        variant, n, random.Random(f"needle:{seed}:{sid}"))
                    meta = {"variant": variant, "length": length, "depth": depth,
                            "repeat": rep, "seed": seed, "haystack": haystack,
                            "tokenizer": tokenizer, **content}
                    at = "" if depth is None else f" at {depth:g}% depth"
                    samples.append(Sample(
                        id=sid, input=f"needle {variant}: {length} tokens{at} (built when sent)",
                        target=target, metadata=meta, solution=solution))
    return samples


def _check_room(samples: list[Sample], counter: Any) -> None:
    """Fail before the run when the shortest length cannot hold template and needles."""
    from .variants import needle_sentences

    seen: set[str] = set()
    for s in samples:
        v = s.metadata["variant"]
        if v in seen:
            continue
        seen.add(v)
        fixed = counter.count_messages(render(s.metadata, ""))
        if v == "cwe":  # room for each common word at least twice among rarer ones
            fixed += 48 * len(s.metadata["words"])
        else:
            fixed += counter.count(" ".join(needle_sentences(s.metadata)))
        shortest = min(x.metadata["length"] for x in samples if x.metadata["variant"] == v)
        if shortest < fixed + 32:
            raise TaskError(f"needle: length {shortest} is too short for variant {v}: "
                            f"its template and needles need about {fixed} tokens")


@task
def needle(lengths: str = "1k,4k,16k,64k,128k", depths: str = "0,10,...,100",
           variant: str = "single", needles: int = 0, haystack: str = "essays",
           tokenizer: str = "auto", model: str = "", repeats: int = 1, seed: int = 0,
           effective_mode: str = "absolute", effective_threshold: float = 0.0) -> Task:
    """Needle in a haystack (RULER variants) at exact token lengths; heatmap, effective length."""
    grid_lengths = parse_lengths(lengths)
    grid_depths = parse_depths(depths)
    names = variant.split(",") if isinstance(variant, str) else list(variant)
    variants = list(dict.fromkeys(normalize_variant(v) for v in names if v.strip()))
    if not variants:
        raise TaskError("needle: no variant given")
    for v in variants:
        needle_count(v, needles)
    if repeats < 1:
        raise TaskError("needle: repeats must be at least 1")
    check_source(haystack)
    if effective_mode not in ("absolute", "relative"):
        raise TaskError("needle: effective_mode must be 'absolute' (RULER) or 'relative' (NoLiMa)")
    spec, inferred = resolve_spec(tokenizer, model or None)
    state: dict[str, Any] = {}

    def counter() -> Any:
        if "counter" not in state:  # loaded once, on first need, not at import or build
            state["counter"] = load_counter(spec, inferred)
        return state["counter"]

    def dataset() -> list[Sample]:
        tok = counter()  # a tokenizer that cannot load fails the run before any request
        samples = make_samples(grid_lengths, grid_depths, variants, needles, repeats, seed,
                               haystack, tok.name)
        _check_room(samples, tok)
        return samples

    def prompt(sample: Sample) -> list[dict[str, str]]:
        return build_messages(sample, counter(), grid_lengths[-1])

    def summary(records: list[dict[str, Any]]) -> dict[str, float | None]:
        # threshold 0 means the mode's published default (RULER 85.6%, NoLiMa 85% of base)
        found = effective(records, effective_threshold or None, effective_mode)
        return {"effective_length": found.length, "effective_threshold": found.threshold}

    return Task(dataset=dataset, scorer=score, prompt=prompt, summary=summary,
                breakdowns=(Breakdown("grid", ("length", "depth"), ("context length", "depth"),
                                      "variant", ("tokens", "percent")),))
