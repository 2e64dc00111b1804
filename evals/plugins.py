"""Finding task plugins: built-in ones, private directories and installed packages.

Three sources, all ending in the ``@task`` registry:

* the ``evals.tasks`` entry-point group: any installed package that declares
  ``[project.entry-points."evals.tasks"] name = "module"`` (this is how the
  built-in ``tasks`` package itself is found);
* ``--tasks-dir DIR`` (repeatable) and the ``EVALS_TASKS_PATH`` environment
  variable (``os.pathsep``-separated): each ``*.py`` file and each package
  directory (with ``__init__.py``) directly inside is imported, or the path
  itself when it names a file or a package.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from evals.task import TaskError, TaskSpec, registering_from, registry

ENV_VAR = "EVALS_TASKS_PATH"
_loaded: set[str] = set()


def load_tasks(tasks_dirs: list[str] | None = None) -> dict[str, TaskSpec]:
    """Import every task source once; return the registry."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="evals.tasks"):
        key = f"ep:{ep.value}"
        if key not in _loaded:
            _loaded.add(key)
            label = "builtin" if ep.value == "tasks" else f"entry point {ep.name}={ep.value}"
            _import_as(label, ep.load)
    paths = list(tasks_dirs or [])
    paths += [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    for raw in paths:
        for file in _plugin_files(Path(raw).expanduser()):
            if str(file) not in _loaded:
                _loaded.add(str(file))
                _import_as(str(file), lambda f=file: _import_path(f))
    return registry()


def _plugin_files(path: Path) -> list[Path]:
    if not path.exists():
        raise TaskError(f"tasks directory {path} does not exist")
    if path.is_file() or (path / "__init__.py").exists():
        return [path]
    return sorted(p for p in path.iterdir()
                  if (p.suffix == ".py" and not p.name.startswith("_"))
                  or (p.is_dir() and (p / "__init__.py").exists()))


def _import_path(path: Path) -> None:
    """Import a plugin file or package by location, under a private module name."""
    is_package = path.is_dir()
    init = path / "__init__.py" if is_package else path
    name = f"evals_plugin_{path.stem}_{abs(hash(str(path.resolve()))) % 10**8}"
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(path)] if is_package else None)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def _import_as(source: str, load) -> None:
    try:
        with registering_from(source):
            load()
    except TaskError:
        raise
    except Exception as e:  # a broken plugin must say which one
        raise TaskError(f"cannot load tasks from {source}: {type(e).__name__}: {e}") from e
