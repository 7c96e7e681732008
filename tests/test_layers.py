"""The import rules of DESIGN.md, checked on the source: domain and db never import Qt; ui never imports
SQLAlchemy or the db package; services never import Qt widgets."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "desktop"

RULES = {
    "domain": ("PySide6", "shiboken6", "sqlalchemy", "desktop.db", "desktop.services", "desktop.ui"),
    "db": ("PySide6", "shiboken6", "desktop.services", "desktop.ui"),
    "services": ("PySide6.QtWidgets", "PySide6.QtGui", "desktop.ui"),
    "ui": ("sqlalchemy", "desktop.db", "alembic"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports(layer: str) -> None:
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"no source files in desktop/{layer}"
    violations = []
    for path in files:
        for line, module in imported_modules(path):
            for banned in RULES[layer]:
                if module == banned or module.startswith(banned + "."):
                    violations.append(f"{path.relative_to(ROOT.parent)}:{line} imports {module}")
    assert not violations, "\n".join(violations)


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6.QtWidgets import QWidget\nimport sqlalchemy.orm\n")
    modules = [m for _, m in imported_modules(bad)]
    assert "PySide6.QtWidgets" in modules and "sqlalchemy.orm" in modules


def module_name(path: Path) -> str:
    """``desktop/ui/borrowing/request_form.py`` → ``desktop.ui.borrowing.request_form`` (a package is its name)."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every desktop module and the desktop modules it imports, anywhere in it: at the top, inside a function, or
    by name through ``importlib.import_module("…")`` (a function-local or by-name import still makes a cycle)."""
    paths = {module_name(p): p for p in ROOT.rglob("*.py") if "migrations" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = [m for _, m in imported_modules(path)]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                targets.append(node.args[0].value)
        for target in targets:
            # ``from desktop.services.notices import outbox`` names the module desktop.services.notices.outbox.
            while target and target not in paths:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


PACKAGE_ROOTS = ("desktop.services", "desktop.ui")


def public_modules(package_dir: Path) -> list[str]:
    """The ``__all__`` of a capability package's ``__init__.py``, read from the source."""
    tree = ast.parse((package_dir / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(v) for v in value]
    return []


def capability_packages() -> dict[str, Path]:
    """``desktop.services.notices`` → its folder, for every package one level below services and ui."""
    found = {}
    for root in PACKAGE_ROOTS:
        base = ROOT.parent / Path(*root.split("."))
        for init in sorted(base.glob("*/__init__.py")):
            found[f"{root}.{init.parent.name}"] = init.parent
    return found


def test_every_capability_package_says_what_it_offers() -> None:
    packages = capability_packages()
    assert {"desktop.services.notices", "desktop.services.patrons", "desktop.ui.requests"} <= set(packages)
    for name, folder in packages.items():
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc, f"{name}/__init__.py has no docstring saying what the package offers"
        modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
        public = public_modules(folder)
        assert public, f"{name}/__init__.py names no public module in __all__"
        assert set(public) <= modules, f"{name}.__all__ names modules that do not exist: {set(public) - modules}"
        for module in modules:
            assert f"``{module}``" in doc, f"{name}'s docstring does not mention its module {module}"


def test_packages_use_each_other_only_through_their_public_modules() -> None:
    packages = capability_packages()
    public = {name: set(public_modules(folder)) for name, folder in packages.items()}
    violations = []
    for importer, imported in import_graph().items():
        for target in imported:
            package, _, module = target.rpartition(".")
            if package in packages and not importer.startswith(package + ".") and module not in public[package]:
                violations.append(f"{importer} imports {target}, which {package} keeps to itself")
    assert not violations, "\n".join(sorted(violations))
