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

from radiobio.atomic import atomic_path
from radiobio.errors import GeometryError, SettingsError
from radiobio.imaging import as_label_map, check_geometry, read_image, read_mask

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
#: Default size of a QC picture: its long side has at least this many pixels (small crops are upscaled) ...
MIN_LONG_SIDE = 512
#: ... and at most this many (large slices are downscaled).
MAX_LONG_SIDE = 1024

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


def check_window(window: Window) -> Window:
    """Return ``window`` if :func:`window_limits` accepts it, else raise :class:`SettingsError` (checked before any
    case is drawn)."""
    window_limits(np.array([0.0, 1.0]), window)
    return window


def check_view(view: str) -> str:
    """Return ``view`` if it is one of :data:`VIEWS`, else raise :class:`SettingsError`."""
    if view not in VIEWS:
        raise SettingsError(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
    return view


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
    check_view(view)
    image, mask = _as_image(image, "image"), _as_mask(mask)
    check_geometry(image, mask, names=("image", "mask"))
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


def check_height(height: int | None) -> int | None:
    """Return ``height`` (picture rows) if it is None or a whole number of at least 8, else raise
    :class:`SettingsError`."""
    if height is None:
        return None
    if isinstance(height, bool) or not isinstance(height, int | np.integer) or height < 8:
        raise SettingsError(f"height must be a whole number of at least 8 pixels, not {height!r}")
    return int(height)


def output_shape(cut: Slice2D, height: int | None = None) -> tuple[int, int]:
    """(rows, columns) of the picture: square millimetre pixels, ``height`` rows. By default the slice at its finest
    spacing, scaled so that its long side has :data:`MIN_LONG_SIDE` (512) to :data:`MAX_LONG_SIDE` (1024) pixels:
    a 35 × 51 voxel crop becomes 351 × 512 pixels, a 512 × 512 CT slice stays 512 × 512."""
    height_mm, width_mm = cut.extent_mm
    height = check_height(height)
    if height is None:
        natural = max(height_mm, width_mm) / min(cut.spacing)  # long side at the finest spacing
        long_side = int(round(min(max(natural, MIN_LONG_SIDE), MAX_LONG_SIDE)))
        if width_mm > height_mm:
            return max(8, int(round(long_side * height_mm / width_mm))), long_side
        height = long_side
    return int(height), max(1, int(round(height * width_mm / height_mm)))


def resample_slice(cut: Slice2D, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resample a slice onto a ``shape`` (rows, columns) grid covering the same extent: the mask by nearest
    neighbour; the image by nearest neighbour too when it is enlarged (each voxel stays a visible square, as a
    reader checks a contour voxel by voxel), linearly when it is reduced. Returns (image, mask) arrays."""
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

    enlarged = new_spacing[0] < old_spacing[0] and new_spacing[1] < old_spacing[1]
    return (resample(cut.image.astype(np.float32), sitk.sitkNearestNeighbor if enlarged else sitk.sitkLinear),
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

    Returns a matplotlib ``Figure``: the picture of :func:`overlay_array` at one figure pixel per picture pixel (its
    axes in mm), above a black band that holds ``title`` (default: the view and slice index) and a legend of
    ``label_names`` ({label: name}) for the labels present, so neither covers the anatomy.
    """
    cut = extract_slice(image, mask, slice, view)
    rgb = render(cut, window, colours, height, thickness, fill)
    present = [int(v) for v in np.unique(cut.mask) if v != 0]
    heading = title if title is not None else slice_title(view, cut.index)
    figure = picture_figure(rgb, cut.extent_mm, heading, legend_entries(present, colours, label_names))
    if path is not None:
        save_figure(figure, path)
    return figure


def slice_title(view: str, index: int | None) -> str:
    """``"axial slice 14"`` (or ``""`` for a 2D image, which has no slice index)."""
    return f"{view} slice {index}" if index is not None else ""


def picture_figure(rgb: np.ndarray, extent_mm: tuple[float, float], title: str = "",
                   legend: Sequence[tuple[str, tuple[int, int, int]]] = (), dpi: int = 100) -> Any:
    """A Figure of the picture at one figure pixel per picture pixel (``dpi``), axes in mm, with the title and the
    legend in a black band below it (no band when both are empty)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows, columns = rgb.shape[:2]
    font = max(7.0, min(12.0, columns / 45))
    line = font * 1.7 * dpi / 72.0  # pixels per text line
    font_px = font * dpi / 72.0
    entry = max((2.8 + 0.62 * len(name)) * font_px for name, _ in legend) if legend else 1.0  # patch + text
    per_row = max(1, int((columns - 8) // entry))
    legend_rows = math.ceil(len(legend) / per_row) if legend else 0
    band = int(math.ceil(line * ((1 if title else 0) + legend_rows) + (6 if title or legend else 0)))
    total = rows + band
    figure = Figure(figsize=(columns / dpi, total / dpi), dpi=dpi, facecolor="black")
    ax = figure.add_axes((0.0, band / total, 1.0, rows / total))
    height_mm, width_mm = extent_mm
    ax.imshow(rgb, extent=(0.0, width_mm, height_mm, 0.0), interpolation="nearest", aspect="equal")
    ax.set_axis_off()
    if title:
        figure.text(4 / columns, 1 - (rows + 3) / total, title, ha="left", va="top", color="white",
                    fontsize=font)
    if legend:
        handles = [Patch(facecolor=np.array(c) / 255.0, edgecolor="none", label=name) for name, c in legend]
        top = (band - (line if title else 0) - 3) / total
        figure.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, top), ncol=per_row, fontsize=font,
                      frameon=False, labelcolor="white", borderaxespad=0.2, handlelength=1.2, columnspacing=1.0,
                      handletextpad=0.4, borderpad=0.2)
    return figure


def save_figure(figure: Any, path: str | os.PathLike) -> Path:
    """Save a Figure as PNG as it is (no tight bounding box, so the picture keeps its size and aspect), atomically;
    returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=figure.dpi, format="png", facecolor=figure.get_facecolor())
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
        return as_label_map(source)
    return read_mask(source)


def montage(tiles: Mapping[str, np.ndarray], path: str | os.PathLike | None = None, columns: int = 4,
            tile_height: int = 256, captions: bool = True, dpi: int = 100) -> Any:
    """A grid of QC pictures ({caption: RGB array}), ``columns`` per row, each scaled to ``tile_height`` pixels
    keeping its aspect, side by side at its own width (no padding bars), with its caption above when ``captions``;
    saved when ``path``. Returns a matplotlib Figure."""
    from matplotlib.figure import Figure

    if not tiles:
        raise SettingsError("montage needs at least one picture")
    if tile_height < 8:
        raise SettingsError(f"tile_height must be at least 8 pixels, not {tile_height}")
    columns = max(1, min(columns, len(tiles)))
    gap, caption = 6, (18 if captions else 0)
    items = list(tiles.items())
    widths = [max(1, int(round(tile_height * tile.shape[1] / tile.shape[0]))) for _, tile in items]
    rows = [list(range(i, min(i + columns, len(items)))) for i in range(0, len(items), columns)]
    total_w = max(sum(widths[i] for i in row) + gap * (len(row) + 1) for row in rows)
    cell_h = tile_height + caption + gap
    total_h = len(rows) * cell_h + gap
    figure = Figure(figsize=(total_w / dpi, total_h / dpi), dpi=dpi, facecolor="#202020")
    for r, row in enumerate(rows):
        left = gap
        for i in row:
            name, tile = items[i]
            bottom = total_h - (r + 1) * cell_h
            ax = figure.add_axes((left / total_w, bottom / total_h, widths[i] / total_w, tile_height / total_h))
            ax.imshow(tile, interpolation="antialiased", aspect="auto")
            ax.set_axis_off()
            if captions:
                ax.set_title(name, color="white", fontsize=9, pad=3)
            left += widths[i] + gap
    if path is not None:
        save_figure(figure, path)
    return figure
