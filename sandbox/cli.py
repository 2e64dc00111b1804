"""``evals sandbox build|list|prune``: manage the sandbox images and show their disk use.

Mounted by evals/cli.py as ``app.add_typer(sandbox_app, name="sandbox")``.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

sandbox_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Docker sandbox images: build, list, prune.")


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


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
) -> None:
    """Build the base image, and the env/instance images of the swe task's instances."""
    from sandbox.base import ensure_base
    from sandbox.engine import SandboxError

    try:
        result = ensure_base()
        typer.echo(f"base      {result.tag}  " + (f"built in {result.seconds:.1f}s"
                                                   if result.built else "present"))
        if base_only:
            return
        _build_instances(dict(p.split("=", 1) for p in task_param or [] if "=" in p), limit)
    except SandboxError as e:
        _fail(str(e))


def _build_instances(params: dict[str, str], limit: int | None) -> None:
    from pathlib import Path

    from evals.task import TaskError
    from tasks.swe import default_repos_dir, load_instances, specs
    from tasks.swe.layers import ensure_images
    from tasks.swe.repos import mirror_path

    repos_dir = Path(params.get("repos") or default_repos_dir()).expanduser()
    try:
        instances = load_instances(params.get("instances", "bundled"), repos_dir,
                                   params.get("split", "test"))
        spec_map = specs.read_spec_file(params.get("specs_file"))
    except TaskError as e:
        _fail(str(e))
    for inst in instances[:limit]:
        spec = specs.resolve(inst, spec_map)
        mirror = mirror_path(repos_dir, inst.repo, clone=params.get("clone", "true") != "false")
        images = ensure_images(inst, spec, mirror, params.get("base_image"),
                               "only" if params.get("images") == "published" else False,
                               registry=params.get("registry"))
        built = ", ".join(f"{k} {v:.1f}s" for k, v in images.built.items()) or "present"
        typer.echo(f"instance  {images.instance}  {inst.instance_id}  ({built})")


@sandbox_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Our images by layer, with their size and the disk they use in all."""
    from sandbox.engine import SandboxError
    from sandbox.images import disk_usage, list_images

    try:
        rows = list_images()
        usage = disk_usage()
    except SandboxError as e:
        _fail(str(e))
    if as_json:
        import json
        typer.echo(json.dumps({"images": [r.__dict__ for r in rows], "disk": usage}, indent=2))
        return
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
) -> None:
    """Remove leftover containers and our images (instance layer by default)."""
    from sandbox.engine import SandboxError
    from sandbox.images import LAYERS, disk_usage, prune as prune_images, remove_containers

    layers = list(LAYERS) if all_ else (layer or ["instance"])
    bad = [x for x in layers if x not in LAYERS]
    if bad:
        _fail(f"--layer {bad[0]!r}: one of {', '.join(LAYERS)}", 2)
    try:
        containers = remove_containers()
        before = disk_usage()["images"]
        removed = prune_images(layers)
        after = disk_usage()["images"]
    except SandboxError as e:
        _fail(str(e))
    typer.echo(f"removed {containers} container(s), {len(removed)} image(s); "
               f"freed {_size(max(0, before - after))}")
