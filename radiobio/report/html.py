"""One self-contained HTML page from a results folder (layout: :mod:`radiobio.report.results`).

Sections: failed cases (clearly marked, first), cohort, models (their cards, with intended use), segmentation
quality (Dice, HD95 per label), QC gallery, every biomarker table, every feature table, survival (Kaplan-Meier,
log-rank, Cox, proportional-hazards test) and signature (cross-validated metrics with 95 % intervals, plots), then
the versions. Tables are found by the stage in their provenance, whatever their file names. Summaries count cases
(not rows) and summarise each label or region (``label_name``) apart; index-like columns (``label``,
``slice_index``, ``*_slice``) are never averaged.

By default images are embedded as base64, so the page can be mailed or archived alone; it has no scripts and loads
nothing from elsewhere. For cohorts of thousands, ``embed_images=False`` links the pictures in place instead
(relative paths, lazily loaded), so the page stays small and the QC gallery can show every case. A section whose
results are missing is left out and named in a note at the top.
"""

from __future__ import annotations

import base64
import datetime as dt
import html as markup
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import numpy as np
import pandas as pd

from radiobio.atomic import write_text_atomic
from radiobio.cohort import is_mask_column
from radiobio.errors import ReportError
from radiobio.report.results import (
    MODELS_DIR,
    QC_DIR,
    SIGNATURE_DIR,
    SURVIVAL_DIR,
    VERSIONS_FILE,
    ResultTable,
    cohort_table,
    load_table,
    package_versions,
    result_tables,
)

#: Columns that identify rows or carry bookkeeping, never summarised as data.
BOOKKEEPING = {"case_id", "image", "error", "note", "label", "label_name", "png", "slice", "slice_index", "empty"}
#: Feature summaries show these (as present), else the first few feature columns.
KEY_FEATURES = ("original_shape_MeshVolume", "original_shape_VoxelVolume", "original_shape_Sphericity",
                "original_shape_MajorAxisLength", "original_shape_Elongation", "original_shape2D_PixelSurface",
                "original_shape2D_Perimeter", "original_firstorder_Mean", "original_firstorder_Median",
                "original_firstorder_StandardDeviation", "original_firstorder_Entropy", "original_glcm_Contrast",
                "original_glcm_JointEntropy", "original_glrlm_RunLengthNonUniformity", "original_glszm_ZonePercentage",
                "original_ngtdm_Coarseness")
#: Segmentation scores shown per label: (column, heading).
SCORE_COLUMNS = (("dice", "Dice"), ("iou", "IoU"), ("hd95_mm", "HD95 (mm)"), ("assd_mm", "ASSD (mm)"))
#: Files of each section, named in the note when the section is missing.
SECTION_FILES = {"cohort": "cohort.parquet / cohort.csv", "qc": "qc/*.png",
                 "biomarkers": "a biomarkers table (provenance stage 'biomarkers', or biomarkers.parquet / .csv)",
                 "features": "a feature table (provenance stage 'extract', or features.parquet / .csv)",
                 "segmentation": "segmentation scores (provenance stage 'evaluate', or segmentation_metrics.csv)",
                 "survival": "survival/ (km.png, cox.csv...)", "signature": "signature/summary.csv",
                 "models": "models/*/model_card.json"}
#: Rows of a per-case table shown in full before it is cut (the whole table stays in its file).
MAX_CASE_ROWS = 500


class Section(NamedTuple):
    """One section of the page: its anchor (``id``), heading (plain text) and body (HTML)."""

    anchor: str
    heading: str
    html: str
    css: str = ""


def collect_failures(results: str | os.PathLike) -> pd.DataFrame:
    """Failed cases of every result table in ``results`` and of its QC table: one row per failure with
    ``case_id``, ``stage`` (the provenance stage, ``qc``, or the file name for a table of unknown stage),
    ``table`` (file name), ``label`` (the ``label_name`` of per-label rows) and ``error``."""
    folder = Path(results)
    rows: list[dict[str, Any]] = []
    sources = [(t.stage or t.path.stem, t.path) for t in result_tables(folder)]
    qc_table = folder / QC_DIR / "qc.csv"
    if qc_table.is_file():
        sources.append(("qc", qc_table))
    for stage, path in sources:
        name = path.relative_to(folder).as_posix()
        try:
            table = load_table(path)
        except Exception:  # an unreadable table is reported, not fatal
            rows.append({"case_id": "", "stage": stage, "table": name, "label": "",
                         "error": f"{name} could not be read"})
            continue
        if not {"case_id", "error"} <= set(table.columns):
            continue
        bad = table[table["error"].fillna("").astype(str) != ""]
        group = _group_column(table)
        for _, row in bad.iterrows():
            label = row.get(group) if group else None
            rows.append({"case_id": str(row["case_id"]), "stage": stage, "table": name,
                         "label": "" if label is None or _is_na(label) else str(label), "error": str(row["error"])})
    return pd.DataFrame(rows, columns=["case_id", "stage", "table", "label", "error"])


def write_report(results: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 title: str = "radiobio report", max_gallery: int | None = None, embed_images: bool = True,
                 review: bool = True) -> Path:
    """Build the report of a results folder into one HTML file (written atomically); returns its path.

    ``out`` defaults to ``results/report.html``. With ``embed_images`` (the default) the page is self-contained and
    the QC gallery shows up to ``max_gallery`` per-case pictures (default 60, then the montage, if any); without,
    pictures are linked by relative path (keep the page beside the results) and the gallery shows every case unless
    ``max_gallery`` is given. With ``review`` and a segment table in the folder, ``results/review.html`` (the review
    queue and slice viewer, :func:`radiobio.report.viewer.write_review`; volumes embedded or linked as the pictures)
    is written too and the page gets a Review queue section linking it. Raises :class:`ReportError` when
    ``results`` is not a folder or holds none of the results the report shows.
    """
    folder = Path(results)
    if not folder.is_dir():
        raise ReportError(f"results folder {folder} does not exist; give the folder a radiobio run wrote "
                          f"(e.g. the --out of radiobio demo)")
    if max_gallery is not None and max_gallery < 0:
        raise ReportError(f"max_gallery must be 0 or more, not {max_gallery}")
    out = Path(out) if out is not None else folder / "report.html"
    if max_gallery is None:
        max_gallery = 60 if embed_images else 10 ** 9
    builder = _Builder(folder, max_gallery, None if embed_images else out.parent)
    sections = [builder.failures(), builder.cohort(), builder.models(), builder.segmentation(), builder.qc(),
                _review(folder, out.parent, embed_images) if review else None, builder.biomarkers(),
                builder.features(), builder.survival(), builder.signature()]
    if not any(s is not None for s in sections[1:]):
        raise ReportError(f"{folder} holds none of the results a report shows ({'; '.join(SECTION_FILES.values())});"
                          f" run the pipeline first, or point to its output folder")
    page = _page(title, folder, builder.notes, [s for s in sections if s is not None] + [builder.versions()])
    write_text_atomic(page, out)
    return out


def _review(folder: Path, link_from: Path, embed: bool) -> Section | None:
    from radiobio.report.viewer import review_section

    found = review_section(folder, link_from, volumes="embed" if embed else "link")
    return Section("review", *found) if found is not None else None


class _Builder:
    """Renders each section of the page (None when its results are absent, with a note)."""

    def __init__(self, folder: Path, max_gallery: int, link_from: Path | None = None) -> None:
        self.folder = folder
        self.max_gallery = max_gallery
        self.link_from = link_from  # None: embed images; else link them relative to the page's folder
        self.notes: list[str] = []
        self.tables = result_tables(folder)
        found = cohort_table(folder)
        self.cohort_entry = found
        self.cohort_table = _read(found) if found is not None else None
        self.cohort_columns = set(self.cohort_table.columns) if self.cohort_table is not None else set()

    def of_stage(self, stage: str) -> list[ResultTable]:
        return [t for t in self.tables if t.stage == stage]

    def image(self, path: Path, alt: str, css: str = "") -> str:
        """An ``<img>`` of a PNG: embedded as a data URI, or linked by relative path and loaded lazily."""
        css_attr = f' class="{css}"' if css else ""
        if self.link_from is None:
            return f'<img{css_attr} alt="{_esc(alt)}" src="{_data_uri(path)}">'
        relative = Path(os.path.relpath(path.resolve(), self.link_from.resolve())).as_posix()
        return f'<img{css_attr} alt="{_esc(alt)}" loading="lazy" src="{_esc(quote(relative))}">'

    def _missing(self, section: str, why: str = "") -> None:
        self.notes.append(f"No {section} section: {why or SECTION_FILES[section] + ' not found'}.")
        return None

    def failures(self) -> Section | None:
        failed = collect_failures(self.folder)
        if failed.empty:
            return None
        cases = failed["case_id"].nunique()
        body = (f"<p><strong>{_cases(cases)} failed</strong> in at least one stage ({len(failed)} failure(s)). "
                f"Their results are missing from the summaries below; each error says what to fix.</p>"
                + _table_html(failed))
        return Section("failed", f"Failed cases ({cases})", body, "failed")

    def cohort(self) -> Section | None:
        table = self.cohort_table
        if table is None:
            return self._missing("cohort")
        clinical = [c for c in table.columns if c not in BOOKKEEPING and not is_mask_column(c) and
                    not is_index_column(c)]
        masks = [c for c in table.columns if is_mask_column(c)]
        body = (f"<p>{_cases(table['case_id'].nunique())} ({_esc(self.cohort_entry.name)}); mask columns: "
                f"{_esc(', '.join(masks) or 'none')}; clinical columns: {_esc(', '.join(clinical) or 'none')}.</p>")
        provenance = self.cohort_entry.provenance or {}
        if provenance.get("stage") == "segment":
            body += _facts(segment_facts(provenance))
        summary = describe_columns(table, clinical)
        if not summary.empty:
            body += _table_html(summary)
        return Section("cohort", "Cohort", body)

    def models(self) -> Section | None:
        cards = sorted((self.folder / MODELS_DIR).glob("*/model_card.json"))
        if not cards:
            return self._missing("models", "no model cards in models/ (no segmentation model was run, or masks "
                                           "were given; radiobio segment -o RESULTS_DIR copies the card there)")
        rows = []
        for path in cards:
            try:
                card = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                rows.append({"model": path.parent.name, "intended use": f"unreadable model card: {exc}"})
                continue
            rows.append(card_row(card, path.parent.name))
        return Section("models", "Models", _table_html(pd.DataFrame(rows)))

    def segmentation(self) -> Section | None:
        entries = self.of_stage("evaluate")
        if not entries:
            return self._missing("segmentation")
        body = ("<p>Predicted masks scored against reference masks: one row per label, means over the cases "
                "scored (failed cases left out).</p>")
        for entry in entries:
            table = _read(entry)
            provenance = entry.provenance or {}
            names = self._label_names(provenance.get("pred_column"))
            body += f"<h3>{_esc(entry.name)}</h3>" + _counts_line(table)
            body += _facts([("Predicted masks", provenance.get("pred_column")),
                            ("Reference masks", provenance.get("ref_column")), ("Model", provenance.get("model"))])
            body += _table_html(score_summary(table, names))
        return Section("segmentation", "Segmentation quality", body)

    def _label_names(self, mask_column: Any) -> dict[int, str]:
        from radiobio.report.qc import model_label_names

        provenance = self.cohort_entry.provenance if self.cohort_entry is not None else {}
        return model_label_names(self.folder, provenance, str(mask_column or "mask"))

    def qc(self) -> Section | None:
        qc_dir = self.folder / QC_DIR
        pictures = sorted(p for p in qc_dir.glob("*.png") if p.name != "montage.png") if qc_dir.is_dir() else []
        captions = {p.name: p.stem for p in pictures}
        qc_table = qc_dir / "qc.csv"
        if qc_table.is_file():
            listed = load_table(qc_table)
            by_name = {p.name: p for p in pictures}
            pairs = [(str(n), str(c)) for n, c in zip(listed.get("png", []), listed.get("case_id", []))]
            pictures = [by_name[n] for n, _ in pairs if n in by_name]
            captions.update({n: c for n, c in pairs})
        montage = qc_dir / "montage.png"
        if not pictures and not montage.is_file():
            return self._missing("qc", "no qc/ pictures (radiobio report RESULTS_DIR --qc draws them)")
        shown = pictures[: self.max_gallery]
        figures = "".join(f"<figure>{self.image(p, captions[p.name])}<figcaption>{_esc(captions[p.name])}"
                          f"</figcaption></figure>" for p in shown)
        body = ("<p>Mask contours on each case's slice (one colour per label, named in the legend under each "
                "picture), windowed and in physical proportions.</p>")
        if figures:
            body += f'<div class="gallery">{figures}</div>'
        if len(pictures) > len(shown):
            body += f"<p>{len(pictures) - len(shown)} more pictures in <code>{QC_DIR}/</code>.</p>"
        if montage.is_file() and (len(pictures) > len(shown) or not pictures):
            body += self.image(montage, "QC montage", "wide")
        return Section("qc", "QC gallery", body)

    def biomarkers(self) -> Section | None:
        entries = self.of_stage("biomarkers")
        if not entries:
            return self._missing("biomarkers")
        body = ""
        for entry in entries:
            table = _read(entry)
            kind = entry.kind or entry.path.stem
            body += f"<h3>{_esc(kind.replace('-', ' ').capitalize())} <span class='small'>({_esc(entry.name)})" \
                    f"</span></h3>" + _counts_line(table)
            body += _facts(biomarker_facts(entry.provenance or {}))
            measured = [c for c in table.columns if c not in BOOKKEEPING and c not in self.cohort_columns
                        and not is_mask_column(c) and not is_index_column(c)]
            body += _grouped_summary(_ok(table), measured, _group_column(table))
            if "note" in table.columns and (table["note"].astype(str) != "").any():
                notes = table.loc[table["note"].astype(str) != "", ["case_id", "note"]]
                body += f"<details><summary>Notes ({len(notes)})</summary>{_table_html(_cut(notes))}</details>"
            shown = ["case_id"] + [c for c in table.columns if c not in self.cohort_columns and c != "case_id"
                                   and not is_mask_column(c) and c not in ("note", "error")]
            body += f"<details><summary>All cases</summary>{_table_html(_cut(table[shown]))}</details>"
        return Section("biomarkers", "Biomarkers", body)

    def features(self) -> Section | None:
        entries = self.of_stage("extract")
        if not entries:
            return self._missing("features")
        body = ""
        for entry in entries:
            table = _read(entry)
            ok = _ok(table)
            features = [c for c in table.columns if c not in BOOKKEEPING and c not in self.cohort_columns
                        and not is_mask_column(c) and not is_index_column(c)
                        and pd.api.types.is_numeric_dtype(table[c])]
            group = _group_column(table)
            labels = ", ".join(f"{k} ({v} cases)" for k, v in
                               ok.groupby(ok[group].astype(str))["case_id"].nunique().items()) if group else "–"
            body += (f"<h3>{_esc(entry.name)}</h3>{_counts_line(table)}<p>Labels: {_esc(labels)}; "
                     f"{len(features)} features.</p>")
            body += _facts(feature_facts(entry.provenance or {}))
            families: dict[str, int] = {}
            for column in features:
                parts = column.split("_")
                key = f"{parts[0]} / {parts[1]}" if len(parts) >= 3 else "other"
                families[key] = families.get(key, 0) + 1
            family_table = pd.DataFrame(sorted(families.items()), columns=["image type / class", "features"])
            body += (f"<details><summary>Features per image type and class</summary>{_table_html(family_table)}"
                     f"</details>")
            key = [c for c in KEY_FEATURES if c in features] or features[:10]
            if key and len(ok):
                body += _grouped_summary(ok, key, group)
        return Section("features", "Radiomics features", body)

    def survival(self) -> Section | None:
        folder = self.folder / SURVIVAL_DIR
        if not folder.is_dir() or not any(folder.iterdir()):
            return self._missing("survival", "no survival/ results (radiobio survival -o RESULTS_DIR/survival "
                                             "writes them)")
        known = {"km.png", "km.csv", "km_medians.csv", "logrank.csv", "cox.csv", "cox_fit.json", "forest.png",
                 "ph_test.csv"}
        body = ""
        if (folder / "km.png").is_file():
            body += "<h3>Kaplan-Meier</h3>" + self.image(folder / "km.png", "Kaplan-Meier curves", "plot")
        for name, heading in (("km_medians.csv", "Median survival (95% CI)"), ("logrank.csv", "Log-rank test")):
            if (folder / name).is_file():
                body += f"<h3>{heading}</h3>" + _table_html(load_table(folder / name))
        if (folder / "cox.csv").is_file():
            body += "<h3>Cox proportional-hazards model</h3>" + _table_html(load_table(folder / "cox.csv"))
            fit_path = folder / "cox_fit.json"
            if fit_path.is_file():
                fit = json.loads(fit_path.read_text())
                body += (f"<p>n = {_number(fit.get('n'))}, events = {_number(fit.get('events'))}, concordance = "
                         f"{_number(fit.get('concordance'))}; proportional-hazards violations (p &lt; 0.05): "
                         f"{_esc(', '.join(fit.get('ph_violations') or []) or 'none')}.</p>")
        if (folder / "forest.png").is_file():
            body += self.image(folder / "forest.png", "Hazard ratios", "plot")
        if (folder / "ph_test.csv").is_file():
            body += ("<h3>Proportional-hazards test (Schoenfeld residuals)</h3>"
                     + _table_html(load_table(folder / "ph_test.csv")))
        body += self._other_files(folder, known)
        return Section("survival", "Survival", body or "<p>The survival folder holds no known result.</p>")

    def signature(self) -> Section | None:
        folder = self.folder / SIGNATURE_DIR
        if not folder.is_dir() or not any(folder.iterdir()):
            return self._missing("signature", "no signature/ results (radiobio signature -o RESULTS_DIR/signature "
                                              "writes them)")
        known = {"summary.csv", "selected.csv", "final_model.csv", "folds.csv", "predictions.csv"}
        body = ""
        if (folder / "summary.csv").is_file():
            body += ("<h3>Cross-validated performance</h3><p>Mean over the outer test folds with its 95 % interval."
                     "</p>" + _table_html(signature_summary(load_table(folder / "summary.csv"))))
        for name, heading in (("final_model.csv", "Final model (refitted on all data)"),
                              ("selected.csv", "Features selected across folds")):
            if (folder / name).is_file():
                table = load_table(folder / name)
                body += f"<h3>{heading}</h3>" + _table_html(table.head(25))
                if len(table) > 25:
                    body += f"<p class='small'>{len(table) - 25} more rows in <code>{SIGNATURE_DIR}/{name}</code>.</p>"
        for plot in sorted(folder.glob("*.png")):
            body += self.image(plot, plot.stem.replace("_", " "), "plot")
            known.add(plot.name)
        body += self._other_files(folder, known)
        return Section("signature", "Signature", body or "<p>The signature folder holds no known result.</p>")

    def _other_files(self, folder: Path, known: set[str]) -> str:
        other = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in known
                       and not p.name.endswith(".provenance.json") and not p.name.startswith("."))
        if not other:
            return ""
        return f"<p class='small'>Also in <code>{_esc(folder.name)}/</code>: {_esc(', '.join(other))}.</p>"

    def versions(self) -> Section:
        path = self.folder / VERSIONS_FILE
        run = json.loads(path.read_text()) if path.is_file() else {}
        here = package_versions()
        table = pd.DataFrame({"package": list(dict.fromkeys([*run, *here]))})
        if run:
            table["run"] = table["package"].map(run).fillna("")
        table["this report"] = table["package"].map(here).fillna("")
        note = "" if run else f"<p class='small'>The run recorded no {VERSIONS_FILE}.</p>"
        return Section("versions", "Versions", note + _table_html(table))


def is_index_column(name: Any) -> bool:
    """True for columns that index rather than measure (``label``, ``slice_index``, ``l3_slice``, ``*_index``,
    ``*_id``): never averaged."""
    text = str(name)
    return text in ("label", "slice", "slice_index", "index", "row", "repeat", "fold") or \
        text.endswith(("_slice", "_index", "_id"))


def describe_columns(table: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Summary of each column: numeric → n, mean, sd, median, min, max; boolean or categorical (≤ 12 levels) →
    counts per level. Index-like columns (:func:`is_index_column`) and other columns are skipped."""
    rows = []
    for column in columns:
        if column not in table.columns or is_index_column(column):
            continue
        values = table[column]
        present = values.dropna()
        if pd.api.types.is_bool_dtype(values) or (values.dtype == object and len(present)
                                                  and present.map(type).eq(bool).all()):
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


def score_summary(scores: pd.DataFrame, label_names: Mapping[int, str] | None = None) -> pd.DataFrame:
    """Segmentation scores per label: ``label``, ``label_name``, ``cases``, mean (sd) and median of Dice, IoU,
    HD95 and ASSD (mm), over the rows without error. ``label_names`` names labels the table does not name."""
    ok = _ok(scores)
    if ok.empty or "label" not in ok.columns:
        return pd.DataFrame()
    rows = []
    for label, rows_of in ok.groupby("label", sort=True):
        name = ""
        if "label_name" in rows_of.columns and rows_of["label_name"].astype(str).ne("").any():
            name = str(rows_of["label_name"].astype(str).iloc[0])
        elif label_names:
            name = label_names.get(int(label), "")
        row: dict[str, Any] = {"label": int(label), "label_name": name, "cases": rows_of["case_id"].nunique()}
        for column, heading in SCORE_COLUMNS:
            if column in rows_of.columns:
                values = pd.to_numeric(rows_of[column], errors="coerce").dropna()
                sd = values.std() if len(values) > 1 else math.nan
                row[f"{heading} mean (sd)"] = f"{_number(values.mean())} ({_number(sd) or '–'})" if len(values) \
                    else ""
                row[f"{heading} median"] = values.median() if len(values) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def signature_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary.csv`` of a signature as metric, mean (95 % CI) and the other columns (``n_folds``, ``horizon``)."""
    if not {"metric", "mean"} <= set(summary.columns):
        return summary
    shown = pd.DataFrame({"metric": summary["metric"].astype(str)})
    if {"lower_95", "upper_95"} <= set(summary.columns):
        shown["mean (95% CI)"] = [f"{_number(m)} ({_number(lo)} to {_number(hi)})" for m, lo, hi in
                                  zip(summary["mean"], summary["lower_95"], summary["upper_95"])]
    else:
        shown["mean"] = summary["mean"]
    for column in summary.columns:
        if column not in ("metric", "mean", "lower_95", "upper_95"):
            shown[column] = summary[column]
    return shown


def card_row(card: Mapping[str, Any], folder_name: str = "") -> dict[str, Any]:
    """The Models-table row of a model card: name, intended use, architecture, labels, spacing, backend, training
    data, validation Dice per label, created."""
    labels = {str(k): str(v) for k, v in (card.get("labels") or {}).items()}
    metrics = card.get("validation_metrics") or {}
    per_label = metrics.get("per_label") or {}
    if per_label:
        dice = ", ".join(f"{labels.get(str(k), v.get('name', k))} {_number(v.get('dice_mean'))}"
                         for k, v in per_label.items() if isinstance(v, Mapping))
    else:
        dice = _number(metrics.get("mean_dice"))
    if metrics.get("n_cases") is not None and dice:
        dice += f" ({metrics['n_cases']} cases)"
    data = card.get("training_data") or {}
    return {"model": card.get("name", folder_name), "intended use": _text(card.get("intended_use")) or "not stated",
            "architecture": (card.get("architecture") or {}).get("architecture", ""),
            "labels": ", ".join(f"{k} {v}" for k, v in labels.items()),
            "target spacing (mm)": card.get("target_spacing"), "backend": card.get("backend", ""),
            "training data": data.get("description", "") if isinstance(data, Mapping) else _text(data),
            "validation Dice": dice, "created": card.get("created", "")}


def segment_facts(provenance: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Readable facts of a segment provenance: the model (name, digest), its labels and the mask column."""
    model = provenance.get("model") if isinstance(provenance.get("model"), Mapping) else {}
    digest = str(model.get("digest") or "")
    return [("Segmented by", f"{model.get('name', '')}" + (f" (digest {digest[:12]})" if digest else "")),
            ("Labels", _labels_text(model.get("labels"))), ("Mask column", provenance.get("mask_column"))]


def feature_facts(provenance: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Readable facts of an extract provenance: convention, preset, labels, mask column, image types, feature classes
    and the main settings (bin width, resampling)."""
    params = provenance.get("params") if isinstance(provenance.get("params"), Mapping) else {}
    setting = params.get("setting") if isinstance(params.get("setting"), Mapping) else {}
    convention = {"ibsi": "IBSI 1 (IBSI tags, definitions and image processing)",
                  "pyradiomics": "PyRadiomics"}.get(provenance.get("convention") or "pyradiomics")
    facts = [("Convention", convention),
             ("Preset", provenance.get("preset") or ("custom parameters" if params else None)),
             ("Labels", _labels_text(provenance.get("labels"))), ("Mask column", provenance.get("mask_column")),
             ("Image types", ", ".join(params.get("imageType") or {}) or None),
             ("Feature classes", ", ".join(params.get("featureClass") or {}) or None)]
    for key, name in (("binWidth", "Bin width"), ("binCount", "Bin count"),
                      ("resampledPixelSpacing", "Resampled spacing (mm)"), ("force2D", "2D")):
        if setting.get(key) is not None:
            facts.append((name, setting[key]))
    return facts


def biomarker_facts(provenance: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Readable facts of a biomarkers provenance: the settings that say what was measured (columns, labels,
    cut-offs, level...), never the whole raw dict."""
    settings = provenance.get("settings") if isinstance(provenance.get("settings"), Mapping) else {}
    facts: list[tuple[str, Any]] = []
    for key, value in settings.items():
        if value is None or value == {} or value == []:
            continue
        name = key.replace("_", " ").capitalize()
        if key == "labels" or (isinstance(value, Mapping) and all(isinstance(v, int | float) for v in value.values())
                               and key.endswith("labels")):
            facts.append((name, _labels_text(value)))
        elif isinstance(value, Mapping):
            if "scheme" in value:  # a resolved table (cut-offs...): its name says enough
                facts.append((name, value["scheme"]))
            elif not any(isinstance(v, Mapping) for v in value.values()):
                facts.append((name, ", ".join(f"{k}: {_text(v)}" for k, v in value.items() if v is not None)))
        elif isinstance(value, list | tuple):
            if not any(isinstance(v, Mapping | list | tuple) for v in value):
                facts.append((name, ", ".join(_text(v) for v in value)))
            elif value and isinstance(value[0], Mapping) and "scheme" in value[0]:
                facts.append((name, ", ".join(dict.fromkeys(str(v.get("scheme")) for v in value))))
        else:
            facts.append((name, value))
    if provenance.get("cohort"):
        facts.append(("Cohort", provenance["cohort"]))
    return facts


def _labels_text(labels: Any) -> str | None:
    """``{"muscle": 1}`` or ``{1: "muscle"}`` → ``muscle = 1``; a list → its items."""
    if not labels:
        return None
    if isinstance(labels, Mapping):
        parts = []
        for key, value in labels.items():
            if isinstance(value, str) and str(key).lstrip("-").isdigit():
                parts.append(f"{value} = {key}")
            else:
                parts.append(f"{key} = {_text(value)}")
        return ", ".join(parts)
    if isinstance(labels, list | tuple):
        return ", ".join(_text(v) for v in labels)
    return _text(labels)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _facts(facts: Iterable[tuple[str, Any]]) -> str:
    shown = [(k, _text(v)) for k, v in facts if v is not None and _text(v) != ""]
    if not shown:
        return ""
    items = " · ".join(f"<strong>{_esc(k)}:</strong> {_esc(v)}" for k, v in shown)
    return f"<p class='facts'>{items}</p>"


def _grouped_summary(table: pd.DataFrame, columns: list[str], group: str | None) -> str:
    if not columns:
        return ""
    if group is None or table.empty:
        return _table_html(describe_columns(table, columns))
    body = ""
    for name, rows in table.groupby(table[group].astype(str), sort=False):  # in table order (label order)
        body += (f"<h4>{_esc(group.replace('_', ' '))}: {_esc(name)} ({_cases(rows['case_id'].nunique())})</h4>"
                 + _table_html(describe_columns(rows, columns)))
    return body


def _group_column(table: pd.DataFrame) -> str | None:
    """The column naming each row's label or region: ``label_name`` (older tables: ``region``, ``name``), else
    ``label``; None for one-row-per-case tables."""
    for column in ("label_name", "region", "name"):
        if column in table.columns and (column == "label_name" or table["case_id"].duplicated().any()):
            return column
    if "label" in table.columns and table["case_id"].duplicated().any():
        return "label"
    return None


def _counts_line(table: pd.DataFrame) -> str:
    cases = table["case_id"].nunique() if "case_id" in table.columns else len(table)
    failed = 0
    if "error" in table.columns and "case_id" in table.columns:
        failed = table.loc[table["error"].astype(str) != "", "case_id"].nunique()
    return f"<p>{_cases(cases)}" + (f", {failed} failed (see Failed cases)" if failed else "") + ".</p>"


def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["error"].astype(str) == ""] if "error" in table.columns else table


def _cut(table: pd.DataFrame) -> pd.DataFrame:
    return table.head(MAX_CASE_ROWS)


def _read(entry: ResultTable) -> pd.DataFrame:
    return entry.read()


def _is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _number(value: Any) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
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


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#fff}
header{background:#17324d;color:#fff;padding:18px 32px}header h1{margin:0 0 4px 0;font-size:26px}
header p{margin:0;opacity:.85;font-size:13px}nav{padding:8px 32px;background:#eef2f6;font-size:14px}
nav a{margin-right:14px;color:#17324d}main{padding:8px 32px 40px}section{margin:22px 0}
h2{border-bottom:2px solid #d8dee6;padding-bottom:4px}h3{margin:16px 0 6px}h4{margin:10px 0 4px;font-size:14px}
table.data{border-collapse:collapse;font-size:13px;margin:6px 0}
table.data th,table.data td{border:1px solid #d8dee6;padding:3px 8px;text-align:left}
table.data th{background:#eef2f6}.notes{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 14px}
section.failed{background:#fdecea;border:2px solid #c62828;padding:4px 16px}section.failed h2{color:#c62828}
.gallery{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
.gallery figure{margin:0;text-align:center}.gallery img{height:300px;width:auto;display:block}
.gallery figcaption{font-size:12px;padding:2px}img.plot{max-width:640px;display:block;margin:6px 0}
img.wide{max-width:100%}.small{font-size:12px;color:#556}.facts{font-size:13px;color:#334}
details{margin:8px 0}summary{cursor:pointer}
"""


def _page(title: str, folder: Path, notes: list[str], sections: list[Section]) -> str:
    from radiobio import __version__

    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{s.anchor}">{_esc(s.heading)}</a>' for s in sections)
    body = "".join(f'<section id="{s.anchor}" class="{s.css}"><h2>{_esc(s.heading)}</h2>{s.html}</section>'
                   for s in sections)
    note_html = ("<div class='notes'><strong>Not in these results</strong><ul>"
                 + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul></div>") if notes else ""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_esc(title)}</title>"
            f"<link rel='icon' href='data:,'><style>{STYLE}</style></head><body>"
            f"<header><h1>{_esc(title)}</h1><p>{_esc(folder.resolve())} · built {when} · radiobio {__version__}"
            f"</p></header><nav>{nav}</nav><main>{note_html}{body}</main></body></html>")
