"""One registry for every kind of plugin: tasks, runners, rankers, program runners, ...

A :class:`Registry` maps names to objects. An entry is an object registered in code
(``REGISTRY.register("name", obj)`` or as a decorator) or a lazy ``"module:object"``
string, imported the first time it is asked for, so that naming a plugin never
imports its dependencies. Each registry may name an entry-point group: an installed
package extends it with ``[project.entry-points."GROUP"] name = "module:object"``;
a value without ``:`` is a module imported for the registrations it makes when
imported (how task packages register their ``@task`` functions). Entries made in
code win over entry points of the same name.

Every unknown name fails the same way: ``unknown KIND 'NAME' (not registered; known:
a, b, c)``,
raised as the registry's error type (``TaskError``, ``ConfigError``, ...).

The registries themselves are listed in :data:`KINDS`, a registry too, so that
``evals list --kind KIND`` shows any of them and a private package can add a kind.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


@dataclass
class Entry:
    name: str
    target: Any  # the object, or a "module:object" string not imported yet
    source: str  # "builtin", "code", "entry point NAME=VALUE", a file path

    @property
    def loaded(self) -> bool:
        return not isinstance(self.target, str)


def load_object(spec: str) -> Any:
    """Import ``"module:object"`` (``object`` may be dotted: ``module:Class.attr``)."""
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def import_path(path: Path, prefix: str = "evals_plugin") -> Any:
    """Import a ``.py`` file or a package directory by location, under a private name."""
    path = Path(path).expanduser().resolve()
    is_package = path.is_dir()
    init = path / "__init__.py" if is_package else path
    name = f"{prefix}_{path.stem}_{abs(hash(str(path))) % 10**8}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(path)] if is_package else None)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


class Registry(Generic[T]):
    """Named plugins of one kind. ``builtins`` are lazy ``"module:object"`` strings
    (or ``"module"``: imported for its registrations); ``group`` an entry-point group."""

    def __init__(self, kind: str, group: str | None = None,
                 builtins: dict[str, str] | None = None, *,
                 modules: tuple[str, ...] = (), error: type[Exception] = LookupError,
                 describe: Callable[[Any], str] | None = None):
        self.kind = kind
        self.group = group
        self.error = error
        self._describe = describe
        self._entries: dict[str, Entry] = {}
        self._modules = list(modules)  # imported on first lookup, for their registrations
        self._loaded_modules: set[str] = set()
        self._entry_points_read = group is None
        self.loading = "builtin"  # the source of what a module being loaded registers
        for name, target in (builtins or {}).items():
            self._entries[name] = Entry(name, target, "builtin")

    # -- registering
    def register(self, name: str, obj: Any = None, *, source: str | None = None) -> Any:
        """``register(name, obj)``, ``register(name, "module:object")`` or ``@register(name)``.
        ``source`` defaults to what is being loaded (a module, an entry point, a path)."""
        source = source or self.loading
        if obj is None:
            def decorate(o: Any) -> Any:
                self._entries[name] = Entry(name, o, source)
                return o
            return decorate
        self._entries[name] = Entry(name, obj, source)
        return obj

    def load_module(self, module: str, source: str) -> None:
        """Import a module once for the entries it registers (``source`` labels failures)."""
        if module in self._loaded_modules:
            return
        self._loaded_modules.add(module)
        self._guard(source, lambda: importlib.import_module(module))

    def load_path(self, path: Path) -> None:
        """Import a plugin file or package by location once, for its registrations."""
        key = str(Path(path).expanduser().resolve())
        if key in self._loaded_modules:
            return
        self._loaded_modules.add(key)
        self._guard(str(path), lambda: import_path(Path(path)))

    def _guard(self, source: str, load: Callable[[], Any]) -> Any:
        before, self.loading = self.loading, ("builtin" if source in self._modules else source)
        try:
            return load()
        except self.error:
            raise
        except Exception as e:  # a broken plugin must say which one
            raise self.error(f"cannot load {self.kind}s from {source}: "
                             f"{type(e).__name__}: {e}") from e
        finally:
            self.loading = before

    def _discover(self) -> None:
        for module in self._modules:
            self.load_module(module, module)
        if self._entry_points_read:
            return
        self._entry_points_read = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            label = f"entry point {ep.name}={ep.value}"
            if ":" in ep.value:
                if ep.name not in self._entries:
                    self._entries[ep.name] = Entry(ep.name, ep.value, label)
            elif ep.value not in self._modules:
                self.load_module(ep.value, label)

    # -- finding
    def entries(self) -> dict[str, Entry]:
        """Every entry, loaded or not (nothing is imported but registering modules)."""
        self._discover()
        return dict(self._entries)

    def registered(self) -> dict[str, Any]:
        """What is registered so far, by name (no discovery; lazy entries as their string)."""
        return {name: entry.target for name, entry in self._entries.items()}

    def names(self) -> list[str]:
        return sorted(self.entries())

    def __contains__(self, name: object) -> bool:
        return name in self.entries()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def unknown(self, name: str, hint: str = "") -> Exception:
        """The one shape of an unknown-name error."""
        known = ", ".join(self.names()) or "none"
        return self.error(f"unknown {self.kind} {name!r} (not registered; known: {known}){hint}")

    def get(self, name: str) -> T:
        entry = self.entries().get(name)
        if entry is None:
            raise self.unknown(name)
        if not entry.loaded:
            entry.target = self._guard(f"{name}={entry.target}",
                                       lambda: load_object(entry.target))
        return entry.target

    def describe(self, name: str) -> str:
        """One line about an entry for ``evals list``, without importing a lazy one."""
        entry = self.entries()[name]
        if not entry.loaded:
            return entry.target
        if self._describe is not None:
            return self._describe(entry.target)
        doc = (getattr(entry.target, "__doc__", None) or "").strip().split("\n")[0]
        return doc or f"{getattr(entry.target, '__module__', '')}"


# The kinds of plugin, each a registry found by name (``evals list --kind KIND``). A
# registry declared outside the core (a task's log parsers) adds itself when its module
# is imported: ``KINDS.register("log-parser", LOG_PARSERS)``.
KINDS: Registry[Registry] = Registry("plugin kind", "evals.kinds", {
    "task": "evals.task:TASKS",
    "runner": "evals.runner:RUNNERS",
    "ranker": "evals.judge:RANKERS",
    "command": "evals.cli_base:COMMANDS",
    "batch-api": "evals.batch_api:BATCH_APIS",
    "cluster": "evals.run:CLUSTERS",
}, describe=lambda r: f"{r.kind}s" + (f" (entry points: {r.group})" if r.group else ""))
