"""What the report shows of each stage: tables found by provenance under any name, cases (not rows) counted, one
summary per label, index columns never averaged, segmentation scores per label, readable provenance, model cards with
their intended use, the survival folder and a real signature."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from radiobio.report import result_tables, write_report
from radiobio.tables import read_table, write_table


def section(page: str, anchor: str) -> str:
    assert f'<section id="{anchor}"' in page, f"no {anchor} section"
    return html.unescape(page.split(f'<section id="{anchor}"', 1)[1].split("</section>", 1)[0])


def plain(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", fragment))


def summary_rows(fragment: str) -> dict[str, list[str]]:
    """{column: cells} of the summary tables (first cell = the column summarised) in an HTML fragment."""
    rows: dict[str, list[str]] = {}
    for row in re.findall(r"<tr>(.*?)</tr>", fragment, flags=re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, flags=re.S)]
        if cells:
            rows.setdefault(cells[0], cells[1:])
    return rows


@pytest.fixture(scope="module")
def page(results_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_report(results_dir, tmp_path_factory.mktemp("page") / "r.html").read_text(encoding="utf-8")


def test_tables_are_found_by_their_provenance_stage(results_dir: Path) -> None:
    found = {t.name: (t.stage, t.kind) for t in result_tables(results_dir)}
    assert found == {"biomarkers.parquet": ("biomarkers", "sarcopenia"), "cohort.csv": ("cohort", None),
                     "features.parquet": ("extract", None), "scores.csv": ("evaluate", None),
                     "tissue_volumes.parquet": ("biomarkers", "volumetry")}


def test_every_biomarker_table_is_shown_per_label_and_counts_cases(results_dir: Path, page: str) -> None:
    body = section(page, "biomarkers")
    assert "Sarcopenia" in body and "Volumetry" in body and "tissue_volumes.parquet" in body
    volumes = read_table(results_dir / "tissue_volumes.parquet")
    cases = volumes["case_id"].nunique()
    assert f"{cases} cases, 1 failed" in body and f"{len(volumes)} cases" not in body  # cases, not rows
    ok = volumes[volumes["error"] == ""]
    volume_part = body.split("Volumetry", 1)[1]
    for name in ("muscle", "SAT"):  # one summary per label, each with its own mean
        part = volume_part.split(f"label name: {name} (", 1)[1].split("</table>", 1)[0]
        mean = ok.loc[ok["label_name"] == name, "volume_ml"].mean()
        assert summary_rows(part)["volume_ml"][1] == f"{mean:.4g}"
    pooled = ok["volume_ml"].mean()
    assert f"<td>{pooled:.4g}</td>" not in volume_part  # regions never pooled
    sarcopenia = summary_rows(body.split("Volumetry", 1)[0])
    assert "sma_cm2" in sarcopenia and "slice_index" not in sarcopenia and "label" not in sarcopenia  # no index


def test_provenance_is_shown_readably(page: str) -> None:
    features = plain(section(page, "features"))
    assert "Labels: muscle = 1" in features and "Mask column: mask" in features and "Bin width: 25" in features
    assert "params_hash" not in page and '"created"' not in page
    assert "Muscle column: mask_muscle" in plain(section(page, "biomarkers"))


def test_segmentation_scores_per_label_name(results_dir: Path, page: str) -> None:
    body = section(page, "segmentation")
    scores = read_table(results_dir / "scores.csv")
    rows = summary_rows(body)
    # the muscle-only mask against the full tissue map: muscle is perfect, SAT entirely missed
    assert rows["1"][:3] == ["muscle", str(scores["case_id"].nunique()), "1 (0)"]
    assert rows["2"][:3] == ["SAT", str(scores["case_id"].nunique()), "0 (0)"]
    hd95 = scores.loc[scores["label"] == 2, "hd95_mm"].median()
    assert f"{hd95:.4g}" in rows["2"]
    assert "Predicted masks: mask_muscle · Reference masks: mask" in plain(body)


def test_models_show_the_intended_use(page: str) -> None:
    body = section(page, "models")
    assert "Research QC of synthetic L3 slices only; not for clinical use" in body and "intended use" in body


def test_survival_shows_every_file_of_the_folder(results_dir: Path, page: str) -> None:
    body = section(page, "survival")
    ph = read_table(results_dir / "survival" / "ph_test.csv")
    assert "Proportional-hazards test" in body and f"{ph['p'].iloc[0]:.4g}" in body
    assert body.count("<img") == 2  # km.png and forest.png


def test_navigation_lists_the_sections_in_page_order(page: str) -> None:
    nav = re.findall(r'<a href="#(\w+)">', page.split("<nav>", 1)[1].split("</nav>", 1)[0])
    assert nav == re.findall(r'<section id="(\w+)"', page)


def test_signature_section_from_a_real_cross_validation(fresh_results: Path) -> None:
    from radiobio.outcome.signature import nested_cv

    features = read_table(fresh_results / "features.parquet")
    cohort = read_table(fresh_results / "cohort.csv")[["case_id", "os_days", "os_event"]]
    chosen = ["original_firstorder_Mean", "original_shape2D_PixelSurface"]
    ok = features.loc[features["error"] == "", ["case_id", *chosen]]
    table = ok.merge(cohort, on="case_id").dropna(subset=["os_days"])
    result = nested_cv(table, features=chosen, duration_column="os_days", event_column="os_event", outer=3,
                       repeats=1, inner=2, seed=0)
    out = fresh_results / "signature"
    write_table(result.summary, out / "summary.csv")
    (out / "notes.txt").write_text("extra")
    page = write_report(fresh_results).read_text(encoding="utf-8")
    body = section(page, "signature")
    first = result.summary.iloc[0]
    assert f"{first['mean']:.4g} ({first['lower_95']:.4g} to {first['upper_95']:.4g})" in body
    assert "notes.txt" in body  # an unknown file is named, not dropped silently
    assert "No signature section" not in page


def test_old_tables_without_provenance_keep_their_names(fresh_results: Path) -> None:
    for name in ("biomarkers.parquet", "features.parquet", "tissue_volumes.parquet"):
        table = pd.read_parquet(fresh_results / name)
        (fresh_results / name).unlink()
        table.to_csv(fresh_results / name.replace(".parquet", ".csv"), index=False)  # no provenance at all
    (fresh_results / "scores.csv").rename(fresh_results / "segmentation_metrics.csv")
    shutil.move(fresh_results / "scores.csv.provenance.json", fresh_results / "segmentation_metrics.csv.json")
    stages = {t.name: t.stage for t in result_tables(fresh_results)}
    assert stages["biomarkers.csv"] == "biomarkers" and stages["features.csv"] == "extract"
    assert stages["segmentation_metrics.csv"] == "evaluate" and stages["tissue_volumes.csv"] is None
    page = write_report(fresh_results).read_text(encoding="utf-8")
    assert "sma_cm2" in section(page, "biomarkers") and "muscle" in section(page, "features")


def test_write_report_options_are_keyword_only(results_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_report(results_dir, tmp_path / "r.html", "a title")  # type: ignore[misc]
