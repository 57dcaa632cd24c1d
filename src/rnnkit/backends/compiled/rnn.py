"""The Elman RNN's compiled time loops (``_fused_loops.rnn_sequence`` and its backward), float32:
the equations are the cell's (``rnnkit.cells.rnn``).

The state travels as a 1-tuple ``(h,)``, as every compiled kernel's does.
"""

from __future__ import annotations

import numpy as np

from rnnkit.backends.compiled import _fused
from rnnkit.backends.compiled._common import bias_gradients, bias_sum, recurrent_weight_gradient
from rnnkit.kernels._common import step_masks

OPTIONS = {"nonlinearity": ("tanh", "relu")}  # the cell's options the loops take, and values


def forward(x, state0, w_ih, w_hh, b_ih, b_hh, lengths, nonlinearity="tanh"):
    """Run the RNN over all steps, in one compiled call (input projection and biases added
    step by step in it).

    Args:
        x: (T, B, I) C-ordered float32. state0: ``(h0,)`` with h0 (B, H).
        w_ih: (H, I), w_hh: (H, H). b_ih, b_hh: (H,) or None.
        lengths: (B,) ints in [1, T], or None when every sequence has T steps.
        nonlinearity: 'tanh' or 'relu'.
    Returns:
        y (T, B, H), the final state ``(h_n,)``, and the cache for ``backward``.
    """
    (h,) = state0
    fused = _fused.loops()
    steps, batch, _ = x.shape
    masks = step_masks(lengths, steps, x.dtype)
    bias = bias_sum(w_hh.shape[0], x.dtype, b_ih, b_hh)  # (H,): both biases go to a
    hs = np.empty((steps, batch, w_hh.shape[0]), np.float32)  # (T, B, H): a[t], then h[t]
    h_n = np.empty(h.shape, hs.dtype)  # C-ordered, whatever h0 is: the products write it
    w_ih_t = fused.pack_transpose(w_ih)  # W_ih.T (I, H), packed
    w_hh_t = fused.pack_transpose(w_hh)  # W_hh.T (H, H), packed
    relu = nonlinearity == "relu"
    loop_arrays = (x, w_ih_t, hs, bias, h, w_hh_t, relu, masks, h_n)
    _fused.by_rows(fused.rnn_sequence, batch, *loop_arrays)
    y = hs if masks is None else hs * masks
    cache = (hs, h, w_ih, w_hh, b_hh is not None, masks, nonlinearity)
    return y, (h_n,), cache


def backward(dy, dstate, cache, dh_record=None):
    """Backpropagate through time, in one compiled call (dx = da @ W_ih made step by step).

    Args:
        dy: (T, B, H) gradient of the loss with respect to y.
        dstate: ``(dh_n,)``, the gradient with respect to the final state (B, H).
        dh_record: None, or a (T, B, H) array that receives dL/dh[t] at every step.
    Returns:
        dx (T, B, I), da (T, B, H) (the gradient of the input projection), ``(dh0,)``,
        dW_hh (H, H), db_ih and db_hh (each (H,), equal: both biases go to a) or None and None.
    """
    hs, h0, w_ih, w_hh, has_bias, masks, nonlinearity = cache
    fused = _fused.loops()
    (dh,) = dstate
    dh = np.array(dh, order="C")  # a copy: the loop updates it in place
    da = np.empty_like(hs)  # (T, B, H)
    dy = np.ascontiguousarray(dy)
    d_bias = np.zeros_like(dh)  # (B, H): each row's da summed over time
    dx = np.empty((*hs.shape[:2], w_ih.shape[1]), hs.dtype)  # (T, B, I)
    packed_hh, packed_ih = fused.pack(w_hh), fused.pack(w_ih)  # (H, H) and (H, I), packed
    relu = nonlinearity == "relu"
    loop_arrays = (dy, dh, hs, packed_hh, packed_ih, relu, masks, da, d_bias, dx, dh_record)
    _fused.by_rows(fused.rnn_sequence_backward, dh.shape[0], *loop_arrays)
    dw_hh = recurrent_weight_gradient(da, h0, hs)  # sum_t da[t].T @ h[t-1]
    return dx, da, (dh,), dw_hh, *bias_gradients(d_bias, has_bias)
