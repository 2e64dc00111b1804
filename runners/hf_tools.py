"""Tools through a local model's chat template: what ``hf/`` renders and how it reads
the calls back.

A request carries the conversation in OpenAI's chat form (assistant ``tool_calls``
whose ``arguments`` is JSON text, ``tool`` answers) and the tools in OpenAI's
function-tool form. transformers' ``apply_chat_template(..., tools=...)`` hands both to
the template, but the templates of tool-calling models (Qwen2.5, Llama 3.1, Mistral)
write a call's arguments with ``| tojson``: given JSON text they would render a quoted
string, so the arguments go in as a dict (transformers' documented form).

Two things are found out from the template itself, never from the model's name:

* whether it takes tools at all: the same conversation rendered with and without the
  tools must differ, and name every tool. A template that ignores them would run the
  model blind to its tools, so the request is refused, pointing to the text protocol.
* how its model writes a call (runners/tool_text.py): a probe conversation with one
  call is rendered and the call's spelling read off (``<tool_call>`` and what it wraps:
  JSON, ``<function=`` or ``<arg_key>``; ``[TOOL_CALLS]``; Llama's ``"parameters"``).
  A rendered call in no known spelling is refused, not guessed; the template's source
  is read only when the probe cannot be rendered. ``-M tool_parser`` overrides both.
"""

from __future__ import annotations

import json
import re
from typing import Any

from evals.runner import RunnerError
from runners.tool_text import FORMATS, JSON_FORMATS, MARKERS, template_format, wrapped_format

# The probe: a call with a 9-character id (Mistral templates refuse others) and an
# argument name no real template or tool definition spells.
_PROBE_NAME, _PROBE_ARG, _PROBE_ID = "probe_function_x7", "probe_argument_x7", "probe0001"
_PROBE_TOOL = {"type": "function", "function": {
    "name": _PROBE_NAME, "description": "A probe.",
    "parameters": {"type": "object", "properties": {_PROBE_ARG: {"type": "integer"}}}}}
_LLAMA_CALL = re.compile(r'"parameters"\s*:\s*\{\s*"' + _PROBE_ARG)


def needs_conversion(messages: list[dict[str, Any]]) -> bool:
    return any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)


def template_messages(messages: list[dict[str, Any]], json_calls: bool = True
                      ) -> list[dict[str, Any]]:
    """The conversation as chat templates expect it: call arguments as dicts, an
    assistant turn that only calls with empty content (not None, which some templates
    cannot concatenate), and each tool answer naming the function it answers.

    A malformed call of the model's is shown to it as written where its template
    writes calls as JSON (``json_calls``); the XML formats' templates walk the
    arguments' items, so there it is shown with none (its tool answer says why)."""
    names: dict[str, str] = {}
    out = []
    for m in messages:
        if m.get("tool_calls"):
            calls = []
            for call in m["tool_calls"]:
                function = dict(call.get("function") or {})
                names[str(call.get("id"))] = str(function.get("name") or "")
                if isinstance(function.get("arguments"), str):
                    try:
                        function["arguments"] = json.loads(function["arguments"])
                    except ValueError:
                        pass
                if not json_calls and not isinstance(function.get("arguments"), dict):
                    function["arguments"] = {}
                calls.append({**call, "function": function})
            m = {**m, "tool_calls": calls, "content": m.get("content") or ""}
        elif m.get("role") == "tool" and "name" not in m:
            m = {**m, "name": names.get(str(m.get("tool_call_id")), "")}
        out.append(m)
    return out


class TemplateTools:
    """One tokenizer's template: does it take tools, and in which format do calls come."""

    def __init__(self, tokenizer: Any, spec: str, kwargs: dict[str, Any],
                 forced: str | None):
        self.tokenizer, self.spec, self.kwargs = tokenizer, spec, kwargs
        self.forced = forced
        self._checked: set[str] = set()  # tool sets the template was seen to render
        self._format: str | None = None
        self._drop: dict[str, frozenset[int]] = {}

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
               generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tools=tools, add_generation_prompt=generation_prompt, tokenize=False,
            **self.kwargs)

    def check(self, tools: list[dict[str, Any]]) -> str:
        """Refuse tools the template would drop; the call format of its model."""
        key = json.dumps(tools, sort_keys=True)
        if key not in self._checked:
            probe = [{"role": "user", "content": "Which tools do you have?"}]
            with_tools = self.render(probe, tools)
            names = [str((t.get("function") or t).get("name") or "") for t in tools]
            if with_tools == self.render(probe, None) or not all(n in with_tools for n in names):
                raise RunnerError(
                    f"{self.spec}: the chat template does not render tools, so the model would "
                    "never see them; run the agent with -T agent_protocol=text (or give a "
                    "template that takes tools: -M chat_template=FILE)")
            self._checked.add(key)
        return self.format()

    def writes_json(self) -> bool:
        """Whether the template writes a call's arguments as JSON (so it can show a
        malformed call's text); True when its format cannot be told."""
        try:
            return self.format() in JSON_FORMATS
        except RunnerError:
            return True

    def format(self) -> str:
        if self.forced:
            return self.forced
        if self._format is None:
            call = self._rendered_call()
            self._format = rendered_format(call) if call is not None else template_format(
                str(self.tokenizer.chat_template or ""))
            if self._format is None:
                shown = f": it renders a call as {call.strip()[:80]!r}" if call else ""
                raise RunnerError(
                    f"{self.spec}: cannot tell how this chat template's model writes tool "
                    f"calls{shown}; name the format with -M tool_parser=NAME "
                    f"({', '.join(FORMATS[:-1])} or {FORMATS[-1]}), or run the agent with "
                    "-T agent_protocol=text")
        return self._format

    def _rendered_call(self) -> str | None:
        """A probe call as the template renders it (the text the call turn adds to the
        conversation before it), or None when the template cannot render it."""
        user = {"role": "user", "content": "Probe."}
        call = {"role": "assistant", "content": "", "tool_calls": [{
            "id": _PROBE_ID, "type": "function",
            "function": {"name": _PROBE_NAME, "arguments": {_PROBE_ARG: 1}}}]}
        answer = {"role": "tool", "tool_call_id": _PROBE_ID, "name": _PROBE_NAME,
                  "content": "1"}
        try:
            before = self.render([user], [_PROBE_TOOL], False)
            after = self.render([user, call, answer], [_PROBE_TOOL], False)
        except Exception:  # a template with rules the probe breaks: read its source
            return None
        common = 0
        while common < min(len(before), len(after)) and before[common] == after[common]:
            common += 1
        added = after[common:]
        return added if _PROBE_NAME in added else None

    def drop_ids(self, fmt: str) -> frozenset[int]:
        """Special tokens to leave out of a decoded answer: all but ``fmt``'s markers
        (Mistral's ``[TOOL_CALLS]`` and Llama's ``<|python_tag|>`` are special tokens,
        which a plain ``skip_special_tokens`` decode would erase with the call's start)."""
        if fmt not in self._drop:
            tok = self.tokenizer
            special = {i for i, t in tok.added_tokens_decoder.items() if t.special}
            special |= set(tok.all_special_ids)
            keep = {i for i, t in tok.added_tokens_decoder.items() if t.content in MARKERS[fmt]}
            self._drop[fmt] = frozenset(special - keep)
        return self._drop[fmt]


def rendered_format(call: str) -> str | None:
    """The format of a probe call as a template rendered it, or None for a spelling
    none of the parsers reads (which must not be guessed: a Qwen3-Coder call read as
    ``hermes`` would be a malformed call every turn)."""
    tag = call.find("<tool_call>")
    if tag >= 0:
        return wrapped_format(call[tag + len("<tool_call>"):])
    if "[TOOL_CALLS]" in call:
        return "mistral"
    if "<|python_tag|>" in call or _LLAMA_CALL.search(call):
        return "llama3_json"
    return None
