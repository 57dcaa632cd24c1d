"""Fused float32 elementwise math of one LSTM or GRU step, compiled by numba when installed.

NumPy makes one pass over memory per operation (about fifteen per step, forward and backward);
these loops make one, and vectorize. They compute what ``step`` and ``step_backward`` of
``lstm.py`` and ``gru.py`` compute, with tanh replaced by a rational approximation (absolute error
below 3.2e-7 in float32, against 6e-8 for NumPy's) and the logistic function taken from it. They
are used for float32 only: float64 (the finite-difference checks) always takes the NumPy path.

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


def usable(*arrays: np.ndarray) -> bool:
    """Whether the fused loops may run on ``arrays``: numba present, all float32 and C-ordered."""
    return ENABLED and all(
        array.dtype == np.float32 and array.flags.c_contiguous for array in arrays
    )


def lstm_step(gates, c_prev, h, c, tanh_c) -> None:
    """In place: ``gates`` (B, 4H) from pre-activations to i, f, g, o; writes h, c, tanh(c)
    (each (B, H)), as ``lstm.step``."""
    from rnnkit.kernels import _fused_loops

    _fused_loops.lstm_step(gates, c_prev, h, c, tanh_c)


def lstm_step_backward(dh, dc, gates, c_prev, tanh_c, dz, dc_prev) -> None:
    """Writes dz (B, 4H) and dc_prev (B, H) from dh, dc at h[t], c[t], as ``lstm.step_backward``."""
    from rnnkit.kernels import _fused_loops

    _fused_loops.lstm_step_backward(dh, dc, gates, c_prev, tanh_c, dz, dc_prev)


def gru_step(gates, hw, h_prev, h) -> None:
    """In place: ``gates`` (B, 3H) from xw to r, z, n; writes h (B, H), as ``gru.step``."""
    from rnnkit.kernels import _fused_loops

    _fused_loops.gru_step(gates, hw, h_prev, h)


def gru_step_backward(dh, gates, hw_n, h_prev, dxw, dhw, dh_direct) -> None:
    """Writes dxw, dhw (B, 3H) and dh_direct (B, H) from dh at h[t], as ``gru.step_backward``."""
    from rnnkit.kernels import _fused_loops

    _fused_loops.gru_step_backward(dh, gates, hw_n, h_prev, dxw, dhw, dh_direct)
