"""A quiet start for TensorFlow and Keras: no start-up chatter on the console, real errors still shown.

TensorFlow 2.21 logs through absl before absl's logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not hold
back its start-up lines (``All log messages before absl::InitializeLog()``, ``cudart_stub``, ``cpu_feature_guard``,
oneDNN, and ``E0000 ... failed call to cuInit`` on a machine without a GPU). In a notebook they show as a red
stderr block, once per process.

:func:`quiet_tensorflow` makes the first ``import tensorflow`` of the process (whoever imports it: Keras,
radiobio, the user) run with file descriptor 2 sent to a temporary file; the device list is read in the same
window, as that is when CUDA is probed. Afterwards every captured line is written back to ``sys.stderr`` except
the known start-up lines (:data:`NOISE`), so a real error still reaches the user. Nothing hides a GPU: no device
variable is set, and ``cuInit`` failures are kept when the machine has an NVIDIA driver (``/proc/driver/nvidia``).
If the import fails, every captured line is written back. :func:`import_keras` is the import radiobio uses.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

#: Start-up lines of TensorFlow / XLA / absl that say nothing actionable on a CPU machine.
NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|^[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "  # absl INFO / WARNING lines (E lines are kept)
    r"|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] \S+:\d+\] "  # the older TensorFlow log format
    r"|^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$"
    r"|Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register factory for plugin"
    r"|computation placer already registered"
)

#: ``cuInit`` failures: start-up noise on a machine without an NVIDIA driver, a real error on one with a driver.
CUINIT = re.compile(r"failed call to cuInit")

_lock = threading.RLock()


def _has_nvidia_driver() -> bool:
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()


def filter_lines(text: str, gpu_driver: bool | None = None) -> list[str]:
    """The lines of ``text`` that are not TensorFlow start-up noise (see :data:`NOISE`), in order.

    ``cuInit`` failures count as noise unless ``gpu_driver`` is true (default: whether the machine has an NVIDIA
    driver), because then a GPU that fails to start is a real error.
    """
    driver = _has_nvidia_driver() if gpu_driver is None else gpu_driver
    kept = []
    for line in text.splitlines():
        if not line.strip() or NOISE.search(line) or (CUINIT.search(line) and not driver):
            continue
        kept.append(line)
    return kept


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file for the block, then write back what is not start-up noise.

    Everything is written back when the block raises. Without a usable descriptor 2 the block runs as it is.
    """
    with _lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield
            return
        capture = tempfile.TemporaryFile()
        failed = True
        try:
            os.dup2(capture.fileno(), 2)
            yield
            failed = False
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            capture.close()
            lines = text.splitlines() if failed else filter_lines(text)
            if lines:
                print("\n".join(lines), file=sys.stderr, flush=True)


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` inside :func:`filtered_stderr`, then lists the devices."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        with filtered_stderr():
            try:
                self.loader.exec_module(module)
            finally:  # hand the module its own loader back (importlib.resources and friends look at it)
                module.__loader__ = self.loader
                if spec is not None:
                    spec.loader = self.loader
            config = getattr(module, "config", None)
            if config is not None and hasattr(config, "list_physical_devices"):
                with contextlib.suppress(Exception):  # CUDA is probed here; its messages fall into this window
                    config.list_physical_devices()

    def __getattr__(self, name: str):
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders and wraps its loader in :class:`_QuietLoader`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow" or "tensorflow" in sys.modules:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, _QuietFinder) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """Make the first ``import tensorflow`` of this process quiet (see the module docstring); idempotent and cheap.

    Also sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless it is set, so TensorFlow's later C++ INFO and WARNING lines stay
    hidden too (errors still show). Does nothing when TensorFlow is already imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())


def import_keras() -> ModuleType:
    """``import keras`` after :func:`quiet_tensorflow`; return the module."""
    quiet_tensorflow()
    import keras

    return keras
