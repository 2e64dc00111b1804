"""``--ranker reward/PATH_OR_ID``: a reward model (sequence classification) ranks completions.

For best@k without a task verifier: each completion is scored by a local reward
model (e.g. Skywork-Reward, InternLM2-Reward, any ``AutoModelForSequenceClassification``
checkpoint with one output) on the conversation [user: problem, assistant: completion]
rendered with its own chat template; the scalar output becomes the record's ``rank``.
Like the LLM judge, it never sees the reference answer.

Concurrent ``rank`` calls are batched: they queue, and one background task scores up
to ``batch_size`` of them per forward pass on the ranker's own thread (torch caches per
thread; see runners/hf.py). Options (``--ranker-option key=value``): ``device``,
``dtype`` (as for ``hf/``), ``batch_size`` (16), ``max_length`` (tokens, longer
conversations lose their start: the answer is at the end), ``label`` (which output
to read when the head has several, default 0), ``chat_template``, ``batch_wait``,
``cudnn_attention`` (as for ``hf/``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from typing import Any

from evals.judge import problem_text
from evals.runner import ConfigError, RunnerError
from evals.task import Sample, is_true

OPTIONS = ("device", "dtype", "batch_size", "max_length", "label", "chat_template",
           "batch_wait", "trust_remote_code", "revision", "cudnn_attention")


@dataclass
class RewardOptions:
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 16
    max_length: int = 4096
    label: int = 0
    chat_template: str | None = None
    batch_wait: float = 0.005
    trust_remote_code: bool = False
    revision: str | None = None
    cudnn_attention: bool = False  # see runners/hf.py: a graph per shape, and every
    # conversation has its own length

    @classmethod
    def parse(cls, options: dict[str, Any]) -> "RewardOptions":
        unknown = [k for k in options if k not in OPTIONS]
        if unknown:
            raise ConfigError(f"reward ranker has no option {unknown[0]!r} "
                              f"(known: {', '.join(OPTIONS)})")
        try:
            out = cls(device=str(options.get("device", "auto")),
                      dtype=str(options.get("dtype", "auto")),
                      batch_size=int(options.get("batch_size", 16)),
                      max_length=int(options.get("max_length", 4096)),
                      label=int(options.get("label", 0)),
                      chat_template=options.get("chat_template"),
                      batch_wait=float(options.get("batch_wait", 0.005)),
                      trust_remote_code=is_true(options.get("trust_remote_code", False)),
                      revision=options.get("revision"),
                      cudnn_attention=is_true(options.get("cudnn_attention", False)))
        except ValueError as e:
            raise ConfigError(f"reward ranker: bad option value: {e}") from None
        if out.batch_size < 1 or out.max_length < 8:
            raise ConfigError("reward ranker: batch_size must be >= 1 and max_length >= 8")
        return out


def make_ranker(name: str, **options: Any) -> "RewardRanker":
    if not name:
        raise ConfigError("--ranker reward/ needs a local path or hub id, e.g. "
                          "reward/Skywork/Skywork-Reward-V2-Llama-3.1-8B")
    opts = RewardOptions.parse(options)
    return RewardRanker(f"reward/{name}", *load(name, opts), opts)


def load(name: str, opts: RewardOptions) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification

    from runners.hf import DTYPES, HFOptions
    from runners.hf import load as load_causal

    if opts.dtype not in DTYPES:
        raise ConfigError(f"reward ranker: dtype must be one of {', '.join(DTYPES)}")
    device = opts.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    # The hf runner's loader settles device, dtype, paths and error messages; only the
    # model class differs.
    hf = HFOptions(dtype=opts.dtype, device=device, trust_remote_code=opts.trust_remote_code,
                   revision=opts.revision)
    model, tokenizer = load_causal(name, hf, model_class=AutoModelForSequenceClassification)
    labels = model.config.num_labels
    if not 0 <= opts.label < labels:
        raise ConfigError(f"reward/{name}: label {opts.label} but the head has {labels} output(s)")
    return model, tokenizer


class RewardRanker:
    """``await ranker.rank(sample, completion)`` -> the reward model's score."""

    def __init__(self, spec: str, model: Any, tokenizer: Any, opts: RewardOptions):
        self.model = spec
        self.net, self.tokenizer, self.opts = model, tokenizer, opts
        from runners.hf import avoid_cudnn_attention, set_chat_template

        set_chat_template(tokenizer, opts.chat_template, spec, "--ranker-option")
        # The model reads each row at its last token that is not config.pad_token_id, so
        # the tokenizer must pad with exactly that id (the config's, where it names one).
        configured = getattr(model.config, "pad_token_id", None)
        if configured is not None:
            tokenizer.pad_token_id = configured
        elif tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token  # then a trailing EOS is not read
        model.config.pad_token_id = tokenizer.pad_token_id
        avoid_cudnn_attention(model, opts.cudnn_attention)
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = "left"  # keep the end: the final answer
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="reward")
        self._queue: list[tuple[str, asyncio.Future]] = []
        self._running: list[tuple[str, asyncio.Future]] = []  # the batch being scored
        self._batcher: asyncio.Task | None = None
        self.batches: list[int] = []  # conversations per forward pass, for tests

    def text(self, sample: Sample, completion: str) -> str:
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": problem_text(sample)},
             {"role": "assistant", "content": completion}], tokenize=False)

    def score(self, texts: list[str]) -> list[float]:
        """One forward pass over ``texts`` (runs on the ranker's thread)."""
        import torch

        batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                               max_length=self.opts.max_length, add_special_tokens=False)
        batch = {k: v.to(self.net.device) for k, v in batch.items()}
        with torch.inference_mode():
            logits = self.net(**batch).logits
        return logits[:, self.opts.label].float().tolist()

    async def rank(self, sample: Sample, completion: str) -> float | None:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((self.text(sample, completion), future))
        if self._batcher is None or self._batcher.done():
            self._batcher = asyncio.create_task(self._serve())
        return await future

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                await asyncio.sleep(self.opts.batch_wait)  # let concurrent callers join
                waiting = [item for item in self._queue if not item[1].done()]  # gave up: skip
                batch, self._queue = (waiting[:self.opts.batch_size],
                                      waiting[self.opts.batch_size:])
                if not batch:
                    continue
                self._running = batch  # failed by the finally below if we are cancelled
                try:
                    scores = await loop.run_in_executor(self._thread, self.score,
                                                        [text for text, _ in batch])
                except Exception as e:  # e.g. out of memory: these stay unranked, run goes on
                    self._running = []
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                self._running = []
                self.batches.append(len(batch))
                for (_, future), value in zip(batch, scores):
                    if not future.done():
                        future.set_result(value)
        finally:  # cancelled by aclose(): nobody may wait forever
            for _, future in self._running + self._queue:
                if not future.done():
                    future.set_exception(RunnerError(f"{self.model}: ranker closed"))

    async def aclose(self) -> None:
        if self._batcher is not None and not self._batcher.done():
            self._batcher.cancel()
            try:
                await self._batcher
            except (asyncio.CancelledError, Exception):
                pass
        for _, future in self._queue:
            if not future.done():
                future.set_exception(RunnerError(f"{self.model}: ranker closed"))
        self._queue = []
