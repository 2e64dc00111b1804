"""Needle prompt generation: time and peak memory at 128K and 1M tokens.

Each case runs in a fresh child process, so that its peak RSS is its own:

* ``load``: build the task and its samples (loads the tokenizer);
* ``first``: the first prompt, which also tokenises the haystack once (cached);
* ``next``: another prompt of the same length at another depth (the steady state:
  find a window, place the needle, count the final prompt once);
* peak RSS of the child (``ru_maxrss``) above its RSS after imports, and the
  peak of Python allocations while building ``next`` (``tracemalloc``; this
  misses the tokenizer libraries' native buffers, which RSS includes).

A separate case times the dataset of a 10 lengths x 11 depths x 5 repeats grid
(550 samples up to 1M tokens), which builds no text at all.

    python bench/needle_bench.py                               # qwen2.5, 128k and 1m
    python bench/needle_bench.py --tokenizers qwen2.5,words,minilm --variant cwe
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def case(tokenizer: str, length: str, variant: str) -> dict:
    sys.path.insert(0, str(REPO))
    from tasks.needle import needle

    base = _rss_mb()
    t0 = time.perf_counter()
    task = needle(lengths=length, depths="25,75", variant=variant, tokenizer=tokenizer)
    samples = list(task.samples())
    t1 = time.perf_counter()
    first = task.prompt(samples[0])
    t2 = time.perf_counter()
    tracemalloc.start()
    t3 = time.perf_counter()
    second = task.prompt(samples[-1])
    t4 = time.perf_counter()
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t5 = time.perf_counter()
    task.prompt(samples[-1])  # again without tracemalloc's overhead
    t6 = time.perf_counter()
    meta = samples[-1].metadata
    ok = all(s.metadata["tokens"] == s.metadata["length"] for s in samples)
    return {"tokenizer": meta["tokenizer"], "length": meta["length"], "variant": variant,
            "tokens": meta["tokens"], "exact": ok, "chars": len(second[0]["content"]),
            "load_s": t1 - t0, "first_s": t2 - t1, "next_s": t6 - t5,
            "next_traced_s": t4 - t3,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base,
            "py_peak_mb": py_peak / 2**20, "first_chars": len(first[0]["content"])}


def grid_case() -> dict:
    sys.path.insert(0, str(REPO))
    from tasks.needle import needle

    task = needle(lengths="1k,2k,4k,8k,16k,32k,64k,128k,256k,1m", depths="0,10,...,100",
                  repeats=5, tokenizer="words")
    tracemalloc.start()
    t0 = time.perf_counter()
    samples = list(task.samples())
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"samples": len(samples), "seconds": elapsed, "py_peak_mb": peak / 2**20}


def child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                         text=True, cwd=REPO, check=False)
    if out.returncode != 0:
        raise SystemExit(f"case {args} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizers", default="qwen2.5")
    parser.add_argument("--lengths", default="128k,1m")
    parser.add_argument("--variant", default="single")
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        result = grid_case() if args.child == ["grid"] else case(*args.child)
        print(json.dumps(result))
        return
    print(f"needle generation, {args.variant} variant, each case in a fresh process "
          f"({os.cpu_count()} CPUs, Python {sys.version.split()[0]})\n")
    print("| tokenizer | length | exact | load s | first prompt s | next prompt s "
          "| peak RSS MB | Python peak MB |")
    print("|---|---:|:-:|---:|---:|---:|---:|---:|")
    for tok in args.tokenizers.split(","):
        for length in args.lengths.split(","):
            r = child(tok, length, args.variant)
            print(f"| {r['tokenizer']} | {r['length']:,} | {'yes' if r['exact'] else 'no'} "
                  f"| {r['load_s']:.2f} | {r['first_s']:.2f} | {r['next_s']:.2f} "
                  f"| {r['peak_rss_mb']:.0f} | {r['py_peak_mb']:.0f} |", flush=True)
    g = child("grid")
    print(f"\ngrid dataset: {g['samples']} samples (10 lengths to 1M x 11 depths x 5 repeats) "
          f"in {g['seconds']:.3f} s, Python peak {g['py_peak_mb']:.1f} MB")


if __name__ == "__main__":
    main()
