"""Lazy package exports: names are imported from their modules on first use, so importing a package stays cheap
(``import radiobio`` loads neither TensorFlow nor scikit-learn)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_exports(package: str, names: dict[str, str], submodules: Iterable[str] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Return ``(__getattr__, __dir__, __all__)`` for ``package``: ``names`` maps each exported name to the module
    that defines it; ``submodules`` are subpackages reachable as attributes."""
    submodules = set(submodules)
    exported = sorted(names) + sorted(submodules)

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return exported

    return __getattr__, __dir__, exported
