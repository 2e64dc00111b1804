"""The pieces of work a run is made of, shared by live and batch mode (evals.run,
evals.batch): a unit, a generation as the model gave it, the error that stops a run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

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


@dataclass
class RunStats:
    """Live counters the progress display reads; updated once per unit."""

    total: int = 0
    done: int = 0
    errors: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True
    done_at_start: int = 0
    started: float = field(default_factory=time.monotonic)
    # The ETA's clock starts at this session's first finished unit (then `first_done`
    # generations were done): before it, requests were only filling the pipeline.
    first_done_at: float | None = None
    first_done: int = 0
    scores: dict[str, list[float]] = field(default_factory=dict)  # task -> [sum, scored]
    # what endpoint pools show of their limits in force (runners/endpoint_pool.py)
    limits: list[Callable[[], str]] = field(default_factory=list)
    nodes: set[str] = field(default_factory=set)  # Ray nodes that ran units (--cluster)
    # Batch mode and the spend cap (evals.batch): the provider states of the batches in
    # flight for the progress line, batches left running at exit, the cap reached.
    batch_states: str = ""
    pending_batches: int = 0
    capped: bool = False

    def finish(self, generations: int, errors: int = 0) -> None:
        self.done += generations
        self.errors += errors
        if self.first_done_at is None:
            self.first_done_at, self.first_done = time.monotonic(), self.done

    def score(self, task: str, value: float) -> None:
        total = self.scores.setdefault(task, [0.0, 0])
        total[0] += value
        total[1] += 1
