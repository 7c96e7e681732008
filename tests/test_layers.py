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
