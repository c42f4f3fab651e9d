// radiobio review page: the queue, one case at a time in NiiVue, and the reviewer's verdicts (localStorage + CSV).
(function () {
  "use strict";
  const config = window.RADIOBIO_REVIEW;
  const cases = config.cases;
  const $ = (selector) => document.querySelector(selector);
  const state = {index: -1, token: 0, image: null, mask: null, view: "all", stats: null, loaded: false};
  window.radiobioReview = state; // read by the browser tests

  // --- verdicts ---------------------------------------------------------------------------------------------
  function readVerdicts() {
    try { return JSON.parse(localStorage.getItem(config.storage_key) || "{}"); } catch (e) { return {}; }
  }
  function writeVerdicts(verdicts) { localStorage.setItem(config.storage_key, JSON.stringify(verdicts)); }
  function setVerdict(caseId, verdict, comment) {
    const verdicts = readVerdicts();
    if (!verdict && !comment) delete verdicts[caseId];
    else verdicts[caseId] = {verdict: verdict || "", comment: comment || "", at: new Date().toISOString()};
    writeVerdicts(verdicts);
    showVerdicts();
  }
  function csvCell(text) {
    text = String(text == null ? "" : text);
    return /[",\r\n]/.test(text) || /^\s|\s$/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }
  function verdictsCsv() {
    const verdicts = readVerdicts();
    const lines = [config.verdict_columns.join(",")];
    for (const c of cases) {
      const v = verdicts[c.case_id] || {};
      lines.push([c.case_id, v.verdict || "", v.comment || ""].map(csvCell).join(","));
    }
    return lines.join("\n") + "\n";
  }
  function exportVerdicts() {
    const blob = new Blob([verdictsCsv()], {type: "text/csv"});
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = config.verdicts_file;
    document.body.appendChild(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }
  function parseCsv(text) { // RFC 4180: quoted cells may hold commas, quotes ("") and line breaks
    const rows = [];
    let row = [], cell = "", quoted = false;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (quoted) {
        if (ch === '"' && text[i + 1] === '"') { cell += '"'; i++; }
        else if (ch === '"') quoted = false;
        else cell += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ",") { row.push(cell); cell = ""; }
      else if (ch === "\n" || ch === "\r") {
        if (ch === "\r" && text[i + 1] === "\n") i++;
        row.push(cell); rows.push(row); row = []; cell = "";
      } else cell += ch;
    }
    if (cell !== "" || row.length) { row.push(cell); rows.push(row); }
    return rows;
  }
  function importVerdicts(text) {
    const rows = parseCsv(text.replace(/^\ufeff/, ""));
    const head = rows.shift() || [];
    const at = (name) => head.indexOf(name);
    if (at("case_id") < 0 || at("review_verdict") < 0) {
      message("not a verdicts file: it needs the columns " + config.verdict_columns.join(", "));
      return;
    }
    const verdicts = readVerdicts();
    for (const row of rows) {
      const id = row[at("case_id")], verdict = row[at("review_verdict")] || "";
      const comment = at("review_comment") >= 0 ? row[at("review_comment")] || "" : "";
      if (id && (verdict || comment)) verdicts[id] = {verdict: verdict, comment: comment, at: new Date().toISOString()};
    }
    writeVerdicts(verdicts);
    showVerdicts();
  }
  function showVerdicts() {
    const verdicts = readVerdicts();
    let done = 0;
    document.querySelectorAll("#queue-table tbody tr").forEach((tr) => {
      const v = verdicts[tr.dataset.case];
      const cell = tr.querySelector("td.verdict");
      cell.className = "verdict" + (v && v.verdict ? " " + v.verdict : "");
      cell.textContent = v && v.verdict ? v.verdict.replace("_", " ") + (v.comment ? " *" : "") : "";
      if (v && v.verdict) done += 1;
    });
    $("#progress").textContent = done + " of " + cases.length + " cases reviewed";
    const c = cases[state.index];
    const v = c ? verdicts[c.case_id] : null;
    document.querySelectorAll("#verdict button[data-verdict]").forEach((b) => {
      b.classList.toggle("on", !!v && v.verdict === b.dataset.verdict);
    });
    $("#saved").textContent = v && v.at ? "saved " + v.at.replace("T", " ").slice(0, 19) : "";
  }

  // --- viewer -----------------------------------------------------------------------------------------------
  const nv = new niivue.Niivue({isResizeCanvas: true, backColor: [0, 0, 0, 1], show3Dcrosshair: false,
    crosshairColor: [0.2, 0.8, 1, 0.8], crosshairWidth: 1, dragMode: 1, isRadiologicalConvention: true, logLevel: "error"});
  state.nv = nv;
  const ready = nv.attachTo("gl").then(() => {
    nv.setSliceType(nv.sliceTypeMultiplanar);
    nv.setInterpolation(true);
    nv.onLocationChange = (data) => {
      state.location = data;
      const vox = data && data.vox ? Array.from(data.vox) : null;
      const dims = state.image ? state.image.dims.slice(1, 4) : null;
      let text = data && data.string ? data.string : "";
      if (vox && dims) text = "voxel " + vox.join(", ") + " of " + dims.join(" × ") + (text ? " · " + text : "");
      $("#location").textContent = text;
    };
  }).catch((e) => message("WebGL2 is not available in this browser (" + e + "); the viewer needs it."));

  function message(text) { $("#message").textContent = text || ""; }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const tag = document.createElement("script");
      tag.src = src;
      tag.onload = () => { tag.remove(); resolve(); };
      tag.onerror = () => { tag.remove(); reject(new Error("cannot read " + src)); };
      document.head.appendChild(tag);
    });
  }

  async function volumesOf(c) {
    if (config.volumes === "embed") {
      if (!c.data) throw new Error(c.error || "no volumes for this case");
      await loadScript(c.data);
      const data = (window.RADIOBIO_VOLUMES || {})[c.case_id];
      delete window.RADIOBIO_VOLUMES[c.case_id];
      const image = await niivue.NVImage.loadFromBase64({base64: data.image, name: data.image_name});
      const mask = data.mask ? await niivue.NVImage.loadFromBase64({base64: data.mask, name: data.mask_name}) : null;
      return [image, mask];
    }
    if (location.protocol === "file:") {
      throw new Error("this page links its volumes, and browsers do not load files into a page opened from disk: " +
        "run  radiobio report RESULTS_DIR --serve  and open the address it prints");
    }
    if (!c.image) throw new Error(c.error || "no image for this case");
    const image = await niivue.NVImage.loadFromUrl({url: c.image, name: c.image_name});
    const mask = c.mask ? await niivue.NVImage.loadFromUrl({url: c.mask, name: c.mask_name}) : null;
    return [image, mask];
  }

  function volumeStats(volume) { // min, max and the MR percentile window, in the image's calibrated units
    const raw = volume.img, n = raw.length;
    const slope = volume.hdr && isFinite(volume.hdr.scl_slope) && volume.hdr.scl_slope !== 0 ? volume.hdr.scl_slope : 1;
    const inter = volume.hdr && isFinite(volume.hdr.scl_inter) ? volume.hdr.scl_inter : 0;
    let min = Infinity, max = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = raw[i] * slope + inter;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const step = Math.max(1, Math.floor(n / 2000000)); // a sample of at most ~2 million voxels
    const sample = [];
    for (let i = 0; i < n; i += step) {
      const v = raw[i] * slope + inter;
      if (v > min && isFinite(v)) sample.push(v); // the foreground: voxels above the image's minimum
    }
    if (!sample.length) for (let i = 0; i < n; i += step) sample.push(raw[i] * slope + inter);
    const sorted = Float64Array.from(sample).sort();
    const percentile = (p) => { // linear interpolation between closest ranks, as numpy.percentile
      const rank = (p / 100) * (sorted.length - 1), lo = Math.floor(rank), hi = Math.ceil(rank);
      return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    };
    let low = percentile(config.mr_percentiles[0]), high = percentile(config.mr_percentiles[1]);
    if (!(high > low)) high = low + 1;
    return {min: min, max: max, percentile: [low, high], ct: min <= -500};
  }

  function windowChoices(stats) {
    const choices = [];
    if (stats.ct) {
      for (const [name, wl] of Object.entries(config.ct_windows)) {
        choices.push([name, name.replace("_", " ") + " (W" + wl[0] + " L" + wl[1] + ")",
          [wl[1] - wl[0] / 2, wl[1] + wl[0] / 2]]);
      }
    }
    choices.push(["percentile", "percentile " + config.mr_percentiles.join("–") + " %", stats.percentile]);
    choices.push(["full", "full range", [stats.min, stats.max]]);
    return choices;
  }

  function applyWindow(name) {
    const choice = (state.windows || []).find((w) => w[0] === name);
    if (!choice || !state.image) return;
    state.image.cal_min = choice[2][0];
    state.image.cal_max = choice[2][1];
    state.window = {name: name, low: choice[2][0], high: choice[2][1]};
    $("#window").value = name;
    nv.updateGLVolume();
  }

  function labelColour(label) {
    const named = config.label_colours[String(label)];
    return named || config.colours[(label - 1) % config.colours.length];
  }

  function applyLabels(mask) {
    let top = 0;
    for (let i = 0; i < mask.img.length; i++) if (mask.img[i] > top) top = mask.img[i];
    top = Math.max(1, Math.round(top));
    const cm = {R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""]};
    const present = new Set();
    for (let i = 0; i < mask.img.length; i++) if (mask.img[i] > 0) present.add(Math.round(mask.img[i]));
    const legend = [];
    for (let label = 1; label <= top; label++) {
      const rgb = labelColour(label);
      const name = config.labels[String(label)] || "label " + label;
      cm.R.push(rgb[0]); cm.G.push(rgb[1]); cm.B.push(rgb[2]); cm.A.push(255); cm.I.push(label);
      cm.labels.push(name);
      if (present.has(label) || config.labels[String(label)]) legend.push([label, name, rgb, present.has(label)]);
    }
    mask.setColormapLabel(cm);
    $("#legend").innerHTML = "";
    for (const [label, name, rgb, here] of legend) {
      const item = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = "rgb(" + rgb.join(",") + ")";
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(label + " " + name + (here ? "" : " (absent)")));
      $("#legend").appendChild(item);
    }
    state.legend = legend.map((l) => ({label: l[0], name: l[1], present: l[3]}));
  }

  async function openCase(index) {
    if (index < 0 || index >= cases.length) return;
    await ready;
    const token = ++state.token;
    state.index = index;
    state.loaded = false;
    const c = cases[index];
    history.replaceState(null, "", "#case=" + encodeURIComponent(c.case_id));
    document.querySelectorAll("#queue-table tbody tr").forEach((tr, i) => tr.classList.toggle("current", i === index));
    const row = document.querySelectorAll("#queue-table tbody tr")[index];
    if (row) row.scrollIntoView({block: "nearest"});
    $("#case-title").textContent = c.case_id + (c.qc_score != null ? " · qc_score " + c.qc_score.toPrecision(4) : "") +
      (c.qc_flags ? " · " + c.qc_flags : "");
    $("#comment").value = (readVerdicts()[c.case_id] || {}).comment || "";
    showVerdicts();
    message(c.error ? c.error : "");
    $("#legend").innerHTML = "";
    while (nv.volumes.length) nv.removeVolume(nv.volumes[0]);
    state.image = state.mask = null;
    nv.drawScene();
    let image, mask;
    try {
      [image, mask] = await volumesOf(c);
    } catch (e) {
      if (token === state.token) { message((c.error ? c.error + " · " : "") + e.message); state.failed = e.message; }
      return;
    }
    if (token !== state.token) return; // another case was opened meanwhile
    nv.addVolume(image);
    state.image = image;
    if (mask) {
      mask.opacity = parseFloat($("#opacity").value);
      applyLabels(mask);
      nv.addVolume(mask);
      state.mask = mask;
    }
    state.stats = volumeStats(image);
    state.windows = windowChoices(state.stats);
    $("#window").innerHTML = state.windows.map((w) => "<option value='" + w[0] + "'>" + w[1] + "</option>").join("");
    applyWindow(state.stats.ct ? "soft_tissue" : "percentile");
    const dims = image.dims.slice(1, 4);
    nv.scene.crosshairPos = [0.5, 0.5, 0.5];
    nv.moveCrosshairInVox(0, 0, 0);
    state.dims = dims;
    state.failed = null;
    state.loaded = true;
    nv.drawScene();
  }

  function setView(view) {
    state.view = view;
    const types = {axial: nv.sliceTypeAxial, coronal: nv.sliceTypeCoronal, sagittal: nv.sliceTypeSagittal,
      all: nv.sliceTypeMultiplanar};
    nv.setSliceType(types[view]);
    document.querySelectorAll("#views button").forEach((b) => b.classList.toggle("on", b.dataset.view === view));
  }

  function step(delta) { // one slice along the normal of the current view (axial in the three-view layout)
    if (!state.loaded) return;
    const axis = {axial: 2, coronal: 1, sagittal: 0, all: 2}[state.view];
    const move = [0, 0, 0];
    move[axis] = delta;
    nv.moveCrosshairInVox(move[0], move[1], move[2]);
  }

  // --- wiring -----------------------------------------------------------------------------------------------
  document.querySelectorAll("#queue-table tbody tr").forEach((tr, i) => {
    tr.addEventListener("click", () => openCase(i));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") openCase(i); });
  });
  document.querySelectorAll("#views button").forEach((b) => b.addEventListener("click", () => setView(b.dataset.view)));
  $("#prev").addEventListener("click", () => openCase(state.index - 1));
  $("#next").addEventListener("click", () => openCase(state.index + 1));
  $("#window").addEventListener("change", (e) => applyWindow(e.target.value));
  $("#opacity").addEventListener("input", (e) => {
    if (state.mask) { state.mask.opacity = parseFloat(e.target.value); nv.updateGLVolume(); }
  });
  document.querySelectorAll("#verdict button[data-verdict]").forEach((b) => b.addEventListener("click", () => {
    const c = cases[state.index];
    if (c) setVerdict(c.case_id, b.dataset.verdict, $("#comment").value);
  }));
  $("#clear").addEventListener("click", () => {
    const c = cases[state.index];
    if (c) { $("#comment").value = ""; setVerdict(c.case_id, "", ""); }
  });
  $("#comment").addEventListener("change", () => {
    const c = cases[state.index];
    if (!c) return;
    const v = readVerdicts()[c.case_id] || {};
    setVerdict(c.case_id, v.verdict || "", $("#comment").value);
  });
  $("#export").addEventListener("click", exportVerdicts);
  $("#import").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) file.text().then(importVerdicts);
    e.target.value = "";
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.closest && e.target.closest("textarea, input, select")) return;
    const keys = {ArrowUp: 1, PageUp: 1, ArrowDown: -1, PageDown: -1};
    if (e.key in keys) { step(keys[e.key]); e.preventDefault(); }
    else if (e.key === "j" || e.key === "J") openCase(state.index + 1);
    else if (e.key === "k" || e.key === "K") openCase(state.index - 1);
    else if ((e.key === "a" || e.key === "A") && cases[state.index]) $("#accept").click();
    else if ((e.key === "c" || e.key === "C") && cases[state.index]) $("#needs-correction").click();
  });
  showVerdicts();
  const wanted = decodeURIComponent((location.hash.match(/case=([^&]*)/) || [])[1] || "");
  const first = cases.findIndex((c) => c.case_id === wanted);
  if (cases.length) openCase(first >= 0 ? first : 0);
  state.verdictsCsv = verdictsCsv;
})();
