"""The orchestrator: a fixed pool of workers that takes a run's units one by one, asks
the runner (through the response cache, with retries and backoff) or the task's solver
for each unit's missing generations, scores and ranks them, and appends their records.

evals/run.py builds a run (its tasks, runners and units) and hands the units here;
a cluster backend (evals/cluster.py) runs the same orchestrator on its nodes.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import random
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

from evals.cache import ResponseCache
from evals.config import RunConfig, settings_json
from evals.records import UNSCORED, RunLog
from evals.redact import scrub
from evals.runner import (Completion, PartialResponse, Request, Response, Runner,
                          RunnerError, Usage)
from evals.task import Sample, Score, Task, TaskError
from evals.work import FatalRunError, Generated, RunStats, Unit


@dataclass
class RankerSpend:
    """What the ranker's (judge's) calls for one generation cost; added to its record."""

    calls: int = 0
    prompt: float = 0.0
    completion: float = 0.0
    cost: float | None = 0.0

    def add(self, response: Response) -> None:
        self.calls += 1
        self.prompt += response.usage.prompt_tokens
        self.completion += response.usage.completion_tokens
        if self.cost is not None:
            self.cost = None if response.cost is None else self.cost + response.cost

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "prompt": self.prompt, "completion": self.completion,
                "cost": self.cost}


# The spend of the rank call running in this asyncio task (judge calls add to it).
_ranker_spend: contextvars.ContextVar[RankerSpend | None] = contextvars.ContextVar(
    "ranker_spend", default=None)


class Orchestrator:
    def __init__(self, config: RunConfig, log: RunLog, stats: RunStats,
                 cache: ResponseCache | None):
        self.config = config
        self.log = log
        self.stats = stats
        self.cache = cache
        self.succeeded: dict[str, int] = {}
        self.judge = self.judge_runner = None
        if config.ranker:
            from evals.judge import make_ranker

            self.judge_runner, self.judge = make_ranker(config.ranker, config.ranker_options,
                                                        self.generate)

    def over_budget(self, committed: float = 0.0) -> bool:
        """--max-cost: true once this run's spend (plus ``committed``, the estimate of
        batches in flight) has reached the cap; no new work is sent after that."""
        cap = self.config.max_cost
        if cap is None or self.stats.cost + committed < cap:
            return False
        self.stats.capped = True
        return True

    async def run(self, work: Iterator[Unit]) -> None:
        async def worker() -> None:
            # A worker sends its next request before the unit it has just obtained is
            # scored and written: that unit is recorded by a task of its own, and one at
            # a time per worker, so a slow grader still holds its worker back.
            recording: asyncio.Task | None = None
            try:
                for unit in work:  # a generator shared by all workers: each unit taken once
                    if self.over_budget():
                        break  # calls in flight finish; what is left waits for a resume
                    got, error = await self.obtain(unit)
                    if recording is not None:
                        await recording  # done by now unless grading is slow; raises its error
                    recording = asyncio.create_task(self._record_after_sends(unit, got, error))
                    if self.config.max_cost is not None:
                        await recording  # --max-cost counts this unit before the next goes
            except asyncio.CancelledError:  # the run is stopping: cut short, redone on resume
                if recording is not None:
                    recording.cancel()
                raise
            finally:  # this worker's last unit (or the one before its failure) is written
                if recording is not None:
                    await asyncio.gather(recording, return_exceptions=True)
            if recording is not None:
                recording.result()  # its error, if any, ends the run

        workers = [asyncio.create_task(worker()) for _ in range(max(1, self.config.concurrency))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def run_unit(self, unit: Unit) -> None:
        await self.record(unit, *await self.obtain(unit))

    async def _record_after_sends(self, unit: Unit, got: dict[int, Generated],
                                  error: RunnerError | None) -> None:
        """``record``, one turn of the event loop later. Responses come back in waves
        (100 in flight answer within a millisecond of each other), and every next
        request of a wave should be on the wire before any of the wave is scored:
        aiohttp on Python < 3.12 sends a request's body from a task of its own, which
        runs only after every callback already queued, so scoring first made each next
        request wait for the whole wave's scoring and writing (bench/README.md)."""
        await asyncio.sleep(0)
        await self.record(unit, got, error)

    async def unit_records(self, unit: Unit) -> list[dict[str, Any]]:
        """The records of one unit: its generations asked for (or read from the cache),
        scored and ranked. Writes nothing (a cluster's driver writes what it returns)."""
        return await self.records_for(unit, *await self.obtain(unit))

    async def obtain(self, unit: Unit) -> tuple[dict[int, Generated], RunnerError | None]:
        """The unit's generations: one model call each, or a solver's many turns."""
        if unit.task.solver is not None:
            return await self.solve(unit)
        return await self.generations(self.runner_for(unit), self.request_for(unit))

    async def solve(self, unit: Unit) -> tuple[dict[int, Generated], RunnerError | None]:
        """Each generation is one episode of the task's solver. Its model turns go through
        ``generate`` (cache and retries; the generation's seed), so a resumed episode
        replays the turns it had from the cache; its steps are written beside the records."""
        runner, base = self.runner_for(unit), self.request_for(unit)
        got: dict[int, Generated] = {}
        error: RunnerError | None = None
        for g in unit.gens:
            usage, costs, began = Usage(), [], time.monotonic()

            async def call(request: Request, g: int = g) -> Response:
                response = await self.generate(runner, replace(request, seed=base.seed,
                                                               gens=(g,), n=1))
                usage.__iadd__(response.usage)
                costs.append(response.cost)
                return response

            try:
                solution = await unit.task.solver(unit.sample, call, base.for_gens([g]))
            except RunnerError as e:
                error = e
                continue
            path = self._write_trajectory(unit, g, solution.trajectory)
            steps = (solution.trajectory or {}).get("steps")
            got[g] = Generated(Completion(solution.text, None, solution.stop or None), usage,
                               time.monotonic() - began,
                               None if None in costs else sum(costs), trajectory=path,
                               steps=len(steps) if isinstance(steps, list) else None)
        return got, error

    def _write_trajectory(self, unit: Unit, gen: int, steps: dict[str, Any] | None) -> str | None:
        if steps is None:
            return None
        import hashlib

        import orjson

        key = f"{unit.task.name}\0{unit.runner.model}\0{unit.setting.name}\0{unit.sample.id}"
        name = f"{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}-{gen}.json"
        folder = self.log.dir / "trajectories"
        folder.mkdir(exist_ok=True)
        tmp = folder / (name + ".tmp")
        tmp.write_bytes(orjson.dumps({"task": unit.task.name, "model": unit.runner.model,
                                      "setting": unit.setting.name,
                                      "sample_id": unit.sample.id, "gen": gen, **steps}))
        tmp.replace(folder / name)  # whole or absent, whatever kills the run
        return f"trajectories/{name}"

    def runner_for(self, unit: Unit) -> Runner:
        """The unit's runner, told the sample where it answers from it (gold)."""
        runner = unit.runner
        return runner.for_sample(unit.sample) if hasattr(runner, "for_sample") else runner

    def request_for(self, unit: Unit) -> Request:
        """The request for ``unit``'s missing generations (live and batch mode alike)."""
        task, sample, setting = unit.task, unit.sample, unit.setting
        try:
            messages = task.prompt(sample)
        except TaskError:
            raise
        except Exception as e:  # a task bug: stop with one line naming the sample
            raise TaskError(f"task {task.name!r}, sample {sample.id!r}: building the prompt "
                            f"failed: {type(e).__name__}: {e}") from e
        return Request(
            messages=messages, max_tokens=setting.max_tokens,
            temperature=self.config.temperature, seed=self.config.seed, stop=task.stop,
            effort=setting.effort, thinking_budget=setting.thinking_budget,
            max_steps=setting.max_steps, agent_max_tokens=setting.agent_max_tokens,
            agent_max_cost=setting.agent_max_cost,
        ).for_gens(unit.gens)

    async def record(self, unit: Unit, got: dict[int, "Generated"],
                     error: Exception | None) -> None:
        """Score ``unit``'s generations in ``got`` and append their records (and error
        records, naming ``error``, for those of ``unit.gens`` it lacks) in one write."""
        self.keep_records(unit.task.name, await self.records_for(unit, got, error))

    async def records_for(self, unit: Unit, got: dict[int, "Generated"],
                          error: Exception | None) -> list[dict[str, Any]]:
        """The records of ``unit`` from its generations in ``got``: scored, ranked, and an
        error record for each generation it lacks."""
        task, sample, setting = unit.task, unit.sample, unit.setting
        base = {"task": task.name, "model": unit.runner.model, "setting": setting.name,
                "sample_id": sample.id}
        metadata = sample.metadata
        if any(k.startswith("_") for k in metadata):
            metadata = {k: v for k, v in metadata.items() if not k.startswith("_")}
        records: list[dict[str, Any]] = []
        failed = [g for g in unit.gens if g not in got]
        if failed:
            message = scrub(str(error)) if error is not None else \
                f"the backend returned {len(unit.gens) - len(failed)} of {len(unit.gens)} " \
                "generations asked for"
            # The metadata too: a failed call counts in its category's breakdown (report).
            records += [{**base, "gen": g, "status": "error", "score": None,
                         "error": message, "metadata": metadata,
                         "settings": settings_json(setting)} for g in failed]
        scored = [(g, got[g]) for g in unit.gens if g in got]
        if len(scored) == 1:  # the common case, without gather's per-task cost
            verdicts = [await self.verdict(task, sample, scored[0][1].completion.text)]
        else:  # slow graders (a sandbox, a judge) work on all n at once
            verdicts = await asyncio.gather(*(self.verdict(task, sample, r.completion.text)
                                              for _, r in scored))
        for (gen, result), (score, rank, spend) in zip(scored, verdicts):
            completion, usage = result.completion, result.usage
            cost = result.cost
            if spend is not None and cost is not None:
                # the ranker's calls are part of this setting's spend; unknown, so is the sum
                cost = None if spend.cost is None else cost + spend.cost
            records.append({
                **base, "gen": gen, "status": score.status,
                "score": None if score.status in UNSCORED else score.value,
                "answer": score.answer, "target": sample.target,
                **(_redacted(completion) if task.redact else
                   {"completion": completion.text, "reasoning": completion.reasoning}),
                "finish_reason": completion.finish_reason, "explanation": score.explanation,
                "usage": {"prompt": usage.prompt_tokens + (spend.prompt if spend else 0),
                          "completion": usage.completion_tokens
                          + (spend.completion if spend else 0),
                          "reasoning": usage.reasoning_tokens,
                          **({"cached": usage.cached_tokens} if usage.cached_tokens else {})},
                "latency": result.latency, "cost": cost,
                "cached": result.cached, "metadata": metadata,
                "score_metadata": score.metadata or None, "rank": rank,
                **({"ranker": spend.to_json()} if spend is not None else {}),
                "settings": settings_json(setting),
                # what the provider applied where it differs from "settings" (requested)
                **({"applied": result.applied} if result.applied else {}),
                **({"batch": result.batch} if result.batch else {}),
                **({"trajectory": result.trajectory} if result.trajectory else {}),
                **({"steps": result.steps} if result.steps is not None else {})})
        records.sort(key=lambda r: r["gen"])
        return records

    def keep_records(self, task_name: str, records: list[dict[str, Any]]) -> None:
        """Append a unit's records (one write) and count them for the progress line."""
        self.log.append(records)
        stats = self.stats
        unscored = 0
        for r in records:
            if r["score"] is not None:
                stats.score(task_name, r["score"])
            if r["status"] in UNSCORED:
                unscored += 1
            if r["status"] == "error":
                continue
            stats.cached += bool(r.get("cached"))
            usage = r.get("usage") or {}
            stats.prompt_tokens += usage.get("prompt") or 0
            stats.completion_tokens += usage.get("completion") or 0
            if r.get("cost") is None:
                stats.cost_known = False
            elif not r.get("cached"):  # the progress line shows what this run spends
                stats.cost += r["cost"]
        stats.finish(len(records), unscored)

    async def generations(self, runner: Runner, request: Request
                          ) -> tuple[dict[int, "Generated"], RunnerError | None]:
        """Every generation of ``request`` that can be had: from the cache (each
        generation has its own key), else asked for, with retries; siblings that
        succeeded beside a failure are kept. Returns ``(by generation, last error)``."""
        got: dict[int, Generated] = {}
        cache = self.cache if getattr(runner, "cacheable", True) else None
        identity = getattr(runner, "cache_identity", runner.model)
        keys = {}
        if cache is not None:
            for i in range(request.n):
                g = request.generation(i)
                keys[g] = request.cache_key(identity, g)
                if (hit := cache.get(keys[g])) is not None:
                    got[g] = Generated(hit.completions[0], hit.usage, hit.latency, hit.cost, True,
                                       hit.applied)
        missing = [request.generation(i) for i in range(request.n)
                   if request.generation(i) not in got]
        if not missing:
            return got, None

        def keep(asked: Request, response: Response) -> None:
            share = 1.0 / max(1, sum(c is not None for c in response.completions))
            u = response.usage
            for i, completion in enumerate(response.completions[:asked.n]):
                if completion is None:
                    continue
                g = asked.generation(i)
                result = Generated(
                    completion, Usage(u.prompt_tokens * share, u.completion_tokens * share,
                                      u.reasoning_tokens * share, u.cached_tokens * share),
                    response.latency, None if response.cost is None else response.cost * share,
                    applied=response.applied)
                got[g] = result
                if cache is not None:
                    cache.put(keys[g], Response([completion], result.usage, result.latency,
                                                result.cost, applied=result.applied))

        try:
            # all of them (no cache hit): the request as it is, without a copy per call
            asked = request if len(missing) == request.n else request.for_gens(missing)
            await self.call_with_retries(runner, asked, keep)
        except RunnerError as e:
            return got, e
        return got, None

    async def generate(self, runner: Runner, request: Request) -> Response:
        """One response for ``request`` through the cache and retries (the judge's path)."""
        got, error = await self.generations(runner, request)
        if error is not None and not got:
            raise error
        results = [got[request.generation(i)] for i in range(request.n)
                   if request.generation(i) in got]
        usage = Usage()
        for r in results:
            usage += r.usage
        costs = [r.cost for r in results]
        response = Response([r.completion for r in results], usage,
                            max((r.latency for r in results), default=0.0),
                            None if None in costs else sum(costs),
                            all(r.cached for r in results),
                            results[0].applied if results else None)
        if spend := _ranker_spend.get():
            spend.add(response)
        return response

    async def verdict(self, task: Task, sample: Sample, text: str
                      ) -> tuple[Score, float | None, "RankerSpend | None"]:
        score = await self.score(task, sample, text)
        if task.ranker is None and self.judge is None:
            return score, None, None
        spend = RankerSpend()
        token = _ranker_spend.set(spend)  # the judge's calls add themselves to it
        try:
            rank = await self.rank(task, sample, text)
        finally:
            _ranker_spend.reset(token)
        return score, rank, spend if spend.calls else None

    async def score(self, task: Task, sample: Sample, text: str) -> Score:
        try:
            result = task.scorer(sample, text)
            if inspect.isawaitable(result):
                result = await result
            return result
        except Exception as e:  # a scorer bug marks the sample, it does not end the run
            return Score(0.0, None, f"scorer raised {type(e).__name__}: {e}", "scorer_error")

    async def rank(self, task: Task, sample: Sample, text: str) -> float | None:
        ranker = task.ranker or self.judge
        if ranker is None:
            return None
        try:
            result = ranker(sample, text)
            return await result if inspect.isawaitable(result) else result
        except RunnerError:  # a judge call that failed every retry leaves this one unranked
            return None
        except FatalRunError:
            raise
        except Exception:  # a task's ranker bug leaves this one unranked, not the run ended
            return None

    async def call_with_retries(self, runner: Runner, request: Request,
                                keep: Callable[[Request, Response], None] | None = None
                                ) -> Response:
        """``runner.generate`` with retries. ``keep`` is given every response's
        generations as they succeed: after a PartialResponse only the rest are asked
        for again."""
        config = self.config
        for attempt in itertools.count():
            try:
                if getattr(runner, "enforces_timeout", False):
                    response = await runner.generate(request)
                else:  # a guard for backends without a timeout of their own
                    async with asyncio.timeout(config.timeout + 30):
                        response = await runner.generate(request)
                self.succeeded[runner.model] = self.succeeded.get(runner.model, 0) + 1
                if keep is not None:
                    keep(request, response)
                return response
            except TimeoutError:
                error = RunnerError(f"no answer within {config.timeout:g}s", retryable=True)
            except PartialResponse as e:
                error = e
                # the endpoint answered (some of it): not an unreachable one
                self.succeeded[runner.model] = self.succeeded.get(runner.model, 0) + 1
                if keep is not None:
                    keep(request, e.response)
                    answered = {request.generation(i) for i, c in
                                enumerate(e.response.completions) if c is not None}
                    rest = [request.generation(i) for i in range(request.n)
                            if request.generation(i) not in answered]
                    if not rest:
                        return e.response
                    request = request.for_gens(rest)
            except RunnerError as e:
                error = e
            if error.status in (401, 403, 404):
                raise FatalRunError(f"{runner.model}: {scrub(str(error))}")
            never_reached = error.status == -1 and not self.succeeded.get(runner.model)
            if never_reached and attempt >= 1:
                raise FatalRunError(f"{runner.model}: {scrub(str(error))}")
            if not error.retryable or attempt >= config.retries:
                raise error
            await asyncio.sleep(backoff(attempt, error.retry_after))
        raise AssertionError("unreachable")


def backoff(attempt: int, retry_after: float | None, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter; a server's Retry-After wins when given."""
    if retry_after is not None:
        return min(retry_after, 300.0) + random.uniform(0, 0.1 * base)
    return random.uniform(0, min(cap, base * 2 ** attempt))


def _redacted(completion) -> dict[str, Any]:
    return {"completion": None, "reasoning": None, "redacted": True,
            "completion_chars": len(completion.text),
            "reasoning_chars": len(completion.reasoning or "")}
