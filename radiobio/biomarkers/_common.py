"""What every biomarker stage shares: the case loop (:func:`radiobio.batch.run_batch`), a table per stage with
typed columns, and provenance in ``DataFrame.attrs['provenance']``.

A stage supplies one *measure* function ``measure(settings, case) -> list[dict]`` (one dict per output row of that
case) and a settings dataclass; :func:`run_cases` does the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio import __version__
from radiobio.batch import STATUS_COLUMNS, Case, Measure, carried_columns, case_counts, load_cases, run_batch
from radiobio.cohort import CohortSource
from radiobio.errors import GeometryError
from radiobio.labels import label_map
from radiobio.provenance import jsonable, manifest_path

__all__ = ["Case", "case_counts", "label_map", "mm3_to_ml", "package_table",
           "require_3d", "run_cases", "select"]


def run_cases(cohort: CohortSource, measure: Measure, settings: Any, *, kind: str, columns: Sequence[str],
              required: Iterable[str | None] = (), carry: bool | Sequence[str] = True,
              dtypes: Mapping[str, str] | None = None, jobs: int | None = None, executor: Any = None,
              progress: bool = False, resample_masks: bool = False,
              require_image: bool | None = None) -> pd.DataFrame:
    """Measure every case of ``cohort`` with :func:`radiobio.batch.run_batch`; return one table, one or more rows
    per case, in cohort order.

    ``columns`` are the measure's output columns in order (present even when every case fails), float64 unless
    ``dtypes`` says otherwise (``Int64``, ``boolean``, ``string``: nullable); ``required`` the cohort columns the
    stage cannot do without (missing ones raise :class:`CohortError` at once). ``carry``: clinical columns to copy
    into the result (``True``: all non-path columns). A case whose measure raises gets one row with the error text
    of :func:`radiobio.errors.describe` and NaN measurements; the others complete.
    """
    required = tuple(required)
    if require_image is None:
        require_image = "image" in required
    frame = load_cases(cohort, stage=f"biomarkers {kind}", required=required, require_image=require_image)
    carried = carried_columns(frame, carry, exclude=columns)
    records = run_batch(frame, measure, settings, stage=kind, carry=carried, jobs=jobs, executor=executor,
                        progress=progress, resample_masks=resample_masks)
    table = pd.DataFrame.from_records(records, columns=["case_id", *columns, *carried, *STATUS_COLUMNS])
    for column in columns:
        table[column] = table[column].astype((dtypes or {}).get(column, "float64"))
    table["note"] = table["note"].fillna("")
    table["error"] = table["error"].fillna("")
    table.attrs["provenance"] = {"stage": "biomarkers", "kind": kind, "settings": jsonable(settings),
                                 "cohort": manifest_path(cohort), "radiobio": __version__}
    return table



def select(array: np.ndarray, label: int | None) -> np.ndarray:
    """Boolean selection of ``label`` in a label array (``None``: every non-zero voxel)."""
    return array > 0 if label is None else array == label


def package_table(name: str) -> pd.DataFrame:
    """Read a data table shipped with the package (``radiobio/biomarkers/<name>``)."""
    with resources.files("radiobio.biomarkers").joinpath(name).open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle)


def mm3_to_ml(volume_mm3: float) -> float:
    """1 mL = 1 cm³ = 1000 mm³."""
    return volume_mm3 / 1000.0


def require_3d(image: sitk.Image, column: str, hint: str = "") -> None:
    """Raise :class:`~radiobio.errors.GeometryError` unless ``image`` is 3D."""
    if image.GetDimension() != 3:
        raise GeometryError(f"{column} is {image.GetDimension()}D; a volume needs a 3D image{hint}")

