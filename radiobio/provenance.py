"""What a result records about itself: the manifest it came from, its settings as plain JSON, and the versions of
the packages behind it. Light on purpose (no pandas, NumPy or pyarrow import), so reading a model card or a config
stays fast."""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions a radiobio run may depend on (PyRadiomics is distributed as ``pyradiomics-bhklab``).
PACKAGES = ("radiobio", "numpy", "pandas", "SimpleITK", "pyradiomics-bhklab", "scikit-learn", "lifelines",
            "matplotlib", "keras", "tensorflow", "torch", "jax")


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """``{"python": ..., package: version}`` for each of ``packages`` that is installed (read from package metadata;
    nothing is imported)."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def manifest_path(cohort: Any) -> str | None:
    """The absolute path of a cohort manifest (``None`` for a DataFrame), recorded in provenance."""
    if isinstance(cohort, str | os.PathLike):
        return str(Path(cohort).resolve())
    return None


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values, for provenance and model cards: dataclasses and mappings become dicts with
    text keys, tuples lists, DataFrames lists of records, NumPy scalars Python numbers, NaN and infinities ``None``
    (JSON has neither), anything else its text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    pandas, numpy = sys.modules.get("pandas"), sys.modules.get("numpy")  # a value of theirs means they are loaded
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return jsonable(value.to_dict("records"))
    if numpy is not None and isinstance(value, numpy.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
