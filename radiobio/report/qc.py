"""QC gallery of a cohort: one overlay PNG per case, a montage of them all and a table saying which case failed.

:func:`write_qc` draws a mask column (a label map, one contour colour per label) or several *layers* composed into
one label map (e.g. the muscle, IMAT, VAT and SAT masks of a sarcopenia run), on a given slice per case or the
slice with the most labelled voxels. :func:`write_results_qc` does the same for a results folder, taking what to
draw from the tables in it: for a sarcopenia table the measured slice and every tissue of that run, otherwise the
mask column and its label names from the segment provenance or the model card.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio.batch import Case, case_file_name, load_cases, run_batch
from radiobio.cohort import CohortSource, is_mask_column, read_cohort
from radiobio.errors import CohortError, MaskError, ReportError, SettingsError
from radiobio.report.overlays import (
    Window,
    check_height,
    check_view,
    check_window,
    extract_slice,
    label_colours,
    legend_entries,
    montage,
    picture_figure,
    render,
    save_figure,
    slice_title,
)
from radiobio.report.results import (
    COHORT,
    MODELS_DIR,
    QC_DIR,
    ResultTable,
    cohort_table,
    read_provenance,
    result_tables,
)
from radiobio.tables import write_table

#: Columns of the QC table written as ``qc.csv``.
QC_COLUMNS = ("case_id", "png", "slice_index", "note", "error")
#: Tissues of a sarcopenia run, in drawing order (later ones are drawn over earlier ones: IMAT inside muscle).
SARCOPENIA_TISSUES = ("muscle", "sat", "vat", "imat")
#: Contour colours of the tissues by name (muscle red, SAT cyan, VAT yellow, IMAT green, as :data:`L3_COLOURS`).
TISSUE_COLOURS = {"muscle": "#ff0000", "sat": "#00ffff", "vat": "#ffff00", "imat": "#00ff00"}
#: Legend names of the tissues.
TISSUE_NAMES = {"muscle": "muscle", "sat": "SAT", "vat": "VAT", "imat": "IMAT"}
#: The montage shows at most this many cases (the first ones, in cohort order).
MONTAGE_MAX = 100

#: Cohort column that carries the slices given as a mapping into the batch.
_SLICE = "_qc_slice_index"
#: A layer of a composed label map: (cohort column, label in it or None for every non-zero voxel).
Layer = tuple[str, int | None]


@dataclass(frozen=True)
class _Settings:
    """What the QC measure needs besides the case (picklable, for worker processes)."""

    out_dir: str
    image_column: str
    plan: tuple[tuple[str, str, int | None, int | None], ...]  # (layer name, column, label, value or None: keep)
    slice_column: str | None
    view: str
    window: Window
    colours: dict[int, Any] | None
    label_names: dict[int, str] | None
    height: int | None
    fill: float


def parse_label_names(text: str | Mapping[Any, Any] | None) -> dict[int, str] | None:
    """``"anterior=1,posterior=2"`` (or a {name: value} / {value: name} mapping) → ``{1: "anterior", 2: "posterior"}``.

    Raises :class:`SettingsError` for a pair that is not ``name=value`` with a positive whole ``value``."""
    if text is None:
        return None
    if isinstance(text, Mapping):
        pairs = [(v, k) if isinstance(k, str) and not k.strip().isdigit() else (k, v) for k, v in text.items()]
    else:
        pairs = []
        for item in (p.strip() for p in str(text).split(",")):
            if not item:
                continue
            name, sep, value = item.rpartition("=")
            if not sep or not name.strip():
                raise SettingsError(f"label names: {item!r} is not name=value (e.g. anterior=1,posterior=2)")
            pairs.append((value, name.strip()))
    names: dict[int, str] = {}
    for value, name in pairs:
        try:
            label = int(str(value).strip())
        except ValueError:
            raise SettingsError(f"label names: {name}={value!r}: the label must be a whole number "
                                f"(e.g. anterior=1,posterior=2)") from None
        if label <= 0:
            raise SettingsError(f"label names: {name}={label}: labels are positive (0 is the background)")
        names[label] = str(name)
    if not names:
        raise SettingsError("label names: none given; use name=value pairs such as anterior=1,posterior=2")
    return names


def check_colours(colours: Mapping[int, Any] | None) -> dict[int, Any] | None:
    """Return ``colours`` as {label: colour}; raise :class:`SettingsError` for a colour matplotlib does not know."""
    if not colours:
        return None
    chosen = {int(k): v for k, v in colours.items()}
    label_colours(list(chosen), chosen)
    return chosen


def write_qc(cohort: CohortSource, out_dir: str | os.PathLike, *, mask_column: str = "mask",
             image_column: str = "image", layers: Mapping[str, Layer] | None = None,
             slice_column: str | None = None, slices: Mapping[str, int | None] | None = None,
             view: str = "axial", window: Window = "auto", colours: Mapping[int, Any] | None = None,
             label_names: Mapping[int, str] | None = None, height: int | None = None, fill: float = 0.0,
             montage_columns: int = 4, tile_height: int = 256, jobs: int | None = None, executor: Any = None,
             progress: bool = False) -> pd.DataFrame:
    """Draw every case's mask on its image into ``out_dir``: ``<case>.png``, ``montage.png`` and ``qc.csv``.

    **What is drawn.** ``mask_column`` (a label map; ``label_names`` {label: name} name its labels in the legend),
    or, when ``layers`` is given, the layers {name: (column, label or None)} composed into one label map: layer
    *i* (in order) becomes label *i* + 1, later layers drawn over earlier ones; ``label`` selects that label of
    the column, ``None`` every non-zero voxel. Layers named ``muscle``, ``sat``, ``vat``, ``imat`` get the tissue
    colours and names (:data:`TISSUE_COLOURS`). A layer whose cell is empty for a case is left out of that case's
    picture, with a ``note``.

    **Slice.** ``slices`` {case_id: index} (e.g. the ``slice_index`` of a sarcopenia table), else the cohort column
    ``slice_column``, else the slice with the most labelled voxels. Indices count along the view's normal axis as
    in :func:`radiobio.report.overlays.extract_slice`.

    Other options as in :func:`radiobio.report.overlays.overlay`; ``height`` is the picture's rows (default: the
    long side 512 to 1024 pixels). ``view``, ``window``, ``height``, ``colours``, ``fill``, ``label_names`` and the
    columns are checked before any case is drawn (:class:`SettingsError` / :class:`CohortError`); nothing is
    written then. ``jobs``/``executor``/``progress`` as everywhere in radiobio. A case that cannot be drawn
    (missing file, grids that differ...) gets an ``error`` and no picture; the others are drawn. File names come
    from :func:`radiobio.batch.case_file_name`. Returns the QC table (``case_id``, ``png`` file name in ``out_dir``,
    ``slice_index``, ``note``, ``error``), also written atomically as ``qc.csv``.
    """
    check_view(view)
    check_window(window)
    check_height(height)
    if not 0.0 <= float(fill) <= 1.0:
        raise SettingsError(f"fill is an opacity between 0 and 1, not {fill}")
    if montage_columns < 1 or tile_height < 8:
        raise SettingsError(f"montage_columns must be at least 1 and tile_height at least 8, not {montage_columns} "
                            f"and {tile_height}")
    names = parse_label_names(label_names) if label_names else None
    chosen = check_colours(colours)
    plan = _layer_plan(mask_column, layers)
    if layers is not None:
        chosen = {**{i + 1: TISSUE_COLOURS[n] for i, (n, *_) in enumerate(plan) if n in TISSUE_COLOURS},
                  **(chosen or {})}
        names = {**{i + 1: TISSUE_NAMES.get(n, n) for i, (n, *_) in enumerate(plan)}, **(names or {})}
    frame = load_cases(cohort, stage="qc", required=[image_column, *(column for _, column, _, _ in plan),
                                                    slice_column])
    if slices is not None:
        given = frame[slice_column] if slice_column else pd.Series([None] * len(frame), index=frame.index)
        measured = frame["case_id"].map(lambda c: slices.get(c))
        frame[_SLICE] = [m if not _empty(m) else g for m, g in zip(measured, given)]
        slice_column = _SLICE
    out_dir = Path(out_dir)
    settings = _Settings(out_dir=str(out_dir), image_column=image_column, plan=tuple(plan),
                         slice_column=slice_column, view=view, window=window, colours=chosen, label_names=names,
                         height=height, fill=float(fill))
    rows = run_batch(frame, _draw_case, settings, stage="qc", jobs=jobs, executor=executor, progress=progress)
    qc = pd.DataFrame.from_records(rows, columns=list(QC_COLUMNS))
    qc["png"] = qc["png"].fillna("")
    qc["slice_index"] = qc["slice_index"].astype("Int64")
    _write_montage(qc, out_dir, montage_columns, tile_height)
    provenance = {"stage": "qc", "view": view, "window": window if isinstance(window, str) else list(window),
                  "mask_column": None if layers is not None else mask_column,
                  "layers": {n: [c, label] for n, c, label, _ in plan} if layers is not None else None,
                  "label_names": {str(k): v for k, v in (names or {}).items()}, "radiobio": _version()}
    write_table(qc, out_dir / "qc.csv", provenance)
    return qc


def _layer_plan(mask_column: str, layers: Mapping[str, Layer] | None) -> list[tuple[str, str, int | None, int | None]]:
    """(name, column, label, value) per layer; a single mask column keeps its labels (value None)."""
    if layers is None:
        if not isinstance(mask_column, str) or not mask_column:
            raise SettingsError(f"mask_column must name one cohort column, not {mask_column!r}; give several "
                                f"columns as layers")
        return [(mask_column, mask_column, None, None)]
    if not layers:
        raise SettingsError("layers is empty; give at least one {name: (column, label)}")
    plan = []
    for i, (name, layer) in enumerate(layers.items()):
        try:
            column, label = layer
        except (TypeError, ValueError):
            raise SettingsError(f"layer {name!r}: {layer!r} is not (column, label or None)") from None
        if label is not None and (isinstance(label, bool) or int(label) != label or label <= 0):
            raise SettingsError(f"layer {name!r}: label {label!r} is not a positive whole number (or None)")
        plan.append((str(name), str(column), None if label is None else int(label), i + 1))
    return plan


def _draw_case(settings: _Settings, case: Case) -> list[dict[str, Any]]:
    """Draw one case (the measure of :func:`write_qc`, run by :func:`radiobio.batch.run_batch`)."""
    image = case.image(settings.image_column)
    masks = []
    for name, column, label, value in settings.plan:
        if case.value(column) is None:
            case.note(f"{name} not drawn ({column} is empty)")
            continue
        masks.append((case.mask(column, what=f"{name} mask"), label, value, name))
    if not masks:
        raise MaskError(f"no mask for this case: {', '.join(c for _, c, _, _ in settings.plan)} empty")
    labels = compose_masks(image, [m[:3] for m in masks], names=[m[3] for m in masks])
    raw = case.value(settings.slice_column)
    index = _whole(raw)
    if raw is not None and index is None:
        raise SettingsError(f"slice {raw!r} is not a whole slice index")
    cut = extract_slice(image, labels, index, settings.view)
    rgb = render(cut, settings.window, settings.colours, settings.height, None, settings.fill)
    present = [int(v) for v in np.unique(cut.mask) if v != 0]
    figure = picture_figure(rgb, cut.extent_mm, slice_title(settings.view, cut.index),
                            legend_entries(present, settings.colours, settings.label_names))
    png = Path(settings.out_dir) / f"{case_file_name(case.case_id)}.png"
    save_figure(figure, png)
    return [{"png": png.name, "slice_index": cut.index}]


def compose_masks(image: sitk.Image, masks: Sequence[tuple[str | os.PathLike | sitk.Image, int | None, int | None]],
                  names: Sequence[str] | None = None) -> sitk.Image:
    """One label map on ``image``'s grid from masks (path or image, label, value): voxels of ``label`` (``None``:
    every non-zero voxel) get ``value``, in order, later masks over earlier ones; ``value=None`` copies the
    mask's own labels; a label absent from its mask draws nothing. Every mask must share the image's grid
    (:class:`GeometryError` names it)."""
    from radiobio.imaging import as_label_map, check_geometry, read_mask

    names = list(names) if names is not None else [f"mask {i + 1}" for i in range(len(masks))]
    composed: np.ndarray | None = None
    for (source, label, value), name in zip(masks, names):
        mask = as_label_map(source, name) if isinstance(source, sitk.Image) else read_mask(source)
        check_geometry(image, mask, names=("image", name))
        array = sitk.GetArrayViewFromImage(mask)
        if composed is None:
            composed = np.zeros(array.shape, dtype=np.uint32)
        inside = array > 0 if label is None else array == label  # an absent label draws nothing
        composed[inside] = array[inside] if value is None else value
    if composed is None:
        raise MaskError("no mask to draw")
    out = sitk.GetImageFromArray(composed)
    out.CopyInformation(image)
    return out


def _write_montage(qc: pd.DataFrame, out_dir: Path, columns: int, tile_height: int) -> None:
    from matplotlib.image import imread

    tiles = {}
    for case_id, png, error in zip(qc["case_id"], qc["png"], qc["error"]):
        if not error and png and len(tiles) < MONTAGE_MAX:
            tiles[str(case_id)] = (imread(out_dir / png)[..., :3] * 255).astype(np.uint8)
    if tiles:
        montage(tiles, out_dir / "montage.png", columns=columns, tile_height=tile_height)


def write_results_qc(results_dir: str | os.PathLike, *, cohort: CohortSource | None = None,
                     mask_column: str | Sequence[str] | None = None, view: str = "axial", window: Window = "auto",
                     colours: Mapping[int, Any] | None = None, label_names: Mapping[int, str] | None = None,
                     height: int | None = None, fill: float = 0.0, jobs: int | None = None, executor: Any = None,
                     progress: bool = False) -> pd.DataFrame:
    """Draw the QC overlays of a results folder into ``results_dir/qc`` (what ``radiobio report --qc`` does).

    **Cohort:** ``cohort``, else ``results_dir/cohort.*`` (or the table ``radiobio segment`` wrote), else the
    ``cohort`` named in a biomarkers table's provenance. **Sarcopenia:** when the folder holds a sarcopenia table,
    each case is drawn on its MEASURED slice (the table's ``slice_index``, joined by ``case_id``; axial view) and,
    unless ``mask_column`` is given, with every tissue of that run (muscle, SAT, VAT, IMAT from the run's mask
    columns and labels, see :func:`sarcopenia_layers`). **Otherwise** ``mask_column`` (default: the segment
    provenance's mask column, else ``mask``, else the only ``mask_*`` column; several columns are drawn as layers)
    with label names from the segment provenance or the model card in ``models/``; ``label_names`` overrides them.
    Everything is checked before the first case is drawn. Returns the QC table of :func:`write_qc`.
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise ReportError(f"results folder {folder} does not exist")
    check_view(view)
    check_window(window)
    check_height(height)
    names = parse_label_names(label_names) if label_names else None
    tables = result_tables(folder)
    source, provenance = _qc_cohort(folder, cohort, tables)
    frame = read_cohort(source, errors="mark", check_files=False)
    sarcopenia = _sarcopenia_table(tables)
    slices, layers = None, None
    if sarcopenia is not None:
        body = sarcopenia.read()
        slices = measured_slices(body) if view == "axial" else None
        if mask_column is None:
            layers = sarcopenia_layers((sarcopenia.provenance or {}).get("settings") or {}, frame.columns)
    if layers is None:
        columns = [mask_column] if isinstance(mask_column, str) else list(mask_column or [])
        if not columns:
            columns = [_default_mask_column(frame, provenance)]
        if len(columns) > 1:
            layers = {c: (c, None) for c in columns}
        else:
            mask_column = columns[0]
            names = {**model_label_names(folder, provenance, mask_column), **(names or {})}
    return write_qc(frame, folder / QC_DIR, mask_column=mask_column if isinstance(mask_column, str) else "mask",
                    layers=layers, slices=slices, view=view, window=window, colours=colours, label_names=names,
                    height=height, fill=fill, jobs=jobs, executor=executor, progress=progress)


def _qc_cohort(folder: Path, cohort: CohortSource | None,
               tables: list[ResultTable]) -> tuple[CohortSource, dict[str, Any]]:
    if cohort is not None:
        if isinstance(cohort, pd.DataFrame):
            return cohort, (cohort.attrs.get("provenance") or {})
        return cohort, read_provenance(cohort)
    found = cohort_table(folder)
    if found is not None:
        return found.path, found.provenance
    for table in tables:
        named = (table.provenance or {}).get("cohort") if table.stage == "biomarkers" else None
        if named and Path(named).is_file():
                return named, read_provenance(named)
    raise ReportError(f"QC needs a cohort and {folder} has none: give one (--cohort PATH), or write "
                      f"{COHORT}.csv into the folder (radiobio segment -o {folder} does), or a biomarkers table "
                      f"whose provenance names its cohort")


def _sarcopenia_table(tables: list[ResultTable]) -> ResultTable | None:
    for table in tables:
        if table.kind == "sarcopenia":
            return table
    for table in tables:  # tables without provenance: recognised by their columns
        if table.stage == "biomarkers" and table.kind is None:
            try:
                import pyarrow.parquet as pq

                columns = (pq.read_schema(table.path).names if table.path.suffix == ".parquet"
                           else list(pd.read_csv(table.path, nrows=0).columns))
            except (OSError, ValueError):
                continue
            if "sma_cm2" in columns:
                return table
    return None


def measured_slices(body: pd.DataFrame) -> dict[str, int]:
    """{case_id: slice index} of a sarcopenia table's measured slices (``slice_index``, or ``l3_slice`` of older
    tables), for the cases measured without error."""
    column = "slice_index" if "slice_index" in body.columns else "l3_slice" if "l3_slice" in body.columns else None
    if column is None:
        return {}
    ok = body[(body["error"].astype(str) == "") if "error" in body.columns else slice(None)]
    return {str(c): int(v) for c, v in zip(ok["case_id"], ok[column]) if not _empty(v)}


def sarcopenia_layers(settings: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Layer] | None:
    """The tissues a sarcopenia run measured from masks, as :func:`write_qc` layers {tissue: (column, label)}.

    ``settings`` is the run's provenance ``settings``: ``muscle_column`` (default ``mask_muscle``),
    ``tissue_columns`` ({"imat": column, "vat": ..., "sat": ...}, default ``mask_<tissue>``) and ``labels``
    ({"muscle": 1, "sat": 2, ...}; a tissue without a label is every non-zero voxel of its column). A tissue whose
    column is not in the cohort but which has a label is read from the muscle column (one multi-label tissue map);
    a tissue with neither was measured from HU ranges and is not drawn. None when the muscle column is not in
    ``columns``.
    """
    columns = set(columns)
    labels = {str(k): v for k, v in (settings.get("labels") or {}).items()}
    muscle = str(settings.get("muscle_column") or "mask_muscle")
    if muscle not in columns:
        return None
    tissue_columns = settings.get("tissue_columns") or {}
    layers: dict[str, Layer] = {"muscle": (muscle, _label(labels.get("muscle")))}
    for tissue in SARCOPENIA_TISSUES[1:]:
        column = str(tissue_columns.get(tissue) or f"mask_{tissue}")
        if column in columns:
            layers[tissue] = (column, _label(labels.get(tissue)))
        elif labels.get(tissue) is not None:
            layers[tissue] = (muscle, _label(labels[tissue]))
    return layers


def model_label_names(folder: str | os.PathLike, provenance: Mapping[str, Any] | None,
                      mask_column: str) -> dict[int, str]:
    """{label: name} of the masks in ``mask_column``: from the segment provenance (``model.labels``) when it wrote
    that column, else from the model card in ``folder/models/`` (the one the provenance names, or the only one);
    ``{}`` when neither says."""
    provenance = dict(provenance or {})
    model = provenance.get("model") if isinstance(provenance.get("model"), Mapping) else {}
    if provenance.get("stage") == "segment" and provenance.get("mask_column") in (None, mask_column):
        found = _int_keys(model.get("labels"))
        if found:
            return found
    cards = sorted(Path(folder, MODELS_DIR).glob("*/model_card.json"))
    wanted = [c for c in cards if model.get("name") and c.parent.name == model.get("name")] or \
        (cards if len(cards) == 1 else [])
    for card in wanted:
        try:
            return _int_keys(json.loads(card.read_text()).get("labels"))
        except (OSError, ValueError):
            continue
    return {}


def _default_mask_column(frame: pd.DataFrame, provenance: Mapping[str, Any]) -> str:
    named = provenance.get("mask_column") if provenance.get("stage") == "segment" else None
    if named and named in frame.columns:
        return str(named)
    if "mask" in frame.columns:
        return "mask"
    masks = [c for c in frame.columns if is_mask_column(c)]
    if len(masks) == 1:
        return masks[0]
    have = f"mask columns {', '.join(masks)}" if masks else "no mask column"
    raise CohortError(f"which mask should QC draw? the cohort has {have}; name one (--mask-column / mask_column)")


def _int_keys(labels: Any) -> dict[int, str]:
    out: dict[int, str] = {}
    for key, value in (labels or {}).items() if isinstance(labels, Mapping) else []:
        try:
            out[int(key)] = str(value)
        except (TypeError, ValueError):
            continue
    return out


def _label(value: Any) -> int | None:
    return None if value is None else int(value)


def _whole(value: Any) -> int | None:
    """A slice index as int; None when empty or not a whole number."""
    if _empty(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _empty(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) or \
        (isinstance(value, str) and not value.strip())


def _version() -> str:
    from radiobio import __version__

    return __version__

