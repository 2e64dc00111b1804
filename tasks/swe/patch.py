"""Unified diffs: extraction from a completion, normalisation, the paths they touch,
and the refusal of any that writes outside the repository."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FENCE = re.compile(r"^```[ \t]*([\w.+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
_DIFF_START = re.compile(r"^(diff --git |--- \S|Index: )", re.M)
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")
_DIFF_LINE = re.compile(r"^(diff --git |--- |\+\+\+ |@@ |[ +\-\\]|index |new file mode|deleted file mode|"
                        r"old mode|new mode|similarity index|rename from|rename to|copy from|"
                        r"copy to|Binary files|GIT binary patch|$)")


def _looks_like_diff(text: str) -> bool:
    return bool(re.search(r"^(--- |diff --git )", text, re.M)) and bool(
        re.search(r"^(\+\+\+ |@@ |rename to |new file mode)", text, re.M))


def extract_diff(completion: str) -> str:
    """The unified diff in a completion: fenced blocks that hold one, else the bare
    diff from its first header on. Returns "" when there is none."""
    text = completion.replace("\r\n", "\n")
    blocks = [m.group(2) for m in _FENCE.finditer(text)
              if m.group(1).lower() in ("diff", "patch", "udiff", "") or _looks_like_diff(m.group(2))]
    blocks = [b for b in blocks if _looks_like_diff(b)]
    if blocks:
        return normalize("\n".join(b.rstrip("\n") for b in blocks) + "\n")
    start = _DIFF_START.search(text)
    if not start or not _looks_like_diff(text[start.start():]):
        return ""
    lines = text[start.start():].split("\n")
    kept: list[str] = []
    for line in lines:  # a bare diff ends at the first line no diff can hold (prose)
        if not _DIFF_LINE.match(line):
            break
        kept.append(line)
    return normalize("\n".join(kept).rstrip("\n") + "\n")


def _with_prefix(path: str, prefix: str) -> str:
    if path == "/dev/null" or path.startswith(prefix):
        return path
    return prefix + path


def normalize(diff: str) -> str:
    """Add missing ``a/``/``b/`` prefixes, drop trailing whitespace on header lines and
    timestamps, and give blank lines inside hunks their lost leading space."""
    out: list[str] = []
    in_hunk = False
    for line in diff.replace("\r\n", "\n").rstrip("\n").split("\n"):
        if line.startswith("diff --git "):
            in_hunk = False
            parts = line[len("diff --git "):].strip().split(" ")
            if len(parts) == 2:
                line = f"diff --git {_with_prefix(parts[0], 'a/')} {_with_prefix(parts[1], 'b/')}"
        elif line.startswith("--- ") or line.startswith("+++ "):
            in_hunk = False
            path = line[4:].split("\t")[0].rstrip()
            line = line[:4] + _with_prefix(path, "a/" if line[0] == "-" else "b/")
        elif _HUNK.match(line):
            in_hunk = True
            line = line.rstrip()
        elif in_hunk and line == "":
            line = " "
        out.append(line)
    return "\n".join(out) + "\n"


def _unquote(path: str) -> str:
    if len(path) >= 2 and path[0] == path[-1] == '"':  # git quotes unusual names
        return path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    return path


@dataclass
class DiffFiles:
    paths: list[str] = field(default_factory=list)  # every path, repo-relative, in order
    added: list[str] = field(default_factory=list)
    symlinks: list[str] = field(default_factory=list)  # created as, or turned into, links


def touched_files(diff: str) -> DiffFiles:
    """Paths a diff reads or writes, without the ``a/``/``b/`` prefixes."""
    found = DiffFiles()

    def add(raw: str) -> None:
        path = _unquote(raw.split("\t")[0].strip())
        if path == "/dev/null":
            return
        if path[:2] in ("a/", "b/"):
            path = path[2:]
        if path not in found.paths:
            found.paths.append(path)

    current_new: str | None = None
    old_null = False
    for line in diff.split("\n"):
        if line.startswith("diff --git "):
            parts = line[len("diff --git "):].split(" ")
            for p in parts:
                add(p)
            current_new = parts[-1][2:] if parts[-1][:2] == "b/" else parts[-1]
        elif line.startswith("--- "):
            old_null = line[4:].strip().startswith("/dev/null")
            add(line[4:])
        elif line.startswith("+++ "):
            add(line[4:])
            path = line[4:].split("\t")[0].strip()
            current_new = path[2:] if path[:2] == "b/" else path
            if old_null and current_new not in found.added:
                found.added.append(current_new)
        elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            add(line.split(" ", 2)[2])
        elif re.match(r"^(new file mode|new mode|old mode) 1[26]0000", line) and current_new:
            found.symlinks.append(current_new)
        if line.startswith("new file mode") and current_new and current_new not in found.added:
            found.added.append(current_new)
    return found


def unsafe_path(path: str) -> str | None:
    """Why ``path`` may not be written by a patch, or None when it may."""
    if not path:
        return "an empty path"
    if path.startswith("/") or path.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", path):
        return f"{path}: an absolute path"
    parts = re.split(r"[\\/]+", path)
    if ".." in parts:
        return f"{path}: leaves the repository (..)"
    if any(p.lower() == ".git" for p in parts):
        return f"{path}: inside .git"
    if "\0" in path:
        return f"{path}: a NUL byte"
    return None


def refusal(diff: str) -> str | None:
    """Why the patch is refused before it reaches a container, or None."""
    files = touched_files(diff)
    for path in files.paths:
        if (why := unsafe_path(path)) is not None:
            return why
    if files.symlinks:
        return f"{files.symlinks[0]}: creates a symbolic link"
    if "GIT binary patch" in diff:
        return "a binary patch"
    return None
