"""Compiled float32 loops for the cell kernels (numba, when installed).

- The elementwise math of one LSTM or GRU step, forward and backward. NumPy makes one pass over
  memory per operation (about fifteen per step); these loops make one, and vectorize. They
  compute what ``step`` and ``step_backward`` of ``lstm.py`` and ``gru.py`` compute, with tanh
  replaced by a rational approximation (absolute error below 3.2e-7 in float32, against 6e-8 for
  NumPy's) and the logistic function taken from it.
- Whole time loops (``lstm_sequence``, ``gru_sequence``, ``rnn_sequence`` and their backward
  loops), product included, when the recurrent product of a step is small (``small_step``):
  there a BLAS call and the Python around each step cost more than the arithmetic. The RNN's
  loop uses libm's tanh (the approximation's error, amplified through time, failed the PyTorch
  parity tests), one value at a time, so it runs for tiny steps only (``rnn.WHOLE_LOOP_UNITS``).
- Above that size the kernels go step by step, with the product through BLAS as W_hh h^T and
  ``add_transposed`` (OpenBLAS is faster that way round).
- One cell step for streaming inference (``lstm_cell``, ``gru_cell``).

They run for float32 only: float64 (the finite-difference checks) always takes the NumPy path.

``ENABLED`` is False without numba (the optional 'fast' extra), or with the environment variable
``RNNKIT_FUSED=0``. numba is imported, and the loops compiled, at the first fused step, not at
``import rnnkit``; compiled code is cached next to this file, so a new process does not compile
again.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

ENABLED = (
    importlib.util.find_spec("numba") is not None and os.environ.get("RNNKIT_FUSED", "1") != "0"
)

# tanh(x) ~ x P(x^2) / Q(x^2) on [-9, 9] (and +-1 beyond: 1 - tanh(9) = 3e-8), coefficients
# fitted here by iterated weighted least squares; lowest power first.
P = (9.999999231e-01, 1.338477726e-01, 3.500279905e-03, 2.069519323e-05, 1.349004611e-08)
Q = (1.0, 4.671808026e-01, 2.589423046e-02, 3.293697255e-04, 7.828602008e-07)


SMALL_STEP = 2**16  # multiply-adds of a recurrent product (B x G*H x H) run in a compiled loop


def small_step(batch: int, w_hh: np.ndarray) -> bool:
    """Whether a whole time loop of steps this size runs faster compiled (``*_sequence``) than
    step by step with a BLAS product each: true for products of up to SMALL_STEP multiply-adds."""
    return batch * w_hh.size <= SMALL_STEP


def loops(*arrays: np.ndarray):
    """The compiled loops (the module ``_fused_loops``) when they may run on ``arrays``, else
    None: numba present, every array float32 and C-ordered.

    A kernel asks once per sequence, with the arrays it gets from outside; the ones it makes
    from them are float32 and C-ordered too, so every step can then take the fused loop.
    """
    if not (ENABLED and all(a.dtype == np.float32 and a.flags.c_contiguous for a in arrays)):
        return None
    from rnnkit.kernels import _fused_loops  # imports numba: a few tenths of a second, once

    return _fused_loops
