"""The one family of errors radiobio raises: every failure a user can fix derives from :class:`RadiobioError`."""

from __future__ import annotations


class RadiobioError(Exception):
    """Base of every error radiobio raises on bad input; the message names the case and the fix."""


class CohortError(RadiobioError):
    """A cohort table breaks its contract (missing column, duplicate ``case_id``, missing file...)."""


class ImageReadError(RadiobioError):
    """An image or mask could not be read: missing, truncated, unreadable or ambiguous (several DICOM series)."""


class GeometryError(RadiobioError):
    """Two images do not share a grid, or an image has an invalid grid (NaN or zero spacing, wrong dimension)."""


class MaskError(RadiobioError):
    """A mask is empty, lacks a requested label, or is not an integer label map."""


class SettingsError(RadiobioError, ValueError):
    """An argument, setting or parameter file is invalid or inconsistent with the data (also a ``ValueError``, so
    ``except ValueError`` keeps working)."""


class ModelBundleError(RadiobioError):
    """A model bundle is missing, corrupt, unsafe to load, or its model card is invalid."""


class BiomarkerError(RadiobioError):
    """A biomarker cannot be computed from the data given (no L3 slice, a missing phase, non-positive volumes)."""


class OutcomeError(RadiobioError):
    """Outcome data cannot be modelled as given (bad durations or events, constant covariates, no events)."""


class ReportError(RadiobioError):
    """A report cannot be built: the results folder is missing or holds nothing radiobio wrote."""


class OutcomeWarning(UserWarning):
    """Data were usable but handled in a documented way (a fold without events, a one-patient batch...)."""


class DomainWarning(UserWarning):
    """An input lies outside a model's training domain (modality, voxel spacing, field of view, intensities):
    its mask was made, but needs a look whatever its quality score."""


class DicomWarning(UserWarning):
    """A DICOM input was read with a documented handling: a skipped POINT or OPEN_PLANAR contour, an uneven slice
    spacing kept as read, a ROI without contours left out."""


def describe(exc: BaseException) -> str:
    """Return ``'ErrorType: message'``, the text written to a result table's ``error`` column."""
    return f"{type(exc).__name__}: {exc}"
