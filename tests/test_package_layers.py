"""The subpackages of frontier import each other without a cycle (imports inside functions too)."""

import ast
from pathlib import Path

import frontier

ROOT = Path(frontier.__file__).parent


def package_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).parts
        if len(rel) < 2:
            continue  # top-level modules (cli, errors, paths) sit above or below every package
        pkg = rel[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module
                else []
            )
            for name in names:
                parts = name.split(".")
                if parts[0] == "frontier" and len(parts) > 1 and (ROOT / parts[1]).is_dir() and parts[1] != pkg:
                    graph.setdefault(pkg, set()).add(parts[1])
    return graph


def test_no_import_cycle_between_packages():
    graph = package_imports()
    assert "predict" in graph.get("sim", set()) and "ops" in graph.get("predict", set())
    done, path = set(), []

    def visit(pkg: str) -> None:
        assert pkg not in path, f"import cycle: {' -> '.join(path + [pkg])}"
        if pkg in done:
            return
        path.append(pkg)
        for dep in sorted(graph.get(pkg, ())):
            visit(dep)
        path.pop()
        done.add(pkg)

    for pkg in sorted(graph):
        visit(pkg)
