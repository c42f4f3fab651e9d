"""Benchmark: ``radiobio segment`` inference throughput, FLOP efficiency and peak memory, per Keras backend.

Two workloads, each run through the real ``segment()`` path (read, preprocess, predict, restore, write):

* 2D: a U-Net (depth 5, 32 base filters) on 512 x 512 slices, batch 4, slice by slice;
* 3D: a U-Net (depth 4, 16 base filters, the hippocampus architecture) as a sliding window (patch 128 x 128 x 64,
  50% overlap, Gaussian weights, batch 1) over a 512 x 512 x 300 volume (``--scale`` shrinks it for quick runs).

For each backend a fresh subprocess (``KERAS_BACKEND=...``) measures, in the same run, the backend's float32 matmul
FLOP/s (2048 x 2048) and then the network's achieved FLOP/s (convolution FLOPs of every window actually computed,
divided by the time spent inside the network), and reports their ratio; peak RSS is the subprocess's maximum
resident set. Weights are random (the work per voxel is what a trained model of that size does) unless
``--train-steps`` is given.

With ``--foreground`` the 3D workload runs twice per backend on a synthetic CT with a realistic body outline (an
abdomen of 340 x 240 mm in a 410 mm field of view, a table under it, an organ and six lesions): the full sliding
window (``crop=False``) and inference kept to the body (``crop=True``, the default of ``segment``, windows tiled over
the body's bounding box). The network is first trained on two other synthetic CTs (1500 batches by default), since
the labels of random weights mean nothing. It prints the time ratio, the Dice of the labels inside the body between
the two runs (goal: >= 1.8x faster, Dice >= 0.999) and each run's Dice against the true labels.

    .venv/bin/python benchmarks/inference.py                       # both backends, both workloads, full size
    .venv/bin/python benchmarks/inference.py --scale 0.5 --backends torch --modes 3d
    .venv/bin/python benchmarks/inference.py --foreground --backends tensorflow [--normalization batch]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FULL_3D = (512, 512, 300)  # voxels (x, y, z)
SLICE = (512, 512)
LABELS = {1: "organ", 2: "lesion"}


def model_config(mode: str, normalization: str = "instance") -> dict:
    """The radiobio configuration of each workload's network (CT windowing, native spacing, no TTA)."""
    common = {"labels": LABELS, "inference": {"overlap": 0.5, "sigma_scale": 0.125, "tta_flips": []}}
    if mode == "2d":
        return {**common, "model": {"architecture": "unet2d", "depth": 5, "base_filters": 32},
                "preprocessing": {"patch_size": list(SLICE), "intensity": {"mode": "ct", "window": [-1000, 1000]}},
                "inference": {**common["inference"], "batch_size": 4}}
    return {**common, "model": {"architecture": "unet3d", "depth": 4, "base_filters": 16,
                                "normalization": normalization},
            "preprocessing": {"patch_size": [128, 128, 64], "intensity": {"mode": "ct", "window": [-1000, 1000]}},
            "inference": {**common["inference"], "batch_size": 1}}


#: Semi-axes of the body as fractions of the field of view: the efficiency workload's large ellipse, and a realistic
#: abdomen (340 x 240 mm in a 410 mm field of view, as a scanner reconstructs it) for the foreground comparison.
BODY_LARGE, BODY_REALISTIC = (0.45, 0.35), (0.415, 0.293)


def synthetic_ct(size: tuple[int, int, int], body_axes: tuple[float, float] = BODY_LARGE, table: bool = False,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like int16 volume ``(z, y, x)`` in HU and its labels: air, an elliptical body (40 HU), an organ (an
    ellipsoid of 70 HU, label 1) and six lesions (spheres of 300 HU inside the body, label 2), uniform noise of
    ±20 HU; optionally a table under the body."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = size
    volume = np.full((nz, ny, nx), -1000, np.int16)
    labels = np.zeros((nz, ny, nx), np.uint8)
    y, x = np.ogrid[:ny, :nx]
    body = ((x - nx / 2) / (body_axes[0] * nx)) ** 2 + ((y - ny / 2) / (body_axes[1] * ny)) ** 2 <= 1
    volume[:, body] = 40
    if table:  # a couch 4 % of the field of view under the body, with an air gap
        top = int(ny / 2 + body_axes[1] * ny) + max(2, ny // 100)
        volume[:, top:top + max(2, ny // 25), int(0.15 * nx):int(0.85 * nx)] = 200
    zz, yy, xx = np.arange(nz)[:, None, None], np.arange(ny)[None, :, None], np.arange(nx)[None, None]
    centre = rng.uniform((0.35, 0.40, 0.30), (0.65, 0.48, 0.38)) * (nz, ny, nx)
    radii = np.array([0.30 * nz, 0.15 * ny, 0.16 * nx]) * rng.uniform(0.85, 1.15, 3)
    organ = ((zz - centre[0]) / radii[0]) ** 2 + ((yy - centre[1]) / radii[1]) ** 2 \
        + ((xx - centre[2]) / radii[2]) ** 2 <= 1
    organ &= body[None]
    volume[organ], labels[organ] = 70, 1
    for _ in range(6):
        while True:
            cz, cy, cx = rng.uniform(0.2, 0.8, 3) * (nz, ny, nx)
            if ((cx - nx / 2) / (body_axes[0] * nx)) ** 2 + ((cy - ny / 2) / (body_axes[1] * ny)) ** 2 < 0.5:
                break
        r = rng.uniform(0.02, 0.05) * nx
        sphere = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        volume[sphere], labels[sphere] = 300, 2
    volume += rng.integers(-20, 21, volume.shape, dtype=np.int16)
    return volume, labels


def write_volume(path: Path, size: tuple[int, int, int], body_axes: tuple[float, float] = BODY_LARGE,
                 table: bool = False, labels_path: Path | None = None) -> None:
    """Write :func:`synthetic_ct` (seed 0) uncompressed for fast reading, and its labels to ``labels_path``."""
    import SimpleITK as sitk

    volume, labels = synthetic_ct(size, body_axes, table)
    for array, target in ((volume, path), (labels, labels_path)):
        if target is not None:
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((0.8, 0.8, 1.5))
            sitk.WriteImage(image, str(target), False)


def train_network(model, config, size: tuple[int, int, int], steps: int) -> None:
    """Train ``model`` for ``steps`` batches of two 64 x 64 x 32 patches from two :func:`synthetic_ct` volumes
    (seeds 11 and 12, not the benchmark's), half of the patches around a labelled voxel; Adam, learning rate 1e-3."""
    import keras

    from radiobio.segmentation.preprocessing import normalize_intensity

    model.compile(keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    data = []
    for seed in (11, 12):
        volume, labels = synthetic_ct(size, BODY_REALISTIC, table=True, seed=seed)
        data.append((normalize_intensity(volume[..., None].astype(np.float32), config.preprocessing.intensity,
                                         in_place=True), labels, np.argwhere(labels[::4, ::4, ::4] > 0) * 4))
    rng = np.random.default_rng(1)
    patch = np.array([32, 64, 64])
    for _ in range(steps):
        images, targets = [], []
        for _ in range(2):
            volume, labels, labelled = data[rng.integers(len(data))]
            shape = np.array(labels.shape)
            if rng.random() < 0.5:
                centre = labelled[rng.integers(len(labelled))] + rng.integers(-patch // 4, patch // 4 + 1)
                start = np.clip(centre - patch // 2, 0, shape - patch)
            else:
                start = rng.integers(0, shape - patch + 1)
            box = tuple(slice(int(a), int(a + p)) for a, p in zip(start, patch))
            images.append(volume[box])
            targets.append(labels[box])
        model.train_on_batch(np.stack(images), np.stack(targets)[..., None])


def conv_flops(model, window: tuple[int, ...]) -> float:
    """Multiply-add FLOPs (2 per MAC) of every convolution for one input window ``(*spatial, channels)``."""
    import keras

    config = model.get_config()
    config["layers"][0]["config"]["batch_shape"] = (1, *window)
    fixed = keras.Model.from_config(config)
    total = 0.0
    for layer in fixed.layers:
        kind = type(layer).__name__
        if not kind.startswith("Conv"):
            continue
        kernel = float(np.prod(layer.kernel_size))
        c_in = layer.input.shape[-1]
        c_out = layer.filters
        if "Transpose" in kind:
            voxels = float(np.prod(layer.input.shape[1:-1]))
        else:
            voxels = float(np.prod(layer.output.shape[1:-1]))
        total += 2.0 * kernel * c_in * c_out * voxels
    return total


def matmul_flops_per_second(n: int = 2048, repeats: int = 6) -> float:
    """Best float32 ``n x n`` matmul rate of this Keras backend (FLOP/s)."""
    import keras

    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.normal(size=(n, n)).astype("float32"))
    b = keras.ops.convert_to_tensor(rng.normal(size=(n, n)).astype("float32"))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best


class TimedModel:
    """Wraps a Keras model: counts the windows it computes and the seconds spent inside it."""

    def __init__(self, model):
        from radiobio.segmentation.runtime import batch_predictor

        self.model = model
        self.predict = batch_predictor(model)  # what segment() itself runs on this backend
        self.inputs = model.inputs
        self.seconds = 0.0
        self.windows = 0

    def predict_on_batch(self, batch):
        start = time.perf_counter()
        out = np.asarray(self.predict(batch))
        self.seconds += time.perf_counter() - start
        self.windows += len(batch)
        return out


def worker(args: argparse.Namespace) -> dict:
    """Run one backend × workload in this process (the parent sets KERAS_BACKEND); return the measurements."""
    import keras
    import pandas as pd

    from radiobio.segmentation import build_model, load_bundle, segment
    from radiobio.segmentation.bundle import export_bundle
    from radiobio.segmentation.config import as_config
    from radiobio.segmentation.data import patch_shape

    workdir = Path(args.workdir)
    config = as_config(model_config(args.mode, args.normalization))
    bundle_dir = workdir / f"bundle-{args.mode}"
    window = (*SLICE[::-1], 1) if args.mode == "2d" else (*patch_shape(config), 1)
    if args.export:
        # A separate process: saving a model and reading its config import TensorFlow whatever the backend (Keras
        # checks for tf.TensorShape), which would inflate the measured worker's peak memory.
        keras.utils.set_random_seed(0)
        model = build_model(config)
        if args.train_steps:
            train_network(model, config, tuple(int(s) for s in args.size), args.train_steps)
        export_bundle(model, config, bundle_dir)
        (bundle_dir / "flops.json").write_text(json.dumps({"per_window": conv_flops(model, window)}))
        return {"bundle": str(bundle_dir)}
    matmul = matmul_flops_per_second()

    bundle = load_bundle(bundle_dir)
    timed = TimedModel(bundle.model)
    batch = config.inference.batch_size
    timed.predict(np.zeros((batch, *window), "float32"))  # build / trace outside the timing
    flops_per_window = json.loads((bundle_dir / "flops.json").read_text())["per_window"]
    bundle.model = timed

    cohort = pd.DataFrame({"case_id": ["bench"], "image": [args.image]})
    start = time.perf_counter()
    out_dir = workdir / f"masks-{args.mode}-{keras.backend.backend()}-{args.crop}"
    result = segment(cohort, model=bundle, out_dir=out_dir, progress=False, overwrite=True, crop=args.crop == "on")
    wall = time.perf_counter() - start
    if result.loc[0, "error"]:
        raise RuntimeError(result.loc[0, "error"])
    size = [int(s) for s in args.size]
    voxels = float(np.prod(size))
    achieved = timed.windows * flops_per_window / timed.seconds
    return {
        "backend": keras.backend.backend(),
        "mode": args.mode,
        "crop": args.crop,
        "mask": str(result.loc[0, "mask"]),
        "size_xyz": size,
        "window": list(window[:-1]),
        "windows": timed.windows,
        "wall_s": wall,
        "network_s": timed.seconds,
        "voxels_per_s": voxels / wall,
        "slices_per_s": size[2] / wall,
        "gflop_per_window": flops_per_window / 1e9,
        "achieved_gflops": achieved / 1e9,
        "matmul_gflops": matmul / 1e9,
        "efficiency": achieved / matmul,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "tensorflow_loaded": "tensorflow" in sys.modules,
        "threads": os.environ.get("TF_NUM_INTRAOP_THREADS"),
    }


def body_mask(image: Path) -> np.ndarray:
    """The body of the benchmark's CT (``radiobio.segmentation.foreground``), the voxels the Dice is taken over."""
    import SimpleITK as sitk

    from radiobio.segmentation.foreground import foreground_mask

    return foreground_mask(sitk.GetArrayFromImage(sitk.ReadImage(str(image))).astype(np.float32), "ct")


def body_dice(body: np.ndarray, first: str | Path, second: str | Path) -> float:
    """Dice of the foreground labels of two masks over the voxels of ``body`` (every label value must agree for a
    voxel to count as shared)."""
    import SimpleITK as sitk

    a = sitk.GetArrayFromImage(sitk.ReadImage(str(first)))[body]
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(second)))[body]
    labelled = (a > 0).sum() + (b > 0).sum()
    return 1.0 if labelled == 0 else float(2.0 * ((a == b) & (a > 0)).sum() / labelled)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "torch"])
    parser.add_argument("--modes", nargs="+", default=["2d", "3d"], choices=["2d", "3d"])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="scale every side of the 3D volume (default 1: 512 x 512 x 300)")
    parser.add_argument("--slices", type=int, default=32, help="512 x 512 slices for the 2D workload (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="threads per backend (default 2)")
    parser.add_argument("--json", help="also write all results to this JSON file")
    parser.add_argument("--foreground", action="store_true",
                        help="3D only: time crop=False against crop=True on a realistic body outline")
    parser.add_argument("--train-steps", type=int, default=None,
                        help="train the 3D network on synthetic CT for this many batches before timing (default: "
                             "1500 with --foreground, whose Dice needs a trained network; else 0, random weights)")
    parser.add_argument("--normalization", default="instance", choices=["instance", "batch", "group", "none"],
                        help="the 3D network's normalization layers (default instance, as hippocampus-3d)")
    parser.add_argument("--crop", default="off", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--size", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--export", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train_steps is None:
        args.train_steps = 1500 if args.foreground else 0
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0

    results = []
    modes = ["3d"] if args.foreground else args.modes
    with tempfile.TemporaryDirectory(prefix="radiobio-bench-") as tmp:
        for mode in modes:
            if mode == "2d":
                size = (*SLICE, args.slices)
            else:
                size = tuple(max(64, int(round(s * args.scale))) for s in FULL_3D)
            image, truth = Path(tmp) / f"volume-{mode}.nii", Path(tmp) / f"labels-{mode}.nii"
            if args.foreground:
                write_volume(image, size, BODY_REALISTIC, table=True, labels_path=truth)
            else:
                write_volume(image, size)
            # one bundle (the same weights) per workload, for every backend
            steps = args.train_steps if mode == "3d" else 0
            export = subprocess.run([sys.executable, __file__, "--worker", "--export", "--mode", mode, "--workdir",
                                     tmp, "--size", *map(str, size), "--train-steps", str(steps),
                                     "--normalization", args.normalization],
                                    env={**os.environ, "KERAS_BACKEND": args.backends[0]}, cwd=REPO,
                                    capture_output=True, text=True)
            if export.returncode != 0:
                print(f"{mode}: exporting the bundle failed\n{export.stderr[-2000:]}", file=sys.stderr)
                continue
            for backend in args.backends:
                env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
                for variable in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                 "OPENBLAS_NUM_THREADS"):
                    env[variable] = str(args.threads)
                env["TF_NUM_INTEROP_THREADS"] = "1"
                pair = []
                for crop in (["off", "on"] if args.foreground else ["off"]):
                    command = [sys.executable, __file__, "--worker", "--mode", mode, "--image", str(image),
                               "--size", *map(str, size), "--workdir", tmp, "--crop", crop,
                               "--normalization", args.normalization]
                    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
                    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
                    if done.returncode != 0 or not lines:
                        print(f"{backend} {mode}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                        continue
                    result = json.loads(lines[-1][len("RESULT "):])
                    results.append(result)
                    pair.append(result)
                    print(f"{backend:10s} {mode}  crop {crop:3s} {'x'.join(map(str, size)):>12s}  "
                          f"{result['wall_s']:8.1f} s  {result['windows']:4d} windows  "
                          f"{result['voxels_per_s'] / 1e6:6.2f} Mvox/s  "
                          f"{result['achieved_gflops']:6.1f} GFLOP/s of {result['matmul_gflops']:6.1f} matmul "
                          f"= {100 * result['efficiency']:5.1f}%  peak RSS {result['peak_rss_mb']:7.0f} MB", flush=True)
                if len(pair) == 2:
                    body = body_mask(image)
                    dice = body_dice(body, pair[0]["mask"], pair[1]["mask"])
                    truths = [body_dice(body, truth, run["mask"]) for run in pair]
                    pair[1].update(dice_inside_body=dice, dice_truth_full=truths[0], dice_truth_kept=truths[1])
                    print(f"{backend:10s} foreground: full {pair[0]['wall_s']:.1f} s, kept to the body "
                          f"{pair[1]['wall_s']:.1f} s: {pair[0]['wall_s'] / pair[1]['wall_s']:.2f}x faster "
                          f"(goal >= 1.8), Dice inside the body {dice:.4f} (goal >= 0.999); against the true "
                          f"labels: full {truths[0]:.4f}, kept to the body {truths[1]:.4f} "
                          f"({steps} training batches)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
