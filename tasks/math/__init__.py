"""Math: free-form answers checked for mathematical equivalence.

``evals run math -T path=FILE|DIR`` reads private problems (JSONL, JSON,
CSV/TSV, parquet; fields ``id``, ``problem``, ``answer``, optional
``solution``, ``verifier`` and any metadata); ``-T dataset=ID`` a hub
dataset (e.g. ``HuggingFaceH4/MATH-500``); ``-T path=sample`` the bundled
problems. docs/math.md describes the parameters, the extraction order, the
equivalence rules, timeouts, custom verifiers and redaction.

Importing this package is cheap: sympy and the LaTeX parser load only in
the verifier worker processes, ``datasets``/``pandas`` only when a hub
dataset or a parquet file is read.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
from pathlib import Path
from typing import Any

from evals.task import Sample, Task, TaskError, task

from .answer import Extracted, extract_answer
from .data import Problem, parse_fields, read_hub, read_path
from .normalize import DECIMAL_COMMA_POLICIES, normalize
from .pool import VerifierPool, shared_pool
from .scoring import Gold, MathScorer, Options
from .verifiers import (ProgramVerifier, PythonVerifier, load_function, parse_spec,
                        register_program_runner)
from .verifiers import program_runner as get_program_runner

__all__ = ["math", "MathScorer", "Options", "Gold", "extract_answer", "Extracted", "normalize",
           "VerifierPool", "shared_pool", "register_program_runner", "DEFAULT_TEMPLATE"]

DEFAULT_TEMPLATE = ("{problem}\n\nPlease reason step by step, and put your final answer "
                    "within \\boxed{}.")
_REDACT_KEEP_CHARS = 100  # redact: metadata strings longer than this are dropped


def redact_key() -> bytes:
    """The HMAC key for redacted answers: ``EVALS_MATH_REDACT_KEY``, else a
    random key kept in the evals cache directory (mode 0600). It is stable
    across runs on this machine, so a resumed run's hashes (and votes)
    match its first session's, and it is never written to the records."""
    env = os.environ.get("EVALS_MATH_REDACT_KEY")
    if env:
        return env.encode("utf-8")
    directory = Path(os.environ.get("EVALS_CACHE_DIR") or "~/.cache/evals").expanduser()
    path = directory / "math_redact.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key


def _solution(problem: Problem) -> str:
    """What the gold runner answers: the row's solution if it marks an answer."""
    if problem.solution and extract_answer(problem.solution) is not None:
        return problem.solution
    lead = (problem.solution.strip() + "\n\n") if problem.solution else ""
    return f"{lead}Final answer: \\boxed{{{problem.answer}}}"


def _verifier(spec: str | None, where: str) -> PythonVerifier | ProgramVerifier | None:
    if not spec:
        return None
    verifier = parse_spec(spec, where)
    if isinstance(verifier, PythonVerifier):
        try:
            load_function(verifier.spec)  # fail now, naming the row, not at the first score
        except TaskError as e:
            raise TaskError(f"{where}: {e}") from None
    return verifier


def make_samples(problems: list[Problem], scorer: MathScorer, template: str,
                 redact: bool, row_verifiers: bool, source: str) -> list[Sample]:
    samples = []
    for p in problems:
        row_verifier = _verifier(p.verifier, f"{p.where}: verifier") if row_verifiers else None
        scorer.golds[p.id] = Gold(p.answer, row_verifier, p.metadata)
        metadata: dict[str, Any] = dict(p.metadata)
        if redact:
            target: Any = scorer.hide(p.answer)
            metadata = {k: v for k, v in metadata.items()
                        if not isinstance(v, (str, list, dict)) or
                        (isinstance(v, str) and len(v) <= _REDACT_KEEP_CHARS)}
        else:
            target = p.answer
        metadata["source"] = source
        samples.append(Sample(id=p.id, input=template.replace("{problem}", p.problem),
                              target=target, metadata=metadata, solution=_solution(p)))
    return samples


def _program_runner(name: str, engines: str | None):
    """``-T program_runner=``; ``docker`` places its containers on the engines named
    (``--engine``, ``-T engines=``, ``EVALS_ENGINES``), which other runners ignore."""
    runner = get_program_runner(name)
    if name != "docker":
        return runner
    from sandbox.engine import SandboxError
    from sandbox.programs import on_engines

    try:
        return on_engines(engines)
    except SandboxError as e:
        raise TaskError(f"math: {e}") from None


@task(resources={"engines": "engines"})
def math(path: str | None = None, dataset: str | None = None, subset: str | None = None,
         split: str = "test", fields: str = "", template: str | None = None,
         answer_regex: str | None = None, rtol: float = 1e-6, decimal_comma: str = "auto",
         timeout: float = 5.0,
         workers: int = 2, verifier: str | None = None, row_verifiers: bool = True,
         program_runner: str = "local", redact: bool = False,
         memory_mb: int = 2048, retry_factor: float = 4.0, truncated: str = "no_answer",
         engines: str | None = None) -> Task:
    """Free-form math answers checked for equivalence (path=FILE|DIR|sample, or dataset=HUB_ID)."""
    if bool(path) == bool(dataset):
        raise TaskError("math: pass exactly one of -T path=FILE|DIR|sample or -T dataset=HUB_ID "
                        "(e.g. HuggingFaceH4/MATH-500)")
    if rtol < 0 or timeout <= 0 or workers < 1 or retry_factor < 1:
        raise TaskError("math: rtol must be >= 0, timeout > 0, workers >= 1 and "
                        "retry_factor >= 1")
    if truncated not in ("no_answer", "extract"):
        raise TaskError(f"math: -T truncated={truncated!r}: use no_answer or extract")
    if decimal_comma not in DECIMAL_COMMA_POLICIES:
        raise TaskError(f"math: -T decimal_comma={decimal_comma!r}: use one of "
                        f"{', '.join(DECIMAL_COMMA_POLICIES)} (docs/math.md, Decimal commas)")
    mapping = parse_fields(fields)
    prompt = template if template is not None else DEFAULT_TEMPLATE
    if "{problem}" not in prompt:
        raise TaskError("math: -T template=... must contain {problem}")
    try:
        pattern = re.compile(answer_regex, re.S) if answer_regex else None
    except re.error as e:
        raise TaskError(f"math: -T answer_regex={answer_regex!r} is not a valid regex: {e}") \
            from None
    task_verifier = _verifier(verifier, "math: -T verifier")
    if task_verifier is None:
        missing = [m for m in ("sympy", "latex2sympy2_extended")
                   if importlib.util.find_spec(m) is None]
        if missing:
            raise TaskError(f"math: symbolic checks need {' and '.join(missing)}: "
                            f"pip install sympy latex2sympy2_extended")
    options = Options(rtol=rtol, decimal_comma=decimal_comma, timeout=timeout,
                      retry_factor=retry_factor, truncated=truncated,
                      answer_regex=pattern, redact=redact,
                      salt=redact_key() if redact else b"", workers=workers, memory_mb=memory_mb,
                      program_runner=_program_runner(program_runner, engines))
    scorer = MathScorer(options, task_verifier)

    def load() -> list[Sample]:
        if path:
            problems, source = read_path(path, mapping), path
        else:
            problems = read_hub(dataset or "", subset, split, mapping)
            source = f"hub:{dataset}"
        return make_samples(problems, scorer, prompt, redact, row_verifiers, source)

    return Task(dataset=load, scorer=scorer, redact=redact)
