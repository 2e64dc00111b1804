"""The harnesses that bench/harness_overhead.py measures: how to run each on N
samples against a server URL, and how to read back what it reported.

evals itself, inspect-ai and lm-eval (from the peers' venv), and a bare aiohttp
client as the floor. Each writes or reads the same JSONL of prompts (data_file).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TASK_NAME = "arith_bench"


@dataclass
class Check:
    """What a harness itself reported after a run."""

    scored: int | None  # samples it reports as scored
    accuracy: float | None


@dataclass
class Harness:
    name: str
    label: str  # with version, for the table
    command: Callable[[int, str, int, Path], list[str]]  # (n, url, concurrency, workdir)
    check: Callable[[Path], Check]  # reads what the run in workdir wrote
    env: dict[str, str] = field(default_factory=dict)


def data_file(tmp: Path, n: int) -> Path:
    return tmp / f"arith-{n}.jsonl"


def write_data(tmp: Path, counts: list[int]) -> None:
    """The arithmetic prompts as JSONL {id, input, target}: what the peers read."""
    sys.path.insert(0, str(REPO))
    from tasks.arithmetic import make_samples

    for n in counts:
        lines = [json.dumps({"id": s.id, "input": s.input, "target": s.target}) + "\n"
                 for s in make_samples(n, 0, 3)]
        data_file(tmp, n).write_text("".join(lines))


def ours(evals_bin: str) -> Harness:
    def command(n: int, url: str, c: int, work: Path) -> list[str]:
        return [evals_bin, "run", "arithmetic", "-T", f"count={n}", "--model", "openai/fake-model",
                "--base-url", url, "--concurrency", str(c), "--no-cache", "--no-progress",
                "--results-dir", str(work / "results")]

    def check(work: Path) -> Check:
        records = [json.loads(line) for p in (work / "results").glob("*/samples.jsonl")
                   for line in p.read_text().splitlines() if line.strip()]
        scores = [r["score"] for r in records if r.get("score") is not None]
        return Check(len(scores), sum(scores) / len(scores) if scores else None)

    from importlib.metadata import version
    return Harness("ours", f"evals {version('evals')}", command, check)


def venv_version(venv: Path, dist: str) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


_INSPECT_CHECK = """
import glob, json, sys
from inspect_ai.log import read_eval_log
logs = glob.glob(sys.argv[1] + "/*.eval") + glob.glob(sys.argv[1] + "/*.json")
log = read_eval_log(logs[0], header_only=True)
ok = log.status == "success" and log.results is not None
print(json.dumps({"scored": log.results.completed_samples if ok else None,
                  "accuracy": log.results.scores[0].metrics["accuracy"].value if ok else None}))
"""


def inspect_ai(venv: Path) -> Harness | str:
    ver = venv_version(venv, "inspect-ai")
    if ver is None or not (venv / "bin" / "inspect").exists():
        return f"inspect-ai is not installed in {venv}: skipped (see bench/README.md)"

    def command(n: int, url: str, c: int, work: Path) -> list[str]:
        # relative to the working directory (REPO): inspect globs the task path
        return [str(venv / "bin" / "inspect"), "eval", "bench/peer_tasks/inspect_arith.py",
                "-T", f"data={data_file(work.parent, n)}", "--model", "openai/fake-model",
                "--model-base-url", url, "-M", "responses_api=false",
                "--max-connections", str(c), "--display", "none", "--log-dir", str(work / "logs")]

    def check(work: Path) -> Check:
        out = subprocess.run([str(venv / "bin" / "python"), "-c", _INSPECT_CHECK, str(work / "logs")],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            return Check(None, None)
        return Check(**json.loads(out.stdout.strip().splitlines()[-1]))

    return Harness("inspect", f"inspect-ai {ver}", command, check,
                   {"OPENAI_API_KEY": "dummy"})


_LM_EVAL_TASK = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{input}}}}"
doc_to_target: "{{{{target}}}}"
generation_kwargs:
  until: []
  max_gen_toks: 64
  do_sample: false
filter_list:
  - name: answer
    filter:
      - function: regex
        regex_pattern: "ANSWER:\\\\s*\\\\**\\\\s*(-?[\\\\d,]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def lm_eval(venv: Path) -> Harness | str:
    ver = venv_version(venv, "lm-eval")
    if ver is None or not (venv / "bin" / "lm_eval").exists():
        return f"lm-eval is not installed in {venv}: skipped (see bench/README.md)"

    def command(n: int, url: str, c: int, work: Path) -> list[str]:
        task_dir = work / "task"
        task_dir.mkdir(parents=True, exist_ok=True)
        (task_dir / f"{TASK_NAME}.yaml").write_text(
            _LM_EVAL_TASK.format(task=TASK_NAME, data=data_file(work.parent, n)))
        model_args = (f"model=fake-model,base_url={url}/chat/completions,num_concurrent={c},"
                      "max_retries=1,tokenized_requests=False")
        return [str(venv / "bin" / "lm_eval"), "--model", "local-chat-completions",
                "--model_args", model_args, "--tasks", TASK_NAME, "--include_path", str(task_dir),
                "--apply_chat_template", "--output_path", str(work / "out")]

    def check(work: Path) -> Check:
        found = sorted((work / "out").rglob("results_*.json"))
        if not found:
            return Check(None, None)
        data = json.loads(found[-1].read_text())
        return Check(data["n-samples"][TASK_NAME]["effective"],
                     data["results"][TASK_NAME]["exact_match,answer"])

    return Harness("lm-eval", f"lm-eval {ver}", command, check,
                   {"OPENAI_API_KEY": "dummy", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                    "TOKENIZERS_PARALLELISM": "false"})


async def bare_client(url: str, data: Path, concurrency: int, out: Path) -> None:
    """The floor: post every prompt, C at a time, check the answer; nothing else."""
    import re

    import aiohttp
    import orjson

    rows = [orjson.loads(line) for line in data.read_bytes().splitlines() if line.strip()]
    pattern = re.compile(r"ANSWER:\s*(-?[\d,]+)")
    correct = 0
    todo = iter(rows)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     headers={"Authorization": "Bearer dummy",
                                              "Content-Type": "application/json"}) as session:
        async def worker() -> None:
            nonlocal correct
            for row in todo:  # shared iterator: each prompt sent once
                body = {"model": "fake-model", "messages": [{"role": "user", "content": row["input"]}]}
                async with session.post(url + "/chat/completions", data=orjson.dumps(body)) as resp:
                    reply = orjson.loads(await resp.read())
                found = pattern.findall(reply["choices"][0]["message"]["content"])
                correct += bool(found) and found[-1] == row["target"]

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    out.write_text(json.dumps({"scored": len(rows), "accuracy": correct / len(rows)}))


def bare() -> Harness:
    def command(n: int, url: str, c: int, work: Path) -> list[str]:
        return [sys.executable, str(BENCH / "harness_overhead.py"), "--bare-client", url, str(data_file(work.parent, n)),
                str(c), str(work / "bare.json")]

    def check(work: Path) -> Check:
        path = work / "bare.json"
        return Check(**json.loads(path.read_text())) if path.exists() else Check(None, None)

    return Harness("bare", "bare aiohttp client (floor)", command, check)


def build(name: str, venv: Path, evals_bin: str) -> Harness | str | None:
    """The harness called ``name`` on the command line; a string saying why it is
    skipped (a peer not installed in ``venv``); None for a name that is none of them."""
    if name == "ours":
        return ours(evals_bin)
    if name == "inspect":
        return inspect_ai(venv.resolve())
    if name == "lm-eval":
        return lm_eval(venv.resolve())
    if name == "bare":
        return bare()
    return None
