"""What a provider's batch API is to batch mode (evals/batch.py): the ``BatchAPI``
protocol each runner family implements, their registry (``BATCH_APIS``), a request's
``custom_id`` inside its batch, and reading a downloaded JSONL results file. The
runners' batch modules import this, not the batch driver."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

import orjson

from evals.registry import Registry
from evals.runner import Request, RunnerError


def custom_id(task: str, model: str, setting: str, sample_id: str, gen: int) -> str:
    """A request's id inside its batch: the unit's key hashed, and its generation.
    Stable across sessions; within the 64 characters of [A-Za-z0-9_-] every provider
    takes. The journal keeps the key it stands for."""
    digest = hashlib.blake2b(orjson.dumps([task, model, setting, sample_id]),
                             digest_size=12).hexdigest()
    return f"u{digest}-g{gen}"


def jsonl(raw: bytes, where: str) -> Iterator[dict[str, Any]]:
    """The objects of a downloaded JSONL results file; a malformed line is retryable."""
    for text in raw.splitlines():
        if not text.strip():
            continue
        try:
            yield orjson.loads(text)
        except orjson.JSONDecodeError:
            raise RunnerError(f"malformed line in {where}: {text[:80]!r}",
                              retryable=True) from None


# The batch API of each runner family that has one: lazy ``module:object`` entries
# (a class taking the runner), extended by the ``evals.batch_apis`` entry-point group.
BATCH_APIS: Registry[Any] = Registry("batch API", "evals.batch_apis", {
    "openai": "runners.batch_openai:ChatBatches",
    "openai-responses": "runners.batch_openai:ResponsesBatches",
    "anthropic": "runners.batch_anthropic:MessageBatches",
    "google": "runners.batch_google:GeminiBatches",
})


@dataclass
class Polled:
    """One look at a provider batch."""

    state: str  # normalised: one of RUNNING or TERMINAL
    raw: str  # as the provider names it, for the display
    counts: dict[str, int]
    data: Any  # the provider's object, for ``results``


class BatchAPI(Protocol):
    """One provider's batch wire format, for one runner (``BATCH_APIS[family](runner)``)."""

    provider: str
    max_requests: int
    max_bytes: int

    def line(self, custom_id: str, request: Request) -> dict[str, Any]: ...

    def applied(self, request: Request) -> dict[str, Any] | None: ...

    async def submit(self, name: str, lines: list[dict[str, Any]]) -> str: ...

    async def find(self, name: str, since: float, count: int, known: set[str]) -> str | None: ...

    async def poll(self, remote_id: str) -> Polled: ...

    async def results(self, polled: Polled) -> dict[str, Any]:
        """custom_id -> the provider's answer (for ``parse``) or the RunnerError it is."""

    def parse(self, body: Any, request: Request) -> Any:
        """One answer as a ``runners.native.Part`` (one completion)."""

    async def aclose(self) -> None: ...
