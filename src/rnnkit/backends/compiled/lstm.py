"""The LSTM's compiled time loops (``_fused_loops.lstm_sequence``, ``lstm_inference`` and the
backward loop), float32: the equations are the cell's (``rnnkit.cells.lstm``).

The state travels as the tuple ``(h, c)``.
"""

from __future__ import annotations

import numpy as np

from rnnkit.backends.compiled import _fused
from rnnkit.backends.compiled._common import bias_gradients, bias_sum, recurrent_weight_gradient
from rnnkit.kernels._common import step_masks

OPTIONS = {}  # the cell's options the loops take: none, so proj_size at its default 0 only


def forward(x, state0, w_ih, w_hh, b_ih, b_hh, lengths):
    """Run the LSTM over all steps in one compiled call, each step's input projection
    x[t] @ W_ih.T made next to its recurrent product, the biases added step by step.

    Args:
        x: (T, B, I) C-ordered float32. state0: ``(h0, c0)``, each (B, H).
        w_ih: (4H, I), w_hh: (4H, H). b_ih, b_hh: (4H,) or None.
        lengths: (B,) ints in [1, T], or None when every sequence has T steps.
    Returns:
        y (T, B, H), the final state ``(h_n, c_n)``, and the cache for ``backward``.
    """
    h, c = state0
    fused = _fused.loops()
    steps, batch, _ = x.shape
    masks = step_masks(lengths, steps, x.dtype)
    bias = bias_sum(w_hh.shape[0], x.dtype, b_ih, b_hh)  # (4H,): both biases go to z
    gates = np.empty((steps, batch, w_hh.shape[0]), np.float32)  # (T, B, 4H)
    hs = np.empty((steps, batch, w_hh.shape[1]), np.float32)  # h[t]
    cs = np.empty_like(hs)  # c[t]
    tanh_cs = np.empty_like(hs)  # tanh(c[t])
    h_n, c_n = np.empty_like(c), np.empty_like(c)
    w_ih_t = fused.pack_transpose(w_ih)  # W_ih.T (I, 4H), packed
    w_hh_t = fused.pack_transpose(w_hh)  # W_hh.T (H, 4H), packed
    loop_arrays = (x, w_ih_t, gates, bias, h, c, w_hh_t, masks, hs, cs, tanh_cs, h_n, c_n)
    _fused.by_rows(fused.lstm_sequence, batch, *loop_arrays)
    y = hs if masks is None else hs * masks
    cache = (gates, hs, cs, tanh_cs, state0, w_ih, w_hh, b_hh is not None, masks)
    return y, (h_n, c_n), cache


def infer(x, state0, w_ih, w_hh, b_ih, b_hh, lengths):
    """Inference without a cache, the input projection inside the compiled time loop (each
    step's x[t] @ W_ih.T into a (B, 4H) buffer that stays in cache, not a (T, B, 4H) array
    written and read back). Arguments as ``forward``; returns y (T, B, H) and ``(h_n, c_n)``.
    """
    h0, c0 = state0
    fused = _fused.loops()
    steps, batch, _ = x.shape
    bias = bias_sum(w_hh.shape[0], x.dtype, b_ih, b_hh)  # (4H,)
    masks = step_masks(lengths, steps, x.dtype)
    hs = np.empty((steps, batch, w_hh.shape[1]), np.float32)  # h[t]
    h_n, c_n = np.empty_like(hs[0]), np.empty_like(hs[0])
    w_ih_t = fused.pack_transpose(w_ih)  # W_ih.T (I, 4H), packed
    w_hh_t = fused.pack_transpose(w_hh)  # W_hh.T (H, 4H), packed
    _fused.by_rows(
        fused.lstm_inference, batch, x, w_ih_t, bias, h0, c0, w_hh_t, masks, hs, h_n, c_n
    )
    y = hs if masks is None else hs * masks
    return y, (h_n, c_n)


def backward(dy, dstate, cache, dh_record=None):
    """Backpropagate through time in one compiled call, dx = dz @ W_ih made step by step.

    Args:
        dy: (T, B, H) gradient with respect to y.
        dstate: ``(dh_n, dc_n)``, gradients with respect to the final state, each (B, H).
        dh_record: None, or a (T, B, H) array that receives dL/dh[t] at every step.
    Returns:
        dx (T, B, I), dz (T, B, 4H) (the gradient of the input projection), ``(dh0, dc0)``,
        dW_hh (4H, H), db_ih and db_hh (each (4H,), equal: both biases go to z) or None and
        None.
    """
    gates, hs, cs, tanh_cs, (h0, c0), w_ih, w_hh, has_bias, masks = cache
    fused = _fused.loops()
    dh, dc = dstate
    dz = gates  # (T, B, 4H): each step's gates, read once, become its dz (the cache is spent)
    dh, dc = np.array(dh, order="C"), np.array(dc, order="C")  # the loop updates them in place
    dy = np.ascontiguousarray(dy)
    d_bias = np.zeros(gates.shape[1:], gates.dtype)  # (B, 4H): each row's dz summed over time
    dx = np.empty((*gates.shape[:2], w_ih.shape[1]), gates.dtype)  # (T, B, I)
    packed_hh, packed_ih = fused.pack(w_hh), fused.pack(w_ih)  # (4H, H) and (4H, I), packed
    loop_arrays = (dy, dh, dc, gates, cs, tanh_cs, c0, packed_hh, packed_ih, masks, dz)
    _fused.by_rows(fused.lstm_sequence_backward, dh.shape[0], *loop_arrays, d_bias, dx, dh_record)
    dw_hh = recurrent_weight_gradient(dz, h0, hs)  # sum_t dz[t].T @ h[t-1]
    return dx, dz, (dh, dc), dw_hh, *bias_gradients(d_bias, has_bias)
