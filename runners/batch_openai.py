"""OpenAI's Batch API for ``openai/`` (chat completions) and ``openai-responses/``.

The requests go up as one JSONL file (``POST /v1/files``, purpose ``batch``), one line
``{custom_id, method, url, body}`` each; ``POST /v1/batches`` creates the batch with
the file, the endpoint and the 24h window, and carries the journal's name for it in
``metadata.evals_batch`` so that a restarted run can find it (``find``). ``GET
/v1/batches/{id}`` reports ``validating``, ``in_progress``, ``finalizing``, then
``completed``, ``failed``, ``expired``, ``cancelling`` or ``cancelled``; the answers are
in the output file and the failed requests in the error file (``GET
/v1/files/{id}/content``), also for an expired batch. Limits: 50,000 requests and
200 MB a file.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from evals.batch_api import Polled, jsonl
from evals.runner import Request, RunnerError
from runners.native import JsonTransport, Part
from runners.openai_api import RETRYABLE_STATUS, parse_chat_completion

_STATES = {"validating": "pending", "in_progress": "running", "finalizing": "finalizing",
           "completed": "ended", "failed": "failed", "expired": "expired",
           "cancelling": "cancelling", "cancelled": "cancelled"}
# Line errors that say the batch ended before the request ran: worth another batch.
_UNRUN = {"batch_expired", "batch_cancelled"}


def multipart(fields: dict[str, str], name: str, filename: str,
              data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with ``fields`` and one file, and its content type."""
    boundary = "evals" + secrets.token_hex(12)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             .encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                 f'filename="{filename}"\r\nContent-Type: application/jsonl\r\n\r\n'.encode())
    return (b"".join(parts) + data + f"\r\n--{boundary}--\r\n".encode(),
            f"multipart/form-data; boundary={boundary}")


def line_error(line: dict[str, Any]) -> RunnerError | None:
    """The error of one line of an output or error file; None for an answer."""
    response = line.get("response") if isinstance(line.get("response"), dict) else {}
    error = line.get("error") if isinstance(line.get("error"), dict) else None
    status = response.get("status_code")
    if status == 200 and not error:
        return None
    if error:
        code = error.get("code") or "error"
        return RunnerError(f"{code}: {error.get('message') or ''}".strip(),
                           retryable=code in _UNRUN or code == "server_error")
    body = response.get("body") if isinstance(response.get("body"), dict) else {}
    detail = body.get("error") if isinstance(body.get("error"), dict) else {}
    return RunnerError(f"HTTP {status}: {detail.get('message') or ''}".strip(),
                       status=status, retryable=status in RETRYABLE_STATUS)


class _OpenAIBatches:
    provider = "openai"
    max_requests = 50_000
    max_bytes = 190 * 2**20  # under the 200 MB a file may have
    endpoint = ""

    def __init__(self, runner: Any, transport: JsonTransport, own: bool):
        self.runner = runner
        self._transport = transport
        self._own = own  # a transport made for batches, closed with them

    def body(self, request: Request) -> dict[str, Any]:
        raise NotImplementedError

    def line(self, custom_id: str, request: Request) -> dict[str, Any]:
        return {"custom_id": custom_id, "method": "POST", "url": self.endpoint,
                "body": self.body(request)}

    async def submit(self, name: str, lines: list[dict[str, Any]]) -> str:
        data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        body, content_type = multipart({"purpose": "batch"}, "file", f"{name}.jsonl", data)
        upload = orjson.loads(await self._transport.raw("POST", "/files", body, content_type))
        if not isinstance(upload, dict) or not isinstance(upload.get("id"), str):
            raise RunnerError(f"file upload answered without an id: {str(upload)[:120]}",
                              retryable=True)
        created = await self._transport.send("POST", "/batches", {
            "input_file_id": upload["id"], "endpoint": self.endpoint,
            "completion_window": "24h", "metadata": {"evals_batch": name}})
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise RunnerError(f"batch created without an id: {str(created)[:120]}",
                              retryable=True)
        return created["id"]

    async def find(self, name: str, since: float, count: int, known: set[str]) -> str | None:
        after = None
        while True:
            page = await self._transport.send(
                "GET", "/batches?limit=100" + (f"&after={after}" if after else ""))
            data = page.get("data") if isinstance(page, dict) else None
            if not data:
                return None
            for batch in data:
                if (batch.get("metadata") or {}).get("evals_batch") == name:
                    return batch.get("id")
                if (batch.get("created_at") or since) < since - 3600:
                    return None  # newest first: older than the send, it is not there
            if not page.get("has_more"):
                return None
            after = data[-1].get("id")

    async def poll(self, remote_id: str) -> Polled:
        data = await self._transport.send("GET", f"/batches/{remote_id}")
        raw = str(data.get("status")) if isinstance(data, dict) else "unknown"
        counts = data.get("request_counts") if isinstance(data, dict) else None
        return Polled(_STATES.get(raw, "running"), raw,
                      {k: int(v) for k, v in (counts or {}).items() if isinstance(v, int)},
                      data)

    async def results(self, polled: Polled) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in ("output_file_id", "error_file_id"):
            file_id = polled.data.get(field)
            if not file_id:
                continue
            raw = await self._transport.raw("GET", f"/files/{file_id}/content")
            for line in jsonl(raw, f"file {file_id}"):
                cid = line.get("custom_id")
                error = line_error(line)
                out[cid] = error if error is not None else line["response"].get("body")
        return out

    def applied(self, request: Request) -> dict[str, Any] | None:
        return None

    async def aclose(self) -> None:
        if self._own:
            await self._transport.aclose()


class ChatBatches(_OpenAIBatches):
    """``openai/``: each line a chat completion with its generation's seed."""

    endpoint = "/v1/chat/completions"

    def __init__(self, runner: Any):
        transport = JsonTransport(runner.base_url, {"Authorization": f"Bearer {runner._key}"},
                                  runner.timeout)
        super().__init__(runner, transport, own=True)

    def body(self, request: Request) -> dict[str, Any]:
        return self.runner.body(request, 1)

    def parse(self, body: Any, request: Request) -> Part:
        completions, usage = parse_chat_completion(body)
        return Part(completions[:1], usage)


class ResponsesBatches(_OpenAIBatches):
    """``openai-responses/``: each line a Responses API request, not stored, not in the
    background (the batch is what runs in the background)."""

    endpoint = "/v1/responses"

    def __init__(self, runner: Any):
        super().__init__(runner, runner._transport, own=False)

    def body(self, request: Request) -> dict[str, Any]:
        body = self.runner.body(request)
        body.pop("background", None)
        body["store"] = False
        return body

    def parse(self, body: Any, request: Request) -> Part:
        from runners.openai_responses import parse_response

        return parse_response(body, request.stop, bool(request.tools))
