"""An agent's per-step overhead and the memory of many agents' containers.

    python bench/agent_overhead.py [--steps 50] [--rounds 3] [--peer-python PY]
                                   [--containers 1,8,32] [--json OUT]

Per step (the model excluded): one command run in the agent's container and its output
returned, for a scripted trajectory of ``--steps`` commands (ls, grep, cat/sed reads, a
sed edit, python -c, git, one unit test) in the bundled instance image
``evalsfix__textkit-1``, and for ``true`` alone (the floor). Two harnesses on the same
image, in turn, ``--rounds`` times (a fresh container each time):

* ours: ``tasks.swe.agent.ContainerShell`` in a container started as the agent starts
  it (``Sandbox`` with the task's limits, /testbed made writable for the unprivileged
  user); each command goes through the Engine API (exec create, start, stream, inspect)
  under ``timeout``;
* mini-swe-agent's ``DockerEnvironment`` (``pip install mini-swe-agent`` into the venv
  of ``--peer-python``; it runs ``docker exec ... bash -lc CMD`` per command), with the
  same memory, CPU, pids and network limits passed as ``run_args``.

Besides the wall time per step, the harness's own CPU per step (``*_cpu``): this process
for ours (every thread), the peer's process and the docker CLI it spawns for it; the
engine's CPU is left out of both.

Memory (``--containers``): N agents' containers started at once, as the agent starts
them: the sum of their cgroup memory (``docker stats``) idle, and again once each has
run the unit test; this driver's RSS before and after starting them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.testing import engine_problem  # noqa: E402

INSTANCE = "evalsfix__textkit-1"
# One exploration-edit-test loop; the trajectory repeats it to --steps commands.
LOOP = [
    "ls",
    "ls -la textkit tests",
    "grep -rn 'def ' textkit | head -20",
    "cat textkit/core.py",
    "sed -n 1,20p textkit/core.py",
    "grep -n 're.split' textkit/core.py",
    "sed -i 's/\\[^a-z0-9\\]/[^a-z0-9]/' textkit/core.py && git diff --stat",
    "python3 -c 'import textkit; print(textkit.slugify(\"Hello  World\"))'",
    "git status --short",
    "python3 -m unittest -q tests.test_slugify 2>&1 | tail -3",
]
# What the peer runs: one DockerEnvironment, each command timed around execute().
PEER = r"""
import json, os, sys, time
from minisweagent.environments.docker import DockerEnvironment

def cpu():  # this process and the docker CLI processes it waited for
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system

image, commands, run_args = json.loads(sys.stdin.read())
t0 = time.perf_counter()
env = DockerEnvironment(image=image, cwd="/testbed", timeout=60, run_args=run_args)
started = time.perf_counter() - t0
times, cpus, codes = [], [], []
try:
    for command in commands:
        t, c = time.perf_counter(), cpu()
        out = env.execute({"command": command})
        times.append(time.perf_counter() - t)
        cpus.append(cpu() - c)
        codes.append(out["returncode"])
finally:
    env.cleanup()
print(json.dumps({"start": started, "times": times, "cpu": cpus, "codes": codes}))
"""


def trajectory(steps: int) -> list[str]:
    return [LOOP[i % len(LOOP)] for i in range(steps)]


def figures(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    return {"n": len(ms), "mean_ms": statistics.fmean(ms), "p50_ms": statistics.median(ms),
            "p95_ms": ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]}


def agent_image(repos: Path):
    """The instance image and the limits the swe task gives its agents (defaults)."""
    from sandbox.limits import Limits
    from tasks.swe import bundled, load_instances, specs
    from tasks.swe.layers import ensure_images

    bundled.ensure_mirrors(repos)
    inst = next(i for i in load_instances("bundled", repos) if i.instance_id == INSTANCE)
    spec = specs.resolve(inst)
    images = ensure_images(inst, spec, repos / bundled.mirror_name(inst.repo), None, False)
    limits = Limits(memory="2g", cpus=1.0, pids=512, timeout=120, network=spec.network)
    return images.instance, limits, dict(spec.env)


def start_agent_box(image: str, limits):
    """A container as tasks.swe.agent.solve starts it."""
    from sandbox.container import Sandbox

    box = Sandbox(image, limits, workdir="/testbed", name_hint="bench-agent", lifetime=3600)
    box.start()
    owned = box.exec(["chown", "-R", limits.user, "/testbed"], user="root", timeout=300)
    if owned.exit_code != 0:
        box.remove()
        raise RuntimeError(owned.text[-300:])
    return box


def ours(image: str, limits, env: dict, commands: list[str]) -> dict:
    """One episode's container: its start, then each command's seconds and exit code."""
    from tasks.swe.agent import ContainerShell

    t0 = time.perf_counter()
    box = start_agent_box(image, limits)
    started = time.perf_counter() - t0
    try:
        shell = ContainerShell(box, limits.user, {"HOME": "/tmp", **env}, 40_000)

        async def play() -> tuple[list[float], list[float], list]:
            times, cpus, codes = [], [], []
            for command in commands:
                t, c = time.perf_counter(), time.process_time()  # every thread's CPU
                code, _ = await shell.run(command, 60)
                times.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
                codes.append(code)
            return times, cpus, codes

        times, cpus, codes = asyncio.run(play())
    finally:
        box.remove()
    return {"start": started, "times": times, "cpu": cpus, "codes": codes}


def peer(python: str, image: str, limits, commands: list[str]) -> dict:
    """The same in mini-swe-agent's DockerEnvironment (a process of its venv)."""
    run_args = ["--rm", f"--memory={limits.memory}", f"--cpus={limits.cpus}",
                f"--pids-limit={limits.pids}", "--network=none"]
    done = subprocess.run([python, "-c", PEER], input=json.dumps([image, commands, run_args]),
                          capture_output=True, text=True, timeout=1200,
                          env={"MSWEA_SILENT_STARTUP": "1", "PATH": "/usr/bin:/bin",
                               "HOME": tempfile.gettempdir()})
    if done.returncode != 0:
        raise RuntimeError(f"mini-swe-agent failed: {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def overhead(harnesses: dict, commands: list[str], rounds: int) -> dict:
    """Each harness plays the trajectory, then ``true`` as often, in turn, ``rounds``
    times (a load on the machine falls on both alike)."""
    kinds = (("trajectory", commands), ("true", ["true"] * len(commands)))
    raw = {name: {"start_s": [], "nonzero_exits": 0, **{k: [] for k, _ in kinds},
                  **{f"{k}_cpu": [] for k, _ in kinds}} for name in harnesses}
    for _ in range(rounds):
        for name, play in harnesses.items():
            for kind, cmds in kinds:
                out = play(cmds)
                raw[name][kind] += out["times"]
                raw[name][f"{kind}_cpu"] += out["cpu"]
                raw[name]["start_s"].append(out["start"])
                raw[name]["nonzero_exits"] += sum(c != 0 for c in out["codes"])
    return {name: {**{key: figures(r[key]) for key in r if key not in ("start_s",
                                                                      "nonzero_exits")},
                   "start_s": statistics.median(r["start_s"]),
                   "nonzero_exits": r["nonzero_exits"]} for name, r in raw.items()}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def container_mib(names: list[str]) -> list[float]:
    """Each container's cgroup memory as ``docker stats`` reads it."""
    out = subprocess.run(["docker", "stats", "--no-stream", "--format",
                          "{{.Name}} {{.MemUsage}}", *names], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    units = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}
    sizes = []
    for line in out.splitlines():
        used = line.split()[1]
        number = used.rstrip("BKMGiT")
        sizes.append(float(number) * units[used[len(number):]])
    return sizes


def memory(image: str, limits, counts: list[int]) -> list[dict]:
    """N containers at once: idle (started, /testbed chowned), then once each has run
    the unit test (the agent between two steps)."""
    rows = []
    for n in counts:
        before = rss_mib()
        with ThreadPoolExecutor(8) as pool:
            boxes = list(pool.map(lambda _: start_agent_box(image, limits), range(n)))
        try:
            idle = container_mib([b.name for b in boxes])
            after = rss_mib()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda b: b.exec(["sh", "-c", LOOP[-1]], user=limits.user,
                                               timeout=120, workdir="/testbed"), boxes))
            tested = container_mib([b.name for b in boxes])
        finally:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda b: b.remove(), boxes))
        rows.append({"containers": n, "idle_mib": sum(idle),
                     "idle_per_container_mib": statistics.fmean(idle),
                     "after_test_mib": sum(tested),
                     "after_test_per_container_mib": statistics.fmean(tested),
                     "driver_rss_mib": after, "driver_rss_added_mib": after - before})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--peer-python", default=None,
                    help="python of a venv with mini-swe-agent installed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--containers", default="1,8,32")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if (why := engine_problem()) is not None:
        sys.exit(f"no Docker engine: {why}")
    commands = trajectory(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        image, limits, env = agent_image(Path(tmp) / "repos")
        harnesses = {"ours": lambda cmds: ours(image, limits, env, cmds)}
        if args.peer_python:
            harnesses["mini-swe-agent"] = lambda cmds: peer(args.peer_python, image, limits,
                                                            cmds)
        result = {"image": image, "steps": args.steps, "rounds": args.rounds,
                  **overhead(harnesses, commands, args.rounds)}
        counts = [int(c) for c in args.containers.split(",") if c]
        result["memory"] = memory(image, limits, counts) if counts else []
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
