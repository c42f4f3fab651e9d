"""Benchmark: ``radiobio extract`` against the ``pyradiomics`` command-line tool, same cohort, settings and jobs.

(a) the five PyRadiomics test cases, each copied to 8 distinct files (40 rows), Original + LoG (1, 3 mm), all seven
feature classes, preCrop for both tools; (b) a five-label phantom cohort (256 x 256 x 128 voxels of 1.5 x 1.5 x 2.5 mm)
with the same settings (PyRadiomics gets one batch row per label, as its batch format requires); (c) the five cases,
each copied to 4 distinct files (20 rows), Original + LoG (1, 3 mm) + Wavelet (coif1, level 1), all seven classes,
bin width 25 and PyRadiomics' defaults otherwise: no preCrop, no resampling (PyRadiomics filters the whole image,
radiobio a margin-exact region around the labels). Values are checked identical, then ``speedup: X.XX`` is printed.
Last, the start-up of ``radiobio extract`` (one-row cohort) and its cost per further case are measured on cohort
(c)'s settings in one process. ``--only ibsi`` times ``radiobio extract`` under ``--convention ibsi`` against the
PyRadiomics convention on cohort (a), with settings both conventions read alike (:data:`PARAMS_CONVENTIONS`: 1 mm
trilinear resampling, 32 bins, all seven classes), then with every IBSI family added (``ivh``, ``loc``, ``dzm``), and
prints the time ratios (goal <= 1.5).

    .venv/bin/python benchmarks/extraction.py [--jobs 2] [--copies 8] [--phantoms 8] [--copies-c 4]
                                              [--only a,b,c,startup,ibsi]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RADIOBIO_TEST_DATA", REPO.parent / "shared" / "data")).resolve()
BIN = Path(sys.executable).parent
#: Phantom grid of cohort (b): a CT-like 384 x 384 x 320 mm field of view (a real abdominal CT is 512 x 512 x 100+).
PHANTOM_SIZE, PHANTOM_SPACING = (256, 256, 128), (1.5, 1.5, 2.5)
CASES = ("brain1", "brain2", "breast1", "lung1", "lung2")
PARAMS = {
    "imageType": {"Original": {}, "LoG": {"sigma": [1.0, 3.0]}},
    "featureClass": {name: None for name in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")},
    "setting": {"preCrop": True, "binWidth": 25},
}
#: Cohort (c): PyRadiomics' defaults (no preCrop, no resampling) with LoG and wavelet.
PARAMS_DEFAULTS = {
    "imageType": {"Original": {}, "LoG": {"sigma": [1.0, 3.0]}, "Wavelet": {}},
    "featureClass": PARAMS["featureClass"],
    "setting": {"binWidth": 25},
}
#: The IBSI-convention benchmark: settings with one meaning under both conventions.
PARAMS_CONVENTIONS = {
    "imageType": {"Original": {}},
    "featureClass": PARAMS["featureClass"],
    "setting": {"resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkLinear", "binCount": 32},
}


def pyradiomics_cohort(folder: Path, copies: int, cases: tuple[str, ...] = CASES) -> Path:
    """Copy every PyRadiomics test case ``copies`` times under new IDs; write a PyRadiomics batch CSV."""
    rows = []
    for case in cases:
        for copy in range(copies):
            case_id = f"{case}_{copy}"
            image = folder / f"{case_id}_image.nrrd"
            mask = folder / f"{case_id}_label.nrrd"
            shutil.copyfile(DATA / "pyradiomics" / "data" / f"{case}_image.nrrd", image)
            shutil.copyfile(DATA / "pyradiomics" / "data" / f"{case}_label.nrrd", mask)
            rows.append({"ID": case_id, "Image": str(image), "Mask": str(mask)})
    batch = folder / "batch.csv"
    pd.DataFrame(rows).to_csv(batch, index=False)
    return batch


def phantom_cohort(folder: Path, count: int) -> tuple[Path, Path]:
    """Five-label phantoms: a radiobio cohort (one row per image) and a PyRadiomics batch (one row per label)."""
    from radiobio.synthetic import multi_organ_phantom, write_cohort

    phantoms = [multi_organ_phantom(seed=i, size=PHANTOM_SIZE, spacing=PHANTOM_SPACING) for i in range(count)]
    cohort = write_cohort(phantoms, folder)
    batch_rows = [{"ID": f"{row.case_id}", "Image": row.image, "Mask": row.mask, "Label": label}
                  for row in cohort.itertuples() for label in range(1, 6)]
    batch = folder / "batch_labels.csv"
    pd.DataFrame(batch_rows).to_csv(batch, index=False)
    return folder / "cohort.csv", batch


def timed(command: list[str]) -> tuple[float, float]:
    """Run a command; return (wall time, CPU time of it and all its processes) in seconds; raise if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare(reference_csv: Path, radiobio_table: Path) -> tuple[int, float]:
    """Return (number of values compared, worst relative difference) between the two tools' outputs."""
    reference = pd.read_csv(reference_csv, dtype={"ID": str}, float_precision="round_trip")
    if "Label" not in reference.columns:
        reference["Label"] = 1
    ours = pd.read_parquet(radiobio_table)
    features = [c for c in reference.columns if c.startswith(("original_", "log-", "wavelet"))]
    merged = reference.merge(ours, left_on=["ID", "Label"], right_on=["case_id", "label"], suffixes=("_ref", ""))
    if len(merged) != len(reference):
        raise SystemExit(f"row mismatch: pyradiomics {len(reference)} rows, matched {len(merged)}")
    ref = merged[[f"{c}_ref" for c in features]].to_numpy(float)
    mine = merged[features].to_numpy(float)
    scale = np.maximum(np.abs(ref), 1e-300)
    diff = np.where(ref == mine, 0.0, np.abs(ref - mine) / scale)
    return ref.size, float(np.nanmax(diff))


def run(name: str, batch: Path, ours_input: Path, folder: Path, jobs: int, settings: dict | None = None) -> float:
    """Time both tools on one cohort (``settings``: the parameter file, :data:`PARAMS` by default), check the
    values, print and return the speedup."""
    params = folder / "params.yaml"
    params.write_text(yaml.safe_dump(settings or PARAMS))
    ref_out, our_out = folder / f"{name}_pyradiomics.csv", folder / f"{name}_radiobio.parquet"
    t_ref, cpu_ref = timed([str(BIN / "pyradiomics"), str(batch), "-p", str(params), "-o", str(ref_out),
                            "-f", "csv", "-j", str(jobs)])
    t_ours, cpu_ours = timed([str(BIN / "radiobio"), "extract", str(ours_input), "-p", str(params),
                              "-o", str(our_out), "-j", str(jobs), "--quiet"])
    count, worst = compare(ref_out, our_out)
    print(f"[{name}] pyradiomics {t_ref:.2f} s wall ({cpu_ref:.1f} s CPU), radiobio {t_ours:.2f} s wall "
          f"({cpu_ours:.1f} s CPU); {count} values compared, worst relative difference {worst:.1e}")
    if worst > 1e-9:
        raise SystemExit(f"[{name}] values differ (worst relative difference {worst:.3g})")
    speedup = t_ref / t_ours
    print(f"[{name}] speedup: {speedup:.2f} (CPU time ratio {cpu_ref / cpu_ours:.2f})")
    return speedup


def conventions(folder: Path, batch: Path, jobs: int) -> list[float]:
    """Time ``radiobio extract`` under the PyRadiomics and the IBSI convention on one cohort; print the ratios."""
    settings = {"pyradiomics": PARAMS_CONVENTIONS, "ibsi": PARAMS_CONVENTIONS,
                "ibsi, every family": {**PARAMS_CONVENTIONS, "ibsi": {"families": ["ivh", "loc", "dzm"]}}}
    times = {}
    for name, params in settings.items():
        path = folder / f"params_{len(times)}.yaml"
        path.write_text(yaml.safe_dump(params))
        out = folder / f"features_{len(times)}.parquet"
        times[name], _ = timed([str(BIN / "radiobio"), "extract", str(batch), "-p", str(path), "-o", str(out),
                                "-j", str(jobs), "--quiet", "--convention", name.split(",")[0]])
        table = pd.read_parquet(out)
        if (table["error"] != "").any():
            raise SystemExit(f"[ibsi] {name}: failed rows: {table.loc[table['error'] != '', 'error'].tolist()[:3]}")
        print(f"[ibsi] {name} convention: {times[name]:.2f} s wall, {len(table)} rows, "
              f"{sum(c.startswith('original_') for c in table.columns)} features")
    ratios = [times[name] / times["pyradiomics"] for name in ("ibsi", "ibsi, every family")]
    print(f"[ibsi] time ratio IBSI / PyRadiomics convention: {ratios[0]:.2f} (same classes), {ratios[1]:.2f} "
          f"(every IBSI family)")
    return ratios


def startup(folder: Path, rows: int, case: str = "lung2") -> tuple[float, float]:
    """Start-up of ``radiobio extract`` and its cost per further case, in seconds, on cohort (c)'s settings in one
    process (``-j 1``): a one-row cohort of ``case``, then ``rows`` distinct copies of it; per case =
    (t(rows) - t(1)) / (rows - 1), start-up = t(1) - per case."""
    params = folder / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS_DEFAULTS))
    batch = pd.read_csv(pyradiomics_cohort(folder, rows, cases=(case,)))
    times = {}
    for count in (1, rows):
        cohort = folder / f"cohort_{count}.csv"
        batch.head(count).to_csv(cohort, index=False)
        out = folder / f"startup_{count}.parquet"
        times[count], _ = timed([str(BIN / "radiobio"), "extract", str(cohort), "-p", str(params), "-o", str(out),
                                 "-j", "1", "--quiet"])
    per_case = (times[rows] - times[1]) / (rows - 1)
    print(f"[startup] {case}: one-row cohort {times[1]:.2f} s, {rows} rows {times[rows]:.2f} s: start-up "
          f"{times[1] - per_case:.2f} s, {per_case:.2f} s per further case")
    return times[1] - per_case, per_case


def main() -> None:
    """Run benchmarks (a), (b), (c) and the start-up measure; print the speedups."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--phantoms", type=int, default=8)
    parser.add_argument("--copies-c", type=int, default=4)
    parser.add_argument("--only", default="a,b,c,startup",
                        help="comma-separated parts to run (a, b, c, startup, ibsi)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    results = []
    with tempfile.TemporaryDirectory(prefix="radiobio-bench-") as tmp:
        if "a" in parts:
            folder_a = Path(tmp) / "a"
            folder_a.mkdir()
            batch_a = pyradiomics_cohort(folder_a, args.copies)
            speedup = run("a: pyradiomics cases, preCrop", batch_a, batch_a, folder_a, args.jobs)
            results.append(f"{speedup:.2f} (a, goal >= 5)")
        if "b" in parts:
            folder_b = Path(tmp) / "b"
            folder_b.mkdir()
            cohort_b, batch_b = phantom_cohort(folder_b, args.phantoms)
            speedup = run("b: five-label phantoms", batch_b, cohort_b, folder_b, args.jobs)
            results.append(f"{speedup:.2f} (b, goal >= 3)")
        if "c" in parts:
            folder_c = Path(tmp) / "c"
            folder_c.mkdir()
            batch_c = pyradiomics_cohort(folder_c, args.copies_c)
            speedup = run("c: pyradiomics cases, PyRadiomics defaults + wavelet", batch_c, batch_c, folder_c,
                          args.jobs, PARAMS_DEFAULTS)
            results.append(f"{speedup:.2f} (c, goal >= 5)")
        if "ibsi" in parts:
            folder_i = Path(tmp) / "ibsi"
            folder_i.mkdir()
            ratios = conventions(folder_i, pyradiomics_cohort(folder_i, args.copies), args.jobs)
            results.append(f"IBSI / PyRadiomics convention {ratios[0]:.2f} (goal <= 1.5)")
        if "startup" in parts:
            folder_s = Path(tmp) / "startup"
            folder_s.mkdir()
            startup(folder_s, 6)
    if results:
        print("speedup: " + ", ".join(results))


if __name__ == "__main__":
    main()
