"""The results folder: where each stage's output lies, so a pipeline can write it and the report can read it.

::

    RESULTS_DIR/
      cohort.csv                 radiobio segment -o RESULTS_DIR (cohort + mask column; paths relative to the folder)
      masks/<case>.nii.gz        radiobio segment
      models/<bundle>/model_card.json, MODEL_CARD.md   the bundle that made the masks
      <any>.parquet | .csv       tables; their kind comes from provenance["stage"] (extract, biomarkers, evaluate,
                                 segment); conventional names: features.parquet, biomarkers.parquet (or
                                 <kind>.parquet), segmentation_metrics.csv
      qc/<case>.png, qc/montage.png, qc/qc.csv     radiobio report --qc (radiobio.report.write_qc)
      survival/                  km.png, km.csv, km_medians.csv, logrank.csv, cox.csv, cox_fit.json, forest.png,
                                 ph_test.csv (radiobio survival -o RESULTS_DIR/survival)
      signature/                 summary.csv, folds.csv, selected.csv, ... (radiobio signature -o RESULTS_DIR/signature)
      versions.json              package versions of the run
      report.html                radiobio report RESULTS_DIR

Every piece is optional. A table's stage is read from its provenance (``attrs["provenance"]["stage"]``, stored in
the Parquet metadata or the CSV's ``.provenance.json`` sidecar), so any file name works; tables without provenance
are recognised by their conventional names (:data:`NAME_STAGES`). Parquet wins over CSV when both exist with one
name. :func:`write_survival` and :func:`write_versions` write the survival and versions parts in this layout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from radiobio.atomic import write_text_atomic
from radiobio.provenance import package_versions
from radiobio.tables import PROVENANCE_KEY, provenance_sidecar, read_table, write_table

COHORT, FEATURES, BIOMARKERS = "cohort", "features", "biomarkers"
QC_DIR, SURVIVAL_DIR, SIGNATURE_DIR, MODELS_DIR = "qc", "survival", "signature", "models"
VERSIONS_FILE = "versions.json"
#: Kinds of biomarker tables (``provenance["kind"]``), also recognised as file names of tables without provenance.
BIOMARKER_KINDS = ("volumetry", "sarcopenia", "nodules", "nodule-growth", "lung-involvement", "cardiac",
                   "hippocampus")
#: Stage of a table without provenance, from its file name (stem).
NAME_STAGES = {COHORT: COHORT, FEATURES: "extract", BIOMARKERS: "biomarkers", "segmentation_metrics": "evaluate",
               **{kind: "biomarkers" for kind in BIOMARKER_KINDS},
               **{kind.replace("-", "_"): "biomarkers" for kind in BIOMARKER_KINDS}}
#: Suffixes of the tables of a results folder, in order of preference for one name.
TABLE_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class ResultTable:
    """One table at the top of a results folder: its file, the stage that wrote it and its provenance.

    ``stage`` is ``provenance["stage"]`` (``"segment"``, ``"evaluate"``, ``"extract"``, ``"biomarkers"``...), else
    the stage its file name implies (:data:`NAME_STAGES`; ``"cohort"`` for a plain cohort table), else None.
    """

    path: Path
    stage: str | None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The file name (``biomarkers.parquet``)."""
        return self.path.name

    @property
    def kind(self) -> str | None:
        """The biomarker kind (``sarcopenia``...) of a biomarkers table: from provenance, else from the file name."""
        if self.stage != "biomarkers":
            return None
        kind = self.provenance.get("kind")
        if kind:
            return str(kind)
        stem = self.path.stem.replace("_", "-")
        return stem if stem in BIOMARKER_KINDS else None

    def read(self) -> pd.DataFrame:
        """The table (provenance in ``attrs``, ``case_id`` as text)."""
        return load_table(self.path)


def find_table(folder: str | os.PathLike, stem: str) -> Path | None:
    """``folder/stem.parquet`` if it exists, else ``folder/stem.csv``, else None."""
    for suffix in TABLE_SUFFIXES:
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


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance of a table file without reading its rows (Parquet metadata or the CSV sidecar); ``{}`` when
    it has none or it cannot be read."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            raw = (pq.read_schema(path).metadata or {}).get(PROVENANCE_KEY)
            found = json.loads(raw) if raw else {}
        else:
            sidecar = provenance_sidecar(path)
            found = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def table_stage(path: str | os.PathLike, provenance: dict[str, Any]) -> str | None:
    """The stage of a table: ``provenance["stage"]``, else the one its file name implies, else None."""
    stage = provenance.get("stage")
    if stage:
        return str(stage)
    stem = Path(path).stem
    if stem in NAME_STAGES:
        return NAME_STAGES[stem]
    for prefix, implied in (("features", "extract"), ("biomarkers", "biomarkers"),
                            ("segmentation_metrics", "evaluate")):
        if stem.startswith(prefix):
            return implied
    return None


def result_tables(folder: str | os.PathLike) -> list[ResultTable]:
    """Every table at the top of the results folder (one per name, Parquet preferred over CSV), sorted by name,
    with its stage and provenance."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stems = sorted({p.stem for suffix in TABLE_SUFFIXES for p in folder.glob(f"*{suffix}") if p.is_file()})
    tables = []
    for stem in stems:
        path = find_table(folder, stem)
        if path is not None:
            provenance = read_provenance(path)
            tables.append(ResultTable(path, table_stage(path, provenance), provenance))
    return tables


def tables_of(folder: str | os.PathLike, stage: str) -> list[ResultTable]:
    """The tables of ``folder`` written by ``stage`` (``"extract"``, ``"biomarkers"``, ``"evaluate"``...)."""
    return [t for t in result_tables(folder) if t.stage == stage]


def cohort_table(folder: str | os.PathLike) -> ResultTable | None:
    """The cohort of a results folder: ``cohort.parquet`` / ``cohort.csv``, else the table ``radiobio segment``
    wrote (provenance stage ``segment``), else None."""
    tables = result_tables(folder)
    named = [t for t in tables if t.path.stem == COHORT]
    segmented = [t for t in tables if t.stage == "segment"]
    found = named or segmented
    return found[0] if found else None


def write_survival(folder: str | os.PathLike, km: Any = None, cox: Any = None, *, time_label: str | None = None,
                   subfolder: str | None = SURVIVAL_DIR) -> dict[str, Path]:
    """Write Kaplan-Meier and Cox results into ``folder/survival/`` (the results layout); returns {name: path}.

    ``km``: a :class:`radiobio.outcome.survival.KaplanMeierResult` → ``km.png`` (curves with numbers at risk),
    ``km.csv`` (the curves), ``km_medians.csv`` (its ``summary``) and ``logrank.csv`` (with two or more groups).
    ``cox``: a :class:`radiobio.outcome.survival.CoxResult` → ``cox.csv`` (hazard ratios, its ``summary``),
    ``ph_test.csv`` (proportional-hazards test; header only when the test was not computed), ``cox_fit.json``
    (``n``, ``events``, ``concordance``, ``ph_violations``, and the columns modelled) and ``forest.png``. Tables
    carry provenance ``{"stage": "survival", ...}``. ``time_label`` names the KM time axis (with its unit, e.g.
    ``"days"``; default: the duration column). ``subfolder=None`` writes into ``folder`` itself (what
    ``radiobio survival -o DIR`` does).
    """
    from radiobio.atomic import write_text_atomic
    from radiobio.errors import SettingsError

    if km is None and cox is None:
        raise SettingsError("write_survival needs a Kaplan-Meier result (km=) or a Cox result (cox=), or both")
    out = Path(folder) / subfolder if subfolder else Path(folder)
    if out.exists() and not out.is_dir():
        raise SettingsError(f"{out} is a file; survival results go into a folder, e.g. results/survival")
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if km is not None:
        provenance = km.provenance
        km.plot(path=out / "km.png", time_label=time_label)
        written["km.png"] = out / "km.png"
        written["km.csv"] = write_table(km.curves, out / "km.csv", {**provenance, "table": "km_curves"})
        written["km_medians.csv"] = write_table(km.summary, out / "km_medians.csv",
                                                {**provenance, "table": "km_medians"})
        if km.logrank is not None:
            written["logrank.csv"] = write_table(km.logrank, out / "logrank.csv", {**provenance, "table": "logrank"})
    if cox is not None:
        provenance = cox.provenance
        written["cox.csv"] = write_table(cox.summary, out / "cox.csv", {**provenance, "table": "cox"})
        ph = cox.ph_test if cox.ph_test is not None else pd.DataFrame(columns=["covariate", "test_statistic", "p"])
        written["ph_test.csv"] = write_table(ph, out / "ph_test.csv", {**provenance, "table": "ph_test"})
        fit = {"n": cox.n, "events": cox.events, "concordance": cox.concordance, "ph_violations": cox.ph_violations,
               **{k: v for k, v in provenance.items() if k not in ("stage", "analysis")}}
        written["cox_fit.json"] = write_text_atomic(json.dumps(fit, indent=2, default=str), out / "cox_fit.json")
        cox.plot(path=out / "forest.png")
        written["forest.png"] = out / "forest.png"
    return written


def write_versions(folder: str | os.PathLike) -> Path:
    """Write :func:`package_versions` to ``folder/versions.json`` (atomically)."""
    return write_text_atomic(json.dumps(package_versions(), indent=2), Path(folder) / VERSIONS_FILE)
