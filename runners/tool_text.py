"""Tool calls written as text: how models trained for tool calling spell a call, and
reading the calls back out of what they generated.

A local model (``hf/``) has no API that returns calls: it writes them in the format its
chat template taught it, and the runner must find them in the text. Three families
cover the open models trained for tool calling; their names are vLLM's
``--tool-call-parser`` names, so ``-M tool_parser=NAME`` means the same for ``hf/`` and
``vllm/``:

* ``hermes`` (Hermes 2/3, Qwen2.5, Qwen3, QwQ): ``<tool_call>{"name": ..., "arguments":
  {...}}</tool_call>``, one tag per call;
* ``llama3_json`` (Llama 3.1, 3.2, 3.3): ``{"name": ..., "parameters": {...}}``, alone on
  its line or after ``<|python_tag|>``, several separated by ``;``;
* ``mistral`` (Mistral 7B v0.3, Nemo, Small): ``[TOOL_CALLS][{"name": ..., "arguments":
  {...}}, ...]``, or the newer ``[TOOL_CALLS]name[ARGS]{...}``.

What counts as a call: a marker outside code. A model that explains the format in
prose usually quotes it in a fenced block or in backticks; those are left as text.
Only closed code hides a marker: an inline span ends on its line, and a fence that is
never closed is not one, so a stray backtick earlier in the answer cannot swallow a
call.
A call whose JSON does not parse (malformed, or cut off by max_tokens) is still
returned, its ``arguments`` the raw text it wrote, so the caller answers it as an
error instead of the call vanishing. The text around the calls stays the answer.

Call ids are not written by these models: each is derived from a key the caller
gives (the prompt and the generation), so a replayed generation has the same ids and
the next turn's prompt, which carries them, the same cache key. They are nine
alphanumeric characters because Mistral's templates refuse any other id.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from evals.runner import ToolCall

FORMATS = ("hermes", "llama3_json", "mistral")
# Marker strings a format's calls contain: kept when special tokens are dropped in decoding.
MARKERS = {"hermes": ("<tool_call>", "</tool_call>"), "llama3_json": ("<|python_tag|>",),
           "mistral": ("[TOOL_CALLS]", "[ARGS]", "[CALL_ID]")}

_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_LINE_CALL = re.compile(r'(?m)^[ \t]*(?=\{\s*"name"\s*:)')  # a JSON call opening a line
_DECODER = json.JSONDecoder()


@dataclass
class _Found:
    """One stretch of text that is a call (or several, in a list or after one marker)."""

    start: int
    end: int
    calls: list[tuple[str, str]]  # (name, arguments text)


def call_id(key: str, index: int) -> str:
    """The id of call ``index`` of the generation ``key`` names: 9 alphanumerics."""
    return hashlib.blake2b(f"{key}:{index}".encode(), digest_size=8).hexdigest()[:9]


def parse_tool_calls(text: str, fmt: str, key: str) -> tuple[str, list[ToolCall]]:
    """The answer without its calls, and the calls in order (ids from ``key``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown tool-call format {fmt!r} (known: {', '.join(FORMATS)})")
    find = _FINDERS[fmt]
    kept: list[str] = []
    found: list[tuple[str, str]] = []
    i = 0
    hit = find(text, 0)
    while i < len(text):
        if hit is not None and hit.start < i:  # it was inside code: look again after it
            hit = find(text, i)
        tick = text.find("`", i)
        if tick >= 0 and (hit is None or tick < hit.start):
            end = _code_end(text, tick)  # a marker quoted in code is prose
            kept.append(text[i:end])
            i = end
            continue
        if hit is None:
            kept.append(text[i:])
            break
        kept.append(text[i:hit.start])
        found += hit.calls
        i = hit.end
        hit = find(text, i)
    calls = [ToolCall(call_id(key, n), name, args) for n, (name, args) in enumerate(found)]
    return "".join(kept).strip(), calls


def _code_end(text: str, tick: int) -> int:
    """Where the code span opened by the backtick at ``tick`` ends (just after it);
    backticks that open nothing (an unclosed fence, a span not closed on its own
    line) end at themselves: they are plain characters."""
    if text.startswith("```", tick):
        close = text.find("```", tick + 3)
        return tick + 3 if close < 0 else close + 3
    run = tick  # `x`, ``x``: the same run of backticks closes it
    while run < len(text) and text[run] == "`":
        run += 1
    close = text.find("`" * (run - tick), run)
    if close < 0 or text.find("\n", run, close) >= 0:  # none on its line: a lone backtick
        return run
    return close + run - tick


def _from_object(obj: Any, raw: str) -> tuple[str, str]:
    """(name, arguments) of one parsed call; anything but a call object is malformed."""
    if isinstance(obj, dict) and isinstance(obj.get("name"), str):
        args = obj.get("arguments", obj.get("parameters", {}))
        return obj["name"], args if isinstance(args, str) else json.dumps(args,
                                                                            ensure_ascii=False)
    return _malformed(raw)


def _malformed(raw: str) -> tuple[str, str]:
    """A call whose JSON did not parse: the name if it can be read, the raw text."""
    name = _NAME.search(raw)
    return (name.group(1) if name else ""), raw.strip()


def _json_at(text: str, at: int) -> tuple[Any, int] | None:
    """The JSON value starting at ``at`` (after whitespace) and where it ends, or None."""
    while at < len(text) and text[at].isspace():
        at += 1
    try:
        return _DECODER.raw_decode(text, at)
    except ValueError:
        return None


def _region(text: str, i: int, marker: str, until: str) -> tuple[int, int, int] | None:
    """The next ``marker`` at or after ``i``: where it starts, where what follows it
    starts, and where that ends (at ``until``, or the end of the text)."""
    start = text.find(marker, i)
    if start < 0:
        return None
    body = start + len(marker)
    stop = text.find(until, body)
    return start, body, len(text) if stop < 0 else stop


def _find_hermes(text: str, i: int) -> _Found | None:
    region = _region(text, i, "<tool_call>", "</tool_call>")
    if region is None:
        return None
    start, body_from, close = region
    body = text[body_from:close]  # cut off by max_tokens: the rest of the text
    end = min(len(text), close + len("</tool_call>"))
    parsed = _json_at(body, 0)
    if parsed is None or body[parsed[1]:].strip():
        return _Found(start, end, [_malformed(body)])
    return _Found(start, end, [_from_object(parsed[0], body)])


def _find_llama(text: str, i: int) -> _Found | None:
    tag = text.find("<|python_tag|>", i)
    line = _LINE_CALL.search(text, i)
    if tag < 0 and line is None:
        return None
    if line is not None and (tag < 0 or line.end() < tag):
        # a line opening with {"name": ...}: a call only if it has the call's shape
        start = at = line.end()
        tagged = False
    else:
        start, at, tagged = tag, tag + len("<|python_tag|>"), True
    calls: list[tuple[str, str]] = []
    while True:
        parsed = _json_at(text, at)
        if parsed is None:  # malformed or cut off: the rest is the call's raw text
            if calls and not text[at:].strip():
                return _Found(start, at, calls)
            return _Found(start, len(text), calls + [_malformed(text[at:])])
        obj, end = parsed
        shaped = isinstance(obj, dict) and ("parameters" in obj or "arguments" in obj)
        if not shaped and not tagged and not calls:  # {"name": "Bob", "age": 3}: prose
            return _find_llama(text, end)
        calls.append(_from_object(obj, text[at:end]))
        after = end
        while after < len(text) and text[after] in " \t;":
            after += 1
        if after < len(text) and text[after] == "{":  # several calls: {...}; {...}
            at = after
            continue
        return _Found(start, end, calls)


def _find_mistral(text: str, i: int) -> _Found | None:
    region = _region(text, i, "[TOOL_CALLS]", "[TOOL_CALLS]")
    if region is None:
        return None
    start, at, stop = region
    if text[at:stop].lstrip().startswith("["):  # v0.3: a JSON list of calls
        parsed = _json_at(text, at)
        if parsed is None or not isinstance(parsed[0], list) or not parsed[0]:
            return _Found(start, stop, [_malformed(text[at:stop])])
        items, end = parsed
        return _Found(start, end, [_from_object(o, json.dumps(o)) for o in items])
    # v11+: name[ARGS]{...}, or name[CALL_ID]id[ARGS]{...}
    args_at = text.find("[ARGS]", at, stop)
    if args_at < 0:
        return _Found(start, stop, [("", text[at:stop].strip())])
    name = text[at:args_at].split("[CALL_ID]")[0].strip()
    parsed = _json_at(text, args_at + len("[ARGS]"))
    if parsed is None:
        return _Found(start, stop, [(name, text[args_at + len("[ARGS]"):stop].strip())])
    raw = text[args_at + len("[ARGS]"):parsed[1]].strip()
    return _Found(start, parsed[1], [(name, raw)])


_FINDERS: dict[str, Callable[[str, int], _Found | None]] = {
    "hermes": _find_hermes, "llama3_json": _find_llama, "mistral": _find_mistral}


def template_format(source: str) -> str | None:
    """The call format a chat template's source spells out, or None.

    A fallback for templates that cannot render a probe conversation: the source is
    searched for each format's own markers."""
    if "<tool_call>" in source:
        return "hermes"
    if "[TOOL_CALLS]" in source:
        return "mistral"
    if "<|python_tag|>" in source or ("ipython" in source and '"parameters"' in source):
        return "llama3_json"
    return None
