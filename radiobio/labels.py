"""Label arguments: one normaliser for every stage and one parser for every CLI ``--labels``.

A labels argument is ``None`` (every non-zero label present), a label value, a list of values, a list of names
that each case's mask carries (:class:`NamedLabels`), or a mapping ``{name: value}``; every stage turns it into
``{label_name: value}`` with :func:`label_map`, so every table names its labels the same way (the ``label_name``
column). On the command line ``--labels`` takes ``1,2``, ``liver,spleen``, ``liver=5,spleen=1`` or a JSON class map
(``class_map.json[:task]``) in every subcommand (:func:`parse_labels`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from radiobio.errors import SettingsError

Labels = int | Sequence[int] | Sequence[str] | Mapping[str, int] | None


class NamedLabels(dict):
    """Labels chosen by name (``["liver", "spleen"]``): ``{name: number}`` with numbers 1, 2... in the order given.

    Each case's mask must carry label names (a TotalSegmentator or nnU-Net output, a DICOM-SEG, an RTSTRUCT); the
    batch driver renumbers its labels so that ``name`` has the number given here, whatever number the mask uses.
    """


def label_map(labels: Labels, what: str = "labels") -> dict[str, int] | None:
    """Normalise a labels argument to ``{label_name: value}`` (names ``'1'``, ``'2'``... for bare numbers);
    ``None`` stays ``None``. Values must be positive integers (0 is background) and names unique; raises
    :class:`SettingsError` otherwise."""
    if labels is None:
        return None
    if isinstance(labels, str):
        raise SettingsError(f"{what}: {labels!r} is text; give numbers, a list of numbers or names, or "
                            f"{{name: number}}")
    if isinstance(labels, NamedLabels):
        return labels
    if not isinstance(labels, Mapping | int | np.integer) and labels and all(isinstance(v, str) for v in labels):
        names = [v.strip() for v in labels]
        if "" in names or len(set(names)) != len(names):
            raise SettingsError(f"{what}: label names must be non-empty and unique, not {list(labels)}")
        return NamedLabels((name, i) for i, name in enumerate(names, start=1))
    if isinstance(labels, Mapping):
        pairs = [(str(k), v) for k, v in labels.items()]
    elif isinstance(labels, int | np.integer):
        pairs = [(str(int(labels)), labels)]
    else:
        pairs = [(str(v), v) for v in labels]
    result: dict[str, int] = {}
    for name, value in pairs:
        number = _integer(value)
        if number is None or number <= 0:
            raise SettingsError(f"{what}: {name!r} -> {value!r} is not a positive integer label (0 is background)")
        if name in result:
            raise SettingsError(f"{what}: the name {name!r} is given twice")
        result[name] = number
    if len(set(result.values())) != len(result):
        raise SettingsError(f"{what}: a label value is given twice ({result})")
    if not result:
        raise SettingsError(f"{what}: empty; give at least one label or None for all labels present")
    return result


def label_names(labels: Mapping[str, int] | None) -> dict[int, str]:
    """``{value: label_name}`` of a :func:`label_map` result (empty for ``None``)."""
    return {value: name for name, value in (labels or {}).items()}


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return None


def read_label_file(path: str | Path, key: str | None = None) -> dict[str, int]:
    """Read label names from a JSON class map: ``{value: name}`` or ``{name: value}`` (both orders accepted), or a
    map of such maps chosen by ``key`` (TotalSegmentator's ``class_map.json``: ``{"total": {"1": "spleen", ...}}``).

    Returns ``{label_name: value}``; raises :class:`SettingsError` naming the file and what it holds.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"label file {path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"label file {path}: expected a JSON object {{value: name}}, not {type(data).__name__}")
    nested = {k: v for k, v in data.items() if isinstance(v, dict)}
    if nested:
        if key is None and len(nested) == 1:
            key = next(iter(nested))
        if key not in nested:
            raise SettingsError(f"label file {path} holds several class maps ({', '.join(nested)}); choose one: "
                                f"{path}:{next(iter(nested))}")
        data = nested[key]
    pairs: dict[str, int] = {}
    for k, v in data.items():
        if str(k).strip().lstrip("-").isdigit():
            pairs[str(v)] = int(k)
        elif isinstance(v, int) or str(v).strip().isdigit():
            pairs[str(k)] = int(v)
        else:
            raise SettingsError(f"label file {path}: entry {k!r}: {v!r} pairs no label number with a name")
    return label_map(pairs, f"label file {path}") or {}


def parse_labels(text: str) -> list[int] | list[str] | dict[str, int]:
    """Parse a CLI ``--labels`` value: ``1,2`` into ``[1, 2]``, ``liver,spleen`` into ``['liver', 'spleen']``
    (names a mask carries), ``liver=5,spleen=1`` into ``{'liver': 5, ...}``, and
    ``class_map.json`` (or ``class_map.json:total``) through :func:`read_label_file`."""
    path, _, key = text.partition(".json")
    if _ == ".json":
        try:
            return read_label_file(path + ".json", key.lstrip(":") or None)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if parts and all("=" in p for p in parts):
            return {name.strip(): int(value) for name, value in (p.split("=", 1) for p in parts)}
        if parts and not any(p.lstrip("-").isdigit() or "=" in p for p in parts):
            return parts  # names, resolved against each mask's own label names
        return [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"labels look like 1,2 or liver,spleen or name=1,name=2, not "
                                         f"{text!r}") from None
