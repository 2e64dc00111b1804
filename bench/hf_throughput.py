"""Decoding throughput of the ``hf/`` runner against a naive loop and the memory bound.

A randomly initialised Llama-style 1B model (Llama 3.2 1B shapes: hidden 2048, 16
layers, 32 heads, 8 KV heads, intermediate 8192, vocab 128256, tied embeddings, bf16)
generates exactly ``--new-tokens`` tokens per prompt (EOS ignored) from prompts of
``--prompt-tokens`` tokens. Three numbers per batch size:

* runner: ``b`` concurrent ``generate()`` calls, which the runner batches into one
  left-padded ``model.generate`` (batch_size=b), timed wall clock incl. prefill;
* naive: plain ``model.generate`` for one prompt at a time (``min_new_tokens`` =
  ``max_new_tokens``), the loop a simple harness would run;
* bound: decoding is memory-bound, each step reads every weight once plus the KV
  cache, so ``b / ((weight bytes + KV bytes(b)) / bandwidth)`` tokens/s is the
  ceiling. Bandwidth is measured (a device-to-device copy) unless ``--bandwidth`` is
  given (H100 SXM: 3.35 TB/s nominal).

On a GPU machine:  python bench/hf_throughput.py [--json out.json]
Checkable on CPU:  python bench/hf_throughput.py --tiny
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from a checkout

ONE_B = dict(hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=128256)
TINY = dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=2048)


@dataclass
class Row:
    batch: int
    runner_tok_s: float
    naive_tok_s: float
    bound_tok_s: float
    runner_batches: int  # generate calls the runner made (1 = it batched them all)

    @property
    def of_bound(self) -> float:
        return self.runner_tok_s / self.bound_tok_s


def build(shape: dict[str, int], dtype: Any, device: str, reward: bool = False
          ) -> tuple[Any, Any]:
    """Tokenizer with ``vocab`` word tokens and a random tied-embedding Llama on ``device``
    (``reward``: a one-output LlamaForSequenceClassification, bench/reward_throughput.py)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    from runners.hf import dtype_keyword
    from runners.hf_tiny import SPECIAL, THINK, tiny_tokenizer

    words = [f"w{i}" for i in range(shape["vocab"] - len(SPECIAL) - len(THINK))]
    tokenizer = tiny_tokenizer(words)
    config = LlamaConfig(vocab_size=len(tokenizer.get_vocab()), hidden_size=shape["hidden"],
                         intermediate_size=shape["intermediate"],
                         num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                         num_key_value_heads=shape["kv_heads"], max_position_embeddings=8192,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         num_labels=1)
    torch.manual_seed(0)
    with torch.device(device):  # initialised in place: a 1B model never visits the CPU
        model = (LlamaForSequenceClassification if reward else LlamaForCausalLM)._from_config(
            config, **{dtype_keyword(): dtype})
    return model.eval(), tokenizer


def measure_bandwidth(device: str, gib: float) -> float:
    """Bytes/s of a large copy (read + write), best of 5."""
    import torch

    n = int(gib * 2**30)
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        sync(device)
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n / best


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bound(model: Any, batch: int, context: int, bandwidth: float) -> float:
    """Tokens/s if each decoding step only had to read weights and KV cache once."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    c = model.config
    head_dim = c.hidden_size // c.num_attention_heads
    elem = next(model.parameters()).element_size()
    kv = 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * elem * context * batch
    return batch * bandwidth / (weights + kv)


def prompts(count: int, length: int, vocab: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(f"w{rng.randrange(vocab - 16)}" for _ in range(length)) for _ in range(count)]


async def runner_rate(runner: Any, texts: list[str], new_tokens: int) -> float:
    from evals.runner import Request

    requests = [Request([{"role": "user", "content": t}], max_tokens=new_tokens, temperature=0)
                for t in texts]
    start = time.perf_counter()
    out = await asyncio.gather(*(runner.generate(r) for r in requests))
    elapsed = time.perf_counter() - start
    produced = sum(o.usage.completion_tokens for o in out)
    assert produced == len(texts) * new_tokens, "EOS must be ignored"
    return produced / elapsed


def naive_rate(model: Any, tokenizer: Any, texts: list[str], new_tokens: int, device: str) -> float:
    import torch

    start = time.perf_counter()
    for text in texts:
        chat = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                             add_generation_prompt=True, tokenize=False)
        ids = torch.tensor([tokenizer.encode(chat, add_special_tokens=False)], device=device)
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                           max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                           pad_token_id=tokenizer.pad_token_id)
    sync(device)
    return len(texts) * new_tokens / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="small config on CPU, to check the script")
    p.add_argument("--batch-sizes", default=None, help="default 1,8,32,128 (tiny: 1,8,32)")
    p.add_argument("--new-tokens", type=int, default=None, help="default 256 (tiny: 16)")
    p.add_argument("--prompt-tokens", type=int, default=None, help="default 128 (tiny: 16)")
    p.add_argument("--naive-prompts", type=int, default=8, help="prompts for the naive loop")
    p.add_argument("--bandwidth", type=float, default=None, help="TB/s; default: measured")
    p.add_argument("--device", default=None, help="default cuda (tiny: cpu)")
    p.add_argument("--dtype", default=None, help="default bfloat16 (tiny: float32)")
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (tiny: 1, as OpenMP spinning makes a shared "
                        "2-core machine's figures noise)")
    a = p.parse_args(argv)

    import torch

    if a.threads or a.tiny:
        torch.set_num_threads(a.threads or 1)

    from runners.hf import HFOptions, HFRunner

    device = a.device or ("cpu" if a.tiny else "cuda")
    dtype = getattr(torch, a.dtype or ("float32" if a.tiny else "bfloat16"))
    sizes = [int(x) for x in (a.batch_sizes or ("1,8,32" if a.tiny else "1,8,32,128")).split(",")]
    new_tokens = a.new_tokens or (16 if a.tiny else 256)
    prompt_tokens = a.prompt_tokens or (16 if a.tiny else 128)
    shape = TINY if a.tiny else ONE_B
    model, tokenizer = build(shape, dtype, device)
    bandwidth = a.bandwidth * 1e12 if a.bandwidth else measure_bandwidth(
        device, 0.25 if device == "cpu" else 2.0)
    params = sum(p.numel() for p in model.parameters())
    print(f"{params / 1e6:.1f}M parameters, {dtype}, {device}, {prompt_tokens} prompt + "
          f"{new_tokens} new tokens, bandwidth {bandwidth / 1e12:.3f} TB/s "
          f"({'given' if a.bandwidth else 'measured'})", flush=True)

    texts = prompts(max(sizes + [a.naive_prompts]), prompt_tokens, shape["vocab"], seed=0)
    naive_rate(model, tokenizer, texts[:1], 4, device)  # warm-up: kernels, allocator
    naive = naive_rate(model, tokenizer, texts[:a.naive_prompts], new_tokens, device)
    rows = []
    for b in sizes:
        opts = HFOptions.parse({"batch_size": str(b), "ignore_eos": "true", "think_start": "none",
                                "batch_wait": "0"})
        runner = HFRunner("hf/random-llama", model, tokenizer, opts)
        asyncio.run(runner_rate(runner, texts[:b], 4))  # warm-up at this shape
        before = runner.stats.batches
        rate = asyncio.run(runner_rate(runner, texts[:b], new_tokens))
        context = prompt_tokens + 8 + new_tokens // 2  # mean KV length over the decode
        rows.append(Row(b, rate, naive, bound(model, b, context, bandwidth),
                        runner.stats.batches - before))
        r = rows[-1]
        print(f"batch {b:4d}: runner {r.runner_tok_s:10.1f} tok/s ({r.runner_batches} generate), "
              f"naive {naive:8.1f}, bound {r.bound_tok_s:10.1f} ({r.of_bound:.0%})", flush=True)
    print("\n| batch | runner tok/s | naive tok/s | x naive | bound tok/s | % of bound |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r.batch} | {r.runner_tok_s:.0f} | {r.naive_tok_s:.0f} | "
              f"{r.runner_tok_s / r.naive_tok_s:.1f} | {r.bound_tok_s:.0f} | {r.of_bound:.0%} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": device, "dtype": str(dtype), "params": params,
                       "bandwidth": bandwidth, "new_tokens": new_tokens,
                       "prompt_tokens": prompt_tokens, "rows": [asdict(r) for r in rows]}, f,
                      indent=2)
    return rows


if __name__ == "__main__":
    main()
