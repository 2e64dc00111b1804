"""The layers' import rules (docs/architecture.md): data flows one way, core <- plugins.

Every import in the four packages, at module level or inside a function, is read from
the source; an import against the direction or an import circle fails the test.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("evals", "tasks", "runners", "sandbox")
# package -> the packages it must never import
FORBIDDEN = {
    "evals": {"tasks", "runners", "sandbox"},
    "sandbox": {"tasks", "runners"},
    "runners": {"tasks", "sandbox"},
    "tasks": {"runners"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every import of one of ``known`` in a file."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [stem] + [f"{stem}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            # the module itself, or the nearest package above a name imported from it
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.append((node.lineno, target))
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        edges[name] = {t for _, t in imports(name, path, set(mods))}
    return edges


def test_no_import_against_the_layers():
    mods = modules()
    bad = []
    for name, path in mods.items():
        top = name.split(".")[0]
        for line, target in imports(name, path, set(mods)):
            if target.split(".")[0] in FORBIDDEN[top]:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_circle():
    edges = graph()
    # A package's __init__ importing its own modules, which import the package's
    # names back, is how a package presents itself, not a circle between layers or
    # modules: edges from a module to the package that contains it are left out.
    for name in edges:
        edges[name] = {t for t in edges[name] if not name.startswith(t + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)
