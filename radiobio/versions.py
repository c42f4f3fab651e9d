"""The versions of the packages behind a result, read from package metadata (nothing is imported)."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata

#: Distributions a radiobio run may depend on (PyRadiomics is distributed as ``pyradiomics-bhklab``).
PACKAGES = ("radiobio", "numpy", "pandas", "SimpleITK", "pyradiomics-bhklab", "scikit-learn", "lifelines",
            "matplotlib", "keras", "tensorflow", "torch", "jax")


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """``{"python": ..., package: version}`` for each of ``packages`` that is installed."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
