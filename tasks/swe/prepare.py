"""Runs as root inside the sandbox, before the tests: apply the model's patch,
undo what could game the tests, restore and apply the test patch.

Standalone on purpose (stdlib only, Python 3.6+ syntax): it is copied into
images we did not build. The host imports it too, for the same rules
(:func:`discovery_reason`) in ``check_instance``. Reads a JSON job from
argv[1]; prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

# Files that decide which tests run or how: a patch that adds or changes them
# gets them put back as they were at base_commit (or as the test patch has them).
ALWAYS = {"conftest.py", "pytest.ini", "sitecustomize.py", "usercustomize.py",
          "noxfile.py", ".pytest.ini"}
SECTIONED = {"setup.cfg", "tox.ini", "pyproject.toml"}  # reverted when their test settings change
# Top-level modules a patch may not shadow: the runners and what they import first.
RUNNERS = {"pytest", "_pytest", "pluggy", "unittest", "nose", "nose2", "site", "coverage"}
_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
# Test runners' own caches in the repository: writable by the test user, as the
# rest is not (pytest's own suite runs with filterwarnings=error, so a cache it
# cannot write is a failing run).
CACHES = (".pytest_cache", ".hypothesis")


def test_sections(name: str, text: str) -> str:
    """The test-settings part of a setup.cfg, tox.ini or pyproject.toml."""
    keep, out = False, []
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            section = m.group(1).strip().strip('"').lower()
            keep = any(k in section for k in ("pytest", "tox", "testenv", "nosetests", "coverage",
                                              "unittest"))
        if keep:
            out.append(line.rstrip())
    return "\n".join(out)


def stdlib_names() -> set:
    names = set(getattr(sys, "stdlib_module_names", ()))
    return names | RUNNERS


def discovery_reason(path: str, test_dirs: list, added: bool, protected: list) -> str | None:
    """Why ``path`` is test infrastructure that the model's patch must not change."""
    name = os.path.basename(path)
    if path in protected:
        return "run by the test command"
    if name in ALWAYS:
        return "a test discovery/configuration file"
    if name.endswith(".pth"):
        return "a .pth file (runs code at interpreter start)"
    parts = path.split("/")
    if name == "__init__.py" and "/".join(parts[:-1]) in test_dirs:
        return "a test package's __init__ (load_tests, imports)"
    module = parts[0][:-3] if len(parts) == 1 and name.endswith(".py") else (
        parts[0] if len(parts) == 2 and name == "__init__.py" else None)
    if added and module and module in stdlib_names():
        return "shadows the module %r" % module
    return None


def git(*args: str, check: bool = False, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-c", "core.quotepath=off", *args], input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=check)


def status() -> dict:
    """path -> porcelain status code, untracked files included."""
    out = git("status", "--porcelain=v1", "-z", "--untracked-files=all").stdout.decode(
        "utf-8", "surrogateescape")
    items, entries = {}, out.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":  # renames carry their source as the next entry
            items[entries[i]] = "D "
            i += 1
        items[path] = code
    return items


_HEAD_FILES: list = []


def in_head(path: str) -> bool:
    if not _HEAD_FILES:  # one ls-tree instead of a cat-file per path
        out = git("ls-tree", "-r", "-z", "--name-only", "HEAD").stdout
        _HEAD_FILES.append(set(out.decode("utf-8", "surrogateescape").split("\0")))
    return path in _HEAD_FILES[0]


def restore(paths: list) -> None:
    """Put ``paths`` back as they are at HEAD; delete those HEAD does not have."""
    tracked = [p for p in paths if in_head(p)]
    if tracked:
        git("checkout", "-q", "HEAD", "--", *tracked)
    for path in paths:
        if not in_head(path) and os.path.lexists(path):
            os.remove(path)


def reset(before: dict) -> None:
    """Undo a failed apply attempt: tracked files to HEAD, new files removed."""
    git("reset", "-q")
    git("checkout", "-q", "HEAD", "--", ".")
    for path in status():
        if path not in before and os.path.lexists(path):
            os.remove(path)


def inside(path: str, root: str) -> bool:
    real = os.path.realpath(os.path.join(root, path))
    return real == root or real.startswith(root + os.sep)


def apply(patch: str, before: dict) -> tuple:
    attempts = [("git apply", ["git", "apply", "--whitespace=nowarn", "--recount", patch]),
                ("git apply --3way", ["git", "apply", "--3way", "--whitespace=nowarn", patch]),
                ("patch --fuzz", ["patch", "--batch", "--fuzz=5", "-p1", "-i", patch,
                                  "--no-backup-if-mismatch", "-r", "/dev/null"])]
    log = []
    for name, cmd in attempts:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        text = done.stdout.decode("utf-8", "replace")[-2000:]
        log.append("$ %s\n%s" % (name, text))
        conflicted = "3way" in name and any(
            c in ("UU", "AA", "DU", "UD") for c in status().values())
        if done.returncode == 0 and not conflicted:
            return name, "\n".join(log)
        reset(before)
    return None, "\n".join(log)


def main(job_path: str) -> dict:
    job = json.load(open(job_path))
    root = os.path.realpath(job["repo"])
    os.chdir(root)
    result = {"applied_with": None, "refused": None, "reverted": [], "changed": [],
              "applied_diff": "", "test_patch_applied": False, "log": ""}
    before = status()
    for path in job["model_paths"]:  # an existing symlink on the way could lead outside
        if not inside(path, root) or os.path.islink(path):
            result["refused"] = "%s: resolves outside the repository or through a link" % path
            return result
    if job.get("model_patch"):
        applied, log = apply(job["model_patch"], before)
        result["applied_with"], result["log"] = applied, log
        if applied is None:
            return result
    changed = {p: c for p, c in status().items() if before.get(p) != c}
    for path in changed:
        if os.path.islink(path) or not inside(path, root):
            reset(before)
            result["refused"] = "%s: the patch made a link or wrote outside the repository" % path
            return result
    result["changed"] = sorted(changed)
    new = [p for p in changed if not in_head(p)]
    if new:  # intent-to-add, so the diff shows new files without touching the index otherwise
        git("add", "-N", "--", *new)
    diff = git("diff", "HEAD", "--", *changed).stdout if changed else b""
    result["applied_diff"] = diff.decode("utf-8", "replace")[:200000]
    if new:
        git("reset", "-q", "--", *new)
    revert = []
    for path in sorted(changed):
        added = not in_head(path)
        why = discovery_reason(path, job["test_dirs"], added, job["protected"])
        if why is None and os.path.basename(path) in SECTIONED and not added:
            old = git("show", "HEAD:" + path).stdout.decode("utf-8", "replace")
            new = open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else ""
            if test_sections(path, old) != test_sections(path, new):
                why = "changes the test settings in " + os.path.basename(path)
        if why is not None:
            revert.append(path)
            result["reverted"].append({"path": path, "why": why})
    for path in job["test_paths"]:  # the test patch's files exactly as it has them
        if path in changed and path not in revert:
            result["reverted"].append({"path": path, "why": "a file of the test patch"})
    restore(revert + [p for p in job["test_paths"] if p not in revert])
    if job.get("test_patch"):
        done = subprocess.run(["git", "apply", "--whitespace=nowarn", job["test_patch"]],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        result["test_patch_applied"] = done.returncode == 0
        if done.returncode != 0:
            result["log"] += "\n$ git apply TEST_PATCH\n" + done.stdout.decode("utf-8", "replace")
    else:
        result["test_patch_applied"] = True
    if job.get("writable"):
        subprocess.run(["chown", "-R", job["user"], root])
    else:
        for cache in CACHES:
            if not os.path.lexists(cache):
                os.mkdir(cache)
                subprocess.run(["chown", job["user"], cache])
    return result


if __name__ == "__main__":
    try:
        out = main(sys.argv[1])
    except Exception as e:  # reported as an infrastructure error by the host
        out = {"error": "%s: %s" % (type(e).__name__, e)}
    sys.stdout.write("\n" + json.dumps(out) + "\n")
