"""QC overlays against independent truths: mask boundaries from scipy, analytic ellipses, window arithmetic,
physical extents, radiological orientation; and the QC gallery of a cohort with a failing case."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage

from radiobio.errors import GeometryError, MaskError, SettingsError
from radiobio.report import (
    L3_COLOURS,
    apply_window,
    extract_slice,
    overlay,
    overlay_array,
    window_limits,
)

RED, YELLOW = (255, 0, 0), (255, 255, 0)


def image_pair(hu: np.ndarray, labels: np.ndarray, spacing: tuple[float, ...],
               direction: tuple[float, ...] | None = None) -> tuple[sitk.Image, sitk.Image]:
    image, mask = sitk.GetImageFromArray(hu.astype(np.int16)), sitk.GetImageFromArray(labels.astype(np.uint8))
    for im in (image, mask):
        im.SetSpacing(spacing)
        if direction is not None:
            im.SetDirection(direction)
    return image, mask


def ellipse(shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float],
            spacing: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Pixels whose centres lie inside an ellipse given in mm: (row, column) centre and radii."""
    rows, columns = np.indices(shape, dtype=float)
    y, x = rows * spacing[0], columns * spacing[1]
    return ((y - centre[0]) / radii[0]) ** 2 + ((x - centre[1]) / radii[1]) ** 2 <= 1.0


def colour_mask(rgb: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(rgb == np.array(colour, dtype=np.uint8), axis=-1)


def scipy_boundary(mask: np.ndarray) -> np.ndarray:
    cross = ndimage.generate_binary_structure(2, 1)
    return mask & ~ndimage.binary_erosion(mask, cross, border_value=1)


def test_contour_pixels_are_exactly_the_mask_boundary_per_label() -> None:
    shape = (128, 128)
    outer = ellipse(shape, (60, 64), (40, 50))
    inner = ellipse(shape, (60, 40), (10, 12))
    small = ellipse(shape, (112, 100), (8, 8))
    labels = np.where(small, 2, np.where(outer & ~inner, 1, 0))
    hu = np.where(labels > 0, 40, -1000)
    image, mask = image_pair(hu, labels, (1.0, 1.0))

    rgb = overlay_array(image, mask, height=128)

    assert rgb.shape == (128, 128, 3)
    red, yellow = colour_mask(rgb, RED), colour_mask(rgb, YELLOW)
    assert np.array_equal(red, scipy_boundary(labels == 1))  # outer edge and the hole's edge, nothing else
    assert np.array_equal(yellow, scipy_boundary(labels == 2))
    assert red[60, 64 - 50] and red[60, 40 + 12 + 1] and not red[60, 40 + 12] and not red[60, 64]


def test_anisotropic_spacing_gives_physical_aspect_and_contours_on_the_true_edge(tmp_path) -> None:
    rows, columns, spacing_x, spacing_y = 80, 240, 0.5, 1.0  # 80 mm tall, 120 mm wide
    centre, radii = (40.0, 60.0), (25.0, 45.0)
    labels = ellipse((rows, columns), centre, radii, (spacing_y, spacing_x)).astype(np.uint8)
    image, mask = image_pair(np.where(labels > 0, 50, -100), labels, (spacing_x, spacing_y))

    rgb = overlay_array(image, mask, height=200)
    assert rgb.shape[:2] == (200, 300)  # width / height = 120 mm / 80 mm
    red_rows, red_columns = np.nonzero(colour_mask(rgb, RED))
    pixel_mm = 80.0 / 200
    y, x = (red_rows + 0.5) * pixel_mm, (red_columns + 0.5) * pixel_mm
    # distance to the ellipse edge along the radius, in mm: within one source pixel (1 mm) plus one output pixel
    r = np.hypot((y - centre[0]) / radii[0], (x - centre[1]) / radii[1])
    assert np.all(np.abs(r - 1.0) * min(radii) < 1.0 + pixel_mm)
    assert len(red_rows) > 0.8 * (2 * np.pi * np.sqrt((radii[0] ** 2 + radii[1] ** 2) / 2) / pixel_mm)

    figure = overlay(image, mask, height=200, path=tmp_path / "aniso.png", label_names={1: "lesion"})
    width, total = figure.canvas.get_width_height()
    assert width == 300 and total > 200  # the title and legend sit in a band below the picture
    saved = np.asarray(Image.open(tmp_path / "aniso.png").convert("RGB"))
    assert saved.shape[:2] == (total, 300)
    assert np.array_equal(saved[:200], rgb)  # the picture itself, pixel for pixel, with nothing drawn over it
    ax = figure.axes[0]
    assert ax.get_xlim() == pytest.approx((0, 120)) and sorted(ax.get_ylim()) == pytest.approx([0, 80])


def test_soft_tissue_window_maps_minus_160_to_240_hu_onto_the_grey_range() -> None:
    values = np.array([-1000, -161, -160, 40, 240, 241, 1500], dtype=float)
    assert window_limits(values, "soft_tissue") == (-160.0, 240.0)
    assert window_limits(values, "auto") == (-160.0, 240.0)  # air in the image: CT
    grey = apply_window(values, -160.0, 240.0)
    assert grey == pytest.approx([0, 0, 0, 0.5, 1, 1, 1])
    assert window_limits(values, (1500, -600)) == (-1350.0, 150.0)

    strip = np.repeat(np.array([[-1000, -160, 40, 240, 1000]], dtype=float), 8, axis=0)
    strip = np.repeat(strip, 8, axis=1)
    image, mask = image_pair(strip, np.zeros_like(strip), (1.0, 1.0))
    rgb = overlay_array(image, mask, window="soft_tissue", height=8)
    assert np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2])  # grey
    assert rgb[0, ::8, 0].tolist() == [0, 0, 128, 255, 255]


def test_mr_percentile_window_ignores_the_background() -> None:
    rng = np.random.default_rng(0)
    values = np.zeros((100, 100))
    values[20:80, 20:80] = rng.uniform(100, 1100, (60, 60))
    low, high = window_limits(values, "auto")  # no air: MR, percentiles of the foreground
    assert low == pytest.approx(105, abs=10) and high == pytest.approx(1095, abs=10)
    with pytest.raises(SettingsError, match="unknown window"):
        window_limits(values, "brian")


def test_axial_display_is_radiological_whatever_the_stored_direction() -> None:
    hu = np.full((3, 40, 60), -1000.0)
    labels = np.zeros((3, 40, 60), dtype=np.uint8)
    hu[1, 5:15, 45:55] = 200  # high x index = patient's left (LPS), low y index = anterior
    labels[1, 5:15, 45:55] = 1
    plain = overlay_array(*image_pair(hu, labels, (1.0, 1.0, 2.0)), height=40)
    flipped_direction = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    flipped = overlay_array(*image_pair(hu[:, ::-1, ::-1], labels[:, ::-1, ::-1], (1.0, 1.0, 2.0),
                                        flipped_direction), height=40)
    assert np.array_equal(plain, flipped)
    red_rows, red_columns = np.nonzero(colour_mask(plain, RED))
    assert red_columns.min() >= 45 and red_rows.max() < 15  # left on the right, anterior at the top


def test_coronal_view_has_superior_up_and_slice_thickness_in_its_aspect() -> None:
    hu = np.zeros((20, 30, 40))
    labels = np.zeros((20, 30, 40), dtype=np.uint8)
    labels[15:19, 10:20, 5:15] = 1  # high z = superior
    image, mask = image_pair(hu, labels, (1.0, 1.0, 5.0))
    cut = extract_slice(image, mask, view="coronal")
    assert cut.extent_mm == pytest.approx((100.0, 40.0))
    assert 10 <= cut.index < 20
    rgb = overlay_array(image, mask, view="coronal", height=100)
    assert rgb.shape[:2] == (100, 40)
    rows = np.nonzero(colour_mask(rgb, RED))[0]
    assert rows.max() < 30  # the superior blob is drawn near the top


def test_default_slice_has_the_most_labelled_voxels_and_bad_input_is_named() -> None:
    labels = np.zeros((8, 32, 32), dtype=np.uint8)
    labels[2, 10:12, 10:12] = 1
    labels[5, 5:25, 5:25] = 2
    image, mask = image_pair(np.zeros(labels.shape), labels, (1.0, 1.0, 3.0))
    assert extract_slice(image, mask).index == 5
    assert extract_slice(image, mask, slice=2).index == 2
    with pytest.raises(SettingsError, match="outside the image"):
        extract_slice(image, mask, slice=8)
    other = sitk.Image(mask)
    other.SetSpacing((1.0, 1.0, 2.0))
    with pytest.raises(GeometryError, match="spacing"):
        extract_slice(image, other)
    probabilities = sitk.Cast(mask, sitk.sitkFloat32) * 0.4
    with pytest.raises(MaskError, match="non-integer"):
        extract_slice(image, probabilities)
    with pytest.raises(SettingsError, match="colour"):
        overlay_array(image, mask, colours={2: "not-a-colour"})


def test_l3_phantom_muscle_contour_lies_on_the_muscle_boundary() -> None:
    from radiobio.synthetic.l3 import L3_LABELS, l3_phantom

    phantom = l3_phantom(seed=5, size=256)
    rgb = overlay_array(phantom.image, phantom.mask, colours=L3_COLOURS, height=256)
    labels = sitk.GetArrayFromImage(phantom.mask)[0]
    red = colour_mask(rgb, RED)
    muscle_edge = scipy_boundary(labels == L3_LABELS["muscle"])
    other_edges = np.zeros_like(red)
    for name in ("sat", "vat", "imat"):
        other_edges |= scipy_boundary(labels == L3_LABELS[name])
    assert red.sum() > 500
    assert np.all(muscle_edge[red])  # every red pixel is on the muscle boundary
    assert np.all(other_edges[muscle_edge & ~red])  # muscle edge not red only where another tissue's edge is drawn


def test_qc_gallery_of_a_cohort_draws_every_good_case_and_names_the_failure(results_dir) -> None:
    from radiobio.report.overlays import output_shape
    from radiobio.tables import read_table

    qc = read_table(results_dir / "qc" / "qc.csv")
    cohort = read_table(results_dir / "cohort.csv")
    assert list(qc["case_id"]) == list(cohort["case_id"])
    assert list(qc.columns) == ["case_id", "png", "slice_index", "note", "error"]
    failed = qc[qc["error"] != ""]
    assert list(failed["case_id"]) == ["l3_broken"] and failed["error"].str.startswith("GeometryError").all()
    good = qc[qc["error"] == ""]
    for _, row in good.iterrows():
        case = cohort.set_index("case_id").loc[row["case_id"]]
        image = sitk.ReadImage(str(results_dir / case["image"]))
        width_mm, height_mm = (n * s for n, s in zip(image.GetSize()[:2], image.GetSpacing()[:2]))
        rows, columns = output_shape(extract_slice(image, sitk.ReadImage(str(results_dir / case["mask"]))))
        assert columns / rows == pytest.approx(width_mm / height_mm, rel=0.01) and max(rows, columns) >= 512
        png = np.asarray(Image.open(results_dir / "qc" / row["png"]).convert("RGB"))
        assert png.shape[1] == columns and png.shape[0] > rows
        assert colour_mask(png[:rows], RED).sum() > 100  # muscle contours in the picture, above the legend band
        assert row["slice_index"] == 0
    assert (results_dir / "qc" / "montage.png").is_file()
    assert not (results_dir / "qc" / "l3_broken.png").exists()
