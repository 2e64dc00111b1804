"""The three image layers of one instance: base, environment, instance."""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.base import (PACKAGES, BaseSpec, check_named_base, ensure_base, nearest_python,
                          suite_for_python)
from sandbox.engine import SandboxError
from sandbox.images import Layer, ensure, image_id

from . import repos
from .data import Instance
from .specs import EnvSpec

HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
BOOTSTRAP = "/tmp/evals-bootstrap"  # a throwaway venv whose pip installs the pinned one


# The build tools of the env layer's venv, per Python: what a conda environment of
# SWE-bench's gets (Debian's venv brings pip 20.3 on bullseye, too old to build a
# pyproject.toml repository in isolation with today's setuptools, whose `develop`
# shells out to a pip that the build environment does not have). Pinned, so that
# an env layer built today and one built next year install the same; setuptools
# below 80, whose `develop` still works without pip and which still ships
# pkg_resources, as the repositories of SWE-bench's years expect.
BUILD_TOOLS = {"3.6": ("pip==21.3.1", "setuptools==59.6.0", "wheel==0.37.1"),
               "3.7": ("pip==24.0", "setuptools==68.0.0", "wheel==0.42.0"),
               "3.8": ("pip==24.3.1", "setuptools==75.3.0", "wheel==0.45.1")}
# 3.9 and later; pip 26.0 is the first with --uploaded-prior-to (see pip_cutoff)
BUILD_TOOLS_DEFAULT = ("pip==26.0", "setuptools==75.1.0", "wheel==0.44.0")
# Lines of a requirements file that SWE-bench leaves out of its environments.
_REQ_SKIP = ("-e .", "#", ".[test")


def build_tools(python: str | None) -> tuple[str, ...]:
    short = ".".join(str(python).split(".")[:2]) if python else ""
    return BUILD_TOOLS.get(short, BUILD_TOOLS_DEFAULT)


@dataclass
class Images:
    instance: str
    built: dict[str, float] = field(default_factory=dict)  # layer -> seconds, when built now
    tags: dict[str, str] = field(default_factory=dict)
    python: str | None = None  # the interpreter the layers were built for
    substituted: str | None = None  # "3.6 -> 3.9" when the spec's Python is not available
    pull_failed: str | None = None  # why the published image was not used (then built here)


def requirements_text(mirror: Path, commit: str, candidates: str) -> tuple[str, str]:
    """The first of ``candidates`` (space-separated repo paths) that exists at ``commit``,
    with ``-r`` includes inlined and SWE-bench's excluded lines dropped: (path, text)."""
    for path in candidates.split():
        text = repos.read_file(mirror, commit, path)
        if text is None:
            continue
        base = path.rsplit("/", 1)[0] if "/" in path else ""
        out: list[str] = []
        for line in text.splitlines():
            if line.strip().startswith("-r"):
                name = line.strip()[2:].strip()
                inner = repos.read_file(mirror, commit, f"{base}/{name}" if base else name) or ""
                out = [x for x in inner.splitlines() if not x.strip().startswith(_REQ_SKIP)] + out
            elif not line.strip().startswith(_REQ_SKIP):
                out.append(line)
        return path, "\n".join(out) + "\n"
    raise SandboxError(f"none of the requirements files {candidates} exists at {commit[:12]}")


@functools.lru_cache(maxsize=1)
def _pip_env() -> dict[str, str]:
    """The host's PyPI settings a container can use: an http(s) index, never file:// ones.
    Read once per process (three `pip config` calls)."""
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


def env_layer(parent: str, inst: Instance, spec: EnvSpec, mirror: Path | None,
              python: str | None = None) -> Layer:
    """``python``: the interpreter the base has (the spec's, or its substitute)."""
    needs_pip = bool(spec.packages or spec.requirements or spec.install)
    lines = ["FROM {{PARENT}}"]
    files: dict[str, bytes | tuple[bytes, int]] = {}
    python = python or spec.python
    inputs: dict = {"packages": list(spec.packages), "requirements": spec.requirements,
                    "python": python}
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
        tools = build_tools(python)
        inputs["build_tools"] = list(tools)
        # The base's own interpreter becomes the environment, as a conda env is one
        # interpreter with its packages: `python`, `python3`, `pip` and any link to
        # sys.executable (tox-current-env makes one) all see the same packages. A venv
        # would not: a link to its interpreter resolves to /usr/bin, outside the venv.
        # Debian's venv only lends its bundled pip, to install the pinned one.
        lines += ["RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED "
                  f"&& python3 -m venv {BOOTSTRAP} "
                  f"&& PYTHONPATH=$(echo {BOOTSTRAP}/lib/python3*/site-packages) "
                  "python3 -m pip install " + " ".join(tools) + f" && rm -rf {BOOTSTRAP} "
                  "&& ln -sf /usr/bin/python3 /usr/local/bin/python",
                  "ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore"]
        if spec.pip_cutoff and tools == BUILD_TOOLS_DEFAULT:
            # Every later pip in this image, the instance's install and the isolated
            # build environments it makes included, sees PyPI as it was then.
            inputs["pip_cutoff"] = spec.pip_cutoff
            lines.append(f"ENV PIP_UPLOADED_PRIOR_TO={shlex.quote(spec.pip_cutoff)}")
        if spec.requirements:
            if mirror is None:
                raise SandboxError(f"no repository mirror for {inst.repo}: its requirements "
                                   f"file cannot be read")
            env_commit = inst.environment_setup_commit or inst.base_commit
            path, text = requirements_text(mirror, env_commit, spec.requirements)
            inputs["requirements_file"] = f"{path}@{env_commit}"
            files["requirements.txt"] = text.encode()  # its text is in the layer's hash
            lines += ["COPY requirements.txt /tmp/evals-requirements.txt",
                      "RUN python -m pip install -r /tmp/evals-requirements.txt "
                      "&& rm /tmp/evals-requirements.txt"]
        if spec.packages:
            lines.append("RUN python -m pip install "
                         + " ".join(shlex.quote(p) for p in spec.packages))
    if _needs_py36_compat(spec.python, python):
        # a 3.5/3.6 spec on a newer interpreter: unittest's descriptions as 3.6 printed them
        inputs["compat"] = "py36-unittest-descriptions"
        files["evals_py36_compat.py"] = PY36_COMPAT.read_bytes()
        files["evals_py36_compat.pth"] = b"import evals_py36_compat\n"
        lines += ["COPY evals_py36_compat.py evals_py36_compat.pth /tmp/evals-compat/",
                  "RUN d=$(python3 -c 'import site; print(site.getsitepackages()[0])') "
                  "&& mkdir -p \"$d\" && mv /tmp/evals-compat/* \"$d\" && rmdir /tmp/evals-compat"]
    return Layer("env", parent, "\n".join(lines) + "\n", files, inputs,
                 network="bridge" if needs_pip else "none")


PY36_COMPAT = Path(__file__).with_name("py36_compat.py")


def _needs_py36_compat(wanted: str | None, used: str | None) -> bool:
    """A spec for Python < 3.7 built on a newer interpreter (see py36_compat.py)."""
    def minor(v: str | None) -> tuple[int, int] | None:
        parts = str(v or "").split(".")
        return (int(parts[0]), int(parts[1])) if len(parts) > 1 and parts[1].isdigit() else None
    w, u = minor(wanted), minor(used)
    return w is not None and u is not None and w < (3, 7) <= u


def instance_layer(parent: str, inst: Instance, spec: EnvSpec, mirror: Path) -> Layer:
    lines = ["FROM {{PARENT}}", "COPY testbed /testbed", "WORKDIR /testbed"]
    steps = [*spec.pre_install, *([spec.install] if spec.install else [])]
    if steps:
        lines.append("RUN " + " && ".join(f"({s})" for s in steps))
    inputs = {"repo": inst.repo, "base_commit": inst.base_commit, "steps": steps}
    return Layer("instance", parent, "\n".join(lines) + "\n", {}, inputs,
                 network="bridge" if steps else "none",
                 context_fn=lambda: repos.snapshot_tar(mirror, inst.base_commit))


def published_image(inst: Instance, registry: str | None = None) -> str:
    """SWE-bench's per-instance image name (Docker Hub, or ``registry`` holding copies)."""
    name = f"swebench/sweb.eval.x86_64.{inst.instance_id.lower().replace('__', '_1776_')}:latest"
    return f"{registry.rstrip('/')}/{name}" if registry else name


def try_pull(ref: str) -> str | None:
    """None when ``ref`` is here or was pulled now, else why not (one line)."""
    from sandbox.engine import client, errors

    if image_id(ref) is not None:
        return None
    try:
        client().images.pull(ref)
        return None
    except errors() as e:
        first = (str(getattr(e, "explanation", "") or e).strip().splitlines() or [""])[0]
        return f"cannot pull {ref}: {first[:240]}"


def interpreter(spec: EnvSpec, base_image: str | None, nearest: bool) -> tuple[str | None, str | None]:
    """(the Python the layers are built for, "wanted -> used" when substituted).

    A named base is taken to have the spec's Python. Otherwise the Debian suite
    that ships it; with ``nearest``, the closest one that exists when none does;
    without, a SandboxError that names the interpreter and ``-T base_image=``."""
    if base_image or not spec.python:
        return spec.python, None
    used = nearest_python(spec.python) if nearest else spec.python
    suite_for_python(used)  # raises for a Python no suite ships
    short = ".".join(str(spec.python).split(".")[:2])
    return used, (f"{short} -> {used}" if used != short else None)


def ensure_images(inst: Instance, spec: EnvSpec, mirror: Path | None, base_image: str | None,
                  published: bool | str, nearest: bool = True,
                  registry: str | None = None) -> Images:
    """Build (or find) the instance's image; ``built`` times the layers built now.

    ``published``: True tries SWE-bench's published image first and builds locally
    when it cannot be pulled (``Images.pull_failed`` says why); "only" takes the
    published image or fails with that one line."""
    built: dict[str, float] = {}
    tags: dict[str, str] = {}
    ready = spec.image or (published_image(inst, registry) if published else None)
    why = try_pull(ready) if ready else None
    if ready and why is None:
        return Images(ready, built, {"instance": ready})
    if spec.image or published == "only":
        raise SandboxError(f"{why} (-T images=local builds the image here instead)"
                           if published == "only" and not spec.image else why)
    if mirror is None:
        raise SandboxError(f"no repository mirror for {inst.repo}")
    python, substituted = interpreter(spec, base_image, nearest)
    if base_image:
        base = check_named_base(base_image)
    else:
        result = ensure_base(BaseSpec(suite=suite_for_python(python),
                                      packages=tuple(sorted({*PACKAGES, *spec.system_packages}))))
        base = result.tag
        if result.built:
            built["base"] = result.seconds
    tags["base"] = base
    for name in ("env", "instance"):
        t0 = time.monotonic()
        layer = env_layer(base, inst, spec, mirror, python) if name == "env" else \
            instance_layer(tags["env"], inst, spec, mirror)
        result = ensure(layer)
        tags[name] = result.tag
        if result.built:
            built[name] = time.monotonic() - t0
    return Images(tags["instance"], built, tags, python, substituted, why)
