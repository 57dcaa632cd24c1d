"""Elman RNN over a whole sequence: forward and hand-derived backward through time.

Notation (time-major: T steps, B sequences, I inputs, H hidden units):

    xw[t] = x[t] @ W_ih.T + b_ih                    (T, B, H)  one product (compiled: per step)
    a[t]  = xw[t] + b_hh + h[t-1] @ W_hh.T          (B, H)     one product per step
    h[t]  = f(a[t])                                 (B, H)     f = tanh or relu

Ragged batches: m[t] = 1 while t < length, else 0 (shape (B, 1)). A finished sequence keeps its
state and outputs zeros:

    y[t]     = m[t] * h[t]
    state[t] = m[t] * h[t] + (1 - m[t]) * state[t-1]

The state travels as a 1-tuple ``(h,)`` so that every kernel has the same signature.
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
    step_masks,
)

NONLINEARITIES = ("tanh", "relu")


def step(a: np.ndarray, nonlinearity: str) -> np.ndarray:
    """h = f(a), in place on the pre-activation ``a`` (B, H)."""
    if nonlinearity == "tanh":
        return np.tanh(a, out=a)
    return np.maximum(a, 0.0, out=a)


def step_backward(dh: np.ndarray, h: np.ndarray, nonlinearity: str) -> np.ndarray:
    """da from dh (B, H) and the step's output h = f(a)."""
    if nonlinearity == "tanh":
        return dh * (1.0 - h * h)  # d tanh(a) = 1 - h^2
    return dh * (h > 0.0)  # d relu(a) = [a > 0]


def forward(x, state0, w_ih, w_hh, b_ih, b_hh, lengths, nonlinearity="tanh"):
    """Run the RNN over all steps.

    Args:
        x: (T, B, I). state0: ``(h0,)`` with h0 (B, H).
        w_ih: (H, I), w_hh: (H, H). b_ih, b_hh: (H,) or None.
        lengths: (B,) ints in [1, T], or None when every sequence has T steps.
        nonlinearity: 'tanh' or 'relu'.
    Returns:
        y (T, B, H), the final state ``(h_n,)``, and the cache for ``backward``.
    """
    (h,) = state0
    x = np.ascontiguousarray(x)  # the compiled loop reads x[t] in rows
    steps, batch, _ = x.shape
    masks = step_masks(lengths, steps, x.dtype)
    bias = bias_sum(w_hh.shape[0], x.dtype, b_ih, b_hh)  # (H,): both biases go to a
    fused = _fused.loops(x, w_ih, w_hh, bias)
    if fused:  # the whole loop in one compiled call, input projection and biases step by step
        hs = np.empty((steps, batch, w_hh.shape[0]), np.float32)  # (T, B, H): a[t], then h[t]
        h_n = np.empty(h.shape, hs.dtype)  # C-ordered, whatever h0 is: the products write it
        w_ih_t = fused.pack_transpose(w_ih)  # W_ih.T (I, H), packed
        w_hh_t = fused.pack_transpose(w_hh)  # W_hh.T (H, H), packed
        relu = nonlinearity == "relu"
        loop_arrays = (x, w_ih_t, hs, bias, h, w_hh_t, relu, masks, h_n)
        _fused.by_rows(fused.rnn_sequence, batch, *loop_arrays)
        h = h_n
    else:
        hs = input_projection(x, w_ih)  # (T, B, H): the pre-activations, turned into h[t]
        hs += bias
        w_hh_t = np.ascontiguousarray(w_hh.T)  # (H, H): OpenBLAS is faster with it this way round
        product = np.empty_like(h, shape=hs.shape[1:])  # (B, H), refilled every step
        for t in range(steps):
            hs[t] += np.matmul(h, w_hh_t, out=product)
            h_new = step(hs[t], nonlinearity)
            h = h_new if masks is None else np.where(masks[t] > 0, h_new, h)
    y = hs if masks is None else hs * masks
    cache = (hs, state0[0], w_ih, w_hh, b_hh is not None, masks, nonlinearity)
    return y, (h,), cache


def backward(dy, dstate, cache, dh_record=None):
    """Backpropagate through time.

    Args:
        dy: (T, B, H) gradient of the loss with respect to y.
        dstate: ``(dh_n,)``, the gradient with respect to the final state (B, H).
        dh_record: None, or a (T, B, H) array that receives dL/dh[t] at every step: the
            gradient with respect to the h[t] the cell computes, through y[t] and all later
            steps (zero past a sequence's length, where h[t] is not used).
    Returns:
        dx (T, B, I), dxw (T, B, H) (the gradient of the input projection), ``(dh0,)``,
        dW_hh (H, H), db_ih and db_hh (each (H,), equal: both biases go to a) or None and None.
    """
    hs, h0, w_ih, w_hh, has_bias, masks, nonlinearity = cache
    (dh,) = dstate
    dh = np.array(dh, order="C")  # a copy: the compiled loop updates it in place
    da = np.empty_like(hs)  # (T, B, H)
    same_dtype = dy.dtype == dh.dtype == hs.dtype
    fused = _fused.loops(hs, w_ih, w_hh) if same_dtype else None
    if fused:  # the whole loop, compiled, dx = da @ W_ih made step by step in it
        dy = np.ascontiguousarray(dy)
        d_bias = np.zeros_like(dh)  # (B, H): each row's da summed over time
        dx = np.empty((*hs.shape[:2], w_ih.shape[1]), hs.dtype)  # (T, B, I)
        packed_hh, packed_ih = fused.pack(w_hh), fused.pack(w_ih)  # (H, H) and (H, I), packed
        relu = nonlinearity == "relu"
        loop_arrays = (dy, dh, hs, packed_hh, packed_ih, relu, masks, da, d_bias, dx, dh_record)
        _fused.by_rows(fused.rnn_sequence_backward, dh.shape[0], *loop_arrays)
        bias_rows = d_bias
    else:
        for t in reversed(range(hs.shape[0])):
            if masks is None:
                dh_t = dy[t] + dh  # y[t] = h[t], and h[t] feeds step t+1
                da[t] = step_backward(dh_t, hs[t], nonlinearity)  # h[t] = f(a[t])
                dh = da[t] @ w_hh  # a[t] = ... + h[t-1] @ W_hh.T
            else:
                m = masks[t]
                dh_t = m * (dy[t] + dh)  # y, state = m * h[t]
                da[t] = step_backward(dh_t, hs[t], nonlinearity)  # h[t] = f(a[t])
                dh = da[t] @ w_hh + (1.0 - m) * dh  # state[t] = ... + (1 - m) * state[t-1]
            if dh_record is not None:
                dh_record[t] = dh_t
        dx = input_gradient(da, w_ih)  # a[t] = x[t] @ W_ih.T + ...
        bias_rows = da
    dw_hh = recurrent_weight_gradient(da, h0, hs)  # sum_t da[t].T @ h[t-1]
    return dx, da, (dh,), dw_hh, *bias_gradients(bias_rows, has_bias)
