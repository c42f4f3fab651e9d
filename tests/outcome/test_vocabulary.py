"""The outcome stage speaks the one vocabulary: keyword-only arguments after the first, ``*_column`` names,
``seed`` and ``jobs``; and its CLI uses ``-o/--out``, ``-j/--jobs`` and ``--seed``."""

from __future__ import annotations

import importlib
import inspect

import pytest

from radiobio.cli import build_parser

MODULES = ("radiobio.outcome.survival", "radiobio.outcome.signature", "radiobio.outcome.modeling",
           "radiobio.outcome.metrics", "radiobio.outcome.plots", "radiobio.outcome.validation",
           "radiobio.outcome.harmonization", "radiobio.features.robustness", "radiobio.features.wide")
#: scikit-learn calls scorers as scorer(estimator, X, y).
PROTOCOL = {"concordance_scorer"}
OLD_NAMES = {"random_state", "n_jobs", "groups", "batch", "duration", "event", "target", "group", "strata", "rater"}


def _public_callables():
    for name in MODULES:
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if attribute.startswith("_") or getattr(value, "__module__", None) != name:
                continue
            if inspect.isfunction(value):
                yield f"{name}.{attribute}", value, 1
            elif inspect.isclass(value) and "__init__" in vars(value):
                yield f"{name}.{attribute}", value.__init__, 2  # self, then at most one positional


@pytest.mark.parametrize("qualified, function, allowed", list(_public_callables()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_keyword_only_after_the_first_argument_and_one_vocabulary(qualified, function, allowed):
    parameters = inspect.signature(function).parameters.values()
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if qualified.rsplit(".", 1)[-1] not in PROTOCOL:
        assert len(positional) <= allowed, f"{qualified}: {positional[allowed:]} should be keyword-only"
    names = {p.name for p in inspect.signature(function).parameters.values()}
    assert not names & OLD_NAMES, f"{qualified} still takes {sorted(names & OLD_NAMES)}"


def test_no_public_function_named_as_its_module():
    for name in MODULES:
        module = importlib.import_module(name)
        assert not callable(getattr(module, name.rsplit(".", 1)[-1], None)), name


def test_cli_flags():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    flags = {name: {o for action in commands[name]._actions for o in action.option_strings}
             for name in ("survival", "signature")}
    assert {"-o", "--out"} <= flags["survival"] and {"-o", "--out", "-j", "--jobs", "--seed", "-q", "--quiet",
                                                      "--patient-column"} <= flags["signature"]
    assert "--groups" not in flags["signature"] and "--plots" not in flags["survival"]
