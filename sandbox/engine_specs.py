"""Naming Docker engines: a URL (``unix://``, ``tcp://`` with TLS, ``ssh://``, or
``local``) with options as a query, an ``engines.toml`` of ``[[engine]]`` tables, a
list of them in ``--engine``, ``-T engines=`` or ``EVALS_ENGINES``. Parsing only:
sandbox/engines.py makes the engines and places work on them."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .engine import SandboxError

SCHEMES = ("unix", "tcp", "ssh")
ENV = "EVALS_ENGINES"


@dataclass(frozen=True)
class EngineSpec:
    """One engine as named by the user; ``url`` None is the local default engine."""

    url: str | None = None
    slots: int | None = None  # None: the largest default of the tasks naming it
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_verify: bool = True
    registry: str | None = None
    push: bool = False

    @property
    def name(self) -> str:
        """The URL without options or a password: what records and logs show."""
        if self.url is None:
            return "local"
        parts = urlsplit(self.url)
        if "@" not in parts.netloc:
            return self.url
        host = parts.netloc.rpartition("@")[2]
        user = parts.netloc.rpartition("@")[0].partition(":")[0]
        netloc = f"{user}@{host}" if user else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


_KEYS = {f.name for f in fields(EngineSpec)}


def _spec(url: str | None, options: dict[str, Any], where: str,
          base: Path | None = None) -> EngineSpec:
    scheme = "local" if url is None else urlsplit(url).scheme
    if url is not None and (scheme not in SCHEMES or not (urlsplit(url).netloc
                                                          or urlsplit(url).path)):
        raise SandboxError(f"{where}: engine {url!r}: expected unix:///PATH, tcp://HOST:PORT, "
                           f"ssh://[USER@]HOST or local")
    opts = dict(options)
    if unknown := sorted(set(opts) - _KEYS - {"tls"}):
        raise SandboxError(f"{where}: engine {url!r}: unknown option {unknown[0]!r} "
                           f"(known: slots, tls, tls_ca, tls_cert, tls_key, tls_verify, "
                           f"registry, push)")
    if tls_dir := opts.pop("tls", None):  # docker's layout of a certificate folder
        opts = {"tls_ca": f"{tls_dir}/ca.pem", "tls_cert": f"{tls_dir}/cert.pem",
                "tls_key": f"{tls_dir}/key.pem", **opts}
    for key in ("tls_ca", "tls_cert", "tls_key"):
        if opts.get(key):
            path = Path(str(opts[key])).expanduser()
            path = path if path.is_absolute() or base is None else base / path
            if not path.is_file():
                raise SandboxError(f"{where}: engine {url!r}: {key} {str(path)!r} is not a file")
            opts[key] = str(path)
    if bool(opts.get("tls_cert")) != bool(opts.get("tls_key")):
        raise SandboxError(f"{where}: engine {url!r}: tls_cert and tls_key go together")
    if (opts.get("tls_ca") or opts.get("tls_cert")) and scheme != "tcp":
        raise SandboxError(f"{where}: engine {url!r}: TLS options are for tcp:// engines")
    url = url or "local"  # for the messages below
    for key in ("tls_verify", "push"):
        if key in opts and isinstance(opts[key], str):
            opts[key] = opts[key].strip().lower() in ("1", "true", "yes")
    if "slots" in opts:
        try:
            opts["slots"] = int(opts["slots"])
        except (TypeError, ValueError):
            opts["slots"] = 0
        if opts["slots"] < 1:
            raise SandboxError(f"{where}: engine {url!r}: slots must be a whole number >= 1")
    if opts.get("push") and not opts.get("registry"):
        raise SandboxError(f"{where}: engine {url!r}: push needs a registry")
    return EngineSpec(url=None if url == "local" else url, **opts)


def parse_url(text: str, where: str = "engine") -> EngineSpec:
    """``URL[?slots=N&tls=DIR&registry=HOST:PORT&push=1]``; ``local[?...]`` is the engine
    of ``DOCKER_HOST`` or the default socket (the one used when none is named)."""
    head, _, query = text.strip().partition("?")
    url = None if head == "local" else head
    return _spec(url, dict(parse_qsl(query, keep_blank_values=True)), where)


def read_file(path: str | Path) -> list[EngineSpec]:
    """The ``[[engine]]`` tables of a TOML file; relative certificate paths are
    relative to the file."""
    file = Path(path).expanduser()
    try:
        data = tomllib.loads(file.read_text())
    except OSError as e:
        raise SandboxError(f"engines file {str(file)!r}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SandboxError(f"engines file {str(file)!r}: not TOML: {e}") from None
    tables = data.get("engine")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise SandboxError(f"engines file {str(file)!r}: expected [[engine]] tables with url = ...")
    out = []
    for i, table in enumerate(tables):
        if not isinstance(table.get("url"), str):
            raise SandboxError(f"engines file {str(file)!r}: engine {i + 1} has no url")
        options = {k: v for k, v in table.items() if k != "url"}
        url = None if table["url"] == "local" else table["url"]
        out.append(_spec(url, options, f"engines file {str(file)!r}", file.resolve().parent))
    return out


def parse(value: str | None, where: str = "engines") -> list[EngineSpec]:
    """Engines from one setting: URLs separated by commas or spaces, or paths of
    ``.toml`` files; empty for none (the local engine). Names must differ."""
    specs: list[EngineSpec] = []
    for item in (value or "").replace(",", " ").split():
        is_url = "://" in item or item.partition("?")[0] == "local"
        specs += [parse_url(item, where)] if is_url else read_file(item)
    names = [s.name for s in specs]
    if dup := next((n for n in names if names.count(n) > 1), None):
        raise SandboxError(f"{where}: engine {dup!r} is named twice")
    return specs


def named(value: str | None) -> list[EngineSpec]:
    """What the user named: ``value`` (an option), else ``EVALS_ENGINES``."""
    if value:
        return parse(value)
    return parse(os.environ.get(ENV), ENV)
