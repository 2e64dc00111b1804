"""Environment specs: how to install a repository and run its tests.

Sources, later ones overriding earlier ones field by field:

1. defaults (``pytest -rA`` with the ``pytest`` parser);
2. the ``swebench`` package's per-repo/version specs and log parser (4.1.0
   is the last release with them as code), when it is installed and knows
   the repository; imported lazily, only then;
3. the instance's own ``env_spec`` object;
4. a spec file (``-T specs_file=FILE``, JSON or YAML) mapping ``owner/name``,
   ``owner/name@version`` or an ``instance_id`` to spec fields: the user's
   explicit choice, so it overrides what the data carries;
5. the instance's ``eval_script``, ``image`` and ``log_parser`` fields
   (newer SWE-bench revisions), which always win.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from evals.task import TaskError

from .data import Instance

DIRECTIVES = ("pytest", "unittest", "swebench", "none")
# swebench specs resolve PyPI as it was when SWE-bench Verified was released and
# its environments validated (its specs pin only what had already drifted then).
SWEBENCH_PIP_CUTOFF = "2024-08-13T00:00:00Z"
# What SWE-bench's own base image installs with apt (swebench.harness.dockerfiles),
# plus python3-dev: its conda Pythons carry their headers, Debian's do not. Without
# a compiler, requirements with C extensions (django's pywatchman) fail to build.
SWEBENCH_SYSTEM_PACKAGES = ("build-essential", "python3-dev", "libffi-dev", "libtiff-dev",
                            "jq", "curl", "wget", "locales", "locales-all", "tzdata")


@dataclass(frozen=True)
class EnvSpec:
    python: str | None = None  # major.minor; picks the base image's Debian suite
    packages: tuple[str, ...] = ()  # pip requirements for the environment layer
    system_packages: tuple[str, ...] = ()  # Debian packages the base image must also have
    # a file of the repo at environment_setup_commit; several names (space-separated):
    # the first that exists, as SWE-bench tries its candidate paths
    requirements: str | None = None
    pre_install: tuple[str, ...] = ()  # shell commands in the repo before `install`
    install: str | None = None  # e.g. "python -m pip install -e ." (instance layer)
    test_cmd: str = "pytest -rA"
    eval_commands: tuple[str, ...] = ()  # shell lines before the test command
    log_parser: str = "pytest"
    test_directives: str = "pytest"  # how test_patch files become test-command arguments
    network: str = "none"  # none or sealed while the tests run (swebench specs: sealed)
    timeout: float = 1800.0
    writable_repo: bool = False  # let the tests write into the repository
    env: tuple[tuple[str, str], ...] = ()
    # PyPI as of this time (ISO 8601) for every pip of the image: a spec's
    # unpinned dependencies resolve as they did when it was written, not to
    # today's releases (pip 26's --uploaded-prior-to; Python 3.9 and later)
    pip_cutoff: str | None = None
    image: str | None = None  # a ready instance image (e.g. SWE-bench's published ones)
    eval_script: str | None = None  # replaces test_cmd + directives when given
    source: tuple[str, ...] = field(default=(), compare=False)

    def test_command(self, inst: Instance, test_paths: list[str]) -> str:
        if self.eval_script:
            return self.eval_script
        args = directives(self.test_directives, inst, test_paths)
        cmd = " ".join([self.test_cmd, *(shlex.quote(a) for a in args)])
        return " && ".join([*self.eval_commands, cmd]) if self.eval_commands else cmd


_LISTS = ("packages", "system_packages", "pre_install", "eval_commands")


def _coerce(raw: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in fields(EnvSpec)} - {"source"}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = {"pip_packages": "packages", "parser": "log_parser"}.get(key, key)
        if key not in known:
            raise TaskError(f"{where}: unknown spec field {key!r} (known: {', '.join(sorted(known))})")
        if key in _LISTS:
            # a packages string is shell words: swebench's quote some ('numpy==1.19.2')
            value = tuple(_shell_words(value, where) if key == "packages" and isinstance(value, str)
                          else [value] if isinstance(value, str) else value)
        elif key == "env":
            value = tuple(sorted((str(k), str(v)) for k, v in dict(value).items()))
        elif key == "test_cmd" and isinstance(value, (list, tuple)):
            value = " && ".join(value)
        elif key in ("timeout",):
            value = float(value)
        elif key == "test_directives" and value not in DIRECTIVES:
            raise TaskError(f"{where}: test_directives {value!r}: one of {', '.join(DIRECTIVES)}")
        elif key == "network" and value not in ("none", "sealed"):
            raise TaskError(f"{where}: network {value!r}: none or sealed (tests never get a network)")
        out[key] = value
    return out


def _shell_words(value: str, where: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError as e:
        raise TaskError(f"{where}: packages {value!r} is not valid shell words: {e}") from None


def swebench_python_specs() -> dict[str, dict[str, dict[str, Any]]] | None:
    """swebench's per-repo/version specs of Python repositories; None when not installed."""
    try:
        from swebench.harness import constants
    except Exception:  # noqa: BLE001 - not installed: the spec must come from elsewhere
        return None
    return getattr(constants, "MAP_REPO_VERSION_TO_SPECS_PY", None) or \
        constants.MAP_REPO_VERSION_TO_SPECS


def from_swebench(repo: str, version: str) -> dict[str, Any] | None:
    """The swebench package's spec for ``repo`` at ``version``, as our fields.

    Only Python specs (with a ``python`` version): the package's other languages
    install with their own toolchains, which this sandbox does not build. Tests
    get the sealed network, as SWE-bench's containers have a network on which a
    connection to an unroutable address hangs until its timeout.
    """
    all_specs = swebench_python_specs()
    if all_specs is None:
        return None
    from swebench.harness.constants import MAP_REPO_TO_REQS_PATHS
    from swebench.harness.log_parsers import MAP_REPO_TO_PARSER

    spec = all_specs.get(repo, {}).get(version)
    if spec is None or not spec.get("python"):
        return None
    out: dict[str, Any] = {"python": str(spec["python"]), "install": spec.get("install"),
                           "test_cmd": spec.get("test_cmd", "pytest -rA"),
                           "pre_install": list(spec.get("pre_install", [])),
                           "eval_commands": list(spec.get("eval_commands", [])),
                           "system_packages": list(SWEBENCH_SYSTEM_PACKAGES),
                           "test_directives": "swebench", "network": "sealed",
                           "pip_cutoff": SWEBENCH_PIP_CUTOFF}
    # The tests run as an unprivileged user here, as root in SWE-bench's containers:
    # an eval line that configures the system (django's locale-gen) runs once as root
    # when the instance image is built; the exports stay with the test command.
    system = [c for c in out["eval_commands"] if not c.startswith("export ")]
    if system:
        out["pre_install"] = [*out["pre_install"], *system]
        out["eval_commands"] = [c for c in out["eval_commands"] if c.startswith("export ")]
    if str(out["test_cmd"]).startswith("tox"):  # tox's work dir, not the read-only repo
        out["env"] = {"TOX_WORK_DIR": "/tmp/tox"}
    packages = spec.get("packages", "")
    pip = list(spec.get("pip_packages", []))
    if packages == "requirements.txt":  # the name means "the repo's requirements file"
        out["requirements"] = " ".join(MAP_REPO_TO_REQS_PATHS.get(repo, ["requirements.txt"]))
    elif packages and packages != "environment.yml":  # conda-only specs: pip gets what it can
        pip = _shell_words(packages, f"swebench spec {repo}@{version}") + pip
    out["packages"] = pip
    if repo in MAP_REPO_TO_PARSER:
        out["log_parser"] = repo
    return {k: v for k, v in out.items() if v not in (None, "")}


def read_spec_file(path: str | None) -> dict[str, dict[str, Any]]:
    if not path:
        return {}
    p = Path(path).expanduser()
    if not p.is_file():
        raise TaskError(f"swe: -T specs={path}: no such file")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - JSON and YAML errors alike
        raise TaskError(f"swe: -T specs={path}: not valid {p.suffix or 'JSON'}: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise TaskError(f"{path}: expected a mapping of repo, repo@version or instance_id "
                        f"to spec objects")
    for key, value in data.items():
        _coerce(value, f"{path}: {key}")  # fail at load, with the place
    return data


def resolve(inst: Instance, spec_file: dict[str, dict[str, Any]] | None = None,
            use_swebench: bool = True) -> EnvSpec:
    merged: dict[str, Any] = {}
    sources: list[str] = []
    layers: list[tuple[str, dict[str, Any] | None]] = []
    if use_swebench:
        layers.append(("swebench", from_swebench(inst.repo, inst.version)))
    layers.append(("instance env_spec", inst.extra.get("env_spec")))
    spec_file = spec_file or {}
    for key in (inst.repo, f"{inst.repo}@{inst.version}", inst.instance_id):
        layers.append((f"spec file[{key}]", spec_file.get(key)))
    fields_ = {k: inst.extra[k] for k in ("eval_script", "image", "log_parser") if inst.extra.get(k)}
    layers.append(("instance fields", fields_ or None))
    for name, raw in layers:
        if raw:
            merged.update(_coerce(raw, f"{inst.where or inst.instance_id}: {name}"))
            sources.append(name)
    spec = EnvSpec(**merged)
    if spec.eval_script:  # such scripts restore and patch test files themselves
        spec = replace(spec, writable_repo=True)
    return replace(spec, source=tuple(sources) or ("defaults",))


def directives(kind: str, inst: Instance, test_paths: list[str]) -> list[str]:
    tests = [p for p in test_paths if p.endswith(".py")]
    if kind == "none":
        return []
    if kind == "unittest":
        return [p[:-3].replace("/", ".") for p in tests]
    if kind == "swebench":
        try:
            from swebench.harness.test_spec.python import get_test_directives
        except Exception:  # noqa: BLE001
            raise TaskError(f"{inst.instance_id}: test_directives=swebench needs the swebench "
                            f"package (pip install swebench==4.1.0)") from None
        return list(get_test_directives({"repo": inst.repo, "test_patch": inst.test_patch}))
    return tests
