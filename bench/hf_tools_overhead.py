"""What tool calls add to an ``hf/`` turn on the CPU side: rendering the conversation
with tools (and the message conversion) and parsing calls out of the answer.

A tiny random model and word-level tokenizer (runners/hf_tiny.py) with the Qwen2.5-style
test template (tests/data/chat_templates/qwen25_style.jinja); an agent conversation of
``--turns`` turns, each a call and a tool answer of ``--output-chars`` characters.
Measures ``HFRunner.prepare`` (render + tokenise, what every turn pays before
generating; the word-level tokenizer is cheaper per character than a real BPE one, so
the difference with and without tools is the figure to read, not the total) with and without tools on the same conversation, and ``parse_tool_calls``
on the test table's texts and on a long answer (its call as hermes and as qwen3_coder).

    python bench/hf_tools_overhead.py --turns 30 --output-chars 2000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evals.runner import Request, make_runner  # noqa: E402
from runners.hf_tiny import SPECIAL, save_tiny  # noqa: E402
from runners.tool_text import parse_tool_calls  # noqa: E402
from tasks.agent import BASH_TOOL, SUBMIT_TOOL  # noqa: E402


def timed(fn, repeat: int) -> float:
    """Median seconds of one call over ``repeat`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def conversation(turns: int, chars: int) -> list[dict]:
    messages = [{"role": "user", "content": "Fix the failing test in this repository."}]
    for t in range(turns):
        cid = f"c{t:08d}"
        messages.append({"role": "assistant", "content": f"Step {t}: looking.", "tool_calls": [
            {"id": cid, "type": "function",
             "function": {"name": "bash", "arguments": json.dumps({"command": f"cat f{t}.py"})}}]})
        messages.append({"role": "tool", "tool_call_id": cid,
                         # 40-character words: the word-level tokenizer keeps the prompt
                         # within the tiny model's 4,096 positions
                         "content": (("y" * 39 + "\n") * (chars // 40 + 1))[:chars]})
    return messages


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--turns", type=int, default=30)
    p.add_argument("--output-chars", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=50)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = save_tiny(Path(tmp) / "m", ban=SPECIAL)
        runner = make_runner(f"hf/{path}", chat_template=str(
            REPO / "tests/data/chat_templates/qwen25_style.jinja"), think_start="none")
        messages = conversation(a.turns, a.output_chars)
        tools = [BASH_TOOL, SUBMIT_TOOL]
        with_tools = timed(lambda: runner.prepare(Request(messages, tools=tools)), a.repeat)
        without = timed(lambda: runner.prepare(Request(messages)), a.repeat)
        prompt = len(runner.prepare(Request(messages, tools=tools)).prompt_ids)
    table = [json.loads(line) for line in
             (REPO / "tests/data/tool_calls.jsonl").read_text().splitlines()]
    per_row = timed(lambda: [parse_tool_calls(r["text"], r["format"], "k") for r in table],
                    a.repeat) / len(table)
    long = "Reasoning about the `calc.py` bug. " * 120 + (
        '\n<tool_call>\n{"name": "bash", "arguments": {"command": "python -m pytest -q"}}\n'
        '</tool_call>')
    long_parse = timed(lambda: parse_tool_calls(long, "hermes", "k"), a.repeat)
    # the same answer with its call in Qwen3-Coder's XML, values typed by the tool's schema
    xml = long[:long.index("\n<tool_call>")] + (
        "\n<tool_call>\n<function=bash>\n<parameter=command>\npython -m pytest -q\n"
        "</parameter>\n</function>\n</tool_call>")
    xml_parse = timed(lambda: parse_tool_calls(xml, "qwen3_coder", "k", tools), a.repeat)
    print(f"conversation: {a.turns} turns, {a.output_chars} chars per tool answer, "
          f"{len(json.dumps(messages))} chars of JSON, {prompt} prompt tokens")
    print(f"prepare with tools:    {with_tools * 1e3:8.2f} ms")
    print(f"prepare without tools: {without * 1e3:8.2f} ms (the calls and answers still "
          "rendered, without the tool definitions)")
    print(f"parse_tool_calls: {per_row * 1e6:.1f} us per table text ({len(table)} texts), "
          f"{long_parse * 1e6:.1f} us for a {len(long)}-char answer with one call, "
          f"{xml_parse * 1e6:.1f} us for it with the call in qwen3_coder's form")


if __name__ == "__main__":
    main()
