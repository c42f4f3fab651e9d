"""The results folder: where each stage's output lies, so a pipeline can write it and the report can read it.

::

    RESULTS_DIR/
      cohort.parquet | cohort.csv          cohort table (case_id, image, mask..., clinical columns)
      features.parquet | features.csv      feature table of radiobio.extract_features
      biomarkers.parquet | biomarkers.csv  biomarker table (one row per case), e.g. radiobio.biomarkers.sarcopenia
      <any other table>.parquet | .csv     any table with case_id + error columns counts in "failed cases"
      qc/<case_id>.png, qc/montage.png, qc/qc.csv    QC overlays (radiobio.report.write_qc)
      survival/km.png, km.csv, km_medians.csv, logrank.csv, cox.csv, cox_fit.json, forest.png
      models/<name>/model_card.json        model bundles (or their cards) used to segment
      versions.json                        package versions of the run

Every piece is optional; Parquet wins over CSV when both exist. :func:`write_survival` and :func:`write_versions`
write the survival and versions parts in this layout.
"""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from radiobio.tables import read_table, write_table

COHORT, FEATURES, BIOMARKERS = "cohort", "features", "biomarkers"
QC_DIR, SURVIVAL_DIR, MODELS_DIR = "qc", "survival", "models"
VERSIONS_FILE = "versions.json"
#: Distributions whose versions a run records (import name differs for some: pyradiomics-bhklab is ``radiomics``).
PACKAGES = ("radiobio", "numpy", "pandas", "SimpleITK", "pyradiomics-bhklab", "scikit-learn", "lifelines",
            "matplotlib", "keras", "tensorflow")


def find_table(folder: str | os.PathLike, stem: str) -> Path | None:
    """``folder/stem.parquet`` if it exists, else ``folder/stem.csv``, else None."""
    for suffix in (".parquet", ".csv"):
        path = Path(folder) / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def load_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a result table (Parquet or CSV, provenance restored into ``attrs``); ``case_id`` stays a string."""
    table = read_table(path)
    if "case_id" in table.columns:
        table["case_id"] = table["case_id"].astype(str)
    return table


def result_tables(folder: str | os.PathLike) -> dict[str, Path]:
    """Every table at the top of the results folder, by stem (Parquet preferred over CSV)."""
    folder = Path(folder)
    stems = sorted({p.stem for p in folder.glob("*.parquet")} | {p.stem for p in folder.glob("*.csv")})
    return {stem: path for stem in stems if (path := find_table(folder, stem)) is not None}


def write_survival(folder: str | os.PathLike, km: Any = None, cox: Any = None, time_label: str | None = None) -> dict:
    """Write Kaplan-Meier and Cox results into ``folder/survival/``; returns {name: path}.

    ``km``: a :class:`radiobio.outcome.survival.KaplanMeierResult` → ``km.png`` (curves with numbers at risk),
    ``km.csv`` (the curves), ``km_medians.csv`` and ``logrank.csv``. ``cox``: a
    :class:`radiobio.outcome.survival.CoxResult` → ``cox.csv`` (hazard ratios), ``cox_fit.json`` (n, events,
    concordance, proportional-hazards violations) and ``forest.png``. ``time_label`` names the time axis (with
    its unit, e.g. ``"days"``).
    """
    from radiobio.outcome.plots import forest_plot, km_plot

    out = Path(folder) / SURVIVAL_DIR
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if km is not None:
        km_plot(km, out / "km.png", time_label=time_label)
        written["km.png"] = out / "km.png"
        written["km.csv"] = write_table(km.table, out / "km.csv")
        written["km_medians.csv"] = write_table(km.medians, out / "km_medians.csv")
        if km.logrank is not None:
            written["logrank.csv"] = write_table(km.logrank, out / "logrank.csv")
    if cox is not None:
        written["cox.csv"] = write_table(cox.table, out / "cox.csv")
        fit = {"n": cox.n, "events": cox.events, "concordance": cox.concordance, "ph_violations": cox.ph_violations}
        (out / "cox_fit.json").write_text(json.dumps(fit, indent=2))
        written["cox_fit.json"] = out / "cox_fit.json"
        forest_plot(cox, out / "forest.png")
        written["forest.png"] = out / "forest.png"
    return written


def package_versions() -> dict[str, str]:
    """Python and the versions of :data:`PACKAGES` installed (read from package metadata; nothing is imported)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_versions(folder: str | os.PathLike) -> Path:
    """Write :func:`package_versions` to ``folder/versions.json``."""
    path = Path(folder) / VERSIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(package_versions(), indent=2))
    return path
