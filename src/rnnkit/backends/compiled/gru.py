"""The GRU's compiled time loops (``_fused_loops.gru_sequence`` and its backward), float32:
the equations are the cell's (``rnnkit.cells.gru``).

The state travels as a 1-tuple ``(h,)``.
"""

from __future__ import annotations

import numpy as np

from rnnkit.backends.compiled import _fused
from rnnkit.backends.compiled._common import bias_gradient, bias_sum, recurrent_weight_gradient
from rnnkit.kernels._common import step_masks

OPTIONS = {}  # the cell's options the loops take: none (the cell has none)


def forward(x, state0, w_ih, w_hh, b_ih, b_hh, lengths):
    """Run the GRU over all steps in one compiled call, input projection included.

    Args:
        x: (T, B, I) C-ordered float32. state0: ``(h0,)`` with h0 (B, H), C-ordered.
        w_ih: (3H, I), w_hh: (3H, H). b_ih, b_hh: (3H,) or None.
        lengths: (B,) ints in [1, T], or None when every sequence has T steps.
    Returns:
        y (T, B, H), the final state ``(h_n,)``, and the cache for ``backward``.
    """
    (h,) = state0
    fused = _fused.loops()
    steps, batch, _ = x.shape
    three_hidden, hidden = w_hh.shape
    masks = step_masks(lengths, steps, x.dtype)
    input_bias = bias_sum(three_hidden, x.dtype, b_ih)  # (3H,)
    hidden_bias = bias_sum(three_hidden, x.dtype, b_hh)  # (3H,): inside r * (...) for n
    xw = np.empty((steps, batch, three_hidden), np.float32)  # (T, B, 3H): turned into r, z, n
    hs = np.empty((steps, batch, hidden), np.float32)  # h[t]
    hw_ns = np.empty_like(hs)  # W_hn h[t-1] + b_hn, needed by dr
    h_n = np.empty_like(h)
    w_ih_t = fused.pack_transpose(w_ih)  # W_ih.T (I, 3H), packed
    w_hh_t = fused.pack_transpose(w_hh)  # W_hh.T (H, 3H), packed
    loop_arrays = (x, w_ih_t, xw, input_bias, h, w_hh_t, hidden_bias, masks, hs, hw_ns, h_n)
    _fused.by_rows(fused.gru_sequence, batch, *loop_arrays)
    y = hs if masks is None else hs * masks
    cache = (xw, hs, hw_ns, h, w_ih, w_hh, b_hh is not None, masks)
    return y, (h_n,), cache


def backward(dy, dstate, cache, dh_record=None):
    """Backpropagate through time in one compiled call, dx = dxw @ W_ih made step by step.

    Args:
        dy: (T, B, H) gradient with respect to y.
        dstate: ``(dh_n,)``, the gradient with respect to the final state (B, H).
        dh_record: None, or a (T, B, H) array that receives dL/dh[t] at every step.
    Returns:
        dx (T, B, I), dxw (T, B, 3H) (the gradient of the input projection), ``(dh0,)``,
        dW_hh (3H, H), db_ih and db_hh (each (3H,)) or None and None.
    """
    gates, hs, hw_ns, h0, w_ih, w_hh, has_bias, masks = cache
    fused = _fused.loops()
    (dh,) = dstate
    dxw = gates  # (T, B, 3H): each step's r, z, n, read once, become its dxw (the cache is spent)
    dhw = np.empty_like(gates)  # (T, B, 3H)
    dh = np.array(dh, order="C")  # the loop updates it in place
    dy = np.ascontiguousarray(dy)
    d_bias_ih = np.zeros(gates.shape[1:], gates.dtype)  # (B, 3H): rows' dxw over time
    d_bias_hh = np.zeros_like(d_bias_ih)  # (B, 3H): rows' dhw over time
    dx = np.empty((*gates.shape[:2], w_ih.shape[1]), gates.dtype)  # (T, B, I)
    packed_hh, packed_ih = fused.pack(w_hh), fused.pack(w_ih)  # (3H, H) and (3H, I), packed
    loop_arrays = (dy, dh, gates, hs, hw_ns, h0, packed_hh, packed_ih, masks, dxw, dhw)
    _fused.by_rows(
        fused.gru_sequence_backward, dh.shape[0], *loop_arrays, d_bias_ih, d_bias_hh, dx,
        dh_record,
    )  # fmt: skip
    dw_hh = recurrent_weight_gradient(dhw, h0, hs)  # sum_t dhw[t].T @ h[t-1]
    if not has_bias:
        return dx, dxw, (dh,), dw_hh, None, None
    return dx, dxw, (dh,), dw_hh, bias_gradient(d_bias_ih), bias_gradient(d_bias_hh)
