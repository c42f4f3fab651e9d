"""The HTML report of a realistic results folder: content against the tables it summarises, a real headless
Chromium (no console errors, a screenshot that shows the pictures), missing and failed pieces, and the CLI."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from radiobio.cli import main
from radiobio.report import ReportError, collect_failures, write_report

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    """Path of Chromium, installed by ``.ci/ensure-chromium`` when missing."""
    done = subprocess.run([str(REPO / ".ci" / "ensure-chromium")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f".ci/ensure-chromium failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    path = shutil.which("chromium")
    assert path, "chromium not on PATH after .ci/ensure-chromium"
    return path


def render(page: Path, screenshot: Path) -> list[str]:
    """Load ``page`` in headless Chromium, save a 1280×2000 screenshot, return the console messages.

    Chromium logs every console message (``console.error`` and uncaught exceptions alike) as ``INFO:CONSOLE``;
    the report has no scripts, so any console message at all is a fault."""
    with tempfile.TemporaryDirectory(prefix="radiobio-chromium-") as profile:
        done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               f"--screenshot={screenshot}", "--window-size=1280,2000", page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)
    assert screenshot.is_file(), f"no screenshot (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report(results_dir: Path) -> tuple[Path, str]:
    path = write_report(results_dir, results_dir / "report.html", title="L3 test cohort")
    return path, path.read_text(encoding="utf-8")


def test_console_error_detection_works_on_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><p>x</p><script>console.error('boom'); notDefined();</script></body></html>")
    errors = render(page, tmp_path / "broken.png")
    assert any("boom" in line for line in errors) and any("Uncaught ReferenceError" in line for line in errors)


def test_report_loads_in_chromium_without_console_errors_and_shows_its_pictures(report, tmp_path: Path) -> None:
    path, _ = report
    errors = render(path, tmp_path / "report.png")
    assert errors == []
    pixels = np.asarray(Image.open(tmp_path / "report.png").convert("RGB"))
    assert pixels.shape == (2000, 1280, 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000  # far from blank
    pure_red = (pixels[..., 0] > 235) & (pixels[..., 1] < 40) & (pixels[..., 2] < 40)
    assert pure_red.sum() > 100  # muscle contours of the embedded QC pictures were decoded and drawn


def test_report_is_self_contained_and_embeds_the_qc_pictures_unchanged(results_dir: Path, report) -> None:
    _, page = report
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)  # nothing loaded from elsewhere
    assert "<script" not in page
    embedded = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    qc = pd.read_csv(results_dir / "qc" / "qc.csv", keep_default_na=False)
    drawn = qc.loc[qc["error"] == "", "png"].tolist()
    assert [alt + ".png" for alt, _ in embedded] == drawn
    for alt, data in embedded:
        assert base64.b64decode(data) == (results_dir / "qc" / f"{alt}.png").read_bytes()


def test_report_summaries_match_the_result_tables(results_dir: Path, report) -> None:
    _, page = report
    body = pd.read_parquet(results_dir / "biomarkers.parquet")
    ok = body[body["error"] == ""]
    sarcopenic = int(ok["sarcopenic"].sum())
    assert f"true: {sarcopenic} / {len(ok)}" in page
    assert f"{body['case_id'].nunique()} cases, 1 failed" in page and "cases measured" not in page
    assert f"{ok['sma_cm2'].mean():.4g}" in page
    cox = pd.read_csv(results_dir / "survival" / "cox.csv")
    assert f"{cox['hr'].iloc[0]:.4g}" in page and "smi_cm2_m2" in page
    logrank = pd.read_csv(results_dir / "survival" / "logrank.csv")
    assert f"{logrank['p'].iloc[0]:.4g}" in page
    cohort = pd.read_csv(results_dir / "cohort.csv")
    assert f"{len(cohort)} cases" in page and f"F: {(cohort['sex'] == 'F').sum()}, M: {(cohort['sex'] == 'M').sum()}" \
        in page
    assert "l3-muscle-test" in page and "unet2d" in page
    for anchor in ("failed", "cohort", "models", "segmentation", "qc", "biomarkers", "features", "survival",
                   "versions"):
        assert f'<section id="{anchor}"' in page
    assert "No signature section" in page  # the only part this folder lacks


def test_failed_cases_are_listed_first_in_a_marked_section(results_dir: Path, report) -> None:
    _, page = report
    failures = collect_failures(results_dir)
    assert set(failures["case_id"]) == {"l3_broken"}
    assert set(zip(failures["stage"], failures["table"])) == {
        ("biomarkers", "biomarkers.parquet"), ("biomarkers", "tissue_volumes.parquet"),
        ("extract", "features.parquet"), ("qc", "qc/qc.csv")}
    assert failures["error"].str.startswith("GeometryError").all()
    failed = page.split('<section id="failed" class="failed">', 1)[1].split("</section>", 1)[0]
    assert "Failed cases (1)" in failed and failed.count("l3_broken") == 4 and "size differs" in failed
    assert page.index('id="failed"') < page.index('id="cohort"')


def test_missing_survival_leaves_its_section_out_with_a_note(fresh_results: Path) -> None:
    shutil.rmtree(fresh_results / "survival")
    cohort = pd.read_csv(fresh_results / "cohort.csv").drop(columns=["os_days", "os_event"])
    cohort.to_csv(fresh_results / "cohort.csv", index=False)
    shutil.rmtree(fresh_results / "models")
    page = write_report(fresh_results).read_text()
    assert '<section id="survival"' not in page and '<section id="models"' not in page
    assert "No survival section" in page and "No models section" in page
    assert '<section id="biomarkers"' in page


def test_results_without_anything_to_report_raise(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        write_report(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="none of the results"):
        write_report(tmp_path / "empty")


def test_cli_exit_codes(results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(results_dir), "-o", str(out)]) == 1  # written, but one case failed
    assert out.is_file() and "l3_broken" in capsys.readouterr().err
    clean = tmp_path / "clean"
    shutil.copytree(results_dir / "survival", clean / "survival")
    assert main(["report", str(clean), "--title", "survival only"]) == 0
    assert "<title>survival only</title>" in (clean / "report.html").read_text()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["report", str(clean), "--qc"]) == 2  # no cohort table to draw
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    assert exit_info.value.code == 0 and "example:" in capsys.readouterr().out


def test_cli_draws_qc_overlays_with_a_ct_window(fresh_results: Path) -> None:
    shutil.rmtree(fresh_results / "qc")
    assert main(["report", str(fresh_results), "--qc", "--mask-column", "mask_muscle", "--window", "400,40"]) == 1
    qc = pd.read_csv(fresh_results / "qc" / "qc.csv", keep_default_na=False)
    assert (qc["error"] == "").sum() == len(qc) - 1
    picture = np.asarray(Image.open(fresh_results / "qc" / qc["png"].iloc[0]).convert("RGB"))
    assert ((picture[..., 0] == 255) & (picture[..., 1] == 0) & (picture[..., 2] == 0)).sum() > 100


def test_linked_report_is_small_links_every_picture_and_renders(results_dir: Path, report, tmp_path: Path) -> None:
    """``embed_images=False`` with the page in another folder: every <img> resolves, relative to the page, to the
    results' own file; the gallery lists every drawn case; Chromium loads and draws them."""
    _, embedded_page = report
    out = write_report(results_dir, tmp_path / "pages" / "linked report.html", embed_images=False)
    page = out.read_text(encoding="utf-8")
    assert "data:image" not in page and len(page) < len(embedded_page) / 3
    sources = re.findall(r'<img(?: class="\w+")? alt="([^"]+)" loading="lazy" src="([^"]+)"', page)
    qc = pd.read_csv(results_dir / "qc" / "qc.csv", keep_default_na=False)
    drawn = qc.loc[qc["error"] == "", "png"].tolist()
    gallery = [alt + ".png" for alt, src in sources if "/qc/" in src]
    assert gallery == drawn
    for _, src in sources:
        assert not src.startswith("/")
        target = (out.parent / unquote(src)).resolve()
        assert target.is_file() and target.is_relative_to(results_dir.resolve())
    assert "survival/km.png" in page
    errors = render(out, tmp_path / "linked.png")
    assert errors == []
    pixels = np.asarray(Image.open(tmp_path / "linked.png").convert("RGB"))
    pure_red = (pixels[..., 0] > 235) & (pixels[..., 1] < 40) & (pixels[..., 2] < 40)
    assert pure_red.sum() > 100  # the linked QC pictures were found, decoded and drawn


def test_embedded_gallery_is_capped_and_linked_gallery_is_not(fresh_results: Path) -> None:
    pictures = sorted((fresh_results / "qc").glob("*.png"))
    pictures = [p for p in pictures if p.name != "montage.png"]
    assert len(pictures) >= 3
    capped = write_report(fresh_results, fresh_results / "capped.html", max_gallery=2).read_text(encoding="utf-8")
    assert capped.count("<figure>") == 2 and f"{len(pictures) - 2} more pictures" in capped
    linked = write_report(fresh_results, fresh_results / "linked.html", embed_images=False).read_text(encoding="utf-8")
    assert linked.count("<figure>") == len(pictures)
