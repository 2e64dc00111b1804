"""``evals view``: the local web server (aiohttp) and its JSON endpoints.

One static page (``static/``, shipped in the package: nothing is fetched at run time)
asks these endpoints for what it shows. Runs are opened on first use, in one worker
thread that owns every ``RunView`` (they are not thread-safe), so the event loop stays
free; a run's metrics are computed in a separate process (``evals.metrics_columnar``:
seconds on a large run) and shown when ready. Served on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence

import orjson
from aiohttp import web

from evals.records import RunLog, find_runs
from evals.view.store import OUTCOMES, SORTS, Filters, RunView, differing

STATIC = Path(__file__).parent / "static"
MAX_LIMIT = 500


def run_metrics(samples: str) -> list[dict]:
    """A run's metric rows as ``evals show --json`` gives them."""
    from evals.leaderboard import metric_dicts, sort_rows
    from evals.metrics_columnar import aggregate

    return sort_rows(metric_dicts(aggregate(Path(samples))))


def _metrics_worker(samples: str, conn: Any) -> None:
    try:
        conn.send(("ready", run_metrics(samples)))
    except Exception as e:  # a malformed record: the page says why
        conn.send(("failed", f"{type(e).__name__}: {e}"))


class Metrics:
    """A run's metric rows, computed in a daemon process (ended with the viewer)."""

    def __init__(self, samples: Path):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_metrics_worker, args=(str(samples), child), daemon=True)
        self.proc.start()
        child.close()
        self.state: tuple[str, Any] = ("computing", None)

    def poll(self) -> tuple[str, Any]:
        if self.state[0] == "computing":
            try:
                if self.conn.poll():
                    self.state = self.conn.recv()
                elif not self.proc.is_alive():
                    self.state = ("failed", f"the metrics process ended ({self.proc.exitcode})")
            except EOFError:
                self.state = ("failed", "the metrics process ended")
        return self.state

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(5)
        self.conn.close()


def _json(data: Any, status: int = 200) -> web.Response:
    body = orjson.dumps(data, default=str, option=orjson.OPT_SERIALIZE_NUMPY)
    return web.Response(body=body, status=status, content_type="application/json")


def _clean(value: Any) -> Any:
    """NaN and infinities as null (JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def highlight(rec: Mapping[str, Any]) -> dict | None:
    """Where the extracted answer is in the record's text: ``{"field", "start", "end"}``.

    Math records carry the extracted text (``score_metadata.extracted``): its last
    occurrence. Choice tasks (GPQA) carry the commitment's line as written
    (``score_metadata.line``): its last occurrence in the completion."""
    meta = rec.get("score_metadata")
    if not isinstance(meta, dict):
        return None
    fields = [f for f in ("completion", "reasoning") if isinstance(rec.get(f), str)]
    extracted = meta.get("extracted")
    if isinstance(extracted, str) and extracted:
        for f in fields:
            at = rec[f].rfind(extracted)
            if at >= 0:
                return {"field": f, "start": at, "end": at + len(extracted)}
    snippet = meta.get("line")
    if isinstance(snippet, str) and snippet:
        for f in fields:
            at = rec[f].rfind(snippet)
            if at >= 0:
                return {"field": f, "start": at, "end": at + len(snippet)}
    return None


class Viewer:
    """The runs of a results directory, opened on demand."""

    def __init__(self, results_dir: Path, run_ids: Sequence[str] | None = None):
        self.results_dir = Path(results_dir)
        logs = find_runs(self.results_dir)
        if run_ids:
            by_id = {log.dir.name: log for log in logs}
            missing = [r for r in run_ids if r not in by_id]
            if missing:
                raise ValueError(f"no run {', '.join(map(repr, missing))} under {results_dir}")
            logs = [by_id[r] for r in run_ids]
        self.logs: dict[str, RunLog] = {log.dir.name: log for log in logs}
        self.views: dict[str, RunView] = {}
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="evals-view")
        self.prompts = ThreadPoolExecutor(1, thread_name_prefix="evals-view-prompt")
        self.metrics: dict[str, Metrics] = {}
        self.samples_by_task: dict[tuple[str, str], dict[str, Any]] = {}

    def view(self, run: str) -> RunView:
        """Called in the worker thread only."""
        v = self.views.get(run)
        if v is None:
            log = self.logs.get(run)
            if log is None:
                raise KeyError(run)
            v = self.views[run] = RunView(log)
        return v

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)

    def close(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)
        self.prompts.shutdown(wait=False, cancel_futures=True)
        for m in self.metrics.values():
            m.close()

    # ------------------------------------------------------------ pieces

    def runs(self) -> list[dict]:
        out = []
        for run, log in self.logs.items():
            meta = log.read_meta()
            config = meta.get("config") or {}
            out.append({"id": run, "status": meta.get("status"), "started": meta.get("started"),
                        "ended": meta.get("ended"), "tasks": config.get("tasks"),
                        "models": config.get("models"),
                        "bytes": log.samples_path.stat().st_size
                        if log.samples_path.exists() else 0})
        return out

    def metrics_of(self, run: str) -> tuple[str, Any]:
        m = self.metrics.get(run)
        if m is None:
            m = self.metrics[run] = Metrics(self.logs[run].samples_path)
        return m.poll()

    def filters(self, v: RunView, q: Mapping[str, str]) -> Filters:
        def number(name: str) -> float | None:
            raw = q.get(name, "").strip()
            if not raw:
                return None
            try:
                return float(raw)
            except ValueError:
                raise web.HTTPBadRequest(text=f"{name}: not a number: {raw!r}") from None

        groups = None
        if any(q.get(k) for k in ("task", "model", "setting")):
            groups = {g for g, key in enumerate(v.groups)
                      if all(not q.get(k) or q[k] == key[j]
                             for j, k in enumerate(("task", "model", "setting")))}
        outcome = q.get("outcome") or None
        if outcome is not None and outcome not in OUTCOMES:
            raise web.HTTPBadRequest(text=f"outcome must be one of {', '.join(OUTCOMES)}")
        return Filters(groups=groups, outcome=outcome, score_min=number("score_min"),
                       score_max=number("score_max"), no_answer=q.get("no_answer") == "1",
                       length_cut=q.get("length_cut") == "1",
                       categories=v.category_codes(q.get("domain") or None,
                                                   q.get("subdomain") or None,
                                                   q.get("cell") or None),
                       rule=q.get("rule") or None, swe=q.get("swe") or None)

    def sample_page(self, run: str, q: Mapping[str, str]) -> dict:
        v = self.view(run)
        sort = q.get("sort") or "file"
        if sort not in SORTS:
            raise web.HTTPBadRequest(text=f"sort must be one of {', '.join(SORTS)}")
        try:
            offset = max(0, int(q.get("offset") or 0))
            limit = min(MAX_LIMIT, max(1, int(q.get("limit") or 50)))
        except ValueError:
            raise web.HTTPBadRequest(text="offset and limit must be integers") from None
        page = v.page(self.filters(v, q), sort, q.get("desc") == "1", offset, limit)
        return _clean({**page, "offset": offset, "limit": limit})

    def record(self, run: str, i: int) -> dict:
        v = self.view(run)
        rec = v.record(i)
        return _clean({"run": run, "i": i, "record": rec, "highlight": highlight(rec),
                       "counterparts": self.counterparts(run, i, rec)})

    def counterparts(self, run: str, i: int, rec: Mapping[str, Any]) -> list[dict]:
        """The same problem (task and sample id) under every other setting or model of the
        open runs: per group, its generations."""
        v = self.view(run)
        h = int(v.problem[i])
        out = []
        for other in self.logs:
            ov = self.view(other)
            for g, idx in ov.problem_entries(rec["task"], h).items():
                task, model, setting = ov.groups[g]
                out.append({"run": other, "group": g, "model": model, "setting": setting,
                            "same": other == run and g == int(v.group[i]),
                            "gens": [{"i": j, "gen": int(ov.gen[j]),
                                      "score": None if math.isnan(ov.score[j])
                                      else float(ov.score[j])} for j in idx]})
        return out

    def prompt(self, run: str, task: str, sample_id: str) -> dict:
        """The prompt the task renders for this sample, rebuilt from the run's configuration
        (records do not keep prompts)."""
        key = (run, task)
        samples = self.samples_by_task.get(key)
        if samples is None:
            try:
                samples = self.samples_by_task[key] = self._load_samples(run, task)
            except Exception as e:  # a task that no longer builds, data that is not here
                return {"messages": None, "why": f"{type(e).__name__}: {e}"}
        built = samples.get("task")
        sample = samples["by_id"].get(sample_id)
        if sample is None:
            return {"messages": None, "why": f"task {task!r} has no sample {sample_id!r} now"}
        try:
            return {"messages": built.prompt(sample), "why": None}
        except Exception as e:
            return {"messages": None, "why": f"{type(e).__name__}: {e}"}

    def _load_samples(self, run: str, task: str) -> dict:
        from evals.config import RunConfig
        from evals.run import build_tasks

        log = self.logs[run]
        stored = log.read_meta().get("config")
        if not stored:
            raise ValueError("the run keeps no configuration to rebuild its task from")
        config = RunConfig.from_json(stored, str(log.meta_path))
        config.tasks = [t for t in config.tasks if t == task]
        config.task_params = {k: v for k, v in config.task_params.items()
                              if "." not in k or k.rpartition(".")[0] == task}
        built = build_tasks(config)
        if not built:
            raise ValueError(f"the run has no task {task!r}")
        samples = list(built[0].samples())
        if config.limit:
            samples = samples[:config.limit]
        return {"task": built[0], "by_id": {s.id: s for s in samples}}

    def groups(self) -> list[dict]:
        out = []
        for run in self.logs:
            v = self.view(run)
            out += [{"run": run, "group": g, "task": t, "model": m, "setting": s}
                    for g, (t, m, s) in enumerate(v.groups)]
        return out

    def differ(self, a: str, b: str, offset: int, limit: int) -> dict:
        (ra, ga), (rb, gb) = _side(a), _side(b)
        page = differing(self.view(ra), ga, self.view(rb), gb, offset, limit)
        return _clean({**page, "offset": offset, "limit": limit})


def _side(value: str) -> tuple[str, int]:
    run, _, group = value.rpartition(":")
    try:
        return run, int(group)
    except ValueError:
        raise web.HTTPBadRequest(text=f"expected RUN:GROUP, got {value!r}") from None


def make_app(viewer: Viewer) -> web.Application:
    routes = web.RouteTableDef()

    def guarded(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except web.HTTPBadRequest as e:
                return _json({"error": e.text}, 400)
            except KeyError as e:
                return _json({"error": f"unknown run {e.args[0]!r}"}, 404)
            except IndexError as e:
                return _json({"error": str(e)}, 404)
            except ValueError as e:
                return _json({"error": str(e)}, 400)
        return wrapped

    @routes.get("/")
    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    @routes.get("/api/runs")
    @guarded
    async def runs(request: web.Request) -> web.StreamResponse:
        return _json(await viewer.call(viewer.runs))

    @routes.get("/api/runs/{run}/metrics")
    @guarded
    async def metrics(request: web.Request) -> web.StreamResponse:
        run = request.match_info["run"]
        if run not in viewer.logs:
            raise KeyError(run)
        state, result = viewer.metrics_of(run)
        if state == "ready":
            return _json({"state": state, "rows": _clean(result)})
        return _json({"state": state, "error": result})

    @routes.get("/api/runs/{run}/facets")
    @guarded
    async def facets(request: web.Request) -> web.StreamResponse:
        run = request.match_info["run"]
        return _json(await viewer.call(lambda: viewer.view(run).facets()))

    @routes.get("/api/runs/{run}/samples")
    @guarded
    async def samples(request: web.Request) -> web.StreamResponse:
        return _json(await viewer.call(viewer.sample_page, request.match_info["run"],
                                       dict(request.query)))

    @routes.get("/api/runs/{run}/records/{i}")
    @guarded
    async def record(request: web.Request) -> web.StreamResponse:
        return _json(await viewer.call(viewer.record, request.match_info["run"],
                                       _int(request.match_info["i"])))

    @routes.get("/api/runs/{run}/prompt")
    @guarded
    async def prompt(request: web.Request) -> web.StreamResponse:
        run, q = request.match_info["run"], request.query
        if run not in viewer.logs:
            raise KeyError(run)
        result = await asyncio.get_running_loop().run_in_executor(
            viewer.prompts, viewer.prompt, run, q.get("task", ""), q.get("sample_id", ""))
        return _json(result)

    @routes.get("/api/groups")
    @guarded
    async def groups(request: web.Request) -> web.StreamResponse:
        return _json(await viewer.call(viewer.groups))

    @routes.get("/api/differ")
    @guarded
    async def differ(request: web.Request) -> web.StreamResponse:
        q = request.query
        return _json(await viewer.call(viewer.differ, q.get("a", ""), q.get("b", ""),
                                       max(0, _int(q.get("offset") or "0")),
                                       min(MAX_LIMIT, max(1, _int(q.get("limit") or "50")))))

    app = web.Application()
    app.add_routes(routes)
    app.router.add_static("/static/", STATIC)

    async def closing(app: web.Application) -> None:
        viewer.close()

    app.on_cleanup.append(closing)
    return app


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"not an integer: {raw!r}") from None


def _preload(viewer: Viewer, run: str) -> None:
    try:
        viewer.view(run)
    except Exception:  # noqa: BLE001 - the page's own request reports it, with its reason
        pass


async def start(viewer: Viewer, host: str = "127.0.0.1", port: int = 0
                ) -> tuple[web.AppRunner, str]:
    """Serve ``viewer``; returns the runner (``await runner.cleanup()`` stops it) and URL."""
    runner = web.AppRunner(make_app(viewer), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    return runner, f"http://{bound[0]}:{bound[1]}/"


def serve(results_dir: Path, run_ids: Sequence[str] | None = None, *, port: int = 0,
          open_browser: bool = True, announce: Callable[[str], None] = print) -> None:
    """Serve until interrupted (Ctrl-C)."""
    viewer = Viewer(results_dir, run_ids)
    # Read the runs asked for (else the newest) into columns while the server starts and
    # the browser opens: the worker thread is where views are made, so the first page
    # waits for this, not for a second read.
    for run in (list(run_ids) if run_ids else list(viewer.logs)[-1:])[:4]:
        viewer.worker.submit(_preload, viewer, run)

    async def main() -> None:
        runner, url = await start(viewer, port=port)
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, stop.set)  # cleanup ends the workers
        except (NotImplementedError, RuntimeError):
            pass
        announce(url)
        if open_browser:
            import webbrowser

            await asyncio.get_running_loop().run_in_executor(None, webbrowser.open, url)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
