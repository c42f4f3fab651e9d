"""Every package exports lazily, its ``if TYPE_CHECKING:`` imports name exactly what it exports, and no exported name
equals a module name (an attribute never changes meaning once its module is imported)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import radiobio

PACKAGES = ["radiobio", "radiobio.features", "radiobio.segmentation", "radiobio.biomarkers", "radiobio.outcome",
            "radiobio.report", "radiobio.synthetic"]


def _declared(package: str) -> tuple[dict[str, str], dict[str, str]]:
    path = Path(importlib.util.find_spec(package).origin)
    tree = ast.parse(path.read_text())
    lazy: dict[str, str] = {}
    checked: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_LAZY" for t in node.targets):
            lazy = ast.literal_eval(node.value)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for statement in node.body:
                for alias in statement.names:
                    checked[alias.asname or alias.name] = statement.module
    return lazy, checked


@pytest.mark.parametrize("package", PACKAGES)
def test_type_checking_imports_match_the_lazy_exports(package: str) -> None:
    lazy, checked = _declared(package)
    assert lazy and lazy == checked
    module = importlib.import_module(package)
    for name in lazy:
        assert getattr(module, name) is not None
    submodules = {m.name for m in pkgutil.iter_modules(module.__path__)}
    assert not submodules & set(lazy)


def test_importing_radiobio_loads_no_heavy_library() -> None:
    code = ("import sys, radiobio, radiobio.features, radiobio.outcome, radiobio.biomarkers, radiobio.report; "
            "heavy = ('tensorflow', 'keras', 'sklearn', 'lifelines', 'radiomics'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
    assert radiobio.features.wide.__name__ == "radiobio.features.wide"  # modules reachable as attributes
