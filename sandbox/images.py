"""Layered images named by a hash of their inputs.

Three layers: base (OS, Python, git), environment (a repository's
dependencies) and instance (the repository at one commit). Each is tagged
``evals-sandbox/<layer>:<hash>``, the hash covering the parent image's id and
every input of the layer, so changed inputs rebuild and equal inputs are
reused across instances and runs. Images carry labels that `list` and
`prune` read; nothing else about them is kept on the host.

Images live per engine (sandbox/engines.py): each call looks, builds and locks on
the current engine, so an image is built once on each engine that needs it. An
engine with a registry pulls ``REGISTRY/evals-sandbox/<layer>:<hash>`` before
building, and with ``push`` sends what it built there for the others.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .engine import (INPUTS_LABEL, LABEL, LAYER_LABEL, SandboxError, client, current,
                     current_name, errors)

REPO_PREFIX = "evals-sandbox"
LAYERS = ("base", "env", "instance")


@dataclass
class Layer:
    """One image to build: a Dockerfile and its context files, over a parent."""

    layer: str  # base, env or instance
    parent: str | None  # image reference; None for a base made by `docker import`
    dockerfile: str
    files: dict[str, bytes | tuple[bytes, int]] = field(default_factory=dict)  # path -> data[, mode]
    inputs: dict[str, Any] = field(default_factory=dict)  # what else the hash covers
    network: str = "none"  # builds that install packages need "bridge"
    # A prebuilt context tar (e.g. a repository snapshot), made only when the
    # image must be built; ``inputs`` must name what it depends on (a commit).
    context_fn: Callable[[], bytes] | None = field(default=None, repr=False)

    def key(self, parent_id: str | None) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([self.layer, parent_id, self.dockerfile, self.network,
                             self.inputs], sort_keys=True, default=str).encode())
        for path in sorted(self.files):
            data = self.files[path]
            h.update(path.encode() + b"\0" + (data if isinstance(data, bytes) else data[0]))
        return h.hexdigest()[:16]


def tag_for(layer: str, key: str) -> str:
    return f"{REPO_PREFIX}/{layer}:{key}"


def image_id(ref: str) -> str | None:
    """The id of ``ref`` on the current engine, or None when it is not there."""
    import docker.errors

    try:
        return client().images.get(ref).id
    except docker.errors.ImageNotFound:
        return None
    except errors() as e:
        raise SandboxError(f"cannot look up image {ref}: {e}") from None


_build_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def lock_for(tag: str) -> threading.Lock:
    """The lock that makes one build of ``tag`` on the current engine at a time."""
    with _locks_guard:
        return _build_locks.setdefault((current_name(), tag), threading.Lock())


def from_registry(tag: str) -> bool:
    """Whether ``tag`` could be pulled from the current engine's registry (then it is
    tagged here as ``tag``). False without a registry or when the registry lacks it."""
    engine = current()
    registry = getattr(engine, "registry", None)
    if not registry:
        return False
    remote = f"{registry.rstrip('/')}/{tag}"
    try:
        image = client().images.pull(remote)
        image.tag(*tag.rsplit(":", 1))
    except errors():
        return False
    return True


_push_warned: set[tuple[str, str]] = set()
log = logging.getLogger("evals.sandbox")


def to_registry(tag: str) -> None:
    """Push ``tag`` to the current engine's registry when it is set to push. A failed
    push is a warning (once per image and engine), not an error: the image is built
    and here, so the work that wanted it goes on; only the other engines miss it."""
    engine = current()
    if not getattr(engine, "push", False):
        return
    remote, _, version = f"{engine.registry.rstrip('/')}/{tag}".rpartition(":")
    why = None
    try:
        api = client().api
        api.tag(tag, remote, version)
        for chunk in api.push(remote, version, stream=True, decode=True):
            if "error" in chunk:
                why = chunk["error"].strip()
                break
    except errors() as e:
        why = str(e)
    if why is not None and (engine.name, tag) not in _push_warned:
        _push_warned.add((engine.name, tag))
        log.warning("pushing %s to %s failed (built on %s, used there): %s", tag,
                    engine.registry, engine.name, why.splitlines()[0][:300] if why else "")


@dataclass
class Built:
    tag: str
    built: bool  # False when an equal image was already there
    seconds: float
    log_tail: str = ""


def _context(layer: Layer, dockerfile: str) -> bytes:
    prebuilt = layer.context_fn() if layer.context_fn is not None else b""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        if prebuilt:
            with tarfile.open(fileobj=io.BytesIO(prebuilt), mode="r") as src:
                for member in src.getmembers():
                    tar.addfile(member, src.extractfile(member) if member.isfile() else None)
        entries = {"Dockerfile": dockerfile.encode(), **layer.files}
        for path, data in entries.items():
            body, mode = (data, 0o644) if isinstance(data, bytes) else data
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(body), mode, 0
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def ensure(layer: Layer) -> Built:
    """The layer's image, built unless an image with the same inputs exists."""
    parent_id = None
    if layer.parent is not None:
        parent_id = image_id(layer.parent)
        if parent_id is None:
            raise SandboxError(f"{layer.layer} image: parent image {layer.parent} is not here")
    tag = tag_for(layer.layer, layer.key(parent_id))
    with lock_for(tag):  # concurrent scorers wanting one image build it once (per engine)
        if image_id(tag) is not None or from_registry(tag):
            return Built(tag, False, 0.0)
        started = time.monotonic()
        dockerfile = layer.dockerfile.replace("{{PARENT}}", layer.parent or "scratch")
        labels = {LABEL: "1", LAYER_LABEL: layer.layer,
                  INPUTS_LABEL: json.dumps(layer.inputs, sort_keys=True, default=str)[:4000]}
        tail: list[str] = []
        try:
            api = client().api
            stream = api.build(fileobj=io.BytesIO(_context(layer, dockerfile)), custom_context=True,
                               tag=tag, rm=True, forcerm=True, labels=labels, decode=True,
                               network_mode=layer.network, pull=False)
            for chunk in stream:
                if "stream" in chunk:
                    tail = (tail + chunk["stream"].splitlines())[-40:]
                if "error" in chunk:
                    raise SandboxError(f"building the {layer.layer} image failed: "
                                       f"{chunk['error'].strip()}\n" + "\n".join(tail[-20:]))
        except errors() as e:
            raise SandboxError(f"building the {layer.layer} image failed: {e}") from None
        if image_id(tag) is None:
            raise SandboxError(f"building the {layer.layer} image gave no image:\n"
                               + "\n".join(tail[-20:]))
        to_registry(tag)
        return Built(tag, True, time.monotonic() - started, "\n".join(tail[-20:]))


@dataclass
class ImageRow:
    tag: str
    layer: str
    size: int  # bytes, the image with its parents
    created: str
    inputs: str


def list_images(layers: Iterable[str] = LAYERS) -> list[ImageRow]:
    rows = []
    wanted = set(layers)
    for image in client().images.list(filters={"label": LABEL}):
        labels = image.labels or {}
        layer = labels.get(LAYER_LABEL, "?")
        if layer not in wanted:
            continue
        tags = [t for t in image.tags if t.startswith(REPO_PREFIX)] or image.tags or [image.short_id]
        rows.append(ImageRow(tags[0], layer, int(image.attrs.get("Size", 0)),
                             str(image.attrs.get("Created", ""))[:19],
                             labels.get(INPUTS_LABEL, "")))
    order = {name: i for i, name in enumerate(LAYERS)}
    return sorted(rows, key=lambda r: (order.get(r.layer, 9), r.tag))


def disk_usage() -> dict[str, int]:
    """Bytes on disk for our images and containers, each layer counted once.

    An image's ``Size`` includes its parents; ``SharedSize`` is what it shares
    with other images. Unique parts add up; the shared part (mostly the base)
    is counted once, as its largest value.
    """
    df = client().df()
    ours = [i for i in df.get("Images") or [] if LABEL in (i.get("Labels") or {})]
    unique = sum(max(0, int(i.get("Size", 0)) - max(0, int(i.get("SharedSize", 0)))) for i in ours)
    shared = max((max(0, int(i.get("SharedSize", 0))) for i in ours), default=0)
    containers = sum(int(c.get("SizeRw", 0) or 0) for c in df.get("Containers") or []
                     if LABEL in (c.get("Labels") or {}))
    return {"images": unique + shared, "containers": containers}


def remove_containers() -> int:
    """Force-remove every container we started (leftovers of a killed run)."""
    gone = 0
    for c in client().containers.list(all=True, filters={"label": LABEL}):
        try:
            c.remove(force=True)
            gone += 1
        except errors():
            pass
    return gone


def prune(layers: Iterable[str] = ("instance",), keep: Iterable[str] = ()) -> list[str]:
    """Remove our images of the given layers (children first), except ``keep``."""
    keep_set = set(keep)
    removed = []
    order = {name: i for i, name in enumerate(LAYERS)}
    rows = sorted(list_images(layers), key=lambda r: -order.get(r.layer, 0))
    for row in rows:
        if row.tag in keep_set:
            continue
        try:
            client().images.remove(row.tag, force=False, noprune=False)
            removed.append(row.tag)
        except errors():
            pass  # still used by a child image or a container: kept
    return removed
