"""Runner API: the one async interface every model backend implements.

A model spec is ``family/name`` (``openai/gpt-4o``, ``hf/./ckpt``, ``gold``).
Backends register a factory under their family, in code with
``@register_runner("family")`` or from a package through the
``evals.runners`` entry-point group.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol

import orjson

from evals.registry import Registry
from evals.task import Message


@dataclass
class Request:
    """One prompt sent to a model, with its compute settings as plain fields.

    ``gens`` numbers the ``n`` generations asked for (default ``0..n-1``): a
    resumed sample asks for just the ones it lacks. Generation ``g`` draws from
    seed ``seed + g`` and has its own cache key, so it is the same generation
    whether it is asked alone, in a batch or on resume.
    """

    messages: list[Message]
    n: int = 1
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    effort: str | None = None  # reasoning effort: "low", "medium", "high", ...
    thinking_budget: int | None = None  # thinking tokens
    gens: tuple[int, ...] | None = None
    # Tools the model may call, in OpenAI's function-tool form ({"type": "function",
    # "function": {"name", "description", "parameters"}}); a multi-turn conversation
    # carries the assistant's tool calls and the "tool" answers in ``messages``.
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None  # "auto", "required", "none"
    # A solver's limits (an agent's steps, and its tokens and USD over the episode): read
    # by the task, never sent to a model, not part of the cache key (a turn is the same
    # call whatever limit ends the episode later).
    max_steps: int | None = None
    agent_max_tokens: int | None = None
    agent_max_cost: float | None = None

    def generation(self, i: int) -> int:
        """The generation number of this request's ``i``-th completion."""
        return self.gens[i] if self.gens is not None else i

    def seed_for(self, i: int) -> int | None:
        """The seed of this request's ``i``-th completion: ``seed + its generation``."""
        return None if self.seed is None else self.seed + self.generation(i)

    def for_gens(self, gens: list[int] | tuple[int, ...]) -> "Request":
        """This request for the generations ``gens`` only."""
        return replace(self, n=len(gens), gens=tuple(gens))

    def cache_key(self, model: str, gen: int = 0) -> str:
        """The key of generation ``gen`` of this prompt and setting (not of ``n``)."""
        body = orjson.dumps(
            [model, self.messages, self.max_tokens, self.temperature,
             self.seed, self.stop, self.effort, self.thinking_budget, gen]
            + ([self.tools, self.tool_choice] if self.tools else []),
            option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(body, digest_size=16).hexdigest()


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0  # includes reasoning tokens, as OpenAI counts them
    reasoning_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens read from the provider's cache (billed lower)

    def __iadd__(self, other: "Usage") -> "Usage":
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.cached_tokens += other.cached_tokens
        return self


@dataclass
class ToolCall:
    """A tool call the model asks for: ``arguments`` is the JSON text it wrote (kept
    as written; the caller parses it and answers a malformed one as an error)."""

    id: str
    name: str
    arguments: str


# The key under which an assistant message carries its turn's provider state
# (``Completion.provider_items``) back to the runner that made it.
PROVIDER_ITEMS = "provider_items"


@dataclass
class Completion:
    """One generation. ``provider_items`` is what a provider needs to see again, as it
    sent it, when the conversation goes on after this turn (reasoning items with their
    encrypted content, signed thinking blocks, thought signatures): a JSON-able
    ``{"family": runner family, "items": [...]}``, opaque to everyone but that family.
    An agent loop copies it into the assistant message it appends (``PROVIDER_ITEMS``);
    the runner of that family sends the items instead of rebuilding the turn, and every
    runner drops the key before sending (``own_items``, ``without_provider_items``)."""

    text: str
    reasoning: str | None = None
    finish_reason: str | None = None  # "tool_calls" when the model asks for tools
    tool_calls: list[ToolCall] | None = None
    provider_items: dict[str, Any] | None = None


def provider_items(family: str, items: list[Any]) -> dict[str, Any]:
    """A turn's provider state, tagged with the family that can read it."""
    return {"family": family, "items": items}


def own_items(message: Message, family: str) -> list[Any] | None:
    """The provider items of an assistant message, if ``family`` made them."""
    state = message.get(PROVIDER_ITEMS)
    if isinstance(state, dict) and state.get("family") == family \
            and isinstance(state.get("items"), list):
        return state["items"]
    return None


def without_provider_item(message: Message) -> Message:
    """One message without provider items (itself when it carries none)."""
    if PROVIDER_ITEMS not in message:
        return message
    return {k: v for k, v in message.items() if k != PROVIDER_ITEMS}


def without_provider_items(messages: list[Message]) -> list[Message]:
    """The conversation as a server that knows no provider items takes it (the same
    list when no message carries any)."""
    if not any(PROVIDER_ITEMS in m for m in messages):
        return messages
    return [without_provider_item(m) for m in messages]


@dataclass
class Response:
    """Everything a backend returns for one request (``n`` completions)."""

    completions: list[Completion]
    usage: Usage = field(default_factory=Usage)
    latency: float = 0.0  # seconds, wall clock of the call(s)
    cost: float | None = None  # USD, where the price table knows the model
    cached: bool = False
    # The compute the provider applied, where it can differ from the request: an effort
    # it echoed back, a budget the runner clamped into the model's range. None: as asked.
    applied: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "completions": [_completion_json(c) for c in self.completions],
            "usage": [self.usage.prompt_tokens, self.usage.completion_tokens,
                      self.usage.reasoning_tokens, self.usage.cached_tokens],
            "latency": self.latency,
            "cost": self.cost,
            "applied": self.applied,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Response":
        # Entries cached before ``cached_tokens``, ``applied``, tool calls or provider
        # items existed lack them.
        return cls([Completion(*c[:3], [ToolCall(*t) for t in c[3]] if len(c) > 3 and c[3]
                               else None, c[4] if len(c) > 4 else None)
                    for c in data["completions"]], Usage(*data["usage"]),
                   data["latency"], data["cost"], applied=data.get("applied"))


def _completion_json(c: Completion) -> list[Any]:
    """[text, reasoning, finish_reason] and, where there are any, [tool calls] and
    provider items: an entry without them is as short as it was before they existed."""
    out: list[Any] = [c.text, c.reasoning, c.finish_reason]
    if c.tool_calls or c.provider_items is not None:
        out.append([[t.id, t.name, t.arguments] for t in c.tool_calls or ()])
    if c.provider_items is not None:
        out.append(c.provider_items)
    return out


class Runner(Protocol):
    """A model backend. ``model`` is the full spec, used in records and cache keys.

    A backend whose calls carry their own timeout sets ``enforces_timeout = True``;
    the orchestrator then adds no guard of its own (it costs a timer per call).
    A backend whose answers depend on more than the spec (an endpoint URL, options)
    sets ``cache_identity`` to a string naming all of it; the response cache keys on it.
    A backend whose answers cost nothing to recompute (``gold``) sets ``cacheable =
    False``: caching them would only grow the cache.
    A backend that answers from the sample itself (``gold``, with its reference solution)
    defines ``for_sample(sample) -> Runner``; the orchestrator asks it for each sample.
    """

    model: str

    async def generate(self, request: Request) -> Response: ...

    async def aclose(self) -> None: ...


class RunnerError(Exception):
    """A failed call. ``retryable`` errors are retried with backoff by the orchestrator."""

    def __init__(self, message: str, *, retryable: bool = False,
                 retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class PartialResponse(RunnerError):
    """Some of a request's generations failed (a fan-out where 3 of 4 calls succeeded).

    ``response.completions`` holds one entry per requested generation, None where
    that one failed; its usage and cost are those of the calls that succeeded, which
    were paid for and are recorded. The orchestrator keeps them and asks again for
    the rest.
    """

    def __init__(self, message: str, response: "Response", *, retryable: bool = True,
                 retry_after: float | None = None, status: int | None = None):
        super().__init__(message, retryable=retryable, retry_after=retry_after, status=status)
        self.response = response


class ConfigError(ValueError):
    """Bad model spec, missing key, unreachable endpoint: one line, non-zero exit."""


RunnerFactory = Callable[..., Runner]
# Built-in backends by family; packages add theirs through the evals.runners entry points.
RUNNERS: Registry[RunnerFactory] = Registry("backend", "evals.runners", {
    "openai": "runners.openai_api:make_runner",
    "openai-responses": "runners.openai_responses:make_runner",
    "anthropic": "runners.anthropic:make_runner",
    "google": "runners.google:make_runner",
    "gold": "runners.gold:make_runner",
    "hf": "runners.hf:make_runner",
    "vllm": "runners.vllm:make_runner",
}, error=ConfigError)


def register_runner(family: str) -> Callable[[RunnerFactory], RunnerFactory]:
    """``@register_runner("family")``: a backend registered in code."""
    return RUNNERS.register(family)


def runner_families() -> dict[str, RunnerFactory | str]:
    """Every backend family: its factory, or its ``module:object`` until first used."""
    return {name: entry.target for name, entry in RUNNERS.entries().items()}


def make_runner(spec: str, **options: Any) -> Runner:
    """Build a runner from ``family/name``; options are backend-specific (base_url, ...)."""
    family, _, name = spec.partition("/")
    if family not in RUNNERS:
        raise ConfigError(f"unknown model {spec!r}: no backend {family!r} "
                          f"(known: {', '.join(RUNNERS.names())})")
    return RUNNERS.get(family)(name, **options)
