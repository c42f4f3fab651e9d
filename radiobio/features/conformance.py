"""IBSI 1 conformance: radiobio's IBSI-convention features compared with the IBSI consensus reference values.

    from radiobio.features.conformance import ibsi_check
    table = ibsi_check()            # the shipped digital phantom: one row per reference feature
    table["matched"].all()

The IBSI reference tables (``dataset, family, feature, consensus, reference value, tolerance, ..., tag``) give values
to 3 significant digits and a tolerance that is 0 for the digital phantom; a value matches when it deviates from the
reference by at most the tolerance, or by half a unit in the reference's third significant digit when that is larger
(:func:`allowed_deviation`).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from radiobio.errors import SettingsError

PHANTOM_DIR = Path(__file__).with_name("ibsi_phantom")
#: Reference rows without a value: IBSI gives none (features it does not standardise).
NO_VALUE = ("", "—", "-")


def allowed_deviation(reference: float, tolerance: float) -> float:
    """The deviation from an IBSI reference value that still matches: the tolerance, or half a unit in the third
    significant digit of the reference (the precision it is published with), whichever is larger."""
    if reference == 0:
        return max(tolerance, 1e-12)
    half_unit = 0.5 * 10.0 ** (math.floor(math.log10(abs(reference))) - 2)
    return max(tolerance, half_unit) + 1e-12


def read_reference_values(path: str | os.PathLike) -> pd.DataFrame:
    """An IBSI reference table as ``tag, family, feature, consensus, reference, tolerance`` (``reference`` NaN where
    IBSI gives no value)."""
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            value = row["reference value"].strip()
            rows.append({"tag": row["tag"].strip(), "family": row["family"].strip(),
                         "feature": row["feature"].strip(), "consensus": row["consensus"].strip(),
                         "reference": float("nan") if value in NO_VALUE else float(value),
                         "tolerance": float(row["tolerance"].strip() or 0)})
    if not rows:
        raise SettingsError(f"{path}: no reference rows")
    return pd.DataFrame(rows)


def compare_with_reference(values: Mapping[str, float], reference: pd.DataFrame) -> pd.DataFrame:
    """Every reference row with radiobio's ``value`` (NaN when not computed), ``deviation``, ``allowed`` and
    ``matched``; ``values`` are keyed by IBSI tag (columns ``original_<tag>`` and ``diagnostics_<tag>`` of a feature
    table, or bare tags)."""
    by_tag = {}
    for name, value in values.items():
        for prefix in ("original_", "diagnostics_"):
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        by_tag[name] = float(value)
    table = reference.copy()
    table["value"] = [by_tag.get(tag, float("nan")) for tag in table["tag"]]
    table["deviation"] = (table["value"] - table["reference"]).abs()
    table["allowed"] = [allowed_deviation(r, t) if not math.isnan(r) else float("nan")
                        for r, t in zip(table["reference"], table["tolerance"])]
    table["matched"] = table["deviation"] <= table["allowed"]
    return table


def summarise(comparison: pd.DataFrame) -> dict[str, int]:
    """Counts of a comparison: reference features with a value, those radiobio computes, and those matched."""
    testable = comparison["reference"].notna()
    covered = testable & comparison["value"].notna()
    return {"reference": int(testable.sum()), "covered": int(covered.sum()),
            "matched": int((covered & comparison["matched"]).sum())}


def ibsi_check(out: str | os.PathLike | None = None) -> pd.DataFrame:
    """Run the IBSI 1 digital phantom shipped with radiobio through ``extract_features(..., convention="ibsi")`` and
    compare every feature with the IBSI reference value.

    Returns one row per reference feature (``tag``, ``family``, ``reference``, ``tolerance``, ``value``,
    ``deviation``, ``allowed``, ``matched``); with ``out`` (``.csv``) the table is also written there.
    """
    from radiobio.features.extraction import extract_features

    cohort = pd.DataFrame({"case_id": ["ibsi_digital_phantom"], "image": [str(PHANTOM_DIR / "image.nii.gz")],
                           "mask": [str(PHANTOM_DIR / "mask.nii.gz")]})
    features = extract_features(cohort, params=PHANTOM_DIR / "params.yaml", convention="ibsi")
    row = features.iloc[0]
    if row["error"]:
        raise SettingsError(f"the IBSI digital phantom failed: {row['error']}")
    values = {name: row[name] for name in features.columns if name.startswith(("original_", "diagnostics_"))}
    comparison = compare_with_reference(values, read_reference_values(PHANTOM_DIR / "reference_values.csv"))
    if out is not None:
        comparison.to_csv(out, index=False)
    return comparison


#: What each IBSI test case is, for the conformance page: the data set and radiobio's parameters for it.
CASES = {
    "digital_phantom": ("digital phantom", "`radiobio/features/ibsi_phantom/params.yaml` (no interpolation, "
                                           "re-segmentation or discretisation; every aggregation)"),
    "config_A": ("CT phantom, configuration A", "preset `ibsi-config-a` (2D, no interpolation, [-500, 400] HU, "
                                                "25 HU bins)"),
    "config_B": ("CT phantom, configuration B", "preset `ibsi-config-b` (2D, 2 × 2 mm bilinear, [-500, 400] HU, "
                                                "32 bins)"),
    "config_C": ("CT phantom, configuration C", "preset `ibsi-config-c` (3D, 2 mm trilinear, [-1000, 400] HU, "
                                                "25 HU bins)"),
    "config_D": ("CT phantom, configuration D", "preset `ibsi-config-d` (3D, 2 mm trilinear, outliers ± 3 SD, "
                                                "32 bins)"),
    "config_E": ("CT phantom, configuration E", "preset `ibsi-config-e` (3D, 2 mm tricubic, [-1000, 400] HU and "
                                                "outliers ± 3 SD, 32 bins)"),
}


def conformance_page(comparisons: Mapping[str, pd.DataFrame]) -> str:
    """The Markdown page ``docs/ibsi.md``: per IBSI test case, the reference features, those radiobio computes and
    those it matches, and the IBSI features it does not compute (``comparisons``: case name -> the table of
    :func:`compare_with_reference`, case names as in :data:`CASES`)."""
    lines = [
        "# IBSI conformance",
        "",
        "Generated by `tests/features/test_ibsi_conformance.py` (`RADIOBIO_WRITE_DOCS=1` rewrites it); do not edit.",
        "",
        "`extract_features(..., convention=\"ibsi\")` (`radiobio extract --convention ibsi`) processes each ROI as the "
        "IBSI 1 reference manual does — interpolation on a grid aligned on the original grid's centre, the ROI "
        "interpolated and kept at ≥ 0.5, interpolated CT intensities rounded, re-segmentation by range and outliers, "
        "fixed bin sizes counted from the range's lower bound — and names every feature by its IBSI tag "
        "(`original_<tag>`, diagnostics `diagnostics_<tag>`). Texture features come from PyRadiomics' feature classes "
        "on radiobio's grey levels; the families PyRadiomics lacks (`dzm`, `ivh`, `loc`, the rest of `stat`, `ih` and "
        "`morph`) from `radiobio.features.ibsi_families`.",
        "",
        "Each case below is one call of `extract_features` on the IBSI 1 phantom with the parameters named, compared "
        "with the IBSI consensus reference values. A value matches when it is within the IBSI tolerance, or within "
        "half a unit of the reference's third significant digit (the precision IBSI publishes) when that is larger.",
        "",
        "| case | parameters | reference features | computed | matched |",
        "|---|---|---|---|---|",
    ]
    for name, comparison in comparisons.items():
        title, parameters = CASES.get(name, (name, ""))
        counts = summarise(comparison)
        lines.append(f"| {title} | {parameters} | {counts['reference']} | {counts['covered']} | "
                     f"{counts['matched']} |")
    lines += ["", "Reference features include the IBSI diagnostics of the CT phantom (image and mask dimensions, "
                  "voxel counts and intensities before and after interpolation and re-segmentation: 60 per "
                  "configuration).", ""]
    missed = {name: comparison[comparison["reference"].notna() & ~comparison["matched"]]
              for name, comparison in comparisons.items()}
    if any(len(rows) for rows in missed.values()):
        lines += ["## Not matched", ""]
        for name, rows in missed.items():
            for row in rows.itertuples():
                lines.append(f"- {CASES.get(name, (name,))[0]}: `{row.tag}` = {row.value:.6g}, reference "
                             f"{row.reference:g}")
        lines.append("")
    without = sorted({tag for comparison in comparisons.values()
                      for tag in comparison.loc[comparison["reference"].isna(), "tag"]})
    computed = sorted({tag for comparison in comparisons.values()
                       for tag in comparison.loc[comparison["reference"].isna() & comparison["value"].notna(), "tag"]})
    lines += ["## IBSI features without a reference value", "",
              "IBSI lists these without a consensus value. radiobio computes "
              + (", ".join(f"`{tag}`" for tag in computed) or "none of them")
              + "; it does not compute "
              + ", ".join(f"`{tag}`" for tag in without if tag not in computed)
              + " (the oriented minimum bounding box and the minimum-volume enclosing ellipsoid, which IBSI does not "
                "standardise).", "",
              "## Rerun it", "",
              "- `radiobio ibsi-check` runs the digital phantom, shipped inside radiobio (CC BY 4.0, with "
              "attribution in `radiobio/features/ibsi_phantom/README.md`), and prints the counts.",
              "- The CT radiomics phantom (CC BY-NC) is not shipped: with it at `$RADIOBIO_TEST_DATA/ibsi`, "
              "`.venv/bin/python -m pytest tests/features/test_ibsi_conformance.py` reruns every case above.",
              "- Or one configuration on any copy of the phantom: `radiobio extract cohort.csv -p ibsi-config-c "
              "--convention ibsi -o features.csv`.", ""]
    return "\n".join(lines)
