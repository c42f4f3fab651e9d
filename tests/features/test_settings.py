"""``radiobio.features.settings``: presets by any case, files and dicts validated against PyRadiomics' schema
before any case runs, numbers written as text refused, and a hash that ignores key order."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from radiobio.errors import SettingsError
from radiobio.features.settings import PRESETS, load_params, params_hash, preset_name


def test_presets_by_name_in_any_case() -> None:
    assert set(PRESETS) >= {"ct", "mr", "ibsi-ct", *(f"ibsi-config-{c}" for c in "abcde")}
    assert load_params("CT") == load_params("ct") and preset_name("Mr") == "mr"
    assert preset_name({"setting": {}}) is None


def test_files_and_typos_are_checked_up_front(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"setting": {"binWidth": 5}, "featureClass": {"firstorder": None}}))
    assert load_params(good)["setting"]["binWidth"] == 5 and preset_name(str(good)) is None
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"setting": {"binwidth": 5}}))
    with pytest.raises(SettingsError, match="invalid PyRadiomics parameters"):
        load_params(typo)
    with pytest.raises(SettingsError, match="not a preset"):
        load_params("petct")
    with pytest.raises(SettingsError, match="folder"):
        load_params(str(tmp_path))


@pytest.mark.parametrize("setting", [{"binWidth": "5"}, {"binWidth": "2.5"}])
def test_numbers_written_as_text_are_refused(setting: dict) -> None:
    with pytest.raises(SettingsError, match="number written as text"):
        load_params({"setting": setting})


def test_the_hash_ignores_key_order_and_sees_values() -> None:
    a = {"setting": {"binWidth": 5, "label": 1}, "imageType": {"Original": {}}}
    b = {"imageType": {"Original": {}}, "setting": {"label": 1, "binWidth": 5}}
    assert params_hash(a) == params_hash(b)
    assert params_hash(a) != params_hash({**a, "setting": {"binWidth": 6, "label": 1}})
