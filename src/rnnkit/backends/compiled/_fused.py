"""Compiled float32 loops for the cell kernels (numba, when installed).

- The elementwise math of one LSTM or GRU step, forward and backward. NumPy makes one pass over
  memory per operation (about fifteen per step); these loops make one, and vectorize. They
  compute what ``step`` and ``step_backward`` of ``lstm.py`` and ``gru.py`` compute, with tanh
  replaced by a rational approximation (absolute error below 3.2e-7 in float32, against 6e-8 for
  NumPy's) and the logistic function taken from it.
- Whole time loops (``lstm_sequence``, ``gru_sequence``, ``rnn_sequence``, their backward
  loops, and ``lstm_inference``), products included: no Python runs between steps. Each step
  makes its input projection x[t] @ W_ih.T and its recurrent product (backward: those products'
  gradients, dx[t] among them) against weights packed once per sequence (``_packed``), and from
  SPLIT_BATCH sequences up the batch runs in two halves side by side (``by_rows``). The RNN's
  forward loop takes its tanh in float64 (``_tanh_double``): the approximation's error,
  amplified through time, failed the PyTorch parity tests.
- One cell step for streaming inference (``cell_step``: ``lstm_cell``, ``gru_cell``).
- ``run_together``: two tasks side by side in threads (the directions of a bidirectional
  layer, or the two halves of a batch), the loops releasing the GIL.

They run for float32 only: float64 (the finite-difference checks) always takes the NumPy path.

``ENABLED`` is False without numba (the optional 'fast' extra), or with the environment variable
``RNNKIT_FUSED=0``; without NumPy's bundled OpenBLAS (a NumPy built against another BLAS) the
loops do not run either. numba is imported, and the loops compiled, at the first fused step, not at
``import rnnkit``; compiled code is cached next to this file, so a new process does not compile
again.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

ENABLED = (
    importlib.util.find_spec("numba") is not None and os.environ.get("RNNKIT_FUSED", "1") != "0"
)

# numba's options for every compiled loop. error_model numpy: no division-by-zero checks (they
# stop loops from vectorizing); nogil: two loops may run side by side; cache: compiled once.
COMPILE_OPTIONS = {"cache": True, "fastmath": True, "error_model": "numpy", "nogil": True}

# tanh(x) ~ x P(x^2) / Q(x^2) on [-9, 9] (and +-1 beyond: 1 - tanh(9) = 3e-8), coefficients
# fitted here by iterated weighted least squares; lowest power first.
P = (9.999999231e-01, 1.338477726e-01, 3.500279905e-03, 2.069519323e-05, 1.349004611e-08)
Q = (1.0, 4.671808026e-01, 2.589423046e-02, 3.293697255e-04, 7.828602008e-07)


def _openblas_symbol(name: str) -> str:
    """The name NumPy's OpenBLAS exports ``name`` under: prefixed, with 64-bit integers."""
    return f"scipy_{name}64_"


SGEMM = _openblas_symbol("cblas_sgemm")


@functools.cache
def blas_library() -> str | None:
    """The path of the OpenBLAS that NumPy's wheels bundle (``numpy.libs`` on Linux and Windows,
    ``numpy/.dylibs`` on macOS) when it exports SGEMM, else None."""
    numpy_dir = Path(np.__file__).parent
    for folder in (numpy_dir.parent / "numpy.libs", numpy_dir / ".dylibs"):
        for path in sorted(folder.glob("*scipy_openblas64_*")):
            if hasattr(ctypes.CDLL(str(path)), SGEMM):  # NumPy has loaded it: no new load
                return str(path)
    return None


def loops(*arrays: np.ndarray):
    """The compiled loops (the module ``_fused_loops``) when they may run on ``arrays``, else
    None: numba and NumPy's OpenBLAS present, every array float32 and C-ordered.

    A kernel asks once per sequence, with the arrays it gets from outside; the ones it makes
    from them are float32 and C-ordered too.
    """
    if not ENABLED or blas_library() is None:
        return None
    if arrays and not all(a.dtype == np.float32 and a.flags.c_contiguous for a in arrays):
        return None
    return _imported_loops()


@functools.cache
def _imported_loops():
    """The module ``_fused_loops``, imported once (a cell step asks for it at every step)."""
    from rnnkit.backends.compiled import (
        _fused_loops,
    )  # imports numba: a few tenths of a second, once

    return _fused_loops


@functools.cache
def _blas_thread_count():
    """``(get, set)``: read and set OpenBLAS's process-wide thread count; None without them."""
    path = blas_library()
    library = ctypes.CDLL(path) if path else None
    get = getattr(library, _openblas_symbol("openblas_get_num_threads"), None)
    set_ = getattr(library, _openblas_symbol("openblas_set_num_threads"), None)
    return None if get is None or set_ is None else (get, set_)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnkit")


_TOGETHER = threading.Lock()  # one pair at a time (each sets the BLAS thread count); no nesting


def _after_fork_in_child() -> None:
    """A forked child has no pool thread and may hold a copy of a taken lock: start afresh."""
    global _TOGETHER
    _pool.cache_clear()
    _TOGETHER = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def run_together(first, second, dtype: np.dtype) -> tuple:
    """``(first(), second())``, run side by side in two threads, each with half the BLAS
    threads, when the compiled loops run on data of ``dtype`` (they release the GIL) and
    OpenBLAS has two threads or more; else one after the other. One pair runs at a time: a
    pair asked for while one runs (from one of its tasks, or another thread) runs one after the
    other. An error in either rises after both have finished.

    For the two directions of a bidirectional layer (independent: a 2-layer bidirectional LSTM
    training step at (32, 100, 64, 128) took 84 ms one after the other, 58 ms together, on 2
    cores) and the two halves of a batch (``by_rows``). The count is OpenBLAS's
    process-wide one, halved for the duration and then restored (OpenBLAS's per-thread setter
    left later calls 60% slower here): BLAS calls from other threads meanwhile get half too.
    Results are the same either way: OpenBLAS splits a product's output between its threads,
    never a sum.
    """
    blas = _blas_thread_count() if ENABLED and dtype == np.float32 else None
    if blas is None:
        return first(), second()
    get_threads, set_threads = blas
    if not _TOGETHER.acquire(blocking=False):  # a pair runs (this may be one of its tasks)
        return first(), second()
    try:
        threads = get_threads()
        if threads < 2:  # one BLAS thread asked for (OPENBLAS_NUM_THREADS=1 ...): one core
            return first(), second()
        set_threads(threads // 2)
        try:
            other = _pool().submit(second)
            try:
                first_result = first()
            finally:
                wait([other])
        finally:
            set_threads(threads)
    finally:
        _TOGETHER.release()
    return first_result, other.result()


SPLIT_BATCH = 16  # from this batch up, a compiled time loop runs as two halves side by side


def by_rows(loop, batch: int, *args) -> None:
    """``loop(*args, first, last)``, a compiled time loop over the rows first .. last - 1 of a
    batch of ``batch``: from SPLIT_BATCH rows up as two halves side by side (``run_together``),
    the first a multiple of 8 rows (the products' tile), else once over all rows. The sequences
    of a batch never meet, so the halves need no synchronisation and the results are the same
    either way."""
    if batch < SPLIT_BATCH:
        loop(*args, 0, batch)
        return
    half = batch // 2 // 8 * 8
    run_together(lambda: loop(*args, 0, half), lambda: loop(*args, half, batch), np.float32)
