"""GRU over a whole sequence: forward and hand-derived backward through time.

Notation (time-major: T steps, B sequences, H hidden units; gates in PyTorch's order r, z, n;
the reset gate multiplies the hidden product *with its bias*, as PyTorch does):

    xw[t]   = x[t] @ W_ih.T + b_ih                  (T, B, 3H)  one product (compiled: per step)
    hw[t]   = h[t-1] @ W_hh.T + b_hh                (B, 3H)     one product per step
    r       = sig(xw_r + hw_r)                      (B, H)
    z       = sig(xw_z + hw_z)                      (B, H)
    n       = tanh(xw_n + r * hw_n)                 (B, H)
    h[t]    = (1 - z) * n + z * h[t-1]              (B, H)

Ragged batches: m[t] = 1 while t < length, else 0 (shape (B, 1)). A finished sequence keeps its
state and outputs zeros: y[t] = m[t] * h[t].

The state travels as a 1-tuple ``(h,)``.
"""

from __future__ import annotations

import numpy as np

from rnnkit.backends.compiled import _fused
from rnnkit.kernels._common import (
    bias_gradient,
    bias_sum,
    input_gradient,
    input_projection,
    recurrent_weight_gradient,
    sigmoid,
    step_masks,
)


def step(gates: np.ndarray, hw: np.ndarray, h_prev: np.ndarray, h: np.ndarray) -> None:
    """One step's elementwise math: writes h (B, H) from xw[t] (``gates``, B x 3H), hw (B, 3H)
    and h[t-1]; ``gates`` is overwritten with r, z, n. For float32 with numba installed,
    ``forward`` runs ``_fused_loops.gru_step`` instead (in its compiled time loop): the same."""
    hidden = h_prev.shape[1]
    rz = gates[:, : 2 * hidden]
    rz += hw[:, : 2 * hidden]
    sigmoid(rz, out=rz)  # r, z
    r, z = rz[:, :hidden], rz[:, hidden:]
    n = gates[:, 2 * hidden :]
    n += r * hw[:, 2 * hidden :]
    np.tanh(n, out=n)
    np.add(n, z * (h_prev - n), out=h)  # (1 - z) * n + z * h_prev


def step_backward(dh, gates, hw_n, h_prev, dxw, dhw, dh_direct) -> None:
    """Gradients through one step from dh at h[t]: writes dxw (B, 3H), dhw (B, 3H) and
    dh_prev's direct part dh * z (B, H); dxw may be ``gates`` itself (each gate is read before
    its block is written). ``_fused_loops.gru_step_backward`` is the same, fused."""
    hidden = h_prev.shape[1]
    r, z, n = np.split(gates, 3, axis=1)  # each (B, H)
    dn = dh * (1.0 - z)  # h = (1 - z) * n + z * h_prev
    dz = dh * (h_prev - n)
    np.multiply(dh, z, out=dh_direct)
    da_r, da_z, da_n = np.split(dxw, 3, axis=1)  # views of dxw, each (B, H)
    np.multiply(dn, 1.0 - n * n, out=da_n)  # n = tanh(a_n), a_n = xw_n + r * hw_n
    np.multiply(da_n, r, out=dhw[:, 2 * hidden :])  # a_n = xw_n + r * hw_n
    np.multiply(da_n * hw_n, r * (1.0 - r), out=da_r)  # r = sig(a_r)
    np.multiply(dz, z * (1.0 - z), out=da_z)  # z = sig(a_z)
    dhw[:, : 2 * hidden] = dxw[:, : 2 * hidden]  # hw_r, hw_z enter as xw_r, xw_z do


def forward(x, state0, w_ih, w_hh, b_ih, b_hh, lengths):
    """Run the GRU over all steps.

    Args:
        x: (T, B, I). state0: ``(h0,)`` with h0 (B, H).
        w_ih: (3H, I), w_hh: (3H, H). b_ih, b_hh: (3H,) or None.
        lengths: (B,) ints in [1, T], or None when every sequence has T steps.
    Returns:
        y (T, B, H), the final state ``(h_n,)``, and the cache for ``backward``.
    """
    (h,) = state0
    x = np.ascontiguousarray(x)  # the compiled loop reads x[t] in rows
    h = np.ascontiguousarray(h)  # the state may come in as a slice: steps read it in rows
    steps, batch, _ = x.shape
    three_hidden, hidden = w_hh.shape
    masks = step_masks(lengths, steps, x.dtype)
    input_bias = bias_sum(three_hidden, x.dtype, b_ih)  # (3H,)
    hidden_bias = bias_sum(three_hidden, x.dtype, b_hh)  # (3H,): inside r * (...) for n
    fused = _fused.loops(x, h, w_ih, w_hh, input_bias, hidden_bias)
    # (T, B, 3H): the input projection (made in the compiled loop), turned into r, z, n
    xw = np.empty((steps, batch, three_hidden), np.float32) if fused else input_projection(x, w_ih)
    hs = np.empty((steps, batch, hidden), dtype=xw.dtype)  # h[t]
    hw_ns = np.empty_like(hs)  # W_hn h[t-1] + b_hn, needed by dr
    if fused:  # the whole loop in one compiled call, input projection included
        h_n = np.empty_like(h)
        w_ih_t = fused.pack_transpose(w_ih)  # W_ih.T (I, 3H), packed
        w_hh_t = fused.pack_transpose(w_hh)  # W_hh.T (H, 3H), packed
        loop_arrays = (x, w_ih_t, xw, input_bias, h, w_hh_t, hidden_bias, masks, hs, hw_ns, h_n)
        _fused.by_rows(fused.gru_sequence, batch, *loop_arrays)
        h = h_n
    else:
        if b_ih is not None:
            xw += b_ih
        for t in range(steps):
            hw = h @ w_hh.T  # (B, 3H)
            if b_hh is not None:
                hw += b_hh
            hw_ns[t] = hw[:, 2 * hidden :]
            step(xw[t], hw, h, hs[t])
            h_new = hs[t]
            h = h_new if masks is None else np.where(masks[t] > 0, h_new, h)
    y = hs if masks is None else hs * masks
    cache = (xw, hs, hw_ns, state0[0], w_ih, w_hh, b_hh is not None, masks)
    return y, (h,), cache


def backward(dy, dstate, cache, dh_record=None):
    """Backpropagate through time.

    Args:
        dy: (T, B, H) gradient with respect to y.
        dstate: ``(dh_n,)``, the gradient with respect to the final state (B, H).
        dh_record: None, or a (T, B, H) array that receives dL/dh[t] at every step: the
            gradient with respect to the h[t] the cell computes, through y[t] and all later
            steps (zero past a sequence's length, where h[t] is not used).
    Returns:
        dx (T, B, I), dxw (T, B, 3H) (the gradient of the input projection), ``(dh0,)``,
        dW_hh (3H, H), db_ih and db_hh (each (3H,)) or None and None.
    """
    gates, hs, hw_ns, h0, w_ih, w_hh, has_bias, masks = cache
    (dh,) = dstate
    dxw = gates  # (T, B, 3H): each step's r, z, n, read once, become its dxw (the cache is spent)
    dhw = np.empty_like(gates)  # (T, B, 3H)
    h0 = np.ascontiguousarray(h0)  # read in rows by the first step
    same_dtype = dy.dtype == dh.dtype == gates.dtype
    fused = _fused.loops(gates, h0, w_ih, w_hh) if same_dtype else None
    if fused:  # the whole loop, compiled, dx = dxw @ W_ih made step by step in it
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
        bias_rows = (d_bias_ih, d_bias_hh)
    else:
        dh_direct = np.empty_like(dh)  # (B, H), read at once by each step
        for t in reversed(range(gates.shape[0])):
            h_prev = h0 if t == 0 else hs[t - 1]
            if masks is None:
                dh_t = dy[t] + dh  # y[t] = h[t], and h[t] feeds step t+1
                step_backward(dh_t, gates[t], hw_ns[t], h_prev, dxw[t], dhw[t], dh_direct)
                dh = dh_direct + dhw[t] @ w_hh  # hw[t] = h[t-1] @ W_hh.T + b_hh
            else:
                m = masks[t]
                dh_t = m * (dy[t] + dh)  # y, state = m * h[t]
                step_backward(dh_t, gates[t], hw_ns[t], h_prev, dxw[t], dhw[t], dh_direct)
                dh = dh_direct + dhw[t] @ w_hh + (1.0 - m) * dh  # frozen: + (1 - m) * h[t-1]
            if dh_record is not None:
                dh_record[t] = dh_t
        dx = input_gradient(dxw, w_ih)  # xw[t] = x[t] @ W_ih.T + b_ih
        bias_rows = (dxw, dhw)
    dw_hh = recurrent_weight_gradient(dhw, h0, hs)  # sum_t dhw[t].T @ h[t-1]
    db_ih, db_hh = [bias_gradient(rows) for rows in bias_rows] if has_bias else [None, None]
    return dx, dxw, (dh,), dw_hh, db_ih, db_hh
