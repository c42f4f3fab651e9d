"""One self-contained HTML page from a results folder (layout: :mod:`radiobio.report.results`).

Sections: failed cases (clearly marked, first), cohort summary, QC gallery, biomarker summary, feature summary,
survival (Kaplan-Meier curve, log-rank test, Cox table), model cards and versions. By default images are embedded
as base64, so the page can be mailed or archived alone; it has no scripts and loads nothing from elsewhere. For
cohorts of thousands, ``embed_images=False`` links the pictures in place instead (relative paths, lazily loaded), so
the page stays small and the QC gallery can show every case. A section whose results are missing is left out and
named in a note at the top.
"""

from __future__ import annotations

import base64
import datetime as dt
import html as markup
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from radiobio.atomic import write_text_atomic
from radiobio.cohort import is_mask_column
from radiobio.errors import ReportError
from radiobio.report.results import (
    BIOMARKERS,
    COHORT,
    FEATURES,
    MODELS_DIR,
    QC_DIR,
    SURVIVAL_DIR,
    VERSIONS_FILE,
    find_table,
    load_table,
    package_versions,
    result_tables,
)

#: Columns that identify rows or carry bookkeeping, never summarised as data.
BOOKKEEPING = {"case_id", "image", "error", "note", "label", "label_name", "png", "slice"}
#: Feature summaries show these (as present), else the first few feature columns.
KEY_FEATURES = ("original_shape_MeshVolume", "original_shape_VoxelVolume", "original_shape_Sphericity",
                "original_shape_MajorAxisLength", "original_shape_Elongation", "original_firstorder_Mean",
                "original_firstorder_Median", "original_firstorder_StandardDeviation", "original_firstorder_Entropy",
                "original_glcm_Contrast", "original_glcm_JointEntropy", "original_glrlm_RunLengthNonUniformity",
                "original_glszm_ZonePercentage", "original_ngtdm_Coarseness")
#: Where each pipeline stage's missing output is explained in the notes.
SECTION_FILES = {"cohort": "cohort.parquet / cohort.csv", "qc": "qc/*.png", "biomarkers": "biomarkers.parquet / .csv",
                 "features": "features.parquet / .csv", "survival": "survival/ (km.png, cox.csv...)",
                 "models": "models/*/model_card.json"}


def collect_failures(results: str | os.PathLike) -> pd.DataFrame:
    """Failed cases of every result table in ``results`` and of its QC table: one row per failure with
    ``case_id``, ``stage`` (the table's name), ``label`` (feature rows) and ``error``."""
    folder = Path(results)
    rows: list[dict[str, Any]] = []
    sources = dict(result_tables(folder))
    qc_table = folder / QC_DIR / "qc.csv"
    if qc_table.is_file():
        sources["qc"] = qc_table
    for stage, path in sources.items():
        try:
            table = load_table(path)
        except Exception:  # noqa: BLE001 - an unreadable table is reported, not fatal
            rows.append({"case_id": "", "stage": stage, "label": "", "error": f"{path.name} could not be read"})
            continue
        if not {"case_id", "error"} <= set(table.columns):
            continue
        bad = table[table["error"].fillna("").astype(str) != ""]
        for _, row in bad.iterrows():
            label = row.get("label_name") if pd.notna(row.get("label_name", np.nan)) else row.get("label", "")
            rows.append({"case_id": str(row["case_id"]), "stage": stage,
                         "label": "" if label is None or pd.isna(label) else str(label), "error": str(row["error"])})
    return pd.DataFrame(rows, columns=["case_id", "stage", "label", "error"])


def html(results: str | os.PathLike, out: str | os.PathLike | None = None, title: str = "radiobio report",
         max_gallery: int | None = None, embed_images: bool = True) -> Path:
    """Build the report of a results folder into one HTML file; returns its path.

    ``out`` defaults to ``results/report.html``. With ``embed_images`` (the default) the page is self-contained and
    the QC gallery shows up to ``max_gallery`` per-case pictures (default 60, then the montage, if any); without,
    pictures are linked by relative path (keep the page beside the results) and the gallery shows every case unless
    ``max_gallery`` is given. Raises :class:`ReportError` when ``results`` is not a folder or holds none of the
    results the report shows.
    """
    folder = Path(results)
    if not folder.is_dir():
        raise ReportError(f"results folder {folder} does not exist; give the folder a radiobio run wrote "
                          f"(e.g. the --out of radiobio demo)")
    out = Path(out) if out is not None else folder / "report.html"
    if max_gallery is None:
        max_gallery = 60 if embed_images else 10 ** 9
    builder = _Builder(folder, max_gallery, None if embed_images else out.parent)
    sections = [builder.failures(), builder.cohort(), builder.qc(), builder.biomarkers(), builder.features(),
                builder.survival(), builder.models()]
    if not any(s for s in sections[1:]):
        raise ReportError(f"{folder} holds none of the results a report shows ({', '.join(SECTION_FILES.values())}); "
                          f"run the pipeline first, or point to its output folder")
    page = _page(title, folder, builder.notes, [s for s in sections if s] + [builder.versions()])
    write_text_atomic(page, out)
    return out


class _Builder:
    """Renders each section of the page as an HTML string ('' when its results are absent, with a note)."""

    def __init__(self, folder: Path, max_gallery: int, link_from: Path | None = None) -> None:
        self.folder = folder
        self.max_gallery = max_gallery
        self.link_from = link_from  # None: embed images; else link them relative to the page's folder
        self.notes: list[str] = []
        self.cohort_table = self._table(COHORT)
        self.cohort_columns = set(self.cohort_table.columns) if self.cohort_table is not None else set()

    def _table(self, stem: str) -> pd.DataFrame | None:
        path = find_table(self.folder, stem)
        return load_table(path) if path is not None else None

    def image(self, path: Path, alt: str, css: str = "") -> str:
        """An ``<img>`` of a PNG: embedded as a data URI, or linked by relative path and loaded lazily."""
        css_attr = f' class="{css}"' if css else ""
        if self.link_from is None:
            return f'<img{css_attr} alt="{_esc(alt)}" src="{_data_uri(path)}">'
        relative = Path(os.path.relpath(path.resolve(), self.link_from.resolve())).as_posix()
        return f'<img{css_attr} alt="{_esc(alt)}" loading="lazy" src="{_esc(quote(relative))}">'

    def _missing(self, section: str, why: str = "") -> str:
        self.notes.append(f"No {section} section: {why or SECTION_FILES[section] + ' not found'}.")
        return ""

    def failures(self) -> str:
        failed = collect_failures(self.folder)
        if failed.empty:
            return ""
        cases = failed["case_id"].nunique()
        body = (f"<p><strong>{cases} case(s) failed</strong> in at least one stage ({len(failed)} failure(s)). "
                f"Their results are missing from the summaries below; each error says what to fix.</p>"
                + _table_html(failed))
        return _section("failed", f"Failed cases ({cases})", body, css="failed")

    def cohort(self) -> str:
        table = self.cohort_table
        if table is None:
            return self._missing("cohort")
        clinical = [c for c in table.columns if c not in BOOKKEEPING and not is_mask_column(c)]
        masks = [c for c in table.columns if is_mask_column(c)]
        body = (f"<p>{len(table)} cases; mask columns: {_esc(', '.join(masks) or 'none')}; "
                f"clinical columns: {_esc(', '.join(clinical) or 'none')}.</p>")
        summary = describe_columns(table, clinical)
        if not summary.empty:
            body += _table_html(summary)
        return _section("cohort", "Cohort", body)

    def qc(self) -> str:
        qc_dir = self.folder / QC_DIR
        pictures = sorted(p for p in qc_dir.glob("*.png") if p.name != "montage.png") if qc_dir.is_dir() else []
        qc_table = qc_dir / "qc.csv"
        if qc_table.is_file():
            listed = pd.read_csv(qc_table, dtype={"case_id": str}, keep_default_na=False)
            by_name = {p.name: p for p in pictures}
            pictures = [by_name[n] for n in listed["png"] if n in by_name]
        montage = qc_dir / "montage.png"
        if not pictures and not montage.is_file():
            return self._missing("qc")
        shown = pictures[: self.max_gallery]
        figures = "".join(f"<figure>{self.image(p, p.stem)}<figcaption>{_esc(p.stem)}</figcaption></figure>"
                          for p in shown)
        body = '<p>Mask contours on each case\'s slice (one colour per label), windowed and in physical ' \
               'proportions.</p>'
        if figures:
            body += f'<div class="gallery">{figures}</div>'
        if len(pictures) > len(shown):
            body += f"<p>{len(pictures) - len(shown)} more pictures in <code>{QC_DIR}/</code>.</p>"
        if montage.is_file() and (len(pictures) > len(shown) or not pictures):
            body += self.image(montage, "QC montage", "wide")
        return _section("qc", "QC gallery", body)

    def biomarkers(self) -> str:
        table = self._table(BIOMARKERS)
        if table is None:
            return self._missing("biomarkers")
        ok = table[table["error"].fillna("").astype(str) == ""] if "error" in table.columns else table
        measured = [c for c in table.columns
                    if c not in BOOKKEEPING and c not in self.cohort_columns and not is_mask_column(c)]
        body = f"<p>{len(ok)} of {len(table)} cases measured.</p>" + _table_html(describe_columns(ok, measured))
        if "note" in table.columns and (table["note"].fillna("") != "").any():
            notes = table.loc[table["note"].fillna("") != "", ["case_id", "note"]]
            body += f"<details><summary>Notes ({len(notes)})</summary>{_table_html(notes)}</details>"
        shown = ["case_id"] + [c for c in measured if c in table.columns]
        body += f"<details><summary>All cases</summary>{_table_html(table[shown])}</details>"
        return _section("biomarkers", "Biomarkers", body)

    def features(self) -> str:
        table = self._table(FEATURES)
        if table is None:
            return self._missing("features")
        ok = table[table["error"].fillna("").astype(str) == ""] if "error" in table.columns else table
        features = [c for c in table.columns if c not in BOOKKEEPING and c not in self.cohort_columns
                    and not is_mask_column(c) and pd.api.types.is_numeric_dtype(table[c])]
        families: dict[str, int] = {}
        for column in features:
            parts = column.split("_")
            key = f"{parts[0]} / {parts[1]}" if len(parts) >= 3 else "other"
            families[key] = families.get(key, 0) + 1
        group = "label_name" if "label_name" in table.columns else "label" if "label" in table.columns else None
        labels = ", ".join(f"{k} ({v})" for k, v in ok[group].astype(str).value_counts().sort_index().items()) \
            if group else "–"
        body = (f"<p>{len(ok)} of {len(table)} rows extracted ({ok['case_id'].nunique() if len(ok) else 0} cases; "
                f"labels: {_esc(labels)}); {len(features)} features.</p>")
        family_table = pd.DataFrame(sorted(families.items()), columns=["image type / class", "features"])
        body += f"<details><summary>Features per image type and class</summary>{_table_html(family_table)}</details>"
        key = [c for c in KEY_FEATURES if c in features] or features[:10]
        if key and len(ok):
            if group:
                for name, rows in ok.groupby(ok[group].astype(str), sort=True):
                    body += f"<h3>Label {_esc(name)}</h3>" + _table_html(describe_columns(rows, key))
            else:
                body += _table_html(describe_columns(ok, key))
        provenance = table.attrs.get("provenance") or {}
        if provenance:
            shown = {k: provenance[k] for k in ("params_hash", "created", "mask_column") if k in provenance}
            body += f"<p class='small'>Extraction settings: {_esc(json.dumps(shown, default=str))}</p>"
        return _section("features", "Radiomics features", body)

    def survival(self) -> str:
        folder = self.folder / SURVIVAL_DIR
        if not folder.is_dir() or not any(folder.iterdir()):
            return self._missing("survival", "no survival/ results (the cohort may have no survival time and "
                                             "event columns)")
        body = ""
        if (folder / "km.png").is_file():
            body += "<h3>Kaplan-Meier</h3>" + self.image(folder / "km.png", "Kaplan-Meier curves", "plot")
        for name, heading in (("logrank.csv", "Log-rank test"), ("km_medians.csv", "Median survival (95% CI)")):
            if (folder / name).is_file():
                body += f"<h3>{heading}</h3>" + _table_html(pd.read_csv(folder / name))
        if (folder / "cox.csv").is_file():
            body += "<h3>Cox proportional-hazards model</h3>" + _table_html(pd.read_csv(folder / "cox.csv"))
            fit_path = folder / "cox_fit.json"
            if fit_path.is_file():
                fit = json.loads(fit_path.read_text())
                body += (f"<p>n = {fit.get('n')}, events = {fit.get('events')}, concordance = "
                         f"{_number(fit.get('concordance'))}; proportional-hazards violations (p &lt; 0.05): "
                         f"{_esc(', '.join(fit.get('ph_violations') or []) or 'none')}.</p>")
        if (folder / "forest.png").is_file():
            body += self.image(folder / "forest.png", "Hazard ratios", "plot")
        return _section("survival", "Survival", body or "<p>The survival folder holds no known result.</p>")

    def models(self) -> str:
        cards = sorted((self.folder / MODELS_DIR).glob("*/model_card.json"))
        if not cards:
            return self._missing("models", "no model cards in models/ (no segmentation model was run, or masks "
                                           "were given)")
        rows = []
        for path in cards:
            try:
                card = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                rows.append({"model": path.parent.name, "architecture": f"unreadable model card: {exc}"})
                continue
            metrics = card.get("validation_metrics") or {}
            data = card.get("training_data") or {}
            rows.append({"model": card.get("name", path.parent.name),
                         "architecture": (card.get("architecture") or {}).get("architecture", ""),
                         "labels": ", ".join(f"{k}: {v}" for k, v in (card.get("labels") or {}).items()),
                         "target spacing (mm)": card.get("target_spacing"),
                         "backend": card.get("backend", ""), "training data": data.get("description", ""),
                         "validation mean Dice": metrics.get("mean_dice"), "created": card.get("created", "")})
        return _section("models", "Models", _table_html(pd.DataFrame(rows)))

    def versions(self) -> str:
        path = self.folder / VERSIONS_FILE
        run = json.loads(path.read_text()) if path.is_file() else {}
        here = package_versions()
        table = pd.DataFrame({"package": list(dict.fromkeys([*run, *here]))})
        if run:
            table["run"] = table["package"].map(run).fillna("")
        table["this report"] = table["package"].map(here).fillna("")
        note = "" if run else f"<p class='small'>The run recorded no {VERSIONS_FILE}.</p>"
        return _section("versions", "Versions", note + _table_html(table))


def describe_columns(table: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Summary of each column: numeric → n, mean, sd, median, min, max; boolean or categorical (≤ 12 levels) →
    counts per level. Other columns are skipped."""
    rows = []
    for column in columns:
        if column not in table.columns:
            continue
        values = table[column]
        present = values.dropna()
        if pd.api.types.is_bool_dtype(values) or (values.dtype == object and present.map(type).eq(bool).all()
                                                  and len(present)):
            true = int(present.astype(bool).sum())
            summary = f"true: {true} / {len(present)} ({100 * true / len(present):.0f}%)" if len(present) else \
                "no values"
            rows.append({"column": column, "n": len(present), "summary": summary})
        elif pd.api.types.is_numeric_dtype(values):
            numbers = pd.to_numeric(present, errors="coerce").dropna().astype(float)
            if numbers.empty:
                rows.append({"column": column, "n": 0, "summary": "no values"})
                continue
            rows.append({"column": column, "n": len(numbers), "mean": numbers.mean(),
                         "sd": numbers.std() if len(numbers) > 1 else math.nan, "median": numbers.median(),
                         "min": numbers.min(), "max": numbers.max()})
        elif 0 < present.nunique() <= 12:
            counts = present.astype(str).value_counts().sort_index()
            rows.append({"column": column, "n": len(present),
                         "summary": ", ".join(f"{k}: {v}" for k, v in counts.items())})
    frame = pd.DataFrame(rows)
    order = [c for c in ("column", "n", "mean", "sd", "median", "min", "max", "summary") if c in frame.columns]
    return frame[order] if len(frame) else frame


def _number(value: Any) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        return f"{value:.4g}"
    return str(value)


def _table_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p class='small'>(no rows)</p>"
    shown = frame.copy()
    for column in shown.columns:
        shown[column] = shown[column].map(_number)
    return shown.to_html(index=False, escape=True, border=0, classes="data", na_rep="")


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _esc(text: Any) -> str:
    return markup.escape(str(text))


def _section(anchor: str, heading: str, body: str, css: str = "") -> str:
    return f'<section id="{anchor}" class="{css}"><h2>{_esc(heading)}</h2>{body}</section>'


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#fff}
header{background:#17324d;color:#fff;padding:18px 32px}header h1{margin:0 0 4px 0;font-size:26px}
header p{margin:0;opacity:.85;font-size:13px}nav{padding:8px 32px;background:#eef2f6;font-size:14px}
nav a{margin-right:14px;color:#17324d}main{padding:8px 32px 40px}section{margin:22px 0}
h2{border-bottom:2px solid #d8dee6;padding-bottom:4px}h3{margin:16px 0 6px}
table.data{border-collapse:collapse;font-size:13px;margin:6px 0}
table.data th,table.data td{border:1px solid #d8dee6;padding:3px 8px;text-align:left}
table.data th{background:#eef2f6}.notes{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 14px}
section.failed{background:#fdecea;border:2px solid #c62828;padding:4px 16px}section.failed h2{color:#c62828}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:10px}
.gallery figure{margin:0;background:#000;color:#fff;text-align:center}.gallery img{width:100%;display:block}
.gallery figcaption{font-size:12px;padding:2px}img.plot{max-width:640px;display:block;margin:6px 0}
img.wide{max-width:100%}.small{font-size:12px;color:#556}details{margin:8px 0}summary{cursor:pointer}
"""


def _page(title: str, folder: Path, notes: list[str], sections: list[str]) -> str:
    from radiobio import __version__

    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    anchors = [(s.split('id="', 1)[1].split('"', 1)[0], s.split("<h2>", 1)[1].split("</h2>", 1)[0]) for s in sections]
    nav = "".join(f'<a href="#{a}">{h}</a>' for a, h in anchors)
    note_html = ("<div class='notes'><strong>Not in these results</strong><ul>"
                 + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul></div>") if notes else ""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_esc(title)}</title>"
            f"<link rel='icon' href='data:,'><style>{STYLE}</style></head><body>"
            f"<header><h1>{_esc(title)}</h1><p>{_esc(folder.resolve())} · built {when} · radiobio {__version__}"
            f"</p></header><nav>{nav}</nav><main>{note_html}{''.join(sections)}</main></body></html>")
