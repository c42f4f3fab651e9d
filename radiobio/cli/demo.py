"""``radiobio demo``: the main job on an embedded synthetic cohort, with nothing to download.

Today the demo builds a small multi-organ phantom cohort and runs batch radiomics extraction over it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

EXAMPLE = """example:
  radiobio demo                      # writes ./radiobio-demo
  radiobio demo --out /tmp/demo --n-cases 20 -j 2
"""
MARKER = ".radiobio-demo"
DEMO_PARAMS = {
    "imageType": {"Original": {}, "LoG": {"sigma": [2.0]}},
    "featureClass": {name: None for name in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")},
    "setting": {"binWidth": 25},
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser("demo", help="run radiobio on the embedded synthetic demo cohort",
                                   description="Build the synthetic demo cohort and run the pipeline on it.",
                                   epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="radiobio-demo", help="output folder [radiobio-demo]")
    parser.add_argument("--n-cases", type=int, default=12, help="number of synthetic cases [12]")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="worker processes [all cores]")
    parser.add_argument("--force", action="store_true", help="replace a non-empty folder not made by the demo")
    parser.set_defaults(run=run)


def prepare_output(out: Path, force: bool) -> None:
    """Empty ``out`` if it is the demo's own earlier output (or ``force``); refuse any other non-empty folder."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists() and not force:
            raise FileExistsError(f"{out} is not empty and was not written by radiobio demo; choose another --out "
                                  f"or pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by radiobio demo; the next demo run replaces this folder\n")


def run(args: argparse.Namespace) -> int:
    """Build the cohort, extract features, print where everything is."""
    import pandas as pd

    from radiobio.features.extraction import extract_features
    from radiobio.features.store import write_table
    from radiobio.synthetic import multi_organ_phantom, write_cohort

    out = Path(args.out).resolve()
    try:
        prepare_output(out, args.force)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    organs = {"liver": 1, "spleen": 2, "kidney_right": 3, "kidney_left": 4, "spine": 5}
    print(f"building {args.n_cases} synthetic multi-organ CT phantoms in {out / 'cohort'}")
    write_cohort([multi_organ_phantom(seed=i) for i in range(args.n_cases)], out / "cohort")
    features = extract_features(out / "cohort" / "cohort.csv", params=DEMO_PARAMS, labels=organs, jobs=args.jobs,
                                out=out / "features.parquet")
    write_table(features, out / "features.csv", features.attrs["provenance"])
    with pd.option_context("display.width", 200, "display.max_columns", 8):
        print(features[["case_id", "label_name", "original_shape_MeshVolume", "original_firstorder_Mean",
                        "original_glcm_Contrast", "log-sigma-2-0-mm-3D_glcm_Contrast"]].head(10))
    failed = int((features["error"] != "").sum())
    print(f"\n{len(features)} rows ({features['case_id'].nunique()} cases x {len(organs)} organs), {failed} failed")
    print(f"feature table: {out / 'features.parquet'} (and {out / 'features.csv'})")
    return 1 if failed else 0
