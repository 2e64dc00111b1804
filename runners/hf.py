"""``hf/PATH_OR_ID``: a local model on transformers, batched across concurrent requests.

The orchestrator awaits ``generate(request)`` from up to ``--concurrency`` workers.
Each call renders its prompt with the model's chat template and joins a queue; one
background task drains it, groups requests whose generation can share one
``model.generate`` (same n, max_tokens and thinking budget), and runs each group on the
runner's one generation thread so the event loop keeps serving the other workers. One
long-lived thread, not a fresh one per batch: torch keeps per-thread caches (cuBLAS
handles, cuDNN graphs) that a new thread would rebuild. ``n`` samples use ``num_return_sequences``: the prompt is tokenised once.

Thinking models (``<think>`` families, or ``-M think_start/think_end``) get their
thought in ``Completion.reasoning`` and ``Usage.reasoning_tokens``. A request's
``thinking_budget`` is enforced by budget forcing (runners/hf_generate.py,
docs/local_models.md has the exact inserted strings).

torch and transformers are imported when a model is built, never by the CLI.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from evals.runner import ConfigError, Request, Response, RunnerError
from evals.task import is_true
from runners.hf_tools import TemplateTools, needs_conversion, template_messages
from runners.tool_text import FORMATS

LATER = ("tool_parser",)  # options newer than the response cache's first hf/ entries
DTYPES = ("auto", "bfloat16", "float16", "float32")
OPTIONS = ("dtype", "device", "batch_size", "batch_wait", "max_tokens", "think_start",
           "think_end", "think_end_insert", "wait_string", "wait_extensions", "top_p", "top_k",
           "temperature", "ignore_eos", "trust_remote_code", "revision", "chat_template",
           "chat_template_kwargs", "attn_implementation", "cudnn_attention", "tool_parser")


def avoid_cudnn_attention(model: Any, allowed: bool) -> None:
    """On CUDA, take cuDNN's fused attention out of torch's choice (process-wide) unless
    ``allowed``: it builds a graph for every tensor shape, and decoding (or scoring
    conversations of many lengths) brings a new shape at every step."""
    if not allowed and model.device.type == "cuda":
        import torch

        torch.backends.cuda.enable_cudnn_sdp(False)


@dataclass
class HFOptions:
    """``-M key=value`` options, coerced from the strings the CLI passes."""

    dtype: str = "auto"  # auto: bfloat16 on a GPU that has it, float16 on others, float32 on CPU
    device: str = "auto"  # auto: cuda if available, else cpu
    batch_size: int | None = None  # sequences (prompts x n) per generate; None: from free memory
    batch_wait: float = 0.005  # seconds the batcher waits for concurrent requests to join
    max_tokens: int = 2048  # for requests without max_tokens
    ignore_eos: bool = False  # benchmarks: always generate max_tokens
    trust_remote_code: bool = False
    revision: str | None = None
    attn_implementation: str | None = None
    # cuDNN's fused attention builds a graph per tensor shape, and while decoding every step
    # has a new key length: on an H100 that cost 40 ms per step (4x slower decoding).
    cudnn_attention: bool = False
    chat_template: str | None = None  # a Jinja file or string, for models without one
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. enable_thinking
    sampling: dict[str, float] = field(default_factory=dict)  # temperature, top_p, top_k
    think: dict[str, Any] = field(default_factory=dict)  # raw think_* options, for hf_think
    tool_parser: str | None = None  # a tool_text FORMATS name; None: read off the template

    @classmethod
    def parse(cls, options: dict[str, Any]) -> "HFOptions":
        unknown = [k for k in options if k not in OPTIONS]
        if unknown:
            hint = " (--base-url is for openai/ models)" if "base_url" in unknown else ""
            raise ConfigError(f"hf runner has no option {unknown[0]!r}{hint} "
                              f"(known: {', '.join(OPTIONS)})")
        try:
            out = cls(
                dtype=str(options.get("dtype", "auto")), device=str(options.get("device", "auto")),
                batch_size=None if str(options.get("batch_size", "auto")) == "auto"
                else int(options["batch_size"]),
                batch_wait=float(options.get("batch_wait", 0.005)),
                max_tokens=int(options.get("max_tokens", 2048)),
                ignore_eos=is_true(options.get("ignore_eos", False)),
                trust_remote_code=is_true(options.get("trust_remote_code", False)),
                revision=options.get("revision"),
                attn_implementation=options.get("attn_implementation"),
                cudnn_attention=is_true(options.get("cudnn_attention", False)),
                chat_template=options.get("chat_template"),
                chat_template_kwargs=_json_dict(options.get("chat_template_kwargs")),
                sampling={k: float(options[k]) for k in ("temperature", "top_p", "top_k")
                          if k in options},
                think={k: options[k] for k in ("think_start", "think_end", "think_end_insert",
                                               "wait_string", "wait_extensions") if k in options},
                tool_parser=None if str(options.get("tool_parser", "auto")) == "auto"
                else str(options["tool_parser"]))
        except ValueError as e:
            raise ConfigError(f"hf runner: bad option value: {e}") from None
        if out.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}")
        if out.batch_size is not None and out.batch_size < 1:
            raise ConfigError("batch_size must be at least 1 (or auto)")
        if out.max_tokens < 1:
            raise ConfigError("max_tokens must be at least 1")
        if out.tool_parser is not None and out.tool_parser not in FORMATS:
            raise ConfigError(f"tool_parser must be auto or one of {', '.join(FORMATS)}")
        return out


def _json_dict(value: Any) -> dict[str, Any]:
    if value is None or isinstance(value, dict):
        return dict(value or {})
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError("chat_template_kwargs must be a JSON object")
    return data


def make_runner(name: str, **options: Any) -> "HFRunner":
    if not name:
        raise ConfigError("model spec 'hf/' needs a local path or hub id, e.g. hf/Qwen/Qwen3-0.6B")
    opts = HFOptions.parse(options)
    model, tokenizer = load(name, opts)
    return HFRunner(f"hf/{name}", model, tokenizer, opts)


def load(name: str, opts: HFOptions, model_class: Any = None) -> tuple[Any, Any]:
    """Tokenizer and model from a local path or the hub (HF_HOME, HF_HUB_OFFLINE apply).
    ``model_class``: AutoModelForCausalLM unless given (the reward ranker's differs)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_class = model_class or AutoModelForCausalLM

    device = opts.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("hf runner: -M device=cuda but torch sees no GPU")
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16,
             "float32": torch.float32}.get(opts.dtype)
    if dtype is None:  # auto: bf16 where the GPU has it; CPUs are fastest in float32
        dtype = torch.float32 if device == "cpu" else (
            torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if name.startswith(("/", "./", "../", "~")):  # a path: say so, not "bad repo id"
        name = os.path.expanduser(name)
        if not os.path.isdir(name):
            raise ConfigError(f"hf/{name}: no such model directory")
    common = {"trust_remote_code": opts.trust_remote_code, "revision": opts.revision}
    extra: dict[str, Any] = {dtype_keyword(): dtype}
    if opts.attn_implementation:
        extra["attn_implementation"] = opts.attn_implementation
    if device != "cpu" and (_version() >= (5, 0) or importlib.util.find_spec("accelerate")):
        extra["device_map"] = device  # straight onto the GPU, not through CPU memory first
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **common)
        model = model_class.from_pretrained(name, **common, **extra)
    except (OSError, ValueError) as e:
        offline = " (HF_HUB_OFFLINE=1 is set: only the local cache is read)" if is_true(
            os.environ.get("HF_HUB_OFFLINE")) else ""
        raise ConfigError(f"hf/{name}: cannot load the model: {str(e).splitlines()[0]}"
                          f"{offline}") from None
    model = model.to(device)  # type: ignore[arg-type]  # a no-op after device_map
    return model.eval(), tokenizer


def _version() -> tuple[int, int]:
    import transformers

    major, minor = transformers.__version__.split(".")[:2]
    return int(major), int(minor)


def dtype_keyword() -> str:
    """transformers 4.56 renamed torch_dtype to dtype. An unknown keyword would be silently
    taken as a config attribute (and the model loaded in float32), so pick by version."""
    return "dtype" if _version() >= (4, 56) else "torch_dtype"


def set_chat_template(tokenizer: Any, template: str | None, spec: str, flag: str) -> None:
    """Install ``template`` (a Jinja file or string) if given; refuse a tokenizer left
    without one, naming the option (``flag``) that supplies it."""
    if template:
        if os.path.isfile(template):
            with open(template, encoding="utf-8") as f:
                template = f.read()
        tokenizer.chat_template = template
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"{spec}: the tokenizer has no chat template; "
                          f"give one with {flag} chat_template=FILE.jinja")


@dataclass
class _Pending:
    job: Any  # hf_generate.Job
    future: asyncio.Future
    started: float

    @property
    def key(self) -> tuple:  # what one generate call must share
        r = self.job.request
        return (r.n, self.job.max_tokens, r.thinking_budget, self.job.controlled)


@dataclass
class BatchStats:
    """Counters for tests and benchmarks: how the requests were batched."""

    batches: int = 0
    rows: int = 0
    max_rows: int = 0
    sizes: list[int] = field(default_factory=list)  # rows per generate call, in order


def _identity(spec: str, model: Any, opts: HFOptions) -> str:
    """What decides this runner's answers, for the response cache: the spec, the options,
    and for a local checkpoint its weights' sizes and times (a retrained checkpoint at
    the same path must not be answered from the cache)."""
    path = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    stamp = ""
    if path and os.path.isdir(path):
        stamp = ";".join(f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}"
                         for f in sorted(os.scandir(path), key=lambda f: f.name)
                         if f.is_file() and f.name.endswith((".safetensors", ".bin", ".json")))
    # An option added later, left at its default, leaves earlier runs' identity as it was.
    options = [(k, v) for k, v in sorted(vars(opts).items()) if k not in LATER or v is not None]
    return f"{spec}|{options}|{stamp}"


class HFRunner:
    def __init__(self, spec: str, model: Any, tokenizer: Any, opts: HFOptions):
        """``model``/``tokenizer``: already loaded (``load()``, or built by a benchmark)."""
        from transformers import GenerationConfig

        from runners.hf_generate import Engine, Sampling
        from runners.hf_think import think_config

        self.model = spec
        self.opts = opts
        self.cache_identity = _identity(spec, model, opts)
        self.tokenizer = tokenizer
        set_chat_template(tokenizer, opts.chat_template, spec, "-M")
        self.tools = TemplateTools(tokenizer, spec, opts.chat_template_kwargs, opts.tool_parser)
        self.think = think_config(tokenizer, opts.think)
        # The model's generation_config holds its recommended sampling (Qwen: temperature
        # 0.6, top_p 0.95, top_k 20): those are our defaults. It is then replaced by a bare
        # one so none of its processors (repetition penalty, ...) reach generate unasked.
        defaults = model.generation_config
        sampled = bool(getattr(defaults, "do_sample", False))
        s = opts.sampling
        sampling = Sampling(
            temperature=s.get("temperature", (defaults.temperature or 1.0) if sampled else 0.0),
            top_p=s.get("top_p", (defaults.top_p or 1.0) if sampled else 1.0),
            top_k=int(s.get("top_k", (defaults.top_k or 0) if sampled else 0)))
        eos = defaults.eos_token_id if defaults.eos_token_id is not None else tokenizer.eos_token_id
        eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id
        if pad is None:  # left padding is masked out: any id will do, EOS is the convention
            pad = min(eos_ids, default=0)
        model.generation_config = GenerationConfig(
            eos_token_id=sorted(eos_ids) or None, pad_token_id=pad,
            bos_token_id=getattr(defaults, "bos_token_id", None))
        self.context = int(getattr(model.config.get_text_config(), "max_position_embeddings", 0)
                           or 0) or None
        self.engine = Engine(model, tokenizer, self.think, sampling, eos_ids, pad, opts.ignore_eos)
        avoid_cudnn_attention(model, opts.cudnn_attention)
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hf-generate")
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._loop_task: asyncio.Task | None = None
        self._inflight: asyncio.Future | None = None
        self._running: list[_Pending] = []  # the batch on the worker thread
        self._row_cap: int | None = None  # lowered after an out-of-memory error

    def __repr__(self) -> str:
        return f"HFRunner({self.model!r})"

    def prepare(self, request: Request) -> Any:
        """Render and tokenise the prompt: a Job the engine can batch."""
        from runners.hf_generate import Job

        if request.n < 1:
            raise RunnerError("n must be at least 1")
        if request.tools and request.tool_choice == "required":
            raise RunnerError(f"{self.model}: tool_choice=required cannot be enforced on a local "
                              "model (it may always answer in text); use auto")
        # tool_choice none: the tools are not offered, so the model writes no calls
        tools = request.tools if request.tool_choice != "none" else None
        messages = request.messages
        if needs_conversion(messages):
            messages = template_messages(messages, self.tools.writes_json())
        tool_format = None
        try:
            if tools:
                tool_format = self.tools.check(tools)
            text = self.tools.render(messages, tools)
        except RunnerError:
            raise
        except Exception as e:  # a template that refuses the messages (e.g. a system turn)
            raise RunnerError(f"{self.model}: chat template failed: {e}") from None
        think = self.think
        if request.thinking_budget is not None and think is None:
            # Ignoring the budget would record a "budget=B" setting that was never applied.
            raise RunnerError(f"{self.model}: --thinking-budget needs a thinking model; this one "
                              "has no <think> delimiters (set -M think_start=... think_end=...)")
        controlled = think is not None and (request.thinking_budget is not None
                                            or think.wait_extensions > 0)
        opened = think is not None and think.opened(text)
        if think is not None and controlled and not opened:  # forcing counts from an open thought
            text += think.start + "\n"
            opened = True
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        max_tokens = request.max_tokens if request.max_tokens is not None else self.opts.max_tokens
        if self.context is not None:
            if len(ids) >= self.context:
                raise RunnerError(f"{self.model}: the prompt has {len(ids)} tokens, the model's "
                                  f"context is {self.context}")
            max_tokens = min(max_tokens, self.context - len(ids))
        if request.thinking_budget is not None and request.thinking_budget < 0:
            raise RunnerError("thinking_budget must be 0 or more")
        return Job(request, ids, opened, max(1, max_tokens), controlled, tool_format,
                   self.tools.drop_ids(tool_format) if tool_format else frozenset())

    async def generate(self, request: Request) -> Response:
        start = time.perf_counter()
        job = self.prepare(request)
        if self._loop_task is None or self._loop_task.done():
            self._queue = asyncio.Queue()
            self._loop_task = asyncio.create_task(self._batcher(), name=f"batcher {self.model}")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        assert self._queue is not None
        self._queue.put_nowait(_Pending(job, future, start))
        completions, usage = await future
        return Response(completions, usage, time.perf_counter() - start, None)

    async def _batcher(self) -> None:
        """The one consumer of the queue: group, cap, run on the thread, deliver."""
        assert self._queue is not None
        queue, pending = self._queue, list[_Pending]()
        try:
            await self._serve(queue, pending)
        finally:  # cancelled by aclose() or by the loop's end: nobody may wait forever
            for p in pending + self._running:
                if not p.future.done():
                    p.future.set_exception(RunnerError(f"{self.model}: runner closed"))

    async def _serve(self, queue: asyncio.Queue, pending: list[_Pending]) -> None:
        while True:
            if not pending:
                pending.append(await queue.get())
                # Concurrent callers are a scheduler tick apart: wait for them to join.
                await asyncio.sleep(self.opts.batch_wait)
            while not queue.empty():
                pending.append(queue.get_nowait())
            pending[:] = [p for p in pending if not p.future.done()]  # callers that gave up
            if not pending:
                continue
            batch, pending[:] = self._take(pending)
            rows = sum(p.job.request.n for p in batch)
            self._running = batch
            self._inflight = asyncio.get_running_loop().run_in_executor(
                self._thread, self.engine.run, [p.job for p in batch])
            try:
                results = await asyncio.shield(self._inflight)
            except Exception as e:
                from runners.hf_generate import is_out_of_memory, release_memory

                self._running = []
                if is_out_of_memory(e) and len(batch) > 1:  # halve and try again
                    release_memory()
                    self._row_cap = max(1, rows // 2)
                    pending[:] = batch + pending
                    continue
                error = RunnerError(f"{self.model}: generation failed: {type(e).__name__}: {e}")
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(error)
                continue
            self._running = []  # not in a finally: a cancelled batch is failed by _batcher
            self.stats.batches += 1
            self.stats.rows += rows
            self.stats.max_rows = max(self.stats.max_rows, rows)
            self.stats.sizes.append(rows)
            for p, result in zip(batch, results):
                if not p.future.done():
                    p.future.set_result(result)

    def _take(self, pending: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
        """The oldest request's group, up to the row cap, in arrival order."""
        key = pending[0].key
        group = [p for p in pending if p.key == key]
        cap = self.opts.batch_size
        if cap is None:
            longest = max(len(p.job.prompt_ids) for p in group) + group[0].job.max_tokens
            cap = self.engine.max_rows(longest)
        if self._row_cap is not None:
            cap = min(cap, self._row_cap)
        batch: list[_Pending] = []
        rows = 0
        for p in group:
            n = p.job.request.n
            if batch and rows + n > cap:
                break
            batch.append(p)
            rows += n
        taken = {id(p) for p in batch}
        return batch, [p for p in pending if id(p) not in taken]

    async def aclose(self) -> None:
        self.engine.aborting = True  # a batch still running ends at its next step
        if self._loop_task is not None:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except (asyncio.CancelledError, Exception):
                pass
        if self._inflight is not None:
            try:
                await self._inflight
            except Exception:
                pass
        if self._queue is not None:
            while not self._queue.empty():
                p = self._queue.get_nowait()
                if not p.future.done():
                    p.future.set_exception(RunnerError(f"{self.model}: runner closed"))
        self._loop_task = self._inflight = None
        self.engine.aborting = False  # the same runner may serve another event loop later
