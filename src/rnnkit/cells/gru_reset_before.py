"""The GRU of the original paper (Cho et al. 2014), as Keras's ``GRU(reset_after=False)``: the
reset gate applied to h_prev *before* the recurrent product of the candidate. PyTorch's gate
order r, z, n and parameter names (``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``,
``bias_hh``); PyTorch has no such cell (``rnnkit.cells.gru`` is its GRU, reset after).

Notation (B sequences, H hidden units; the loop gives xw = x[t] @ W_ih.T; W_hr, W_hz, W_hn are
weight_hh's three (H, H) blocks, b_hh's blocks likewise):

    a      = xw + b_ih + b_hh                       (B, 3H)    both biases add, gate by gate
    r      = sig(a_r + h_prev @ W_hr.T)             (B, H)
    z      = sig(a_z + h_prev @ W_hz.T)             (B, H)
    rh     = r * h_prev                             (B, H)
    n      = tanh(a_n + rh @ W_hn.T)                (B, H)
    h      = (1 - z) * n + z * h_prev               (B, H)
"""

from __future__ import annotations

import numpy as np

from rnnkit.cells._cell import Cell, optional, present, sigmoid


def step(xw, state, params, options):
    (h_prev,) = state
    hidden = h_prev.shape[1]
    w_rz, w_n = params["weight_hh"][: 2 * hidden], params["weight_hh"][2 * hidden :]
    a = xw + optional(params, "bias_ih") + optional(params, "bias_hh")
    a_r, a_z, a_n = np.split(a, 3, axis=1)  # each (B, H)
    hw_r, hw_z = np.split(h_prev @ w_rz.T, 2, axis=1)
    r, z = sigmoid(a_r + hw_r), sigmoid(a_z + hw_z)
    rh = r * h_prev
    n = np.tanh(a_n + rh @ w_n.T)
    h = (1.0 - z) * n + z * h_prev
    return (h,), (h_prev, r, z, rh, n)


def step_backward(d_state, saved, params, options):
    (dh,) = d_state
    h_prev, r, z, rh, n = saved
    hidden = h_prev.shape[1]
    w_rz, w_n = params["weight_hh"][: 2 * hidden], params["weight_hh"][2 * hidden :]
    dn = dh * (1.0 - z)  # h = (1 - z) * n + z * h_prev
    dz = dh * (h_prev - n)
    da_n = dn * (1.0 - n * n)  # n = tanh(a_n + rh @ W_hn.T)
    d_rh = da_n @ w_n
    dr = d_rh * h_prev  # rh = r * h_prev
    da_rz = np.concatenate([dr * r * (1.0 - r), dz * z * (1.0 - z)], axis=1)  # r, z = sig(...)
    da = np.concatenate([da_rz, da_n], axis=1)  # (B, 3H)
    d_bias = da.sum(axis=0)  # a = xw + b_ih + b_hh
    # r, z = sig(a_. + h_prev @ W_h..T); n = tanh(a_n + rh @ W_hn.T)
    d_weight_hh = np.concatenate([da_rz.T @ h_prev, da_n.T @ rh])  # (3H, H)
    grads = {"weight_hh": d_weight_hh, "bias_ih": d_bias, "bias_hh": d_bias.copy()}
    # h = ... + z * h_prev; rh = r * h_prev; r, z = sig(a_. + h_prev @ W_h..T)
    dh_prev = dh * z + d_rh * r + da_rz @ w_rz
    return da, (dh_prev,), present(params, grads)  # a = xw + ...


CELL = Cell(
    name="gru_reset_before",
    summary="GRU of Cho et al. 2014, reset before the hidden product (Keras reset_after=False)",
    gates=3,
    step=step,
    step_backward=step_backward,
)
