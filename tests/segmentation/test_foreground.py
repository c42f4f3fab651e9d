"""Foreground detection (CT body, MR non-zero region) and the cropped, window-skipping sliding window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio.segmentation.config import IntensitySettings, as_config
from radiobio.segmentation.foreground import body_mask, bounding_box, foreground_mask, nonzero_mask
from radiobio.segmentation.inference import Predictor, predict_labels, sliding_window
from radiobio.segmentation.preprocessing import prepare_image, reorient

CT = IntensitySettings(mode="ct", window=(-1000.0, 1000.0))
#: A small 3D U-Net (random weights) on CT windowing: patch 16³, two labels.
SMALL_CT = {"labels": {1: "organ", 2: "lesion"},
            "model": {"architecture": "unet3d", "depth": 2, "base_filters": 4},
            "preprocessing": {"patch_size": [16, 16, 16], "intensity": {"mode": "ct", "window": [-1000, 1000]}},
            "inference": {"batch_size": 1, "overlap": 0.5}}


def _ct_phantom(shape=(20, 48, 56), seed=0) -> np.ndarray:
    """HU volume ``(z, y, x)``: air, an elliptic body (fat rim, soft tissue, a gas pocket, a bright bone), a couch."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    y, x = np.ogrid[:ny, :nx]
    ellipse = ((x - nx * 0.5) / (nx * 0.3)) ** 2 + ((y - ny * 0.42) / (ny * 0.25)) ** 2
    hu = np.full(shape, -1000.0)
    hu[:, ellipse <= 1] = -100.0
    hu[:, ellipse <= 0.7] = 40.0
    hu[:, ellipse <= 0.05] = 700.0
    hu[nz // 3:nz // 2, int(ny * 0.35):int(ny * 0.42), int(nx * 0.35):int(nx * 0.42)] = -1000.0  # bowel gas
    hu[:, int(ny * 0.8):int(ny * 0.84), int(nx * 0.15):int(nx * 0.85)] = 100.0  # the couch, apart from the body
    return (hu + rng.normal(0, 15, shape)).astype(np.float32)


def _small_model(config):
    import keras

    from radiobio.segmentation import build_model

    keras.utils.set_random_seed(0)
    return build_model(config)


def test_body_mask_on_a_real_ct(abdomen_data):
    image = reorient(sitk.ReadImage(str(abdomen_data / "example_ct.nii.gz")), "LPS")  # the model's orientation
    hu = sitk.GetArrayFromImage(image).astype(np.float32)
    config = as_config({"preprocessing": {"intensity": {"mode": "ct", "window": [-1000, 1000]}}})
    body = foreground_mask(prepare_image(image, config).array, config.preprocessing.intensity)
    assert body.shape == hu.shape
    assert 0.5 < body.mean() < 0.9  # the abdomen fills this tight field of view
    outside = ~body
    assert np.mean(hu[outside] < -500) > 0.97  # what is left out is air (and the couch)
    assert np.all(~body[:, :, 0]) or body[:, :, 0].mean() < 0.1  # the image's edge column is air
    # independent truth: every vertebra TotalSegmentator found on this CT lies in the body
    vertebrae = sitk.GetArrayFromImage(reorient(sitk.ReadImage(
        str(abdomen_data / "spine_report" / "test_result" / "totalseg.nii.gz")), "LPS")) > 0
    assert vertebrae.sum() > 10000 and body[vertebrae].mean() > 0.999
    # air inside the body (bowel gas, lung bases) is body, not background
    inner_air = (hu < -500) & body
    assert inner_air.sum() > 100
    # a soft-tissue window clips everything below -160 HU, yet finds nearly the same body
    soft = IntensitySettings(mode="ct", window=(-160.0, 240.0))
    body_soft = body_mask(np.clip((hu[..., None] - 40.0) / 200.0, -1, 1), soft.window)
    dice = 2 * np.sum(body & body_soft) / (body.sum() + body_soft.sum())
    assert dice > 0.97


def test_body_mask_keeps_the_body_and_not_the_couch():
    hu = _ct_phantom()
    body = body_mask(hu[..., None] / 1000.0, (-1000.0, 1000.0))
    nz, ny, nx = hu.shape
    assert body[:, int(ny * 0.82), nx // 2].sum() == 0  # the couch
    assert body[nz // 3:nz // 2, int(ny * 0.35):int(ny * 0.42), int(nx * 0.35):int(nx * 0.42)].all()  # gas pocket
    assert not body[:, 0, :].any() and body[:, int(ny * 0.42), nx // 2].all()
    assert not body_mask(np.full((4, 8, 8, 1), -1.0, np.float32), (-1000.0, 1000.0)).any()  # all air


def test_mr_nonzero_region_after_zscore_normalisation(hippocampus_data):
    files = sorted((hippocampus_data / "images").glob("*.nii.gz"))
    crop = sitk.GetArrayFromImage(sitk.ReadImage(str(files[0]))).astype(np.float32)
    crop = np.maximum(crop, 1.0)  # the real crop has a few zero voxels of its own; keep it non-zero throughout
    padded = np.zeros((crop.shape[0] + 10, crop.shape[1] + 16, crop.shape[2] + 12), np.float32)
    padded[4:4 + crop.shape[0], 6:6 + crop.shape[1], 5:5 + crop.shape[2]] = crop
    image = sitk.GetImageFromArray(padded)
    config = as_config({"preprocessing": {"intensity": {"mode": "zscore"}}})
    mask = foreground_mask(prepare_image(image, config).array, config.preprocessing.intensity)
    truth = padded > 0
    assert mask.sum() > 0.99 * truth.sum() and np.array_equal(mask & ~truth, np.zeros_like(mask))
    assert bounding_box(mask) == (slice(4, 4 + crop.shape[0]), slice(6, 6 + crop.shape[1]),
                                  slice(5, 5 + crop.shape[2]))
    assert not nonzero_mask(np.ones((3, 3, 3, 1), np.float32)).any()


def test_skipped_windows_leave_the_foreground_labels_exactly_as_the_full_run():
    config = as_config(SMALL_CT)
    model = _small_model(config)
    volume = _ct_phantom()[..., None] / 1000.0
    foreground = body_mask(volume, (-1000.0, 1000.0))
    calls = {"full": 0, "skip": 0}
    predictor = Predictor(model, 1)

    def counted(key):
        def predict(batch):
            calls[key] += len(batch)
            return predictor(batch)
        return predict

    args = ((16, 16, 16), 0.5, 0.125, config.num_classes, 1)
    full = sliding_window(counted("full"), volume, *args)
    skipped = sliding_window(counted("skip"), volume, *args, foreground=foreground)
    assert calls["skip"] < calls["full"]  # windows in the air above and below the body were not run
    np.testing.assert_array_equal(skipped[foreground], full[foreground])
    assert len(np.unique(full[foreground])) > 1  # a non-trivial labelling was compared


def test_crop_agrees_with_the_full_run_inside_the_body_and_no_crop_is_the_full_run():
    config = as_config(SMALL_CT)
    model = _small_model(config)
    volume = _ct_phantom(shape=(20, 64, 72))[..., None] / 1000.0
    body = body_mask(volume, (-1000.0, 1000.0))
    reference = sliding_window(Predictor(model, 1), volume, (16, 16, 16), 0.5, 0.125, config.num_classes, 1,
                               fill=float(volume.min()))
    no_crop = predict_labels(model, volume, config, crop=False)
    np.testing.assert_array_equal(no_crop, reference)
    cropped = predict_labels(model, volume, config)
    box = bounding_box(body)
    outside = np.ones(body.shape, bool)
    outside[box] = False
    assert not cropped[outside].any()
    assert not np.array_equal(cropped, no_crop)  # the crop laid out its own window grid


class _LocalModel:
    """A network whose output at a voxel depends only on that voxel: soft tissue (> -200 HU) is label 1, bone
    (> 300 HU) label 2. Any window grid gives it the same labels, so a crop placed one voxel off would show."""

    inputs = ()

    def predict_on_batch(self, batch):
        hu = batch[..., 0] * 1000.0
        tissue, bone = (hu > -200).astype("float32"), (hu > 300).astype("float32")
        return np.stack([1 - tissue, tissue - bone, bone], axis=-1)


def test_the_cropped_labels_land_on_the_full_grid():
    config = as_config(SMALL_CT)
    volume = _ct_phantom(shape=(20, 64, 72))[..., None] / 1000.0
    body = body_mask(volume, (-1000.0, 1000.0))
    full = predict_labels(_LocalModel(), volume, config, window=(16, 16, 16), crop=False)
    cropped = predict_labels(_LocalModel(), volume, config, window=(16, 16, 16))
    np.testing.assert_array_equal(cropped[body], full[body])
    assert set(np.unique(full[body])) == {0, 1, 2}
    assert not cropped[~body].any() and full[~body].sum() > 0  # the couch is labelled only by the full run


def test_no_crop_from_the_cli_equals_the_full_run(tmp_path):
    from radiobio.cli import main
    from radiobio.segmentation.bundle import export_bundle, load_bundle
    from radiobio.segmentation.inference import segment_image

    config = as_config(SMALL_CT)
    bundle_dir = tmp_path / "bundle"
    export_bundle(_small_model(config), config, bundle_dir)
    image = sitk.GetImageFromArray(_ct_phantom(shape=(18, 40, 44)).astype(np.int16))
    image.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    pd.DataFrame({"case_id": ["a"], "image": [str(tmp_path / "ct.nii.gz")]}).to_csv(tmp_path / "cohort.csv",
                                                                                   index=False)
    assert main(["segment", str(tmp_path / "cohort.csv"), "-m", str(bundle_dir), "-o", str(tmp_path / "full"),
                 "--no-crop", "-q"]) == 0
    assert main(["segment", str(tmp_path / "cohort.csv"), "-m", str(bundle_dir), "-o", str(tmp_path / "crop"),
                 "-q"]) == 0
    bundle = load_bundle(bundle_dir)
    full = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "full" / "masks" / "a.nii.gz")))
    cropped = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "crop" / "masks" / "a.nii.gz")))
    np.testing.assert_array_equal(full, sitk.GetArrayFromImage(segment_image(image, bundle, crop=False)))
    np.testing.assert_array_equal(cropped, sitk.GetArrayFromImage(segment_image(image, bundle)))
    assert not np.array_equal(full, cropped)  # the flag changed what ran
