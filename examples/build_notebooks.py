"""Write the tutorial notebooks of ``examples/`` (outputs cleared) from the cells below.

Run ``.venv/bin/python examples/build_notebooks.py`` after editing a notebook's cells here; the test suite executes
every notebook (``tests/report/test_report_notebooks.py``), so they never rot.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

BATCH_RADIOMICS = [
    ("md", """# Batch radiomics on a cohort

This tutorial extracts PyRadiomics features for every case and label of a small cohort, in parallel, into one tidy
table; checks a feature against the known truth of the synthetic scans; and shows how a batch survives a bad case
and resumes after an interruption.

The cohort is synthetic (CT-like phantoms with five labelled "organs" whose true volumes are known), so the notebook
needs no data download."""),
    ("code", """%matplotlib inline
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import radiobio
from radiobio import report
from radiobio.synthetic import multi_organ_phantom, write_cohort

work = Path(tempfile.mkdtemp(prefix="radiobio-01-"))
phantoms = [multi_organ_phantom(seed=i) for i in range(6)]
cohort = write_cohort(phantoms, work / "cohort")
cohort.head()"""),
    ("md", """## The cohort table

One row per scan: `case_id`, `image` and `mask` (paths; relative paths in `cohort.csv` resolve against its folder).
Any other column would be clinical data and pass through every stage. `read_cohort` validates every row at once."""),
    ("code", """cohort = radiobio.read_cohort(work / "cohort" / "cohort.csv")
organs = {"liver": 1, "spleen": 2, "kidney_right": 3, "kidney_left": 4, "spine": 5}
print(len(cohort), "cases; labels:", organs)"""),
    ("md", """Before measuring anything, look at the masks: `report.overlay` draws each label's contour on the
slice with the most labelled voxels, windowed for soft tissue (W400/L40) and in physical proportions."""),
    ("code", """report.overlay(cohort.image[0], cohort["mask"][0], label_names={v: k for k, v in organs.items()},
               title="case000")"""),
    ("md", """## Extraction

`extract_features` takes the cohort, PyRadiomics settings (a preset `"ct"`, `"mr"`, `"ibsi"`, a YAML file or a
dict) and the labels. Here a light configuration: the original image and a Laplacian-of-Gaussian filter (σ = 2 mm),
shape, first-order and GLCM features. `jobs=2` runs two worker processes; `out=` saves each finished case, so the
same call resumes after an interruption."""),
    ("code", """params = {
    "imageType": {"Original": {}, "LoG": {"sigma": [2.0]}},
    "featureClass": {"shape": None, "firstorder": None, "glcm": None},
    "setting": {"binWidth": 25},
}
features = radiobio.extract_features(cohort, params=params, labels=organs, jobs=2,
                                     out=work / "features.parquet", progress=False)
print(features.shape)
features[["case_id", "label_name", "error", "original_shape_MeshVolume", "original_firstorder_Mean",
          "original_glcm_Contrast", "log-sigma-2-0-mm-3D_glcm_Contrast"]].head(10)"""),
    ("md", """One row per (case, label); feature columns are named as PyRadiomics names them; `error` is empty
when the row succeeded. The parameters, their hash and the package versions travel with the table:"""),
    ("code", """provenance = features.attrs["provenance"]
{key: provenance[key] for key in ("params_hash", "created")} | {"versions": provenance.get("versions")}"""),
    ("md", """## Check against the truth

The phantoms know each organ's exact voxel volume. PyRadiomics' `VoxelVolume` must equal it."""),
    ("code", """truth = pd.DataFrame([{"case_id": f"case{i:03d}", "label": label, "true_mm3": p.voxel_volume_mm3(label)}
                      for i, p in enumerate(phantoms) for label in organs.values()])
check = features.merge(truth, on=["case_id", "label"])
check["difference_mm3"] = check["original_shape_VoxelVolume"] - check["true_mm3"]
print("largest difference:", check["difference_mm3"].abs().max(), "mm³")
assert check["difference_mm3"].abs().max() < 1e-6"""),
    ("code", """fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for name, rows in features.groupby("label_name"):
    axes[0].scatter(rows["original_shape_MeshVolume"] / 1000, rows["original_firstorder_Mean"], label=name)
axes[0].set_xlabel("mesh volume (mL)")
axes[0].set_ylabel("mean intensity (HU)")
axes[0].legend()
features.boxplot(column="log-sigma-2-0-mm-3D_glcm_Contrast", by="label_name", ax=axes[1], rot=30)
axes[1].set_title("LoG σ = 2 mm GLCM contrast")
axes[1].set_xlabel("")
fig.suptitle("")
plt.tight_layout()"""),
    ("md", """## A bad case does not stop the batch

Point one case at a mask that does not exist. Its rows get an `error` saying what is wrong; every other case is
extracted. (From the shell, `radiobio extract` exits with code 1 and lists the failures.)"""),
    ("code", """broken = cohort.copy()
broken.loc[2, "mask"] = str(work / "cohort" / "masks" / "missing.nii.gz")
table = radiobio.extract_features(broken, params=params, labels=organs, jobs=2, progress=False)
failed = table[table["error"] != ""]
print(f"{table['case_id'].nunique() - failed['case_id'].nunique()} cases ok, {failed['case_id'].nunique()} failed")
failed[["case_id", "label", "error"]].head(3)"""),
    ("md", """## Resuming

Running the same call with the same `out=` again reuses every finished case (it is read back, not recomputed);
changing the parameters changes their hash, so nothing stale is reused."""),
    ("code", """import time

start = time.perf_counter()
again = radiobio.extract_features(cohort, params=params, labels=organs, jobs=2, out=work / "features.parquet",
                                  progress=False)
print(f"second run: {time.perf_counter() - start:.2f} s")
key = ["case_id", "label"]
first, second = (t.sort_values(key).set_index(key)["original_glcm_Contrast"] for t in (features, again))
assert first.equals(second)"""),
    ("md", """The same from the shell, on a laptop or on a Dask cluster:

```bash
radiobio extract cohort.csv -p ct -o features.parquet -j 4
radiobio extract cohort.csv -p params.yaml -o features.csv --scheduler tcp://scheduler:8786
```"""),
]

SARCOPENIA_SURVIVAL = [
    ("md", """# Sarcopenia and survival

From L3 CT slices with body-composition masks to skeletal muscle index, sarcopenia by published cut-offs, and
survival by sarcopenia status (Kaplan-Meier curves, log-rank test, Cox model) — ending in an HTML report.

The scans are synthetic L3 slices with exact tissue masks (muscle, subcutaneous, visceral and intermuscular fat).
Survival times are simulated here with a **known** sarcopenia effect (hazard ratio 2.5), so we can see whether the
analysis recovers it."""),
    ("code", """%matplotlib inline
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from radiobio import biomarkers, outcome, report
from radiobio.tables import write_table
from radiobio.synthetic.l3 import write_l3_cohort

work = Path(tempfile.mkdtemp(prefix="radiobio-02-"))
cohort = write_l3_cohort(work / "cohort", n=100, size=256, seed=3)
truth = pd.read_csv(work / "cohort" / "truth.csv")
cohort[["case_id", "sex", "height_m", "weight_kg"]].head()"""),
    ("md", """Each case has an image, a label map `mask` (1 muscle, 2 SAT, 3 VAT, 4 IMAT) and one binary mask per
tissue. The QC overlay shows them in the classic colours (muscle red, SAT cyan, VAT yellow, IMAT green), windowed
for soft tissue (W400/L40: −160 to 240 HU)."""),
    ("code", """names = {1: "muscle", 2: "SAT", 3: "VAT", 4: "IMAT"}
report.overlay(cohort.image[0], cohort["mask"][0], window="soft_tissue", colours=report.L3_COLOURS,
               label_names=names, title=cohort.case_id[0])"""),
    ("md", """## Body composition

`biomarkers.sarcopenia` measures the skeletal muscle area (SMA, cm², muscle mask restricted to −29…150 HU), its mean
attenuation, the fat areas, and the skeletal muscle index SMI = SMA / height² (cm²/m²). `sarcopenic` applies the
Prado 2008 cut-offs (SMI < 52.4 cm²/m² in men, < 38.5 in women)."""),
    ("code", """body = biomarkers.sarcopenia(cohort, muscle_column="mask_muscle", cutoffs="prado2008")
body[["case_id", "sex", "sma_cm2", "muscle_hu_mean", "vat_cm2", "sat_cm2", "smi_cm2_m2", "sarcopenic"]].head()"""),
    ("md", """The areas are in physical units (pixels × pixel spacing). Against the phantoms' exact areas: SMA is
at most the muscle mask's area (pixels outside −29…150 HU are left out), and the fat areas are exact."""),
    ("code", """check = body.merge(truth, on="case_id", suffixes=("", "_truth"))
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].scatter(check["muscle_cm2"], check["sma_cm2"])
axes[0].plot([60, 220], [60, 220], color="grey", linestyle="--")
axes[0].set_xlabel("muscle mask area, truth (cm²)")
axes[0].set_ylabel("SMA, −29…150 HU (cm²)")
for sex, rows in body.groupby("sex"):
    axes[1].hist(rows["smi_cm2_m2"], bins=12, alpha=0.6, label=sex)
for sex, cut in (("M", 52.4), ("F", 38.5)):
    axes[1].axvline(cut, linestyle="--", color="C0" if sex == "F" else "C1")
axes[1].set_xlabel("SMI (cm²/m²)")
axes[1].legend()
plt.tight_layout()
assert (check["sma_cm2"] <= check["muscle_cm2"] + 1e-9).all()
assert np.allclose(check["vat_cm2"], check["vat_cm2_truth"]) and np.allclose(check["sat_cm2"], check["sat_cm2_truth"])
print(f"{int(body['sarcopenic'].sum())} of {len(body)} cases sarcopenic")"""),
    ("md", """## Survival with a known effect

We simulate overall survival: exponential event times with a baseline median of about 3 years, hazard ratio 2.5
for sarcopenic patients and 1.03 per year of age, censored uniformly between 1 and 6 years."""),
    ("code", """rng = np.random.default_rng(3)
table = cohort.merge(body[["case_id", "smi_cm2_m2", "sarcopenic", "muscle_hu_mean"]], on="case_id")
table["age"] = rng.normal(65, 9, len(table)).round()
table["sarcopenia"] = np.where(table["sarcopenic"], "sarcopenic", "not sarcopenic")
hazard = np.log(2) / 1100 * np.where(table["sarcopenic"], 2.5, 1.0) * 1.03 ** (table["age"] - 65)
event_days = rng.exponential(1 / hazard)
censor_days = rng.uniform(365, 6 * 365, len(table))
table["os_days"] = np.minimum(event_days, censor_days).round()
table["os_event"] = (event_days <= censor_days).astype(int)
table[["case_id", "sarcopenia", "age", "os_days", "os_event"]].head()"""),
    ("md", """### Kaplan-Meier by sarcopenia status"""),
    ("code", """km = outcome.kaplan_meier(table, "os_days", "os_event", group="sarcopenia")
display(km.medians)
display(km.logrank)
outcome.km_plot(km, time_label="days")"""),
    ("md", """### Cox model

`outcome.cox` fits lifelines' Cox model; hazard ratios are per unit of each covariate (`sarcopenic` is 0/1, so its
HR compares sarcopenic with non-sarcopenic patients at the same age). The true values are 2.5 and 1.03."""),
    ("code", """table["sarcopenic_01"] = table["sarcopenic"].astype(int)
fit = outcome.cox(table, "os_days", "os_event", ["sarcopenic_01", "age"])
print(f"n = {fit.n}, events = {fit.events}, C-index = {fit.concordance:.3f}, PH violations: {fit.ph_violations}")
fit.table[["covariate", "hr", "hr_lower_95", "hr_upper_95", "p"]]"""),
    ("md", """Both true values lie inside the 95% confidence intervals; with 100 patients the interval of the
sarcopenia effect is still wide, which is why cohort studies need hundreds of patients to pin it down."""),
    ("code", """truth_hr = {"sarcopenic_01": 2.5, "age": 1.03}
inside = fit.table.set_index("covariate").apply(
    lambda row: row["hr_lower_95"] <= truth_hr[row.name] <= row["hr_upper_95"], axis=1)
assert inside.all(), inside
outcome.forest_plot(fit)"""),
    ("md", """## The report

Write the results in the report's folder layout and build one self-contained HTML page: cohort summary, QC
gallery, biomarkers, KM curve and Cox table. From the shell: `radiobio report RESULTS_DIR`."""),
    ("code", """results = work / "results"
results.mkdir()
write_table(table.drop(columns=["sarcopenic", "smi_cm2_m2", "muscle_hu_mean", "sarcopenia"]), results / "cohort.csv")
write_table(body, results / "biomarkers.parquet")
report.write_qc(cohort.head(12), results / "qc", colours=report.L3_COLOURS, label_names=names)
report.write_survival(results, km, fit, time_label="days")
report.write_versions(results)
page = report.html(results, title="Sarcopenia and survival (synthetic L3 cohort)")
print(page, f"{page.stat().st_size / 1e6:.1f} MB")"""),
]

SIGNATURE = [
    ("md", """# A radiomics signature with nested cross-validation

Building a prognostic signature from many radiomics features invites optimism: choosing features and
hyper-parameters on the same patients used to measure performance inflates it. `outcome.nested_cv` refits every
data-dependent step (imputation, scaling, harmonisation, filtering, selection, the model) inside each outer fold and
tunes hyper-parameters in an inner loop, so the estimate is honest.

We use a synthetic feature table where the truth is known: 150 patients, 30 features, of which three drive the
hazard."""),
    ("code", """%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from radiobio import outcome

rng = np.random.default_rng(42)
n_patients, n_features = 150, 30
names = [f"original_glcm_feature{i:02d}" for i in range(n_features)]
X = rng.normal(size=(n_patients, n_features))
beta = np.zeros(n_features)
beta[:3] = [0.9, -0.7, 0.5]  # the true signature: features 00, 01 and 02
event_days = rng.exponential(365 * np.exp(-X @ beta))
censor_days = rng.uniform(200, 1500, n_patients)
df = pd.DataFrame(X, columns=names)
df["os_days"] = np.minimum(event_days, censor_days).round(1)
df["os_event"] = (event_days <= censor_days).astype(int)
print(f"{n_patients} patients, {df['os_event'].sum()} events")
df.iloc[:5, [0, 1, 2, 3, -2, -1]]"""),
    ("md", """## Nested cross-validation

3 outer folds × 2 repeats estimate performance; 3 inner folds pick the penalty of the LASSO-Cox selection. The
result holds the mean of each metric with a corrected 95% interval (Nadeau & Bengio), the per-fold results, how often
each feature was selected, and the final model refitted on all patients."""),
    ("code", """signature = outcome.nested_cv(df, names, duration="os_days", event="os_event", outer=3, repeats=2,
                              inner=3, random_state=0)
signature.summary"""),
    ("code", """top = signature.selected.head(10)
fig, ax = plt.subplots(figsize=(7, 3.5))
colours = ["C3" if f in names[:3] else "C0" for f in top["feature"][::-1]]
ax.barh(top["feature"][::-1], top["frequency"][::-1], color=colours)
ax.set_xlabel("selected in this fraction of outer folds")
ax.set_title("Feature selection stability (red: true signature)")
plt.tight_layout()
print("final model uses:", signature.final_features)"""),
    ("md", """The three true features are selected in every fold and the C-index is well above 0.5.

## No signal, no signature

Now the same procedure on 30 features of pure noise. An honest estimate must be close to chance (C-index 0.5):
nested cross-validation cannot be fooled by selecting the luckiest features, because selection happens inside each
fold."""),
    ("code", """noise = pd.DataFrame(rng.normal(size=(n_patients, n_features)), columns=names)
noise[["os_days", "os_event"]] = df[["os_days", "os_event"]]
null = outcome.nested_cv(noise, names, duration="os_days", event="os_event", outer=3, repeats=2, inner=3,
                         random_state=0, refit=False)
null.summary"""),
    ("code", """c_signal = signature.summary.set_index("metric").loc["c_index"]
c_noise = null.summary.set_index("metric").loc["c_index"]
fig, ax = plt.subplots(figsize=(5, 3))
for i, (label, row) in enumerate((("true signature", c_signal), ("noise only", c_noise))):
    ax.errorbar(row["mean"], i, xerr=[[row["mean"] - row["lower_95"]], [row["upper_95"] - row["mean"]]], fmt="o",
                capsize=4)
ax.axvline(0.5, color="grey", linestyle="--")
ax.set_yticks([0, 1], ["true signature", "noise only"])
ax.set_xlabel("C-index (nested CV, 95% CI)")
plt.tight_layout()
assert c_signal["mean"] > 0.65 and abs(c_noise["mean"] - 0.5) < 0.12"""),
    ("md", """## Applying the signature

`signature.final_pipeline` is a fitted scikit-learn Pipeline; `predict` gives each new patient's risk score (higher
is worse). In practice, split by patient (`groups="patient_id"`) when a patient has several lesions or scans,
harmonise scanners with ComBat inside the folds (`batch="site"`), and keep only robust features
(`robustness=`); see the outcome guide in the documentation."""),
    ("code", """risk = signature.final_pipeline.predict(df[names].head(5))
pd.DataFrame({"risk_score": risk, "os_days": df["os_days"].head(5), "os_event": df["os_event"].head(5)})"""),
]

HIPPOCAMPUS = [
    ("md", """# Training and evaluating a segmentation model: the hippocampus

This tutorial trains a 3D U-Net on real T1 MRI crops around the hippocampus (Medical Segmentation Decathlon,
Task 04; labels 1 anterior, 2 posterior), segments scans with the shipped model `models/hippocampus-3d`, and scores
the masks in millimetres against the manual labels.

Training a useful model takes about 50 minutes on two CPU cores (the exact command is in the model card), so here a
tiny model trains for a few steps to show the API, and the shipped model does the real segmentation. The data
folder is found through `RADIOBIO_TEST_DATA` (default `../shared/data` beside the repository)."""),
    ("code", """%matplotlib inline
import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import radiobio
from radiobio import report

repo = Path(radiobio.__file__).resolve().parents[1]
data = Path(os.environ.get("RADIOBIO_TEST_DATA", repo.parent / "shared" / "data")) / "hippocampus"
work = Path(tempfile.mkdtemp(prefix="radiobio-03-"))
images = sorted((data / "images").glob("*.nii.gz"))
cohort = pd.DataFrame({"case_id": [p.name.replace(".nii.gz", "") for p in images],
                       "image": [str(p) for p in images],
                       "mask": [str(data / "labels" / p.name) for p in images]})
print(len(cohort), "cases")
cohort.head(3)"""),
    ("md", """## A training configuration

A model is described by a configuration: labels, architecture, preprocessing (target spacing, intensity
normalisation, patch size), training (epochs, batch, learning rate, augmentation) and inference (sliding-window
overlap, test-time flips, post-processing). `radiobio.train` splits the cohort by case into training and
validation, trains with Dice + cross-entropy, keeps the best checkpoint, and writes a bundle: `model.keras`,
`model_card.json` and a human `MODEL_CARD.md`."""),
    ("code", """config = {
    "labels": {1: "anterior", 2: "posterior"},
    "model": {"architecture": "unet3d", "depth": 2, "base_filters": 4},
    "preprocessing": {"target_spacing": [1.0, 1.0, 1.0], "patch_size": [40, 56, 40],
                      "intensity": {"mode": "zscore"}},
    "training": {"epochs": 2, "batch_size": 2, "samples_per_epoch": 8, "validation_fraction": 0.25, "seed": 0},
}
tiny = radiobio.train(cohort.head(12), config, work / "tiny-model", progress=False)
pd.read_csv(tiny / "training_log.csv")"""),
    ("md", """The tiny model is far from useful after a few steps. The shipped bundle was trained with
the same call on all 200 cases (160 training, 40 held out); its card records the command, the time and the
held-out scores."""),
    ("code", """bundle = repo / "models" / "hippocampus-3d"
card = json.loads((bundle / "model_card.json").read_text())
held_out = card["training_data"]["validation_cases"]
print(card["training_data"]["split"])
pd.DataFrame(card["validation_metrics"]["per_label"]).T[["n", "dice_mean", "dice_std", "hd95_mm_mean"]]"""),
    ("md", """## Segmenting held-out cases

`radiobio.segment` runs the sliding window with Gaussian weighting, mirrors left-right for test-time augmentation,
keeps the largest component of each label, and writes each mask on its input image's grid (same size, spacing,
origin and direction), atomically."""),
    ("code", """test = cohort[cohort["case_id"].isin(held_out[:6])].rename(columns={"mask": "mask_manual"})
segmented = radiobio.segment(test, bundle, work / "masks", mask_column="mask_model", jobs=1, progress=False)
segmented[["case_id", "mask_model"]]"""),
    ("md", """## Scoring in millimetres

`radiobio.evaluate` compares two mask columns per case and label: Dice, IoU, 95th-percentile Hausdorff distance
and average symmetric surface distance in mm (from the voxel spacing), and volume similarity."""),
    ("code", """scores = radiobio.evaluate(segmented, "mask_model", "mask_manual")
assert scores["dice"].mean() > 0.8, "the shipped model reaches a mean Dice near 0.88 on held-out cases"
scores.groupby("label")[["dice", "hd95_mm", "assd_mm"]].mean().round(3)"""),
    ("code", """fig, ax = plt.subplots(figsize=(5, 3))
scores.boxplot(column="dice", by="label", ax=ax)
ax.set_title("Dice per label (held-out cases)"); fig.suptitle(""); ax.set_ylabel("Dice")
plt.show()"""),
    ("md", """Every mask must be verifiable: draw the model's contours on the MRI (anterior red, posterior yellow)."""),
    ("code", """case = segmented.iloc[0]
report.overlay(case["image"], case["mask_model"], view="sagittal", label_names={1: "anterior", 2: "posterior"},
               title=case["case_id"])"""),
]

NOTEBOOKS = {
    "01_batch_radiomics.ipynb": BATCH_RADIOMICS,
    "02_sarcopenia_survival.ipynb": SARCOPENIA_SURVIVAL,
    "03_hippocampus_segmentation.ipynb": HIPPOCAMPUS,
    "04_radiomics_signature.ipynb": SIGNATURE,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook of markdown and code cells, for the ``python3`` kernel, with no outputs."""
    notebook = new_notebook(cells=[new_markdown_cell(text) if kind == "md" else new_code_cell(text)
                                   for kind, text in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def main() -> None:
    """Write every notebook of :data:`NOTEBOOKS` beside this script."""
    for name, cells in NOTEBOOKS.items():
        notebook = build(cells)
        nbformat.validate(notebook)
        nbformat.write(notebook, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
