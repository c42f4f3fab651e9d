"""QC of a results folder: the measured sarcopenia slice with every tissue, label names from the model that made the
masks, options checked before any case is drawn, collision-free picture names, and picture geometry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from radiobio.batch import case_file_name
from radiobio.cli import main
from radiobio.errors import CohortError, ReportError, SettingsError
from radiobio.report import L3_COLOURS, montage, overlay_array, write_qc, write_results_qc
from radiobio.report.overlays import extract_slice, output_shape
from radiobio.tables import read_table, write_table

MEASURED, CROWDED, SLICES = 3, 1, 5
RED, CYAN, YELLOW, GREEN = (255, 0, 0), (0, 255, 255), (255, 255, 0), (0, 255, 0)


def colour_count(rgb: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(rgb[..., :3] == np.array(colour, dtype=np.uint8), axis=-1).sum())


def picture(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def write_volume(array: np.ndarray, like: sitk.Image, path) -> str:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(like.GetSpacing())
    image.SetOrigin(like.GetOrigin())
    sitk.WriteImage(image, str(path))
    return str(path)


@pytest.fixture(scope="module")
def sarcopenia_results(tmp_path_factory: pytest.TempPathFactory):
    """Two cases of 5-slice volumes: slice 3 holds an L3 phantom (the measured slice, given in a slice column), slice
    1 a larger blob of 'muscle' that is not measured (the slice with the most muscle voxels). Tissues in one binary
    mask each. The results folder holds only the sarcopenia table, so the cohort comes from its provenance."""
    from radiobio.biomarkers import sarcopenia
    from radiobio.synthetic.l3 import L3_LABELS, l3_phantom

    root = tmp_path_factory.mktemp("sarco")
    rows, truths = [], {}
    for i in range(2):
        phantom = l3_phantom(seed=11 + i, size=128)
        hu = sitk.GetArrayFromImage(phantom.image)[0]
        labels = sitk.GetArrayFromImage(phantom.mask)[0]
        image = np.full((SLICES, *hu.shape), -1000, dtype=np.int16)
        image[MEASURED] = hu
        image[CROWDED] = np.where(labels > 0, 40, -1000)
        full = np.zeros(image.shape, dtype=np.uint8)
        full[MEASURED] = labels
        case = f"case {i}"  # a space: its picture name needs the hash
        row = {"case_id": case, "image": write_volume(image, phantom.image, root / f"img{i}.nii.gz"),
               "sex": "M", "height_m": 1.75, "weight_kg": 70.0, "measured": MEASURED}
        for tissue, value in L3_LABELS.items():
            binary = (full == value).astype(np.uint8)
            if tissue == "muscle":
                binary[CROWDED] = labels > 0
            row[f"mask_{tissue}"] = write_volume(binary, phantom.image, root / f"{tissue}{i}.nii.gz")
        truths[case] = (write_volume(image, phantom.image, root / f"truth_img{i}.nii.gz"),
                        write_volume(full, phantom.image, root / f"truth{i}.nii.gz"))
        rows.append(row)
    write_table(pd.DataFrame(rows), root / "cohort.csv")
    body = sarcopenia(root / "cohort.csv", muscle_column="mask_muscle", slice_column="measured", carry=False)
    assert (body["error"] == "").all() and (body["slice_index"] == MEASURED).all()
    results = root / "results"
    write_table(body, results / "body composition.parquet")  # any name: found by its provenance
    return results, truths


def test_qc_draws_the_measured_slice_with_every_tissue_of_the_run(sarcopenia_results) -> None:
    results, truths = sarcopenia_results
    qc = write_results_qc(results, height=256)
    assert (qc["error"] == "").all(), qc["error"].tolist()
    assert qc["slice_index"].tolist() == [MEASURED, MEASURED]  # not the crowded slice 1
    provenance = read_table(results / "qc" / "qc.csv").attrs["provenance"]
    assert provenance["layers"] == {"muscle": ["mask_muscle", None], "sat": ["mask_sat", None],
                                    "vat": ["mask_vat", None], "imat": ["mask_imat", None]}
    assert provenance["label_names"] == {"1": "muscle", "2": "SAT", "3": "VAT", "4": "IMAT"}
    for case_id, png in zip(qc["case_id"], qc["png"]):
        drawn = picture(results / "qc" / png)
        # the composed tissue masks give the same picture as the phantom's own tissue map with the L3 colours
        expected = overlay_array(*truths[case_id], slice=MEASURED, colours=L3_COLOURS, height=256)
        assert np.array_equal(drawn[: expected.shape[0]], expected)
        for colour in (RED, CYAN, YELLOW, GREEN):
            assert colour_count(drawn[: expected.shape[0]], colour) > 20
        assert drawn.shape[0] > expected.shape[0]  # legend band below the anatomy


def test_cli_qc_of_a_sarcopenia_folder_with_a_chosen_mask_still_uses_the_measured_slice(sarcopenia_results,
                                                                                      tmp_path) -> None:
    results, _ = sarcopenia_results
    assert main(["report", str(results), "--qc", "--mask-column", "mask_muscle", "-q", "-o",
                 str(tmp_path / "r.html")]) == 0
    qc = read_table(results / "qc" / "qc.csv")
    assert qc["slice_index"].astype(int).tolist() == [MEASURED, MEASURED]
    assert qc.attrs["provenance"]["mask_column"] == "mask_muscle"
    page = (tmp_path / "r.html").read_text()
    assert "Body composition" in page or "Sarcopenia" in page


def test_picture_names_are_collision_free() -> None:
    assert case_file_name("P1_a") == "P1_a"
    names = {case_file_name(c) for c in ("P1 a", "P1_a", "P1/a", "P1:a", "..", "", "é")}
    assert len(names) == 7
    assert all("/" not in n and not n.startswith(".") and n for n in names)


def test_two_cases_that_sanitise_alike_get_two_pictures(sarcopenia_results, tmp_path) -> None:
    results, _ = sarcopenia_results
    cohort = read_table(results.parent / "cohort.csv")
    first, second = cohort.iloc[[0]].copy(), cohort.iloc[[1]].copy()
    first["case_id"], second["case_id"] = "P1 a", "P1_a"
    pair = pd.concat([first, second], ignore_index=True)
    pair[["image", "mask_muscle"]] = pair[["image", "mask_muscle"]].map(lambda p: str(results.parent / p))
    qc = write_qc(pair, tmp_path / "qc", mask_column="mask_muscle", height=64)
    assert qc["png"].nunique() == 2 and (qc["error"] == "").all()
    a, b = (picture(tmp_path / "qc" / p) for p in qc["png"])
    assert not np.array_equal(a, b)  # each case its own picture, not the first one reused


def test_label_names_come_from_the_segment_provenance_and_the_cli_overrides_them(tmp_path) -> None:
    labels = np.zeros((6, 40, 40), dtype=np.uint8)
    labels[2:4, 5:15, 5:15] = 1
    labels[2:4, 20:30, 20:30] = 2
    image = sitk.GetImageFromArray(np.where(labels > 0, 300, 0).astype(np.int16))
    mask = sitk.GetImageFromArray(labels)
    results = tmp_path / "results"
    results.mkdir()
    sitk.WriteImage(image, str(results / "img.nii.gz"))
    sitk.WriteImage(mask, str(results / "seg.nii.gz"))
    cohort = pd.DataFrame({"case_id": ["h1"], "image": [str(results / "img.nii.gz")],
                           "mask_hippo": [str(results / "seg.nii.gz")]})
    model = {"name": "hippocampus-3d", "digest": "0" * 64, "labels": {"1": "anterior", "2": "posterior"}}
    provenance = {"stage": "segment", "mask_column": "mask_hippo", "model": model}
    write_table(cohort, results / "cohort.csv", provenance)
    qc = write_results_qc(results)
    assert qc["error"].tolist() == [""]
    assert read_table(results / "qc" / "qc.csv").attrs["provenance"]["label_names"] == {"1": "anterior",
                                                                                        "2": "posterior"}
    assert Image.open(results / "qc" / qc["png"].iloc[0]).size[0] >= 512  # a 40 x 40 crop is enlarged
    assert main(["report", str(results), "--qc", "-q", "--label-names", "head=1,tail=2", "--view", "coronal"]) == 0
    qc = read_table(results / "qc" / "qc.csv")
    assert qc.attrs["provenance"]["label_names"] == {"1": "head", "2": "tail"}
    assert qc.attrs["provenance"]["view"] == "coronal"


@pytest.mark.parametrize("option", [["--window", "foo"], ["--window", "a,b"], ["--view", "oblique"],
                                    ["--height", "big"], ["--height", "4"], ["--label-names", "anterior"]])
def test_bad_qc_options_are_usage_errors_and_leave_qc_csv_untouched(sarcopenia_results, option, capsys) -> None:
    results, _ = sarcopenia_results
    before = (results / "qc" / "qc.csv").read_bytes() if (results / "qc" / "qc.csv").is_file() else None
    assert main(["report", str(results), "--qc", "-q", *option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("radiobio report: SettingsError: ")
    after = (results / "qc" / "qc.csv").read_bytes() if (results / "qc" / "qc.csv").is_file() else None
    assert after == before


def test_qc_without_a_cohort_or_with_unknown_columns_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="--cohort"):
        write_results_qc(tmp_path / "empty")
    assert main(["report", str(tmp_path / "empty"), "--qc"]) == 2
    assert capsys.readouterr().err.startswith("radiobio report: ReportError: ")
    cohort = pd.DataFrame({"case_id": ["a"], "image": ["x.nii.gz"], "mask": ["y.nii.gz"]})
    with pytest.raises(CohortError, match="mask_nope"):
        write_qc(cohort, tmp_path / "qc", mask_column="mask_nope")
    with pytest.raises(SettingsError, match="view"):
        write_qc(cohort, tmp_path / "qc", view="oblique")
    assert not (tmp_path / "qc").exists()  # nothing written before the options are known to be good


def test_default_picture_size_and_nearest_enlargement() -> None:
    rng = np.random.default_rng(3)
    hu = rng.integers(-100, 200, (1, 35, 51)).astype(np.int16)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[0, 10:25, 10:40] = 1
    image, mask = sitk.GetImageFromArray(hu), sitk.GetImageFromArray(labels)
    cut = extract_slice(image, mask)
    assert output_shape(cut) == (351, 512)  # long side 512 px
    rgb = overlay_array(image, mask, window=(300, 50))
    grey = rgb[..., 0][~np.all(rgb == np.array(RED, dtype=np.uint8), axis=-1)]
    assert len(np.unique(grey)) <= 35 * 51  # each voxel one flat block, no interpolated in-between values
    big = sitk.GetImageFromArray(np.zeros((1, 2000, 1000), dtype=np.int16))
    assert output_shape(extract_slice(big, sitk.GetImageFromArray(np.zeros((1, 2000, 1000), np.uint8)))) == \
        (1024, 512)


def test_montage_tiles_share_one_height_without_padding() -> None:
    tall, wide = np.zeros((200, 100, 3), np.uint8), np.full((50, 100, 3), 255, np.uint8)
    figure = montage({"tall": tall, "wide": wide}, columns=2, tile_height=100)
    width, height = figure.canvas.get_width_height()
    assert (width, height) == (50 + 200 + 3 * 6, 100 + 18 + 6 + 6)
    boxes = [ax.get_position().bounds for ax in figure.axes]
    assert [round(b[3] * height) for b in boxes] == [100, 100]
    assert [round(b[2] * width) for b in boxes] == [50, 200]
