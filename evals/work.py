"""The pieces of work a run is made of, shared by live and batch mode (evals.run,
evals.batch): a unit, a generation as the model gave it, the error that stops a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evals.config import Setting
from evals.runner import Completion, Runner, Usage
from evals.task import Sample, Task


class FatalRunError(Exception):
    """Stops the whole run: a refused key, an unreachable endpoint, an unknown model."""


@dataclass
class Unit:
    """One (task, sample, model, setting): the generations it still lacks."""

    task: Task
    sample: Sample
    runner: Runner
    setting: Setting
    gens: list[int]  # generation indices still missing


@dataclass
class Generated:
    """One generation as the model gave it, with its share of the call's usage and cost."""

    completion: Completion
    usage: Usage
    latency: float
    cost: float | None
    cached: bool = False
    applied: dict[str, Any] | None = None  # the compute the provider applied, where it differs
    batch: dict[str, Any] | None = None  # where a provider batch answered it (evals.batch)
    trajectory: str | None = None  # a solver's steps: a file in the run's directory
    steps: int | None = None  # how many steps the solver took
