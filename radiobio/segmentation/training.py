"""``train(cohort, config=..., out_dir=...)``: fit a segmentation model on a cohort and write a model bundle;
``train(cohort, from_model="hippocampus-3d", out_dir=...)``: fine-tune an existing bundle on new cases.

The split is by case (by ``patient_id`` when the cohort has that column, so no patient is on both sides), seeded.
Training minimises Dice + cross-entropy, keeps the checkpoint with the best validation Dice (written atomically as
``model.keras`` while training runs), stops early when validation Dice stalls, logs every epoch to
``training_log.csv``, and finally segments the validation cases with the saved bundle to report Dice, IoU, HD95 and
ASSD in millimetres in the model card.

A fine-tune (``from_model``) starts from the parent bundle's weights and keeps everything its card fixes (labels,
architecture, preprocessing, inference settings); only ``training`` settings may be given, and those not given
default to :func:`~radiobio.segmentation.finetune.finetune_defaults`. Its card records the parent
(``"parent": {"name", "digest", "path"}``).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import keras  # this module trains: Keras is its reason to be imported (radiobio.segmentation quiets TF first)
import numpy as np
import pandas as pd

from radiobio.cohort import CohortSource, read_cohort
from radiobio.errors import CohortError, ModelBundleError, SettingsError
from radiobio.imaging import read_image, read_mask
from radiobio.progress import progress_bar
from radiobio.provenance import package_versions
from radiobio.segmentation.bundle import (
    CARD_FILE,
    MODEL_FILE,
    ModelBundle,
    card_from_config,
    load_bundle,
    read_bundle,
    read_card,
    save_model_atomic,
    write_card,
    write_json_atomic,
)
from radiobio.segmentation.config import SegmentationConfig, as_config
from radiobio.segmentation.finetune import finetune_config
from radiobio.segmentation.preprocessing import prepare_image, prepare_mask

LOG_FILE = "training_log.csv"


def split_cases(cohort: pd.DataFrame, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded train/validation split of row positions, by ``patient_id`` when present, else by ``case_id``."""
    groups = cohort["patient_id"].astype(str) if "patient_id" in cohort.columns else cohort["case_id"].astype(str)
    unique = np.array(sorted(groups.unique()))
    if len(unique) < 2:
        raise CohortError(f"training needs at least 2 cases (or patients) to hold one out for validation; got "
                          f"{len(unique)}")
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    n_val = min(len(unique) - 1, max(1, int(round(fraction * len(unique)))))
    validation = set(unique[:n_val])
    is_val = groups.isin(validation).to_numpy()
    return list(np.flatnonzero(~is_val)), list(np.flatnonzero(is_val))


def load_training_cases(cohort: pd.DataFrame, config: SegmentationConfig, image_column: str, mask_column: str,
                        progress: bool = True, parent: str | None = None):
    """Read, prepare and check every case of ``cohort``; return :class:`~radiobio.segmentation.data.TrainingCase`
    objects. ``parent`` names the bundle being fine-tuned (its labels cannot grow), for the error message."""
    from radiobio.segmentation.data import TrainingCase

    cases = []
    bar = progress_bar(len(cohort), enabled=progress, desc="loading cases")
    for _, row in cohort.iterrows():
        bar.update(1)
        case_id = row["case_id"]
        image = read_image(row[image_column])
        prepared = prepare_image(image, config, name=f"case {case_id}")
        labels = prepare_mask(read_mask(row[mask_column], reference=image), prepared, config)
        extra = sorted(set(np.unique(labels)) - {0} - set(config.labels))
        if extra and parent is not None:
            raise SettingsError(f"case {case_id}: mask holds label(s) {[int(v) for v in extra]} that the parent "
                                f"model {parent} does not know (its labels: {config.labels}); a fine-tune keeps its "
                                f"parent's labels: set those voxels to 0 or to one of its labels, or train a new "
                                f"model with -c CONFIG instead of --from")
        if extra:
            raise SettingsError(f"case {case_id}: mask holds label(s) {[int(v) for v in extra]} that config labels "
                                f"{config.labels} does not name; add them to 'labels'")
        cases.append(TrainingCase(str(case_id), prepared.array, labels))
    bar.close()
    return cases


def default_patch_size(cases, config: SegmentationConfig) -> tuple[int, ...]:
    """Median prepared case size rounded up to the model's size multiple, in (x, y[, z]) order."""
    from radiobio.segmentation.architectures import size_multiple

    multiple = size_multiple(config.model)
    shapes = np.array([c.labels.shape for c in cases])  # (z, y, x)
    median = np.median(shapes, axis=0)
    rounded = [int(math.ceil(s / multiple) * multiple) for s in median[::-1]]
    return tuple(rounded if config.dims == 3 else rounded[:2])


def train(cohort: CohortSource, *, config: SegmentationConfig | dict[str, Any] | str | os.PathLike | None = None,
          from_model: ModelBundle | str | os.PathLike | None = None, out_dir: str | os.PathLike,
          image_column: str = "image", mask_column: str = "mask", progress: bool = False,
          command: str | None = None, intended_use: str | None = None, qc_calibration: bool = True) -> Path:
    """Train a segmentation model on ``cohort`` and write a bundle to ``out_dir``; return the bundle path.

    After validation the card gets its quality statistics (reference statistics from the training cases and, with
    ``qc_calibration``, the quality score calibrated on the stress-tested validation cases:
    :func:`radiobio.segmentation.quality.add_quality_statistics`; 19 segmentations per validation case).

    ``config`` is a :class:`SegmentationConfig`, a dict or a YAML path. The bundle holds ``model.keras`` (best
    validation checkpoint), ``model_card.json`` (labels, target spacing, intensity normalisation, patch size,
    architecture, backend, training data, validation metrics, versions), ``MODEL_CARD.md`` and
    ``training_log.csv``. ``command`` is recorded in the card as the command that trained the model, and
    ``intended_use`` (e.g. ``"research use on adult T1 MRI; not for clinical use"``) as what it may be used for.

    Fine-tuning: ``from_model`` (a bundle folder, a name on the model search path such as ``"hippocampus-3d"``, or
    a :class:`ModelBundle`) starts from that bundle's weights and takes its labels, architecture, preprocessing and
    inference settings from its card; ``config`` is then optional and may only set ``training`` settings (see
    :func:`~radiobio.segmentation.finetune.finetune_config`; the others default to
    :func:`~radiobio.segmentation.finetune.finetune_defaults`: a tenth of the parent's learning
    rate, epochs and time limit). A different architecture, labels or preprocessing is a :class:`SettingsError`
    naming the key, and a mask holding a label the parent does not know is one too, both before training starts.
    Before the first step the parent's weights are scored on the validation patches; an epoch is kept only when it
    beats them, so the new bundle holds the parent's weights when none does. The card gets ``parent`` (its name,
    digest and folder), its own ``training_data`` and ``validation_metrics``, and the parent's ``intended_use``
    (unless given), ``license`` and ``citation`` (the weights derive from the parent's).

    Small cohorts: the split holds out ``round(validation_fraction × cases)`` cases, at least 1 and at most all but
    one, so 10 cases at 0.2 give 8 to train on and 2 to validate; a cohort needs at least 2 cases (2 patients
    when it has ``patient_id``). Validation figures from 2 cases are a rough check, not a measurement.
    """

    from radiobio.segmentation.architectures import build_model, size_multiple
    from radiobio.segmentation.data import SegmentationDataset

    started = time.time()
    parent = None
    if from_model is not None:
        parent = read_bundle(from_model)  # a missing or bad parent fails before anything loads
        config = finetune_config(parent, config)
    elif config is None:
        raise SettingsError("train() needs config (a training configuration: dict, YAML path or "
                            "SegmentationConfig), or from_model (a bundle to fine-tune)")
    else:
        config = as_config(config)
    settings = config.training
    table = read_cohort(cohort)
    for column in (image_column, mask_column):
        if column not in table.columns:
            raise CohortError(f"cohort has no column {column!r} (columns: {list(table.columns)})")
    if table[mask_column].isna().any():
        missing = list(table.loc[table[mask_column].isna(), "case_id"])
        raise CohortError(f"cases without a {mask_column!r} to learn from: {missing}; drop them or add masks")
    train_rows, val_rows = split_cases(table, settings.validation_fraction, settings.seed)
    out = Path(out_dir)
    if parent is not None:
        if out.resolve() == parent.path.resolve():
            raise SettingsError(f"out_dir {out} is the parent bundle's folder; write the fine-tuned bundle to a new "
                                f"folder")
        parent = load_bundle(parent)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(settings.seed)

    cases = load_training_cases(table, config, image_column, mask_column, progress,
                                parent=None if parent is None else parent.name)
    if config.preprocessing.patch_size is None:
        config.preprocessing.patch_size = default_patch_size([cases[i] for i in train_rows], config)
    multiple = size_multiple(config.model)
    if any(s % multiple for s in config.preprocessing.patch_size):
        raise SettingsError(f"preprocessing.patch_size {config.preprocessing.patch_size} must be a multiple of "
                            f"{multiple} on every axis (the encoder halves the size {int(math.log2(multiple))} "
                            f"times)")

    model = build_model(config)
    if parent is not None:
        try:
            model.set_weights(parent.model.get_weights())
        except ValueError as exc:
            raise ModelBundleError(f"{parent.path / MODEL_FILE}: its weights do not fit the architecture its card "
                                   f"describes ({exc}); the card does not belong to this model") from exc
    outputs = len(model.outputs)
    train_data = SegmentationDataset([cases[i] for i in train_rows], config, training=True, seed=settings.seed,
                                     outputs=outputs)
    val_data = SegmentationDataset([cases[i] for i in val_rows], config, training=False, seed=settings.seed,
                                   outputs=outputs)
    total_steps = settings.epochs * len(train_data)
    model.compile(optimizer=_optimizer(settings, total_steps), loss=_losses(config, outputs),
                  metrics=_metrics(config, outputs), jit_compile=False)

    checkpoint = out / MODEL_FILE
    monitor = "val_dice" if outputs == 1 else "val_segmentation_dice"
    initial = None
    if parent is not None:  # the parent's weights are the checkpoint to beat
        scores_before = model.evaluate(val_data, return_dict=True, verbose=0)
        initial = float(scores_before[monitor.removeprefix("val_")])
        save_model_atomic(inference_copy(model, config), checkpoint)
    callbacks = [
        AtomicCheckpoint(checkpoint, config, monitor, best=-np.inf if initial is None else initial),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=settings.patience),
        keras.callbacks.CSVLogger(str(out / LOG_FILE)),
    ]
    if settings.max_minutes:
        callbacks.append(TimeLimit(settings.max_minutes * 60.0, started))
    fit_started = time.time()
    history = model.fit(train_data, validation_data=val_data, epochs=settings.epochs, callbacks=callbacks,
                        verbose=2 if progress else 0)
    fit_minutes = (time.time() - fit_started) / 60.0
    scores = history.history.get(monitor, [])
    best_epoch = int(np.argmax(scores)) + 1 if scores else None
    best_score = float(max(scores)) if scores else None
    if initial is not None and (best_score is None or not best_score > initial):
        best_epoch, best_score = 0, initial  # no epoch beat the parent: model.keras holds its weights

    training: dict[str, Any] = {
        "settings": config.to_dict()["training"],
        "command": command or _command_line(),
        "epochs_run": len(history.epoch),
        "best_epoch": best_epoch,
        "best_validation_dice_patches": best_score,
        "fit_minutes": round(fit_minutes, 1),
        "total_minutes": None,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores visible",
        "log": LOG_FILE,
    }
    extra: dict[str, Any] = {}
    source = f"{len(table)} cases from {table.attrs.get('cohort_base_dir', 'a DataFrame')}"
    if parent is not None:
        training["parent_validation_dice_patches"] = initial
        extra["parent"] = {"name": parent.name, "digest": parent.digest, "path": str(parent.path.resolve())}
        extra["description"] = f"{parent.name} ({parent.digest}) fine-tuned on {source}."
        extra.update({k: parent.card[k] for k in ("license", "citation") if parent.card.get(k)})
        intended_use = intended_use or parent.card.get("intended_use")
    card = card_from_config(
        config,
        name=out.name,
        **({"intended_use": intended_use} if intended_use else {}),
        **extra,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        backend=keras.backend.backend(),
        versions=versions(),
        training=training,
        training_data={
            "description": source,
            "n_cases": len(table),
            "n_train": len(train_rows),
            "n_validation": len(val_rows),
            "split": f"by {'patient_id' if 'patient_id' in table.columns else 'case_id'}, "
                     f"validation_fraction={settings.validation_fraction}, seed={settings.seed}",
            "validation_cases": [str(table.at[i, "case_id"]) for i in val_rows],
            "image_column": image_column,
            "mask_column": mask_column,
        },
    )
    write_json_atomic(card, out / CARD_FILE)
    validation = table.iloc[val_rows].reset_index(drop=True)
    validate_bundle(out, validation, image_column, mask_column, progress)
    from radiobio.segmentation.quality import add_quality_statistics

    add_quality_statistics(out, table.iloc[train_rows].reset_index(drop=True), validation, image_column=image_column,
                           mask_column=mask_column, calibrate=qc_calibration, progress=progress)
    card = read_card(out)
    card["training"]["total_minutes"] = round((time.time() - started) / 60.0, 1)
    write_card(out, card)
    return out


def validate_bundle(bundle_dir: str | os.PathLike, validation: pd.DataFrame, image_column: str = "image",
                    mask_column: str = "mask", progress: bool = True) -> dict[str, Any]:
    """Segment ``validation`` with the bundle, score it against its masks and store the metrics in the card.

    Predicted masks go to ``<bundle>/validation_masks`` only for the time of scoring. Returns the updated card.
    """
    import shutil

    from radiobio.segmentation.inference import segment
    from radiobio.segmentation.metrics import evaluate, summarize

    bundle_dir = Path(bundle_dir)
    scratch = bundle_dir / "validation_masks"
    try:
        predicted = segment(validation.rename(columns={mask_column: "reference"}), model=bundle_dir, out_dir=scratch,
                            mask_column="predicted", image_column=image_column, jobs=1, progress=progress,
                            overwrite=True)
        labels = sorted(int(k) for k in read_card(bundle_dir)["labels"])
        scores = evaluate(predicted, pred_column="predicted", ref_column="reference", labels=labels)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = summarize(scores)
    card = read_card(bundle_dir)
    card["validation_metrics"] = {
        "n_cases": int(scores["case_id"].nunique()),
        "failed_cases": int((scores["error"] != "").sum()),
        "per_label": {str(row["label"]): {k: row[k] for k in summary.columns if k != "label"}
                      for _, row in summary.reset_index().iterrows()},
        "mean_dice": float(scores.loc[scores["error"] == "", "dice"].mean()),
        "note": "whole-case inference on the held-out cases (sliding window, the bundle's inference settings), "
                "masks on the original image grid; distances in mm",
    }
    write_card(bundle_dir, card)
    return card


def versions() -> dict[str, str]:
    """Versions of the packages a bundle depends on."""
    return package_versions(("radiobio", "keras", "tensorflow", "torch", "jax", "numpy", "SimpleITK"))


def _command_line() -> str:
    """What a card records for a model trained from Python: the call and the process that made it."""
    return "radiobio.segmentation.train(...) in " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def _optimizer(settings, total_steps: int):

    rate: Any = settings.learning_rate
    if settings.lr_schedule == "poly":
        rate = keras.optimizers.schedules.PolynomialDecay(settings.learning_rate, max(1, total_steps),
                                                          end_learning_rate=settings.learning_rate * 1e-3,
                                                          power=0.9)
    elif settings.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(settings.learning_rate, max(1, total_steps), alpha=1e-3)
    if settings.weight_decay > 0:
        return keras.optimizers.AdamW(rate, weight_decay=settings.weight_decay)
    return keras.optimizers.Adam(rate)


def _losses(config: SegmentationConfig, outputs: int):
    from radiobio.segmentation.losses import DiceCrossEntropy

    loss = DiceCrossEntropy(config.training.dice_weight, config.training.ce_weight)
    if outputs == 1:
        return loss
    # Deep supervision: the full-resolution head counts most, each coarser head half as much as the next finer one.
    return [DiceCrossEntropy(config.training.dice_weight * 0.5 ** i, config.training.ce_weight * 0.5 ** i)
            for i in range(outputs)]


def _metrics(config: SegmentationConfig, outputs: int):
    from radiobio.segmentation.losses import DiceScore

    if outputs == 1:
        return [DiceScore(config.num_classes)]
    return [[DiceScore(config.num_classes)]] + [[] for _ in range(outputs - 1)]


class AtomicCheckpoint(keras.callbacks.Callback):
    """Save the model whenever ``monitor`` improves, through a temporary file (never half a ``.keras``).

    The saved copy is compiled with the loss and metric but without the optimizer's state, which would triple the
    file size and is not needed to segment.
    """

    def __init__(self, path: Path, config: SegmentationConfig, monitor: str, best: float = -np.inf):
        super().__init__()
        self.path = Path(path)
        self.config = config
        self.monitor = monitor
        self.best = best  # the score an epoch must beat to be saved (a fine-tune: its parent's)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not value > self.best:
            return
        self.best = float(value)
        save_model_atomic(inference_copy(self.model, self.config), self.path)


def inference_copy(model, config: SegmentationConfig):
    """A fresh copy of ``model`` with its weights, compiled with radiobio's loss but no optimizer state."""

    from radiobio.segmentation.architectures import build_model

    copy = build_model(config)
    copy.set_weights(model.get_weights())
    copy.compile(optimizer=keras.optimizers.Adam(), loss=_losses(config, len(copy.outputs)))
    return copy


class TimeLimit(keras.callbacks.Callback):
    """Stop training after ``seconds`` of wall time since ``started`` (the best checkpoint is already saved)."""

    def __init__(self, seconds: float, started: float):
        super().__init__()
        self.seconds = seconds
        self.started = started

    def on_epoch_end(self, epoch, logs=None):
        if time.time() - self.started > self.seconds:
            self.model.stop_training = True
