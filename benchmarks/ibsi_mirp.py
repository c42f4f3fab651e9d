"""Benchmark: radiobio's IBSI convention against MIRP on the IBSI 1 CT phantom, configuration C (same run).

MIRP 2.7 needs pandas >= 3 and numpy >= 2.4, which radiobio's stack does not allow, so it runs from its own virtual
environment; radiobio runs from the repository's ``.venv`` in a subprocess. Both are compared with the IBSI reference
values (configuration C: 270 reference values, 60 of them diagnostics, which MIRP does not export) and timed:

    python3 -m venv /tmp/mirp-env && /tmp/mirp-env/bin/pip install mirp
    /tmp/mirp-env/bin/python benchmarks/ibsi_mirp.py
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RADIOBIO_TEST_DATA", REPO.parent / "shared" / "data")).resolve() / "ibsi"
IMAGE = DATA / "ibsi_1_ct_radiomics_phantom" / "nifti" / "image" / "phantom.nii.gz"
MASK = DATA / "ibsi_1_ct_radiomics_phantom" / "nifti" / "mask" / "mask.nii.gz"
RADIOBIO = """
import json, sys, time
import pandas as pd
from radiobio.features import extract_features
cohort = pd.DataFrame({"case_id": ["ct"], "image": [sys.argv[1]], "mask": [sys.argv[2]]})
start = time.perf_counter()
row = extract_features(cohort, params="ibsi-config-c", convention="ibsi").iloc[0]
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "values": {k.split("_", 1)[1].lower(): float(v) for k, v in row.items()
                  if str(k).startswith(("original_", "diagnostics_"))}}))
"""


def reference() -> dict[str, tuple[float, float]]:
    """IBSI configuration C reference values: tag (lower case) -> (value, tolerance)."""
    path = DATA / "reference_values" / "ibsi_1_reference_values_config_C.csv"
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return {row["tag"].strip().lower(): (float(row["reference value"]), float(row["tolerance"] or 0))
                for row in csv.DictReader(handle) if row["reference value"].strip() not in ("", "—", "-")}


def matched(values: dict[str, float], truth: dict[str, tuple[float, float]]) -> tuple[int, int, list[str]]:
    """(computed, matched, missed tags): within the tolerance or half a unit of the third significant digit."""
    computed = matched_count = 0
    missed = []
    for tag, (value, tolerance) in truth.items():
        if tag not in values:
            continue
        computed += 1
        allowed = max(tolerance, 0.5 * 10.0 ** (math.floor(math.log10(abs(value))) - 2) if value else 1e-12)
        if abs(values[tag] - value) <= allowed + 1e-12:
            matched_count += 1
        else:
            missed.append(tag)
    return computed, matched_count, missed


def mirp_values() -> tuple[float, dict[str, float]]:
    """MIRP's features under configuration C, keyed by IBSI tag, and its time in seconds."""
    from mirp import extract_features

    start = time.perf_counter()
    table = extract_features(
        write_features=False, export_features=True, image=str(IMAGE), mask=str(MASK), image_modality="CT",
        by_slice=False, new_spacing=2.0, spline_order=1, anti_aliasing=False, roi_spline_order=1,
        roi_interpolation_mask_inclusion_threshold=0.5, resegmentation_intensity_range=[-1000.0, 400.0],
        base_feature_families="all", base_discretisation_method="fixed_bin_size", base_discretisation_bin_width=25.0,
        ivh_discretisation_method="fixed_bin_size", ivh_discretisation_bin_width=2.5,
        glcm_spatial_method=["3d_average", "3d_volume_merge"], glrlm_spatial_method=["3d_average", "3d_volume_merge"],
        glszm_spatial_method="3d", gldzm_spatial_method="3d", ngtdm_spatial_method="3d",
        ngldm_spatial_method="3d")[0]
    seconds = time.perf_counter() - start
    values = {}
    for column in table.columns:
        tag = column.lower().replace("_d1", "").replace("_fbs_w25.0", "").replace("_fbs_w2.5", "")
        try:
            values[tag.replace("_v_mrg", "_comb")] = float(table[column].iloc[0])
        except (TypeError, ValueError):
            continue
    return seconds, values


def main() -> None:
    """Run both, print computed / matched counts, the misses and the time ratio."""
    truth = reference()
    result = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", RADIOBIO, str(IMAGE), str(MASK)],
                            capture_output=True, text=True, check=True, cwd=REPO)
    ours = json.loads(result.stdout.strip().splitlines()[-1])
    mirp_seconds, mirp = mirp_values()
    for name, seconds, values in (("radiobio", ours["seconds"], ours["values"]), ("MIRP", mirp_seconds, mirp)):
        computed, good, missed = matched(values, truth)
        print(f"[{name}] configuration C: {computed} of {len(truth)} reference values computed, {good} matched, "
              f"{seconds:.2f} s; missed: {', '.join(missed) or 'none'}")
    print(f"time ratio MIRP / radiobio: {mirp_seconds / ours['seconds']:.1f}")


if __name__ == "__main__":
    main()
