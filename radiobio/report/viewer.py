"""The review queue and slice viewer of a results folder: ``review.html``, every slice of every segmented case.

``review.html`` (beside ``report.html``, in the results folder) lists the cases of the segment table (the table whose
provenance stage is ``segment``, i.e. the ``cohort.csv`` of ``radiobio segment -o RESULTS_DIR``): ordered by
``qc_score`` (highest first, its ``qc_flags`` shown) when the table has that column, else in cohort order. Opening a
case shows its image and mask in NiiVue (https://github.com/niivue/niivue; WebGL2; shipped in
``radiobio/report/static``, BSD-2-Clause, version :data:`NIIVUE_VERSION`): axial, coronal and sagittal views, every
slice (mouse wheel, or the arrow / page keys), CT window presets (:data:`radiobio.report.overlays.CT_WINDOWS`) and
the MR percentile window (:data:`radiobio.report.overlays.MR_PERCENTILES` of the voxels above the image's minimum),
the labels named as in the QC pictures (model card or segment provenance). One case is loaded at a time.

The reviewer marks each case *accepted* or *needs correction* (with an optional comment); verdicts are kept in the
browser's ``localStorage`` and exported as ``review_verdicts.csv`` (columns :data:`VERDICT_COLUMNS`), a table that
merges onto the cohort by ``case_id`` (:func:`read_verdicts`).

**How volumes reach the page.** Browsers do not let a page opened from disk (``file://``) fetch other files, so
NiiVue cannot read the NIfTI/NRRD files by URL there. ``volumes="embed"`` (the default) therefore writes one small
script per case, ``review/cases/<case>.js``, holding that case's image and mask (their compressed file bytes, base64)
that the page loads with a ``<script>`` tag when the case is opened: the page works offline from disk, one case in
memory at a time, at the cost of a copy of the volumes (1.33 times their size) in ``review/cases/``.
``volumes="link"`` writes no copy: the page loads each case's files by relative URL, which works when the folder is
served over HTTP (:func:`serve_results`, ``radiobio report RESULTS_DIR --serve``). Images NiiVue cannot read
(DICOM series, ...) are converted to NIfTI (``review/volumes/``) in link mode and embedded as NIfTI otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import html as markup
import json
import math
import os
import shutil
import tempfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from radiobio.atomic import write_text_atomic
from radiobio.batch import case_file_name
from radiobio.errors import ReportError, SettingsError
from radiobio.report.overlays import CT_WINDOWS, DEFAULT_COLOURS, MR_PERCENTILES, label_colours
from radiobio.report.results import ResultTable, result_tables
from radiobio.tables import is_missing

#: The review page, in the results folder.
REVIEW_FILE = "review.html"
#: Folder (beside the page) of the viewer's script and each case's data.
REVIEW_DIR = "review"
#: File the page exports the verdicts to.
VERDICTS_FILE = "review_verdicts.csv"
#: Columns of the exported verdicts.
VERDICT_COLUMNS = ("case_id", "review_verdict", "review_comment")
#: The verdicts a reviewer can give (``review_verdict``; empty for a case not reviewed).
VERDICTS = ("accepted", "needs_correction")
#: Version of the NiiVue bundle shipped in ``radiobio/report/static/niivue.umd.js``.
NIIVUE_VERSION = "0.69.0"
#: The files the page needs, copied from the package into ``review/``.
STATIC_FILES = ("niivue.umd.js", "NIIVUE_LICENSE.txt")
#: How the page gets the volumes: ``embed`` (per-case scripts, works from disk) or ``link`` (relative URLs, needs
#: the folder served over HTTP).
VOLUME_MODES = ("embed", "link")
#: File suffixes NiiVue reads directly.
NIIVUE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mgz")
#: File in ``review/`` mapping the addresses of linked volumes outside the results folder to their paths.
LINKED_FILE = "linked.json"
#: Port of :func:`serve_results` (fixed, so that verdicts kept in the browser stay with one address).
DEFAULT_PORT = 8765
#: Queue rows shown in the report section (the review page lists every case).
MAX_SECTION_ROWS = 500


def segment_table(results: str | os.PathLike) -> ResultTable | None:
    """The segment table of a results folder (the first table whose provenance stage is ``segment``), or None."""
    for table in result_tables(results):
        if table.stage == "segment":
            return table
    return None


def review_queue(results: str | os.PathLike, *, mask_column: str | None = None) -> pd.DataFrame:
    """The cases to review, in review order: ``rank`` (1 = first), ``case_id``, ``image`` and ``mask`` (absolute
    paths, None when empty), ``qc_score`` and ``qc_flags`` (only when the segment table has ``qc_score``) and
    ``error`` (the segment error, "" for none).

    Ordered by ``qc_score`` descending (cases without a score last, ties in cohort order) when the segment table has
    a ``qc_score`` column, else in cohort order. ``mask_column`` defaults to the one the segment provenance names,
    else ``mask``. Raises :class:`ReportError` when the folder has no segment table or lacks the columns.
    """
    from radiobio.cohort import read_cohort

    entry = segment_table(results)
    if entry is None:
        raise ReportError(f"{results} has no segment table (a table whose provenance stage is 'segment', written by "
                          f"radiobio segment -o {results}); the review queue lists segmented cases")
    table = read_cohort(entry.path, errors="mark", check_files=False)
    column = mask_column or str((entry.provenance or {}).get("mask_column") or "mask")
    for needed in ("image", column):
        if needed not in table.columns:
            raise ReportError(f"{entry.name} has no {needed!r} column (columns: {', '.join(map(str, table.columns))})"
                              f"; give mask_column= (--mask-column) to name the mask column")
    queue = pd.DataFrame({"case_id": table["case_id"].astype(str), "image": table["image"].map(_path_or_none),
                          "mask": table[column].map(_path_or_none),
                          "error": table["error"].fillna("").astype(str) if "error" in table.columns else ""})
    if "qc_score" in table.columns:
        queue["qc_score"] = pd.to_numeric(table["qc_score"], errors="coerce")
        flags = table["qc_flags"] if "qc_flags" in table.columns else pd.Series("", index=table.index)
        queue["qc_flags"] = flags.map(lambda v: "" if is_missing(v) else str(v))
        queue = queue.sort_values("qc_score", ascending=False, na_position="last", kind="stable")
    queue = queue.reset_index(drop=True)
    queue.insert(0, "rank", range(1, len(queue) + 1))
    queue.attrs["provenance"] = {"stage": "review", "table": entry.name, "mask_column": column,
                                 "scored": "qc_score" in queue.columns}
    return queue


def write_review(results: str | os.PathLike, *, title: str = "radiobio review", volumes: str = "embed",
                 mask_column: str | None = None, label_names: Any = None, progress: bool = False) -> Path:
    """Write ``results/review.html`` (the review queue and viewer) and ``results/review/``; returns the page's path.

    ``volumes``: ``"embed"`` (each case's image and mask as a per-case script in ``review/cases/``; the page works
    opened from disk) or ``"link"`` (files loaded by relative URL; serve the folder over HTTP with
    :func:`serve_results`). ``label_names`` ({label: name} or ``"name=1,..."``) overrides the names from the
    segment provenance or the model card. Raises :class:`ReportError` without a segment table and
    :class:`SettingsError` for a bad option, before anything is written.
    """
    from radiobio.progress import progress_bar
    from radiobio.report.qc import model_label_names, parse_label_names

    if volumes not in VOLUME_MODES:
        raise SettingsError(f"volumes must be one of {', '.join(VOLUME_MODES)}, not {volumes!r}")
    folder = Path(results)
    if not folder.is_dir():
        raise ReportError(f"results folder {folder} does not exist")
    given = parse_label_names(label_names) if label_names else None
    queue = review_queue(folder, mask_column=mask_column)
    provenance = queue.attrs["provenance"]
    entry = segment_table(folder)
    names = {**model_label_names(folder, entry.provenance if entry else {}, provenance["mask_column"]),
             **(given or {})}
    out_dir = folder / REVIEW_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in STATIC_FILES:
        source = resources.files("radiobio.report").joinpath("static", name)
        with resources.as_file(source) as path:
            target = out_dir / name
            if not target.is_file() or target.stat().st_size != path.stat().st_size:
                shutil.copyfile(path, target)
    cases: list[dict[str, Any]] = []
    linked: dict[str, str] = {}
    with progress_bar(len(queue), enabled=progress, desc="review", unit="case") as bar:
        for row in queue.itertuples(index=False):
            cases.append(_case_record(folder, row, volumes, linked))
            bar.update(1)
    write_text_atomic(json.dumps(linked, indent=1), out_dir / LINKED_FILE)
    page = review_page(queue, cases, names, title=title, folder=folder, volumes=volumes)
    return write_text_atomic(page, folder / REVIEW_FILE)


def _case_record(folder: Path, row: Any, volumes: str, linked: dict[str, str]) -> dict[str, Any]:
    """What the page knows of one case: its id, score, flags, error and where its volumes are."""
    record: dict[str, Any] = {"case_id": row.case_id, "error": row.error,
                              "qc_score": _json_number(getattr(row, "qc_score", None)),
                              "qc_flags": getattr(row, "qc_flags", "")}
    stem = case_file_name(row.case_id)
    try:
        if volumes == "embed":
            data: dict[str, Any] = {}
            for kind in ("image", "mask"):
                source = getattr(row, kind)
                if source is not None and _exists(source):
                    name, raw = _volume_bytes(source, kind)
                    data[kind] = base64.b64encode(raw).decode("ascii")
                    data[f"{kind}_name"] = name
            if "image" in data:
                script = (f"window.RADIOBIO_VOLUMES = window.RADIOBIO_VOLUMES || {{}};\n"
                          f"window.RADIOBIO_VOLUMES[{json.dumps(row.case_id)}] = {json.dumps(data)};\n")
                write_text_atomic(script, folder / REVIEW_DIR / "cases" / f"{stem}.js")
                record["data"] = f"{REVIEW_DIR}/cases/{quote(stem)}.js"
        else:
            for kind in ("image", "mask"):
                source = getattr(row, kind)
                if source is None or not _exists(source):
                    continue
                path = Path(source)
                if not _niivue_reads(path):
                    path = _convert(source, kind, folder / REVIEW_DIR / "volumes" / f"{stem}.{kind}.nii.gz")
                path = path.resolve()
                if path.is_relative_to(folder.resolve()):
                    url = path.relative_to(folder.resolve()).as_posix()
                else:  # outside the folder: served under this name by serve_results (LINKED_FILE lists them)
                    url = f"{REVIEW_DIR}/linked/{stem}.{kind}/{path.name}"
                    linked[url] = str(path)
                record[kind] = quote(url)
                record[f"{kind}_name"] = path.name
    except Exception as exc:  # a case that cannot be prepared is listed with the reason, the others are shown
        record["error"] = "; ".join(filter(None, [row.error, f"cannot show this case: {type(exc).__name__}: {exc}"]))
    if row.image is None or not _exists(row.image):
        record["error"] = record["error"] or f"image not found: {row.image}"
    return record


def _volume_bytes(source: str, kind: str) -> tuple[str, bytes]:
    """(file name, bytes) of a volume in a format NiiVue reads: the file itself, else a NIfTI conversion."""
    path = Path(source)
    if _niivue_reads(path):
        return path.name, path.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        converted = _convert(source, kind, Path(tmp) / f"{kind}.nii.gz")
        return f"{kind}.nii.gz", converted.read_bytes()


def _convert(source: str, kind: str, out: Path) -> Path:
    import SimpleITK as sitk

    from radiobio.imaging import read_image, read_mask

    volume = read_mask(source) if kind == "mask" else read_image(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume, str(out), True)
    return out


def _niivue_reads(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and any(name.endswith(s) for s in NIIVUE_SUFFIXES)


def _exists(source: str) -> bool:
    from radiobio.cohort import split_roi

    return Path(split_roi(source)[0]).exists()


def review_page(queue: pd.DataFrame, cases: list[dict[str, Any]], label_names: dict[int, str], *,
                title: str, folder: Path, volumes: str) -> str:
    """The HTML of ``review.html``: the queue table, the viewer, the verdict controls and their script."""
    from radiobio import __version__

    scored = "qc_score" in queue.columns
    labels = sorted(label_names)
    colours = label_colours(labels) if labels else {}
    config = {"cases": cases, "scored": scored, "volumes": volumes,
              "labels": {str(k): v for k, v in label_names.items()},
              "colours": [list(label_colours([i])[i]) for i in range(1, len(DEFAULT_COLOURS) + 1)],
              "label_colours": {str(k): list(v) for k, v in colours.items()},
              "ct_windows": {k: list(v) for k, v in CT_WINDOWS.items()}, "mr_percentiles": list(MR_PERCENTILES),
              "storage_key": "radiobio-review:" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:16],
              "verdicts_file": VERDICTS_FILE, "verdict_columns": list(VERDICT_COLUMNS), "verdicts": list(VERDICTS)}
    script = _static_text("review.js")
    style = _static_text("review.css")
    order = ("Ordered by <code>qc_score</code>, highest first." if scored else
             "No quality score (<code>qc_score</code>) is recorded in the segment table: cases in cohort order.")
    rows = "".join(
        f"<tr data-case='{_esc(c['case_id'])}' tabindex='0'><td>{i + 1}</td><td class='case'>{_esc(c['case_id'])}"
        f"</td>" + (f"<td>{_esc(_score(c['qc_score']))}</td><td>{_esc(c['qc_flags'])}</td>" if scored else "")
        + f"<td class='verdict'></td><td class='error'>{_esc(c['error'])}</td></tr>" for i, c in enumerate(cases))
    head = "<th>#</th><th>case</th>" + ("<th>qc_score</th><th>qc_flags</th>" if scored else "") + \
        "<th>verdict</th><th>error</th>"
    how = ("Volumes are embedded (review/cases/): this page works opened from disk." if volumes == "embed" else
           "Volumes are linked by relative path: serve the folder (radiobio report RESULTS_DIR --serve) and open "
           "the address it prints; browsers do not load them into a page opened from disk.")
    config_json = json.dumps(config).replace("</", "<\\/")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><link rel='icon' href='data:,'>"
            f"<style>{style}</style></head><body>"
            f"<header><h1>{_esc(title)}</h1><p>{_esc(folder.resolve())} · {len(cases)} cases · radiobio "
            f"{_esc(__version__)} · NiiVue {NIIVUE_VERSION} · <a href='report.html'>report</a></p></header>"
            f"<div id='app'><aside id='queue'><p id='order'>{order}</p>"
            f"<p id='progress' class='small'></p>"
            f"<div class='buttons'><button id='export' type='button'>Export {VERDICTS_FILE}</button>"
            f"<label class='button'>Import verdicts<input id='import' type='file' accept='.csv'></label></div>"
            f"<table id='queue-table'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            f"<p class='small'>{how}</p></aside>"
            f"<section id='viewer'><div id='toolbar'><strong id='case-title'>No case open</strong>"
            f"<span class='group'><button type='button' id='prev'>◀ prev</button>"
            f"<button type='button' id='next'>next ▶</button></span>"
            f"<span class='group' id='views'><button type='button' data-view='axial'>axial</button>"
            f"<button type='button' data-view='coronal'>coronal</button>"
            f"<button type='button' data-view='sagittal'>sagittal</button>"
            f"<button type='button' data-view='all' class='on'>all three</button></span>"
            f"<label class='group'>window <select id='window'></select></label>"
            f"<label class='group'>mask <input id='opacity' type='range' min='0' max='1' step='0.05' value='0.5'>"
            f"</label></div>"
            f"<div id='canvas-box'><canvas id='gl'></canvas></div>"
            f"<p id='location' class='small'></p><div id='legend'></div><p id='message'></p>"
            f"<div id='verdict'><button type='button' id='accept' data-verdict='accepted'>Accepted (A)</button>"
            f"<button type='button' id='needs-correction' data-verdict='needs_correction'>Needs correction (C)"
            f"</button><button type='button' id='clear'>Clear</button>"
            f"<textarea id='comment' rows='2' placeholder='comment (optional)'></textarea>"
            f"<span id='saved' class='small'></span></div>"
            f"<p class='small'>Mouse wheel or ↑/↓ (PgUp/PgDn): next slice · click: move the cross · "
            f"J/K: next/previous case · A/C: verdict · right-drag: window.</p></section></div>"
            f"<script>window.RADIOBIO_REVIEW = {config_json};</script>"
            f"<script src='{REVIEW_DIR}/niivue.umd.js'></script><script>{script}</script></body></html>")


def review_section(results: str | os.PathLike, link_from: str | os.PathLike, *, volumes: str = "embed",
                   title: str = "radiobio review") -> tuple[str, str] | None:
    """Write ``review.html`` (:func:`write_review`) and return the report section's (heading, HTML body): the
    queue (up to :data:`MAX_SECTION_ROWS` rows) and a link to the page, relative to the folder ``link_from`` of the
    report; None when the results have no segment table (a segment table the page cannot use gives a section
    saying why)."""
    folder = Path(results)
    if segment_table(folder) is None:
        return None
    try:
        page = write_review(folder, title=title, volumes=volumes)
    except ReportError as exc:  # the rest of the report is still written, saying why there is no review page
        return "Review queue", f"<p>No review page: {_esc(exc)}</p>"
    queue = review_queue(folder)
    href = quote(Path(os.path.relpath(page.resolve(), Path(link_from).resolve())).as_posix())
    scored = "qc_score" in queue.columns
    order = ("ordered by <code>qc_score</code>, highest first (its <code>qc_flags</code> beside it)" if scored else
             "in cohort order: no quality score (<code>qc_score</code>) is recorded in the segment table")
    how = ("Opened from disk, it shows each case from its embedded copy in review/cases/." if volumes == "embed"
           else "Its volumes are linked: run <code>radiobio report RESULTS_DIR --serve</code> and open the address "
                "it prints (browsers do not load linked volumes into a page opened from disk).")
    shown = queue[[c for c in ("rank", "case_id", "qc_score", "qc_flags", "error") if c in queue.columns]]
    rows = "".join("<tr>" + "".join(f"<td>{_esc(_score(v) if k == 'qc_score' else v)}</td>"
                                    for k, v in row.items()) + "</tr>"
                   for row in shown.head(MAX_SECTION_ROWS).to_dict("records"))
    table = ("<table class='data'><thead><tr>" + "".join(f"<th>{_esc(c)}</th>" for c in shown.columns)
             + f"</tr></thead><tbody>{rows}</tbody></table>")
    more = f"<p>{len(queue) - MAX_SECTION_ROWS} more in the review page.</p>" if len(queue) > MAX_SECTION_ROWS else ""
    body = (f"<p>{len(queue)} segmented case(s), {order}. <a href='{_esc(href)}'><strong>Open the review viewer"
            f"</strong></a> ({REVIEW_FILE}): every slice of image and mask in three orientations, window presets, "
            f"and a verdict per case (accepted / needs correction), exported as <code>{VERDICTS_FILE}</code>. "
            f"{how}</p>" + table + more)
    return "Review queue", body


def read_verdicts(path: str | os.PathLike) -> pd.DataFrame:
    """Read an exported ``review_verdicts.csv``: columns :data:`VERDICT_COLUMNS` as text (``case_id`` kept as
    written, "" for no verdict or comment), one row per case. Merge it onto a cohort with
    ``cohort.merge(verdicts, on="case_id", how="left")``. Raises :class:`ReportError` for missing columns, duplicate
    cases or a verdict not in :data:`VERDICTS`."""
    from radiobio.tables import read_table

    table = read_table(path)
    missing = [c for c in VERDICT_COLUMNS if c not in table.columns]
    if missing:
        raise ReportError(f"{path}: not a verdicts table, missing column(s) {', '.join(missing)} (columns: "
                          f"{', '.join(map(str, table.columns))}); export it from {REVIEW_FILE}")
    table = table[list(VERDICT_COLUMNS)].copy()
    for column in VERDICT_COLUMNS:
        table[column] = table[column].map(lambda v: "" if is_missing(v) else str(v))
    duplicated = sorted(set(table.loc[table["case_id"].duplicated(), "case_id"]))
    if duplicated:
        raise ReportError(f"{path}: case(s) listed twice: {', '.join(duplicated)}")
    bad = sorted(set(table["review_verdict"]) - {"", *VERDICTS})
    if bad:
        raise ReportError(f"{path}: unknown review_verdict value(s) {', '.join(bad)}; use {', '.join(VERDICTS)}")
    return table


class _QuietHandler(SimpleHTTPRequestHandler):
    """The results folder, plus the volumes outside it that ``review/linked.json`` names (and nothing else)."""

    linked: dict[str, str] = {}

    def translate_path(self, path: str) -> str:
        from urllib.parse import unquote, urlsplit

        wanted = unquote(urlsplit(path).path).lstrip("/")
        if wanted in self.linked:
            return self.linked[wanted]
        return super().translate_path(path)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the standard library's name)
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def serve_results(results: str | os.PathLike, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1"
                  ) -> ThreadingHTTPServer:
    """An HTTP server of the results folder on ``host:port`` (``port=0``: any free port), for ``review.html`` with
    linked volumes; call its ``serve_forever()`` (or run it in a thread) and ``shutdown()``. The page is at
    ``http://host:port/review.html``. Besides the folder it serves only the linked volumes that lie outside it
    (listed by :func:`write_review` in ``review/linked.json``). Only this machine can reach the default host.
    Raises :class:`ReportError` when the folder does not exist or the port is taken."""
    folder = Path(results)
    if not folder.is_dir():
        raise ReportError(f"results folder {folder} does not exist")
    if not 0 <= int(port) <= 65535:
        raise SettingsError(f"port must be 0 to 65535, not {port}")
    listed = folder / REVIEW_DIR / LINKED_FILE
    try:
        linked = json.loads(listed.read_text()) if listed.is_file() else {}
    except (OSError, ValueError):
        linked = {}
    handler_class = type("ReviewHandler", (_QuietHandler,), {"linked": {str(k): str(v) for k, v in linked.items()}})
    handler = partial(handler_class, directory=str(folder.resolve()))
    try:
        return ThreadingHTTPServer((host, int(port)), handler)
    except OSError as exc:
        raise ReportError(f"cannot serve {folder} on {host}:{port} ({exc}); give another port (--port)") from exc


def _static_text(name: str) -> str:
    return resources.files("radiobio.report").joinpath("static", name).read_text(encoding="utf-8")


def _path_or_none(value: Any) -> str | None:
    return None if is_missing(value) else str(value)


def _json_number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _score(value: Any) -> str:
    number = _json_number(value)
    return "" if number is None else f"{number:.4g}"


def _esc(text: Any) -> str:
    return markup.escape("" if text is None else str(text))

