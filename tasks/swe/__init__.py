"""SWE: resolve a repository issue with a patch, graded by the repository's tests in a sandbox.

``evals run swe`` reads instances in SWE-bench's schema: ``-T instances=bundled``
(default: seven instances over three small repositories made by this project),
a local ``.jsonl``/``.json``/``.parquet`` file, or ``hub[:NAME]`` (default
``princeton-nlp/SWE-bench_Verified``). docs/swe.md describes the sandbox,
the grading rules and the outcomes.

Importing this package is cheap: ``docker``, ``datasets`` and ``swebench``
are imported only when used.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from evals.task import Sample, Score, Solution, Task, TaskError, task
from sandbox.cli import IMAGE_BUILDERS

from . import bundled, data, grading, prepare, prompt, specs
from .data import HUB_DEFAULT, Instance
from .evaluate import Holder, SweConfig, evaluate
from .patch import extract_diff, refusal, touched_files

__all__ = ["swe", "check_instance", "load_instances", "extract_diff", "OUTCOMES"]
OUTCOMES = grading.OUTCOMES
IMAGE_MODES = ("auto", "local", "published")
MODES = ("patch", "agent")  # one generation with a patch, or an agent with a shell
INTERPRETERS = ("nearest", "exact")


def default_repos_dir() -> Path:
    env = os.environ.get("EVALS_SWE_REPOS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "evals" / "swe" / "repos"


def load_instances(source: str, repos_dir: Path, split: str = "test") -> list[Instance]:
    name = source.strip()
    if name.lower() == "bundled":
        rows = bundled.instances(repos_dir)
        return data.to_instances((f"bundled[{i}]", r) for i, r in enumerate(rows))
    if name.lower() == "hub" or name.lower().startswith("hub:"):
        return data.load_hub(name[4:] or HUB_DEFAULT, split)
    return data.read_file(name)


def to_sample(inst: Instance, files: dict[str, str], hints: bool) -> Sample:
    return Sample(id=inst.instance_id, input=prompt.render(inst, files, hints), target="resolved",
                  metadata={**inst.to_metadata(), "context_files": list(files)},
                  solution=f"```diff\n{inst.patch}```\n")


def check_instance(sample: Sample) -> list[str]:
    """Warnings about an instance whose grading would not be sound (``evals validate``).

    Names each file of the gold patch that the sandbox reverts or treats as
    test infrastructure, so a gold run could not resolve it as shipped.
    """
    meta = sample.metadata
    warnings: list[str] = []
    gold = meta.get("_gold_patch", "")
    if why := refusal(gold):
        warnings.append(f"{sample.id}: the gold patch would be refused: {why}")
    test_paths = touched_files(meta.get("_test_patch", "")).paths
    test_dirs = sorted({p.rsplit("/", 1)[0] for p in test_paths if "/" in p})
    files = touched_files(gold)
    for path in files.paths:
        reason = prepare.discovery_reason(path, test_dirs, path in files.added, [])
        if reason:
            warnings.append(f"{sample.id}: the gold patch touches {path} ({reason}); "
                            f"the sandbox reverts it before the tests")
        elif os.path.basename(path) in prepare.SECTIONED:
            warnings.append(f"{sample.id}: the gold patch touches {path}; its test settings "
                            f"are reverted if the patch changes them")
        if path in test_paths:
            warnings.append(f"{sample.id}: the gold patch touches {path}, a file of the test "
                            f"patch; the sandbox restores it")
    if not meta.get("FAIL_TO_PASS"):
        warnings.append(f"{sample.id}: FAIL_TO_PASS is empty")
    return warnings


@task(resources={"containers": "sandboxes", "engines": "engines"})
def swe(instances: str = "bundled", split: str = "test", repos: str | None = None,
        clone: bool = True, context: str = "oracle", hints: bool = False,
        specs_file: str | None = None, swebench_specs: bool = True, sandboxes: int = 2,
        images: str = "auto", base_image: str | None = None, memory: str = "2g",
        cpus: float = 1.0, pids: int = 512, timeout: float = 0.0,
        network: str | None = None, interpreter: str = "nearest",
        registry: str | None = None, mode: str = "patch", agent_protocol: str = "tools",
        max_steps: int = 30, command_timeout: float = 60.0, agent_max_tokens: str | None = None,
        agent_max_cost: str | None = None, engines: str | None = None) -> Task:
    """Resolve GitHub issues with a patch, graded by tests in a Docker sandbox (SWE-bench schema)."""
    if context not in prompt.CONTEXTS:
        raise TaskError(f"swe: -T context={context!r}: one of {', '.join(prompt.CONTEXTS)}")
    if images not in IMAGE_MODES:
        raise TaskError(f"swe: -T images={images!r}: one of {', '.join(IMAGE_MODES)}")
    if network not in (None, "", "none", "sealed"):
        raise TaskError(f"swe: -T network={network!r}: none or sealed")
    if interpreter not in INTERPRETERS:
        raise TaskError(f"swe: -T interpreter={interpreter!r}: one of {', '.join(INTERPRETERS)}")
    if sandboxes < 1:
        raise TaskError("swe: -T sandboxes must be at least 1")
    if mode not in MODES:
        raise TaskError(f"swe: -T mode={mode!r}: one of {', '.join(MODES)}")
    if agent_protocol not in ("tools", "text"):
        raise TaskError(f"swe: -T agent_protocol={agent_protocol!r}: tools or text")
    if max_steps < 1 or command_timeout <= 0:
        raise TaskError("swe: -T max_steps must be at least 1 and command_timeout above 0")
    for name, value in (("tokens", agent_max_tokens), ("cost", agent_max_cost)):
        if value is not None:  # they were -T parameters before they were compute axes
            raise TaskError(f"swe: -T agent_max_{name} is now a compute axis: "
                            f"`evals run --agent-max-{name} {value}` (a list makes a setting "
                            f"of each value)")
    from sandbox import engines as engine_pool
    from sandbox.engine import SandboxError

    try:  # --engine / -T engines= / EVALS_ENGINES; none: the local engine alone
        pool = engine_pool.pool(engine_pool.named(engines), sandboxes)
    except SandboxError as e:
        raise TaskError(f"swe: {e}") from None
    repos_dir = Path(repos).expanduser() if repos else default_repos_dir()
    spec_map = specs.read_spec_file(specs_file)
    config = SweConfig(repos_dir, base_image or None, images, memory, cpus, pids,
                       timeout or None, network or None, interpreter=interpreter,
                       registry=registry or None)
    semaphores: dict[int, asyncio.Semaphore] = {}

    def dataset() -> list[Sample]:
        out = []
        for inst in load_instances(instances, repos_dir, split):
            specs.resolve(inst, spec_map, swebench_specs)  # a bad spec fails here, with its place
            mirror = _mirror(inst.repo, repos_dir, clone=False)
            files = prompt.context_files(inst, mirror, context) if mirror else {}
            out.append(to_sample(inst, files, hints))
        return out

    async def score(sample: Sample, completion: str) -> Score:
        inst = Instance.from_metadata(sample.metadata)
        spec = specs.resolve(inst, spec_map, swebench_specs)
        diff = extract_diff(completion)
        loop = asyncio.get_running_loop()
        semaphore = semaphores.setdefault(id(loop), asyncio.Semaphore(pool.total_slots))
        holder = Holder()
        async with semaphore:
            try:
                outcome = await loop.run_in_executor(pool.executor, _placed, pool, inst, spec,
                                                     diff, config, clone, holder)
            except asyncio.CancelledError:  # Ctrl-C: the container goes now, not at its deadline
                holder.cancelled = True
                if holder.box is not None:
                    holder.box.kill()
                raise
        return outcome.score(diff)

    def check(sample: Sample) -> list[str]:
        warnings = check_instance(sample)
        spec = specs.resolve(data.Instance.from_metadata(sample.metadata), spec_map, swebench_specs)
        if note := interpreter_note(spec, config):
            warnings.append(f"{sample.id}: {note}")
        return warnings

    async def solver(sample: Sample, generate, request) -> Solution:
        """-T mode=agent: an episode in a container of the instance's image, on an engine
        of the pool. An engine lost under it (it fails a ping after a sandbox error)
        starts the episode again on another, its model turns replayed from memory; any
        other sandbox failure, no engine at all, or a model call that failed every retry
        raises RunnerError: the orchestrator's error record, redone by a resume, never
        a score against the model."""
        from evals.runner import RunnerError
        from sandbox.engine import SandboxError
        from sandbox.limits import Limits
        from tasks.agent import AgentLimits, Replay

        from .agent import solve
        from .layers import ensure_images

        inst = Instance.from_metadata(sample.metadata)
        spec = specs.resolve(inst, spec_map, swebench_specs)
        mirror = _mirror(inst.repo, repos_dir, clone) if config.repos_dir else None
        published = "only" if config.images == "published" else (
            config.images == "auto" and "swebench" in spec.source)
        turns = Replay(generate)

        async def episode(engine) -> Solution:  # current on `engine` (sandbox.engine.use)
            images = await asyncio.to_thread(
                ensure_images, inst, spec, mirror, config.base_image, published,
                nearest=config.interpreter == "nearest", registry=config.registry)
            limits = Limits(memory=config.memory, cpus=config.cpus, pids=config.pids,
                            timeout=command_timeout + 60, network=config.network or spec.network)
            return await solve(
                sample, turns, request, image=images.instance, limits=limits,
                agent=AgentLimits.for_request(request, max_steps, command_timeout=command_timeout),
                protocol=agent_protocol, env=dict(spec.env), threads=pool.slot_holders)

        # No semaphore: the pool's slots bound the containers, and a coroutine waiting
        # for one holds no thread (the episodes' commands need the loop's threads).
        try:
            placed = await pool.run_async(episode, affinity=inst.instance_id)
        except SandboxError as e:
            raise RunnerError(f"sandbox: {e}") from None
        solution = placed.result
        solution.trajectory = {**(solution.trajectory or {}), "engine": placed.engine,
                               **({"engines_lost": placed.lost} if placed.lost else {})}
        return solution

    return Task(dataset=dataset, scorer=score, check=check,
                solver=solver if mode == "agent" else None)


def interpreter_note(spec: specs.EnvSpec, config: SweConfig) -> str | None:
    """What `evals validate` says about a spec whose Python no local base ships."""
    from sandbox.base import SUITES, nearest_python

    if config.base_image or not spec.python:
        return None
    short = ".".join(str(spec.python).split(".")[:2])
    if short in SUITES:
        return None
    if config.interpreter == "nearest":
        return (f"the spec asks for Python {short}, which no local base ships: it runs on "
                f"Python {nearest_python(short)} (recorded as python_substituted); "
                f"-T base_image=IMAGE names one that has {short}")
    return (f"the spec asks for Python {short}, which no local base ships: infra_error unless "
            f"-T base_image=IMAGE names one that has it, or -T interpreter=nearest")


IMAGE_BUILDERS.register("swe", "tasks.swe.images:build_instances")


def _mirror(repo: str, repos_dir: Path, clone: bool) -> Path | None:
    from sandbox.engine import SandboxError

    from .repos import mirror_path

    try:
        return mirror_path(repos_dir, repo, clone=clone)
    except SandboxError:
        return None


def _placed(pool, inst: Instance, spec: specs.EnvSpec, diff: str, config: SweConfig,
            clone: bool, holder: Holder):
    """Grade on an engine of ``pool`` (blocking, in its executor). An infra_error on an
    engine that then fails a ping is graded again elsewhere; the record names where it
    was graded and the engines lost under it."""
    if not diff.strip() or refusal(diff):  # judged without a container
        return _evaluate(inst, spec, diff, config, clone, holder)
    placed = pool.run(lambda: _evaluate(inst, spec, diff, config, clone, holder),
                      failed=lambda o: o.verdict.outcome == grading.INFRA_ERROR,
                      affinity=inst.instance_id, stop=lambda: holder.cancelled)
    outcome = placed.result
    outcome.meta["engine"] = placed.engine
    if placed.lost:
        outcome.meta["engines_lost"] = placed.lost
    return outcome


def _evaluate(inst: Instance, spec: specs.EnvSpec, diff: str, config: SweConfig, clone: bool,
              holder: Holder):
    mirror = None
    if diff.strip() and config.repos_dir is not None:
        mirror = _mirror(inst.repo, config.repos_dir, clone)
    return evaluate(inst, spec, diff, config, mirror, holder)
