"""The bundled instance set: three repositories built reproducibly with git, seven instances.

Authors, dates and messages are fixed, so every machine makes the same
commits (the same hashes); :data:`EXPECTED_HEADS` pins them and a mismatch
is an error, not a silent new set. Gold and test patches are the real diffs
between commits.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from evals.task import TaskError

from .content import REPOS, RepoSpec

ENV_SPEC = {"test_cmd": "python3 -m unittest -v", "log_parser": "unittest",
            "test_directives": "unittest", "timeout": 60}
TAG_FIRST, TAG_LAST = "v0.1", "v1.0"
# Final commit of each repository; changes to content.py must update these.
EXPECTED_HEADS: dict[str, str] = {
    "evalsfix/textkit": "6ccc98c61d6814244a1f5987fd0b89ea5e43c2c6",
    "evalsfix/numkit": "060ace99ea36d731bec7473faa36b8c415f2f00c",
    "evalsfix/netkit": "d0b18e0e8ef4a04afe089eadd585d51ffdfc80d0",
}


def _git(cwd: Path, *args: str, when: int = 0) -> str:
    stamp = f"2024-01-{1 + when:02d}T12:00:00+00:00"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
           "GIT_AUTHOR_NAME": "evals fixtures", "GIT_AUTHOR_EMAIL": "fixtures@evals.invalid",
           "GIT_COMMITTER_NAME": "evals fixtures", "GIT_COMMITTER_EMAIL": "fixtures@evals.invalid",
           "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp, "GIT_CONFIG_NOSYSTEM": "1",
           "HOME": str(cwd)}  # no user config: hooks, signing, autocrlf stay off
    done = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise TaskError(f"swe bundled: git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def _write(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def _build(spec: RepoSpec, dest: Path) -> list[str]:
    """Create the repository; returns its commits, oldest first."""
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    if tmp.exists():
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
    tmp.mkdir(parents=True)
    _git(tmp, "init", "-q")
    files = dict(spec.files)
    _write(tmp, files)
    _git(tmp, "add", "-A")
    _git(tmp, "commit", "-q", "-m", "initial version", when=0)
    _git(tmp, "tag", TAG_FIRST)
    commits = [_git(tmp, "rev-parse", "HEAD")]
    for i, fix in enumerate(spec.fixes, 1):
        for path, (old, new) in {**fix.source, **fix.tests}.items():
            text = files[path]
            if old and old not in text:
                raise TaskError(f"swe bundled: {fix.instance}: {old!r} not in {path}")
            files[path] = text.replace(old, new, 1) if old else text + new
        _write(tmp, files)
        _git(tmp, "add", "-A")
        _git(tmp, "commit", "-q", "-m", fix.message, when=i)
        commits.append(_git(tmp, "rev-parse", "HEAD"))
    _git(tmp, "tag", TAG_LAST)
    os.replace(tmp, dest)  # atomic: a half-built mirror is never seen
    return commits


def mirror_name(repo: str) -> str:
    return repo.replace("/", "__")


def ensure_mirrors(repos_dir: Path) -> dict[str, Path]:
    """Build the bundled repositories under ``repos_dir`` (as ``owner__name``) if missing."""
    repos_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for spec in REPOS:
        dest = repos_dir / mirror_name(spec.repo)
        if not (dest / ".git").is_dir():
            _build(spec, dest)
        out[spec.repo] = dest
    return out


def commits(path: Path) -> list[str]:
    return _git(path, "rev-list", "--reverse", "main").split()


def instances(repos_dir: Path) -> list[dict[str, Any]]:
    """The seven instances as SWE-bench rows (JSON-ready), building the mirrors if needed."""
    rows = []
    for spec in REPOS:
        path = ensure_mirrors(repos_dir)[spec.repo]
        chain = commits(path)
        if EXPECTED_HEADS.get(spec.repo) and chain[-1] != EXPECTED_HEADS[spec.repo]:
            raise TaskError(f"swe bundled: {path} ends at {chain[-1]}, expected "
                            f"{EXPECTED_HEADS[spec.repo]} (stale or edited mirror: delete it)")
        for i, fix in enumerate(spec.fixes):
            base, head = chain[i], chain[i + 1]
            gold = _git(path, "diff", base, head, "--", ".", ":(exclude)tests") + "\n"
            tests = _git(path, "diff", base, head, "--", "tests") + "\n"
            rows.append({
                "instance_id": fix.instance, "repo": spec.repo, "base_commit": base,
                "patch": gold, "test_patch": tests, "problem_statement": fix.problem,
                "hints_text": "", "version": "1.0", "environment_setup_commit": chain[0],
                "FAIL_TO_PASS": list(fix.fail_to_pass), "PASS_TO_PASS": list(fix.pass_to_pass),
                "env_spec": dict(spec.env_spec or ENV_SPEC), "created_at": f"2024-01-{2 + i:02d}T12:00:00Z"})
    return rows
