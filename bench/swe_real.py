"""Real SWE-bench instances: gold must resolve, no fix must not; graded twice.

    python bench/swe_real.py DATASET REPOS_DIR [--ids ID,ID] [--python 3.9,3.11]
                             [--limit N] [--rounds N] [--json OUT.jsonl] [-T key=value ...]
    python bench/swe_real.py --table OUT.jsonl     # the runs as a Markdown table

DATASET: a ``.jsonl``/``.json``/``.parquet`` file or an Arrow IPC file
(``.arrow``, as ``datasets`` saves a split) in SWE-bench's schema. REPOS_DIR
holds ``owner__name`` clones. Each instance is graded with its gold patch and
with a patch that changes nothing the tests see (a new empty file: the test
patch alone, so FAIL_TO_PASS must fail). Every test log is kept whole and
graded again by the ``swebench`` package's own log parser and its
FAIL_TO_PASS/PASS_TO_PASS report (swebench==4.1.0); the two verdicts are
compared. One JSON line per run: outcome, swebench's verdict, cold build
seconds per layer, image step, test command's own time, overhead.
``--rounds N`` grades the gold patch N more times on the warm images (overhead
per grading).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NOOP = ("diff --git a/.evals-noop b/.evals-noop\nnew file mode 100644\n--- /dev/null\n"
        "+++ b/.evals-noop\n@@ -0,0 +1 @@\n+no fix\n")


def instances_of(path: Path) -> list:
    from tasks.swe.data import read_file, to_instances

    if path.suffix == ".arrow":
        import pyarrow as pa

        with open(path, "rb") as f:
            try:
                table = pa.ipc.open_stream(f).read_all()
            except pa.ArrowInvalid:
                f.seek(0)
                table = pa.ipc.open_file(f).read_all()
        return to_instances((f"{path}[{i}]", r) for i, r in enumerate(table.to_pylist()))
    return read_file(path)


def swebench_verdict(inst, log: str) -> dict:
    """The swebench package's reading of ``log``: its parser, its report, its resolution."""
    from swebench.harness.constants import FAIL_TO_PASS, PASS_TO_PASS
    from swebench.harness.grading import get_eval_tests_report, get_resolution_status
    from swebench.harness.log_parsers import MAP_REPO_TO_PARSER

    parser = MAP_REPO_TO_PARSER[inst.repo]
    status_map = parser(log, None)
    report = get_eval_tests_report(status_map, {FAIL_TO_PASS: inst.fail_to_pass,
                                                PASS_TO_PASS: inst.pass_to_pass})
    return {"resolution": get_resolution_status(report),
            "f2p_ok": len(report[FAIL_TO_PASS]["success"]),
            "p2p_ok": len(report[PASS_TO_PASS]["success"]),
            "f2p_failed": report[FAIL_TO_PASS]["failure"][:5],
            "p2p_failed": report[PASS_TO_PASS]["failure"][:5]}


def table(path: Path) -> str:
    """gold and no-fix rows of one instance side by side, as Markdown."""
    runs: dict[str, dict[str, dict]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        runs.setdefault(row["instance_id"], {}).setdefault(row["patch"], row)
    out = ["| instance | Python | gold | no fix | swebench grader agrees | env build s | "
           "instance build s | test cmd s | overhead s |", "|" + " --- |" * 9]
    for iid, kinds in runs.items():
        gold, nofix = kinds.get("gold", {}), kinds.get("nofix", {})
        python = gold.get("python") or ""
        if gold.get("substituted"):
            python = gold["substituted"]
        agree = all(r.get("agree", True) for r in (gold, nofix) if r)
        built = gold.get("built", {})
        out.append(f"| {iid} | {python} | {gold.get('outcome', '')} | {nofix.get('outcome', '')} | "
                   f"{'yes' if agree else 'NO'} | {built.get('env', '-')} | "
                   f"{built.get('instance', '-')} | {gold.get('test_cmd_s', '')} | "
                   f"{gold.get('overhead_s', '')} |")
    return "\n".join(out)


def main() -> None:
    if sys.argv[1:2] == ["--table"]:
        print(table(Path(sys.argv[2])))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("repos", type=Path)
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--ids", default="")
    ap.add_argument("--python", default="", help="only specs asking for these Pythons")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-noop", action="store_true", help="gold only")
    ap.add_argument("-T", action="append", default=[], help="swe task parameter key=value")
    args = ap.parse_args()

    import tasks.swe.evaluate as evaluate_mod
    from tasks.swe import specs, swe
    evaluate_mod.RECORD_LOG_CAP = 1 << 21  # keep the whole log: swebench grades it too
    params = dict(p.split("=", 1) for p in args.T)
    insts = instances_of(args.dataset)
    if args.ids:
        wanted = set(args.ids.split(","))
        insts = [i for i in insts if i.instance_id in wanted]
    if args.python:
        pythons = set(args.python.split(","))
        insts = [i for i in insts if specs.resolve(i).python in pythons]
    if args.limit:
        insts = insts[:args.limit]
    # the scorer reads each sample's own metadata: the task's dataset is not loaded
    task = swe(repos=str(args.repos), clone=False, sandboxes=1, **params)
    from tasks.swe import to_sample

    out = open(args.json, "a") if args.json else None
    for inst in insts:
        sample = to_sample(inst, {}, False)
        runs = [("gold", sample.solution), ("nofix", f"```diff\n{NOOP}```")]
        runs += [("gold-warm", sample.solution)] * args.rounds
        for kind, diff in runs:
            if kind == "nofix" and args.no_noop:
                continue
            t0 = time.monotonic()
            score = asyncio.run(task.scorer(sample, diff))
            meta = score.metadata
            row = {"instance_id": inst.instance_id, "patch": kind, "outcome": score.status,
                   "python": specs.resolve(inst).python, "python_used": meta.get("python"),
                   "substituted": meta.get("python_substituted"),
                   "built": {k: round(v, 1) for k, v in (meta.get("built") or {}).items()},
                   "images_s": round(meta.get("timings", {}).get("images", 0.0), 1),
                   "test_cmd_s": round(meta.get("timings", {}).get("test_cmd", 0.0), 1),
                   "overhead_s": round(meta.get("timings", {}).get("overhead", 0.0), 2),
                   "wall_s": round(time.monotonic() - t0, 1),
                   "explanation": score.explanation[:300]}
            if meta.get("test_log"):
                try:
                    row["swebench"] = swebench_verdict(inst, meta["test_log"])
                except Exception as e:  # noqa: BLE001 - reported, not fatal
                    row["swebench"] = {"error": f"{type(e).__name__}: {e}"}
                ours = score.status == "resolved"
                theirs = row["swebench"].get("resolution") == "RESOLVED_FULL"
                row["agree"] = ours == theirs
            print(json.dumps(row), flush=True)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()


if __name__ == "__main__":
    main()
