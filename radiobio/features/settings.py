"""Extraction parameters: presets, YAML files and dicts in PyRadiomics' parameter format, with a stable hash."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from radiobio.errors import SettingsError

PRESET_DIR = Path(__file__).with_name("params")
PRESETS = tuple(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
SECTIONS = ("imageType", "featureClass", "setting", "voxelSetting", "ibsi")


def load_params(params: str | os.PathLike | dict[str, Any]) -> dict[str, Any]:
    """Return PyRadiomics parameters (``imageType``, ``featureClass``, ``setting``) from a preset, a YAML/JSON file or
    a dict, validated against PyRadiomics' own schema.

    ``params`` is a preset name (``"ct"``, ``"mr"``, ``"ibsi-ct"``, ``"ibsi-config-a"``...), a path, or a dict in
    PyRadiomics' format (with an optional ``ibsi`` section for ``convention="ibsi"``).
    Raises :class:`SettingsError` naming the problem.
    """
    if isinstance(params, dict):
        loaded = copy.deepcopy(params)
        source = "dict"
    else:
        name = str(params)
        preset = preset_name(params)
        path = PRESET_DIR / f"{preset}.yaml" if preset else Path(name)
        if path.is_dir():
            raise SettingsError(f"parameters {name!r} is a folder; give a PyRadiomics YAML file or a preset")
        if not path.is_file():
            raise SettingsError(f"unknown parameters {name!r}: not a preset ({', '.join(PRESETS)}) and no such file")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: not valid YAML ({exc})") from exc
        source = str(path)
    if not isinstance(loaded, dict):
        raise SettingsError(f"{source}: parameters must be a mapping with imageType / featureClass / setting")
    unknown = set(loaded) - set(SECTIONS)
    if unknown:
        raise SettingsError(f"{source}: unknown section(s) {sorted(unknown)}; allowed: {', '.join(SECTIONS)}")
    from radiobio.features.ibsi import check_section

    check_section(loaded.get("ibsi"), source)  # radiobio's own section: the IBSI convention's processing
    _validate_with_pyradiomics({k: v for k, v in loaded.items() if k != "ibsi"}, source)
    _refuse_quoted_numbers(loaded, source)
    return loaded


def preset_name(params: Any) -> str | None:
    """The preset ``params`` names (``"ct"``, ``"mr"``, ``"ibsi-ct"``...; any case), or ``None`` for a file or dict."""
    if isinstance(params, str) and params.lower() in PRESETS and not Path(params).is_file():
        return params.lower()
    return None


def _refuse_quoted_numbers(params: dict[str, Any], source: str, where: str = "") -> None:
    """PyRadiomics' schema lets ``binWidth: "5"`` through, and every case then fails deep inside NumPy; no
    PyRadiomics setting takes a number written as text, so refuse it here."""
    for key, value in params.items():
        path = f"{where}.{key}" if where else str(key)
        if isinstance(value, dict):
            _refuse_quoted_numbers(value, source, path)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, str) and _is_number(item):
                raise SettingsError(f"{source}: {path} = {item!r} is a number written as text; write it without "
                                    f"quotes ({path.rsplit('.', 1)[-1]}: {item})")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _validate_with_pyradiomics(params: dict[str, Any], source: str) -> None:
    import logging

    import pykwalify.core
    import radiomics

    schema_file, schema_funcs = radiomics.getParameterValidationFiles()
    logging.getLogger("pykwalify").setLevel(logging.CRITICAL)
    core = pykwalify.core.Core(source_data=params, schema_files=[schema_file], extensions=[schema_funcs])
    try:
        core.validate()
    except Exception as exc:  # pykwalify raises its own SchemaError with every problem listed
        raise SettingsError(f"{source}: invalid PyRadiomics parameters: {exc}") from exc


def params_hash(params: dict[str, Any]) -> str:
    """A short, stable SHA-256 hash of the parameters (key order does not matter)."""
    canonical = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
