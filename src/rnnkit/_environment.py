"""Process settings for speed, made by ``rnnkit.tune_process()`` (the CLI calls it first), never
by ``import rnnkit``: they change the whole process, every library in it included. Each is
skipped when the user has set it (the environment variable named wins), and all are with
``RNNKIT_PROCESS_SETTINGS=0`` (the benchmark runs PyTorch so, as its users do). What each saves:
docs/fast_path.md.

- ``OPENBLAS_THREAD_TIMEOUT=4``: OpenBLAS's idle threads sleep at once after a product instead
  of spinning for about 2**28 cycles on a core that the two threads of the compiled time loops
  need (``backends.compiled._fused.by_rows``). OpenBLAS reads it when it is loaded (when NumPy is
  imported, before this call can run), so the call then asks each OpenBLAS loaded in the process
  (threadpoolctl finds them) to read its environment again (``openblas_read_env``) and stops its
  threads (``blas_thread_shutdown_``, what OpenBLAS's own fork handler calls): they start again
  at the next threaded product, with the new timeout. An OpenBLAS without those two functions
  keeps its threads as they are; so does any when the variable was set before it loaded.
- glibc's allocator keeps freed memory for the next arrays (``mallopt``: blocks up to 1 GiB from
  the heap, not fresh mappings, and the heap not trimmed below 1 GiB; skipped when
  ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` is set, and off glibc). A training
  step makes arrays of megabytes (gates, states, gradients) and frees them: with glibc's
  defaults each would come back as fresh pages, faulted in again at every step. The process then
  keeps its peak memory instead of returning it to the system between steps. It takes effect at
  once, for the arrays allocated after the call.
"""

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_KEEP = 1 << 30  # bytes


def _keep_freed_memory() -> None:
    if not sys.platform.startswith("linux"):
        return
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    mallopt(_M_MMAP_THRESHOLD, _KEEP)
    mallopt(_M_TRIM_THRESHOLD, _KEEP)


def _threads_reread_timeout(libraries) -> None:
    """Each OpenBLAS among ``libraries`` (ctypes handles) reads its environment again and stops
    its threads, which restart at its next threaded product with the timeout now set."""
    for library in libraries:
        read_environment = getattr(library, "openblas_read_env", None)
        stop_threads = getattr(library, "blas_thread_shutdown_", None)
        if read_environment is not None and stop_threads is not None:
            read_environment()
            stop_threads()


def loaded_libraries() -> list[dict]:
    """threadpoolctl's ``threadpool_info()``: the BLAS and OpenMP libraries loaded in this
    process ([] without threadpoolctl, the 'fast' extra's). Importing threadpoolctl sets
    ``KMP_DUPLICATE_LIB_OK=True`` in the environment (a workaround for duplicate Intel OpenMP
    runtimes, for every library in the process): rnnkit takes it back out unless it was there."""
    was_set = "KMP_DUPLICATE_LIB_OK" in os.environ
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    finally:
        if not was_set:
            os.environ.pop("KMP_DUPLICATE_LIB_OK", None)
    return threadpool_info()


def _loaded_openblas() -> list:
    """ctypes handles of the OpenBLAS libraries loaded in this process."""
    found = [info for info in loaded_libraries() if info["internal_api"] == "openblas"]
    return [ctypes.CDLL(info["filepath"]) for info in found]  # loaded already: no new load


def tune_process() -> None:
    """Make the process settings above for this process (and, for OpenBLAS's thread timeout, the
    processes it starts), unless ``RNNKIT_PROCESS_SETTINGS=0``. Call it once, at the start of a
    program that trains or runs rnnkit models for a while, before other threads make products;
    calling it again changes nothing."""
    if os.environ.get("RNNKIT_PROCESS_SETTINGS", "1") == "0":
        return
    if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
        _threads_reread_timeout(_loaded_openblas())
    _keep_freed_memory()
