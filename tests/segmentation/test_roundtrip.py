"""train → segment → evaluate on sphere phantoms, from the API and from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio.cli import main
from radiobio.segmentation import evaluate, load_bundle, segment
from radiobio.segmentation.metrics import summarize

from .helpers import sphere_cases


def test_train_writes_a_complete_bundle(tiny_bundle):
    files = {p.name for p in tiny_bundle.iterdir()}
    assert {"model.keras", "model_card.json", "MODEL_CARD.md", "training_log.csv"} <= files
    assert not [name for name in files if name.startswith(".")], "temporary files left behind"
    card = json.loads((tiny_bundle / "model_card.json").read_text())
    for key in ("labels", "target_spacing", "intensity_normalisation", "patch_size", "architecture", "backend",
                "training_data", "validation_metrics", "versions"):
        assert key in card
    assert card["labels"] == {"1": "sphere"}
    assert card["backend"] == "tensorflow"
    assert card["training_data"]["n_validation"] == 2 and card["training_data"]["n_train"] == 6
    assert card["validation_metrics"]["per_label"]["1"]["dice_mean"] > 0.8
    log = pd.read_csv(tiny_bundle / "training_log.csv")
    assert {"epoch", "loss", "val_loss", "val_dice"} <= set(log.columns)
    assert "sphere" in (tiny_bundle / "MODEL_CARD.md").read_text()


def test_segment_and_evaluate_new_cases(tiny_bundle, tmp_path):
    from radiobio.synthetic import write_cohort

    cohort = write_cohort(sphere_cases(3, seed=7), tmp_path / "new")
    cohort["sex"] = ["F", "M", "F"]  # clinical columns pass through
    result = segment(cohort.rename(columns={"mask": "mask_truth"}), model=tiny_bundle, out_dir=tmp_path / "masks",
                     mask_column="mask_pred", progress=False)
    assert list(result["sex"]) == ["F", "M", "F"]
    assert (result["error"] == "").all()
    for _, row in result.iterrows():
        image, mask = sitk.ReadImage(row["image"]), sitk.ReadImage(row["mask_pred"])
        assert mask.GetSize() == image.GetSize()
        assert mask.GetSpacing() == image.GetSpacing() and mask.GetOrigin() == image.GetOrigin()
        assert mask.GetDirection() == image.GetDirection()
    scores = evaluate(result, pred_column="mask_pred", ref_column="mask_truth")
    assert len(scores) == 3 and (scores["error"] == "").all()
    assert scores["dice"].mean() > 0.8
    assert scores["hd95_mm"].max() < 10.0
    assert "dice_mean" in summarize(scores).columns


def test_bundle_reloads_with_safe_mode(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    assert bundle.config.labels == {1: "sphere"}
    assert bundle.config.preprocessing.patch_size == (16, 16, 16)


def test_cli_train_segment_evaluate(sphere_cohort, tmp_path, capsys):
    import yaml

    from .helpers import tiny_config

    config = tiny_config()
    config["training"].update(epochs=1, samples_per_epoch=8)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    manifest = tmp_path / "cohort.csv"
    sphere_cohort.to_csv(manifest, index=False)
    assert main(["train", str(manifest), "-c", str(tmp_path / "config.yaml"), "-o", str(tmp_path / "model"),
                 "-q"]) == 0
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    typed = f"radiobio train {manifest} -c {tmp_path / 'config.yaml'} -o {tmp_path / 'model'} -q"
    assert card["training"]["command"].endswith(typed)  # what main() was given, not the test runner's argv
    assert main(["segment", str(manifest), "-m", str(tmp_path / "model"), "-o", str(tmp_path / "out"),
                 "--mask-column", "mask_pred", "-q"]) == 0
    segmented = pd.read_csv(tmp_path / "out" / "cohort.csv")
    assert segmented["mask_pred"].notna().all()
    assert main(["evaluate", str(tmp_path / "out" / "cohort.csv"), "--pred", "mask_pred", "--ref", "mask",
                 "-o", str(tmp_path / "scores.csv")]) == 0
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == len(sphere_cohort)
    assert np.isfinite(scores["dice"]).all()
    assert "dice_mean" in capsys.readouterr().out


def test_2d_model_segments_slice_by_slice(sphere_cohort, tmp_path):
    from radiobio.segmentation import train

    from .helpers import tiny_config

    config = tiny_config()
    config["model"].update(architecture="unet2d", depth=3)
    config["preprocessing"]["patch_size"] = [24, 24]
    config["training"].update(epochs=6, batch_size=8, samples_per_epoch=64, foreground_fraction=0.7)
    config["training"]["augmentation"]["flip_axes"] = ["x", "y"]
    bundle = train(sphere_cohort, config=config, out_dir=tmp_path / "model2d", progress=False)
    card = json.loads((bundle / "model_card.json").read_text())
    assert card["architecture"]["architecture"] == "unet2d"
    result = segment(sphere_cohort.iloc[:2], model=bundle, out_dir=tmp_path / "masks",
                     mask_column="mask_2d", progress=False)
    assert (result["error"] == "").all()
    scores = evaluate(result, pred_column="mask_2d", ref_column="mask")
    assert scores["dice"].mean() > 0.7


def test_segment_with_an_executor_loads_the_bundle_in_workers(tiny_bundle, sphere_cohort, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        result = segment(sphere_cohort.iloc[:2].drop(columns="mask"), model=tiny_bundle, out_dir=tmp_path / "masks",
                         executor=pool, progress=False)
    assert (result["error"] == "").all()
    assert all(sitk.ReadImage(p).GetSize() == sitk.ReadImage(i).GetSize()
               for p, i in zip(result["mask"], result["image"]))
