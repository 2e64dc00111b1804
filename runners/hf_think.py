"""Thinking delimiters for open reasoning models, and where a generation's thought is.

Reasoning models of the ``<think>`` families (DeepSeek-R1 and its distills, Qwen3,
QwQ, s1, Phi-4-reasoning, ...) write their thought between ``<think>`` and
``</think>``; some chat templates open ``<think>`` in the generation prompt, others
let the model write it. Budget forcing (s1, Muennighoff et al. 2025) inserts the exact
strings held here; docs/local_models.md lists them. This module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evals.runner import ConfigError

DEFAULT_START, DEFAULT_END = "<think>", "</think>"
DEFAULT_WAIT = "Wait"  # what s1 appends when it suppresses the end of thinking


def unescape(value: str) -> str:
    r"""``-M think_end_insert="\n</think>\n\n"`` arrives with literal backslashes from the shell."""
    return value.encode("latin-1", "backslashreplace").decode("unicode_escape")


@dataclass(frozen=True)
class ThinkConfig:
    """The delimiters as text and as token ids (one tokenisation, reused for every row)."""

    start: str
    end: str
    end_insert: str  # appended when the budget runs out: "\n" + end + "\n\n" by default
    wait: str  # replaces a too-early end of thinking, up to wait_extensions times
    wait_extensions: int
    start_ids: tuple[int, ...]
    end_ids: tuple[int, ...]
    end_insert_ids: tuple[int, ...]
    wait_ids: tuple[int, ...]

    def opened(self, prompt: str) -> bool:
        """Does the rendered prompt leave a thought open (template wrote ``<think>``)?"""
        return prompt.rfind(self.start) > prompt.rfind(self.end)


def think_config(tokenizer: Any, options: dict[str, Any]) -> ThinkConfig | None:
    """Delimiters from ``-M think_start/think_end``, else ``<think>`` if the model knows it.

    Returns None for models that do not think (``-M think_start=none`` forces that).
    """
    start = options.get("think_start")
    end = options.get("think_end")
    if any(v is not None and str(v).lower() == "none" for v in (start, end)):
        return None
    if start is None and end is None:
        vocab = tokenizer.get_vocab()
        template = str(getattr(tokenizer, "chat_template", "") or "")
        known = (DEFAULT_START in vocab and DEFAULT_END in vocab) or DEFAULT_END in template
        if not known:
            return None
        start, end = DEFAULT_START, DEFAULT_END
    elif start is None or end is None:
        raise ConfigError("set both -M think_start=... and -M think_end=... (or neither)")
    start, end = unescape(str(start)), unescape(str(end))
    insert = unescape(str(options.get("think_end_insert") or f"\n{end}\n\n"))
    wait = unescape(str(options.get("wait_string") or DEFAULT_WAIT))
    waits = int(options.get("wait_extensions") or 0)
    if waits < 0:
        raise ConfigError("wait_extensions must be 0 or more")
    if end not in insert:
        raise ConfigError(f"think_end_insert {insert!r} must contain think_end {end!r}")

    def ids(text: str) -> tuple[int, ...]:
        return tuple(tokenizer.encode(text, add_special_tokens=False))

    config = ThinkConfig(start, end, insert, wait, waits, ids(start), ids(end), ids(insert),
                         ids(wait))
    if not config.start_ids or not config.end_ids or not config.wait_ids:
        raise ConfigError(f"think delimiters {start!r}/{end!r}/{wait!r} encode to no tokens")
    # Suppressing the end of a thought means refusing one sampled token: the delimiter
    # must be that one token (true of every <think> family, where it is an added token).
    if waits and len(config.end_ids) != 1:
        raise ConfigError(f"wait_extensions needs think_end {end!r} to be one token "
                          f"(it is {len(config.end_ids)})")
    return config


def find(seq: list[int], sub: tuple[int, ...], start: int = 0) -> int:
    """Index of the first occurrence of ``sub`` in ``seq`` at or after ``start``, or -1."""
    k = len(sub)
    first = sub[0]
    for i in range(start, len(seq) - k + 1):
        if seq[i] == first and tuple(seq[i:i + k]) == sub:
            return i
    return -1


@dataclass
class Split:
    """A generation cut into its thought and its answer, as token ids."""

    thought: list[int] | None  # None: the model did not think
    answer: list[int]


def split_generation(ids: list[int], think: ThinkConfig | None, opened: bool) -> Split:
    """Where the thought is in one uncontrolled generation (the single-phase path).

    ``opened``: the prompt already opened the thought. Otherwise a thought counts only
    if the model opens it before writing anything else of substance (first 4 tokens:
    some templates let the model emit a newline first).
    """
    if think is None:
        return Split(None, ids)
    begin = 0
    if not opened:
        at = find(ids[:len(think.start_ids) + 4], think.start_ids)
        if at < 0:
            return Split(None, ids)
        begin = at + len(think.start_ids)
    close = find(ids, think.end_ids, begin)
    if close < 0:  # never closed: all of it is thought (cut off by max_tokens)
        return Split(ids[begin:], [])
    return Split(ids[begin:close], ids[close + len(think.end_ids):])
