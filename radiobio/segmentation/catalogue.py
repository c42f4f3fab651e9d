"""Finding model bundles by name: ``find_bundle("hippocampus-3d")`` and ``list_bundles()``.

A bundle given as a folder path is used as it is. A bare name (no path separator) is looked up, in order, in

1. the folders of the ``RADIOBIO_MODEL_PATH`` environment variable (separated like ``PATH``), for a group's own
   models on a shared drive;
2. the bundles installed with radiobio (``<prefix>/share/radiobio/models``, from the wheel);
3. ``models/`` of a source checkout, beside the package.

The first folder holding ``<name>/model_card.json`` wins, so a group can shadow a shipped model on purpose.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd

from radiobio.errors import ModelBundleError
from radiobio.segmentation.bundle import CARD_FILE

#: Environment variable listing extra folders of bundles (``os.pathsep``-separated), searched first.
MODEL_PATH_VARIABLE = "RADIOBIO_MODEL_PATH"


def model_search_path() -> list[Path]:
    """The folders searched for a bundle named without a path, in order (existing folders only)."""
    folders = [Path(p).expanduser() for p in os.environ.get(MODEL_PATH_VARIABLE, "").split(os.pathsep) if p]
    folders.append(Path(sys.prefix) / "share" / "radiobio" / "models")
    folders.append(Path(__file__).resolve().parents[2] / "models")
    unique: dict[Path, Path] = {}  # resolved -> as given, first occurrence wins
    for folder in folders:
        if folder.is_dir():
            unique.setdefault(folder.resolve(), folder)
    return list(unique.values())


def is_bundle_name(reference: str | os.PathLike) -> bool:
    """True when ``reference`` is a bare bundle name (``hippocampus-3d``) rather than a path."""
    text = os.fspath(reference)
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return text not in ("", ".", "..") and not any(sep in text for sep in separators)


def find_bundle(reference: str | os.PathLike) -> Path:
    """The folder of a bundle given by path or by name (see the module docstring for the search order).

    Raises :class:`ModelBundleError` naming the folders searched and the bundles found when a name matches none.
    """
    folder = Path(reference).expanduser()
    if folder.is_dir() or not is_bundle_name(reference):
        return folder
    searched = model_search_path()
    for root in searched:
        if (root / os.fspath(reference) / CARD_FILE).is_file():
            return root / os.fspath(reference)
    available = sorted(list_bundles()["name"])
    raise ModelBundleError(f"{reference}: no such model bundle folder, and no bundle of that name in the model search "
                           f"path {[str(p) for p in searched]} (bundles available: {available or 'none'}); give the "
                           f"bundle's folder, or add the folder holding it to {MODEL_PATH_VARIABLE}")


#: Columns of :func:`list_bundles`.
LIST_COLUMNS = ["name", "path", "labels", "architecture", "demo", "use", "description"]


def list_bundles() -> pd.DataFrame:
    """Every bundle on the model search path, one row each: ``name``, ``path``, ``labels`` (``1=anterior, ...``),
    ``architecture``, ``demo`` (True when the card says it was trained on synthetic data only), ``use`` (the
    card's intended use) and ``description``. Reads the cards only (no Keras).

    A name found in several folders is listed once, from the folder that :func:`find_bundle` would use. A bundle
    whose card is unreadable or invalid is listed with the reason in ``description``.
    """
    from radiobio.segmentation.bundle import check_card, is_synthetic_only
    from radiobio.segmentation.card import UNSTATED_USE

    rows = []
    seen: set[str] = set()
    for root in model_search_path():
        for card_path in sorted(root.glob(f"*/{CARD_FILE}")):
            name = card_path.parent.name
            if name in seen:
                continue
            seen.add(name)
            row = {"name": name, "path": str(card_path.parent), "labels": "", "architecture": "", "demo": False,
                   "use": "", "description": ""}
            try:
                card = json.loads(card_path.read_text())
                check_card(card, str(card_path))
            except (OSError, ValueError, ModelBundleError) as exc:
                row["description"] = f"unusable card: {exc}"
                rows.append(row)
                continue
            row.update({
                "labels": ", ".join(f"{k}={v}" for k, v in card["labels"].items()),
                "architecture": card["architecture"].get("architecture", ""),
                "demo": is_synthetic_only(card),
                "use": card.get("intended_use") or UNSTATED_USE,
                "description": card.get("description") or "",
            })
            rows.append(row)
    return pd.DataFrame(rows, columns=LIST_COLUMNS)
