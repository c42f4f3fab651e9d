"""``segment(cohort, model=..., out_dir=...)``: apply a model bundle to every case of a cohort, one mask per case.

3D models run a sliding window with Gaussian weighting (nnU-Net's choice: 50% overlap, sigma = patch / 8); 2D
models run slice by slice in batches. Window predictions are streamed: class scores are accumulated only for the
slab of slices the current windows touch, and each finished slab is reduced to labels at once, so memory grows with
the slab, not with the volume times the number of classes. Masks are written on the input image's grid, atomically.
"""

from __future__ import annotations

import itertools
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio import __version__
from radiobio.atomic import write_text_atomic
from radiobio.batch import Case, case_file_name, load_cases, run_batch
from radiobio.cohort import CohortSource
from radiobio.dicom.export import DICOM_SUFFIXES, check_dicom_kind, write_dicom_mask
from radiobio.errors import DomainWarning, ModelBundleError, RadiobioError, describe
from radiobio.imaging import read_image, read_mask, write_image
from radiobio.segmentation.bundle import ModelBundle, load_bundle, read_bundle
from radiobio.segmentation.config import PostprocessingSettings, SegmentationConfig
from radiobio.segmentation.data import AXIS_INDEX, patch_shape
from radiobio.segmentation.preprocessing import PreparedImage, prepare_image, restore_mask
from radiobio.segmentation.quality import QC_COLUMNS, Quality, cohort_flags, measure_quality, size_unit
from radiobio.tables import is_missing, write_table

#: Rows of the score buffer reduced to labels at once (bounds the temporary argmax array).
FLUSH_ROWS = 8


def gaussian_weights(shape: tuple[int, ...], sigma_scale: float = 0.125) -> np.ndarray:
    """Separable Gaussian importance map over a window (max 1 at the centre, sigma = ``sigma_scale`` × size)."""
    weights = np.ones((), dtype=np.float32)
    for n in shape:
        if n == 1:
            axis = np.ones(1)
        else:
            offsets = np.arange(n) - (n - 1) / 2.0
            axis = np.exp(-0.5 * (offsets / max(n * sigma_scale, 1e-6)) ** 2)
        weights = np.multiply.outer(weights, axis.astype(np.float32))
    return np.maximum(weights, 1e-6).astype(np.float32)


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start indices of windows covering ``size`` voxels with at least ``overlap`` × ``window`` shared."""
    if size <= window:
        return [0]
    step = max(1.0, window * (1.0 - overlap))
    count = int(np.ceil((size - window) / step)) + 1
    return sorted({int(round(s)) for s in np.linspace(0, size - window, count)})


class Predictor:
    """Turns a batch of windows into class probabilities, with optional flip test-time augmentation.

    ``spread=True`` (with at least two flip combinations) appends one channel: the members' disagreement per voxel,
    the mean total-variation distance ``½ Σ_c |p_k − p̄|`` of each member's probabilities from their mean (0: all
    agree, 1: disjoint)."""

    def __init__(self, model, batch_size: int, flip_axes: tuple[int, ...] = (), spread: bool = False):
        from radiobio.segmentation.runtime import TorchGraphRunner, batch_predictor

        self.predict_batch = batch_predictor(model)
        # A fixed batch shape keeps compiled graphs (TensorFlow, JAX) from retracing for the last, shorter batch;
        # the PyTorch runner has no graph to retrace, so it skips the padding windows.
        self.pad_batches = not isinstance(self.predict_batch, TorchGraphRunner)
        self.batch_size = batch_size
        self.flips = [combo for r in range(len(flip_axes) + 1) for combo in itertools.combinations(flip_axes, r)]
        self.spread = spread and len(self.flips) > 1

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        count = len(batch)
        if count < self.batch_size and self.pad_batches:
            batch = np.concatenate([batch, np.repeat(batch[-1:], self.batch_size - count, axis=0)])
        members = []
        for axes in self.flips:
            flipped = np.flip(batch, axes) if axes else batch
            probs = self.predict_batch(np.ascontiguousarray(flipped))
            if isinstance(probs, (list, tuple)):
                probs = probs[0]
            probs = np.asarray(probs, dtype=np.float32)
            members.append((np.flip(probs, axes) if axes else probs)[:count])
        mean = np.mean(members, axis=0) if len(members) > 1 else members[0]
        if not self.spread:
            return mean
        spread = np.mean([0.5 * np.abs(m - mean).sum(axis=-1) for m in members], axis=0)
        return np.concatenate([mean, spread[..., None]], axis=-1)


def predict_labels(model, volume: np.ndarray, config: SegmentationConfig, fill: float | None = None,
                   window: tuple[int, int, int] | None = None, batch_size: int | None = None,
                   foreground: np.ndarray | None = None, maps: bool = False) -> np.ndarray | WindowResult:
    """Label array ``(z, y, x)`` uint8 for a prepared ``(z, y, x, c)`` volume.

    3D models slide ``window`` (default: the bundle's patch size) with the configured overlap and Gaussian
    weights; 2D models predict whole slices (padded to the encoder's size multiple) unless the network has a
    fixed input size, which then becomes the window. ``foreground`` (``(z, y, x)`` bool): the windows are tiled
    over its bounding box, those (2D: slices) without a foreground voxel are skipped, and voxels no window reaches
    are labelled background.
    ``maps=True`` returns a :class:`WindowResult` with the entropy and test-time-augmentation disagreement maps.
    """
    from radiobio.segmentation.architectures import size_multiple

    settings = config.inference
    dims = config.dims
    if window is None:
        window = patch_shape(config)
        fixed = model.inputs[0].shape[1:-1]
        if dims == 2 and any(s is None for s in fixed):
            multiple = size_multiple(config.model)
            window = (1, *[int(np.ceil(s / multiple) * multiple) for s in volume.shape[1:3]])
    flip_axes = tuple(sorted(AXIS_INDEX[a] - (1 if dims == 2 else 0) + 1 for a in settings.tta_flips))
    predictor = Predictor(model, batch_size or settings.batch_size, flip_axes, spread=maps)
    result = slide_windows(predictor, volume, window, settings.overlap, settings.sigma_scale, config.num_classes,
                           predictor.batch_size, dims, fill, foreground, maps=maps, spread=predictor.spread,
                           tile_box=foreground is not None)
    return result if maps else result.labels


@dataclass
class WindowResult:
    """What a sliding window gives: labels, and with ``maps`` the uncertainty maps on the same ``(z, y, x)`` grid.

    ``entropy``: the blended class probabilities' entropy divided by log(number of classes), × 255 as uint8 (0:
    certain, 255: uniform); ``disagreement``: the test-time-augmentation members' disagreement (see
    :class:`Predictor`) × 255 as uint8, None without test-time augmentation. Voxels no window ran are 0 in both."""

    labels: np.ndarray
    entropy: np.ndarray | None = None
    disagreement: np.ndarray | None = None


def sliding_window(predict: Callable[[np.ndarray], np.ndarray], volume: np.ndarray, window: tuple[int, int, int],
                   overlap: float, sigma_scale: float, num_classes: int, batch_size: int, dims: int = 3,
                   fill: float | None = None, foreground: np.ndarray | None = None,
                   tile_box: bool = False) -> np.ndarray:
    """Stream Gaussian-weighted window predictions over ``volume`` and return argmax labels ``(z, y, x)``.

    Windows are visited slab by slab along z; class scores live only in a buffer a few windows deep, and each
    slab no later window reaches is reduced to labels at once. ``predict`` maps ``(b, *window, c)`` (``(b, y, x,
    c)`` for 2D) to probabilities. ``foreground`` (``(z, y, x)`` bool): windows holding none of it are not run,
    and voxels no window reaches are labelled 0; ``tile_box`` first tiles the windows over its bounding box
    (:func:`~radiobio.segmentation.foreground.foreground_window_starts`) instead of the whole volume.
    """
    return slide_windows(predict, volume, window, overlap, sigma_scale, num_classes, batch_size, dims, fill,
                         foreground, tile_box=tile_box).labels


def slide_windows(predict: Callable[[np.ndarray], np.ndarray], volume: np.ndarray, window: tuple[int, int, int],
                  overlap: float, sigma_scale: float, num_classes: int, batch_size: int, dims: int = 3,
                  fill: float | None = None, foreground: np.ndarray | None = None, *, maps: bool = False,
                  spread: bool = False, tile_box: bool = False) -> WindowResult:
    """:func:`sliding_window`, also reducing each finished slab to the uncertainty maps of :class:`WindowResult`
    when ``maps`` is set. ``spread``: ``predict`` appends the members' disagreement as one last channel.
    ``tile_box`` (with ``foreground``): tile the windows afresh over the foreground's bounding box
    (:func:`~radiobio.segmentation.foreground.foreground_window_starts`) before skipping those without foreground;
    False keeps the full grid and only skips its windows without foreground."""
    from radiobio.segmentation.foreground import foreground_window_starts, window_has_foreground

    fill = float(volume.min()) if fill is None else fill
    size = np.array(volume.shape[:3])
    target = np.maximum(size, window)
    before = (target - size) // 2
    if np.any(target > size):
        pad = [(int(b), int(t - s - b)) for b, t, s in zip(before, target, size)] + [(0, 0)]
        volume = np.pad(volume, pad, constant_values=fill)
        if foreground is not None:
            foreground = np.pad(foreground, pad[:3], constant_values=False)
    starts = [window_starts(int(t), int(w), overlap if w > 1 else 0.0) for t, w in zip(target, window)]
    if foreground is not None and tile_box:
        starts = foreground_window_starts(foreground, window, overlap) or starts
    weights = gaussian_weights(window, sigma_scale)[..., None]
    windows = list(itertools.product(*starts))
    crop = tuple(slice(int(b), int(b + s)) for b, s in zip(before, size))
    if foreground is not None:
        windows = [start for start in windows if window_has_foreground(foreground, start, window)]
        if not windows:
            empty = np.zeros(tuple(size), dtype=np.uint8)
            return WindowResult(empty, empty.copy() if maps else None, empty.copy() if maps and spread else None)
    if window[0] > 1:  # 3D: a batch never spans two rows of windows, so the buffer stays one window deep
        batches = [chunk for _, row in itertools.groupby(windows, key=lambda w: w[0])
                   for chunk in _chunks(list(row), batch_size)]
    else:
        batches = list(_chunks(windows, batch_size))
    depth = max(b[-1][0] + window[0] - b[0][0] for b in batches)
    channels = num_classes + (1 if spread else 0)
    scores = np.zeros((depth, target[1], target[2], channels), dtype=np.float32)
    labels = np.zeros(tuple(target), dtype=np.uint8)
    entropy = np.zeros(tuple(target), dtype=np.uint8) if maps else None
    disagreement = np.zeros(tuple(target), dtype=np.uint8) if maps and spread else None
    top = 0  # z index of the buffer's first row

    def flush(until: int) -> None:
        # Reduce finished rows to labels and move the rest of the buffer up, a few rows at a time so neither
        # step allocates a temporary the size of the buffer.
        nonlocal top
        done = until - top
        if done <= 0:
            return
        for row in range(0, min(done, depth), FLUSH_ROWS):  # rows past the buffer no window reached: label 0
            end = min(row + FLUSH_ROWS, done, depth)
            block = scores[row:end]
            labels[top + row:top + end] = np.argmax(block[..., :num_classes], axis=-1)
            if maps:
                _uncertainty_rows(block, num_classes, entropy[top + row:top + end],
                                  None if disagreement is None else disagreement[top + row:top + end])
        for row in range(0, depth - done, done):  # blocks of `done` rows: source and target never overlap
            end = min(row + done, depth - done)
            scores[row:end] = scores[row + done:end + done]
        scores[max(depth - done, 0):] = 0
        top = until

    for batch in batches:
        flush(batch[0][0])
        tiles = np.stack([volume[z:z + window[0], y:y + window[1], x:x + window[2]] for z, y, x in batch])
        probs = predict(tiles[:, 0] if dims == 2 else tiles)
        if dims == 2:
            probs = probs[:, None]
        for (z, y, x), p in zip(batch, probs):
            scores[z - top:z - top + window[0], y:y + window[1], x:x + window[2]] += p * weights
    flush(int(target[0]))
    return WindowResult(labels[crop], None if entropy is None else entropy[crop],
                        None if disagreement is None else disagreement[crop])


def _uncertainty_rows(block: np.ndarray, num_classes: int, entropy: np.ndarray, disagreement: np.ndarray | None):
    """Write the normalised entropy (and the members' disagreement) of blended score rows, × 255 as uint8."""
    weight = block[..., :num_classes].sum(axis=-1)
    covered = weight > 0
    probs = block[..., :num_classes] / np.where(covered, weight, 1.0)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1.0)), 0.0)
    entropy[...] = _as_bytes(-terms.sum(axis=-1) / np.log(max(num_classes, 2)), covered)
    if disagreement is not None:
        disagreement[...] = _as_bytes(block[..., num_classes] / np.where(covered, weight, 1.0), covered)


def _as_bytes(value: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """A map of values in [0, 1] as uint8 (× 255, rounded), 0 where no window ran."""
    return np.where(covered, np.clip(np.rint(value * 255), 0, 255), 0).astype(np.uint8)


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def postprocess(labels: np.ndarray, settings: PostprocessingSettings, label_values: list[int]) -> np.ndarray:
    """Keep each label's largest connected component and/or fill its holes, as the bundle configures."""
    if not (settings.largest_component or settings.fill_holes):
        return labels
    out = labels.copy()
    for value in label_values:
        binary = sitk.GetImageFromArray((labels == value).astype(np.uint8))
        if not sitk.GetArrayViewFromImage(binary).any():
            continue
        if settings.largest_component:
            components = sitk.RelabelComponent(sitk.ConnectedComponent(binary), sortByObjectSize=True)
            binary = sitk.Cast(components == 1, sitk.sitkUInt8)
        if settings.fill_holes:
            binary = sitk.BinaryFillhole(binary, fullyConnected=False, foregroundValue=1)
        keep = sitk.GetArrayViewFromImage(binary).astype(bool)
        out[(labels == value) & ~keep] = 0
        out[keep & (out == 0)] = value
    return out


def segment_image(image: sitk.Image, model: ModelBundle | str | os.PathLike, name: str = "image", *,
                  crop: bool = True) -> sitk.Image:
    """Segment one image with a bundle; the label map (uint8) has the image's size, spacing, origin, direction.
    ``crop``: tile the windows over the input's foreground and skip what lies outside it
    (:mod:`radiobio.segmentation.foreground`); False runs the full sliding window.

    Raises :class:`~radiobio.errors.GeometryError` when the image cannot feed the model (a 2D image for a 3D
    model, a wrong channel count).
    """
    bundle = load_bundle(model)
    return segment_prepared(prepare_image(image, bundle.config, name, crop=crop), bundle)[0]


def segment_with_quality(image: sitk.Image, model: ModelBundle | str | os.PathLike, name: str = "image", *,
                         crop: bool = True, modality: str | None = None) -> tuple[sitk.Image, Quality]:
    """:func:`segment_image`, also returning the mask's :class:`~radiobio.segmentation.quality.Quality` (its
    ``qc_score``, flags and domain findings against the bundle's card; ``modality`` of the image when known)."""
    bundle = load_bundle(model)
    prepared = prepare_image(image, bundle.config, name, crop=crop, foreground=True)
    return segment_prepared(prepared, bundle, quality=True, modality=modality)


def segment_prepared(prepared: PreparedImage, bundle: ModelBundle, *, quality: bool = False,
                     modality: str | None = None) -> tuple[sitk.Image, Quality | None]:
    """Segment an image already prepared for ``bundle``; frees ``prepared.array`` once the network has run.
    Returns the mask and, with ``quality``, its :class:`~radiobio.segmentation.quality.Quality`."""
    config = bundle.config
    result = predict_labels(bundle.model, prepared.array, config,
                            foreground=prepared.foreground if prepared.crop else None, maps=quality)
    raw = result.labels if isinstance(result, WindowResult) else result
    labels = postprocess(raw, config.inference.postprocessing, sorted(config.labels))
    report = measure_quality(result, labels, prepared, config, bundle.card, modality) if quality else None
    prepared.array = prepared.foreground = None  # no longer needed; free them before resampling back
    return sitk.Cast(restore_mask(labels, prepared), sitk.sitkUInt8), report


_WORKER_BUNDLES: dict[str, ModelBundle] = {}
#: Where :func:`segment` puts the masks inside its output folder.
MASKS_DIR = "masks"
#: Where :func:`segment` puts the DICOM-SEG or RTSTRUCT files of ``dicom_out``.
DICOM_DIR = "dicom"


@dataclass(frozen=True)
class SegmentSettings:
    """What every case of one segmentation run shares (the bundle, or its folder in worker processes)."""

    bundle: Any
    masks_dir: str
    image_column: str
    overwrite: bool
    dicom_out: str | None = None
    dicom_dir: str = ""
    crop: bool = True


def segment_case(settings: SegmentSettings, case: Case) -> list[dict[str, Any]]:
    """Segment one case (the measure of :func:`segment`): write its mask and its model record, return the path.

    A mask already there is kept only when its record names the same bundle digest (so a resumed batch never mixes
    masks of two models)."""
    bundle = settings.bundle
    out_path = Path(settings.masks_dir) / f"{case_file_name(case.case_id)}.nii.gz"
    if not isinstance(bundle, ModelBundle):  # in a worker process: load once per process
        key = str(bundle)
        if key not in _WORKER_BUNDLES:
            _WORKER_BUNDLES[key] = load_bundle(key)
        bundle = _WORKER_BUNDLES[key]
    image_path = case.path(settings.image_column, "image")
    record = _read_record(out_path)
    if not settings.overwrite and out_path.is_file() and record.get("digest") == bundle.digest:
        quality = Quality.from_json(record["quality"]) if record.get("quality") else None
        row: dict[str, Any] = {"mask": str(out_path), "reused": True}
        mask = read_mask(out_path) if settings.dicom_out else None
    else:
        image = read_image(image_path, **case.series_filters())
        modality = image_modality(image) or case.value("modality")
        prepared = prepare_image(image, bundle.config, name=f"case {case.case_id}", model_name=bundle.name,
                                 crop=settings.crop, foreground=True)
        del image  # only the prepared array and the grids are needed from here on (memory on large volumes)
        mask, quality = segment_prepared(prepared, bundle, quality=True, modality=modality)
        write_image(mask, out_path)
        record = {**_mask_record(bundle, case.case_id), "quality": quality.to_json()}
        write_text_atomic(json.dumps(record, indent=2), _record_path(out_path))
        row = {"mask": str(out_path), "reused": False}
    if quality is not None:
        row.update(quality.row())
        row["qc_sizes"] = quality.sizes
    if settings.dicom_out and mask is not None:
        dicom_path = Path(settings.dicom_dir) / f"{case_file_name(case.case_id)}{DICOM_SUFFIXES[settings.dicom_out]}"
        names = {int(value): str(name) for value, name in bundle.config.labels.items()}
        write_dicom_mask(settings.dicom_out, mask, image_path, names, dicom_path,
                         algorithm={"name": bundle.name, "version": bundle.digest}, **case.series_filters())
        row["dicom"] = str(dicom_path)
    return [row]


def _check_dicom_sources(table: pd.DataFrame, image_column: str, kind: str) -> None:
    """Mark (in ``error``) every case whose image is not a DICOM series a ``kind`` file can reference."""
    from radiobio.dicom.source import read_source_series

    what = "a DICOM-SEG" if kind == "seg" else "an RTSTRUCT"
    for i, row in table.iterrows():
        if row["error"] or is_missing(row.get(image_column)):
            continue
        filters = {c: None if is_missing(row.get(c)) else str(row.get(c))
                   for c in ("series_uid", "modality", "series_description")}
        try:
            read_source_series(row[image_column], **filters).require_uids(what)
        except RadiobioError as exc:
            table.at[i, "error"] = f"{describe(exc)} (dicom_out={kind!r} needs a DICOM series as the image)"


def mask_model(mask_path: str | os.PathLike) -> str | None:
    """The digest of the bundle that made the mask at ``mask_path`` (from its ``.model.json`` record), or None."""
    digest = _read_record(Path(mask_path)).get("digest")
    return None if digest is None else str(digest)


def _read_record(mask_path: Path) -> dict[str, Any]:
    try:
        record = json.loads(_record_path(mask_path).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def image_modality(image: sitk.Image) -> str | None:
    """The DICOM Modality (0008,0060) an image read from DICOM carries in its metadata, else None."""
    key = "0008|0060"
    if image.HasMetaDataKey(key):
        value = image.GetMetaData(key).strip()
        return value or None
    return None


def _record_path(mask_path: Path) -> Path:
    return mask_path.with_name(mask_path.name.removesuffix(".nii.gz") + ".model.json")


def _mask_record(bundle: ModelBundle, case_id: str) -> dict[str, Any]:
    return {"case_id": case_id, "model": bundle.name, "digest": bundle.digest,
            "labels": {str(k): v for k, v in bundle.config.labels.items()}, "intended_use": bundle.intended_use}


def segment(cohort: CohortSource, *, model: ModelBundle | str | os.PathLike, out_dir: str | os.PathLike,
            mask_column: str = "mask", image_column: str = "image", jobs: int | None = None, executor: Any = None,
            progress: bool = False, overwrite: bool = False, dicom_out: str | None = None,
            crop: bool = True) -> pd.DataFrame:
    """Segment every case of ``cohort`` with a model bundle; return the cohort with ``mask_column`` filled.

    ``out_dir`` becomes a results folder: ``masks/<case>.nii.gz`` (each on its image's own grid, written
    atomically, with a ``<case>.model.json`` record of the bundle that made it), ``cohort.csv`` (the returned table;
    paths relative to ``out_dir``; provenance names the model) and ``models/<bundle>/`` (the bundle's card, for the
    report). A mask already there is kept when the same bundle made it (an interrupted batch resumes); masks of
    another bundle raise :class:`~radiobio.errors.ModelBundleError` before any case runs, unless
    ``overwrite=True``. ``jobs``: ``None`` or 1 in this process (the network already uses every core), N worker
    processes that each load the bundle, or a Dask ``executor``. A failing case gets no mask and an ``error`` text
    (a case that failed upstream keeps its error); a missing or invalid bundle raises
    :class:`~radiobio.errors.ModelBundleError` before any case runs. The returned table's
    ``attrs["provenance"]`` and the run's ``segment_summary`` give the model and how many masks were reused.

    ``dicom_out="seg"`` or ``"rtstruct"`` also writes each mask as a DICOM-SEG or RTSTRUCT referencing the case's
    DICOM series (``dicom/<case>.seg.dcm``, a ``dicom`` column), for review in a viewer or planning system: it keeps
    the source's patient and study identity (what PACS needs) and names the model as the algorithm. Each case's
    image is checked to be a DICOM series with SOP, series, study and frame-of-reference UIDs before any case runs;
    a case that is not gets an error row.

    Each mask gets a quality score (:mod:`radiobio.segmentation.quality`): ``qc_score`` (0–1, higher = more likely
    to need review; calibrated on the bundle's validation cases when its card holds the statistics), ``qc_flags``,
    ``qc_out_of_domain``, the signals ``qc_<signal>`` and ``qc_note``. Inputs outside the model's domain raise a
    :class:`~radiobio.errors.DomainWarning` naming them.

    ``crop=True`` keeps inference to each input's foreground (the body of a CT, the non-zero region of an MR;
    :mod:`radiobio.segmentation.foreground`): the windows are tiled over its bounding box, those (2D: slices)
    without foreground are skipped, and voxels outside the box are background; ``crop=False`` runs the full
    sliding window over the whole image.
    """
    dicom_kind = check_dicom_kind(dicom_out)
    bundle = read_bundle(model)  # fails fast on a bad name or card, before Keras loads
    table = load_cases(cohort, stage="segment", required=(image_column,))
    if dicom_kind is not None:
        _check_dicom_sources(table, image_column, dicom_kind)
    out = Path(out_dir)
    masks = out / MASKS_DIR
    if not overwrite:
        _refuse_foreign_masks(table, masks, bundle)
    masks.mkdir(parents=True, exist_ok=True)
    in_process = executor is None and (jobs is None or jobs == 1)
    payload = load_bundle(bundle) if in_process else str(bundle.path.resolve())
    settings = SegmentSettings(payload, str(masks.resolve()), image_column, overwrite, dicom_kind,
                               str((out / DICOM_DIR).resolve()), crop)
    rows = {r["case_id"]: r for r in run_batch(table, segment_case, settings, stage="segment", jobs=jobs,
                                                executor=executor, progress=progress)}
    result = table.drop(columns=["error"])
    result[mask_column] = [rows[c].get("mask") for c in result["case_id"]]
    if dicom_kind is not None:
        result["dicom"] = [rows[c].get("dicom") for c in result["case_id"]]
    result["error"] = [rows[c]["error"] for c in result["case_id"]]
    _add_quality(result, rows, bundle)
    reused = sum(bool(r.get("reused")) for r in rows.values() if not r["error"])
    result.attrs["cohort_base_dir"] = table.attrs.get("cohort_base_dir")
    result.attrs["provenance"] = {"stage": "segment", "mask_column": mask_column, "reused_masks": reused,
                                  "dicom_out": dicom_kind, "crop_to_foreground": crop,
                                  "model": {"name": bundle.name, "digest": bundle.digest,
                                            "labels": {str(k): v for k, v in bundle.config.labels.items()},
                                            "intended_use": bundle.intended_use}, "radiobio": __version__}
    write_table(result, out / "cohort.csv")
    _copy_card(bundle, out / "models" / bundle.name)
    return result


def _add_quality(result: pd.DataFrame, rows: dict[str, dict[str, Any]], bundle: ModelBundle) -> None:
    """Add the quality columns, with the cohort's own size flags, and warn about inputs out of the model's domain."""
    names = {int(k): str(v) for k, v in bundle.config.labels.items()}
    sizes = {c: r["qc_sizes"] for c, r in rows.items() if not r["error"] and r.get("qc_sizes")}
    extra = cohort_flags(sizes, names, size_unit(bundle.config.dims))
    for column in QC_COLUMNS:
        values = [rows[c].get(column) for c in result["case_id"]]
        if column == "qc_flags":
            values = ["; ".join([v] + extra[c] if v else extra[c]) if c in extra else (v or "")
                      for c, v in zip(result["case_id"], values)]
        elif column == "qc_out_of_domain":
            values = [bool(v) for v in values]
        elif column == "qc_note":
            values = [v or "" for v in values]
        else:
            values = [np.nan if v is None else float(v) for v in values]
        result[column] = values
    outside = result.loc[result["qc_out_of_domain"], ["case_id", "qc_flags"]]
    if len(outside):
        listed = "; ".join(f"{c}: " + ", ".join(f.removeprefix("out of domain: ") for f in flags.split("; ")
                                                 if f.startswith("out of domain: "))
                           for c, flags in outside.head(5).itertuples(index=False))
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        warnings.warn(f"{len(outside)} case(s) out of {bundle.name}'s domain (review their masks whatever their "
                      f"qc_score): {listed}{more}", DomainWarning, stacklevel=3)


def _refuse_foreign_masks(table: pd.DataFrame, masks: Path, bundle: ModelBundle) -> None:
    foreign: dict[str, int] = {}
    for case_id in table["case_id"]:
        path = masks / f"{case_file_name(case_id)}.nii.gz"
        if path.is_file():
            digest = mask_model(path)
            if digest != bundle.digest:
                foreign[digest or "unknown"] = foreign.get(digest or "unknown", 0) + 1
    if foreign:
        found = ", ".join(f"{n} by {_model_name(masks, d)}" for d, n in foreign.items())
        raise ModelBundleError(f"{masks} already holds masks of these cases made by another model ({found}); "
                               f"segmenting with {bundle.name} ({bundle.digest}) would mix two models: give another "
                               f"output folder, or overwrite=True (CLI --overwrite) to replace them")


def _model_name(masks: Path, digest: str) -> str:
    for record in masks.glob("*.model.json"):
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if data.get("digest") == digest:
            return f"{data.get('model')} ({digest})"
    return "an unrecorded model" if digest == "unknown" else digest


def _copy_card(bundle: ModelBundle, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model_card.json", "MODEL_CARD.md"):
        source = bundle.path / name
        if source.is_file():
            write_text_atomic(source.read_text(encoding="utf-8"), folder / name)
