"""A tool-using conversation in OpenAI's chat form, as the native runners read it.

``Request.messages`` and ``Request.tools`` are in OpenAI's chat-completions form
(docs/runners.md): assistant turns with ``tool_calls``, ``{"role": "tool",
"tool_call_id", "content"}`` answers, ``{"type": "function", "function": {...}}``
tools. The Responses API, Anthropic and Gemini each spell these their own way; what
they share is reading that form, which lives here: the declared functions, each
turn's calls, the answers grouped the way those APIs want them (consecutive answers
form one turn), and arguments as JSON text or as an object.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from evals.runner import ConfigError, RunnerError, ToolCall
from runners.native import content_text

TOOL_CHOICES = ("auto", "required", "none")


@dataclass(frozen=True)
class Function:
    name: str
    description: str | None
    parameters: dict[str, Any] | None  # a JSON schema; None: the function takes nothing
    strict: bool | None = None


def functions(tools: list[dict[str, Any]], runner: str) -> list[Function]:
    """The declared functions; anything but a function tool is refused with one line."""
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" \
                or not isinstance(function, dict) or not function.get("name"):
            raise ConfigError(f"{runner} takes function tools in OpenAI's form "
                              f"({{'type': 'function', 'function': {{'name', ...}}}}); "
                              f"tools[{i}] is {str(tool)[:80]}")
        out.append(Function(str(function["name"]), function.get("description"),
                            function.get("parameters"), function.get("strict")))
    return out


def tool_choice(request_choice: str | None, runner: str) -> str | None:
    if request_choice is not None and request_choice not in TOOL_CHOICES:
        raise ConfigError(f"{runner}: tool_choice must be one of {', '.join(TOOL_CHOICES)}, "
                          f"not {request_choice!r}")
    return request_choice


def calls_of(message: dict[str, Any]) -> list[ToolCall]:
    """An assistant message's tool calls (OpenAI form) as ToolCalls."""
    out = []
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        out.append(ToolCall(str(call.get("id") or ""), str(function.get("name") or ""),
                            arguments_text(function.get("arguments") or {})))
    return out


@dataclass
class Answer:
    call_id: str
    text: str


def turns(messages: list[dict[str, Any]]) -> Iterator[tuple[str, Any]]:
    """The conversation as ``(role, message)``, with each run of consecutive ``tool``
    answers as one ``("tool", [Answer, ...])``: the providers take a turn's answers
    together (Anthropic and Gemini in one user turn)."""
    answers: list[Answer] = []
    for m in messages:
        if m.get("role") == "tool":
            answers.append(Answer(str(m.get("tool_call_id") or ""), content_text(m.get("content"))))
            continue
        if answers:
            yield "tool", answers
            answers = []
        yield str(m.get("role")), m
    if answers:
        yield "tool", answers


def arguments_object(text: str) -> dict[str, Any]:
    """A call's arguments as the object the Anthropic and Gemini wire formats carry. A
    call rebuilt from text that is not a JSON object (a malformed call, answered as an
    error) keeps its text under ``arguments``, so the model still sees what it wrote."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {"arguments": text}
    return value if isinstance(value, dict) else {"arguments": text}


def arguments_text(value: Any) -> str:
    """A call's arguments as the JSON text a ToolCall holds: text as written, an object
    (or nothing) as its JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value if value is not None else {}).decode()


def unknown_call(runner: str, call_id: str) -> RunnerError:
    """A tool answer whose call is nowhere in the conversation: the provider would refuse
    the request, so it is not sent."""
    return RunnerError(f"{runner}: a tool answer for call {call_id!r}, which no earlier "
                       "assistant turn made")
