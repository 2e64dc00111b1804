"""HTTP failures as ``RunnerError``s: one wording and one retry policy for every runner
that speaks to a server (``openai/``, the native provider runners, the batch clients)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import AsyncIterator

import orjson

from evals.runner import PartialResponse, Response, RunnerError

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds: a number or an HTTP date; anything else is no
    advice at all."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError):
        return None
    return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def status_error(status: int, raw: bytes, retry_after_header: str | None,
                 base_url: str) -> RunnerError:
    """A non-200 answer as an error carrying the server's own message."""
    try:
        err = orjson.loads(raw).get("error") or {}
        detail = err.get("message") if isinstance(err, dict) else str(err)
    except (orjson.JSONDecodeError, AttributeError):
        detail = raw[:200].decode("utf-8", "replace")
    if status in (401, 403):
        return RunnerError(f"{base_url} refused the API key (HTTP {status}): {detail}",
                           status=status)
    return RunnerError(f"HTTP {status}: {detail}", status=status,
                       retryable=status in RETRYABLE_STATUS,
                       retry_after=retry_after(retry_after_header))


@contextlib.asynccontextmanager
async def aiohttp_errors(base_url: str, timeout: float) -> AsyncIterator[None]:
    """aiohttp's failures (timeout, refused connection, broken stream) as retryable errors."""
    import aiohttp

    try:
        yield
    except asyncio.TimeoutError:
        raise RunnerError(f"timed out after {timeout:g}s", retryable=True) from None
    except aiohttp.ClientConnectorError as e:
        raise RunnerError(f"cannot connect to {base_url}: {e.os_error or e}",
                          retryable=True, status=-1) from None
    except aiohttp.ClientError as e:
        raise RunnerError(f"connection error: {type(e).__name__}: {e}",
                          retryable=True) from None


def settle(response: Response, failures: list[RunnerError], calls: int, n: int) -> Response:
    """The response of ``calls`` calls of which ``failures`` failed: itself when none did,
    the first error when all did, else a PartialResponse carrying the completions that
    succeeded (they were paid for and are recorded; the failed ones are None)."""
    if not failures:
        return response
    if len(failures) == calls:
        raise failures[0]
    first = failures[0]
    raise PartialResponse(f"{len(failures)} of {n} generations failed: {first}", response,
                          retryable=all(f.retryable for f in failures),
                          retry_after=first.retry_after, status=first.status)
