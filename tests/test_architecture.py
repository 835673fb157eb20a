"""The import lines between the parts (docs/architecture.md): a channel never imports another
channel, the domain imports no channel, the database layer imports nothing of ours."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# part -> the other parts it may import (docs/architecture.md, "Who may import what").
ALLOWED: dict[str, set[str]] = {
    "db": set(),
    "core": {"db"},
    "telegram_delivery": {"core", "db"},
    "bot": {"core", "db", "telegram_delivery"},
    "scheduler": {"core", "db", "telegram_delivery"},
    "webhooks": {"core", "db"},
    "mail": {"core", "db"},
    "api": {"core", "db"},
    "bootstrap": {"api", "bot", "core", "db", "mail", "scheduler", "telegram_delivery", "webhooks"},
}


def _imports(path: Path) -> set[str]:
    """Top-level names of our parts that `path` imports (absolute imports, anywhere in it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(ALLOWED)


def _modules(part: str) -> list[Path]:
    return [p for p in (ROOT / part).rglob("*.py") if "migrations" not in p.parts]


def test_every_top_level_package_has_a_rule():
    folders = {
        p.parent.name
        for p in ROOT.glob("*/*.py")
        if p.parent.name not in {"tests", "bench", "deploy"} and not p.parent.name.startswith(".")
    }
    assert folders == set(ALLOWED), "add the new part to ALLOWED and docs/architecture.md"
    # A folder without __init__.py is a namespace package: setuptools' find leaves it out of
    # a wheel (the Docker image), though an editable install still finds it.
    assert all((ROOT / part / "__init__.py").exists() for part in ALLOWED)


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_part_imports_only_what_it_may(part):
    crossings = []
    for path in _modules(part):
        for target in _imports(path) - {part} - ALLOWED[part]:
            crossings.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not crossings, "imports across the lines in docs/architecture.md:\n" + "\n".join(
        crossings
    )
