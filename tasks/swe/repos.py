"""Repository mirrors and the history-free snapshots that go into images.

A mirror directory holds ``owner__name`` clones (bare or not). A snapshot is
a fresh repository holding base_commit and its ancestors only: no later
commit, no tag that is not an ancestor, no remote, no reflog. So neither the
model's patch nor the code under test can read the future fix from git.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

from sandbox.engine import SandboxError

GITHUB = "https://github.com/{repo}.git"


def _git(*args: str, cwd: str | Path | None = None, timeout: float = 600) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, env=env,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"git {args[0]} timed out") from None
    if done.returncode != 0:
        raise SandboxError(f"git {' '.join(args[:3])} failed: "
                           f"{done.stderr.decode('utf-8', 'replace').strip()[:500]}")
    return done.stdout.decode("utf-8", "replace")


def mirror_path(repos_dir: Path, repo: str, clone: bool = True) -> Path:
    """``repos_dir/owner__name``; cloned from GitHub when missing and ``clone`` is on."""
    path = Path(repos_dir) / repo.replace("/", "__")
    if path.is_dir():
        return path
    if not clone:
        raise SandboxError(f"no mirror of {repo} at {path} (put an `owner__name` clone there, "
                           f"or allow cloning with -T clone=true)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".cloning{os.getpid()}")
    _git("clone", "--mirror", "--quiet", GITHUB.format(repo=repo), str(tmp), timeout=1800)
    os.replace(tmp, path)
    return path


def has_commit(mirror: Path, commit: str) -> bool:
    try:
        _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=mirror)
        return True
    except SandboxError:
        return False


def read_file(mirror: Path, commit: str, path: str) -> str | None:
    try:
        return _git("show", f"{commit}:{path}", cwd=mirror)
    except SandboxError:
        return None


def list_files(mirror: Path, commit: str) -> list[str]:
    return _git("ls-tree", "-r", "--name-only", commit, cwd=mirror).splitlines()


def read_many(mirror: Path, commit: str, paths: list[str]) -> dict[str, str]:
    """Many files at once through ``git cat-file --batch`` (BM25 reads whole repos)."""
    if not paths:
        return {}
    request = "".join(f"{commit}:{p}\n" for p in paths).encode()
    done = subprocess.run(["git", "cat-file", "--batch"], cwd=mirror, input=request,
                          capture_output=True)
    out, data, pos = {}, done.stdout, 0
    for path in paths:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] == b"missing":
            continue
        size = int(header[2])
        out[path] = data[pos:pos + size].decode("utf-8", "replace")
        pos += size + 1
    return out


def snapshot_tar(mirror: Path, commit: str, dest: str = "testbed") -> bytes:
    """A tar (root-owned) of a clean repository at ``commit`` with no later history."""
    if not has_commit(mirror, commit):
        raise SandboxError(f"{mirror} has no commit {commit}")
    with tempfile.TemporaryDirectory(prefix="evals-snap-") as tmp:
        repo = os.path.join(tmp, dest)
        _git("init", "--quiet", repo)
        # Fetching one commit brings exactly its ancestors: nothing after it.
        _git("fetch", "--quiet", "--no-tags", str(Path(mirror).resolve()), commit, cwd=repo)
        tags = [t for t in _git("tag", "--merged", commit, cwd=mirror).split() if t]
        if tags:  # only tags on the ancestry (setuptools_scm versions still work)
            _git("fetch", "--quiet", "--no-tags", str(Path(mirror).resolve()),
                 *(f"refs/tags/{t}:refs/tags/{t}" for t in tags), cwd=repo)
        _git("checkout", "--quiet", "-B", "main", commit, cwd=repo)
        _git("reflog", "expire", "--expire=now", "--all", cwd=repo)
        _git("gc", "--quiet", "--prune=now", cwd=repo)
        for leftover in ("FETCH_HEAD", "ORIG_HEAD"):
            try:
                os.remove(os.path.join(repo, ".git", leftover))
            except FileNotFoundError:
                pass
        _git("config", "user.email", "sandbox@evals.invalid", cwd=repo)
        _git("config", "user.name", "evals sandbox", cwd=repo)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            def owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mode &= ~0o022  # readable by the test user, writable by root only
                return info
            tar.add(repo, arcname=dest, filter=owner)
        return buf.getvalue()
