"""The review queue and slice viewer (review.html): queue order, the report's section and link, verdicts merged onto
the cohort, and the page itself driven in headless Chromium (every slice, windows, labels, verdict export)."""

from __future__ import annotations

import csv
import io
import math
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiobio.cohort import read_cohort
from radiobio.errors import ReportError, SettingsError
from radiobio.report import write_report
from radiobio.report.overlays import CT_WINDOWS, window_limits
from radiobio.report.viewer import (
    NIIVUE_VERSION,
    VERDICT_COLUMNS,
    read_verdicts,
    review_queue,
    serve_results,
    write_review,
)
from tests.report.browser import Browser, chromium_path
from tests.report.review_data import CASES, FLAGS, LABELS, SHAPE, write_review_results

LOADED = "window.radiobioReview && (window.radiobioReview.loaded || window.radiobioReview.failed)"


@pytest.fixture(scope="module")
def browser() -> Browser:
    """One headless Chromium for the module's browser tests."""
    with Browser(chromium_path()) as opened:
        yield opened


def open_review(browser: Browser, url: str) -> dict:
    """Open the review page and wait until its first case is shown; returns the viewer's state."""
    browser.goto(url)
    browser.wait_for(LOADED)
    state = browser.evaluate("({loaded: radiobioReview.loaded, failed: radiobioReview.failed, index: "
                             "radiobioReview.index, dims: radiobioReview.dims, window: radiobioReview.window, "
                             "stats: radiobioReview.stats, legend: radiobioReview.legend})")
    assert state["loaded"], state["failed"]
    return state


def vox(browser: Browser) -> list[int]:
    return browser.evaluate("Array.from(radiobioReview.location.vox)")


def test_queue_ordered_by_qc_score_with_flags(tmp_path: Path) -> None:
    queue = review_queue(write_review_results(tmp_path))
    assert list(queue["case_id"]) == ["p2", "003", "p 3"]  # 0.9, 0.2, then the case without a score
    assert list(queue["rank"]) == [1, 2, 3]
    assert queue.loc[0, "qc_flags"] == FLAGS[1] and math.isnan(queue.loc[2, "qc_score"])
    assert queue.loc[1, "mask"].endswith("masks/003.nii.gz") and Path(queue.loc[1, "mask"]).is_file()


def test_queue_in_cohort_order_without_qc_score(tmp_path: Path) -> None:
    results = write_review_results(tmp_path, scored=False)
    queue = review_queue(results)
    assert list(queue["case_id"]) == list(CASES)
    assert "qc_score" not in queue.columns
    page = write_review(results).read_text()
    assert "No quality score (<code>qc_score</code>) is recorded" in page


def test_queue_needs_a_segment_table(tmp_path: Path) -> None:
    results = write_review_results(tmp_path, provenance=False)
    with pytest.raises(ReportError, match="no segment table"):
        review_queue(results)
    with pytest.raises(SettingsError, match="volumes must be"):
        write_review(results, volumes="inline")


def test_report_links_the_review_page(tmp_path: Path) -> None:
    results = write_review_results(tmp_path)
    report = write_report(results).read_text()
    assert "id=\"review\"" in report and "href='review.html'" in report
    assert "ordered by <code>qc_score</code>" in report
    assert report.index("<td>p2</td>") < report.index("<td>003</td>")  # the queue, highest score first
    assert "<script" not in report  # the report itself stays script-free
    page = (results / "review.html").read_text()
    assert "small_mask, holes" in page and f"NiiVue {NIIVUE_VERSION}" in page
    shipped = results / "review" / "niivue.umd.js"
    assert shipped.stat().st_size > 1_000_000 and "BSD 2-Clause" in (results / "review" /
                                                                    "NIIVUE_LICENSE.txt").read_text()
    for case_id in CASES:  # each case's volumes, embedded once in its own script
        assert case_id in page
    assert len(list((results / "review" / "cases").glob("*.js"))) == 3
    # without a segment table there is no review page, and the report says nothing of one
    other = write_review_results(tmp_path / "plain", provenance=False)
    assert "review.html" not in write_report(other).read_text()
    assert not (other / "review.html").exists()


def test_report_from_another_folder_links_review_relative(tmp_path: Path) -> None:
    results = write_review_results(tmp_path)
    out = write_report(results, tmp_path / "pages" / "report.html", embed_images=False)
    assert "href='../results/review.html'" in out.read_text()
    page = (results / "review.html").read_text()
    assert "review/cases" not in page and "Volumes are linked by relative path" in page


def test_cli_report_writes_review_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from radiobio.cli import main

    results = write_review_results(tmp_path)
    assert main(["report", str(results), "-q"]) == 0
    assert (results / "review.html").is_file()
    assert f"review: {results / 'review.html'}" in capsys.readouterr().out
    (results / "review.html").unlink()
    assert main(["report", str(results), "--no-review"]) == 0
    assert not (results / "review.html").exists()


def test_viewer_from_disk_scrolls_windows_and_exports_verdicts(tmp_path: Path, browser: Browser) -> None:
    results = write_review_results(tmp_path)
    write_report(results)
    state = open_review(browser, (results / "review.html").as_uri())
    assert state["index"] == 0 and state["dims"] == [SHAPE[2], SHAPE[1], SHAPE[0]]  # p2 first, x y z
    assert state["window"] == {"name": "soft_tissue", "low": -160, "high": 240}  # CT: soft tissue W400/L40
    assert [(item["label"], item["name"]) for item in state["legend"]] == sorted(LABELS.items())
    assert browser.evaluate("document.querySelector('#case-title').textContent").startswith("p2")

    # every slice: the mouse wheel over the axial view and the arrow keys move through the slices
    browser.evaluate("document.querySelector('#views [data-view=axial]').click()")
    time.sleep(0.2)
    before, first = browser.screenshot("#gl"), vox(browser)
    browser.wheel("#gl", 120, times=4)
    browser.wait_for(f"radiobioReview.location.vox[2] !== {first[2]}")
    after, moved = browser.screenshot("#gl"), vox(browser)
    assert moved[:2] == first[:2] and moved[2] != first[2]
    assert before != after  # another slice shown (each axial slice of the phantom has another density)
    browser.evaluate("document.body.focus()")
    browser.key("ArrowUp", "ArrowUp", 38)
    browser.wait_for(f"radiobioReview.location.vox[2] === {moved[2] + 1}")
    for view in ("coronal", "sagittal", "all"):
        browser.evaluate(f"document.querySelector('#views [data-view={view}]').click()")
        assert browser.evaluate(f"document.querySelector('#views [data-view={view}]').classList.contains('on')")

    # window presets: CT ones from CT_WINDOWS, and the percentile window matches window_limits on the volume
    options = browser.evaluate("Array.from(document.querySelectorAll('#window option')).map(o => o.value)")
    assert set(CT_WINDOWS) | {"percentile", "full"} == set(options)
    browser.evaluate("(() => { const s = document.querySelector('#window'); s.value = 'lung'; "
                     "s.dispatchEvent(new Event('change')); })()")
    width, level = CT_WINDOWS["lung"]
    assert browser.evaluate("[radiobioReview.image.cal_min, radiobioReview.image.cal_max]") == \
        [level - width / 2, level + width / 2]
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "images" / "p2.nii.gz"))).astype(float)
    assert browser.evaluate("radiobioReview.stats.percentile") == pytest.approx(
        window_limits(image, "percentile"), abs=1e-6)

    # verdicts: accept p2 with a comment holding a comma and a quote, mark 003, export the CSV
    browser.click("#comment")
    browser.type_text('edge, "ok"')
    browser.click("#accept")
    browser.click("#queue-table tbody tr:nth-child(2)")
    browser.wait_for("radiobioReview.loaded && radiobioReview.index === 1")
    browser.click("#needs-correction")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.downloads_to(downloads)
    browser.click("#export")
    name, content = browser.wait_download(downloads)
    assert name == "review_verdicts.csv"
    rows = list(csv.reader(io.StringIO(content.decode())))
    assert rows == [list(VERDICT_COLUMNS), ["p2", "accepted", 'edge, "ok"'], ["003", "needs_correction", ""],
                    ["p 3", "", ""]]

    # verdicts persist in localStorage: a reload shows them again
    browser.goto((results / "review.html").as_uri() + "#case=003")
    browser.wait_for(LOADED)
    assert browser.evaluate("radiobioReview.index") == 1
    assert browser.evaluate("document.querySelector('#progress').textContent") == "2 of 3 cases reviewed"
    assert browser.evaluate("document.querySelector('#needs-correction').classList.contains('on')")

    # the exported file merges onto the cohort by case_id (003 stays text)
    exported = tmp_path / "review_verdicts.csv"
    exported.write_bytes(content)
    verdicts = read_verdicts(exported)
    cohort = read_cohort(results / "cohort.csv")
    merged = cohort.merge(verdicts, on="case_id", how="left", validate="one_to_one")
    assert dict(zip(merged["case_id"], merged["review_verdict"])) == {"003": "needs_correction", "p2": "accepted",
                                                                      "p 3": ""}
    assert merged.loc[merged["case_id"] == "p2", "review_comment"].item() == 'edge, "ok"'
    assert list(merged["age"]) == [60, 61, 62]
    assert not [line for line in browser.console if line.startswith("exception")], browser.console


def test_linked_volumes_load_over_http_not_from_disk(tmp_path: Path, browser: Browser) -> None:
    results = write_review_results(tmp_path, scored=False)
    write_review(results, volumes="link")
    assert not (results / "review" / "cases").exists()
    browser.goto((results / "review.html").as_uri())
    browser.wait_for(LOADED)
    assert "--serve" in browser.evaluate("radiobioReview.failed")  # file:// cannot fetch: the page says what to do
    server = serve_results(results, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        state = open_review(browser, f"http://127.0.0.1:{server.server_address[1]}/review.html")
        assert state["index"] == 0 and browser.evaluate("radiobioReview.nv.volumes.length") == 2
        assert browser.evaluate("document.querySelector('#case-title').textContent") == CASES[0]
        base = f"http://127.0.0.1:{server.server_address[1]}"
        linked = browser.evaluate(f"fetch('{base}/' + RADIOBIO_REVIEW.cases[0].image).then(r => r.status)")
        outside = browser.evaluate(f"fetch('{base}/review/linked/003.image/other.nii.gz').then(r => r.status)")
        assert (linked, outside) == (200, 404)  # the images outside the folder, and nothing else
    finally:
        server.shutdown()
        server.server_close()


def test_mr_percentile_window_on_real_mri(tmp_path: Path, hippocampus_data: Path, browser: Browser) -> None:
    from radiobio.tables import write_table

    image = hippocampus_data / "images" / "hippocampus_003.nii.gz"
    label = hippocampus_data / "labels" / "hippocampus_003.nii.gz"
    results = tmp_path / "results"
    results.mkdir()
    write_table(pd.DataFrame({"case_id": ["hippocampus_003"], "image": [str(image)], "mask": [str(label)],
                              "error": [""]}), results / "cohort.csv",
                {"stage": "segment", "mask_column": "mask", "model": {"name": "hippocampus-3d",
                                                                       "labels": {"1": "anterior", "2": "posterior"}}})
    write_review(results)
    state = open_review(browser, (results / "review.html").as_uri())
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(image))).astype(float)
    low, high = window_limits(values, "percentile")
    assert state["window"]["name"] == "percentile" and not state["stats"]["ct"]
    assert [state["window"]["low"], state["window"]["high"]] == pytest.approx([low, high], rel=1e-6)
    labels = np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(label))))
    assert [item["label"] for item in state["legend"]] == [int(v) for v in labels if v]
    assert [item["name"] for item in state["legend"]] == ["anterior", "posterior"]


def test_cli_serve_serves_the_linked_review_page(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys
    from urllib.request import urlopen

    results = write_review_results(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen([sys.executable, "-m", "radiobio.cli", "report", str(results), "--link-images",
                                "--serve", "--port", "0", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while not line.startswith("serving at ") and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line or process.poll() is None, process.stderr.read()
        address = line.split()[2]
        assert address.startswith("http://127.0.0.1:") and address.endswith("/review.html")
        page = urlopen(address, timeout=10).read().decode()
        config = json.loads(page.split("window.RADIOBIO_REVIEW = ", 1)[1].split(";</script>", 1)[0])
        first = config["cases"][0]
        assert first["case_id"] == "p2" and config["volumes"] == "link"
        served = urlopen(address.rsplit("/", 1)[0] + "/" + first["image"], timeout=10).read()
        assert served == (tmp_path / "images" / "p2.nii.gz").read_bytes()  # an image outside the results folder
    finally:
        process.terminate()
        process.wait(timeout=10)
