"""The stress test with the shipped hippocampus bundle on real MRI crops: the rows, the masks on disk, the clean
baseline against an independent segment + compare_masks, failing cases as rows, and arguments refused before any
case runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.cli import main
from radiobio.errors import CohortError, ModelBundleError, SettingsError
from radiobio.segmentation.bundle import load_bundle
from radiobio.segmentation.inference import segment_image
from radiobio.segmentation.metrics import compare_masks
from radiobio.segmentation.quality import SIGNALS
from radiobio.segmentation.stress import mean_dice, stress_test
from radiobio.tables import read_table

from .helpers import HIPPOCAMPUS_BUNDLE, REPO

CASES = ["hippocampus_023", "hippocampus_026"]


@pytest.fixture(scope="module")
def bundle():
    if not (HIPPOCAMPUS_BUNDLE / "model.keras").is_file():
        pytest.skip("models/hippocampus-3d/model.keras not trained yet")
    return load_bundle(HIPPOCAMPUS_BUNDLE)


def cohort_of(data, cases=CASES) -> pd.DataFrame:
    return pd.DataFrame({"case_id": cases,
                         "image": [str(data / "images" / f"{c}.nii.gz") for c in cases],
                         "mask": [str(data / "labels" / f"{c}.nii.gz") for c in cases]})


def test_stress_test_rows_masks_and_baseline(bundle, hippocampus_data, tmp_path):
    cohort = cohort_of(hippocampus_data)
    # a third case whose reference mask is on another grid: it fails alone, as one row
    bad = sitk.ReadImage(cohort.at[0, "mask"])[:, :, :-3]
    sitk.WriteImage(bad, str(tmp_path / "cropped.nii.gz"))
    cohort.loc[2] = ["cropped", cohort.at[0, "image"], str(tmp_path / "cropped.nii.gz")]
    out = tmp_path / "stress"
    table = stress_test(bundle, cohort, perturbations=["blur", "gaussian_noise"], severities=(0, 1),
                        mask_column="mask", out_dir=out, seed=0)

    assert list(table.columns) == ["perturbation", "severity", "case_id", "label", "label_name", "dice", "hd95_mm",
                                   "qc_score", "qc_flags", "qc_out_of_domain", *[f"qc_{n}" for n in SIGNALS],
                                   "mask", "note", "error"]
    ok = table[table["error"] == ""]
    assert len(ok) == 2 * 2 * 3  # 2 cases × 2 labels × (baseline + 2 perturbations at severity 1)
    assert set(zip(ok["perturbation"], ok["severity"])) == {("none", 0.0), ("blur", 1.0), ("gaussian_noise", 1.0)}
    assert set(ok["label_name"]) == {"anterior", "posterior"}
    assert ok["qc_score"].between(0, 1).all()
    # blur at severity 1 wrecks the masks (Dice ~0.1 in docs/segmentation.md): their score is above every clean one
    by_run = ok.groupby(["perturbation", "case_id"])["qc_score"].first()
    assert by_run["blur"].min() > by_run["none"].max()
    failed = table[table["error"] != ""]
    assert list(failed["case_id"]) == ["cropped"] and "GeometryError" in failed["error"].iloc[0]

    for case_id, image_path, mask_path in cohort.head(2).itertuples(index=False):
        # the baseline, computed independently: segment_image on the clean image, compare_masks against the reference
        reference = sitk.ReadImage(mask_path, sitk.sitkUInt8)
        predicted = segment_image(sitk.ReadImage(image_path), bundle)
        expected = {row["label"]: row for row in compare_masks(predicted, reference, [1, 2])}
        rows = ok[(ok["case_id"] == case_id) & (ok["perturbation"] == "none")].set_index("label")
        for label in (1, 2):
            assert rows.at[label, "dice"] == pytest.approx(expected[label]["dice"], abs=1e-12)
            assert rows.at[label, "hd95_mm"] == pytest.approx(expected[label]["hd95_mm"], abs=1e-9)
        assert rows["dice"].min() > 0.8
        # every row can be recomputed from its mask on disk
        for row in ok[ok["case_id"] == case_id].itertuples():
            path = out / "masks" / row.perturbation / f"{row.severity:g}" / f"{case_id}.nii.gz"
            assert path.is_file() and str(path) == row.mask
            again = compare_masks(sitk.ReadImage(str(path)), reference, [int(row.label)])[0]
            assert again["dice"] == pytest.approx(row.dice, abs=1e-12)

    means = mean_dice(table)
    assert list(means.index) == ["blur", "gaussian_noise"] and list(means.columns) == [0.0, 1.0]
    assert means.at["blur", 1.0] < means.at["blur", 0.0] - 0.3  # 3 mm of blur ruins a 1 mm hippocampus model
    assert means.at["gaussian_noise", 0.0] == pytest.approx(ok.loc[ok["perturbation"] == "none", "dice"].mean())

    written = read_table(out / "stress_test.csv")
    assert written.attrs["provenance"]["stage"] == "stress_test"
    assert written.attrs["provenance"]["model"]["digest"] == bundle.digest
    assert len(written) == len(table) and (out / "stress_test.png").stat().st_size > 10_000
    assert not (out / "masks" / "blur" / "0").exists()  # severity 0 is the baseline, once per case


def test_bad_arguments_fail_before_any_case(hippocampus_data, tmp_path):
    cohort = cohort_of(hippocampus_data)
    out = tmp_path / "never"
    with pytest.raises(SettingsError, match="unknown perturbation.*'blurr'.*gaussian_noise, rician_noise"):
        stress_test(HIPPOCAMPUS_BUNDLE, cohort, perturbations="blurr,contrast", out_dir=out)
    with pytest.raises(SettingsError, match="severity 1.5 is outside"):
        stress_test(HIPPOCAMPUS_BUNDLE, cohort, severities=(0, 1.5), out_dir=out)
    with pytest.raises(SettingsError, match="metal_streaks applies to CT only"):
        stress_test(HIPPOCAMPUS_BUNDLE, cohort, perturbations=["metal_streaks"], out_dir=out)
    with pytest.raises(CohortError, match="'reference'"):
        stress_test(HIPPOCAMPUS_BUNDLE, cohort, mask_column="reference", out_dir=out)
    with pytest.raises(ModelBundleError, match="not a model bundle"):
        stress_test(object(), cohort, out_dir=out)
    with pytest.raises(ModelBundleError, match="model card missing"):
        stress_test(tmp_path, cohort, out_dir=out)
    with pytest.raises(SettingsError, match="2D .slice. model.*3D volumes"):
        stress_test(REPO / "models" / "l3-muscle-demo", cohort, out_dir=out)
    assert not out.exists()


def test_cli_errors_and_exit_codes(hippocampus_data, tmp_path, capsys):
    cohort = cohort_of(hippocampus_data)
    cohort.to_csv(tmp_path / "cohort.csv", index=False)
    code = main(["stress-test", str(tmp_path / "cohort.csv"), "-m", "hippocampus-3d", "--ref", "mask", "-o",
                 str(tmp_path / "out"), "--perturbations", "blurr"])
    assert code == 2
    assert "radiobio stress-test: SettingsError: unknown perturbation(s) 'blurr'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_runs_one_case(bundle, hippocampus_data, tmp_path, capsys):
    cohort_of(hippocampus_data, CASES[:1]).to_csv(tmp_path / "cohort.csv", index=False)
    code = main(["stress-test", str(tmp_path / "cohort.csv"), "-m", "hippocampus-3d", "--ref", "mask", "-o",
                 str(tmp_path / "out"), "--perturbations", "intensity_scale,blur", "--severities", "0,1", "-q"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "intensity_scale" in printed and "stress-test: 1 cases ran, 0 failed" in printed
    # 3 masks, the blurred one below Dice 0.8 and scored above the two others: AUC 1
    assert "qc_score finds the 1 of 3 masks with mean Dice < 0.8: AUC 1.000" in printed
    table = read_table(tmp_path / "out" / "stress_test.csv")
    dice = table.pivot_table(index="perturbation", columns="label", values="dice")
    # the model z-scores its input: doubling and shifting the intensities leaves its masks almost unchanged
    assert np.allclose(dice.loc["intensity_scale"], dice.loc["none"], atol=0.02)
