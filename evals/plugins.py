"""Finding task plugins: built-in ones, private directories and installed packages.

Three sources, all ending in the task registry (``evals.task.TASKS``):

* the ``evals.tasks`` entry-point group: any installed package that declares
  ``[project.entry-points."evals.tasks"] name = "module"`` (the built-in ``tasks``
  package is registered in code the same way);
* ``--tasks-dir DIR`` (repeatable) and the ``EVALS_TASKS_PATH`` environment
  variable (``os.pathsep``-separated): each ``*.py`` file and each package
  directory (with ``__init__.py``) directly inside is imported, or the path
  itself when it names a file or a package.
"""

from __future__ import annotations

import os
from pathlib import Path

from evals.task import TASKS, TaskError, TaskSpec, registry

ENV_VAR = "EVALS_TASKS_PATH"


def load_tasks(tasks_dirs: list[str] | None = None) -> dict[str, TaskSpec]:
    """Import every task source once; return the registry."""
    TASKS.entries()  # the built-in package and the entry points
    paths = list(tasks_dirs or [])
    paths += [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    for raw in paths:
        for file in _plugin_files(Path(raw).expanduser()):
            TASKS.load_path(file)
    return registry()


def _plugin_files(path: Path) -> list[Path]:
    if not path.exists():
        raise TaskError(f"tasks directory {path} does not exist")
    if path.is_file() or (path / "__init__.py").exists():
        return [path]
    return sorted(p for p in path.iterdir()
                  if (p.suffix == ".py" and not p.name.startswith("_"))
                  or (p.is_dir() and (p / "__init__.py").exists()))
