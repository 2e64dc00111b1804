"""Resource and network limits of one sandbox container."""

from __future__ import annotations

from dataclasses import dataclass

# Network policies:
#   none   - no interface but loopback: a connection fails at once (ENETUNREACH).
#   sealed - no interface to the outside, but a default route into loopback,
#            where packets for outside addresses are dropped: a connection hangs until its own
#            timeout, as test suites that probe an unroutable address expect,
#            and still no packet leaves the container.
#   bridge - the engine's default network (only for builds, or by explicit choice).
NETWORKS = ("none", "sealed", "bridge")

# A numeric user with no passwd entry needed in the image: tests never run as root.
TEST_USER = "10001:10001"


@dataclass(frozen=True)
class Limits:
    memory: str = "2g"  # docker's size syntax; swap is capped at the same value
    cpus: float = 1.0
    pids: int = 512  # a fork bomb hits this, not the host
    timeout: float = 300.0  # wall clock of one command, seconds
    output_cap: int = 1 << 20  # bytes of log kept (head and tail halves)
    tmpfs_size: str = "256m"  # /tmp in the container; output beyond it fails to write
    network: str = "none"
    user: str = TEST_USER

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"network {self.network!r}: expected one of {', '.join(NETWORKS)}")
        if self.cpus <= 0 or self.pids < 16 or self.timeout <= 0 or self.output_cap < 1024:
            raise ValueError(f"unreasonable limits: {self}")

    def host_config(self) -> dict:
        """Keyword arguments for ``containers.create`` that enforce these limits."""
        return {
            "mem_limit": self.memory,
            "memswap_limit": self.memory,
            "nano_cpus": int(self.cpus * 1e9),
            "pids_limit": self.pids,
            "network_mode": "none" if self.network in ("none", "sealed") else self.network,
            "tmpfs": {"/tmp": f"rw,exec,nosuid,size={self.tmpfs_size}"},
            "cap_drop": ["ALL"],
            # Root in the container (only for patching and restoring files) keeps
            # what it needs; the test user gets none of it either way.
            "cap_add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]
            + (["NET_ADMIN"] if self.network == "sealed" else []),
            "security_opt": ["no-new-privileges"],
            "init": True,  # tini reaps zombies and forwards signals
        }
