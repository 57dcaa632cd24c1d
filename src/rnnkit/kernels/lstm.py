"""LSTM over a whole sequence: forward and hand-derived backward through time.

Notation (time-major: T steps, B sequences, H hidden units; gates in PyTorch's order i, f, g, o):

    xw[t]          = x[t] @ W_ih.T + b_ih               (T, B, 4H)  one product (compiled: per step)
    z[t]           = xw[t] + b_hh + h[t-1] @ W_hh.T     (B, 4H)     one product per step
    i, f, g, o     = sig(z_i), sig(z_f), tanh(z_g), sig(z_o)   each (B, H)
    c[t]           = f * c[t-1] + i * g                 (B, H)
    h[t]           = o * tanh(c[t])                     (B, H)

Ragged batches: m[t] = 1 while t < length, else 0 (shape (B, 1)). A finished sequence keeps its
state (h and c) and outputs zeros: y[t] = m[t] * h[t].

The state travels as the tuple ``(h, c)``.
"""

from __future__ import annotations

import numpy as np

from rnnkit.backends.compiled import _fused
from rnnkit.kernels._common import (
    bias_gradients,
    bias_sum,
    input_gradient,
    input_projection,
    recurrent_weight_gradient,
    sigmoid,
    step_masks,
)


def step(gates: np.ndarray, c_prev: np.ndarray, h, c, tanh_c) -> None:
    """One step's elementwise math, in place on the pre-activations ``gates`` (B, 4H).

    Writes h, c and tanh(c) (each (B, H)); ``gates`` then holds i, f, g, o. For float32 with
    numba installed, ``forward`` runs ``_fused_loops.lstm_step`` instead (in its compiled time
    loop): the same, in one pass.
    """
    hidden = c_prev.shape[1]
    sigmoid(gates[:, : 2 * hidden], out=gates[:, : 2 * hidden])  # i, f
    np.tanh(gates[:, 2 * hidden : 3 * hidden], out=gates[:, 2 * hidden : 3 * hidden])  # g
    sigmoid(gates[:, 3 * hidden :], out=gates[:, 3 * hidden :])  # o
    i, f, g, o = np.split(gates, 4, axis=1)  # each (B, H)
    np.add(f * c_prev, i * g, out=c)
    np.tanh(c, out=tanh_c)
    np.multiply(o, tanh_c, out=h)


def step_backward(dh, dc, gates, c_prev, tanh_c, dz, dc_prev) -> None:
    """Gradients through one step: writes dz (B, 4H) and dc_prev (B, H), from dh, dc at h[t],
    c[t]; dz may be ``gates`` itself (each gate is read before its block of dz is written).
    ``_fused_loops.lstm_step_backward`` is the same, fused (see ``step``)."""
    i, f, g, o = np.split(gates, 4, axis=1)  # each (B, H)
    do = dh * tanh_c  # h = o * tanh(c)
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)  # h = o * tanh(c)
    di = dc * g  # c = f * c_prev + i * g
    dg = dc * i
    df = dc * c_prev
    np.multiply(dc, f, out=dc_prev)
    d_i, d_f, d_g, d_o = np.split(dz, 4, axis=1)  # views of dz, each (B, H)
    np.multiply(di, i * (1.0 - i), out=d_i)  # i = sig(z_i)
    np.multiply(df, f * (1.0 - f), out=d_f)  # f = sig(z_f)
    np.multiply(dg, 1.0 - g * g, out=d_g)  # g = tanh(z_g)
    np.multiply(do, o * (1.0 - o), out=d_o)  # o = sig(z_o)


def forward(x, state0, w_ih, w_hh, b_ih, b_hh, lengths):
    """Run the LSTM over all steps.

    Args:
        x: (T, B, I). state0: ``(h0, c0)``, each (B, H).
        w_ih: (4H, I), w_hh: (4H, H). b_ih, b_hh: (4H,) or None.
        lengths: (B,) ints in [1, T], or None when every sequence has T steps.
    Returns:
        y (T, B, H), the final state ``(h_n, c_n)``, and the cache for ``backward``.

    The compiled loop makes each step's input projection x[t] @ W_ih.T itself, next to the
    recurrent product (the NumPy path makes all steps' in one product first).
    """
    h, c = state0
    x = np.ascontiguousarray(x)  # the compiled loop reads x[t] in rows
    c = np.ascontiguousarray(c)  # the state may come in as a slice: steps read it in rows
    steps, batch, _ = x.shape
    masks = step_masks(lengths, steps, x.dtype)
    bias = bias_sum(w_hh.shape[0], x.dtype, b_ih, b_hh)  # (4H,): both biases go to z
    fused = _fused.loops(x, c, w_ih, w_hh, bias)
    if fused:
        gates = np.empty((steps, batch, w_hh.shape[0]), np.float32)  # (T, B, 4H)
    else:
        gates = input_projection(x, w_ih)  # (T, B, 4H)
        gates += bias
    hs = np.empty((steps, batch, w_hh.shape[1]), dtype=gates.dtype)  # h[t]
    cs = np.empty_like(hs)  # c[t]
    tanh_cs = np.empty_like(hs)  # tanh(c[t])
    if fused:  # the whole loop in one compiled call, the biases added step by step
        h_n, c_n = np.empty_like(c), np.empty_like(c)
        w_ih_t = fused.pack_transpose(w_ih)  # W_ih.T (I, 4H), packed
        w_hh_t = fused.pack_transpose(w_hh)  # W_hh.T (H, 4H), packed
        loop_arrays = (x, w_ih_t, gates, bias, h, c, w_hh_t, masks, hs, cs, tanh_cs, h_n, c_n)
        _fused.by_rows(fused.lstm_sequence, batch, *loop_arrays)
        h, c = h_n, c_n
    else:
        for t in range(steps):
            gates[t] += h @ w_hh.T
            step(gates[t], c, hs[t], cs[t], tanh_cs[t])
            h_new, c_new = hs[t], cs[t]
            if masks is None:
                h, c = h_new, c_new
            else:
                running = masks[t] > 0
                h, c = np.where(running, h_new, h), np.where(running, c_new, c)
    y = hs if masks is None else hs * masks
    cache = (gates, hs, cs, tanh_cs, state0, w_ih, w_hh, b_hh is not None, masks)
    return y, (h, c), cache


def infer(x, state0, w_ih, w_hh, b_ih, b_hh, lengths):
    """Inference without a cache, the input projection inside the compiled time loop (each
    step's x[t] @ W_ih.T into a (B, 4H) buffer that stays in cache, not a (T, B, 4H) array
    written and read back): LSTM inference at (64, 100, 128, 256) 30 against 37 ms here. None
    (run ``forward``) without the compiled loops or for float64.

    Args:
        x: (T, B, I). state0: ``(h0, c0)``, each (B, H). w_ih: (4H, I), w_hh: (4H, H);
            b_ih, b_hh: (4H,) or None. lengths: (B,) ints or None.
    Returns:
        y (T, B, H) and the final state ``(h_n, c_n)``.
    """
    x = np.ascontiguousarray(x)  # the time loop reads x[t] in rows
    h0, c0 = state0
    steps, batch, _ = x.shape
    bias = bias_sum(w_hh.shape[0], x.dtype, b_ih, b_hh)  # (4H,)
    fused = _fused.loops(x, w_ih, w_hh, bias)
    if not fused:
        return None
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
    """Backpropagate through time.

    Args:
        dy: (T, B, H) gradient with respect to y.
        dstate: ``(dh_n, dc_n)``, gradients with respect to the final state, each (B, H).
        dh_record: None, or a (T, B, H) array that receives dL/dh[t] at every step: the
            gradient with respect to the h[t] the cell computes, through y[t] and all later
            steps (zero past a sequence's length, where h[t] is not used).
    Returns:
        dx (T, B, I), dxw (T, B, 4H) (the gradient of the input projection), ``(dh0, dc0)``,
        dW_hh (4H, H), db_ih and db_hh (each (4H,), equal: both biases go to z) or None and
        None.
    """
    gates, hs, cs, tanh_cs, (h0, c0), w_ih, w_hh, has_bias, masks = cache
    dh, dc = dstate
    dz = gates  # (T, B, 4H): each step's gates, read once, become its dz (the cache is spent)
    c0, dc = np.ascontiguousarray(c0), np.ascontiguousarray(dc)  # the steps read them in rows
    same_dtype = dy.dtype == dh.dtype == gates.dtype
    fused = _fused.loops(gates, c0, dc, w_ih, w_hh) if same_dtype else None
    if fused:  # the whole loop, compiled, dx = dz @ W_ih made step by step in it
        dh, dc = np.array(dh, order="C"), dc.copy()  # the loop updates them in place
        dy = np.ascontiguousarray(dy)
        d_bias = np.zeros(gates.shape[1:], gates.dtype)  # (B, 4H): each row's dz summed over time
        dx = np.empty((*gates.shape[:2], w_ih.shape[1]), gates.dtype)  # (T, B, I)
        packed_hh, packed_ih = fused.pack(w_hh), fused.pack(w_ih)  # (4H, H) and (4H, I), packed
        loop_arrays = (dy, dh, dc, gates, cs, tanh_cs, c0, packed_hh, packed_ih, masks, dz)
        _fused.by_rows(
            fused.lstm_sequence_backward, dh.shape[0], *loop_arrays, d_bias, dx, dh_record
        )
        bias_rows = d_bias
    else:
        dc_buffers = (np.empty_like(dc), np.empty_like(dc))  # alternate: step t reads the other
        for t in reversed(range(gates.shape[0])):
            c_prev = c0 if t == 0 else cs[t - 1]
            dc_prev = dc_buffers[t % 2]
            if masks is None:
                dh_t = dy[t] + dh  # y[t] = h[t], and h[t] feeds step t+1
                step_backward(dh_t, dc, gates[t], c_prev, tanh_cs[t], dz[t], dc_prev)
                dh, dc = dz[t] @ w_hh, dc_prev  # z[t] = ... + h[t-1] @ W_hh.T
            else:
                m = masks[t]
                dh_t = m * (dy[t] + dh)  # y, state = m * h[t]
                step_backward(dh_t, m * dc, gates[t], c_prev, tanh_cs[t], dz[t], dc_prev)
                dh = dz[t] @ w_hh + (1.0 - m) * dh  # frozen: h[t] = ... + (1 - m) * h[t-1]
                dc = dc_prev + (1.0 - m) * dc  # and c[t] = ... + (1 - m) * c[t-1]
            if dh_record is not None:
                dh_record[t] = dh_t
        dx = input_gradient(dz, w_ih)  # z[t] = x[t] @ W_ih.T + ...
        bias_rows = dz
    dw_hh = recurrent_weight_gradient(dz, h0, hs)  # sum_t dz[t].T @ h[t-1]
    return dx, dz, (dh, dc), dw_hh, *bias_gradients(bias_rows, has_bias)
