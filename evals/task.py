"""Task plugin API: Sample, Score, Task and the ``@task`` registry.

A task is a function decorated with ``@task`` that returns a :class:`Task`.
Its keyword parameters (with defaults) are the task's ``-T key=value``
parameters. Built-in tasks and private ones register the same way; private
ones are found through ``--tasks-dir``, ``EVALS_TASKS_PATH`` or the
``evals.tasks`` entry-point group (see :mod:`evals.plugins`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Union

from evals.registry import Registry

Message = dict[str, str]  # {"role": ..., "content": ...}


@dataclass
class Sample:
    """One problem. ``input`` is a prompt string or a list of chat messages."""

    id: str
    input: str | list[Message]
    target: Any = None
    # Copied into every record, except keys starting with "_" (large or secret
    # fields the scorer needs but results should not repeat).
    metadata: dict[str, Any] = field(default_factory=dict)
    # What the gold runner answers with; defaults to str(target).
    solution: str | None = None


@dataclass
class Score:
    """A scorer's verdict on one completion.

    ``answer`` is the extracted, normalised answer: it is what votes count
    (maj@k), so two completions with equal answers must give equal strings.
    ``status`` is ``ok``, ``no_answer`` (nothing extractable), ``timeout``
    (a verifier ran out of time) or a task-specific word.
    """

    value: float
    answer: str | None = None
    explanation: str = ""
    status: str = "ok"
    metadata: dict[str, Any] = field(default_factory=dict)


ScoreResult = Union[Score, Awaitable[Score]]
# scorer(sample, completion_text) -> Score (sync or async)
Scorer = Callable[[Sample, str], ScoreResult]
PromptFn = Callable[[Sample], list[Message]]
# ranker(sample, completion_text) -> float (higher = more likely right), sync or async:
# a verifier's confidence or a reward model's score; it orders completions for best@k.
Ranker = Callable[[Sample, str], Union[float, None, Awaitable[float | None]]]


def chat_prompt(sample: Sample, system: str | None = None) -> list[Message]:
    """Default prompt: the sample's messages, or its string as one user turn."""
    messages = list(sample.input) if isinstance(sample.input, list) else [
        {"role": "user", "content": sample.input}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


@dataclass
class Task:
    """What a ``@task`` function returns.

    ``dataset`` may be any iterable of samples, or a zero-argument callable
    returning one (called lazily, so ``evals list`` never loads data).
    """

    dataset: Iterable[Sample] | Callable[[], Iterable[Sample]]
    scorer: Scorer
    prompt: PromptFn = chat_prompt
    # Fields a run may not override per task (e.g. stop sequences); merged
    # into each request. Compute settings come from the run, not the task.
    stop: list[str] | None = None
    ranker: Ranker | None = None
    # check(sample) -> warnings that `evals validate` prints (e.g. an unsound instance)
    check: Callable[[Sample], list[str]] | None = None
    # summary(records of one model and setting) -> {name: value}: task-level figures
    # (e.g. an effective context length) shown as extra rows in show and leaderboard
    summary: Callable[[list[dict[str, Any]]], dict[str, float | None]] | None = None
    # Private data: records keep no completion or reasoning text (only its length),
    # since a model's text restates the problem and the answer. Such runs cannot be rescored.
    redact: bool = False
    # solver(sample, generate, request) -> Solution: for tasks solved over many model
    # turns (an agent). ``generate(request) -> Response`` is the run's own model call
    # (cache, retries, this generation's seed); the Solution's text is what the scorer
    # grades, its trajectory is kept beside the records.
    solver: Callable[..., Awaitable["Solution"]] | None = None
    # how the report breaks this task's scores down (by sample metadata)
    breakdowns: tuple[Breakdown, ...] = ()
    name: str = ""
    description: str = ""

    def samples(self) -> Iterable[Sample]:
        return self.dataset() if callable(self.dataset) else self.dataset


@dataclass(frozen=True)
class Breakdown:
    """How a task's scores break down in the report, by sample metadata it declares.

    ``tree``: a category and, optionally, its sub-category (``keys=("domain",
    "subdomain")``): one table row each. ``grid``: columns by rows (``keys=("length",
    "depth")``), one grid per value of ``split`` (``"variant"``). ``labels`` name the
    keys on the page; ``formats`` say how values read: ``text``, ``tokens`` (4096 as
    4k) or ``percent`` (50 as 50%). The run stores the declaration in run.json, so a
    report reads it without the task.
    """

    kind: str
    keys: tuple[str, ...]
    labels: tuple[str, ...] = ()
    split: str | None = None
    formats: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "keys": list(self.keys), "labels": list(self.labels),
                "split": self.split, "formats": list(self.formats)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Breakdown":
        return cls(data["kind"], tuple(data["keys"]), tuple(data.get("labels") or ()),
                   data.get("split"), tuple(data.get("formats") or ()))

    @property
    def fields(self) -> tuple[str, ...]:
        """Every metadata key it reads."""
        return self.keys + ((self.split,) if self.split else ())


# What runs written before tasks declared their breakdowns were broken down by (the
# report reads them as it always did): GPQA-like domains, needle cells.
LEGACY_BREAKDOWNS = (
    Breakdown("tree", ("domain", "subdomain"), ("domain", "subdomain")),
    Breakdown("grid", ("length", "depth"), ("context length", "depth"), "variant",
              ("tokens", "percent")),
)


@dataclass
class Solution:
    """What a solver ends with: the text to grade, why it stopped, and every step."""

    text: str
    stop: str = ""  # "submitted", "max_steps", ... (the record's finish_reason)
    trajectory: dict[str, Any] | None = None


@dataclass(frozen=True)
class TaskParam:
    name: str
    default: Any
    annotation: Any
    required: bool


@dataclass
class TaskSpec:
    """A registered task function and what ``evals list`` shows of it."""

    name: str
    fn: Callable[..., Task]
    description: str
    source: str  # "builtin", a file path or an entry point
    # What the task uses that the run shares out, each with the parameter that takes the
    # run's amount: {"containers": "sandboxes"} gets --sandboxes as -T sandboxes, and
    # {"engines": "engines"} the --engine list (comma-joined) as -T engines.
    resources: dict[str, str] = field(default_factory=dict)

    @property
    def params(self) -> list[TaskParam]:
        out = []
        for p in inspect.signature(self.fn).parameters.values():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            required = p.default is inspect.Parameter.empty
            out.append(TaskParam(p.name, None if required else p.default,
                                 p.annotation, required))
        return out

    def build(self, params: dict[str, str | Any]) -> Task:
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise TaskError(
                f"task {self.name!r} has no parameter {unknown[0]!r}; "
                f"it takes: {', '.join(known) or 'no parameters'}")
        missing = [p.name for p in known.values() if p.required and p.name not in params]
        if missing:
            raise TaskError(f"task {self.name!r} needs -T {missing[0]}=...")
        kwargs = {k: coerce_param(self.name, known[k], v) for k, v in params.items()}
        try:
            built = self.fn(**kwargs)
        except TaskError:
            raise
        except Exception as e:  # a plugin's own failure, named as such
            raise TaskError(f"task {self.name!r} failed to build: {type(e).__name__}: {e}") from e
        if not isinstance(built, Task):
            raise TaskError(f"task function {self.name!r} returned "
                            f"{type(built).__name__}, not evals.Task")
        built.name = self.name
        built.description = built.description or self.description
        return built


class TaskError(ValueError):
    """Bad task name, parameter or data; the CLI prints it as one line."""


TASKS: Registry[TaskSpec] = Registry("task", "evals.tasks", modules=("tasks",), error=TaskError,
                                     describe=lambda spec: spec.description)


def task(fn: Callable[..., Task] | None = None, *, name: str | None = None,
         description: str | None = None, resources: dict[str, str] | None = None):
    """Register a task function: ``@task`` or ``@task(name="x")``.

    ``resources`` maps what the task uses at once (``containers``) to the parameter
    that sets how many: the run's ``--sandboxes`` reaches it there (and ``engines``, the
    Docker engines they run on, gets ``--engine``).
    """

    def register(f: Callable[..., Task]) -> Callable[..., Task]:
        task_name = name or f.__name__
        doc = description or (inspect.getdoc(f) or "").strip().split("\n")[0]
        TASKS.register(task_name, TaskSpec(task_name, f, doc, TASKS.loading,
                                           dict(resources or {})))
        return f

    return register(fn) if fn is not None else register


def registry() -> dict[str, TaskSpec]:
    """The tasks registered so far, by name (``evals.plugins.load_tasks`` finds them all)."""
    return TASKS.registered()


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_bool(value: Any) -> bool:
    """A flag's value: a bool, or one of TRUE_WORDS / FALSE_WORDS (any case); else ValueError."""
    if isinstance(value, bool):
        return value
    low = str(value).strip().lower()
    if low in TRUE_WORDS:
        return True
    if low in FALSE_WORDS:
        return False
    raise ValueError(value)


def is_true(value: Any) -> bool:
    """Lenient: True for True and TRUE_WORDS, False for anything else (an unset variable)."""
    return value is True or str(value).strip().lower() in TRUE_WORDS


def coerce_param(task_name: str, param: TaskParam, value: Any) -> Any:
    """Turn a ``-T`` string into the type the parameter's annotation or default names."""
    if not isinstance(value, str):
        return value
    kind = param.annotation
    if isinstance(kind, str):  # postponed annotations: "int", "bool | None", ...
        kind = kind.replace(" ", "").split("|")[0]
    elif kind is inspect.Parameter.empty:
        kind = type(param.default).__name__ if param.default is not None else "str"
    else:
        kind = getattr(kind, "__name__", "str")
    try:
        if kind == "bool":
            return parse_bool(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind in ("list", "tuple"):
            return [v.strip() for v in value.split(",") if v.strip()]
    except ValueError:
        raise TaskError(f"task {task_name!r}: -T {param.name}={value!r} is not a valid {kind}") from None
    return value
