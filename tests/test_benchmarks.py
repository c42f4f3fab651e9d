"""``benchmarks/inference.py`` runs end to end at a tiny size and reports sane figures (no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_inference_benchmark_runs_and_reports(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "benchmarks/inference.py", "--backends", "torch", "--modes", "2d", "3d",
                           "--slices", "1", "--scale", "0.1", "--json", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=580, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["mode"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"2d", "3d"}, done.stderr[-3000:]
    # one slice, padded to the workload's fixed batch of 4 (the benchmark's timing wrapper keeps batches whole)
    assert results["2d"]["windows"] == 4 and results["2d"]["size_xyz"] == [512, 512, 1]
    assert results["3d"]["size_xyz"] == [64, 64, 64] and results["3d"]["windows"] == 1  # padded to one window
    for result in results.values():
        assert result["backend"] == "torch" and not result["tensorflow_loaded"]
        assert result["gflop_per_window"] > 1 and 0 < result["efficiency"] < 2
        assert 100 < result["peak_rss_mb"] < 20000


@pytest.mark.timeout(600)
def test_foreground_comparison_runs_and_agrees_inside_the_body(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "benchmarks/inference.py", "--backends", "torch", "--foreground",
                           "--scale", "0.25", "--train-steps", "5", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True,
                          timeout=580, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    full, kept = json.loads(out.read_text())
    assert (full["crop"], kept["crop"]) == ("off", "on")
    # at this size (128 x 128 x 75) one window spans the image in-plane and the body spans every slice, so the
    # windows over the body's box are the full grid's: the labels must be the same
    assert kept["windows"] == full["windows"]
    line = next(ln for ln in done.stdout.splitlines() if "foreground:" in ln)
    assert "Dice inside the body 1.0000" in line and "(5 training batches)" in line, line
    assert kept["dice_inside_body"] == 1.0 and kept["dice_truth_full"] == kept["dice_truth_kept"]
    assert 0.0 <= kept["dice_truth_kept"] <= 1.0
