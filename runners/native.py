"""What the native provider runners share: ``openai-responses/``, ``anthropic/``, ``google/``.

Each provider has its own wire format, but the transport, the error mapping, the
per-family table of compute knobs and the fan-out of ``n`` samples are the same
problem three times:

* ``JsonTransport``: one pooled aiohttp session per runner, orjson bodies, errors as
  ``RunnerError`` exactly as the ``openai/`` runner raises them (same retryable
  statuses, Retry-After, 401/403 naming the endpoint and never the key). The official
  SDKs spend several times its CPU per call (bench/provider_cpu.py), so they are not
  used to talk to the providers.
* ``Family``: which knobs a model family takes; a setting it cannot take is refused
  with one line (``ConfigError``), a budget outside its range is clamped and the
  clamp recorded as the applied compute.
* ``Part`` and ``merge``: one provider call's completions, usage, cost and applied
  compute; several calls (n fanned out) add up into one ``Response``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from evals.prices import Price
from evals.runner import (Completion, ConfigError, Response, RunnerError,
                          Usage)
from runners.wire import aiohttp_errors, settle, status_error


def first_env(*names: str) -> str | None:
    """The first of these environment variables that is set and not empty."""
    for name in names:
        if value := os.environ.get(name):
            return value
    return None


def resolve_key(given: str | None, variables: tuple[str, ...], base_url: str,
                default_url: str) -> str:
    """The API key: given by -M api_key, else from the provider's variables. Only the
    provider's own endpoint needs one; local and fake servers take any."""
    if key := given or first_env(*variables):
        return key
    if base_url == default_url:
        raise ConfigError(f"{' or '.join(variables)} is not set (needed for {base_url})")
    return "EMPTY"


def need_name(family: str, name: str, example: str) -> None:
    if not name:
        raise ConfigError(f"model spec '{family}/' needs a model name, e.g. {family}/{example}")


def check_options(runner: str, unknown: dict[str, Any], known: str) -> None:
    if unknown:
        raise ConfigError(f"{runner} runner has no option {next(iter(unknown))!r} (known: {known})")


@dataclass(frozen=True)
class Family:
    """The compute knobs of the models whose names match ``pattern`` (an fnmatch glob).

    ``efforts``: the --effort values the family takes (empty: none). ``budget``: the
    thinking-budget range (min, max) it takes, None if it takes no budget; a budget
    outside the range is clamped into it. ``off``: a budget of 0 turns thinking off.
    ``instead``: what to use instead, for the refusal line.
    """

    pattern: str
    efforts: tuple[str, ...] = ()
    budget: tuple[int, int] | None = None
    off: bool = False
    instead: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # provider-specific traits

    def effort(self, model: str, effort: str) -> str:
        if effort not in self.efforts:
            if self.efforts:
                raise ConfigError(f"{model} takes --effort {'|'.join(self.efforts)}, "
                                  f"not {effort!r}")
            raise ConfigError(f"{model} takes no --effort{self.instead}")
        return effort

    def clamp_budget(self, model: str, budget: int) -> int:
        if self.budget is None:
            raise ConfigError(f"{model} takes no --thinking-budget{self.instead}")
        if budget == 0:
            if not self.off:
                raise ConfigError(f"{model} cannot turn thinking off (budget 0); its budget "
                                  f"range is {self.budget[0]}-{self.budget[1]}")
            return 0
        low, high = self.budget
        return min(max(budget, low), high)


def find_family(model: str, families: tuple[Family, ...]) -> Family | None:
    """The first family whose pattern matches; None for a model the table does not know
    (its settings are then sent as asked, unchecked)."""
    for family in families:
        if fnmatch.fnmatchcase(model, family.pattern):
            return family
    return None


@dataclass
class Part:
    """What one provider call gave back."""

    completions: list[Completion]
    usage: Usage
    applied: dict[str, Any] | None = None


async def gather_parts(calls) -> list["Part | RunnerError"]:
    """Fan-out calls side by side; a failed call comes back as its RunnerError so that
    the answers of its siblings are kept (``merge`` hands them over)."""
    parts = await asyncio.gather(*calls, return_exceptions=True)
    for part in parts:
        if isinstance(part, BaseException) and not isinstance(part, RunnerError):
            raise part  # a bug or a cancellation, not a failed call
    return list(parts)


def merge(parts: list["Part | RunnerError"], n: int, price: Price | None,
          start: float) -> Response:
    """One response from the parts of a request (a failed part, from ``gather_parts``,
    stands for one generation). When some failed, the rest are raised as a
    PartialResponse: they were paid for and are recorded."""
    completions: list[Completion | None] = []
    usage = Usage()
    cost = 0.0 if price else None
    failures = []
    for part in parts:
        if isinstance(part, RunnerError):
            completions.append(None)
            failures.append(part)
            continue
        completions += part.completions
        usage += part.usage
        if price:  # per call: long-context tiers go by each call's own prompt
            cost += price.cost(part.usage)
    applied = next((p.applied for p in parts if isinstance(p, Part) and p.applied), None)
    response = Response(completions[:n], usage, time.perf_counter() - start, cost,
                        applied=applied)
    return settle(response, failures, len(parts), n)


def cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """Text up to the first stop string, for APIs that take none (the Responses API)."""
    cut = min((i for s in stop or () if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def split_system(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """System messages joined into one string, and the rest (APIs that take the system
    prompt apart from the turns: Anthropic, Gemini)."""
    system = [content_text(m.get("content")) for m in messages if m.get("role") == "system"]
    rest = [m for m in messages if m.get("role") != "system"]
    return ("\n\n".join(system) if system else None), rest


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


class JsonTransport:
    """A pooled aiohttp session for one provider endpoint; see the module docs."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float):
        self.base_url = base_url
        self.timeout = timeout
        self._headers = {**headers, "Content-Type": "application/json"}  # may hold the key
        self._session = None  # created inside the running loop

    def __repr__(self) -> str:  # the headers carry the key
        return f"JsonTransport({self.base_url!r})"

    def _open(self):
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                headers=self._headers, timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        session = self._open()
        data = None if body is None else orjson.dumps(body)
        async with aiohttp_errors(self.base_url, self.timeout):
            async with session.request(method, self.base_url + path, data=data) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise status_error(resp.status, raw, resp.headers.get("Retry-After"),
                                       self.base_url)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RunnerError(f"malformed JSON from server: {raw[:80]!r}",
                              retryable=True) from None

    async def raw(self, method: str, path: str, data: bytes | None = None,
                  content_type: str | None = None) -> bytes:
        """The bytes of one call (a file upload, a JSONL download); ``path`` may be a whole
        URL on this endpoint. Errors as ``send`` raises them."""
        session = self._open()
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        headers = {"Content-Type": content_type} if content_type else None
        async with aiohttp_errors(self.base_url, self.timeout):
            async with session.request(method, url, data=data, headers=headers) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise status_error(resp.status, raw, resp.headers.get("Retry-After"),
                                       self.base_url)
        return raw

    async def events(self, path: str, body: dict[str, Any],
                     total: float) -> AsyncIterator[tuple[str, Any]]:
        """Server-sent events of one streamed POST as (event name, parsed data). The
        ``timeout`` bounds each silence between events (providers send pings), ``total``
        the whole stream."""
        import aiohttp

        session = self._open()
        timeout = aiohttp.ClientTimeout(total=total, sock_read=self.timeout)
        async with aiohttp_errors(self.base_url, self.timeout):
            async with session.post(self.base_url + path, data=orjson.dumps(body),
                                    timeout=timeout) as resp:
                if resp.status != 200:
                    raise status_error(resp.status, await resp.read(),
                                       resp.headers.get("Retry-After"), self.base_url)
                name, data = "message", []
                async for raw_line in resp.content:
                    line = raw_line.decode("utf-8").rstrip("\r\n")
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif not line and data:  # a blank line ends an event
                        try:
                            yield name, orjson.loads("\n".join(data))
                        except orjson.JSONDecodeError:
                            raise RunnerError(f"malformed event from server: {data[0][:80]!r}",
                                              retryable=True) from None
                        name, data = "message", []

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

