"""Synthetic phantoms with known truth, for tests, benchmarks, the demo and the docs."""

from radiobio.synthetic.phantoms import (
    Ellipsoid,
    Phantom,
    ellipsoid_phantom,
    multi_organ_phantom,
    physical_grid,
    sphere_phantom,
    write_cohort,
)

__all__ = ["Ellipsoid", "Phantom", "ellipsoid_phantom", "multi_organ_phantom", "physical_grid", "sphere_phantom",
           "write_cohort"]
