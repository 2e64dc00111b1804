"""``evals sandbox build``'s part for the swe task: the env and instance images of its
instances (registered in ``sandbox.cli.IMAGE_BUILDERS`` as ``swe``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from evals.task import TaskError


def build_instances(params: dict[str, str], limit: int | None,
                    echo: Callable[[str], None], fail: Callable[[str], None]) -> None:
    """Build the images of the instances that ``-T`` parameters ``params`` select."""
    from . import default_repos_dir, load_instances, specs
    from .layers import ensure_images
    from .repos import mirror_path

    repos_dir = Path(params.get("repos") or default_repos_dir()).expanduser()
    try:
        instances = load_instances(params.get("instances", "bundled"), repos_dir,
                                   params.get("split", "test"))
        spec_map = specs.read_spec_file(params.get("specs_file"))
    except TaskError as e:
        fail(str(e))
        return
    for inst in instances[:limit]:
        spec = specs.resolve(inst, spec_map)
        mirror = mirror_path(repos_dir, inst.repo, clone=params.get("clone", "true") != "false")
        images = ensure_images(inst, spec, mirror, params.get("base_image"),
                               "only" if params.get("images") == "published" else False,
                               registry=params.get("registry"))
        built = ", ".join(f"{k} {v:.1f}s" for k, v in images.built.items()) or "present"
        echo(f"instance  {images.instance}  {inst.instance_id}  ({built})")
