"""Synthetic axial CT slices at the third lumbar vertebra (L3) with exact body-composition masks.

Each phantom is a plausible abdominal slice in Hounsfield units: body outline and skin, subcutaneous fat, the
abdominal wall (rectus, obliques) with the linea alba, paraspinal muscles and quadratus lumborum, both psoas muscles,
the L3 vertebra (body, canal, arch, spinous and transverse processes), visceral fat around kidneys, liver tip,
aorta, IVC, bowel loops and mesenteric vessels, intermuscular fat seams and intramuscular fat, the CT table, partial
volume blur and noise. The label map (:data:`L3_LABELS`) is exact on the pixel grid, so the truth of every area is
its pixel count × pixel area. Everything is deterministic given the seed; the field of view adapts to the body
like a scanner's, so pixel spacing varies between cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiobio.errors import SettingsError
from radiobio.imaging import write_image

#: Labels of the L3 tissue map: 0 is everything else (air, skin, bone, organs, vessels, bowel, linea alba).
L3_LABELS = {"muscle": 1, "sat": 2, "vat": 3, "imat": 4}

#: Mean attenuation (HU) of each tissue before blur and noise.
TISSUE_HU = {"air": -1000.0, "skin": 30.0, "sat": -100.0, "vat": -92.0, "imat": -80.0, "muscle": 46.0,
             "linea_alba": 35.0, "cortical_bone": 750.0, "cancellous_bone": 210.0, "arch": 450.0, "csf": 12.0,
             "kidney": 32.0, "kidney_contrast": 160.0, "liver": 58.0, "blood": 42.0, "blood_contrast": 170.0,
             "bowel_wall": 40.0, "fluid": 12.0, "gas": -900.0, "stool": -40.0, "oral_contrast": 260.0,
             "table": 120.0}


@dataclass
class L3Phantom:
    """A synthetic L3 slice: CT image (HU, int16), tissue label map (:data:`L3_LABELS`) and how it was drawn."""

    image: sitk.Image
    mask: sitk.Image
    sex: str
    height_m: float
    bmi: float
    muscle_scale: float
    seed: int

    @property
    def pixel_area_mm2(self) -> float:
        """In-plane pixel area (mm²)."""
        spacing = self.mask.GetSpacing()
        return float(spacing[0] * spacing[1])

    def area_cm2(self, tissue: str) -> float:
        """Area (cm²) of ``tissue`` (a key of :data:`L3_LABELS`) counted from the label map's own pixels."""
        count = np.count_nonzero(sitk.GetArrayViewFromImage(self.mask) == L3_LABELS[tissue])
        return count * self.pixel_area_mm2 / 100.0

    def masks(self) -> dict[str, sitk.Image]:
        """One binary mask (0/1, same grid) per tissue of :data:`L3_LABELS`."""
        return {tissue: sitk.Cast(self.mask == label, sitk.sitkUInt8) for tissue, label in L3_LABELS.items()}


def l3_phantom(seed: int = 0, sex: str = "M", height_m: float = 1.75, bmi: float = 25.0, muscle_scale: float = 1.0,
               myosteatosis: float = 0.3, size: int = 512, fov_mm: float | None = None, thickness_mm: float = 5.0,
               volume: bool = True, noise_sd: float = 12.0, blur_px: float = 0.6,
               contrast: bool | None = None) -> L3Phantom:
    """Draw one synthetic L3 CT slice with its exact tissue labels.

    ``sex`` (``M``/``F``), ``height_m`` (m) and ``bmi`` (kg/m²) set body size and fat distribution; ``muscle_scale``
    scales muscle thickness (≈ 0.6 sarcopenic … 1.3 muscular); ``myosteatosis`` (0…1) lowers muscle attenuation and
    adds intramuscular fat. ``size`` pixels square over ``fov_mm`` (default: adapted to the body, as a scanner
    would); ``volume=True`` gives a thin 3D image of one slice ``thickness_mm`` thick, else a 2D image. Noise
    (``noise_sd``, HU) and partial-volume blur (``blur_px``, pixels) apply to the image only; labels stay exact.
    ``contrast`` (portal-venous enhancement) is drawn from the seed when ``None``.
    """
    sex = sex.upper()
    if sex not in ("M", "F"):
        raise SettingsError(f"sex must be 'M' or 'F', not {sex!r}")
    rng = np.random.default_rng(seed)
    contrast = bool(rng.random() < 0.6) if contrast is None else contrast
    body = _BodyShape(rng, sex, height_m, bmi)
    fov = fov_mm if fov_mm is not None else float(np.clip(2 * body.a * 1.12 + 40, 300, 500))
    spacing = fov / size
    coords = (np.arange(size) - (size - 1) / 2.0) * spacing
    x, y = np.meshgrid(coords, coords - body.y_shift)  # y grows posterior (image rows), x to the patient's left
    draw = _Drawing(x, y, rng)
    hu, labels = _draw_slice(draw, body, sex, muscle_scale, myosteatosis, contrast)
    hu = _acquire(hu, rng, blur_px, noise_sd, spacing)
    return L3Phantom(_to_image(hu.astype(np.int16), spacing, thickness_mm, volume),
                     _to_image(labels.astype(np.uint8), spacing, thickness_mm, volume),
                     sex, float(height_m), float(bmi), float(muscle_scale), int(seed))


class _BodyShape:
    """Body outline and subcutaneous fat thickness as smooth functions of the polar angle."""

    def __init__(self, rng: np.random.Generator, sex: str, height_m: float, bmi: float) -> None:
        grow = (height_m / 1.70) ** 0.8
        self.muscle_size = (height_m / 1.70) * (1.0 if sex == "M" else 0.92)
        self.a = (142 + 5.0 * (bmi - 25)) * (1.02 if sex == "M" else 0.98) * grow * rng.uniform(0.95, 1.05)
        self.b_post = (98 + 3.5 * (bmi - 25)) * grow * rng.uniform(0.95, 1.05)
        self.b_ant = self.b_post * (1.04 + 0.012 * max(bmi - 22, 0)) * (1.05 if sex == "M" else 1.0)
        self.y_shift = -12.0  # leave room for the table below the back
        self.harmonics = [(k, rng.uniform(-0.018, 0.018), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4, 5)]
        base = (7 + 1.8 * (bmi - 18)) if sex == "M" else (10 + 2.2 * (bmi - 18))
        self.sat0 = float(np.clip(base * rng.uniform(0.85, 1.15), 3, 70))
        self.female = sex == "F"
        self.bmi = bmi
        self.sat_harmonics = [(k, rng.uniform(-0.06, 0.06), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)]

    def radius(self, theta: np.ndarray) -> np.ndarray:
        b = np.where(np.sin(theta) < 0, self.b_ant, self.b_post)
        r = self.a * b / np.sqrt((b * np.cos(theta)) ** 2 + (self.a * np.sin(theta)) ** 2)
        return r * (1 + sum(e * np.cos(k * theta + p) for k, e, p in self.harmonics))

    def sat(self, theta: np.ndarray) -> np.ndarray:
        s = np.sin(theta)
        shape = 1 + 0.25 * np.maximum(-s, 0) - 0.2 * np.maximum(s, 0) + (0.25 if self.female else 0.05) * np.cos(
            theta) ** 2
        return self.sat0 * shape * (1 + sum(e * np.cos(k * theta + p) for k, e, p in self.sat_harmonics))


class _Drawing:
    """Pixel-centre coordinates (mm) and shape predicates on them."""

    def __init__(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
        self.x, self.y, self.rng = x, y, rng
        self.rho = np.hypot(x, y)
        self.theta = np.arctan2(y, x)

    def ellipse(self, cx: float, cy: float, a: float, b: float, angle_deg: float = 0.0,
                scale: float = 1.0) -> np.ndarray:
        t = math.radians(angle_deg)
        dx, dy = self.x - cx, self.y - cy
        u = dx * math.cos(t) + dy * math.sin(t)
        v = -dx * math.sin(t) + dy * math.cos(t)
        return (u / (a * scale)) ** 2 + (v / (b * scale)) ** 2 <= 1.0

    def shell(self, cx: float, cy: float, a: float, b: float, width: float, angle_deg: float = 0.0) -> np.ndarray:
        """Band of ``width`` mm just outside the ellipse (a, b)."""
        outer = self.ellipse(cx, cy, a + width, b + width, angle_deg)
        return outer & ~self.ellipse(cx, cy, a, b, angle_deg)


def _draw_slice(d: _Drawing, body: _BodyShape, sex: str, s: float, myo: float,
                contrast: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = d.rng
    hu = np.full(d.x.shape, TISSUE_HU["air"], dtype=np.float64)
    labels = np.zeros(d.x.shape, dtype=np.uint8)
    g = body.muscle_size  # muscles scale with stature, not with girth
    r_body = body.radius(d.theta)
    inside_body = d.rho < r_body
    fascia_r = r_body - body.sat(d.theta)  # outer surface of the muscle wall
    fascia = d.rho < fascia_r
    wall = fascia & (d.rho >= fascia_r - s * g * (8.5 + 8.0 * np.cos(d.theta) ** 2))

    # spine position from the back: posterior fascia, paraspinal depth, canal, vertebral body
    y_back = float(body.radius(np.array(np.pi / 2)) - body.sat(np.array(np.pi / 2)))
    depth = (32 + 18 * s) * g
    canal_y = y_back - depth
    vb_a, vb_b = 24 * g * rng.uniform(0.93, 1.07), 17 * g * rng.uniform(0.93, 1.07)
    vb_y = canal_y - 10 - 2 - vb_b
    # paraspinal and quadratus lumborum mass: a half-ellipse resting on the posterior fascia
    back = fascia & d.ellipse(0, y_back + 6, (66 + 32 * s) * g, y_back + 6 - vb_y - 0.3 * vb_b) & (d.y > vb_y)

    # fat everywhere in the body first, then visceral fat inside the wall, then muscle and what lies in it
    paint(hu, labels, inside_body, "sat", L3_LABELS["sat"])
    paint(hu, labels, d.rho >= r_body - 2.0, "skin", 0, where=inside_body)
    paint(hu, labels, fascia, "vat", L3_LABELS["vat"])
    paint(hu, labels, wall | back, "muscle", L3_LABELS["muscle"])
    linea = (np.abs(d.x) < rng.uniform(3, 7) * g) & (d.y < 0) & wall
    paint(hu, labels, linea, "linea_alba", 0)

    ps_a, ps_b = 15 * s * g, 18 * s ** 0.8 * g
    for side in (-1, 1):
        psoas = d.ellipse(side * (vb_a + ps_a - 3), vb_y - 1, ps_a, ps_b, side * 15)
        paint(hu, labels, psoas & fascia, "muscle", L3_LABELS["muscle"])
        es_cx, es_a, es_b = side * (13 + 13 * s) * g, (18 * s + 5) * g, (22 * s + 4) * g
        seam = d.shell(es_cx, canal_y + 4, es_a, es_b, rng.uniform(1.5, 3.0)) & back
        paint(hu, labels, seam, "imat", L3_LABELS["imat"])
    _intramuscular_fat(d, hu, labels, myo, back)

    _vertebra(d, hu, labels, vb_y, vb_a, vb_b, canal_y)
    _viscera(d, hu, labels, body, vb_y, vb_a, vb_b, ps_a, contrast, sex)
    muscle = labels == L3_LABELS["muscle"]
    hu[muscle] += -18.0 * myo + d.rng.normal(0, 3)
    table_y = float(body.b_post) + 14 + 0.0006 * d.x ** 2
    paint(hu, labels, (d.y > table_y) & (d.y < table_y + 8) & (np.abs(d.x) < body.a * 1.05), "table", 0,
          where=~inside_body)
    return hu, labels


def paint(hu: np.ndarray, labels: np.ndarray, region: np.ndarray, tissue: str, label: int,
          where: np.ndarray | None = None) -> None:
    """Set ``region`` (optionally only ``where``) to ``tissue``'s HU and ``label``."""
    if where is not None:
        region = region & where
    hu[region] = TISSUE_HU[tissue]
    labels[region] = label


def _intramuscular_fat(d: _Drawing, hu: np.ndarray, labels: np.ndarray, myo: float, back: np.ndarray) -> None:
    """Small fat islands inside muscle, denser in the paraspinal block and with myosteatosis."""
    muscle = np.flatnonzero(labels == L3_LABELS["muscle"])
    for _ in range(d.rng.poisson(10 + 70 * myo) if muscle.size else 0):
        index = d.rng.choice(muscle)
        if not back.flat[index] and d.rng.random() < 0.5:
            continue
        cx, cy = d.x.flat[index], d.y.flat[index]
        blob = d.ellipse(cx, cy, d.rng.uniform(1.0, 3.5), d.rng.uniform(0.7, 2.0), d.rng.uniform(0, 180))
        paint(hu, labels, blob & (labels == L3_LABELS["muscle"]), "imat", L3_LABELS["imat"])


def _vertebra(d: _Drawing, hu: np.ndarray, labels: np.ndarray, vb_y: float, vb_a: float, vb_b: float,
              canal_y: float) -> None:
    rng = d.rng
    canal_cy, canal_r = canal_y, 9.0
    arch = d.ellipse(0, canal_cy + 2, canal_r + 6, canal_r + 6) & (d.y > canal_cy - 4)
    spinous = d.ellipse(0, canal_cy + canal_r + 16, 4.0, 15.0)
    transverse = np.zeros_like(arch)
    for side in (-1, 1):
        transverse |= d.ellipse(side * (vb_a + 10), vb_y + vb_b + 3, 17.0, 4.5, side * -12)
    paint(hu, labels, arch | spinous | transverse, "arch", 0)
    paint(hu, labels, d.ellipse(0, canal_cy, canal_r, canal_r * rng.uniform(0.8, 1.0)), "csf", 0)
    paint(hu, labels, d.ellipse(0, vb_y, vb_a, vb_b), "cortical_bone", 0)
    paint(hu, labels, d.ellipse(0, vb_y, vb_a - 2, vb_b - 2), "cancellous_bone", 0)


def _viscera(d: _Drawing, hu: np.ndarray, labels: np.ndarray, body: _BodyShape, vb_y: float, vb_a: float,
             vb_b: float, ps_a: float, contrast: bool, sex: str) -> None:
    rng = d.rng
    blood = "blood_contrast" if contrast else "blood"
    paint(hu, labels, d.ellipse(8, vb_y - vb_b - 12, 11, 11), blood, 0, where=labels == L3_LABELS["vat"])  # aorta
    paint(hu, labels, d.ellipse(-22, vb_y - vb_b - 9, 13, 9, 10), blood, 0, where=labels == L3_LABELS["vat"])  # IVC
    for side in (-1, 1):
        if rng.random() < 0.85:
            cx = side * (vb_a + 2 * ps_a + 24)
            kidney = d.ellipse(cx, vb_y + 6, 27 * rng.uniform(0.8, 1.1), 21 * rng.uniform(0.8, 1.1), side * 30)
            sinus = d.ellipse(cx - side * 12, vb_y + 4, 7, 5)  # renal sinus fat stays visceral fat
            paint(hu, labels, kidney & ~sinus, "kidney_contrast" if contrast else "kidney", 0,
                  where=labels == L3_LABELS["vat"])
    if rng.random() < 0.4:
        paint(hu, labels, d.ellipse(-body.a * 0.55, -body.b_ant * 0.05, 38, 50), "liver", 0,
              where=labels == L3_LABELS["vat"])
    free = labels == L3_LABELS["vat"]
    # bowel loops fill part of the cavity; the rest is visceral fat (more of it in men and with BMI)
    target = float(np.clip(0.62 - 0.03 * (body.bmi - 25) - (0.1 if sex == "M" else 0.0), 0.2, 0.85))
    goal = target * np.count_nonzero(free)
    covered = 0
    colon_sides = [-1, 1]
    for _ in range(600):
        if covered >= goal:
            break
        if colon_sides:
            side = colon_sides.pop()
            cx, cy, radius = side * body.a * 0.55, -body.b_ant * 0.05 + rng.uniform(-10, 10), rng.uniform(16, 22)
        else:
            candidates = np.flatnonzero(free & (labels == L3_LABELS["vat"]))
            if candidates.size == 0:
                break
            index = rng.choice(candidates)
            cx, cy, radius = d.x.flat[index], d.y.flat[index], rng.uniform(7, 15)
        loop = d.ellipse(cx, cy, radius, radius * rng.uniform(0.7, 1.0), rng.uniform(0, 180)) & free
        lumen = d.ellipse(cx, cy, radius - 2.5, radius * rng.uniform(0.7, 1.0) - 2.5) & loop
        content = rng.choice(["fluid", "gas", "oral_contrast" if contrast else "stool"], p=[0.55, 0.15, 0.3])
        paint(hu, labels, loop, "bowel_wall", 0)
        paint(hu, labels, lumen, str(content), 0)
        covered = np.count_nonzero(free & (labels != L3_LABELS["vat"]))
    vat = np.flatnonzero(labels == L3_LABELS["vat"])
    for _ in range(int(rng.integers(6, 16))):  # mesenteric vessels
        if vat.size == 0:
            break
        index = rng.choice(vat)
        vessel = d.ellipse(d.x.flat[index], d.y.flat[index], rng.uniform(1.5, 3.0), rng.uniform(1.5, 3.0))
        paint(hu, labels, vessel & (labels == L3_LABELS["vat"]), blood, 0)


def _acquire(hu: np.ndarray, rng: np.random.Generator, blur_px: float, noise_sd: float, spacing: float) -> np.ndarray:
    """Partial-volume blur, correlated texture and quantum noise, as a scanner would add them."""
    image = sitk.GetImageFromArray(hu.astype(np.float32))
    if blur_px > 0:
        image = sitk.SmoothingRecursiveGaussian(image, blur_px)
    out = sitk.GetArrayFromImage(image).astype(np.float64)
    if noise_sd > 0:
        texture = sitk.GetImageFromArray(rng.normal(0, 1, hu.shape).astype(np.float32))
        texture = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(texture, 1.5)).astype(np.float64)
        texture *= 0.5 * noise_sd / (texture.std() or 1.0)
        out += texture + rng.normal(0, noise_sd, hu.shape)
    return np.clip(np.rint(out), -1024, 3071)


def _to_image(array: np.ndarray, spacing: float, thickness_mm: float, volume: bool) -> sitk.Image:
    n = array.shape[0]
    origin = -(n - 1) / 2.0 * spacing
    if volume:
        image = sitk.GetImageFromArray(array[None])
        image.SetSpacing((spacing, spacing, float(thickness_mm)))
        image.SetOrigin((origin, origin, 0.0))
    else:
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((spacing, spacing))
        image.SetOrigin((origin, origin))
    return image


def l3_clinical(n: int, seed: int = 0) -> pd.DataFrame:
    """A plausible clinical table for ``n`` phantoms: ``sex``, ``height_m``, ``weight_kg``, ``bmi`` and the hidden
    drawing parameters ``muscle_scale`` and ``myosteatosis`` (deterministic by seed)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["M", "F"], size=n)
    height = np.where(sex == "M", rng.normal(1.76, 0.07, n), rng.normal(1.63, 0.065, n)).clip(1.45, 2.02)
    bmi = rng.normal(26.0, 4.5, n).clip(17.5, 38.0)
    return pd.DataFrame({"sex": sex, "height_m": height.round(2), "weight_kg": (bmi * height.round(2) ** 2).round(1),
                         "muscle_scale": rng.uniform(0.6, 1.25, n).round(3),
                         "myosteatosis": rng.uniform(0.0, 0.8, n).round(3)})


def write_l3_cohort(folder: str | Path, n: int = 20, seed: int = 0, size: int = 512, prefix: str = "l3_",
                    **phantom_options: object) -> pd.DataFrame:
    """Write ``n`` L3 phantoms and their demo cohort; return the cohort (absolute paths).

    Files: ``images/<case>.nii.gz`` (HU), ``masks/<case>.nii.gz`` (all tissues, :data:`L3_LABELS`) and
    ``masks/<case>_<tissue>.nii.gz`` (binary per tissue); ``cohort.csv`` (paths relative to ``folder``: columns
    ``case_id``, ``image``, ``mask``, ``mask_muscle``, ``mask_sat``, ``mask_vat``, ``mask_imat``, ``sex``,
    ``height_m``, ``weight_kg``) and ``truth.csv`` (each tissue's exact area in cm² and the drawing parameters).
    """
    folder = Path(folder)
    clinical = l3_clinical(n, seed)
    rows, truth = [], []
    for i, c in clinical.iterrows():
        case_id = f"{prefix}{i:03d}"
        height = float(c["height_m"])
        phantom = l3_phantom(seed=seed * 100_003 + i, sex=str(c["sex"]), height_m=height,
                             bmi=float(c["weight_kg"]) / height**2, muscle_scale=float(c["muscle_scale"]),
                             myosteatosis=float(c["myosteatosis"]), size=size, **phantom_options)  # type: ignore[arg-type]
        row = {"case_id": case_id,
               "image": write_image(phantom.image, folder / "images" / f"{case_id}.nii.gz"),
               "mask": write_image(phantom.mask, folder / "masks" / f"{case_id}.nii.gz")}
        for tissue, mask in phantom.masks().items():
            row[f"mask_{tissue}"] = write_image(mask, folder / "masks" / f"{case_id}_{tissue}.nii.gz")
        rows.append({**row, "sex": c["sex"], "height_m": height, "weight_kg": c["weight_kg"]})
        truth.append({"case_id": case_id, **{f"{t}_cm2": phantom.area_cm2(t) for t in L3_LABELS},
                      "pixel_mm": phantom.mask.GetSpacing()[0], "muscle_scale": c["muscle_scale"],
                      "myosteatosis": c["myosteatosis"]})
    cohort = pd.DataFrame(rows)
    relative = cohort.copy()
    for column in [c for c in cohort.columns if c == "image" or c.startswith("mask")]:
        cohort[column] = cohort[column].map(str)
        relative[column] = [Path(p).relative_to(folder).as_posix() for p in cohort[column]]
    relative.to_csv(folder / "cohort.csv", index=False)
    pd.DataFrame(truth).to_csv(folder / "truth.csv", index=False)
    return cohort
