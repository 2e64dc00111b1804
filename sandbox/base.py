"""The base layer: a Debian root made by debootstrap and ``docker import``ed.

No registry is needed: debootstrap reads Debian's package mirror. The image
is tagged by a hash of its inputs (suite, packages, mirror), not of its
content, so it is built once per machine and then found by name. A user may
name any other base (``python:3.11-slim`` where a registry is reachable)
that has python3, git and patch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from .engine import INPUTS_LABEL, LABEL, LAYER_LABEL, SandboxError, client, errors
from .images import Built, from_registry, image_id, lock_for, tag_for, to_registry

# Which Debian release ships which Python as python3.
SUITES = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
DEFAULT_SUITE = "bookworm"
# iproute2 sets up the sealed network; python3-venv lets the env layer make a
# venv (pip comes from ensurepip, offline); patch is the last apply fallback.
PACKAGES = ("python3", "python3-venv", "git", "patch", "iproute2", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class BaseSpec:
    suite: str = DEFAULT_SUITE
    packages: tuple[str, ...] = PACKAGES
    mirror: str = field(default_factory=lambda: os.environ.get("EVALS_DEBIAN_MIRROR",
                                                               DEFAULT_MIRROR))

    @property
    def tag(self) -> str:
        body = json.dumps([self.suite, sorted(self.packages), self.mirror])
        return tag_for("base", hashlib.sha256(body.encode()).hexdigest()[:16])


def _minor(version: str) -> tuple[int, int]:
    major, _, minor = str(version).partition(".")
    return int(major), int(minor.split(".")[0] or 0)


def suite_for_python(version: str | None) -> str:
    """The Debian suite whose python3 is ``version`` (major.minor); bookworm when unset."""
    if not version:
        return DEFAULT_SUITE
    short = ".".join(str(version).split(".")[:2])
    if short not in SUITES:
        raise SandboxError(f"no local base image ships Python {short} (Debian's suites have "
                           f"{', '.join(SUITES)}); name an image that has it with "
                           f"-T base_image=IMAGE, or allow the nearest one with "
                           f"-T interpreter=nearest")
    return SUITES[short]


def nearest_python(version: str | None) -> str | None:
    """The Python of a local base nearest to ``version``: itself when one ships it;
    else the closest minor version (a tie goes to the newer). None when unset."""
    if not version:
        return None
    short = ".".join(str(version).split(".")[:2])
    if short in SUITES:
        return short
    want = _minor(short)
    return min(SUITES, key=lambda v: (abs(_minor(v)[1] - want[1]) + 100 * abs(_minor(v)[0] - want[0]),
                                      -_minor(v)[1]))


def ensure_base(spec: BaseSpec = BaseSpec()) -> Built:
    """The base image for ``spec``, made with debootstrap unless already here."""
    tag = spec.tag
    with lock_for(tag):  # one debootstrap per engine at a time
        if image_id(tag) is not None or from_registry(tag):
            return Built(tag, False, 0.0)
        if shutil.which("debootstrap") is None:
            raise SandboxError("building the base image needs debootstrap "
                               "(apt-get install debootstrap), or name one with -T base_image=")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="evals-base-") as tmp:
            root = os.path.join(tmp, "rootfs")
            cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(spec.packages)}",
                   spec.suite, root, spec.mirror]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
                raise SandboxError("debootstrap failed:\n" + "\n".join(tail))
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):  # not needed, 100 MB
                shutil.rmtree(os.path.join(root, junk), ignore_errors=True)
            archive = os.path.join(tmp, "rootfs.tar")
            subprocess.run(["tar", "--numeric-owner", "-C", root, "-cf", archive, "."], check=True)
            repo, _, version = tag.rpartition(":")
            inputs = json.dumps({"suite": spec.suite, "packages": sorted(spec.packages),
                                 "mirror": spec.mirror})
            changes = [f"LABEL {LABEL}=1", f"LABEL {LAYER_LABEL}=base",
                       f"LABEL {INPUTS_LABEL}={json.dumps(inputs)}",
                       "ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
                       'CMD ["/bin/sh"]']
            try:
                client().api.import_image_from_file(archive, repository=repo, tag=version,
                                                    changes=changes)
            except errors() as e:
                raise SandboxError(f"docker import of the base image failed: {e}") from None
        if image_id(tag) is None:
            raise SandboxError("docker import gave no base image")
        to_registry(tag)
        return Built(tag, True, time.monotonic() - started)


def check_named_base(ref: str) -> str:
    """A user-named base must be here already (we never pull unasked)."""
    if image_id(ref) is None:
        raise SandboxError(f"base image {ref!r} is not here: pull or build it first "
                           f"(docker pull {ref}), or leave -T base_image unset to build one")
    return ref
