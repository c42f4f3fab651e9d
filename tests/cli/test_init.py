"""The ``radiobio`` command itself: every stage module is found and has help with an example, and the package
docstring maps each command to the API function it runs."""

from __future__ import annotations

import pytest

from radiobio import cli
from radiobio.cli import STAGES, build_parser


def test_missing_stage_module_is_an_error(monkeypatch):
    monkeypatch.setattr(cli, "STAGES", (*cli.STAGES, "no_such_stage"))
    with pytest.raises(ModuleNotFoundError, match="radiobio.cli.no_such_stage"):
        cli.build_parser()


def test_cli_docstring_states_the_command_to_function_mapping():
    assert "named as the API functions" not in cli.__doc__
    assert "``extract`` runs\n``radiobio.features.extract_features``" in cli.__doc__


def test_every_stage_has_help_with_an_example() -> None:
    parser = build_parser()
    stages = parser._subparsers._group_actions[0].choices
    assert set(stages) == {stage.replace("_", "-") for stage in STAGES}  # module ibsi_check is ibsi-check
    for name, subparser in stages.items():
        text = subparser.format_help()
        assert ("example:" in text or "examples:" in text) and f"radiobio {name} " in text, name
