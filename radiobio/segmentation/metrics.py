"""``evaluate(cohort, pred_column, ref_column)``: overlap and surface-distance metrics per case × label, in mm.

Definitions (P = predicted voxels of a label, R = reference voxels, ∂ = surface voxels: voxels of the mask with a
face neighbour outside it; distances between voxel centres, in mm from the image spacing):

* ``dice`` = 2|P∩R| / (|P|+|R|); ``iou`` = |P∩R| / |P∪R|;
* ``volume_similarity`` = 1 − |V_P − V_R| / (V_P + V_R) (Taha & Hanbury 2015; 1 is perfect);
* ``hd95_mm`` = max of the two directed 95th percentiles of surface distances ∂P→∂R and ∂R→∂P (as MONAI);
* ``hausdorff_mm`` = the largest surface distance, either direction;
* ``assd_mm`` = mean of all surface distances of both directions pooled (average symmetric surface distance).

Empty masks: both empty → dice = iou = volume_similarity = 1 and distances 0 (a correct "absent"). Exactly one
empty → dice = iou = volume_similarity = 0 and every distance = the diagonal of the image's extent in mm, the
largest distance possible on that grid, so means penalise a missed or hallucinated structure instead of dropping it.
The ``empty`` column says which case applies (``""``, ``"pred"``, ``"ref"`` or ``"both"``).

Surface distances use SciPy's exact Euclidean distance transform (with the voxel spacing); SimpleITK has no
percentile Hausdorff filter. Tests cross-check against SimpleITK's ``LabelOverlapMeasuresImageFilter`` and
``HausdorffDistanceImageFilter``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from radiobio import __version__
from radiobio.batch import Case, carried_columns, load_cases, order_like, run_batch
from radiobio.cohort import CohortSource
from radiobio.errors import RadiobioError
from radiobio.imaging import check_geometry, labels_present
from radiobio.labels import Labels, label_map
from radiobio.tables import read_table

METRIC_COLUMNS = ("dice", "iou", "hd95_mm", "hausdorff_mm", "assd_mm", "volume_similarity", "pred_volume_ml",
                  "ref_volume_ml")


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a boolean mask: in the mask with a face neighbour outside it (or outside the image)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure, border_value=0)


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (mm) ∂P→∂R and ∂R→∂P for two non-empty boolean masks (numpy order spacing)."""
    both = pred | ref
    box = tuple(slice(int(h.min()), int(h.max()) + 1) for h in np.nonzero(both))
    pred, ref = pred[box], ref[box]
    pred_surface, ref_surface = surface(pred), surface(ref)
    to_ref = ndimage.distance_transform_edt(~ref_surface, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)
    return to_ref[pred_surface], to_pred[ref_surface]


def label_metrics(pred: np.ndarray, ref: np.ndarray, spacing_zyx: tuple[float, ...],
                  extent_mm: float) -> dict[str, float | str]:
    """All metrics of one label from boolean arrays; ``extent_mm`` is the value used when one mask is empty."""
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    n_pred, n_ref = int(pred.sum()), int(ref.sum())
    row: dict[str, float | str] = {"pred_volume_ml": n_pred * voxel_ml, "ref_volume_ml": n_ref * voxel_ml}
    if n_pred == 0 and n_ref == 0:
        return {**row, "dice": 1.0, "iou": 1.0, "volume_similarity": 1.0, "hd95_mm": 0.0, "hausdorff_mm": 0.0,
                "assd_mm": 0.0, "empty": "both"}
    if n_pred == 0 or n_ref == 0:
        return {**row, "dice": 0.0, "iou": 0.0, "volume_similarity": 0.0, "hd95_mm": extent_mm,
                "hausdorff_mm": extent_mm, "assd_mm": extent_mm, "empty": "pred" if n_pred == 0 else "ref"}
    overlap = int(np.count_nonzero(pred & ref))
    d_pr, d_rp = surface_distances(pred, ref, spacing_zyx)
    pooled = np.concatenate([d_pr, d_rp])
    return {
        **row,
        "dice": 2.0 * overlap / (n_pred + n_ref),
        "iou": overlap / (n_pred + n_ref - overlap),
        "volume_similarity": 1.0 - abs(n_pred - n_ref) / (n_pred + n_ref),
        "hd95_mm": float(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))),
        "hausdorff_mm": float(pooled.max()),
        "assd_mm": float(pooled.mean()),
        "empty": "",
    }


def compare_masks(pred: sitk.Image, ref: sitk.Image, labels: list[int] | None = None) -> list[dict]:
    """Metric rows (one per label) for two label maps on the same grid; ``labels`` default: those in either."""
    check_geometry(ref, pred, names=("reference", "prediction"))
    pred_array = sitk.GetArrayViewFromImage(pred)
    ref_array = sitk.GetArrayViewFromImage(ref)
    if labels is None:
        labels = sorted(set(labels_present(pred)) | set(labels_present(ref)))
    spacing = tuple(reversed(ref.GetSpacing()))
    extent = float(np.linalg.norm(np.array(ref.GetSize()) * np.array(ref.GetSpacing())))
    return [{"label": int(label), **label_metrics(pred_array == label, ref_array == label, spacing, extent)}
            for label in labels]


@dataclass(frozen=True)
class EvaluationSettings:
    """What every case of one evaluation shares."""

    pred_column: str
    ref_column: str
    labels: tuple[int, ...] | None
    label_names: dict[int, str]


def evaluate_case(settings: EvaluationSettings, case: Case) -> list[dict[str, Any]]:
    """Score one case (the measure of :func:`evaluate`): one row per label."""
    ref = case.mask(settings.ref_column, check=False, what="reference mask")
    pred = case.mask(settings.pred_column, check=False, what="predicted mask")
    labels = list(settings.labels) if settings.labels is not None else None
    return [{**row, "label_name": settings.label_names.get(row["label"], str(row["label"]))}
            for row in compare_masks(pred, ref, labels)]


def evaluate(cohort: CohortSource, *, pred_column: str = "mask", ref_column: str,
             labels: Labels = None, carry: bool | Sequence[str] = True, jobs: int | None = None,
             executor: Any = None, progress: bool = False) -> pd.DataFrame:
    """Score predicted masks against reference masks: one row per case × label (see module docs for metrics).

    ``labels`` restricts (or extends: a label absent from both counts as correct) the labels scored, as values or
    ``{label_name: value}``; by default each case scores the labels found in either mask, named after the model
    that made the predictions when the cohort is a manifest written by :func:`radiobio.segment`. Clinical columns
    pass through (``carry``). Cases that fail (unreadable mask, different grids) get one row with an ``error``.
    :func:`summarize` gives the per-label summary.
    """
    wanted = label_map(labels)
    names = {v: k for k, v in wanted.items()} if wanted else _model_label_names(cohort)
    table = load_cases(cohort, stage="evaluate", required=(pred_column, ref_column), require_image=False)
    carried = carried_columns(table, carry, exclude=(*METRIC_COLUMNS, "label", "label_name", "empty"))
    settings = EvaluationSettings(pred_column, ref_column, tuple(wanted.values()) if wanted else None, names)
    rows = run_batch(table, evaluate_case, settings, stage="evaluate", carry=carried, jobs=jobs, executor=executor,
                     progress=progress)
    columns = ["case_id", "label", "label_name", *METRIC_COLUMNS, "empty", *carried, "note", "error"]
    scores = order_like(pd.DataFrame.from_records(rows, columns=columns), table, extra=["label"])
    scores["label"] = scores["label"].astype("Int64")
    for column in ("empty", "note", "error"):
        scores[column] = scores[column].fillna("")
    model = _model_record(cohort)
    scores.attrs["provenance"] = {"stage": "evaluate", "pred_column": pred_column, "ref_column": ref_column,
                                  "labels": wanted, "model": model.get("name"), "model_digest": model.get("digest"),
                                  "radiobio": __version__}
    return scores


def _model_record(cohort: CohortSource) -> dict[str, Any]:
    """The ``model`` entry of the provenance of a manifest written by :func:`radiobio.segment` (else empty)."""
    if isinstance(cohort, pd.DataFrame):
        provenance = cohort.attrs.get("provenance") or {}
    else:
        try:
            provenance = read_table(cohort).attrs.get("provenance") or {}
        except RadiobioError:
            return {}
    model = provenance.get("model")
    return model if isinstance(model, dict) else {}


def _model_label_names(cohort: CohortSource) -> dict[int, str]:
    labels = _model_record(cohort).get("labels") or {}
    return {int(k): str(v) for k, v in labels.items()}


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Per label: number of cases, mean, standard deviation and median of each metric (failed cases excluded)."""
    ok = scores[scores["error"] == ""]
    if ok.empty:
        return pd.DataFrame(columns=["label", "label_name", "n"]).set_index("label")
    grouped = ok.groupby("label")
    summary = pd.DataFrame({"label_name": grouped["label_name"].first(), "n": grouped["case_id"].nunique()})
    for metric in ("dice", "iou", "hd95_mm", "assd_mm", "volume_similarity"):
        summary[f"{metric}_mean"] = grouped[metric].mean()
        summary[f"{metric}_std"] = grouped[metric].std(ddof=1)
        summary[f"{metric}_median"] = grouped[metric].median()
    return summary
