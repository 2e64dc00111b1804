"""``evals sandbox build|list|prune``: manage the sandbox images and show their disk use.

Registered as the ``sandbox`` sub-command (``evals.cli_base.COMMANDS``). The images beyond
the base one are built by the tasks that use them: each registers a builder in
:data:`IMAGE_BUILDERS` (``builder(params, limit, echo, fail)``), or through the
``evals.image_builders`` entry points.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Iterator, Optional

import typer

from evals.registry import KINDS, Registry

sandbox_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Docker images for sandboxed grading.")
IMAGE_BUILDERS: Registry = KINDS.register("image-builder", Registry(
    "image builder", "evals.image_builders"))


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


Engines = Annotated[Optional[list[str]], typer.Option(
    "--engine", help="Do it on this Docker engine (repeat for several): a URL or an "
                     "engines.toml, as `evals run --engine`. Default: EVALS_ENGINES, else "
                     "the local engine.")]


def _engines(named: list[str] | None) -> list[Any]:
    """The engines named (the local one when none is); a bad name exits with code 2."""
    from sandbox.engine import SandboxError
    from sandbox.engines import Engine, EngineSpec, named as named_engines

    try:
        specs = named_engines(",".join(named or [])) or [EngineSpec()]
    except SandboxError as e:
        _fail(str(e), 2)
    return [Engine(spec, 1) for spec in specs]


@contextlib.contextmanager
def _on(engine: Any, many: bool) -> Iterator[None]:
    """Docker calls in the block go to ``engine``; with several, a heading names it."""
    from sandbox.engine import use

    if many:
        typer.secho(f"engine {engine.name}", bold=True)
    with use(engine):
        yield


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@sandbox_app.command("build")
def build(
    task_param: Annotated[Optional[list[str]], typer.Option(
        "-T", "--task-param", help="swe task parameter key=value (instances=..., repos=...).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="First N instances only.")] = None,
    base_only: Annotated[bool, typer.Option("--base-only", help="Only the base image.")] = False,
    engine: Engines = None,
) -> None:
    """Build the base image, and the env/instance images of the swe task's instances
    (on each engine named, in turn)."""
    from sandbox.base import ensure_base
    from sandbox.engine import SandboxError

    engines = _engines(engine)
    for one in engines:
        with _on(one, len(engines) > 1):
            try:
                result = ensure_base()
                typer.echo(f"base      {result.tag}  " + (f"built in {result.seconds:.1f}s"
                                                           if result.built else "present"))
                if not base_only:
                    _build_task_images(dict(p.split("=", 1) for p in task_param or []
                                            if "=" in p), limit)
            except SandboxError as e:
                _fail(str(e))


def _build_task_images(params: dict[str, str], limit: int | None) -> None:
    from evals.plugins import load_tasks
    from evals.task import TaskError

    try:
        load_tasks()  # tasks register their image builders when imported
    except TaskError as e:
        _fail(str(e))
    for name in IMAGE_BUILDERS.names():
        IMAGE_BUILDERS.get(name)(params, limit, typer.echo, _fail)


@sandbox_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False,
          engine: Engines = None) -> None:
    """Our images by layer, with their size and the disk they use in all (per engine)."""
    from sandbox.engine import SandboxError
    from sandbox.images import disk_usage, list_images

    engines = _engines(engine)
    found = []
    for one in engines:
        with _on(one, len(engines) > 1 and not as_json):
            try:
                rows, usage = list_images(), disk_usage()
            except (SandboxError, *_docker_errors()) as e:
                _fail(f"engine {one.name}: {e}")
            found.append({"engine": one.name, "images": [r.__dict__ for r in rows],
                          "disk": usage})
            if not as_json:
                _print_images(rows, usage)
    if as_json:
        import json
        typer.echo(json.dumps(found[0] if len(found) == 1 else found, indent=2))


def _docker_errors() -> tuple[type[BaseException], ...]:
    from sandbox.engine import errors

    return errors()


def _print_images(rows: list[Any], usage: dict[str, int]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for col in ("layer", "image", "size", "created", "inputs"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r.layer, r.tag, _size(r.size), r.created, r.inputs[:80])
    Console().print(table)
    typer.echo(f"disk: images {_size(usage['images'])} (shared layers once), "
               f"containers {_size(usage['containers'])}")


@sandbox_app.command("prune")
def prune(
    layer: Annotated[Optional[list[str]], typer.Option(
        "--layer", help="Layers to remove: instance (default), env, base (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every layer.")] = False,
    engine: Engines = None,
) -> None:
    """Remove leftover containers and our images (instance layer by default), per engine."""
    from sandbox.engine import SandboxError
    from sandbox.images import LAYERS, disk_usage, prune as prune_images, remove_containers

    layers = list(LAYERS) if all_ else (layer or ["instance"])
    bad = [x for x in layers if x not in LAYERS]
    if bad:
        _fail(f"--layer {bad[0]!r}: one of {', '.join(LAYERS)}", 2)
    engines = _engines(engine)
    for one in engines:
        with _on(one, len(engines) > 1):
            try:
                containers = remove_containers()
                before = disk_usage()["images"]
                removed = prune_images(layers)
                after = disk_usage()["images"]
            except (SandboxError, *_docker_errors()) as e:
                _fail(f"engine {one.name}: {e}")
            typer.echo(f"removed {containers} container(s), {len(removed)} image(s); "
                       f"freed {_size(max(0, before - after))}")


@sandbox_app.command("engines")
def engines_(engine: Engines = None) -> None:
    """Each engine named: whether it answers, its slots, and our images on it."""
    from sandbox.engine import SandboxError
    from sandbox.images import list_images

    down = 0
    for one in _engines(engine):
        why = one.ping()
        if why is not None:
            down += 1
            typer.echo(f"{one.name}  down: {why}")
            continue
        with _on(one, False):
            try:
                count = len(list_images())
            except (SandboxError, *_docker_errors()) as e:
                down += 1
                typer.echo(f"{one.name}  answers, but listing images failed: {e}")
                continue
        slots = one.spec.slots or "-T sandboxes"
        registry = f", registry {one.registry}" + (" (push)" if one.push else "") \
            if one.registry else ""
        typer.echo(f"{one.name}  up, slots {slots}, {count} image(s) of ours{registry}")
    if down:
        raise typer.Exit(1)
