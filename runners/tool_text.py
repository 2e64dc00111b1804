"""Tool calls written as text: how models trained for tool calling spell a call, and
reading the calls back out of what they generated.

A local model (``hf/``) has no API that returns calls: it writes them in the format its
chat template taught it, and the runner must find them in the text. Five families
cover the open models trained for tool calling; their names are vLLM's
``--tool-call-parser`` names, so ``-M tool_parser=NAME`` means the same for ``hf/`` and
``vllm/``:

* ``hermes`` (Hermes 2/3, Qwen2.5, Qwen3, QwQ): ``<tool_call>{"name": ..., "arguments":
  {...}}</tool_call>``, one tag per call;
* ``llama3_json`` (Llama 3.1, 3.2, 3.3): ``{"name": ..., "parameters": {...}}``, alone on
  its line or after ``<|python_tag|>``, several separated by ``;``;
* ``mistral`` (Mistral 7B v0.3, Nemo, Small): ``[TOOL_CALLS][{"name": ..., "arguments":
  {...}}, ...]``, or the newer ``[TOOL_CALLS]name[ARGS]{...}``;
* ``qwen3_coder`` (Qwen3-Coder): ``<tool_call><function=NAME><parameter=KEY>
  VALUE</parameter>...</function></tool_call>``, the value between one newline on
  each side;
* ``glm45`` (GLM-4.5, 4.6): ``<tool_call>NAME<arg_key>KEY</arg_key><arg_value>VALUE
  </arg_value>...</tool_call>``.

The last two share ``<tool_call>`` with ``hermes`` but write no JSON around a call:
a value is written as it is when it is a string and as JSON otherwise, so it is read
back by the tool's schema (``tools``): as text for a ``string`` parameter or one the
schema does not name, as JSON (or the Python words ``True``, ``False``, ``None`` that
Qwen3-Coder's template prints) for any other type, and as text where that fails.

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

FORMATS = ("hermes", "llama3_json", "mistral", "qwen3_coder", "glm45")
JSON_FORMATS = FORMATS[:3]  # a call's arguments written as a JSON object
# Marker strings a format's calls contain: kept when special tokens are dropped in decoding.
MARKERS = {"hermes": ("<tool_call>", "</tool_call>"), "llama3_json": ("<|python_tag|>",),
           "mistral": ("[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"),
           "qwen3_coder": ("<tool_call>", "</tool_call>"),
           "glm45": ("<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>",
                     "</arg_value>")}

_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_LINE_CALL = re.compile(r'(?m)^[ \t]*(?=\{\s*"name"\s*:)')  # a JSON call opening a line
_DECODER = json.JSONDecoder()
_QWEN_NAME = re.compile(r"\s*<function=([^>\n]*)>")  # a cut-off call's name, if it got that far
_GLM_NAME = re.compile(r"[^\s<>{}]+(?=\s*(?:<arg_key>|$))")  # a name, then arguments or nothing
_GLM_ARG = re.compile(r"\s*<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.S)
_PYTHON_WORDS = {"True": True, "False": False, "None": None}
# In a template's source: <tool_call>, then JSON (after newlines, written or escaped)
_JSON_AFTER_TAG = re.compile(r"<tool_call>(?:\s|\\n)*\{")
Properties = dict[str, dict[str, Any]]  # function name -> its parameters' schemas


@dataclass
class _Found:
    """One stretch of text that is a call (or several, in a list or after one marker)."""

    start: int
    end: int
    calls: list[tuple[str, str]]  # (name, arguments text)


def call_id(key: str, index: int) -> str:
    """The id of call ``index`` of the generation ``key`` names: 9 alphanumerics."""
    return hashlib.blake2b(f"{key}:{index}".encode(), digest_size=8).hexdigest()[:9]


def parse_tool_calls(text: str, fmt: str, key: str, tools: list[dict[str, Any]] | None = None
                     ) -> tuple[str, list[ToolCall]]:
    """The answer without its calls, and the calls in order (ids from ``key``);
    ``tools`` (OpenAI's function form) types the XML formats' values."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown tool-call format {fmt!r} (known: {', '.join(FORMATS)})")
    finder, props = _FINDERS[fmt], _properties(tools)

    def find(text: str, i: int) -> _Found | None:
        return finder(text, i, props)
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


def _find_hermes(text: str, i: int, props: Properties) -> _Found | None:
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


def _find_llama(text: str, i: int, props: Properties) -> _Found | None:
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
            return _find_llama(text, end, props)
        calls.append(_from_object(obj, text[at:end]))
        after = end
        while after < len(text) and text[after] in " \t;":
            after += 1
        if after < len(text) and text[after] == "{":  # several calls: {...}; {...}
            at = after
            continue
        return _Found(start, end, calls)


def _find_mistral(text: str, i: int, props: Properties) -> _Found | None:
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


def _find_qwen3_coder(text: str, i: int, props: Properties) -> _Found | None:
    tag, bare = text.find("<tool_call>", i), text.find("<function=", i)
    if tag < 0 and bare < 0:
        return None
    if tag < 0 or 0 <= bare < tag:  # a call without its <tool_call> (as vLLM takes it)
        start, body_from, end_tag = bare, bare, "</function>"
    else:
        start, body_from, end_tag = tag, tag + len("<tool_call>"), "</tool_call>"
    close = text.find(end_tag, body_from)
    if close < 0:  # cut off by max_tokens: the rest is the call's raw text
        body = text[body_from:]
        name = _QWEN_NAME.match(body)
        return _Found(start, len(text), [(name.group(1) if name else "", body.strip())])
    body = text[body_from:close + (len(end_tag) if end_tag == "</function>" else 0)]
    end = close + len(end_tag)
    calls = []
    at = body.find("<function=")
    if at < 0 or body[:at].strip():
        return _Found(start, end, [("", body.strip())])
    while at >= 0:
        head = body.find(">", at)
        stop = body.find("</function>", at)
        stop = len(body) if stop < 0 else stop
        if head < 0 or head > stop:
            return _Found(start, end, calls + [("", body[at:].strip())])
        name = body[at + len("<function="):head].strip()
        args = _qwen3_coder_args(body[head + 1:stop], props.get(name, {}))
        calls.append((name, args) if args is not None else (name, body[at:stop].strip()))
        at = body.find("<function=", stop)
    return _Found(start, end, calls)


def _qwen3_coder_args(block: str, schemas: dict[str, Any]) -> str | None:
    """``<parameter=KEY>\\nVALUE\\n</parameter>`` pairs as JSON text; None if malformed."""
    args: dict[str, Any] = {}
    at = block.find("<parameter=")
    if (block if at < 0 else block[:at]).strip():
        return None
    while at >= 0:
        head = block.find(">", at)
        if head < 0:
            return None
        name = block[at + len("<parameter="):head].strip()
        close = block.find("</parameter>", head)
        value = block[head + 1:len(block) if close < 0 else close]
        value = value[1:] if value.startswith("\n") else value
        args[name] = _typed(value[:-1] if value.endswith("\n") else value, schemas.get(name))
        after = len(block) if close < 0 else close + len("</parameter>")
        at = block.find("<parameter=", after)
        if block[after:len(block) if at < 0 else at].strip():
            return None
    return json.dumps(args, ensure_ascii=False)


def _find_glm45(text: str, i: int, props: Properties) -> _Found | None:
    region = _region(text, i, "<tool_call>", "</tool_call>")
    if region is None:
        return None
    start, body_from, close = region
    body = text[body_from:close]
    end = min(len(text), close + len("</tool_call>"))
    name = _GLM_NAME.match(body.lstrip())
    if close == len(text) or name is None:  # cut off, or not NAME<arg_key>...: raw
        return _Found(start, end, [(name.group(0) if name else "", body.strip())])
    schemas = props.get(name.group(0), {})
    args: dict[str, Any] = {}
    at = len(body) - len(body.lstrip()) + name.end()
    while (pair := _GLM_ARG.match(body, at)) is not None:
        key = pair.group(1).strip()
        args[key] = _typed(pair.group(2), schemas.get(key))
        at = pair.end()
    if body[at:].strip():
        return _Found(start, end, [(name.group(0), body.strip())])
    return _Found(start, end, [(name.group(0), json.dumps(args, ensure_ascii=False))])


def _properties(tools: list[dict[str, Any]] | None) -> Properties:
    """Each function's parameter schemas, from tools in OpenAI's function form."""
    out: Properties = {}
    for tool in tools or ():
        function = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        params = function.get("parameters") if isinstance(function, dict) else None
        if isinstance(params, dict) and isinstance(params.get("properties"), dict):
            out[str(function.get("name"))] = params["properties"]
    return out


def _typed(raw: str, schema: Any) -> Any:
    """A value written as text, read by its parameter's schema (see the module's doc)."""
    kinds = schema.get("type") if isinstance(schema, dict) else None
    kinds = [kinds] if isinstance(kinds, str) else kinds if isinstance(kinds, list) else []
    if not kinds or "string" in kinds:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return _PYTHON_WORDS.get(raw.strip(), raw)


_FINDERS: dict[str, Callable[[str, int, Properties], _Found | None]] = {
    "hermes": _find_hermes, "llama3_json": _find_llama, "mistral": _find_mistral,
    "qwen3_coder": _find_qwen3_coder, "glm45": _find_glm45}


def wrapped_format(after: str) -> str | None:
    """Which format a call wrapped in ``<tool_call>`` is in, from what follows the tag:
    JSON (``hermes``), ``<function=`` (``qwen3_coder``) or a name then ``<arg_key>``
    (``glm45``); None for anything else."""
    after = after.lstrip()
    if after.startswith("{"):
        return "hermes"
    if after.startswith("<function="):
        return "qwen3_coder"
    if _GLM_NAME.match(after) and "<arg_key>" in after:
        return "glm45"
    return None


def template_format(source: str) -> str | None:
    """The call format a chat template's source spells out, or None.

    A fallback for templates that cannot render a probe conversation (and what
    ``vllm/`` reads before its server starts): the source is searched for each format's
    own markers. ``<tool_call>`` alone is not enough: Qwen3-Coder's and GLM-4.5's
    templates wrap their calls in it too, so ``hermes`` needs JSON right after it."""
    if "<function=" in source and "<parameter=" in source:
        return "qwen3_coder"
    if "<arg_key>" in source and "<arg_value>" in source:
        return "glm45"
    if _JSON_AFTER_TAG.search(source):
        return "hermes"
    if "[TOOL_CALLS]" in source:
        return "mistral"
    if "<|python_tag|>" in source or ("ipython" in source and '"parameters"' in source):
        return "llama3_json"
    return None
