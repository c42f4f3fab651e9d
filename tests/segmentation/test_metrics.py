"""Metrics in mm, cross-checked against SimpleITK's overlap and Hausdorff filters; empty-mask conventions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.errors import GeometryError
from radiobio.imaging import write_image
from radiobio.segmentation import evaluate
from radiobio.segmentation.metrics import compare_masks, label_metrics, summarize, surface_distances
from radiobio.synthetic import Ellipsoid, ellipsoid_phantom

SIZE, SPACING = (48, 44, 32), (0.8, 1.0, 2.0)  # anisotropic, so voxel counts and mm differ


def _mask(centre, radii, label=1):
    return ellipsoid_phantom([Ellipsoid(centre, radii, label)], SIZE, SPACING, noise_sd=0).mask


@pytest.fixture
def pair():
    return _mask((20, 22, 30), (9, 7, 12)), _mask((23, 20, 33), (8, 8, 10))


def test_overlap_matches_simpleitk(pair):
    pred, ref = pair
    row = compare_masks(pred, ref)[0]
    itk = sitk.LabelOverlapMeasuresImageFilter()
    itk.Execute(ref, pred)
    assert row["dice"] == pytest.approx(itk.GetDiceCoefficient(), abs=1e-12)
    assert row["iou"] == pytest.approx(itk.GetJaccardCoefficient(), abs=1e-12)
    # ITK's volume similarity is the signed 2(|R|-|P|)/(|R|+|P|); ours is 1 - |V_P - V_R| / (V_P + V_R).
    assert row["volume_similarity"] == pytest.approx(1 - abs(itk.GetVolumeSimilarity()) / 2, abs=1e-12)


def test_surface_distances_match_simpleitk_hausdorff_in_mm(pair):
    pred, ref = pair
    row = compare_masks(pred, ref)[0]
    contour = [sitk.LabelContour(m, fullyConnected=False) for m in (pred, ref)]
    itk = sitk.HausdorffDistanceImageFilter()
    itk.Execute(*contour)
    assert row["hausdorff_mm"] == pytest.approx(itk.GetHausdorffDistance(), abs=1e-9)
    spacing = tuple(reversed(SPACING))
    d_pr, d_rp = surface_distances(sitk.GetArrayFromImage(pred) > 0, sitk.GetArrayFromImage(ref) > 0, spacing)
    # ITK's average Hausdorff distance is the mean of the two directed mean surface distances.
    assert 0.5 * (d_pr.mean() + d_rp.mean()) == pytest.approx(itk.GetAverageHausdorffDistance(), abs=1e-9)
    assert min(d_pr.mean(), d_rp.mean()) <= row["assd_mm"] <= max(d_pr.mean(), d_rp.mean())
    assert 0 < row["hd95_mm"] <= row["hausdorff_mm"]
    # For these convex shapes the region-based Hausdorff distance agrees too.
    itk.Execute(pred, ref)
    assert row["hausdorff_mm"] == pytest.approx(itk.GetHausdorffDistance(), abs=max(SPACING))


def test_identical_masks_and_a_known_shift():
    ref = np.zeros((10, 30, 30), bool)
    ref[3:7, 5:15, 5:15] = True
    shifted = np.roll(ref, 2, axis=2)  # 2 voxels of 0.5 mm = 1 mm along x
    same = label_metrics(ref, ref, (3.0, 0.5, 0.5), 50.0)
    assert same["dice"] == 1 and same["hd95_mm"] == 0 and same["assd_mm"] == 0
    moved = label_metrics(shifted, ref, (3.0, 0.5, 0.5), 50.0)
    assert moved["hausdorff_mm"] == pytest.approx(1.0)
    assert moved["volume_similarity"] == 1.0


def test_empty_masks_have_defined_values():
    empty = np.zeros((5, 5, 5), bool)
    full = empty.copy()
    full[1:4, 1:4, 1:4] = True
    both = label_metrics(empty, empty, (1.0, 1.0, 1.0), 8.66)
    assert (both["dice"], both["iou"], both["hd95_mm"], both["assd_mm"], both["empty"]) == (1, 1, 0, 0, "both")
    missed = label_metrics(empty, full, (1.0, 1.0, 1.0), 8.66)
    assert (missed["dice"], missed["hd95_mm"], missed["assd_mm"], missed["empty"]) == (0, 8.66, 8.66, "pred")
    assert label_metrics(full, empty, (1.0, 1.0, 1.0), 8.66)["empty"] == "ref"


def test_evaluate_cohort_per_case_and_label_with_error_rows(pair, tmp_path):
    pred, ref = pair
    two = _mask((20, 22, 30), (9, 7, 12), label=2)
    multi_pred = sitk.Maximum(pred, two)
    rows = []
    for i, p in enumerate((pred, multi_pred)):
        rows.append({"case_id": f"c{i}", "image": "unused", "pred": str(write_image(p, tmp_path / f"p{i}.nii.gz")),
                     "ref": str(write_image(ref, tmp_path / f"r{i}.nii.gz"))})
    other_grid = sitk.Image(8, 8, 8, sitk.sitkUInt8)
    rows.append({"case_id": "bad", "image": "unused", "pred": str(write_image(other_grid, tmp_path / "b.nii.gz")),
                 "ref": rows[0]["ref"]})
    scores = evaluate(pd.DataFrame(rows), pred_column="pred", ref_column="ref")
    assert list(scores["case_id"]) == ["c0", "c1", "c1", "bad"]
    assert list(scores["label"].iloc[:3]) == [1, 1, 2]
    assert scores.loc[2, "empty"] == "ref" and scores.loc[2, "dice"] == 0
    assert "GeometryError" in scores.loc[3, "error"]
    summary = summarize(scores)
    assert summary.loc[1, "n"] == 2 and summary.loc[2, "n"] == 1
    assert scores["label_name"].iloc[:3].tolist() == ["1", "1", "2"]
    named = evaluate(pd.DataFrame(rows).assign(site="A"), pred_column="pred", ref_column="ref",
                     labels={"liver": 1, "spleen": 2})
    assert named["label_name"].iloc[:2].tolist() == ["liver", "spleen"]
    assert (named["site"] == "A").all()  # clinical columns pass through
    both = pd.concat([scores, named])  # nothing but provenance in attrs: results concatenate
    assert len(both) == len(scores) + len(named)


def test_compare_masks_refuses_different_grids(pair):
    pred, ref = pair
    moved = sitk.Image(pred)
    moved.SetOrigin((5.0, 0.0, 0.0))
    with pytest.raises(GeometryError, match="origin"):
        compare_masks(moved, ref)
