"""Robustness of radiomic features to segmentation and image perturbations (Zwanenburg et al., Sci Rep 2019).

Masks are eroded / dilated by one voxel and translated, images get added noise; features are re-extracted with
:func:`radiobio.extract_features` and each feature's agreement across perturbations is summarised by intraclass
correlation: ICC(1,1) (one-way random, absolute agreement) and ICC(3,1) (two-way mixed, consistency) with their 95%
confidence intervals (Shrout & Fleiss 1979; McGraw & Wong 1996). :func:`robust_features` lists the features whose
ICC reaches a threshold (0.9 by default); give that list to :func:`radiobio.outcome.nested_cv` (``robustness=``) or
to :class:`radiobio.outcome.FeatureSubset`.

    icc_table = robustness_table(cohort, out_dir="perturbed/", params="ct")
    keep = robust_features(icc_table, threshold=0.9)

The ICC is written here from its ANOVA mean squares: no maintained ICC implementation is installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio.errors import MaskError, SettingsError

ICC_COLUMNS = ["feature", "icc_1_1", "icc_1_1_lower_95", "icc_1_1_upper_95", "icc_3_1", "icc_3_1_lower_95",
               "icc_3_1_upper_95", "n_targets", "n_raters"]


# --- intraclass correlation ---------------------------------------------------------------------------------------
def icc_matrix(ratings: np.ndarray, *, alpha: float = 0.05) -> dict[str, float]:
    """ICC(1,1) and ICC(3,1) with (1 - ``alpha``) CIs of an (n targets × k raters) matrix without missing values.

    Mean squares of the two-way ANOVA without replication; CIs from the F distribution (McGraw & Wong 1996,
    cases 1 and 3A). Returns NaNs for fewer than 2 targets or raters, or when every value is equal.
    """
    from scipy.stats import f

    x = np.asarray(ratings, dtype=float)
    nan = float("nan")
    result = {"icc_1_1": nan, "icc_1_1_lower_95": nan, "icc_1_1_upper_95": nan, "icc_3_1": nan,
              "icc_3_1_lower_95": nan, "icc_3_1_upper_95": nan}
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2 or np.isnan(x).any():
        return result
    n, k = x.shape
    grand = x.mean()
    ss_total = ((x - grand) ** 2).sum()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ms_rows = ss_rows / (n - 1)
    ms_within = (ss_total - ss_rows) / (n * (k - 1))
    ms_error = max(ss_total - ss_rows - ss_cols, 0.0) / ((n - 1) * (k - 1))
    if ss_total <= 1e-300:
        return result
    q = 1 - alpha / 2
    for name, ms, df2 in (("icc_1_1", ms_within, n * (k - 1)), ("icc_3_1", ms_error, (n - 1) * (k - 1))):
        result[name] = (ms_rows - ms) / (ms_rows + (k - 1) * ms)
        if ms <= 0:
            result[f"{name}_lower_95"] = result[f"{name}_upper_95"] = 1.0
            continue
        f_obs = ms_rows / ms
        f_low = f_obs / f.ppf(q, n - 1, df2)
        f_up = f_obs * f.ppf(q, df2, n - 1)
        result[f"{name}_lower_95"] = (f_low - 1) / (f_low + k - 1)
        result[f"{name}_upper_95"] = (f_up - 1) / (f_up + k - 1)
    return result


def icc(table: pd.DataFrame, *, target_column: str = "case_id", rater_column: str = "perturbation",
        features: Sequence[str] | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """ICC(1,1) and ICC(3,1) with 95% CIs per feature of a long table (one row per target × rater).

    ``target_column`` identifies the rated object (a case, or case and label), ``rater_column`` the repeated
    measurement (a perturbation, a scanner, a reader). ``features``: the numeric columns to rate (default: every
    numeric column but ``label``). Targets missing a value for some rater are left out of that feature's ICC.
    ICCs are unitless; the features keep their own units.
    """
    for column in (target_column, rater_column):
        if column not in table.columns:
            raise SettingsError(f"ICC table has no {column!r} column (columns: {list(table.columns)[:8]}...)")
    if features is None:
        features = [c for c in table.columns if c not in (target_column, rater_column, "label")
                    and pd.api.types.is_numeric_dtype(table[c])]
    if table.duplicated([target_column, rater_column]).any():
        raise SettingsError(f"several rows share the same {target_column!r} and {rater_column!r}; give each "
                            f"measurement its own rater, or add the label to the target (e.g. case_id + label)")
    rows = []
    for feature in features:
        wide = table.pivot(index=target_column, columns=rater_column, values=feature).astype(float).dropna()
        rows.append({"feature": feature, **icc_matrix(wide.to_numpy(), alpha=alpha), "n_targets": len(wide),
                     "n_raters": wide.shape[1]})
    return pd.DataFrame(rows, columns=ICC_COLUMNS)


def robust_features(icc_table: pd.DataFrame, *, threshold: float = 0.9, statistic: str = "icc_1_1",
                    use_lower_bound: bool = False) -> list[str]:
    """Features whose ICC (``statistic``: ``icc_1_1`` or ``icc_3_1``; its lower 95% bound when
    ``use_lower_bound``) reaches ``threshold`` (0.9 by default, Zwanenburg et al. 2019)."""
    column = f"{statistic}_lower_95" if use_lower_bound else statistic
    if column not in icc_table.columns:
        raise SettingsError(f"ICC table has no {column!r} column; compute it with radiobio.features.icc or "
                            f"radiobio.features.robustness_table")
    values = pd.to_numeric(icc_table[column], errors="coerce")
    return icc_table.loc[values >= threshold, "feature"].astype(str).tolist()


# --- perturbations ------------------------------------------------------------------------------------------------
def _labels(mask: sitk.Image, label: int | None) -> list[int]:
    array = sitk.GetArrayViewFromImage(mask)
    values = [int(v) for v in np.unique(array) if v != 0] if label is None else [label]
    if not values or (label is not None and not (array == label).any()):
        raise MaskError(f"mask has no voxel with label {label if label is not None else '> 0'}; nothing to perturb")
    return values


def erode_mask(mask: sitk.Image, *, radius: int = 1, label: int | None = None) -> sitk.Image:
    """Erode each label (or only ``label``) by ``radius`` voxels with a ball kernel; grid unchanged."""
    out = mask
    for value in _labels(mask, label):
        out = sitk.BinaryErode(out, [radius] * mask.GetDimension(), sitk.sitkBall, 0, value)
    return out


def dilate_mask(mask: sitk.Image, *, radius: int = 1, label: int | None = None) -> sitk.Image:
    """Dilate each label (or only ``label``) by ``radius`` voxels into background only (other labels are kept)."""
    array = sitk.GetArrayFromImage(mask)
    result = array.copy()
    for value in _labels(mask, label):
        grown = sitk.BinaryDilate(sitk.Cast(mask == value, sitk.sitkUInt8), [radius] * mask.GetDimension(),
                                  sitk.sitkBall, 0, 1)
        result[(sitk.GetArrayViewFromImage(grown) > 0) & (result == 0)] = value
    out = sitk.GetImageFromArray(result)
    out.CopyInformation(mask)
    return out


def translate_mask(mask: sitk.Image, *, shift_mm: Sequence[float]) -> sitk.Image:
    """Move the mask by ``shift_mm`` (x, y, z in mm, physical axes) on its own grid (nearest neighbour)."""
    transform = sitk.TranslationTransform(mask.GetDimension(), [-float(s) for s in shift_mm])
    return sitk.Resample(mask, mask, transform, sitk.sitkNearestNeighbor, 0, mask.GetPixelID())


def estimate_noise_sd(image: sitk.Image) -> float:
    """Robust estimate of an image's noise SD (intensity units): 1.4826 × MAD of the residual after a 3×3×3
    median filter."""
    floating = sitk.Cast(image, sitk.sitkFloat32)
    # a copy, not a view: a view of the temporary difference image would outlive its memory
    residual = sitk.GetArrayFromImage(floating - sitk.Median(floating, [1] * image.GetDimension()))
    return float(1.4826 * np.median(np.abs(residual - np.median(residual))))


def add_noise(image: sitk.Image, *, sd: float | None = None, seed: int = 0) -> sitk.Image:
    """Add Gaussian noise of ``sd`` intensity units (default: the image's own estimated noise SD) to a float copy."""
    sd = estimate_noise_sd(image) if sd is None else float(sd)
    floating = sitk.Cast(image, sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(floating)
    array += np.random.default_rng(seed).normal(0.0, sd, array.shape).astype(np.float32)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


@dataclass(frozen=True)
class Perturbation:
    """A named change of a case: ``mask`` maps the mask, ``image`` maps the image (None = unchanged)."""

    name: str
    _: KW_ONLY
    mask: Callable[[sitk.Image], sitk.Image] | None = None
    image: Callable[[sitk.Image, int], sitk.Image] | None = None


def default_perturbations(shift_mm: float | None = None) -> list[Perturbation]:
    """Original, erosion and dilation by one voxel, translations of ``shift_mm`` (default: one in-plane voxel,
    decided per image) along +x and -y, and noise addition at the image's own noise level."""
    def shift(sign_x: int, sign_y: int) -> Callable[[sitk.Image], sitk.Image]:
        def move(mask: sitk.Image) -> sitk.Image:
            step = shift_mm if shift_mm is not None else mask.GetSpacing()[0]
            return translate_mask(mask, shift_mm=(sign_x * step, sign_y * step, 0.0))
        return move

    return [Perturbation("original"), Perturbation("erode", mask=erode_mask), Perturbation("dilate", mask=dilate_mask),
            Perturbation("shift_x", mask=shift(1, 0)), Perturbation("shift_y", mask=shift(0, -1)),
            Perturbation("noise", image=lambda image, seed: add_noise(image, seed=seed))]


def perturb_cohort(cohort: pd.DataFrame | str | os.PathLike, *, out_dir: str | os.PathLike,
                   perturbations: Sequence[Perturbation] | None = None, mask_column: str = "mask",
                   seed: int = 0) -> pd.DataFrame:
    """Write every perturbation of every case (NIfTI under ``out_dir``) and return the perturbed cohort.

    One row per case × perturbation, ``case_id`` = ``<case_id>~<perturbation>``, with ``source_case_id`` and
    ``perturbation`` columns; unchanged images / masks point to the original files.
    """
    from radiobio.cohort import read_cohort
    from radiobio.imaging import read_image, read_mask, write_image

    table = read_cohort(cohort)
    if mask_column not in table.columns:
        raise SettingsError(f"cohort has no mask column {mask_column!r}")
    perturbations = list(perturbations or default_perturbations())
    out_dir = Path(out_dir)
    rows = []
    for index, case in enumerate(table.itertuples(index=False)):
        case = case._asdict()
        case_id, image_path, mask_path = case["case_id"], case["image"], case[mask_column]
        image = mask = None
        for perturbation in perturbations:
            new_image, new_mask = image_path, mask_path
            if perturbation.image is not None:
                image = image if image is not None else read_image(image_path)
                new_image = str(write_image(perturbation.image(image, seed + index),
                                            out_dir / "images" / f"{case_id}~{perturbation.name}.nii.gz"))
            if perturbation.mask is not None:
                mask = mask if mask is not None else read_mask(mask_path)
                new_mask = str(write_image(perturbation.mask(mask),
                                           out_dir / "masks" / f"{case_id}~{perturbation.name}.nii.gz"))
            rows.append({"case_id": f"{case_id}~{perturbation.name}", "image": new_image, mask_column: new_mask,
                         "source_case_id": case_id, "perturbation": perturbation.name})
    return pd.DataFrame(rows)


def robustness_table(cohort: pd.DataFrame | str | os.PathLike, *, out_dir: str | os.PathLike,
                     params: object = "ct", mask_column: str = "mask",
                     perturbations: Sequence[Perturbation] | None = None, labels: object = None,
                     jobs: int | None = None, seed: int = 0,
                     return_features: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Perturb every case, re-extract features and return the ICC table (one row per feature, see :func:`icc`).

    ``params``/``labels`` go to :func:`radiobio.extract_features`; ``jobs``: extraction processes (None or 1: this
    process, -1: all cores); perturbed files are written under ``out_dir``. Failed extractions are left out of the
    ICCs. With ``return_features`` the long feature table (one row per case × label × perturbation, with
    ``source_case_id`` and ``perturbation``) comes back too, as ``(icc_table, features)``.
    """
    from radiobio.features.extraction import extract_features  # imported here: owned by the extraction module

    perturbed = perturb_cohort(cohort, out_dir=out_dir, perturbations=perturbations, mask_column=mask_column,
                               seed=seed)
    features = extract_features(perturbed, params=params, mask_column=mask_column, labels=labels,
                                jobs=1 if jobs is None else jobs, progress=False)
    lookup = perturbed.set_index("case_id")
    features = features.assign(source_case_id=features["case_id"].map(lookup["source_case_id"]),
                               perturbation=features["case_id"].map(lookup["perturbation"]))
    ok = features[features["error"].fillna("") == ""].copy()
    ok["target"] = ok["source_case_id"].astype(str) + "#" + ok["label"].astype(str)
    bookkeeping = set(perturbed.columns) | {"label", "label_name", "error", "target", "image", mask_column}
    names = [c for c in ok.columns if c not in bookkeeping and not str(c).startswith("diagnostics_")
             and pd.api.types.is_numeric_dtype(ok[c])]
    result = icc(ok, target_column="target", rater_column="perturbation", features=names)
    return (result, features) if return_features else result
