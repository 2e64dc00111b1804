"""Custom verifiers: a Python function, or a program that reads the answer.

A verifier spec is a string, given per task (``-T verifier=SPEC``) or per
problem (the row's ``verifier`` field):

* ``module:function`` or ``path/to/file.py:function``: called as
  ``function(answer, target, sample)`` with the extracted answer, the gold
  answer and the problem's metadata (a dict). It returns a bool, a number in
  [0, 1], or a dict ``{"value", "answer", "explanation"}`` (``answer`` is
  what votes count; default: the normalised extracted answer). It runs in a
  verifier worker process under the task's ``timeout``.
* ``run:COMMAND ARGS...``: a program (split like a shell would, never run
  through one). It gets the extracted answer on stdin and ``EVALS_TARGET``,
  ``EVALS_SAMPLE_ID`` in its environment, and prints its verdict as the
  first line of stdout: ``1``/``0``, ``true``/``false``, ``correct``/
  ``incorrect``, a number in [0, 1], or a JSON object as above; a nonzero
  exit status is a verifier error. It runs through a *program runner*
  (``sandbox.programs.PROGRAM_RUNNERS``): ``local`` (a subprocess in its own
  process group, killed with the group at the deadline) by default, and
  ``docker`` (a container with no network, as a non-root user, under the
  sandbox limits) with ``-T program_runner=docker``; others register with
  :func:`register_program_runner` or the ``evals.program_runners`` entry points.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from evals.registry import import_path
from evals.task import TaskError
from sandbox.programs import PROGRAM_RUNNERS, ProgramResult, ProgramRunner

__all__ = ["ProgramResult", "ProgramRunner", "PROGRAM_RUNNERS", "register_program_runner",
           "program_runner", "parse_spec", "load_function", "run_program", "interpret"]


@dataclass(frozen=True)
class PythonVerifier:
    spec: str  # "module:function" or "file.py:function"


@dataclass(frozen=True)
class ProgramVerifier:
    argv: tuple[str, ...]


Verifier = PythonVerifier | ProgramVerifier


def parse_spec(spec: str, where: str = "-T verifier") -> Verifier:
    """A spec string as a verifier; TaskError (naming ``where``) if malformed."""
    text = spec.strip()
    if text.startswith("run:"):
        try:
            argv = tuple(shlex.split(text[4:]))
        except ValueError as e:
            raise TaskError(f"{where}: cannot split {text!r}: {e}") from None
        if not argv:
            raise TaskError(f"{where}: 'run:' needs a command")
        return ProgramVerifier(argv)
    module, sep, func = text.rpartition(":")
    if not sep or not module or not func.isidentifier():
        raise TaskError(f"{where}: {spec!r} is not 'module:function', 'file.py:function' "
                        f"or 'run:COMMAND'")
    return PythonVerifier(text)


# ------------------------------------------------------------------ Python functions

_LOADED: dict[str, Callable[..., Any]] = {}


def load_function(spec: str) -> Callable[..., Any]:
    """Import ``module:function`` / ``file.py:function`` (cached per process)."""
    if spec in _LOADED:
        return _LOADED[spec]
    target, _, name = spec.rpartition(":")
    try:
        if target.endswith(".py") or os.sep in target or "/" in target:
            path = Path(target).expanduser().resolve()
            if not path.is_file():
                raise TaskError(f"verifier {spec!r}: no such file {path}")
            module = import_path(path, prefix="evals_math_verifier")
        else:
            module = importlib.import_module(target)
    except TaskError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's module: say which and why
        raise TaskError(f"verifier {spec!r}: cannot import {target!r}: "
                        f"{type(e).__name__}: {e}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise TaskError(f"verifier {spec!r}: {target!r} has no function {name!r}")
    _LOADED[spec] = fn
    return fn


def interpret(result: Any) -> dict[str, Any]:
    """A verifier's return value (or printed verdict) as
    ``{"value": float, "answer": str | None, "explanation": str}``."""
    if isinstance(result, dict):
        value = result.get("value", result.get("score"))
        out = interpret(value)
        out["answer"] = None if result.get("answer") is None else str(result["answer"])
        out["explanation"] = str(result.get("explanation", ""))
        return out
    if isinstance(result, bool):
        return {"value": float(result), "answer": None, "explanation": ""}
    if isinstance(result, (int, float)) and 0 <= float(result) <= 1:
        return {"value": float(result), "answer": None, "explanation": ""}
    raise ValueError(f"a verifier must return a bool, a number in [0, 1] or a dict "
                     f"with 'value'; got {result!r}"[:300])


def call_python(spec: str, answer: str, target: str, sample: dict[str, Any]) -> dict[str, Any]:
    """Run a Python verifier (inside a worker process); the interpreted result."""
    return interpret(load_function(spec)(answer, target, sample))


# ------------------------------------------------------------------ programs

_WORDS = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0,
          "correct": 1.0, "incorrect": 0.0, "pass": 1.0, "fail": 0.0}


def register_program_runner(name: str, runner: ProgramRunner) -> None:
    """Add a program runner in code (packages use the evals.program_runners entry points)."""
    PROGRAM_RUNNERS.register(name, runner)


def program_runner(name: str) -> ProgramRunner:
    if name not in PROGRAM_RUNNERS:
        raise TaskError(f"math: -T program_runner: {PROGRAM_RUNNERS.unknown(name)}")
    return PROGRAM_RUNNERS.get(name)


def parse_verdict(stdout: str) -> dict[str, Any]:
    """The first line of a program's stdout as a verdict (see the module docstring)."""
    text = stdout.strip()
    if text.startswith("{"):
        return interpret(json.loads(text))
    first, _, rest = text.partition("\n")
    word, _, note = first.strip().partition(" ")
    key = word.strip().lower()
    if key in _WORDS:
        value = _WORDS[key]
    else:
        value = float(key)  # ValueError: not a verdict
    out = interpret(value)
    out["explanation"] = (note + "\n" + rest).strip()[:500]
    return out


def run_program(verifier: ProgramVerifier, runner: ProgramRunner, answer: str, target: str,
                sample_id: str, timeout: float) -> tuple[str, dict[str, Any] | str]:
    """``("ok", verdict)``, ``("timeout", why)`` or ``("error", why)``."""
    result = runner(list(verifier.argv), answer,
                    {"EVALS_TARGET": target, "EVALS_SAMPLE_ID": sample_id}, timeout)
    if result.returncode is None:
        return "timeout", f"verifier program gave no verdict within {timeout:g}s"
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or [""]
        return "error", f"verifier program exited with {result.returncode}: {tail[0][:200]}"
    try:
        return "ok", parse_verdict(result.stdout)
    except (ValueError, json.JSONDecodeError):
        return "error", f"verifier program printed no verdict: {result.stdout.strip()[:100]!r}"
