"""Lazy package exports: names are imported from their modules on first use, so importing a package stays cheap
(``import radiobio`` loads neither TensorFlow nor scikit-learn).

Every package of radiobio exports this way; its ``if TYPE_CHECKING:`` block imports the same names so type checkers
and IDEs see them (a test keeps the two in step). Subpackages and modules are reachable as attributes too
(``radiobio.features.wide``); no exported name equals a module's name, so an attribute never changes meaning once
its module is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str,
                 names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Return ``(__getattr__, __dir__, __all__)`` for ``package``: ``names`` maps each exported name to the module
    that defines it; the package's submodules are reachable as attributes."""
    path = getattr(sys.modules[package], "__path__", [])
    submodules = {m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_")}
    clashes = submodules & set(names)
    if clashes:
        raise ImportError(f"{package}: exported names {sorted(clashes)} equal module names")
    exported = sorted(names)

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return exported + sorted(submodules)

    return __getattr__, __dir__, exported
