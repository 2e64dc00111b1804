"""What a run computes: its compute settings and its configuration.

A ``Setting`` is one point on the compute axis (effort, thinking budget, max
tokens, samples, and for agents the step, token and cost limits of an episode); it
is data on every request and record. ``RunConfig`` is
everything that decides a run's results, stored in run.json and compared on
resume (``RESUMABLE_FIELDS`` may change between sessions).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

from evals.metrics import AGENT_AXES
from evals.redact import scrub, scrub_options
from evals.runner import ConfigError


# Reasoning effort, least compute first: what OpenAI-style servers accept as
# ``reasoning_effort``. Every backend accepts the standard levels; one that accepts more
# declares them as an ``efforts`` attribute of its factory (or is listed in
# BACKEND_EFFORTS). Settings sort by this scale (leaderboard, report).
EFFORT_SCALE = ("none", "minimal", "low", "medium", "high", "xhigh")
STANDARD_EFFORTS = EFFORT_SCALE[:5]
BACKEND_EFFORTS = {"openai": ("xhigh",)}  # OpenAI's newest models go above high


def declared_efforts(models: list[str]) -> list[str]:
    """The effort levels every one of ``models`` accepts, on EFFORT_SCALE's order."""
    from evals.runner import runner_families

    allowed = set(EFFORT_SCALE)
    for spec in models:
        family = spec.partition("/")[0]
        extra = set(BACKEND_EFFORTS.get(family, ()))
        factory = runner_families().get(family)
        extra |= set(getattr(factory, "efforts", ()) or ())
        allowed &= set(STANDARD_EFFORTS) | extra
    return sorted(allowed, key=effort_rank)


def effort_rank(effort: str | None) -> float:
    """Where an effort sits on EFFORT_SCALE: no effort first, unknown levels last."""
    if effort is None:
        return -1
    effort = effort.lower()
    return EFFORT_SCALE.index(effort) if effort in EFFORT_SCALE else len(EFFORT_SCALE)


@dataclass(frozen=True)
class Setting:
    """One point on the compute axis. It is data on every request and record."""

    effort: str | None = None
    thinking_budget: int | None = None
    max_tokens: int | None = None
    samples: int = 1
    max_steps: int | None = None  # an agent's step limit (tasks with a solver)
    # An agent's spend limits per episode (tasks with a solver): prompt + completion
    # tokens over every turn, and USD. Read by the task, never sent to a model.
    agent_max_tokens: int | None = None
    agent_max_cost: float | None = None

    @property
    def name(self) -> str:
        parts = []
        if self.effort is not None:
            parts.append(f"effort={self.effort}")
        if self.thinking_budget is not None:
            parts.append(f"budget={self.thinking_budget}")
        if self.max_tokens is not None:
            parts.append(f"max_tokens={self.max_tokens}")
        if self.max_steps is not None:
            parts.append(f"steps={self.max_steps}")
        if self.agent_max_tokens is not None:
            parts.append(f"agent_tokens={self.agent_max_tokens}")
        if self.agent_max_cost is not None:
            cost = self.agent_max_cost  # short where that is exact: two limits, two names
            parts.append(f"agent_cost={cost:g}" if float(f"{cost:g}") == cost
                         else f"agent_cost={cost!r}")
        if self.samples != 1:
            parts.append(f"n={self.samples}")
        return ",".join(parts) or "default"


@dataclass
class RunConfig:
    tasks: list[str]
    models: list[str]
    task_params: dict[str, str] = field(default_factory=dict)  # "key" or "task.key"
    model_options: dict[str, str] = field(default_factory=dict)
    efforts: list[str | None] = field(default_factory=lambda: [None])
    thinking_budgets: list[int | None] = field(default_factory=lambda: [None])
    # agent step limits (tasks with a solver): each is a compute setting of its own
    max_steps: list[int | None] = field(default_factory=lambda: [None])
    # agent spend limits per episode (tokens, USD), each a compute setting too; None: none
    agent_max_tokens: list[int | None] = field(default_factory=lambda: [None])
    agent_max_cost: list[float | None] = field(default_factory=lambda: [None])
    max_tokens: int | None = None
    samples: int = 1
    temperature: float | None = None
    seed: int | None = None
    limit: int | None = None
    tasks_dirs: list[str] = field(default_factory=list)
    ranker: str | None = None  # model spec of an LLM judge ranking completions for best@k
    ranker_options: dict[str, str] = field(default_factory=dict)
    sandboxes: int | None = None  # given to tasks that take a `sandboxes` parameter
    # [I, N]: this run holds shard I (0-based) of N of the grid (evals/shards.py)
    shard: list[int] | None = None
    # Not part of what the run computes; a resumed run may change these.
    concurrency: int = 32
    retries: int = 6
    timeout: float = 600.0
    cache: bool = True
    # Batch mode (evals.batch, docs/batch.md) and the spend cap: how the work is sent and
    # when it stops, not what it computes, so a resumed run may change them too.
    batch: bool = False
    batch_size: int | None = None  # requests per provider batch; None: the provider's limit
    batch_retry: str = "batch"  # failed or expired batch requests: "batch" again, or "live"
    batch_poll: float = 30.0  # seconds between looks at the batches in flight
    max_cost: float | None = None  # USD: no new work is sent once the run has spent this
    # A Ray cluster the units run on (evals.cluster): where, not what, so resumable too.
    cluster: str | None = None
    # Docker engines the sandboxes run on (URLs or engines.toml files; sandbox/engines.py),
    # given to tasks that declare an "engines" resource. Where, not what: resumable.
    engines: list[str] = field(default_factory=list)

    RESUMABLE_FIELDS = ("concurrency", "retries", "timeout", "cache", "batch", "batch_size",
                        "batch_retry", "batch_poll", "max_cost", "cluster", "engines")

    def __post_init__(self) -> None:
        # a name given twice would run (and bill) everything twice
        for name in ("tasks", "models", "efforts", "thinking_budgets", "max_steps",
                     "agent_max_tokens", "agent_max_cost"):
            setattr(self, name, list(dict.fromkeys(getattr(self, name))))

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "run.json") -> "RunConfig":
        """A stored configuration; keys this version does not know are named, not crashed on."""
        known = {f for f in cls.__dataclass_fields__}
        if unknown := sorted(set(data) - known):
            raise ConfigError(f"{where}: configuration has fields this version of evals does "
                              f"not know ({', '.join(unknown)}); upgrade evals to read it")
        try:
            return cls(**data)
        except TypeError as e:
            raise ConfigError(f"{where}: not a complete run configuration ({e})") from None

    def settings(self) -> list[Setting]:
        return [Setting(e, b, self.max_tokens, self.samples, s, t, c)
                for e, b, s, t, c in itertools.product(
                    self.efforts, self.thinking_budgets, self.max_steps,
                    self.agent_max_tokens, self.agent_max_cost)]

    def agent_axes(self) -> list[str]:
        """The agent axes this run sets (``--max-steps`` ...): they mean something only to
        a task with a solver."""
        return [f"--{name.replace('_', '-')}" for name in AGENT_AXES
                if getattr(self, name) != [None]]

    def params_for(self, task_name: str) -> dict[str, str]:
        out = {}
        for key, value in self.task_params.items():
            scope, dot, name = key.rpartition(".")
            if not dot:
                out[key] = value
            elif scope == task_name:
                out[name] = value
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_options"] = scrub_options(self.model_options)
        data["ranker_options"] = scrub_options(self.ranker_options)
        data["task_params"] = scrub_options(self.task_params)  # -T engines=ssh://u:pw@...
        data["engines"] = [scrub(url) for url in self.engines]
        return data

    def differences(self, other: "RunConfig") -> list[str]:
        a, b = self.to_json(), other.to_json()
        return [f"{k}: {a[k]!r} then {b[k]!r}" for k in a
                if k not in self.RESUMABLE_FIELDS and a[k] != b.get(k)]


def settings_json(setting: Setting) -> dict[str, Any]:
    return {"effort": setting.effort, "thinking_budget": setting.thinking_budget,
            "max_tokens": setting.max_tokens, "samples": setting.samples,
            # the agent axes only where set: records of other runs stay as they were
            **{name: getattr(setting, name) for name in AGENT_AXES
               if getattr(setting, name) is not None}}
