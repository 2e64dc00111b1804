"""Requested vs applied compute: when two settings of a sweep are not two computes.

Records keep the compute requested (``settings``) and, where a runner knows it
differs, the compute applied (``applied``: an effort the provider echoed back, a
budget clamped into the model's range). Two checks over one run's records, per
(task, model):

* ``same_compute``: settings that ran as the same applied compute (a provider that
  runs medium as high; budgets of 256 and 1024 both clamped to 1024). Their rows in
  a leaderboard are one measurement, not two.
* ``flat_reasoning``: a setting asking for more compute than the one below it (a
  higher effort, a larger budget, all else equal) whose mean reasoning tokens per
  generation are not higher. Where the provider reports no reasoning tokens, mean
  completion tokens stand in for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from evals.metrics import AGENT_AXES

# Efforts in increasing order of compute, across providers (OpenAI's none/minimal,
# Anthropic's xhigh/max): the order in which a sweep's settings should grow.
EFFORT_ORDER = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
# An agent's limits are knobs too: the task applies them as requested (the episode
# stops at them), so two step limits are two computes.
_KNOBS = ("effort", "thinking_budget", "max_tokens", *AGENT_AXES)
_FAILED = frozenset({"error", "infra_error", "scorer_error"})


@dataclass(frozen=True)
class ComputeFlag:
    task: str
    model: str
    kind: str  # "same_compute" or "flat_reasoning"
    settings: tuple[str, ...]
    detail: str


@dataclass
class _Setting:
    requested: dict[str, Any]
    applied: dict[str, Any] | None = None
    n: int = 0
    reasoning: float = 0.0
    completion: float = 0.0
    names: list[str] = field(default_factory=list)

    def effective(self) -> tuple:
        applied = {k: v for k, v in (self.applied or {}).items() if k in _KNOBS}
        merged = {**{k: self.requested.get(k) for k in _KNOBS}, **applied}
        return tuple(merged[k] for k in _KNOBS)


def compute_flags(records: Iterable[dict[str, Any]]) -> list[ComputeFlag]:
    """The flags of one run's records (the later record of a retried generation wins
    only for what it adds: failed calls are skipped)."""
    groups: dict[tuple[str, str], dict[str, _Setting]] = {}
    for r in records:
        settings = groups.setdefault((r["task"], r["model"]), {})
        s = settings.get(r["setting"])
        if s is None:
            s = settings[r["setting"]] = _Setting(dict(r.get("settings") or {}))
        if s.applied is None and r.get("applied"):
            s.applied = r["applied"]
        if r.get("status") in _FAILED or not isinstance(r.get("usage"), dict):
            continue
        s.n += 1
        s.reasoning += r["usage"].get("reasoning") or 0.0
        s.completion += r["usage"].get("completion") or 0.0
    flags: list[ComputeFlag] = []
    for (task, model), settings in sorted(groups.items()):
        flags += _same_compute(task, model, settings)
        flags += _flat_reasoning(task, model, settings)
    return flags


def _describe(values: tuple) -> str:
    parts = [f"{k}={v}" for k, v in zip(_KNOBS, values) if v is not None]
    return ", ".join(parts) or "defaults"


def _same_compute(task: str, model: str, settings: dict[str, _Setting]) -> list[ComputeFlag]:
    by_compute: dict[tuple, list[str]] = {}
    for name, s in settings.items():
        by_compute.setdefault(s.effective(), []).append(name)
    return [ComputeFlag(task, model, "same_compute", tuple(sorted(names)),
                        f"{' and '.join(sorted(names))} ran as the same compute "
                        f"({_describe(compute)})")
            for compute, names in by_compute.items() if len(names) > 1]


def _rank(s: _Setting, knob: str) -> float | None:
    value = s.requested.get(knob)
    if knob == "effort":
        return EFFORT_ORDER.index(value) if value in EFFORT_ORDER else None
    return value if isinstance(value, (int, float)) and value >= 0 else None


def _flat_reasoning(task: str, model: str, settings: dict[str, _Setting]) -> list[ComputeFlag]:
    measured = {name: s for name, s in settings.items() if s.n}
    if not measured:
        return []
    # Providers that report no reasoning tokens (all zero): completion tokens stand in.
    use_reasoning = any(s.reasoning for s in measured.values())
    unit = "reasoning" if use_reasoning else "completion"

    def mean(s: _Setting) -> float:
        return (s.reasoning if use_reasoning else s.completion) / s.n

    flags = []
    for knob in ("effort", "thinking_budget"):
        others = [k for k in _KNOBS if k != knob]
        ladders: dict[tuple, list[tuple[float, str]]] = {}
        for name, s in measured.items():
            rank = _rank(s, knob)
            if rank is not None:
                key = tuple(s.requested.get(k) for k in others)
                ladders.setdefault(key, []).append((rank, name))
        for ladder in ladders.values():
            ladder.sort()
            for (_, low), (_, high) in zip(ladder, ladder[1:]):
                lo, hi = measured[low], measured[high]
                if lo.effective() == hi.effective():
                    continue  # already a same_compute flag
                if mean(hi) <= mean(lo):
                    flags.append(ComputeFlag(
                        task, model, "flat_reasoning", (low, high),
                        f"{high} asks for more than {low} but its mean {unit} tokens "
                        f"({mean(hi):,.0f}) are not higher ({mean(lo):,.0f})"))
    return flags


def render_flags(flags: list[ComputeFlag]) -> str:
    """One line per flag, for `evals show` and `evals leaderboard`; empty if none."""
    return "".join(f"compute: {f.task} {f.model}: {f.detail}\n" for f in flags)


def run_flags(records_paths: Iterable, tasks: list[str] | None = None,
              models: list[str] | None = None) -> list[ComputeFlag]:
    """The flags of several runs (a results directory), each found once."""
    from evals.records import iter_records

    seen: dict[tuple, ComputeFlag] = {}
    for path in records_paths:
        for f in compute_flags(iter_records(path)):
            if (tasks and f.task not in tasks) or (models and f.model not in models):
                continue
            if f.model == "gold" or f.model.startswith("gold/"):
                continue  # the reference answers: compute settings do not reach it
            seen.setdefault((f.task, f.model, f.kind, f.settings), f)
    return list(seen.values())
