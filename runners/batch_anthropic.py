"""Anthropic's Message Batches API for ``anthropic/``.

``POST /v1/messages/batches`` takes ``{requests: [{custom_id, params}]}`` (params: the
Messages API body); ``GET /v1/messages/batches/{id}`` reports ``processing_status``
``in_progress``, ``canceling`` or ``ended`` with ``request_counts``; once ended,
``results_url`` serves JSONL lines ``{custom_id, result}`` whose ``result.type`` is
``succeeded`` (with the message), ``errored``, ``canceled`` or ``expired``. Limits:
100,000 requests or 256 MB a batch.

A batch has no name or metadata of its own, so a batch a killed run had sent is found
again (``find``) as the one created after the send with the same number of requests
that no other batch of the run's journal holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from evals.batch_api import Polled, jsonl
from evals.runner import Request, RunnerError
from runners.native import Part

_STATES = {"in_progress": "running", "canceling": "cancelling", "ended": "ended"}
_RETRYABLE = {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}


def _time(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def result_of(result: Any) -> Any:
    """One results line's ``result``: the message, or the RunnerError it stands for."""
    kind = result.get("type") if isinstance(result, dict) else None
    if kind == "succeeded":
        return result.get("message")
    if kind == "errored":
        error = (result.get("error") or {}).get("error") or result.get("error") or {}
        return RunnerError(f"{error.get('type')}: {error.get('message')}",
                           retryable=error.get("type") in _RETRYABLE)
    if kind in ("canceled", "expired"):
        return RunnerError(f"request {kind} before it ran", retryable=True)
    return RunnerError(f"unknown batch result: {str(result)[:120]}", retryable=True)


class MessageBatches:
    provider = "anthropic"
    max_requests = 100_000
    max_bytes = 250 * 2**20  # under the 256 MB a batch may have

    def __init__(self, runner: Any):
        self.runner = runner
        self._transport = runner._transport

    def line(self, custom_id: str, request: Request) -> dict[str, Any]:
        return {"custom_id": custom_id, "params": self.runner.body(request)[0]}

    def applied(self, request: Request) -> dict[str, Any] | None:
        return self.runner.body(request)[1]

    async def submit(self, name: str, lines: list[dict[str, Any]]) -> str:
        created = await self._transport.send("POST", "/v1/messages/batches", {"requests": lines})
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise RunnerError(f"batch created without an id: {str(created)[:120]}",
                              retryable=True)
        return created["id"]

    async def find(self, name: str, since: float, count: int, known: set[str]) -> str | None:
        after, found = None, []
        while True:
            page = await self._transport.send(
                "GET", "/v1/messages/batches?limit=100" + (f"&after_id={after}" if after else ""))
            data = page.get("data") if isinstance(page, dict) else None
            if not data:
                break
            for batch in data:
                created = _time(batch.get("created_at")) or since
                if created < since - 3600:
                    break
                total = sum(int(v) for v in (batch.get("request_counts") or {}).values())
                if created >= since - 300 and total == count and batch.get("id") not in known:
                    found.append((created, batch["id"]))
            if not page.get("has_more"):
                break
            after = page.get("last_id") or data[-1].get("id")
        return min(found)[1] if found else None

    async def poll(self, remote_id: str) -> Polled:
        data = await self._transport.send("GET", f"/v1/messages/batches/{remote_id}")
        raw = str(data.get("processing_status")) if isinstance(data, dict) else "unknown"
        counts = data.get("request_counts") if isinstance(data, dict) else None
        return Polled(_STATES.get(raw, "running"), raw,
                      {k: int(v) for k, v in (counts or {}).items() if isinstance(v, int)},
                      data)

    async def results(self, polled: Polled) -> dict[str, Any]:
        remote = polled.data.get("id")
        url = polled.data.get("results_url") or ""
        if not url.startswith(self._transport.base_url + "/"):  # the key goes nowhere else
            url = f"/v1/messages/batches/{remote}/results"
        raw = await self._transport.raw("GET", url)
        return {line.get("custom_id"): result_of(line.get("result"))
                for line in jsonl(raw, f"the results of {remote}")}

    def parse(self, body: Any, request: Request) -> Part:
        from runners.anthropic import parse_message

        return parse_message(body, bool(request.tools))

    async def aclose(self) -> None:
        """The runner's own transport: closed with the runner."""
