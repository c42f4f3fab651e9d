"""Nothing is lost: a batch SIGKILLed mid-run resumes where it stopped, with no lost and no duplicate rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from radiobio import extract_features
from radiobio.synthetic import Ellipsoid, ellipsoid_phantom, write_cohort

PARAMS = {"imageType": {"Original": {}, "LoG": {"sigma": [1.0, 2.0]}},
          "featureClass": {name: None for name in ("shape", "firstorder", "glcm", "glrlm", "glszm")},
          "setting": {"binWidth": 10}}

SCRIPT = """
import sys, json
from radiobio import extract_features
extract_features(sys.argv[1], params=json.loads(sys.argv[2]), out=sys.argv[3], jobs=1, progress=False)
"""


def test_sigkill_then_resume(tmp_path: Path) -> None:
    import json

    phantoms = [ellipsoid_phantom([Ellipsoid((30, 30, 30), (14, 11, 12), 1, 100),
                                   Ellipsoid((28, 36, 44), (6, 6, 6), 2, 300)],
                                  size=(64, 64, 48), spacing=(1.0, 1.0, 1.25), texture_sd=20, seed=i)
                for i in range(12)]
    write_cohort(phantoms, tmp_path / "cohort")
    manifest = tmp_path / "cohort" / "cohort.csv"
    out = tmp_path / "features.parquet"
    parts = Path(f"{out}.parts")

    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(manifest), json.dumps(PARAMS), str(out)])
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if parts.is_dir() and len(list(parts.glob("*.arrow"))) >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the batch finished before it could be killed; make the cases slower"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = len(list(parts.glob("*.arrow")))
    assert 3 <= finished_before < 12
    assert not out.exists()

    resumed = extract_features(manifest, params=PARAMS, out=out, jobs=1, progress=False)
    assert resumed.attrs["provenance"]["resumed_cases"] == finished_before
    assert len(resumed) == 24
    assert not resumed.duplicated(["case_id", "label"]).any()
    assert (resumed["error"] == "").all()

    clean = extract_features(manifest, params=PARAMS, jobs=1, progress=False)
    features = [c for c in clean.columns if c.startswith(("original_", "log-"))]
    pd.testing.assert_frame_equal(resumed[["case_id", "label"] + features], clean[["case_id", "label"] + features])

    again = extract_features(manifest, params=PARAMS, out=out, jobs=1, progress=False)
    assert again.attrs["provenance"]["resumed_cases"] == 12
    changed = dict(PARAMS, setting={"binWidth": 20})
    recomputed = extract_features(manifest, params=changed, out=out, jobs=1, progress=False)
    assert recomputed.attrs["provenance"]["resumed_cases"] == 0
