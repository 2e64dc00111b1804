"""``evals run --dry-run``: what a run would send and cost, per task, model and setting.

Nothing is sent and no key is needed. For each (task, model, setting): the requests
still to make (a run named with ``--run-id`` that exists counts only what it lacks),
their prompt tokens, counted with the model's tokenizer where one is available offline
(tiktoken's cached encodings for OpenAI's models; the local tokenizer of an ``hf/`` or
``vllm/`` model) and otherwise estimated at four characters a token and marked so; the
completion tokens a generation takes, from earlier runs of the same model and setting
in the results directory and bounded by ``--max-tokens``; and the cost range at live
and at batch prices (evals/prices.toml).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from evals.config import RunConfig
from evals.prices import Price, find_price, load_prices
from evals.runner import ConfigError, Usage

BATCH_FAMILIES = ("openai", "openai-responses", "anthropic", "google")


@dataclass
class Row:
    task: str
    model: str
    setting: str
    requests: int = 0
    prompt_tokens: int = 0
    counted: str = "estimated"  # or the tokenizer's name
    completion: tuple[float, float] | None = None  # per generation: (low, high)
    completion_from: str = "unknown"
    live: tuple[float, float] | None = None  # USD
    batch: tuple[float, float] | None = None


def _text(messages: list[dict[str, Any]]) -> str:
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text") or "" if isinstance(p, dict) else str(p)
                              for p in content)
        out.append(str(content or ""))
    return "\n".join(out)


def tokenizer_for(spec: str) -> tuple[Callable[[list[dict]], int], str] | None:
    """A prompt-token counter for ``spec`` that needs no network, and its name."""
    family, _, name = spec.partition("/")
    if family in ("openai", "openai-responses"):
        try:
            import tiktoken
            from tiktoken.model import encoding_name_for_model

            encoding = encoding_name_for_model(name)
        except (ImportError, KeyError):
            return None
        url = f"https://openaipublic.blob.core.windows.net/encodings/{encoding}.tiktoken"
        cache = (os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
                 or os.path.join(tempfile.gettempdir(), "data-gym-cache"))
        if not os.path.exists(os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())):
            return None  # tiktoken would download it
        enc = tiktoken.get_encoding(encoding)
        # a chat turn costs a few tokens of framing besides its text
        return (lambda ms: sum(len(enc.encode(_text([m]), disallowed_special=()))
                               + 4 for m in ms) + 3), f"tiktoken {encoding}"
    if family in ("hf", "vllm") and name:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
        except Exception:  # not installed, not on disk: estimated instead
            return None

        def count(messages: list[dict]) -> int:
            if getattr(tok, "chat_template", None):
                return len(tok.apply_chat_template(messages, tokenize=True,
                                                   add_generation_prompt=True))
            return len(tok.encode(_text(messages)))
        return count, "the model's tokenizer"
    return None


def estimate_text(messages: list[dict[str, Any]]) -> int:
    return len(_text(messages)) // 4 + 4 * len(messages)


def earlier_completions(results_dir: Path, model: str,
                        setting: str) -> tuple[float, float] | None:
    """Mean and largest completion tokens of a generation of ``model`` under ``setting``
    in the runs of ``results_dir`` (answered generations only)."""
    from evals.records import find_runs, iter_records

    total = count = 0
    largest = 0.0
    for log in find_runs(results_dir):
        if model not in ((log.read_meta().get("config") or {}).get("models") or []):
            continue
        for r in iter_records(log.samples_path):
            if r.get("model") != model or r.get("setting") != setting \
                    or r.get("status") == "error":
                continue
            tokens = float((r.get("usage") or {}).get("completion") or 0)
            total, count, largest = total + tokens, count + 1, max(largest, tokens)
    return (total / count, largest) if count else None


def _price(spec: str, options: dict[str, str]) -> Price | None:
    try:
        return find_price(spec.partition("/")[2], load_prices(options.get("prices")))
    except ConfigError:
        return None


def estimate(config: RunConfig, results_dir: Path, run_id: str | None = None) -> list[Row]:
    from evals.records import RunLog
    from evals.run import build_tasks, options_for, plan

    tasks = build_tasks(config)
    settings = config.settings()
    done: dict[tuple, set[int]] = {}
    if run_id and RunLog(results_dir / run_id).exists:
        done = RunLog(results_dir / run_id).done_generations()

    class Spec:  # plan() needs only a model name from a runner
        def __init__(self, model: str):
            self.model = model

    specs = [Spec(m) for m in config.models]
    loaded, _, _ = plan(tasks, specs, settings, config.limit, done)
    rows = []
    for spec in specs:
        options = options_for(spec.model, config.model_options)
        price = _price(spec.model, options)
        counter = tokenizer_for(spec.model)
        batchable = spec.model.partition("/")[0] in BATCH_FAMILIES
        for setting in settings:
            history = earlier_completions(results_dir, spec.model, setting.name)
            for task, samples in loaded:
                row = Row(task.name, spec.model, setting.name)
                if counter is not None:
                    row.counted = counter[1]
                for sample in samples:
                    have = done.get((task.name, spec.model, setting.name, sample.id), set())
                    missing = sum(g not in have for g in range(setting.samples))
                    if not missing:
                        continue
                    messages = task.prompt(sample)
                    tokens = counter[0](messages) if counter else estimate_text(messages)
                    row.requests += missing
                    row.prompt_tokens += tokens * missing
                row.completion, row.completion_from = _completion(history, setting.max_tokens)
                if price is not None:
                    row.live = _cost(price.cost, row)
                    if batchable:
                        row.batch = _cost(price.batch_cost, row)
                rows.append(row)
    return rows


def _completion(history: tuple[float, float] | None,
                max_tokens: int | None) -> tuple[tuple[float, float] | None, str]:
    if history and max_tokens:
        return (min(history[0], max_tokens), max_tokens), "earlier runs, --max-tokens"
    if history:
        return (history[0], history[1]), "earlier runs"
    if max_tokens:
        return (0.0, float(max_tokens)), "--max-tokens"
    return None, "unknown"


def _cost(price: Callable[[Usage], float], row: Row) -> tuple[float, float]:
    """The cost of the row's requests with the completion low and high. Each request is
    priced alone at the mean prompt (long-context tiers go by one call's prompt)."""
    if not row.requests:
        return 0.0, 0.0
    prompt = row.prompt_tokens / row.requests
    low, high = row.completion or (0.0, 0.0)
    return (price(Usage(prompt, low)) * row.requests, price(Usage(prompt, high)) * row.requests)


def _money(span: tuple[float, float] | None, known: bool) -> str:
    if span is None:
        return "-"
    low, high = span
    if not known:
        return f">= ${low:.4f}"
    return f"${low:.4f}" if abs(high - low) < 5e-5 else f"${low:.4f}-{high:.4f}"


def render(rows: list[Row]) -> str:
    header = ["task", "model", "setting", "requests", "prompt tokens", "completion/gen",
              "live", "batch"]
    table = [header]
    for r in rows:
        prompt = (f"{r.prompt_tokens:,}" if r.counted != "estimated"
                  else f"~{r.prompt_tokens:,} (est.)")
        comp = ("unknown" if r.completion is None else
                f"{r.completion[0]:,.0f}-{r.completion[1]:,.0f} ({r.completion_from})")
        known = r.completion is not None
        table.append([r.task, r.model, r.setting, f"{r.requests:,}", prompt, comp,
                      _money(r.live, known), _money(r.batch, known)])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
             for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counted = sorted({r.counted for r in rows if r.counted != "estimated"})
    notes = [f"{sum(r.requests for r in rows):,} requests in all; nothing was sent."]
    if any(r.counted == "estimated" for r in rows):
        notes.append("(est.): no tokenizer for the model offline; 4 characters a token.")
    if counted:
        notes.append("prompt tokens counted with " + ", ".join(counted) + ".")
    if any(r.live is None for r in rows):
        notes.append("-: no price for the model in the price table (or no batch API).")
    if any(r.completion is None for r in rows):
        notes.append(">=: prompt tokens only; give --max-tokens, or run the model and "
                     "setting once, for a completion estimate.")
    return "\n".join(lines + [""] + notes) + "\n"
