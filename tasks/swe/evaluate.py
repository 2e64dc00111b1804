"""Grade one patch for one instance in a sandbox: the scorer's work.

Steps, each timed: images (built once, then reused), container start,
prepare (apply the patch, revert test infrastructure, apply the test patch;
as root), test (as a non-root user, no network, limits; then kill what the
tests left running and read the capped log), remove.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.task import Score
from sandbox.container import Sandbox
from sandbox.engine import SandboxError
from sandbox.limits import Limits

from . import grading, parsers, patch as patches
from .data import Instance
from .grading import EMPTY_PATCH, INFRA_ERROR, PATCH_FAILED, Verdict
from .layers import ensure_images
from .specs import EnvSpec

PREPARE = Path(__file__).with_name("prepare.py")
JOB_DIR = "/evals-job"  # not /tmp: docker cannot copy into a tmpfs mount
LOG = "/tmp/evals/test.log"
RECORD_LOG_CAP = 64 * 1024  # what a result record keeps of the log (head and tail)


@dataclass
class SweConfig:
    repos_dir: Path | None
    base_image: str | None = None
    # auto: SWE-bench's published image for repositories its specs know, when
    # pullable, else built here; local: always build; published: the published
    # image or an infra_error that says why it could not be pulled.
    images: str = "auto"
    memory: str = "2g"
    cpus: float = 1.0
    pids: int = 512
    timeout: float | None = None  # overrides the spec's test timeout
    network: str | None = None  # overrides the spec's policy
    output_cap: int = 1 << 20
    # nearest: a spec's Python that no local base ships runs on the nearest one
    # (recorded as python_substituted); exact: such an instance is an infra_error
    interpreter: str = "nearest"
    registry: str | None = None  # where published images are pulled from (Docker Hub)


@dataclass
class Holder:
    """The running sandbox, so a cancelled scorer can kill it from the event loop."""

    box: Sandbox | None = None
    cancelled: bool = False


@dataclass
class Outcome:
    verdict: Verdict
    meta: dict[str, Any] = field(default_factory=dict)

    def score(self, diff: str) -> Score:
        answer = "diff:" + hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None
        meta = {"outcome": self.verdict.outcome, "tests": self.verdict.tests, **self.meta}
        return Score(self.verdict.value, answer, self.verdict.explanation,
                     self.verdict.outcome, meta)


def cap_text(text: str, cap: int | None = None) -> str:
    cap = cap or RECORD_LOG_CAP  # read at call time: a benchmark may keep whole logs
    if len(text) <= cap:
        return text
    half = cap // 2
    return text[:half] + f"\n[... {len(text) - cap} characters cut ...]\n" + text[-half:]


def _test_script(cmd: str, timeout: float, cap: int) -> str:
    """Run the tests as the test user, then (same exec, saving a round trip) kill
    whatever they left running, so nothing writes to the log any more, and print
    the command's start/end times and the log, cut to ``cap`` (head and tail).
    The exec's exit code is the command's: the code under test cannot set it."""
    shell = "bash" if cmd.lstrip().startswith("#!") or "source " in cmd else "sh"
    half = cap // 2
    return ("mkdir -p /tmp/evals && cd /testbed && s=$(date +%s.%N); "
            f"timeout -k 5 {int(timeout)} {shell} -c {shlex.quote(cmd)} > {LOG} 2>&1 < /dev/null; "
            "rc=$?; e=$(date +%s.%N); kill -9 -1 2>/dev/null; echo \"$s $e\"; "
            f"n=$(wc -c < {LOG}); "
            f"if [ \"$n\" -le {cap} ]; then cat {LOG}; else head -c {half} {LOG}; "
            f"printf '\\n[... %s bytes cut ...]\\n' $((n - {cap})); tail -c {half} {LOG}; fi; "
            "exit $rc")


def evaluate(inst: Instance, spec: EnvSpec, diff: str, config: SweConfig, mirror: Path | None,
             holder: Holder | None = None) -> Outcome:
    """Blocking: run in a thread. Never raises for the sandbox's failures."""
    holder = holder or Holder()
    timings: dict[str, float] = {}
    meta: dict[str, Any] = {"instance_id": inst.instance_id, "applied_diff": diff,
                            "timings": timings, "spec_source": list(spec.source)}
    if not diff.strip():
        return Outcome(Verdict(EMPTY_PATCH, "the completion holds no diff"), meta)
    why = patches.refusal(diff)
    if why:
        meta["refused"] = why
        return Outcome(Verdict(PATCH_FAILED, f"patch refused: {why}"), meta)
    t0 = time.monotonic()
    try:
        published = "only" if config.images == "published" else (
            config.images == "auto" and "swebench" in spec.source)
        images = ensure_images(inst, spec, mirror, config.base_image, published,
                               nearest=config.interpreter == "nearest", registry=config.registry)
    except SandboxError as e:
        return Outcome(Verdict(INFRA_ERROR, f"image: {e}"), meta)
    timings["images"] = time.monotonic() - t0
    meta["image"], meta["built"] = images.instance, images.built
    if images.python:
        meta["python"] = images.python
    if images.substituted:
        meta["python_substituted"] = images.substituted
    if images.pull_failed:
        meta["published_image"] = images.pull_failed
    limits = Limits(memory=config.memory, cpus=config.cpus, pids=config.pids,
                    timeout=config.timeout or spec.timeout, output_cap=config.output_cap,
                    network=config.network or spec.network)
    try:
        return _in_sandbox(inst, spec, diff, limits, images.instance, holder, meta)
    except SandboxError as e:
        if holder.cancelled:
            raise
        return Outcome(Verdict(INFRA_ERROR, f"sandbox: {e}"), meta)


def _in_sandbox(inst: Instance, spec: EnvSpec, diff: str, limits: Limits, image: str,
                holder: Holder, meta: dict[str, Any]) -> Outcome:
    timings = meta["timings"]
    test_files = patches.touched_files(inst.test_patch)
    model_files = patches.touched_files(diff)
    test_dirs = sorted({p.rsplit("/", 1)[0] for p in test_files.paths if "/" in p})
    protected = [w for w in spec.test_cmd.split() if "/" in w and not w.startswith("-")]
    job = {"repo": "/testbed", "model_patch": f"{JOB_DIR}/model.patch",
           "test_patch": f"{JOB_DIR}/test.patch" if inst.test_patch.strip() else None,
           "model_paths": model_files.paths, "test_paths": test_files.paths,
           "test_dirs": [d for d in test_dirs], "protected": [p.lstrip("./") for p in protected],
           "writable": spec.writable_repo, "user": limits.user}
    box = Sandbox(image, limits, workdir="/testbed", name_hint=inst.instance_id)
    holder.box = box
    if holder.cancelled:
        raise SandboxError("cancelled")
    try:
        box.start()
        timings["start"] = box.timings["start"]
        t0 = time.monotonic()
        box.put({f"{JOB_DIR}/prepare.py": PREPARE.read_bytes(),
                 f"{JOB_DIR}/job.json": json.dumps(job).encode(),
                 f"{JOB_DIR}/model.patch": diff.encode(),
                 f"{JOB_DIR}/test.patch": inst.test_patch.encode()}, dest="/")
        prep = box.exec(["python3", f"{JOB_DIR}/prepare.py", f"{JOB_DIR}/job.json"], timeout=180)
        timings["apply"] = time.monotonic() - t0
        result = _last_json(prep.text)
        if result is None or "error" in result:
            detail = (result or {}).get("error") or prep.text[-500:]
            return Outcome(Verdict(INFRA_ERROR, f"prepare step failed: {detail}"), meta)
        meta.update({"applied_with": result["applied_with"], "reverted": result["reverted"],
                     "changed": result["changed"], "apply_log": cap_text(result["log"], 8000)})
        if result["refused"]:
            meta["refused"] = result["refused"]
            return Outcome(Verdict(PATCH_FAILED, f"patch refused: {result['refused']}"), meta)
        if result["applied_with"] is None:
            return Outcome(Verdict(PATCH_FAILED, "the patch applies with neither git apply, "
                                   "git apply --3way nor patch --fuzz"), meta)
        meta["applied_diff"] = result["applied_diff"]
        if not result["test_patch_applied"]:
            return Outcome(Verdict(INFRA_ERROR, "the test patch does not apply"), meta)
        cmd = spec.test_command(inst, test_files.paths)
        meta["test_cmd"] = cmd if len(cmd) < 2000 else cmd[:2000] + "..."
        env = {"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", **dict(spec.env)}
        t0 = time.monotonic()
        test = box.exec(["sh", "-c", _test_script(cmd, limits.timeout, limits.output_cap)],
                        user=limits.user, timeout=limits.timeout + 30, env=env,
                        cap=limits.output_cap + 4096)
        timings["test"] = time.monotonic() - t0
        if test.timed_out:  # the host deadline: the container is gone with its log
            log, own = "", timings["test"]
        else:
            first, _, log = test.text.partition("\n")
            own = _elapsed(first, timings["test"])
        timings["test_cmd"] = own
    finally:
        box.remove()
        timings["remove"] = box.timings.get("remove", 0.0)
    timed_out = test.timed_out or test.exit_code == 124
    meta["exit_code"] = test.exit_code
    meta["test_log"] = cap_text(log)
    try:
        parsed = parsers.parse(spec.log_parser, log, inst.repo)
    except KeyError as e:
        return Outcome(Verdict(INFRA_ERROR, str(e)), meta)
    meta["log_check"] = parsed.detail
    meta["statuses"] = dict(list(parsed.statuses.items())[:2000])
    verdict = grading.grade(parsed, log, test.exit_code, timed_out, inst.fail_to_pass,
                            inst.pass_to_pass)
    overhead = sum(timings.get(k, 0.0) for k in ("start", "apply", "test", "remove"))
    timings["overhead"] = max(0.0, overhead - own)
    return Outcome(verdict, meta)


def _elapsed(line: str, fallback: float) -> float:
    try:
        start, end = (float(x) for x in line.split())
        return max(0.0, end - start)
    except ValueError:
        return fallback


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None
