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
  call is rendered and the call's spelling read off (``<tool_call>``, ``[TOOL_CALLS]``,
  Llama's ``"parameters"``); the template's source is the fallback. ``-M tool_parser``
  overrides both.
"""

from __future__ import annotations

import json
import re
from typing import Any

from evals.runner import RunnerError
from runners.tool_text import MARKERS, template_format

# The probe: a call with a 9-character id (Mistral templates refuse others) and an
# argument name no real template or tool definition spells.
_PROBE_NAME, _PROBE_ARG, _PROBE_ID = "probe_function_x7", "probe_argument_x7", "probe0001"
_PROBE_TOOL = {"type": "function", "function": {
    "name": _PROBE_NAME, "description": "A probe.",
    "parameters": {"type": "object", "properties": {_PROBE_ARG: {"type": "integer"}}}}}
_LLAMA_CALL = re.compile(r'"parameters"\s*:\s*\{\s*"' + _PROBE_ARG)


def needs_conversion(messages: list[dict[str, Any]]) -> bool:
    return any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as chat templates expect it: call arguments as dicts, an
    assistant turn that only calls with empty content (not None, which some templates
    cannot concatenate), and each tool answer naming the function it answers."""
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
                        pass  # a malformed call of the model's: shown to it as written
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

    def format(self) -> str:
        if self.forced:
            return self.forced
        if self._format is None:
            self._format = self._rendered_format() or template_format(
                str(self.tokenizer.chat_template or ""))
            if self._format is None:
                raise RunnerError(
                    f"{self.spec}: cannot tell how this chat template's model writes tool "
                    "calls (its rendering of a call holds no <tool_call>, [TOOL_CALLS] or "
                    "Llama JSON); set -M tool_parser=hermes, llama3_json or mistral, or run "
                    "the agent with -T agent_protocol=text")
        return self._format

    def _rendered_format(self) -> str | None:
        """The format of a probe call as the template renders it: the text the call
        turn adds to the conversation before it."""
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
        if _PROBE_NAME not in added:
            return None
        if "<tool_call>" in added:
            return "hermes"
        if "[TOOL_CALLS]" in added:
            return "mistral"
        if "<|python_tag|>" in added or _LLAMA_CALL.search(added):
            return "llama3_json"
        return None

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
