"""Synthetic phantoms with known truth, for tests, benchmarks, the demo and the docs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from radiobio._lazy import lazy_exports

_LAZY = {
    "Ellipsoid": "radiobio.synthetic.phantoms",
    "Phantom": "radiobio.synthetic.phantoms",
    "ellipsoid_phantom": "radiobio.synthetic.phantoms",
    "multi_organ_phantom": "radiobio.synthetic.phantoms",
    "physical_grid": "radiobio.synthetic.phantoms",
    "sphere_phantom": "radiobio.synthetic.phantoms",
    "write_cohort": "radiobio.synthetic.phantoms",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from radiobio.synthetic.phantoms import (
        Ellipsoid,
        Phantom,
        ellipsoid_phantom,
        multi_organ_phantom,
        physical_grid,
        sphere_phantom,
        write_cohort,
    )
