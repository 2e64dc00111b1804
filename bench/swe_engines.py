"""The bundled SWE set graded with gold on one Docker engine and on two (sandbox/engines.py).

    python bench/swe_engines.py [--rounds 3] [--slots 2] [--debootstrap] [--json OUT]

The second engine is a ``dockerd`` started here beside the machine's own (its own
socket, data root and cgroup parent; sandbox.testing.LocalDaemon). Its images are
copied from the first engine (``docker save | docker load``, timed) so both grade
with warm images; ``--debootstrap`` also times making the base image on it from
scratch, the other way to get it there. Each round grades the seven instances at once
through the swe task's scorer, on ``local?slots=S`` ("one"), on ``local?slots=S`` +
the second engine with ``slots=S`` ("two"), and on ``local?slots=2S`` ("one_2x": as many
slots as two engines, on one): wall time per round, the ratios, and where the gradings
went. Both engines share this machine's cores, so the ratio shows what
placement costs and what doubling the slots gives on the same CPUs, not what a
second machine would add.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.testing import LocalDaemon, engine_problem  # noqa: E402


def image_tags(repos: Path) -> list[str]:
    """Every layer's tag of the bundled instances on the local engine (built if missing)."""
    from tasks.swe import load_instances, specs
    from tasks.swe.layers import ensure_images
    from tasks.swe.repos import mirror_path

    tags: list[str] = []
    for inst in load_instances("bundled", repos):
        images = ensure_images(inst, specs.resolve(inst), mirror_path(repos, inst.repo, True),
                               None, False)
        tags += [t for t in images.tags.values() if t not in tags]
    return tags


def grade_round(repos: Path, engines: str, slots: int) -> dict:
    from sandbox import engines as pools
    from tasks.swe import swe

    pools._pools.clear()  # a fresh pool (counts, affinity) per round
    task = swe(repos=str(repos), sandboxes=slots, engines=engines)
    samples = list(task.samples())

    async def go():
        return await asyncio.gather(*(task.scorer(s, s.solution) for s in samples))

    t0 = time.monotonic()
    scores = asyncio.run(go())
    wall = time.monotonic() - t0
    bad = [(s.status, s.explanation) for s in scores if s.status != "resolved"]
    assert not bad, bad
    return {"wall": wall, "placed": dict(Counter(s.metadata["engine"] for s in scores))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slots", type=int, default=2, help="Slots per engine.")
    ap.add_argument("--debootstrap", action="store_true",
                    help="Also time making the base image on the second engine.")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if (why := engine_problem()) is not None:
        sys.exit(f"no Docker engine: {why}")
    from sandbox.base import BaseSpec, ensure_base
    from sandbox.engine import use
    from sandbox.engines import Engine, EngineSpec

    out: dict = {"slots_per_engine": args.slots, "rounds": args.rounds}
    second = LocalDaemon()
    with tempfile.TemporaryDirectory() as tmp:
        repos = Path(tmp) / "repos"
        try:
            second.start()
            tags = image_tags(repos)
            if args.debootstrap:
                with use(Engine(EngineSpec(second.url), 1)):
                    out["base_by_debootstrap_s"] = ensure_base(BaseSpec()).seconds
            t0 = time.monotonic()
            second.load([BaseSpec().tag])
            out["base_by_save_load_s"] = time.monotonic() - t0
            t0 = time.monotonic()
            second.load(tags)
            out["all_images_by_save_load_s"] = time.monotonic() - t0
            one = f"local?slots={args.slots}"
            setups = {"one": one, "two": f"{one},{second.url}?slots={args.slots}",
                      "one_2x": f"local?slots={2 * args.slots}"}
            grade_round(repos, setups["two"], args.slots)  # warm-up: both engines' caches
            rows: dict[str, list] = {name: [] for name in setups}
            for _ in range(args.rounds):  # interleaved: a load change hits all alike
                for name, engines in setups.items():
                    rows[name].append(grade_round(repos, engines, args.slots))
        finally:
            second.close()
    for name, runs in rows.items():
        walls = [r["wall"] for r in runs]
        out[name] = {"wall_median_s": statistics.median(walls), "walls_s": walls,
                     "placed": [r["placed"] for r in runs]}
    out["ratio_one_over_two"] = out["one"]["wall_median_s"] / out["two"]["wall_median_s"]
    out["ratio_one_2x_over_two"] = out["one_2x"]["wall_median_s"] / out["two"]["wall_median_s"]
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
