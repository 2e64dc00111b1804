"""The Gemini API's batch mode for ``google/``, with inlined requests.

``POST {base}/{version}/models/MODEL:batchGenerateContent`` takes ``{batch:
{displayName, inputConfig: {requests: {requests: [{request, metadata: {key}}]}}}}``
(request: the generateContent body; the journal's name for the batch is its
``displayName``, by which a restarted run finds it) and answers with an operation named
``batches/ID``. ``GET {base}/{version}/batches/ID`` reports the batch's ``state``
(``BATCH_STATE_PENDING``, ``_RUNNING``, ``_SUCCEEDED``, ``_FAILED``, ``_CANCELLED``,
``_EXPIRED``; older answers spell them ``JOB_STATE_*``) and, once done, the
``inlinedResponses``, each a response or an error with the request's metadata.
Inlined requests may total 20 MB a batch.
"""

from __future__ import annotations

from typing import Any

from evals.batch_api import Polled
from evals.runner import Request, RunnerError
from runners.native import Part

_STATES = {"PENDING": "pending", "QUEUED": "pending", "RUNNING": "running",
           "SUCCEEDED": "ended", "FAILED": "failed", "CANCELLING": "cancelling",
           "CANCELLED": "cancelled", "EXPIRED": "expired"}
_RETRYABLE = {429, 500, 502, 503, 504}


def _batch(data: Any) -> dict[str, Any]:
    """The batch inside an operation (``metadata``), or the batch itself."""
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict) \
            and "state" in data["metadata"]:
        return data["metadata"]
    return data if isinstance(data, dict) else {}


def _inlined(data: Any) -> list[Any]:
    for holder in ((data or {}).get("response"), _batch(data).get("output"),
                   (data or {}).get("output")):
        if isinstance(holder, dict):
            inner = holder.get("inlinedResponses")
            if isinstance(inner, dict):
                inner = inner.get("inlinedResponses")
            if isinstance(inner, list):
                return inner
    return []


class GeminiBatches:
    provider = "google"
    max_requests = 50_000
    max_bytes = 19 * 2**20  # under the 20 MB inlined requests may total

    def __init__(self, runner: Any):
        self.runner = runner
        self._transport = runner._transport
        self.version = runner.path.split("/")[1]

    def line(self, custom_id: str, request: Request) -> dict[str, Any]:
        self.runner.thinking(request)  # refuses a setting before anything is sent
        return {"request": self.runner.body(request, 1, request.seed_for(0)),
                "metadata": {"key": custom_id}}

    def applied(self, request: Request) -> dict[str, Any] | None:
        return self.runner.thinking(request)[1]

    async def submit(self, name: str, lines: list[dict[str, Any]]) -> str:
        created = await self._transport.send(
            "POST", f"/{self.version}/models/{self.runner.name}:batchGenerateContent",
            {"batch": {"displayName": name,
                       "inputConfig": {"requests": {"requests": lines}}}})
        remote = created.get("name") if isinstance(created, dict) else None
        if not isinstance(remote, str):
            raise RunnerError(f"batch created without a name: {str(created)[:120]}",
                              retryable=True)
        return remote

    async def find(self, name: str, since: float, count: int, known: set[str]) -> str | None:
        token = None
        while True:
            page = await self._transport.send(
                "GET", f"/{self.version}/batches?pageSize=100"
                + (f"&pageToken={token}" if token else ""))
            for op in (page.get("operations") or page.get("batches") or []
                       if isinstance(page, dict) else []):
                if _batch(op).get("displayName") == name:
                    return op.get("name")
            token = page.get("nextPageToken") if isinstance(page, dict) else None
            if not token:
                return None

    async def poll(self, remote_id: str) -> Polled:
        data = await self._transport.send("GET", f"/{self.version}/{remote_id}")
        batch = _batch(data)
        raw = str(batch.get("state") or "unknown")
        stats = batch.get("batchStats") if isinstance(batch.get("batchStats"), dict) else {}
        counts = {k: int(v) for k, v in stats.items() if str(v).isdigit()}
        return Polled(_STATES.get(raw.rpartition("_STATE_")[2], "running"), raw, counts, data)

    async def results(self, polled: Polled) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for entry in _inlined(polled.data):
            if not isinstance(entry, dict):
                continue
            key = (entry.get("metadata") or {}).get("key")
            error = entry.get("error")
            if isinstance(error, dict):
                code = error.get("code")
                out[key] = RunnerError(f"{error.get('status') or code}: {error.get('message')}",
                                       status=code if isinstance(code, int) else None,
                                       retryable=code in _RETRYABLE)
            else:
                out[key] = entry.get("response")
        return out

    def parse(self, body: Any, request: Request) -> Part:
        from runners.google import parse_generation

        part = parse_generation(body, 1, bool(request.tools))
        part.completions = part.completions[:1]
        return part

    async def aclose(self) -> None:
        """The runner's own transport: closed with the runner."""
