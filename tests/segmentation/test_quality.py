"""Quality scores of predicted masks: the signals against hand-computed values, the sliding window's entropy and
test-time-augmentation maps against a direct computation, the calibration, the domain checks, and segment() with the
shipped hippocampus bundle on real MRI crops (clean, wrecked, out of domain, uncalibrated, resumed)."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.cli import main
from radiobio.errors import DomainWarning, SettingsError
from radiobio.segmentation.inference import Predictor, slide_windows
from radiobio.segmentation.perturbations import PERTURBATIONS
from radiobio.segmentation.preprocessing import Grid
from radiobio.segmentation.quality import (
    QUANTILE_LEVELS,
    SIGNALS,
    cohort_flags,
    domain_findings,
    fit_calibration,
    intensity_distance,
    intensity_quantiles,
    label_statistics,
    qc_auc,
    reference_statistics,
)

from .helpers import HIPPOCAMPUS_BUNDLE

CASES = ["hippocampus_023", "hippocampus_026", "hippocampus_044"]


def test_label_statistics_of_a_phantom_computed_by_hand():
    labels = np.zeros((10, 12, 14), dtype=np.uint8)
    labels[2:5, 3:7, 4:9] = 1  # 3 x 4 x 5 = 60 voxels
    labels[7:9, 9:11, 10:12] = 1  # a second piece: 8 voxels
    labels[0:2, 0:2, 0:2] = 2  # 8 voxels in the corner: on the border
    labels[9, 5:7, 6] = 4  # 2 voxels on the last slice: on the border
    stats = label_statistics(labels, (0.5, 1.0, 2.0), 3, [1, 2, 3, 4])
    assert stats["1"]["size"] == pytest.approx(68 * 1.0 / 1000)  # voxel 0.5 x 1 x 2 mm = 1 mm³
    assert stats["1"]["components"] == 2 and stats["1"]["fragmentation"] == pytest.approx(8 / 68)
    assert stats["1"]["border"] == 0.0 and stats["2"]["border"] == 1.0
    assert stats["3"] == {"size": 0.0, "components": 0, "fragmentation": 0.0, "border": 0.0}
    assert stats["4"]["border"] == 1.0 and stats["4"]["size"] == pytest.approx(2 / 1000)
    # a 2D (one-slice) label map: cm² from the in-plane spacing; the single slice is not a border
    flat = np.zeros((1, 20, 20), dtype=np.uint8)
    flat[0, 5:15, 5:10] = 1
    stats2d = label_statistics(flat, (0.8, 0.8), 2, [1])
    assert stats2d["1"]["size"] == pytest.approx(50 * 0.64 / 100) and stats2d["1"]["border"] == 0.0
    flat[0, 15:20, 5] = 1  # reaching the last row: an in-plane edge
    assert label_statistics(flat, (0.8, 0.8), 2, [1])["1"]["border"] == 1.0


def test_intensity_quantiles_of_a_large_volume_come_from_its_foreground_only():
    # 6 million voxels, half of them foreground with values spread evenly over [0, 1), the rest 100: the
    # subsample (at most 2 million foreground voxels) must see only the foreground, and its percentiles the
    # evenly spread values' (level / 100).
    volume = np.full((60, 200, 500, 1), 100.0, dtype=np.float32)
    foreground = np.zeros(volume.shape[:3], dtype=bool)
    foreground[:, :, :250] = True
    volume[foreground, 0] = np.random.default_rng(0).permutation(foreground.sum()) / foreground.sum()
    quantiles = intensity_quantiles(volume, foreground)
    np.testing.assert_allclose(quantiles, np.array(QUANTILE_LEVELS) / 100.0, atol=0.002)
    assert intensity_quantiles(volume, None)[-1] == 100.0  # no foreground: the whole volume


def test_entropy_map_of_the_sliding_window_is_the_blended_probabilities_entropy():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(12, 16, 16, 1)).astype(np.float32)

    def constant(batch):  # p = (0.7, 0.2, 0.1) everywhere, whatever the window
        probs = np.empty((*batch.shape[:-1], 3), dtype=np.float32)
        probs[...] = (0.7, 0.2, 0.1)
        return probs

    result = slide_windows(constant, volume, (8, 8, 8), 0.5, 0.125, 3, 2, maps=True)
    expected = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)) / math.log(3)
    assert result.disagreement is None
    assert np.all(np.abs(result.entropy.astype(float) - expected * 255) <= 0.5)
    assert np.all(result.labels == 0)


def test_predictor_spread_is_the_members_disagreement():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 8, 1))
    outputs = keras.layers.Conv3D(2, 3, padding="same", activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    batch = np.random.default_rng(2).normal(size=(2, 8, 8, 8, 1)).astype(np.float32)
    predictor = Predictor(model, 2, (3,), spread=True)  # flip along x (array axis 3 of (b, z, y, x, c))
    out = predictor(batch)
    plain = np.asarray(model.predict(batch, verbose=0))
    flipped = np.flip(np.asarray(model.predict(np.ascontiguousarray(np.flip(batch, 3)), verbose=0)), 3)
    mean = (plain + flipped) / 2
    spread = 0.5 * (0.5 * np.abs(plain - mean).sum(-1) + 0.5 * np.abs(flipped - mean).sum(-1))
    assert out.shape == (2, 8, 8, 8, 3)
    np.testing.assert_allclose(out[..., :2], mean, atol=1e-6)
    np.testing.assert_allclose(out[..., 2], spread, atol=1e-6)
    assert out[..., 2].max() > 0.001  # the convolution is not flip-symmetric: the members differ


def test_fit_calibration_follows_the_signal_that_predicts_failure():
    rng = np.random.default_rng(3)
    n = 200
    dice = rng.uniform(0.3, 0.95, n)
    runs = pd.DataFrame({"perturbation": "p", "severity": np.where(np.arange(n) < 40, 0.0, 0.5),
                         "case_id": [f"c{i}" for i in range(n)], "mean_dice": dice,
                         "qc_entropy_border": 1 - dice + rng.normal(0, 0.05, n),
                         "qc_volume_z": rng.normal(0, 1, n), "qc_tta_disagreement": np.nan})
    calibration = fit_calibration(runs)
    assert calibration["signals"] == ["entropy_border", "volume_z"]  # an all-missing signal is left out
    coefficients = dict(zip(calibration["signals"], calibration["coefficients"]))
    assert coefficients["entropy_border"] > 1.0 and abs(coefficients["volume_z"]) < 0.5
    assert calibration["auc_in_sample"] > 0.95 and calibration["n_below"] == int((dice < 0.8).sum())
    with pytest.raises(SettingsError, match="both sides"):
        fit_calibration(runs.assign(mean_dice=0.9))


def test_qc_auc_counts_the_pairs():
    # 2 masks below 0.8 (scores 0.9, 0.4) and 3 above (0.5, 0.2, 0.1): 5 of the 6 pairs ordered -> AUC 5/6
    table = pd.DataFrame({"perturbation": "p", "severity": 1.0, "case_id": list("abcde"),
                          "dice": [0.5, 0.7, 0.9, 0.85, 0.95], "qc_score": [0.9, 0.4, 0.5, 0.2, 0.1],
                          "qc_volume_z": [0.1, 0.2, 0.3, 0.4, 0.5], "error": ""})
    auc = qc_auc(table)
    assert auc["auc_qc_score"] == pytest.approx(5 / 6) and auc["auc_volume_z"] == pytest.approx(0.0)
    assert auc["n_below"] == 2 and auc["n_masks"] == 5
    # qc_score >= 0.5 sends a, c to review: 1 of the 2 masks below 0.8 found, 2 of the 3 above left alone
    assert auc["sensitivity_at_review"] == pytest.approx(0.5) and auc["specificity_at_review"] == pytest.approx(2 / 3)


def test_domain_and_cohort_findings():
    reference = {"modality": "MR", "spacing_mm": {"min": [1, 1, 1], "max": [1, 1, 1]},
                 "field_of_view_mm": {"min": [30, 40, 30], "max": [40, 60, 40]}}
    same = Grid((35, 50, 35), (1.0, 1.0, 1.0), (0, 0, 0), tuple(np.eye(3).ravel()))
    assert domain_findings(same, reference, "MR") == []
    coarse = Grid((12, 17, 12), (3.0, 3.0, 3.0), (0, 0, 0), tuple(np.eye(3).ravel()))
    findings = domain_findings(coarse, reference, "CT")
    assert any("modality CT" in f for f in findings) and any("voxel spacing 3 x 3 x 3" in f for f in findings)
    assert intensity_distance([0, 1], {"mean": [0, 0], "sd": [1, 0.01]}) == pytest.approx(20.0)  # SD floor 0.05
    sizes = {f"c{i}": {"1": 2.0 + 0.01 * i} for i in range(12)} | {"odd": {"1": 5.0}}
    flags = cohort_flags(sizes, {1: "anterior"}, "mL")
    assert list(flags) == ["odd"] and "anterior 5 mL is unusual in this cohort" in flags["odd"][0]
    assert cohort_flags({k: v for k, v in list(sizes.items())[:5]}, {1: "a"}, "mL") == {}  # too few masks


@pytest.fixture(scope="module")
def hippocampus_bundle():
    if not (HIPPOCAMPUS_BUNDLE / "model.keras").is_file():
        pytest.skip("models/hippocampus-3d/model.keras not trained yet")
    from radiobio.segmentation.bundle import load_bundle

    return load_bundle(HIPPOCAMPUS_BUNDLE)


def _cohort(data, tmp_path):
    rows = [{"case_id": c, "image": str(data / "images" / f"{c}.nii.gz"), "mask": str(data / "labels" / f"{c}.nii.gz")}
            for c in CASES]
    image = sitk.ReadImage(rows[0]["image"])
    sitk.WriteImage(PERTURBATIONS["blur"](image, 1.0, 0), str(tmp_path / "blurred.nii.gz"))
    rows.append({"case_id": "blurred", "image": str(tmp_path / "blurred.nii.gz"), "mask": rows[0]["mask"]})
    coarse = sitk.Resample(image, [int(s / 2.5) for s in image.GetSize()], sitk.Transform(), sitk.sitkLinear,
                           image.GetOrigin(), [2.5] * 3, image.GetDirection(), 0.0, sitk.sitkFloat32)
    sitk.WriteImage(coarse, str(tmp_path / "coarse.nii.gz"))
    rows.append({"case_id": "coarse", "image": str(tmp_path / "coarse.nii.gz"), "mask": ""})
    return pd.DataFrame(rows)


def test_segment_scores_flags_and_warns(hippocampus_bundle, hippocampus_data, tmp_path):
    from radiobio.segmentation.inference import QC_COLUMNS, segment

    quality = hippocampus_bundle.card.get("quality") or {}
    assert quality.get("reference") and quality.get("calibration"), "the shipped card carries the quality statistics"
    cohort = _cohort(hippocampus_data, tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = segment(cohort.drop(columns="mask"), model=hippocampus_bundle, out_dir=tmp_path / "out")
    assert set(QC_COLUMNS) <= set(table.columns)
    rows = table.set_index("case_id")
    clean = rows.loc[CASES]
    assert clean["qc_score"].max() < rows.at["blurred", "qc_score"]  # the wrecked mask is reviewed first
    assert not clean["qc_out_of_domain"].any() and (clean["qc_note"] == "").all()
    assert rows.at["coarse", "qc_out_of_domain"] and "voxel spacing 2.5 x 2.5 x 2.5" in rows.at["coarse", "qc_flags"]
    domain = [w for w in caught if issubclass(w.category, DomainWarning)]
    assert len(domain) == 1 and "coarse" in str(domain[0].message) and "hippocampus_023" not in str(domain[0].message)
    # the volume z-score is the predicted volume against the card's training sizes, computed here independently
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / rows.at[CASES[0], "mask"])))
    sizes = {label: float((mask == label).sum()) / 1000 for label in (1, 2)}  # 1 mm voxels: mL
    reference = quality["reference"]["labels"]
    z = max(abs(sizes[k] - reference[str(k)]["size_mean"]) / reference[str(k)]["size_sd"] for k in (1, 2))
    assert rows.at[CASES[0], "qc_volume_z"] == pytest.approx(z, abs=1e-9)
    # a resumed run reuses the masks and their scores
    again = segment(cohort.drop(columns="mask").head(2), model=hippocampus_bundle, out_dir=tmp_path / "out")
    assert again.attrs["provenance"]["reused_masks"] == 2
    np.testing.assert_allclose(again["qc_score"], table["qc_score"].head(2))
    record = json.loads((tmp_path / "out" / "masks" / f"{CASES[0]}.model.json").read_text())
    assert set(record["quality"]["signals"]) == set(SIGNALS)


def test_a_card_without_quality_statistics_scores_uncalibrated(hippocampus_data, tmp_path):
    if not (HIPPOCAMPUS_BUNDLE / "model.keras").is_file():
        pytest.skip("models/hippocampus-3d/model.keras not trained yet")
    from radiobio.segmentation.bundle import read_card, write_card
    from radiobio.segmentation.inference import segment

    old = tmp_path / "old-bundle"
    shutil.copytree(HIPPOCAMPUS_BUNDLE, old)
    card = read_card(old)
    card.pop("quality", None)
    write_card(old, card)
    cohort = _cohort(hippocampus_data, tmp_path).head(1).drop(columns="mask")
    table = segment(cohort, model=old, out_dir=tmp_path / "out")
    assert "uncalibrated" in table.at[0, "qc_note"] and 0 <= table.at[0, "qc_score"] <= 1
    assert math.isnan(table.at[0, "qc_volume_z"]) and not table.at[0, "qc_out_of_domain"]
    assert "No quality statistics" in (old / "MODEL_CARD.md").read_text()


def test_reference_statistics_of_real_masks(hippocampus_data, tmp_path):
    from radiobio.segmentation.bundle import read_bundle

    config = read_bundle(HIPPOCAMPUS_BUNDLE).config
    cohort = _cohort(hippocampus_data, tmp_path).head(3)
    reference = reference_statistics(cohort, config)
    volumes = []
    for path in cohort["mask"]:  # 1 mm crops: prepared grid = original grid, 1 mm³ voxels
        array = sitk.GetArrayFromImage(sitk.ReadImage(path))
        volumes.append([(array == label).sum() / 1000 for label in (1, 2)])
    volumes = np.array(volumes)
    assert reference["n_cases"] == 3 and reference["modality"] == "MR" and reference["size_unit"] == "mL"
    assert reference["labels"]["1"]["size_mean"] == pytest.approx(volumes[:, 0].mean())
    assert reference["labels"]["2"]["size_sd"] == pytest.approx(volumes[:, 1].std())
    assert reference["spacing_mm"]["min"] == pytest.approx([1, 1, 1])
    pieces = [sitk.ConnectedComponentImageFilter().Execute(sitk.ReadImage(path) == 1) for path in cohort["mask"]]
    assert reference["labels"]["1"]["components_max"] == max(int(sitk.GetArrayFromImage(c).max()) for c in pieces)
    assert reference["intensity"]["distance_max"] > 0


def test_calibrate_qc_refuses_bad_arguments(tmp_path, capsys, hippocampus_data):
    if not (HIPPOCAMPUS_BUNDLE / "model.keras").is_file():
        pytest.skip("models/hippocampus-3d/model.keras not trained yet")
    bundle = tmp_path / "b"
    shutil.copytree(HIPPOCAMPUS_BUNDLE, bundle)
    cohort = tmp_path / "c.csv"
    _cohort(hippocampus_data, tmp_path).head(2).to_csv(cohort, index=False)
    assert main(["calibrate-qc", str(cohort), "-m", str(bundle), "--ref", "mask", "-o", str(tmp_path / "o"),
                 "--threshold", "1.5"]) == 2
    assert "threshold 1.5" in capsys.readouterr().err
    assert main(["calibrate-qc", str(cohort), "-m", str(bundle), "--ref", "label", "-o", str(tmp_path / "o")]) == 2
    assert "no column 'label'" in capsys.readouterr().err


def test_segment_cli_prints_the_masks_to_review_first(hippocampus_bundle, hippocampus_data, tmp_path, capsys):
    cohort = _cohort(hippocampus_data, tmp_path).iloc[[0, 3]].drop(columns="mask")  # a clean case and a blurred one
    cohort.to_csv(tmp_path / "cohort.csv", index=False)
    assert main(["segment", str(tmp_path / "cohort.csv"), "-m", str(HIPPOCAMPUS_BUNDLE), "-o", str(tmp_path / "r"),
                 "-q"]) == 0
    out = capsys.readouterr().out
    assert "quality: 1 of 2 mask(s) to review first" in out
    assert "  blurred: qc_score" in out and "hippocampus_023: qc_score" not in out
