"""Local worker processes pin their thread pools to their share of the cores."""

from __future__ import annotations

import os

from radiobio.parallel import available_cores, map_cases, resolve_jobs


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


def test_resolve_jobs() -> None:
    cores = available_cores()
    assert resolve_jobs(None) == cores
    assert resolve_jobs(-1) == cores
    assert resolve_jobs(0) == 1
    assert resolve_jobs(3) == 3


def square(x: int) -> int:
    return x * x


def test_results_cover_every_item_once() -> None:
    assert sorted(map_cases(square, range(10), jobs=2)) == [x * x for x in range(10)]
    assert list(map_cases(square, [], jobs=2)) == []
