"""The reference time loop: any registered cell over a whole sequence, forward and
backpropagation through time, in NumPy.

This is the algorithm as a textbook writes it, and the numbers every back end is tested against.
For T steps of B sequences with I inputs (time-major), one layer and one direction:

    xw[t]            = x[t] @ W_ih.T                  (T, B, G*H)  one product for all steps
    state[t], saved  = cell.step(xw[t], state[t-1])   the cell's own math (``rnnkit.cells``)
    y[t]             = h[t], the state's first part   (T, B, S)

and backward, from the last step to the first, each step's gradients summed:

    d_xw[t], d_state[t-1], grads[t] = cell.step_backward(d_state[t], saved[t])
    dx    = d_xw @ W_ih                               (T, B, I)    one product for all steps
    dW_ih = sum_t d_xw[t].T @ x[t]                    (G*H, I)     one product for all steps

Ragged batches: m[t] = 1 while t < length, else 0 (shape (B, 1)). A finished sequence keeps its
state and outputs zeros:

    state[t] = m[t] * new[t] + (1 - m[t]) * state[t-1]      y[t] = m[t] * h[t]

so the gradient reaching a step is masked by m[t], and (1 - m[t]) of it passes to the step
before unchanged.
"""

from __future__ import annotations

import numpy as np

from rnnkit.kernels._common import input_gradient, input_projection, step_masks


def run(cell, options, x, params, state0, lengths, training):
    """Run ``cell`` over all steps of one direction of one layer.

    Args:
        cell: a ``rnnkit.cells.Cell``. options: its options (dict).
        x: (T, B, I). params: this layer and direction's arrays by role (``weight_ih`` ...).
        state0: the initial state, a tuple of (B, size) arrays as ``cell.state`` names them.
        lengths: (B,) ints in [1, T], or None when every sequence has T steps.
        training: keep what backward needs (else the backward is None).
    Returns:
        y (T, B, S) (S the state's first part's width, zero past each length), the final state
        tuple (each sequence's state at its last valid step), and ``backward(dy, d_state,
        dh_record=None) -> (dx, d_state0, grads)``, grads holding the gradient of every entry
        of ``params`` under its role. Given a (T, B, S) array ``dh_record``, backward writes
        dL/dh[t] into it: the gradient reaching the h[t] step t computes, through y[t] and
        all later steps (zero past a sequence's length, where h[t] is not used).
    """
    steps, batch, inputs = x.shape
    masks = step_masks(lengths, steps, x.dtype)  # (T, B, 1) or None
    xw = input_projection(x, params["weight_ih"])  # (T, B, G*H)
    state = state0
    ys, saved = [], []
    for t in range(steps):
        new, saved_t = cell.step(xw[t], state, params, options)
        if masks is not None:  # a finished sequence keeps its state
            new = tuple(
                np.where(masks[t] > 0, part, old) for part, old in zip(new, state, strict=True)
            )
        state = new
        ys.append(new[0])
        if training:
            saved.append(saved_t)
    y = np.stack(ys)  # (T, B, S)
    if masks is not None:
        y *= masks
    if not training:
        return y, state, None

    def backward(dy, d_state, dh_record=None):
        grads = {role: np.zeros_like(value) for role, value in params.items()}
        d_xw = np.empty_like(xw)  # (T, B, G*H)
        for t in reversed(range(steps)):
            m = 1.0 if masks is None else masks[t]
            d_new = (m * (dy[t] + d_state[0]), *(m * part for part in d_state[1:]))  # y = h[t]
            d_xw[t], d_previous, step_grads = cell.step_backward(d_new, saved[t], params, options)
            for role, grad in step_grads.items():
                grads[role] += grad
            # state[t] = m * new[t] + (1 - m) * state[t-1]
            d_state = tuple(
                d + (1.0 - m) * carried for d, carried in zip(d_previous, d_state, strict=True)
            )
            if dh_record is not None:
                dh_record[t] = d_new[0]
        rows = d_xw.reshape(steps * batch, -1)  # (T*B, G*H)
        grads["weight_ih"] = rows.T @ x.reshape(steps * batch, inputs)  # xw = x @ W_ih.T
        return input_gradient(d_xw, params["weight_ih"]), d_state, grads

    return y, state, backward
