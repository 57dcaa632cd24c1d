"""Helpers of the compiled kernels: the summed bias, and the weight and bias gradients made
from what their time loops write."""

from __future__ import annotations

import numpy as np


def bias_sum(size: int, dtype: np.dtype, *biases: np.ndarray | None) -> np.ndarray:
    """The sum of the ``biases`` that are not None, (size,): zeros when all are None."""
    total = np.zeros(size, dtype)
    for bias in biases:
        if bias is not None:
            total += bias
    return total


def recurrent_weight_gradient(d_pre: np.ndarray, h0: np.ndarray, hs: np.ndarray) -> np.ndarray:
    """dW_hh = sum_t d_pre[t].T @ h[t-1], with h[-1] = h0: d_pre (T, B, G) the gradients of the
    recurrent products' outputs, h0 (B, H), hs (T, B, H) the states; returns (G, H).

    Two products, the first step's and the rest's, so no (T, B, H) copy of the states is made.
    At padded steps h[t-1] is not the frozen state, but d_pre is zero there, so the sum does
    not see the difference.
    """
    steps, batch, gates = d_pre.shape
    hidden = hs.shape[2]
    d_w = d_pre[0].T @ h0
    if steps > 1:
        later = d_pre[1:].reshape((steps - 1) * batch, gates)  # ((T-1)*B, G), a view
        d_w += later.T @ hs[:-1].reshape((steps - 1) * batch, hidden)  # states h[0..T-2]
    return d_w


def bias_gradient(rows: np.ndarray) -> np.ndarray:
    """The gradient of a bias added to every row of a pre-activation: ``rows`` (..., G), the
    pre-activation's gradients (or partial sums of them), summed over all leading axes: (G,)."""
    return rows.reshape(-1, rows.shape[-1]).sum(axis=0)  # (N, G): a view for C-ordered rows


def bias_gradients(rows: np.ndarray, has_bias: bool) -> tuple:
    """``(db_ih, db_hh)`` for a cell whose two biases are added to the same pre-activation (RNN,
    LSTM), so both get ``bias_gradient(rows)``: two arrays, or ``(None, None)`` (and no sum) for a
    layer without biases."""
    if not has_bias:
        return None, None
    d_bias = bias_gradient(rows)
    return d_bias, d_bias.copy()
