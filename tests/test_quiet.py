"""A clean console: TensorFlow starts without its absl / cudart / CPU-feature / cuInit lines, in the CLI and in the
library, while real errors written to stderr still come through."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from radiobio.quiet import filter_lines, filtered_stderr

REPO = Path(__file__).resolve().parents[1]
RADIOBIO = Path(sys.executable).with_name("radiobio")

#: What must never reach the console of a CPU machine.
NOISE = re.compile(r"cuInit|absl|oneDNN|cpu_feature_guard|cudart|E0000|W0000|I0000")

#: Start-up lines as TensorFlow 2.21 prints them on a CPU machine.
STARTUP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796233022.962445    7677 cudart_stub.cc:31] Could not find cuda drivers on your machine, \
GPU will not be used.
I0000 00:00:1796233023.055849    7677 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available \
CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate \
compiler flags.
2025-01-01 10:00:00.123456: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on. You may see \
slightly different numerical results.
W0000 00:00:1796233023.1    7677 gpu_device.cc:2341] Cannot dlopen some GPU libraries.
E0000 00:00:1796233029.658739    7677 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call \
to cuInit: UNKNOWN ERROR (303)
"""


def test_startup_lines_are_noise_but_real_errors_are_kept():
    real = ["E0000 00:00:1796233030.1    7677 op_kernel.cc:1] Out of memory while allocating",
            "Traceback (most recent call last):", "UserWarning: something the user must see"]
    assert filter_lines(STARTUP + "\n".join(real) + "\n", gpu_driver=False) == real
    # with an NVIDIA driver present, a GPU that does not start is a real error, never hidden
    kept = filter_lines(STARTUP, gpu_driver=True)
    assert len(kept) == 1 and "failed call to cuInit" in kept[0]


def test_filtered_stderr_replays_what_matters(capfd):
    with filtered_stderr():
        os.write(2, STARTUP.encode())
        os.write(2, b"E0000 00:00:1.0    1 x.cc:1] a real failure\n")
        print("to stdout")
    captured = capfd.readouterr()
    assert captured.err == "E0000 00:00:1.0    1 x.cc:1] a real failure\n"
    assert captured.out == "to stdout\n"


def test_filtered_stderr_replays_everything_when_the_block_fails(capfd):
    with pytest.raises(ImportError), filtered_stderr():
        os.write(2, b"I0000 00:00:1.0    1 loader.cc:1] could not load libfoo.so\n")
        raise ImportError("libfoo")
    assert "could not load libfoo.so" in capfd.readouterr().err


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}  # no help from the caller's settings
    env["KERAS_BACKEND"] = "tensorflow"
    return env


def _assert_clean(stderr: str) -> None:
    noisy = [line for line in stderr.splitlines() if NOISE.search(line)]
    assert not noisy, "\n".join(noisy)


@pytest.mark.timeout(300)
def test_library_loads_a_bundle_and_predicts_quietly():
    code = ("import numpy as np\n"
            "import radiobio.segmentation.inference\n"  # imports keras through segmentation/data.py
            "from radiobio.segmentation import load_bundle\n"
            "bundle = load_bundle('l3-muscle-demo')\n"
            "probs = bundle.model.predict(np.zeros((1, 64, 64, 1), 'float32'), verbose=0)\n"
            "import sys; print(probs.shape, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=280, cwd=REPO,
                            env=_env())
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "(1, 64, 64, 5)"  # the script's own stderr line survives, nothing else


@pytest.mark.timeout(400)
def test_cli_segment_runs_with_a_clean_console(tmp_path):
    from radiobio.synthetic.l3 import write_l3_cohort

    write_l3_cohort(tmp_path / "l3", n=2, seed=1, size=96)
    result = subprocess.run([str(RADIOBIO), "segment", str(tmp_path / "l3" / "cohort.csv"), "-m", "l3-muscle-demo",
                             "-o", str(tmp_path / "seg"), "--mask-column", "mask_model", "-q"],
                            capture_output=True, text=True, timeout=380, cwd=tmp_path, env=_env())
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "seg").rglob("l3_00*.nii.gz"))) == 2  # one mask per case, wherever segment puts them
    _assert_clean(result.stderr)


@pytest.mark.timeout(400)
def test_notebook_shows_no_stderr_block():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("from radiobio.segmentation import load_bundle\n"
                                                "bundle = load_bundle('l3-muscle-demo')\n"
                                                "print(bundle.name)")]
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = notebook.cells[0].outputs
    assert [o.get("name") for o in outputs] == ["stdout"], outputs  # no red stderr output at all
    assert outputs[0]["text"] == "l3-muscle-demo\n"
