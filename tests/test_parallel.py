"""Local worker processes pin their thread pools to their share of the cores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from radiobio.errors import SettingsError
from radiobio.parallel import available_cores, map_cases, resolve_jobs

REPO = Path(__file__).resolve().parents[1]


def thread_settings(_: int) -> tuple[int, str, int]:
    import SimpleITK as sitk
    from threadpoolctl import threadpool_info

    blas = [pool["num_threads"] for pool in threadpool_info()] or [1]
    return sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(), os.environ.get("OMP_NUM_THREADS", ""), max(blas)


def test_two_workers_each_get_their_share() -> None:
    share = max(1, available_cores() // 2)
    results = list(map_cases(thread_settings, range(4), jobs=2))
    assert len(results) == 4
    for sitk_threads, omp, blas in results:
        assert sitk_threads == share
        assert omp == str(share)
        assert blas <= share


def test_resolve_jobs_has_one_meaning_everywhere() -> None:
    cores = available_cores()
    assert resolve_jobs(None) == 1  # as scikit-learn: None is this process
    assert resolve_jobs(1) == 1
    assert resolve_jobs(-1) == cores
    assert resolve_jobs(-2) == max(1, cores - 1)
    assert resolve_jobs(3) == 3
    for bad in (0, 1.5, "2", True):
        with pytest.raises(SettingsError, match="jobs"):
            resolve_jobs(bad)


def sleep_forever(_: int) -> int:
    import time

    time.sleep(600)
    return 0


def test_sigterm_stops_the_batch_and_its_workers(tmp_path) -> None:
    script = tmp_path / "batch.py"
    script.write_text("import os, sys\n"
                      "from tests.test_parallel import sleep_forever\n"
                      "from radiobio.parallel import map_cases\n"
                      "if __name__ == '__main__':\n"
                      "    list(map_cases(sleep_forever, range(4), jobs=2))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RADIOBIO_START_METHOD": "spawn"}
    batch = subprocess.Popen([sys.executable, str(script)], env=env)
    children: list[int] = []
    deadline = time.monotonic() + 60
    while len(children) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        children = _children(batch.pid)
    assert len(children) >= 2, "the pool did not start"
    batch.send_signal(signal.SIGTERM)
    assert batch.wait(timeout=60) != 0
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in children), "worker processes outlived the batch"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def square(x: int) -> int:
    return x * x


def test_results_cover_every_item_once() -> None:
    assert sorted(map_cases(square, range(10), jobs=2)) == [x * x for x in range(10)]
    assert list(map_cases(square, [], jobs=2)) == []
