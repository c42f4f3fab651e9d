"""QC overlays: mask contours on an image slice, in physical proportions and a proper intensity window.

Contours are drawn on the pixel grid of the output picture (the mask resampled to it with nearest neighbour), so
every coloured pixel lies on the boundary of its label; one colour per label (label 1 red, 2 yellow, 3 cyan ... by
default, as in the classic L3 figure: parietal muscles red, psoas yellow). The picture's pixels are square in
millimetres, so its aspect ratio is the slice's physical one whatever the voxel spacing. CT uses window presets
(soft tissue W400/L40 shows −160…240 HU); MR uses percentiles of the slice.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radiobio.errors import GeometryError, MaskError, SettingsError
from radiobio.imaging import check_geometry, read_image, read_mask

#: CT window presets, (width, level) in HU.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "soft_tissue": (400.0, 40.0), "abdomen": (350.0, 50.0), "liver": (150.0, 30.0), "mediastinum": (350.0, 50.0),
    "lung": (1500.0, -600.0), "bone": (1800.0, 400.0), "brain": (80.0, 40.0)}
#: Percentiles of the slice's foreground mapped to black and white for MR and other non-CT images.
MR_PERCENTILES = (0.5, 99.5)
#: Contour colour of label 1, 2, 3, ...; labels beyond the list cycle through it.
DEFAULT_COLOURS = ("#ff0000", "#ffff00", "#00ffff", "#00ff00", "#ff00ff", "#ff8000", "#3c8cff", "#ffffff",
                   "#b4ff00", "#ff6fb4")
#: Colours of the L3 tissue map (:data:`radiobio.synthetic.l3.L3_LABELS`): muscle red, SAT cyan, VAT yellow, IMAT green.
L3_COLOURS = {1: "#ff0000", 2: "#00ffff", 3: "#ffff00", 4: "#00ff00"}
#: Names of the views and the physical (LPS) axis each one looks along.
VIEWS = {"axial": 2, "coronal": 1, "sagittal": 0}

ImageSource = sitk.Image | str | os.PathLike
Window = str | tuple[float, float]


@dataclass
class Slice2D:
    """One display-ready slice: rows top to bottom, columns left to right, with row and column spacing (mm).

    Axial slices are shown in radiological convention (patient's left on the right, anterior at the top); coronal
    and sagittal ones with superior at the top.
    """

    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float]  # (row spacing, column spacing) in mm
    index: int | None  # slice index in the stored image (None for a 2D image)

    @property
    def extent_mm(self) -> tuple[float, float]:
        """Physical (height, width) of the slice in mm."""
        return self.image.shape[0] * self.spacing[0], self.image.shape[1] * self.spacing[1]


def window_limits(values: np.ndarray, window: Window = "auto") -> tuple[float, float]:
    """Intensities shown as black and white: ``(level − width/2, level + width/2)``.

    ``window``: a CT preset of :data:`CT_WINDOWS` (``"soft_tissue"`` = W400/L40 → −160…240 HU), a
    ``(width, level)`` pair in image units, ``"percentile"`` (the :data:`MR_PERCENTILES` of the pixels above the
    image's minimum, i.e. without the background), or ``"auto"``: soft tissue when the image looks like CT (values
    down to air, ≤ −500 HU), else percentile.
    """
    if isinstance(window, str):
        name = window.lower()
        if name == "auto":
            name = "soft_tissue" if values.size and float(np.min(values)) <= -500 else "percentile"
        if name == "percentile":
            finite = values[np.isfinite(values)]
            foreground = finite[finite > finite.min()] if finite.size else finite
            sample = foreground if foreground.size else finite
            if not sample.size:
                return 0.0, 1.0
            low, high = (float(v) for v in np.percentile(sample, MR_PERCENTILES))
            return (low, high) if high > low else (low, low + 1.0)
        if name not in CT_WINDOWS:
            raise SettingsError(f"unknown window {window!r}; use one of {sorted(CT_WINDOWS)}, 'percentile', 'auto' "
                                f"or a (width, level) pair")
        width, level = CT_WINDOWS[name]
    else:
        try:
            width, level = (float(v) for v in window)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"window must be a preset name or (width, level), not {window!r}") from exc
        if not width > 0:
            raise SettingsError(f"window width must be positive, not {width}")
    return level - width / 2.0, level + width / 2.0


def apply_window(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map intensities linearly from ``low``…``high`` to 0…1, clipping outside (grey level as a float array)."""
    scaled = (np.asarray(values, dtype=np.float64) - low) / (high - low)
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0)


def extract_slice(image: ImageSource, mask: ImageSource, slice: int | None = None,
                  view: str = "axial") -> Slice2D:
    """Cut the same slice from an image and its mask (same grid, checked), ready to display.

    ``slice`` is an index of the stored image along the axis closest to the view's normal (for an axial scan
    stored as usual: numpy axis 0, like the ``l3_slice`` column of :func:`radiobio.biomarkers.sarcopenia`);
    ``None`` picks the slice with the most labelled voxels (the middle one when the mask is empty). ``view`` is
    ``"axial"``, ``"coronal"`` or ``"sagittal"``; 2D images have a single view.
    """
    image, mask = _as_image(image, "image"), _as_mask(mask)
    check_geometry(image, mask, names=("image", "mask"))
    if view not in VIEWS:
        raise SettingsError(f"view must be one of {sorted(VIEWS)}, not {view!r}")
    pixels = sitk.GetArrayFromImage(image).astype(np.float64)
    labels = sitk.GetArrayFromImage(mask)
    spacing = image.GetSpacing()
    if image.GetDimension() == 2:
        return _orient_2d(pixels, labels, image.GetDirection(), (spacing[1], spacing[0]))
    if image.GetDimension() != 3:
        raise GeometryError(f"overlays need a 2D or 3D image, not {image.GetDimension()}D")
    return _cut_3d(pixels, labels, np.array(image.GetDirection()).reshape(3, 3), spacing, slice, view)


def _cut_3d(pixels: np.ndarray, labels: np.ndarray, direction: np.ndarray, spacing: tuple[float, ...],
            index: int | None, view: str) -> Slice2D:
    # Hand-written rather than sitk.DICOMOrient: the slice index must keep its meaning in the stored image.
    physical_of_axis = [int(np.argmax(np.abs(direction[:, a]))) for a in range(3)]  # ITK index axis -> LPS axis
    if len(set(physical_of_axis)) != 3:
        raise GeometryError(f"image direction {direction.ravel().tolist()} is too oblique to cut {view} slices")
    normal = physical_of_axis.index(VIEWS[view])
    numpy_axis = 2 - normal
    if index is None:
        counts = np.count_nonzero(labels, axis=tuple(a for a in range(3) if a != numpy_axis))
        index = int(np.argmax(counts)) if counts.any() else labels.shape[numpy_axis] // 2
    if not 0 <= index < labels.shape[numpy_axis]:
        raise SettingsError(f"slice {index} is outside the image: the {view} axis has {labels.shape[numpy_axis]} "
                            f"slices (0..{labels.shape[numpy_axis] - 1})")
    image2d, mask2d = np.take(pixels, index, axis=numpy_axis), np.take(labels, index, axis=numpy_axis)
    kept = [a for a in (2, 1, 0) if a != normal]  # ITK axes of the 2D array, in numpy order (rows, columns)
    # display: axial rows = +y (posterior down), columns = +x (left on the right); coronal / sagittal rows = -z
    row_physical = 1 if view == "axial" else 2
    if physical_of_axis[kept[0]] != row_physical:
        image2d, mask2d, kept = image2d.T, mask2d.T, kept[::-1]
    row_sign = np.sign(direction[physical_of_axis[kept[0]], kept[0]]) * (1 if view == "axial" else -1)
    column_sign = np.sign(direction[physical_of_axis[kept[1]], kept[1]])
    if row_sign < 0:
        image2d, mask2d = image2d[::-1], mask2d[::-1]
    if column_sign < 0:
        image2d, mask2d = image2d[:, ::-1], mask2d[:, ::-1]
    return Slice2D(np.ascontiguousarray(image2d), np.ascontiguousarray(mask2d),
                   (float(spacing[kept[0]]), float(spacing[kept[1]])), index)


def _orient_2d(pixels: np.ndarray, labels: np.ndarray, direction: tuple[float, ...],
               spacing: tuple[float, float]) -> Slice2D:
    matrix = np.array(direction).reshape(2, 2)
    if abs(matrix[0, 0]) < abs(matrix[1, 0]):  # columns run along y: swap to rows
        pixels, labels, spacing, matrix = pixels.T, labels.T, spacing[::-1], matrix[:, ::-1]
    if matrix[1, 1] < 0:
        pixels, labels = pixels[::-1], labels[::-1]
    if matrix[0, 0] < 0:
        pixels, labels = pixels[:, ::-1], labels[:, ::-1]
    return Slice2D(np.ascontiguousarray(pixels), np.ascontiguousarray(labels), (float(spacing[0]), float(spacing[1])),
                   None)


def output_shape(cut: Slice2D, height: int | None = None) -> tuple[int, int]:
    """(rows, columns) of the picture: square millimetre pixels, ``height`` rows (default: the slice at its finest
    spacing, at least 256 and at most 1024 rows)."""
    height_mm, width_mm = cut.extent_mm
    if height is None:
        natural = height_mm / min(cut.spacing)
        height = int(round(min(max(natural, 256), 1024)))
    if height < 8:
        raise SettingsError(f"height must be at least 8 pixels, not {height}")
    return int(height), max(1, int(round(height * width_mm / height_mm)))


def resample_slice(cut: Slice2D, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resample a slice onto a ``shape`` (rows, columns) grid covering the same extent: the image linearly, the mask
    by nearest neighbour. Returns (image, mask) arrays."""
    rows, columns = shape
    height_mm, width_mm = cut.extent_mm
    new_spacing = (width_mm / columns, height_mm / rows)  # ITK order: x (columns), y (rows)
    old_spacing = (cut.spacing[1], cut.spacing[0])
    origin = tuple(n / 2.0 - o / 2.0 for n, o in zip(new_spacing, old_spacing))  # pixel corners coincide

    def resample(array: np.ndarray, interpolator: int) -> np.ndarray:
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(old_spacing)
        out = sitk.Resample(image, [columns, rows], sitk.Transform(), interpolator, origin, new_spacing,
                            (1.0, 0.0, 0.0, 1.0), 0, image.GetPixelID())
        return sitk.GetArrayFromImage(out)

    return (resample(cut.image.astype(np.float32), sitk.sitkLinear),
            resample(cut.mask.astype(np.uint32), sitk.sitkNearestNeighbor))


def label_colours(labels: Sequence[int], colours: Mapping[int, Any] | None = None) -> dict[int, tuple[int, int, int]]:
    """RGB (0…255) of each label: ``colours[label]`` (any matplotlib colour) or :data:`DEFAULT_COLOURS`."""
    from matplotlib.colors import to_rgb

    chosen = dict(colours or {})
    out = {}
    for label in labels:
        colour = chosen.get(int(label), DEFAULT_COLOURS[(int(label) - 1) % len(DEFAULT_COLOURS)])
        try:
            out[int(label)] = tuple(int(round(255 * c)) for c in to_rgb(colour))
        except ValueError as exc:
            raise SettingsError(f"colour of label {label}: {colour!r} is not a matplotlib colour") from exc
    return out


def boundary(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Pixels of a binary 2D mask within ``thickness`` pixels of its edge (mask minus its erosion by a cross);
    pixels on the picture's border are not drawn as edges."""
    if not mask.any():
        return np.zeros_like(mask, dtype=bool)
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    eroded = sitk.BinaryErode(image, [thickness, thickness], sitk.sitkCross, 0, 1, True)
    return mask & ~sitk.GetArrayFromImage(eroded).astype(bool)


def overlay_array(image: ImageSource, mask: ImageSource, slice: int | None = None,
                  view: str = "axial", window: Window = "auto", colours: Mapping[int, Any] | None = None,
                  height: int | None = None, thickness: int | None = None, fill: float = 0.0) -> np.ndarray:
    """The QC picture as an RGB array (rows × columns × 3, uint8): windowed grey image, one contour colour per label.

    See :func:`extract_slice` for ``slice`` and ``view``, :func:`window_limits` for ``window``,
    :func:`label_colours` for ``colours`` and :func:`output_shape` for ``height`` (pixels; width follows the
    physical aspect ratio). ``thickness``: contour width in pixels (default: 1 per 512 rows). ``fill``: opacity
    (0…1) of a tint inside each label.
    """
    cut = extract_slice(image, mask, slice, view)
    return render(cut, window, colours, height, thickness, fill)


def render(cut: Slice2D, window: Window = "auto", colours: Mapping[int, Any] | None = None,
           height: int | None = None, thickness: int | None = None, fill: float = 0.0) -> np.ndarray:
    """Render a :class:`Slice2D` as an RGB uint8 array (see :func:`overlay_array`)."""
    if not 0.0 <= fill <= 1.0:
        raise SettingsError(f"fill is an opacity between 0 and 1, not {fill}")
    shape = output_shape(cut, height)
    pixels, labels = resample_slice(cut, shape)
    low, high = window_limits(cut.image, window)
    grey = apply_window(pixels, low, high)
    rgb = np.repeat((grey * 255.0)[..., None], 3, axis=2)
    width = thickness if thickness is not None else max(1, int(round(shape[0] / 512)))
    present = [int(v) for v in np.unique(labels) if v != 0]
    palette = label_colours(present, colours)
    for label in present:
        inside = labels == label
        colour = np.array(palette[label], dtype=np.float64)
        if fill > 0:
            rgb[inside] = (1 - fill) * rgb[inside] + fill * colour
        rgb[boundary(inside, width)] = colour
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def overlay(image: ImageSource, mask: ImageSource, slice: int | None = None,
            view: str = "axial", window: Window = "auto", colours: Mapping[int, Any] | None = None,
            label_names: Mapping[int, str] | None = None, title: str | None = None,
            path: str | os.PathLike | None = None, height: int | None = None, thickness: int | None = None,
            fill: float = 0.0) -> Any:
    """QC figure of a mask on its image: contours per label, windowed, physical aspect ratio; saved when ``path``.

    Returns a matplotlib ``Figure`` exactly ``height`` × width pixels at its dpi (the picture of
    :func:`overlay_array` filling the canvas, extent in mm), with ``title`` (default: the slice index) in the
    top-left corner and a legend of ``label_names`` ({label: name}) for the labels present.
    """
    cut = extract_slice(image, mask, slice, view)
    rgb = render(cut, window, colours, height, thickness, fill)
    present = [int(v) for v in np.unique(cut.mask) if v != 0]
    heading = title if title is not None else (f"{view} slice {cut.index}" if cut.index is not None else "")
    figure = picture_figure(rgb, cut.extent_mm, heading, legend_entries(present, colours, label_names))
    if path is not None:
        save_figure(figure, path)
    return figure


def picture_figure(rgb: np.ndarray, extent_mm: tuple[float, float], title: str = "",
                   legend: Sequence[tuple[str, tuple[int, int, int]]] = (), dpi: int = 100) -> Any:
    """A Figure whose canvas is exactly the picture (one figure pixel per picture pixel at ``dpi``), axes in mm."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows, columns = rgb.shape[:2]
    figure = Figure(figsize=(columns / dpi, rows / dpi), dpi=dpi)
    ax = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    height_mm, width_mm = extent_mm
    ax.imshow(rgb, extent=(0.0, width_mm, height_mm, 0.0), interpolation="nearest", aspect="equal")
    ax.set_axis_off()
    font = max(6.0, min(12.0, rows / 45))
    if title:
        ax.text(0.01, 0.99, title, transform=ax.transAxes, ha="left", va="top", color="white", fontsize=font,
                bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none", "pad": 2})
    if legend:
        handles = [Patch(facecolor=np.array(c) / 255.0, edgecolor="none", label=name) for name, c in legend]
        ax.legend(handles=handles, loc="lower right", fontsize=font * 0.85, framealpha=0.6, facecolor="black",
                  labelcolor="white", edgecolor="none")
    return figure


def save_figure(figure: Any, path: str | os.PathLike) -> Path:
    """Save a Figure as it is (no tight bounding box, so the picture keeps its size and aspect); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=figure.dpi)
    return path


def legend_entries(present: Sequence[int], colours: Mapping[int, Any] | None,
                   label_names: Mapping[int, str] | None) -> list[tuple[str, tuple[int, int, int]]]:
    """(name, RGB) legend entries of the labels present: ``label_names[label]`` or ``label N``."""
    palette = label_colours(present, colours)
    names = {int(k): str(v) for k, v in (label_names or {}).items()}
    return [(names.get(label, f"label {label}"), palette[label]) for label in present]


def _as_image(source: ImageSource, name: str) -> sitk.Image:
    if isinstance(source, sitk.Image):
        return source
    return read_image(source)


def _as_mask(source: ImageSource) -> sitk.Image:
    if isinstance(source, sitk.Image):
        if source.GetNumberOfComponentsPerPixel() != 1:
            raise MaskError("the mask has several components per pixel; a label map has one")
        if source.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
            values = sitk.GetArrayViewFromImage(source)
            if not np.array_equal(values, np.round(values)):
                raise MaskError("the mask holds non-integer values (probabilities?); threshold it into a label map")
            return sitk.Cast(source, sitk.sitkUInt32)
        return source
    return read_mask(source)


def montage(tiles: Mapping[str, np.ndarray], path: str | os.PathLike | None = None, columns: int = 4,
            tile_height: int = 256, dpi: int = 100) -> Any:
    """A grid of QC pictures ({caption: RGB array}), each scaled to ``tile_height`` pixels keeping its aspect, with
    its caption above; saved when ``path``. Returns a matplotlib Figure."""
    from matplotlib.figure import Figure

    if not tiles:
        raise SettingsError("montage needs at least one picture")
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    widest = max(tile.shape[1] / tile.shape[0] for tile in tiles.values())
    caption = 18
    cell_w, cell_h = tile_height * widest + 8, tile_height + caption + 8
    figure = Figure(figsize=(columns * cell_w / dpi, rows * cell_h / dpi), dpi=dpi, facecolor="black")
    for i, (name, tile) in enumerate(tiles.items()):
        r, c = divmod(i, columns)
        left = (c * cell_w + 4) / (columns * cell_w)
        bottom = 1.0 - ((r + 1) * cell_h - 4) / (rows * cell_h)
        ax = figure.add_axes((left, bottom, (cell_w - 8) / (columns * cell_w), tile_height / (rows * cell_h)))
        ax.imshow(tile, interpolation="antialiased", aspect="equal")
        ax.set_axis_off()
        ax.set_title(name, color="white", fontsize=9, pad=3)
    if path is not None:
        save_figure(figure, path)
    return figure
