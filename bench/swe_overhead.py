"""SWE sandbox overhead: per-instance cost with warm images, and each layer's cold build.

    python bench/swe_overhead.py [--rounds 3] [--cold] [--cold-base] [--pip six] [--json OUT]

Warm: the bundled instances graded with their gold patches, one
container at a time; overhead = start + apply + test step (with the log read) +
remove, minus the test command's own time (measured inside the container).
Cold: the env and instance layers rebuilt (``--cold``), the base rebuilt
under a throwaway tag (``--cold-base``, about a minute), an env layer that
pip-installs a package through the host's PyPI settings (``--pip NAME``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.testing import engine_problem  # noqa: E402


def warm(repos: Path, rounds: int) -> dict:
    from tasks.swe import swe

    task = swe(repos=str(repos), sandboxes=1)
    samples = list(task.samples())
    asyncio.run(task.scorer(samples[0], samples[0].solution))  # build what is missing
    rows = []
    for _ in range(rounds):
        for s in samples:
            t0 = time.monotonic()
            score = asyncio.run(task.scorer(s, s.solution))
            wall = time.monotonic() - t0
            assert score.status == "resolved", score.explanation
            t = score.metadata["timings"]
            rows.append({**{k: t.get(k, 0.0) for k in ("start", "apply", "test",
                                                       "remove", "test_cmd", "overhead")},
                         "wall": wall})
    return {k: {"median": statistics.median(r[k] for r in rows),
                "max": max(r[k] for r in rows)} for k in rows[0]} | {"n": len(rows)}


def cold(repos: Path, base_too: bool, pip: str | None) -> dict:
    from sandbox.base import BaseSpec, ensure_base
    from sandbox.engine import client
    from sandbox.images import ensure, prune
    from tasks.swe import load_instances, specs
    from tasks.swe.layers import env_layer, instance_layer

    out: dict[str, float] = {}
    if base_too:
        spec = BaseSpec(mirror=BaseSpec().mirror.rstrip("/") + "/")  # same packages, new tag
        built = ensure_base(spec)
        out["base"] = built.seconds
        client().images.remove(built.tag, force=True)
    prune(["instance", "env"])
    base = ensure_base().tag
    inst = load_instances("bundled", repos)[0]
    spec = specs.resolve(inst)
    mirror = repos / inst.repo.replace("/", "__")
    t0 = time.monotonic()
    env = ensure(env_layer(base, inst, spec, mirror))
    out["env"] = time.monotonic() - t0
    t0 = time.monotonic()
    ensure(instance_layer(env.tag, inst, spec, mirror))
    out["instance"] = time.monotonic() - t0
    if pip:
        from dataclasses import replace
        t0 = time.monotonic()
        built = ensure(env_layer(base, inst, replace(spec, packages=(pip,)), mirror))
        out[f"env+pip({pip})"] = time.monotonic() - t0
        client().images.remove(built.tag, force=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--cold-base", action="store_true")
    ap.add_argument("--pip", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if (why := engine_problem()) is not None:
        sys.exit(f"no Docker engine: {why}")
    with tempfile.TemporaryDirectory() as tmp:
        repos = Path(tmp) / "repos"
        result = {"cold": cold(repos, args.cold_base, args.pip) if args.cold or args.cold_base
                  or args.pip else None, "warm": warm(repos, args.rounds)}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
