"""Batch mode (``evals run --batch``): generations sent through the providers' batch APIs.

Every missing generation of a batchable model (``openai/``, ``openai-responses/``,
``anthropic/``, ``google/``: runner families in ``BATCH_APIS``) becomes one batch request
whose ``custom_id`` names its unit and generation (``custom_id``); the requests of one
model are grouped into provider batches within the provider's limits (and
``--batch-size``), submitted, polled, and their results recorded exactly as live
answers are, plus a ``batch`` field. Models without a batch API run live beside them.

The journal (``RUN_DIR/batches.sqlite``, ``BatchJournal`` in evals/batch_journal.py;
the provider side, ``BatchAPI`` and ``BATCH_APIS``, is evals/batch_api.py) is what makes this survive a
kill -9 at any point:

* a batch and the custom_id of every request in it are written (one transaction)
  before anything is sent: state ``prepared``;
* ``sending`` is written before the provider is asked to create it; a resumed run that
  finds a batch ``sending`` asks the provider whether it exists (``BatchAPI.find``: by
  the batch's own name or metadata) and adopts it, else sends it again; ``submitted``
  and the provider's id are written as soon as the provider answers;
* results are appended to samples.jsonl before the journal marks them recorded; a
  result whose generation already has a record (or whose batch and custom_id already
  have one) is never written twice, so downloading a batch again after a kill is safe;
* the batch is marked ``collected`` last.

Requests that expired, were cancelled or failed with a retryable error go into a new
batch (or live, ``--batch-retry live``) until ``--retries`` submissions were made; then,
like a non-retryable error, they are recorded as errors, counted apart.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

import orjson

from evals.batch_api import (  # noqa: F401 (re-exported)
    BATCH_APIS, BatchAPI, Polled, custom_id, jsonl,
)
from evals.batch_journal import JOURNAL_FILE, RUNNING, TERMINAL, BatchJournal  # noqa: F401
from evals.records import iter_records
from evals.redact import scrub
from evals.work import FatalRunError, Generated, Unit
from evals.runner import Request, Response, Runner, RunnerError, Usage

@dataclass
class Item:
    """One batch request: one generation of one unit."""

    custom_id: str
    unit: Unit  # for this generation only
    gen: int
    request: Request  # for this generation only: its seed and cache key

    @property
    def key(self) -> tuple:
        u = self.unit
        return (u.task.name, u.runner.model, u.setting.name, u.sample.id, self.gen)


def estimate_tokens(request: Request) -> int:
    """Prompt tokens, roughly (4 characters a token): for cost estimates only."""
    chars = sum(len(m.get("content") if isinstance(m.get("content"), str)
                    else orjson.dumps(m.get("content")).decode()) for m in request.messages)
    return chars // 4 + 4 * len(request.messages)


def _line_cost(runner: Runner, request: Request) -> float:
    """An upper estimate of what one batch request costs (for --max-cost)."""
    price = getattr(runner, "price", None)
    if price is None:
        return 0.0
    completion = request.max_tokens or getattr(runner, "default_max_tokens", None) or 4096
    return price.batch_cost(Usage(estimate_tokens(request), completion))


class BatchEngine:
    def __init__(self, orchestrator, log, wait: bool = True,
                 notify: Callable[[str], None] | None = None):
        self.orch = orchestrator
        self.config = orchestrator.config
        self.stats = orchestrator.stats
        self.log = log
        self.wait = wait
        self.notify = notify or (lambda line: print(line, file=sys.stderr, flush=True))
        self.journal = BatchJournal(log.dir)
        self.apis: dict[str, BatchAPI] = {}
        self.items: dict[str, Item] = {}
        self.done: set[tuple] = set()  # keys with a record that needs no retry
        self.seen: set[tuple[str, str]] = set()  # (batch id, custom_id) with a record
        self.retry: list[Item] = []
        self._shown: dict[str, str] = {}

    # -- planning ---------------------------------------------------------------

    def api(self, runner: Runner) -> BatchAPI | None:
        if runner.model not in self.apis:
            family = runner.model.partition("/")[0]
            self.apis[runner.model] = BATCH_APIS.get(family)(runner) \
                if family in BATCH_APIS else None
        return self.apis[runner.model]

    def split(self, work: Iterable, done: dict[tuple, set[int]]) -> list:
        """Take the batchable units' generations as items; return the units to run live."""
        live = []
        for key, gens in done.items():
            self.done.update((*key, g) for g in gens)
        agents: set[str] = set()
        pools: set[str] = set()
        for unit in work:
            if unit.task.solver is not None:  # each turn waits on the last: a batch is a day a turn
                agents.add(unit.task.name)
                live.append(unit)
                continue
            if hasattr(unit.runner, "endpoints"):  # replicas (vLLM, SGLang): no batch API
                pools.add(unit.runner.model)
                live.append(unit)
                continue
            if self.api(unit.runner) is None:
                live.append(unit)
                continue
            request = self.orch.request_for(unit)
            for gen in unit.gens:
                cid = custom_id(unit.task.name, unit.runner.model, unit.setting.name,
                                unit.sample.id, gen)
                self.items[cid] = Item(cid, replace(unit, gens=[gen]), gen,
                                       request.for_gens([gen]))
        if agents:
            self.notify(f"batch: {', '.join(sorted(agents))} runs live, not batched: an agent "
                        f"episode's turns each wait on the one before")
        if pools:
            self.notify(f"batch: {', '.join(sorted(pools))} runs live, not batched: its "
                        f"--base-url names several endpoints (a pool of replicas), and a "
                        f"batch goes to one provider's batch API")
        return live

    def _scan_records(self) -> None:
        for r in iter_records(self.log.samples_path):
            if isinstance(r.get("batch"), dict):
                self.seen.add((r["batch"].get("id"), r["batch"].get("custom_id")))

    # -- the run ------------------------------------------------------------------

    async def run(self, work: Iterable, done: dict[tuple, set[int]]) -> None:
        live_units = self.split(work, done)
        live = asyncio.create_task(self.orch.run(iter(live_units)))
        try:
            if self.journal.batches(open_only=False):
                self._scan_records()
            await self._from_cache()
            await self._reconcile()
            await self._plan(self._new_items())
            await self._submit_prepared()
            if self.wait:
                await self._wait_all()
            else:  # leave: collect what has finished, send what was not sent, and go
                await self._look_once()
                if self.retry:
                    await self._resend()
            await live
        finally:
            if not live.done():
                live.cancel()
                await asyncio.gather(live, return_exceptions=True)
            self.stats.pending_batches = sum(b["state"] in ("sending", "submitted")
                                             for b in self.journal.batches())
            self.journal.close()
            for api in self.apis.values():
                if api is not None:
                    await api.aclose()

    async def _from_cache(self) -> None:
        """New generations the response cache already has are recorded at once, as live
        mode records them; generations in a batch in flight are left to that batch."""
        cache = self.orch.cache
        if cache is None:
            return
        flying = self.journal.in_flight()
        hits = []
        for cid, item in list(self.items.items()):
            if cid in flying or not getattr(item.unit.runner, "cacheable", True):
                continue
            identity = getattr(item.unit.runner, "cache_identity", item.unit.runner.model)
            hit = cache.get(item.request.cache_key(identity, item.gen))
            if hit is not None:
                hits.append((item, hit))
                del self.items[cid]
        async def one(item, hit):
            got = {item.gen: Generated(hit.completions[0], hit.usage, hit.latency,
                                                 hit.cost, True, hit.applied)}
            await self.orch.record(item.unit, got, None)
        await self._bounded(one(item, hit) for item, hit in hits)

    async def _bounded(self, coros: Iterable) -> None:
        gate = asyncio.Semaphore(max(1, self.config.concurrency))

        async def run(coro):
            async with gate:
                await coro
        await asyncio.gather(*(run(c) for c in coros))

    def _new_items(self) -> list[Item]:
        flying = self.journal.in_flight()
        return [item for cid, item in self.items.items()
                if cid not in flying and item.key not in self.done]

    async def _plan(self, items: list[Item]) -> None:
        """Group ``items`` into batches per model, within each provider's limits, and
        write them to the journal (nothing is sent yet)."""
        by_model: dict[str, list[Item]] = {}
        for item in items:
            by_model.setdefault(item.unit.runner.model, []).append(item)
        for model, group in by_model.items():
            runner = group[0].unit.runner
            api = self.api(runner)
            limit = min(api.max_requests, self.config.batch_size or api.max_requests)
            chunk: list[Item] = []
            size = 0
            for item in group:
                line = len(orjson.dumps(api.line(item.custom_id, item.request))) + 1
                if chunk and (len(chunk) >= limit or size + line > api.max_bytes):
                    self._prepare(model, runner, chunk)
                    chunk, size = [], 0
                chunk.append(item)
                size += line
            if chunk:
                self._prepare(model, runner, chunk)

    def _prepare(self, model: str, runner: Runner, chunk: list[Item]) -> None:
        estimate = sum(_line_cost(runner, item.request) for item in chunk)
        self.journal.prepare(model, [(i.custom_id, i.key) for i in chunk], estimate)

    def _committed(self) -> float:
        """The estimated cost of the batches sent and not yet collected."""
        return sum(b["estimate"] or 0.0 for b in self.journal.batches()
                   if b["state"] in ("sending", "submitted"))

    async def _submit_prepared(self) -> None:
        for batch in self.journal.batches():
            if batch["state"] != "prepared":
                continue
            items = [self.items[row[0]] for row in self.journal.items(batch["name"])
                     if row[0] in self.items and self.items[row[0]].key not in self.done]
            if not items:
                self.journal.set(batch["name"], state="collected")
                continue
            if self.orch.over_budget(self._committed()):
                return  # prepared batches wait in the journal for a resume with a higher cap
            api = self.apis[batch["model"]]
            lines = [api.line(i.custom_id, i.request) for i in items]
            self.journal.set(batch["name"], state="sending", sent=time.time())
            try:
                remote = await api.submit(batch["name"], lines)
            except RunnerError as e:
                if not e.retryable:  # a refused key, no batch API there, a refused file
                    raise FatalRunError(f"{batch['model']}: submitting a batch: "
                                        f"{scrub(str(e))}") from None
                # Not created (or not known to be): the next look asks the provider.
                self.notify(f"batch {batch['name']}: submitting failed ({scrub(str(e))}); "
                            "it is tried again")
                continue
            self.journal.set(batch["name"], state="submitted", remote_id=remote,
                             remote_state="submitted")
            self.notify(f"batch {batch['name']} ({batch['model']}, {len(lines)} requests) "
                        f"submitted as {remote}")

    async def _reconcile(self) -> None:
        """Batches a killed session left ``sending``: adopt the provider's copy when it has
        one, else send them again."""
        for batch in self.journal.batches():
            if batch["state"] != "sending":
                continue
            api = self.apis.get(batch["model"])
            if api is None:
                continue
            count = len(self.journal.items(batch["name"], None))
            found = await api.find(batch["name"], batch["sent"] or batch["created"], count,
                                   self.journal.remote_ids())
            if found:
                self.journal.set(batch["name"], state="submitted", remote_id=found)
                self.notify(f"batch {batch['name']}: found as {found} (sent before a restart)")
            else:
                self.journal.set(batch["name"], state="prepared")

    # -- waiting and collecting -----------------------------------------------------

    async def _look_once(self) -> bool:
        """Poll every batch in flight once, collecting the finished; True if any remain."""
        remaining = False
        for batch in self.journal.batches():
            if batch["state"] == "sending":
                await self._reconcile()
                remaining = True
                continue
            if batch["state"] != "submitted":
                continue
            api = self.apis[batch["model"]]
            try:
                polled = await api.poll(batch["remote_id"])
            except RunnerError as e:
                if e.status in (401, 403):
                    raise FatalRunError(f"{batch['model']}: {scrub(str(e))}") from None
                self.notify(f"batch {batch['name']}: {scrub(str(e))}")
                remaining = True
                continue
            if polled.raw != batch["remote_state"] or polled.counts != orjson.loads(
                    batch["counts"] or "null"):
                self.journal.set(batch["name"], remote_state=polled.raw, counts=polled.counts)
            self._show(batch, polled)
            if polled.state in TERMINAL:
                await self._collect(batch, api, polled)
            else:
                remaining = True
        self._summarise()
        return remaining

    def _show(self, batch: dict[str, Any], polled: Polled) -> None:
        if self._shown.get(batch["name"]) == polled.raw:
            return
        self._shown[batch["name"]] = polled.raw
        counts = ", ".join(f"{k} {v}" for k, v in polled.counts.items() if v)
        self.notify(f"batch {batch['name']} ({batch['remote_id']}): {polled.raw}"
                    + (f" ({counts})" if counts else ""))

    def _summarise(self) -> None:
        states: dict[str, int] = {}
        for batch in self.journal.batches():
            states[batch["remote_state"] or batch["state"]] = states.get(
                batch["remote_state"] or batch["state"], 0) + 1
        self.stats.batch_states = ("batches " + ", ".join(f"{n} {s}" for s, n in states.items())
                                   if states else "")

    async def _wait_all(self) -> None:
        while True:
            remaining = await self._look_once()
            if self.retry:
                await self._resend()
                remaining = True
            prepared = any(b["state"] == "prepared" for b in self.journal.batches())
            if prepared:
                await self._submit_prepared()
            flying = any(b["state"] in ("sending", "submitted") for b in self.journal.batches())
            if not flying:
                break  # what is left is prepared and capped
            if remaining:
                await asyncio.sleep(self.config.batch_poll)

    async def _resend(self) -> None:
        items, self.retry = self.retry, []
        if self.orch.over_budget(self._committed()):
            return  # not recorded: a resume with a higher cap sends them
        if self.config.batch_retry == "live":
            await self._bounded(self.orch.run_unit(item.unit) for item in items)
            return
        await self._plan(items)
        await self._submit_prepared()

    async def _collect(self, batch: dict[str, Any], api: BatchAPI, polled: Polled) -> None:
        """Record every result of a finished batch once; queue the retryable failures."""
        try:
            results = await api.results(polled) if polled.state != "failed" else {}
        except RunnerError as e:
            self.notify(f"batch {batch['name']}: downloading its results failed "
                        f"({scrub(str(e))}); tried again at the next look")
            return
        remote = batch["remote_id"]
        why = {"failed": "the batch failed", "expired": "the batch expired",
               "cancelled": "the batch was cancelled"}.get(polled.state, "no result")
        latency = max(0.0, time.time() - (batch["sent"] or batch["created"]))
        states: dict[str, str] = {}
        work = []
        for cid, *key in self.journal.items(batch["name"]):
            key = tuple(key)
            item = self.items.get(cid)
            if key in self.done or item is None:
                states[cid] = "recorded"
                continue
            result = results.get(cid)
            if result is None:
                result = RunnerError(f"{why} before this request ran", retryable=True)
            elif not isinstance(result, RunnerError):
                try:
                    result = api.parse(result, item.request)
                except RunnerError as e:  # an answer without a usable completion
                    result = e
            if isinstance(result, RunnerError):
                attempts = self.journal.attempts(cid)
                if result.retryable and attempts <= self.config.retries:
                    states[cid] = "retry"
                    self.retry.append(item)
                    continue
                states[cid] = "failed"
                if (remote, cid) in self.seen:
                    continue
                error = RunnerError(f"batch {remote}: {result} (after {attempts} "
                                    f"submission{'s' if attempts != 1 else ''})")
                work.append(self._write(item, None, error, remote, cid, api, latency))
            else:
                states[cid] = "recorded"
                work.append(self._write(item, result, None, remote, cid, api, latency))
        await self._bounded(work)
        self.journal.mark(batch["name"], states)
        self.journal.set(batch["name"], state="collected", ended=time.time())
        self.notify(f"batch {batch['name']} ({remote}) collected: "
                    f"{sum(s == 'recorded' for s in states.values())} recorded, "
                    f"{sum(s == 'retry' for s in states.values())} to retry, "
                    f"{sum(s == 'failed' for s in states.values())} failed")

    async def _write(self, item: Item, part, error, remote: str, cid: str, api: BatchAPI,
                     latency: float) -> None:
        unit, gen = item.unit, item.gen
        source = {"provider": api.provider, "id": remote, "custom_id": cid}
        got = {}
        if part is not None:
            price = getattr(unit.runner, "price", None)
            completion = part.completions[0]
            cost = price.batch_cost(part.usage) if price else None
            result = Generated(completion, part.usage, latency, cost, False,
                               part.applied or api.applied(item.request),
                               {**source, **({"price": "batch" if price.batch is not None
                                              else "live"} if price else {})})
            got[gen] = result
            cache = self.orch.cache
            if cache is not None and getattr(unit.runner, "cacheable", True):
                identity = getattr(unit.runner, "cache_identity", unit.runner.model)
                cache.put(item.request.cache_key(identity, gen),
                          Response([completion], result.usage, latency, cost,
                                   applied=result.applied))
            self.done.add(item.key)
        self.seen.add((remote, cid))
        await self.orch.record(unit, got, error)


async def run_batched(orchestrator, log, work: Iterable, done: dict[tuple, set[int]],
                      wait: bool = True, notify: Callable[[str], None] | None = None) -> None:
    """``evals run --batch``: see the module's docs."""
    await BatchEngine(orchestrator, log, wait, notify).run(work, done)
