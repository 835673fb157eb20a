"""The benchmarks in `bench/` are never run as tests, so a module they import from that moves
would only show when someone runs them (bench/scheduler_bench.py still imported
`scheduler.digest` long after it had become `core.digest`). Every import they make, at the
top or inside a function, must resolve."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def imports_of(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every `import module` and `from module import name` in the file."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_every_import_of_a_benchmark_resolves(path: Path):
    missing = []
    for module, name in imports_of(path):
        try:
            loaded = importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"{module}: {exc}")
            continue
        if name is not None and name != "*" and not hasattr(loaded, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"from {module} import {name}")
    assert not missing, missing
