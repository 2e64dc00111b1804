"""Scoring throughput of the ``reward/`` ranker against one forward pass per completion.

A randomly initialised Llama-3.2-1B-shaped reward model (sequence classification,
one output, bf16) scores ``--count`` conversations of ``--prompt-words`` +
``--answer-words`` tokens (a word-level tokenizer: one word, one token). Two numbers per
batch size:

* ranker: every ``rank()`` call issued at once, as best@k's completions arrive; the
  ranker batches them (``batch_size``) into right-padded forward passes;
* naive: one forward pass per conversation, the loop a simple harness would run.

On a GPU machine:  python bench/reward_throughput.py [--json out.json]
Checkable on CPU:  python bench/reward_throughput.py --tiny
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from a checkout

from bench.hf_throughput import ONE_B, TINY, build, sync  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="small config on CPU, to check the script")
    p.add_argument("--batch-sizes", default=None, help="default 1,8,32,64 (tiny: 1,8)")
    p.add_argument("--count", type=int, default=None, help="conversations (default 256; tiny 32)")
    p.add_argument("--prompt-words", type=int, default=128)
    p.add_argument("--answer-words", type=int, default=None, help="default 512 (tiny: 32)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    import torch

    from evals.task import Sample
    from runners.reward import RewardOptions, RewardRanker

    if a.tiny:
        torch.set_num_threads(1)
    device = "cpu" if a.tiny else "cuda"
    dtype = torch.float32 if a.tiny else torch.bfloat16
    shape = TINY if a.tiny else ONE_B
    sizes = [int(x) for x in (a.batch_sizes or ("1,8" if a.tiny else "1,8,32,64")).split(",")]
    count = a.count or (32 if a.tiny else 256)
    answer_words = a.answer_words or (32 if a.tiny else 512)
    model, tokenizer = build(shape, dtype, device, reward=True)
    rng = random.Random(0)
    vocab = shape["vocab"] - 16

    def words(n: int) -> str:
        return " ".join(f"w{rng.randrange(vocab)}" for _ in range(n))

    def conversations() -> tuple[list, list]:  # lengths vary, as completions do
        return ([Sample(id=str(i), input=words(a.prompt_words)) for i in range(count)],
                [words(rng.randint(answer_words // 2, answer_words)) for _ in range(count)])

    # Warm-ups use other conversations: shapes seen in a warm-up would flatter the timed
    # pass (cuDNN attention, where enabled, caches a graph per shape).
    problems, answers = conversations()
    warm_problems, warm_answers = conversations()
    params = sum(x.numel() for x in model.parameters())
    print(f"{params / 1e6:.1f}M parameters, {dtype}, {device}, {count} conversations of "
          f"{a.prompt_words} + {answer_words // 2}-{answer_words} words", flush=True)

    ranker = RewardRanker("reward/random", model, tokenizer, RewardOptions(batch_size=1))
    texts = [ranker.text(s, c) for s, c in zip(problems, answers)]
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    for s, c in zip(warm_problems, warm_answers):  # warm-up
        ranker.score([ranker.text(s, c)])
    sync(device)
    start = time.perf_counter()
    for t in texts:
        ranker.score([t])
    sync(device)
    naive = count / (time.perf_counter() - start)
    rows = []
    for b in sizes:
        ranker = RewardRanker("reward/random", model, tokenizer,
                              RewardOptions(batch_size=b, batch_wait=0.0))

        async def rank_all(problems: list = problems, answers: list = answers) -> list:
            try:
                return await asyncio.gather(*(ranker.rank(s, c)
                                              for s, c in zip(problems, answers)))
            finally:
                await ranker.aclose()

        asyncio.run(rank_all(warm_problems, warm_answers))  # warm-up at this batch size
        ranker.batches.clear()
        sync(device)
        start = time.perf_counter()
        scores = asyncio.run(rank_all())
        sync(device)
        rate = count / (time.perf_counter() - start)
        assert len(scores) == count and all(isinstance(x, float) for x in scores)
        rows.append({"batch": b, "ranker_per_s": rate, "naive_per_s": naive,
                     "tokens_per_s": rate * tokens / count, "passes": len(ranker.batches)})
        print(f"batch {b:3d}: {rate:8.1f} conversations/s ({rate * tokens / count:9.0f} tok/s, "
              f"{len(ranker.batches)} passes), naive {naive:7.1f}/s", flush=True)
    print("\n| batch | conversations/s | tokens/s | x naive |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {r['ranker_per_s']:.0f} | {r['tokens_per_s']:.0f} | "
              f"{r['ranker_per_s'] / r['naive_per_s']:.1f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": device, "params": params, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
