"""--cluster: a run's units on a real local Ray cluster (a head and two worker nodes,
separate processes with their own resources, started here on 127.0.0.1). Records stream
back to the driver's one samples.jsonl; a worker node killed mid-run has its units run
again elsewhere, with nothing lost or written twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from evals.fake_openai import FakeServer
from evals.records import RunLog, iter_records
from evals.run import RunConfig, execute
from tests.conftest import TEST_EXTRA, require, wait_for

# Quick detection of a dead node (the defaults wait tens of seconds).
FAST = {"RAY_health_check_initial_delay_ms": "0", "RAY_health_check_period_ms": "500",
        "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "2",
        "RAY_USAGE_STATS_ENABLED": "0"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str) -> subprocess.Popen:
    ray = str(Path(sys.executable).parent / "ray")
    return subprocess.Popen([ray, "start", "--block", "--disable-usage-stats", *args],
                            env={**os.environ, **FAST}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ray = require("ray", hint=TEST_EXTRA)
    port = _port()
    address = f"127.0.0.1:{port}"
    head = _ray("--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=0",
                "--include-dashboard=false")
    procs = [head]
    try:
        assert wait_for(lambda: _up(address), 120), "the head did not start"
        os.environ.update(FAST)
        ray.init(address=address, log_to_driver=False, logging_level="warning")
        for count, name in ((2, "a"), (3, "b")):  # one at a time: two starting at once clash
            procs.append(_ray(f"--address={address}", "--node-ip-address=127.0.0.1",
                              "--num-cpus=1", f'--resources={{"evals_{name}": 1}}'))
            assert wait_for(lambda: len([n for n in ray.nodes() if n["Alive"]]) == count, 120), \
                f"worker node {name} did not join"
        yield address, procs
    finally:
        ray.shutdown()
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        subprocess.run([str(Path(sys.executable).parent / "ray"), "stop", "--force"],
                       capture_output=True)


def _up(address: str) -> bool:
    ray = str(Path(sys.executable).parent / "ray")
    return subprocess.run([ray, "status", f"--address={address}"], capture_output=True,
                          env={**os.environ, **FAST}).returncode == 0


def test_units_run_on_both_worker_nodes_and_a_lost_node_loses_nothing(cluster, tmp_path):
    address, procs = cluster
    log = RunLog(tmp_path / "r")
    killed = threading.Event()

    def kill_worker_b_midway():
        if wait_for(lambda: log.samples_path.exists()
                    and log.samples_path.read_bytes().count(b"\n") >= 8, 120):
            os.killpg(procs[2].pid, signal.SIGKILL)
            killed.set()

    killer = threading.Thread(target=kill_worker_b_midway)
    with FakeServer(latency=0.3) as srv:
        killer.start()
        cfg = RunConfig(tasks=["arithmetic"], models=["openai/fake-model"],
                        model_options={"base_url": srv.url}, task_params={"count": "40"},
                        concurrency=4, cluster=address, cache=False)
        stats = execute(cfg, log, ["evals"])
        killer.join()
    assert killed.is_set()
    keys = Counter((r["sample_id"], r["gen"]) for r in iter_records(log.samples_path))
    assert len(keys) == 40 and set(keys.values()) == {1}  # every unit once
    assert stats.errors == 0 and stats.done == 40
    assert len(stats.nodes) == 2  # both worker nodes ran units (the head has no CPU)
