"""Map a function over cases: in this process, on a local process pool, or on any Dask distributed ``Client``.

Results come back as each case finishes, so callers can write them at once (resumable batches). Worker processes pin
SimpleITK, BLAS/OpenMP and deep-learning thread pools to their share of the cores so ``jobs`` processes never
oversubscribe the machine.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                    "TF_NUM_INTEROP_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")


def available_cores() -> int:
    """Number of cores this process may use (respects CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def pin_threads(threads: int) -> None:
    """Limit SimpleITK, BLAS/OpenMP and TensorFlow thread pools of this process to ``threads``."""
    threads = max(1, int(threads))
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass


def _pinned_call(payload: tuple[Callable[..., Any], int, Any]) -> Any:
    func, threads, item = payload
    if _pinned_call.threads != threads:  # type: ignore[attr-defined]
        pin_threads(threads)
        _pinned_call.threads = threads  # type: ignore[attr-defined]
    return func(item)


_pinned_call.threads = None  # type: ignore[attr-defined]


def resolve_jobs(jobs: int | None) -> int:
    """The number of processes ``jobs`` asks for: ``None`` or 1 → 1 (this process); N → N; a negative number counts
    back from the available cores (-1 = all of them, -2 = all but one); at least 1.

    Raises :class:`~radiobio.errors.SettingsError` for 0 or a value that is not a whole number.
    """
    from radiobio.errors import SettingsError

    if jobs is None:
        return 1
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs == 0:
        raise SettingsError(f"jobs must be None, a positive number of processes or -1 (all cores), not {jobs!r}")
    cores = available_cores()
    if jobs < 0:
        return max(1, cores + 1 + jobs)
    return max(1, jobs)


def map_cases(func: Callable[[Any], Any], items: Iterable[Any], jobs: int | None = None,
              executor: Any = None) -> Iterator[Any]:
    """Yield ``func(item)`` for every item, in completion order.

    ``executor`` may be a Dask ``distributed.Client`` (tasks run on its workers, each pinned to the threads of its
    worker) or a ``concurrent.futures.Executor``. Without one, ``jobs`` local processes are used (``None`` or 1: in
    this process; see :func:`resolve_jobs`). ``func`` should catch its own errors and return them as data so one
    case never stops the batch. Local workers end with the batch: when it is interrupted (Ctrl-C, SIGTERM) or the
    parent dies, they are stopped too.
    """
    workers = resolve_jobs(jobs)
    items = list(items)
    if not items:
        return
    if executor is not None:
        if _is_dask_client(executor):
            yield from _map_dask(func, items, executor)
            return
        futures = [executor.submit(func, item) for item in items]
        for future in cf.as_completed(futures):
            yield future.result()
        return
    workers = min(workers, len(items))
    if workers == 1:
        for item in items:
            yield func(item)
        return
    threads = max(1, available_cores() // workers)
    context = multiprocessing.get_context(_start_method())
    pool = cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(threads,))
    previous = _stop_on_sigterm()
    try:
        futures = [pool.submit(func, item) for item in items]
        for future in cf.as_completed(futures):
            yield future.result()
    except cf.process.BrokenProcessPool as exc:
        from radiobio.errors import SettingsError

        raise SettingsError(f"the worker processes stopped before finishing ({exc}). In a script, put the calls that "
                            f"run radiobio with jobs > 1 under `if __name__ == \"__main__\":` (worker processes "
                            f"import the script again); or use jobs=1") from exc
    except BaseException:
        _terminate(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _restore_sigterm(previous)


def _start_worker(threads: int) -> None:
    """Worker start-up: die with the parent (Linux), pin thread pools."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    pin_threads(threads)


def _stop_on_sigterm() -> Any:
    """In the main thread, turn SIGTERM into SystemExit so a killed batch stops its workers; returns the old
    handler (None when nothing was changed)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)


def _restore_sigterm(previous: Any) -> None:
    import signal
    import threading

    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def _terminate(pool: cf.ProcessPoolExecutor) -> None:
    """Stop every worker process of ``pool`` now (running cases are abandoned; finished ones were written)."""
    for process in list(getattr(pool, "_processes", {}).values()):  # the executor has no public kill
        if process.is_alive():
            process.terminate()


def _tensorflow_loaded() -> bool:
    import sys

    return "tensorflow" in sys.modules


def _is_dask_client(obj: Any) -> bool:
    return type(obj).__module__.startswith("distributed") and hasattr(obj, "map") and hasattr(obj, "gather")


def _map_dask(func: Callable[[Any], Any], items: list[Any], client: Any) -> Iterator[Any]:
    from distributed import as_completed

    nthreads = client.nthreads() or {}
    threads = max(1, min(nthreads.values())) if nthreads else 1
    futures = client.map(_pinned_call, [(func, threads, item) for item in items], pure=False)
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.release()


def _start_method() -> str:
    """How worker processes start: ``RADIOBIO_START_METHOD`` if set; else ``fork`` (workers inherit the imported
    libraries, saving seconds per batch) unless TensorFlow is loaded, whose threads make fork unsafe (``spawn``)."""
    chosen = os.environ.get("RADIOBIO_START_METHOD")
    if chosen:
        return chosen
    if _tensorflow_loaded() or "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    return "fork"
