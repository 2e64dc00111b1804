"""The three image layers of one instance: base, environment, instance."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.base import BaseSpec, check_named_base, ensure_base, suite_for_python
from sandbox.engine import SandboxError
from sandbox.images import Layer, ensure, image_id

from . import repos
from .data import Instance
from .specs import EnvSpec

HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
VENV = "/opt/venv"


@dataclass
class Images:
    instance: str
    built: dict[str, float] = field(default_factory=dict)  # layer -> seconds, when built now
    tags: dict[str, str] = field(default_factory=dict)


def _pip_env() -> dict[str, str]:
    """The host's PyPI settings a container can use: an http(s) index, never file:// ones."""
    out = {}
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"):
        value = os.environ.get(key, "")
        if not value:
            try:
                value = subprocess.run(["pip", "config", "get", f"global.{key[4:].lower().replace('_', '-')}"],
                                       capture_output=True, text=True, timeout=20).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                value = ""
        urls = [u for u in value.split() if u.startswith(("http://", "https://"))] \
            if "URL" in key else value.split()
        if urls:
            out[key] = " ".join(urls)
    return out


def env_layer(parent: str, inst: Instance, spec: EnvSpec, mirror: Path) -> Layer:
    needs_pip = bool(spec.packages or spec.requirements or spec.install)
    lines = ["FROM {{PARENT}}"]
    files: dict[str, bytes | tuple[bytes, int]] = {}
    inputs: dict = {"packages": list(spec.packages), "requirements": spec.requirements,
                    "python": spec.python}
    context_fn = None
    if needs_pip:
        if os.path.exists(HOST_CA):  # this host's TLS interception, trusted inside too
            files["host-ca.crt"] = Path(HOST_CA).read_bytes()
            lines += ["COPY host-ca.crt /usr/local/share/evals-host-ca.crt",
                      "ENV PIP_CERT=/usr/local/share/evals-host-ca.crt "
                      "SSL_CERT_FILE=/usr/local/share/evals-host-ca.crt"]
        pip_env = _pip_env()
        if pip_env:
            lines.append("ENV " + " ".join(f"{k}={shlex.quote(v)}" for k, v in pip_env.items()))
        inputs["pip_env"] = pip_env
        lines += [f"RUN python3 -m venv --system-site-packages {VENV}",
                  f"ENV PATH={VENV}/bin:$PATH VIRTUAL_ENV={VENV} PIP_DISABLE_PIP_VERSION_CHECK=1"]
        if spec.requirements:
            env_commit = inst.environment_setup_commit or inst.base_commit
            inputs["environment_setup_commit"] = env_commit
            context_fn = lambda: repos.snapshot_tar(mirror, env_commit, "envrepo")  # noqa: E731
            lines += ["COPY envrepo /tmp/envrepo",
                      f"RUN cd /tmp/envrepo && pip install -r {shlex.quote(spec.requirements)} "
                      f"&& rm -rf /tmp/envrepo"]
        if spec.packages:
            lines.append("RUN pip install " + " ".join(shlex.quote(p) for p in spec.packages))
    return Layer("env", parent, "\n".join(lines) + "\n", files, inputs,
                 network="bridge" if needs_pip else "none", context_fn=context_fn)


def instance_layer(parent: str, inst: Instance, spec: EnvSpec, mirror: Path) -> Layer:
    lines = ["FROM {{PARENT}}", "COPY testbed /testbed", "WORKDIR /testbed"]
    steps = [*spec.pre_install, *([spec.install] if spec.install else [])]
    if steps:
        lines.append("RUN " + " && ".join(f"({s})" for s in steps))
    inputs = {"repo": inst.repo, "base_commit": inst.base_commit, "steps": steps}
    return Layer("instance", parent, "\n".join(lines) + "\n", {}, inputs,
                 network="bridge" if steps else "none",
                 context_fn=lambda: repos.snapshot_tar(mirror, inst.base_commit))


def published_image(inst: Instance) -> str:
    """SWE-bench's per-instance image name on Docker Hub."""
    return f"swebench/sweb.eval.x86_64.{inst.instance_id.lower().replace('__', '_1776_')}:latest"


def try_pull(ref: str) -> bool:
    from sandbox.engine import client, errors

    if image_id(ref) is not None:
        return True
    try:
        client().images.pull(ref)
        return True
    except errors():
        return False  # no registry reachable: build locally instead


def ensure_images(inst: Instance, spec: EnvSpec, mirror: Path | None, base_image: str | None,
                  published: bool) -> Images:
    """Build (or find) the instance's image; ``built`` times the layers built now."""
    built: dict[str, float] = {}
    tags: dict[str, str] = {}
    ready = spec.image or (published_image(inst) if published else None)
    if ready and try_pull(ready):
        return Images(ready, built, {"instance": ready})
    if spec.image:
        raise SandboxError(f"image {spec.image} is not here and cannot be pulled")
    if mirror is None:
        raise SandboxError(f"no repository mirror for {inst.repo}")
    if base_image:
        base = check_named_base(base_image)
    else:
        result = ensure_base(BaseSpec(suite=suite_for_python(spec.python)))
        base = result.tag
        if result.built:
            built["base"] = result.seconds
    tags["base"] = base
    for name, make in (("env", env_layer), ("instance", instance_layer)):
        t0 = time.monotonic()
        result = ensure(make(tags["base" if name == "env" else "env"], inst, spec, mirror))
        tags[name] = result.tag
        if result.built:
            built[name] = time.monotonic() - t0
    return Images(tags["instance"], built, tags)
