"""Fake batch endpoints for OpenAI, Anthropic and Gemini, on the fake servers.

Each class is its provider's fake server (same scripting, faults, latency and request
recording) plus the batch routes of its API. A batch's requests are answered when it
is created, each as the live route would answer it: a fault injected with ``inject``
that matches a request makes that request's result an error in the provider's shape
(``"400"`` is not worth retrying; ``"429"``, ``"500"`` and ``"503"`` are), so one
results file mixes successes and errors. Every look at a batch moves it one state on:

* OpenAI: ``validating``, ``in_progress`` (``steps`` looks), ``finalizing``, then
  ``completed``; ``expired`` with ``expire_after=N`` (the first N requests answered, the
  rest in the error file as ``batch_expired``); ``failed`` with ``fail=True``.
* Anthropic: ``in_progress`` (``steps`` looks), then ``ended``; with ``expire_after=N``
  the requests after the first N have result type ``expired``.
* Gemini: ``BATCH_STATE_PENDING``, ``BATCH_STATE_RUNNING`` (``steps`` looks), then
  ``BATCH_STATE_SUCCEEDED`` (``BATCH_STATE_EXPIRED`` with ``expire_after``: no answers).

``hold=True`` keeps batches running until ``release()``. ``stall`` (a set) makes a
phase hang after doing its work, for kill -9 tests: ``"upload"`` (OpenAI's file
upload, file kept), ``"create"`` (the batch is created, the answer never comes) and
``"results"`` (the download hangs); ``stalled[phase]`` counts the hung calls.
``created`` lists every batch created, with the custom_ids in it.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from evals.fake_anthropic import FakeAnthropic
from evals.fake_gemini import FakeGemini
from evals.fake_openai import FakeServer, _ERRORS, _last_user, _text
from evals.fake_responses import FakeResponses

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _BatchStore:
    """What the three fakes share: batches, their looks, stalls and outcomes."""

    def __init__(self, *args: Any, steps: int = 1, hold: bool = False,
                 expire_after: int | None = None, fail: bool = False, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.steps, self.hold, self.expire_after, self.fail = steps, hold, expire_after, fail
        self.store: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []  # {"id", "custom_ids"} per created batch
        self.stall: set[str] = set()
        self.stalled: dict[str, int] = {}
        self.looks = 0
        self._batch_ids = itertools.count(1)
        self._batch_lock = threading.Lock()

    def release(self) -> None:
        self.hold = False

    def _page(self, request: web.Request, after_param: str) -> tuple[list[dict], bool]:
        """Batches newest first, after the id in ``after_param``, up to ``limit``."""
        entries = sorted(self.store.values(), key=lambda e: e["created"], reverse=True)
        after = request.query.get(after_param)
        if after:
            ids = [e["id"] for e in entries]
            entries = entries[ids.index(after) + 1:] if after in ids else []
        limit = int(request.query.get("limit", 20))
        return entries[:limit], len(entries) > limit

    async def _maybe_stall(self, phase: str) -> None:
        if phase in self.stall:
            self.stalled[phase] = self.stalled.get(phase, 0) + 1
            await asyncio.sleep(3600)

    def _outcome(self, body: dict[str, Any], prompt: str) -> tuple[int, Any]:
        """(status, answer or error message) for one request, as the live route answers."""
        if self.record:
            self.requests.append(body)
        fault = self._take_fault(prompt, body)
        if fault is not None and fault.kind in _ERRORS:
            status, message, _, _ = _ERRORS[fault.kind]
            return status, fault.kw.get("message") or message
        try:
            return 200, self._completion(body, 1)
        except web.HTTPException as e:
            return e.status, orjson.loads(e.text or "{}")

    def _new_batch(self, prefix: str, ids: list[str], outcomes: list[tuple[int, Any]],
                   **extra: Any) -> dict[str, Any]:
        with self._batch_lock:
            bid = f"{prefix}{next(self._batch_ids)}"
            entry = {"id": bid, "ids": ids, "outcomes": outcomes, "looks": 0,
                     "created": time.time(), **extra}
            self.store[bid] = entry
            self.created.append({"id": bid, "custom_ids": list(ids)})
        return entry

    def _phase(self, entry: dict[str, Any]) -> str:
        """pending, running, or the end: done, expired, failed. Each look moves on one."""
        self.looks += 1
        entry["looks"] += 1
        looks = entry["looks"]
        if looks == 1:
            return "pending"
        if self.hold or looks <= 1 + self.steps:
            return "running"
        if self.fail:
            return "failed"
        return "expired" if self.expire_after is not None else "done"

    def _answered(self, index: int, phase: str) -> bool:
        return phase == "done" or (phase == "expired" and self.expire_after is not None
                                   and index < self.expire_after)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


class FakeOpenAIBatch(_BatchStore, FakeResponses):
    """Chat completions, the Responses API and the Batch API (files and batches)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.files: dict[str, bytes] = {}
        self._file_ids = itertools.count(1)

    def _completion(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        if "input" in body:  # a Responses API body
            return FakeResponses._completion(self, body, n)
        return FakeServer._completion(self, body, n)

    async def _upload(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or upload is None or not hasattr(upload, "file"):
            return self.json(self.error_body(400, "a file with purpose=batch is required"), 400)
        data = upload.file.read()
        fid = f"file-fake{next(self._file_ids)}"
        self.files[fid] = data
        await self._maybe_stall("upload")
        return self.json({"id": fid, "object": "file", "purpose": "batch", "bytes": len(data),
                          "filename": upload.filename, "created_at": int(time.time())})

    async def _create(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        body = orjson.loads(await request.read())
        endpoint = body.get("endpoint")
        if endpoint not in ("/v1/chat/completions", "/v1/responses") \
                or body.get("completion_window") != "24h" or body.get("input_file_id") not in self.files:
            return self.json(self.error_body(400, "bad endpoint, window or input file"), 400)
        lines = [orjson.loads(t) for t in self.files[body["input_file_id"]].splitlines() if t.strip()]
        ids = [line.get("custom_id") for line in lines]
        if len(set(ids)) != len(ids) or any(line.get("url") != endpoint for line in lines):
            return self.json(self.error_body(400, "custom_ids must be unique; urls must match "
                                                  "the endpoint"), 400)
        outcomes = []
        for line in lines:
            b = line.get("body") or {}
            prompt = _last_user(b) if "messages" in b else _text(
                (b.get("input") or [{}])[-1].get("content"))
            outcomes.append(self._outcome(b, prompt))
        entry = self._new_batch("batch_fake", ids, outcomes, endpoint=endpoint,
                                input_file_id=body["input_file_id"],
                                metadata=body.get("metadata") or {})
        await self._maybe_stall("create")
        return self.json(self._object(entry, "validating"))

    def _object(self, entry: dict[str, Any], status: str) -> dict[str, Any]:
        done = sum(1 for i, _ in enumerate(entry["ids"]) if entry.get("out") and i in entry["out"])
        return {"id": entry["id"], "object": "batch", "endpoint": entry["endpoint"],
                "input_file_id": entry["input_file_id"], "completion_window": "24h",
                "status": status, "output_file_id": entry.get("output_file_id"),
                "error_file_id": entry.get("error_file_id"),
                "created_at": int(entry["created"]), "metadata": entry["metadata"],
                "request_counts": {"total": len(entry["ids"]), "completed": done,
                                   "failed": entry.get("failed", 0)}}

    def _finish(self, entry: dict[str, Any], phase: str) -> None:
        if "output_file_id" in entry or phase == "failed":
            return
        out, err = [], []
        entry["out"] = set()
        for i, (cid, (status, answer)) in enumerate(zip(entry["ids"], entry["outcomes"])):
            rid = f"batch_req_{entry['id']}_{i}"
            if not self._answered(i, phase):
                err.append({"id": rid, "custom_id": cid, "response": None, "error": {
                    "code": "batch_expired", "message": "This request could not be executed "
                    "before the completion window expired."}})
            elif status == 200:
                entry["out"].add(i)
                out.append({"id": rid, "custom_id": cid, "error": None, "response": {
                    "status_code": 200, "request_id": rid, "body": answer}})
            else:
                error = answer if isinstance(answer, dict) else self.error_body(status, answer)
                err.append({"id": rid, "custom_id": cid, "error": None, "response": {
                    "status_code": status, "request_id": rid, "body": error}})
        entry["failed"] = len(err)
        for field, lines in (("output_file_id", out), ("error_file_id", err)):
            if lines:
                fid = f"file-fake{next(self._file_ids)}"
                self.files[fid] = b"".join(orjson.dumps(line) + b"\n" for line in lines)
                entry[field] = fid
            else:
                entry[field] = None

    async def _get_batch(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        entry = self.store.get(request.match_info["bid"])
        if entry is None:
            return self.json(self.error_body(404, "No batch found (fake)"), 404)
        phase = self._phase(entry)
        status = {"pending": "validating", "running": "in_progress", "done": "completed",
                  "expired": "expired", "failed": "failed"}[phase]
        if status == "completed" and entry["looks"] == 2 + self.steps:
            status = "finalizing"
        elif phase in ("done", "expired", "failed"):
            self._finish(entry, phase)
        return self.json(self._object(entry, status))

    async def _list(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        page, more = self._page(request, "after")
        return self.json({"object": "list", "data": [self._object(e, "in_progress") for e in page],
                          "has_more": more})

    async def _content(self, request: web.Request) -> web.StreamResponse:
        if refused := self._refuse(request):
            return refused
        data = self.files.get(request.match_info["fid"])
        if data is None:
            return self.json(self.error_body(404, "No such file (fake)"), 404)
        await self._maybe_stall("results")
        return web.Response(body=data, content_type="application/octet-stream")

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{fid}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches", self._list)
        app.router.add_get("/v1/batches/{bid}", self._get_batch)


class FakeAnthropicBatch(_BatchStore, FakeAnthropic):
    """The Messages API and the Message Batches API."""

    async def _create(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        requests = (orjson.loads(await request.read()) or {}).get("requests") or []
        ids = [r.get("custom_id") for r in requests]
        if not requests or len(set(ids)) != len(ids) or not all(
                isinstance(i, str) and _ID.match(i) for i in ids):
            return self.json(self.error_body(400, "requests: custom_id must be unique and "
                                                  "match ^[a-zA-Z0-9_-]{1,64}$"), 400)
        outcomes = [self._outcome(r.get("params") or {}, _last_user(r.get("params") or {}))
                    for r in requests]
        entry = self._new_batch("msgbatch_fake", ids, outcomes)
        await self._maybe_stall("create")
        return self.json(self._object(entry, "in_progress"))

    def _object(self, entry: dict[str, Any], status: str) -> dict[str, Any]:
        counts = {"processing": len(entry["ids"]), "succeeded": 0, "errored": 0,
                  "canceled": 0, "expired": 0}
        if status == "ended":
            counts["processing"] = 0
            for i, (code, _) in enumerate(entry["outcomes"]):
                kind = ("expired" if not self._answered(i, entry["phase"])
                        else "succeeded" if code == 200 else "errored")
                counts[kind] += 1
        return {"id": entry["id"], "type": "message_batch", "processing_status": status,
                "request_counts": counts, "created_at": _iso(entry["created"]),
                "ended_at": _iso(time.time()) if status == "ended" else None,
                "results_url": (f"{self.url}/v1/messages/batches/{entry['id']}/results"
                                if status == "ended" else None)}

    async def _get_batch(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        entry = self.store.get(request.match_info["bid"])
        if entry is None:
            return self.json(self.error_body(404, "batch not found (fake)"), 404)
        phase = self._phase(entry)
        if phase in ("pending", "running"):
            return self.json(self._object(entry, "in_progress"))
        entry["phase"] = phase
        return self.json(self._object(entry, "ended"))

    async def _results(self, request: web.Request) -> web.StreamResponse:
        if refused := self._refuse(request):
            return refused
        entry = self.store.get(request.match_info["bid"])
        if entry is None or "phase" not in entry:
            return self.json(self.error_body(404, "results not ready (fake)"), 404)
        await self._maybe_stall("results")
        lines = []
        for i, (cid, (code, answer)) in enumerate(zip(entry["ids"], entry["outcomes"])):
            if not self._answered(i, entry["phase"]):
                result: dict[str, Any] = {"type": "expired"}
            elif code == 200:
                result = {"type": "succeeded", "message": answer}
            else:
                error = answer if isinstance(answer, dict) else self.error_body(code, answer)
                result = {"type": "errored", "error": error}
            lines.append(orjson.dumps({"custom_id": cid, "result": result}) + b"\n")
        return web.Response(body=b"".join(lines), content_type="application/binary")

    async def _list(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        entries, more = self._page(request, "after_id")
        page = [self._object(e, "in_progress") for e in entries]
        return self.json({"data": page, "has_more": more,
                          "first_id": page[0]["id"] if page else None,
                          "last_id": page[-1]["id"] if page else None})

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_post("/v1/messages/batches", self._create)
        app.router.add_get("/v1/messages/batches", self._list)
        app.router.add_get("/v1/messages/batches/{bid}", self._get_batch)
        app.router.add_get("/v1/messages/batches/{bid}/results", self._results)


class FakeGeminiBatch(_BatchStore, FakeGemini):
    """generateContent and batch mode with inlined requests."""

    async def _create(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        batch = (orjson.loads(await request.read()) or {}).get("batch") or {}
        requests = (((batch.get("inputConfig") or {}).get("requests") or {})
                    .get("requests") or [])
        if not batch.get("displayName") or not requests:
            return self.json(self.error_body(400, "batch.displayName and inlined requests "
                                                  "are required"), 400)
        ids = [(r.get("metadata") or {}).get("key") for r in requests]
        outcomes = []
        for r in requests:
            body = r.get("request") or {}
            contents = body.get("contents") or [{}]
            outcomes.append(self._outcome(body, _text(contents[-1].get("parts"))))
        model = request.match_info["model"]
        self.models_asked.append(model)
        entry = self._new_batch("batches/fake", ids, outcomes, model=model,
                                display=batch["displayName"])
        await self._maybe_stall("create")
        return self.json(self._operation(entry, "BATCH_STATE_PENDING"))

    def _operation(self, entry: dict[str, Any], state: str) -> dict[str, Any]:
        n = len(entry["ids"])
        done = state in ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_EXPIRED")
        ok = sum(code == 200 for code, _ in entry["outcomes"]) if state.endswith("SUCCEEDED") else 0
        op: dict[str, Any] = {"name": entry["id"], "done": done, "metadata": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": f"models/{entry['model']}", "displayName": entry["display"],
            "state": state, "createTime": _iso(entry["created"]),
            "batchStats": {"requestCount": str(n), "successfulRequestCount": str(ok),
                           "failedRequestCount": str(n - ok if done else 0),
                           "pendingRequestCount": str(0 if done else n)}}}
        if state == "BATCH_STATE_SUCCEEDED":
            inlined = []
            for cid, (code, answer) in zip(entry["ids"], entry["outcomes"]):
                item: dict[str, Any] = {"metadata": {"key": cid}}
                if code == 200:
                    item["response"] = answer
                else:
                    item["error"] = (answer.get("error") if isinstance(answer, dict)
                                     else self.error_body(code, answer)["error"])
                inlined.append(item)
            op["response"] = {"@type": "type.googleapis.com/google.ai.generativelanguage."
                                       "v1main.GenerateContentBatchOutput",
                              "inlinedResponses": {"inlinedResponses": inlined}}
        return op

    async def _get_batch(self, request: web.Request) -> web.StreamResponse:
        if refused := self._refuse(request):
            return refused
        entry = self.store.get("batches/" + request.match_info["bid"])
        if entry is None:
            return self.json(self.error_body(404, "batch not found (fake)"), 404)
        phase = self._phase(entry)
        state = {"pending": "BATCH_STATE_PENDING", "running": "BATCH_STATE_RUNNING",
                 "done": "BATCH_STATE_SUCCEEDED", "expired": "BATCH_STATE_EXPIRED",
                 "failed": "BATCH_STATE_FAILED"}[phase]
        if state == "BATCH_STATE_SUCCEEDED":
            await self._maybe_stall("results")  # the answers come with the batch
        return self.json(self._operation(entry, state))

    async def _list(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        entries = sorted(self.store.values(), key=lambda e: e["created"], reverse=True)
        return self.json({"operations": [self._operation(e, "BATCH_STATE_RUNNING")
                                         for e in entries]})

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_post("/{version:v1|v1beta}/models/{model}:batchGenerateContent",
                            self._create)
        app.router.add_get("/{version:v1|v1beta}/batches", self._list)
        app.router.add_get("/{version:v1|v1beta}/batches/{bid}", self._get_batch)
