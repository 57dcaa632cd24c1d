"""Compiled float32 loops for the cell kernels (numba, when installed).

- The elementwise math of one LSTM or GRU step, forward and backward. NumPy makes one pass over
  memory per operation (about fifteen per step); these loops make one, and vectorize. They
  compute what the cells' ``step`` and ``step_backward`` (``rnnkit.cells.lstm``, ``.gru``)
  compute, with tanh replaced by a rational approximation (absolute error below 3.2e-7 in
  float32, against 6e-8 for NumPy's) and the logistic function taken from it.
- Whole time loops (``lstm_sequence``, ``gru_sequence``, ``rnn_sequence``, their backward
  loops, and ``lstm_inference``), products included: no Python runs between steps. Each step
  makes its input projection x[t] @ W_ih.T and its recurrent product (backward: those products'
  gradients, dx[t] among them) against weights packed once per sequence (``_packed``), and from
  SPLIT_BATCH sequences up the batch runs in two halves side by side (``by_rows``). The RNN's
  forward loop takes a more accurate tanh (``_tanh_precise``, within 1.3 float32 units in the
  last place, NumPy's 1.4): the approximation's error, amplified through time, failed the
  PyTorch parity tests.
- One cell step for streaming inference (``cell_step``: ``lstm_cell``, ``gru_cell``).
- ``run_together``: two tasks side by side in threads (the directions of a bidirectional
  layer, or the two halves of a batch), the loops releasing the GIL.

They run for float32 only (``rnnkit.backends`` runs the reference loop otherwise).
``availability()`` says, in one line, why the loops cannot run in this process
(numba missing or outside the tested range, no OpenBLAS cblas_sgemm loaded, a bad ``RNNKIT_TILE``),
and ``product_path()`` which product the time loops make (``_packed``). numba is imported, and the
loops compiled, at the first fused step, not at ``import rnnkit``; compiled code is cached next to
this file, so a new process does not compile again.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import importlib.util
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import NamedTuple

import numpy as np

from rnnkit._environment import loaded_libraries

# numba releases tested with these loops: from the first up to, not including, the second.
NUMBA_TESTED = ((0, 68, 1), (0, 69))

# The products' path (``_packed``): chosen from numba's target CPU ("auto"), or forced.
TILE = os.environ.get("RNNKIT_TILE", "auto")
TILE_CHOICES = ("auto", "avx512", "avx2", "blas")

# numba's options for every compiled loop. error_model numpy: no division-by-zero checks (they
# stop loops from vectorizing); nogil: two loops may run side by side; cache: compiled once.
# numba keys its cache by the target CPU, which decides the "auto" product, but not by a forced
# one: forced, the loops compile afresh in each process instead of reading another's code.
COMPILE_OPTIONS = {"cache": TILE == "auto", "fastmath": True, "error_model": "numpy", "nogil": True}

# tanh(x) ~ x P(x^2) / Q(x^2) on [-9, 9] (and +-1 beyond: 1 - tanh(9) = 3e-8), coefficients
# fitted by iterated weighted least squares; lowest power first.
P = (9.999999231e-01, 1.338477726e-01, 3.500279905e-03, 2.069519323e-05, 1.349004611e-08)
Q = (1.0, 4.671808026e-01, 2.589423046e-02, 3.293697255e-04, 7.828602008e-07)

# For the RNN's tanh, accurate in float32 arithmetic (``_fused_loops._tanh_precise``), fitted
# by iterated weighted least squares on the relative error; lowest power first.
# tanh(a) ~ a + a s T(s), s = a^2, for 0 <= a < 0.625 (relative error 4.4e-9):
TANH_SMALL = (-0.33333281, 0.13331443, -0.053739823, 0.020639451, -0.0057054018)
# e^r ~ E(r) for |r| <= ln(2) / 2 (relative error 1.9e-9):
EXP = (1.0, 1.0, 0.49999991, 0.1666642, 0.041668225, 0.0083747962, 0.0013836764)


class Blas(NamedTuple):
    """An OpenBLAS loaded in this process: its file, its symbols' affixes (NumPy's PyPI wheels
    export ``scipy_cblas_sgemm64_``) and the bits of its integers (32, or 64 when built so)."""

    path: str
    prefix: str
    suffix: str
    integer_bits: int

    def symbol(self, name: str) -> str:
        return f"{self.prefix}{name}{self.suffix}"


@functools.cache
def blas() -> Blas | None:
    """NumPy's OpenBLAS, as threadpoolctl finds the BLAS libraries loaded in this process (one
    whose version NumPy's configuration names first), when it exports cblas_sgemm; else None."""
    numpys = getattr(np.__config__, "CONFIG", {}).get("Build Dependencies", {}).get("blas", {})
    found = [library for library in loaded_libraries() if library["internal_api"] == "openblas"]
    found.sort(key=lambda library: library.get("version") != numpys.get("version"))
    for library in found:
        handle = ctypes.CDLL(library["filepath"])  # loaded already: no new load
        for prefix, suffix in itertools.product(("scipy_", ""), ("64_", "_64", "")):
            config = getattr(handle, f"{prefix}openblas_get_config{suffix}", None)
            if config is not None and hasattr(handle, f"{prefix}cblas_sgemm{suffix}"):
                config.restype = ctypes.c_char_p
                bits = 64 if b"USE64BITINT" in config() else 32
                return Blas(library["filepath"], prefix, suffix, bits)
    return None


def _release(version: str) -> tuple[int, ...]:
    """(0, 68, 1) for "0.68.1", (0, 69, 0) for "0.69.0rc1"."""
    return tuple(int("0" + "".join(itertools.takewhile(str.isdigit, part)))
                 for part in version.split(".")[:3])  # fmt: skip


@functools.cache
def _numba_problem() -> str | None:
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed: pip install -e '.[fast]'"
    if importlib.util.find_spec("threadpoolctl") is None:  # it finds the BLAS
        return "threadpoolctl is not installed: pip install -e '.[fast]'"
    version = importlib.metadata.version("numba")
    low, high = (".".join(map(str, release)) for release in NUMBA_TESTED)
    if not NUMBA_TESTED[0] <= _release(version) < NUMBA_TESTED[1]:
        return (
            f"numba {version} is outside the range the compiled loops are tested with "
            f"(>={low},<{high}): pip install 'numba>={low},<{high}'"
        )
    return None


def availability() -> str | None:
    """None when the compiled loops can run in this process, else one line: why not, and the
    fix. ``loops()`` is None whenever this is not."""
    problem = _numba_problem()
    if problem is None and TILE not in TILE_CHOICES:
        problem = f"RNNKIT_TILE={TILE!r} is none of {', '.join(TILE_CHOICES)}: unset it"
    if problem is None and blas() is None:
        loaded = ", ".join(f"{b['internal_api']} {b['version']}" for b in loaded_libraries()
                           if b["user_api"] == "blas") or "none"  # fmt: skip
        problem = (
            f"no OpenBLAS exporting cblas_sgemm among the BLAS libraries threadpoolctl finds "
            f"loaded (found: {loaded}): install NumPy's PyPI wheel, which bundles OpenBLAS"
        )
    return problem


def product_path() -> str:
    """One line: how the compiled time loops make their products and why (``_packed``), or why
    the compiled loops do not run."""
    problem = availability()
    if problem is not None:
        return f"no compiled loops: {problem}"
    from rnnkit.backends.compiled import _packed

    return _packed.PRODUCT_PATH


def loops(*arrays: np.ndarray):
    """The compiled loops (the module ``_fused_loops``) when they may run on ``arrays``, else
    None: ``availability()`` None, every array float32 and C-ordered.

    A kernel asks once per sequence, with the arrays it gets from outside; the ones it makes
    from them are float32 and C-ordered too.
    """
    if availability() is not None:
        return None
    if arrays and not all(a.dtype == np.float32 and a.flags.c_contiguous for a in arrays):
        return None
    return _imported_loops()


@functools.cache
def _imported_loops():
    """The module ``_fused_loops``, imported once (a cell step asks for it at every step)."""
    from rnnkit.backends.compiled import _fused_loops  # imports numba once: tenths of a second

    return _fused_loops


@functools.cache
def _blas_thread_count():
    """``(get, set)``: read and set OpenBLAS's process-wide thread count; None without them."""
    found = blas()
    library = ctypes.CDLL(found.path) if found else None
    get = getattr(library, found.symbol("openblas_get_num_threads"), None) if found else None
    set_ = getattr(library, found.symbol("openblas_set_num_threads"), None) if found else None
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

    For work that never meets: the two directions of a bidirectional layer, and the two halves
    of a batch (``by_rows``). The count is OpenBLAS's process-wide one, halved for the duration
    and then restored (OpenBLAS's per-thread setter slowed later calls down): BLAS calls from
    other threads meanwhile get half too. Results are the same either way: OpenBLAS splits a
    product's output between its threads, never a sum.
    """
    runs = dtype == np.float32 and availability() is None
    blas = _blas_thread_count() if runs else None
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
    either way. With the BLAS product (``_packed.PRODUCT``) the batch is never split: each
    product then keeps all of OpenBLAS's threads, which ran faster than two halves with one
    each."""
    from rnnkit.backends.compiled import _packed  # loaded with the loops that call this

    if batch < SPLIT_BATCH or _packed.PRODUCT == "blas":
        loop(*args, 0, batch)
        return
    half = batch // 2 // 8 * 8
    run_together(lambda: loop(*args, 0, half), lambda: loop(*args, half, batch), np.float32)
