"""The model's prompt: the issue plus repository context.

``context=oracle`` shows the files the gold patch touches (SWE-bench's
"oracle" setting); ``context=bm25`` the files of the repository that best
match the issue text by BM25 (Okapi, k1=1.2, b=0.75), up to a character
budget; ``context=none`` only the issue. A small BM25 is written here
rather than depending on ``rank_bm25``: it is twenty lines.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

from . import repos
from .data import Instance
from .patch import touched_files

CONTEXTS = ("oracle", "bm25", "none")
SOURCE_EXTS = (".py", ".pyi", ".cfg", ".toml", ".rst", ".md", ".txt", ".ini", ".c", ".h",
               ".js", ".ts", ".go", ".rs", ".java")
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]+")

INSTRUCTIONS = """\
You will be given an issue from a software repository and some of the repository's files.
Write a patch that resolves the issue. Answer with a single unified diff (as `git diff`
prints it) in a ```diff fenced block, with paths relative to the repository root
(a/path and b/path). Do not change the tests."""


def tokens(text: str) -> list[str]:
    out = []
    for tok in _TOKEN.findall(text):
        low = tok.lower()
        out.append(low)
        if "_" in low:  # snake_case parts match prose words
            out.extend(p for p in low.split("_") if len(p) > 1)
    return out


def bm25_rank(query: str, docs: dict[str, str], k1: float = 1.2, b: float = 0.75) -> list[str]:
    """Document names, best match first (ties by name, so the order is stable)."""
    if not docs:
        return []
    # A path's words count as part of its document: the issue often names the module.
    toks = {name: tokens(name.replace("/", " ").replace(".", " ") + " " + text)
            for name, text in docs.items()}
    n = len(toks)
    avg = sum(len(t) for t in toks.values()) / n or 1.0
    df: Counter[str] = Counter()
    for t in toks.values():
        df.update(set(t))
    q = set(tokens(query))
    scores = {}
    for name, t in toks.items():
        tf = Counter(t)
        s = 0.0
        for term in q:
            if term in tf:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                s += idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(t) / avg))
        scores[name] = s
    return sorted(docs, key=lambda d: (-scores[d], d))


def context_files(inst: Instance, mirror: Path | None, mode: str,
                  budget: int = 60000) -> dict[str, str]:
    """The files shown to the model, path -> text at base_commit."""
    if mode == "none" or mirror is None:
        return {}
    if mode == "oracle":
        paths = [p for p in touched_files(inst.patch).paths]
        found = repos.read_many(mirror, inst.base_commit, paths)
        return {p: found[p] for p in paths if p in found}
    candidates = [p for p in repos.list_files(mirror, inst.base_commit) if p.endswith(SOURCE_EXTS)]
    docs = repos.read_many(mirror, inst.base_commit, candidates)
    chosen: dict[str, str] = {}
    used = 0
    for path in bm25_rank(inst.problem_statement, docs):
        if used + len(docs[path]) > budget:
            continue
        chosen[path] = docs[path]
        used += len(docs[path])
        if used > budget * 0.9:
            break
    return chosen


def render(inst: Instance, files: dict[str, str], hints: bool = False) -> str:
    parts = [INSTRUCTIONS, "", f"<issue repo=\"{inst.repo}\">", inst.problem_statement.strip(),
             "</issue>"]
    if hints and inst.hints_text.strip():
        parts += ["", "<hints>", inst.hints_text.strip(), "</hints>"]
    if files:
        parts += ["", "<code>"]
        for path, text in files.items():
            numbered = "\n".join(f"{i} {line}" for i, line in enumerate(text.splitlines(), 1))
            parts += [f"[start of {path}]", numbered, f"[end of {path}]"]
        parts.append("</code>")
    return "\n".join(parts)
