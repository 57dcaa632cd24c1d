"""The GRU cell, as ``torch.nn.GRU``: gates in PyTorch's order r, z, n, the reset gate applied
to the hidden product *with its bias* (after the product, as PyTorch and cuDNN do).

Notation (B sequences, H hidden units; the loop gives xw = x[t] @ W_ih.T):

    a      = xw + b_ih                              (B, 3H)
    hw     = h_prev @ W_hh.T + b_hh                 (B, 3H)
    r      = sig(a_r + hw_r)                        (B, H)
    z      = sig(a_z + hw_z)                        (B, H)
    n      = tanh(a_n + r * hw_n)                   (B, H)
    h      = (1 - z) * n + z * h_prev               (B, H)
"""

from __future__ import annotations

import numpy as np

from rnnkit.cells._cell import Cell, optional, present, sigmoid


def step(xw, state, params, options):
    (h_prev,) = state
    a = xw + optional(params, "bias_ih")
    hw = h_prev @ params["weight_hh"].T + optional(params, "bias_hh")
    h, r, z, n, hw_n = gates(a, hw, h_prev)
    return (h,), (h_prev, r, z, n, hw_n)


def gates(a, hw, h_prev):
    """``(h, r, z, n, hw_n)`` from the input side a (B, 3H), the hidden side hw (B, 3H) and
    h_prev (B, H), as the notation block says. Shared with the layer-normalised GRU."""
    a_r, a_z, a_n = np.split(a, 3, axis=1)  # each (B, H)
    hw_r, hw_z, hw_n = np.split(hw, 3, axis=1)
    r, z = sigmoid(a_r + hw_r), sigmoid(a_z + hw_z)
    n = np.tanh(a_n + r * hw_n)
    return (1.0 - z) * n + z * h_prev, r, z, n, hw_n


def gates_backward(dh, h_prev, r, z, n, hw_n):
    """``(da, dhw)``, each (B, 3H): the gradients of ``gates``' a and hw from dh at its h."""
    dn = dh * (1.0 - z)  # h = (1 - z) * n + z * h_prev
    dz = dh * (h_prev - n)
    da_n = dn * (1.0 - n * n)  # n = tanh(a_n + r * hw_n)
    dr = da_n * hw_n
    da_r, da_z = dr * r * (1.0 - r), dz * z * (1.0 - z)  # r, z = sig(a_. + hw_.)
    da = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
    return da, np.concatenate([da_r, da_z, da_n * r], axis=1)  # hw_n enters as r * hw_n


def step_backward(d_state, saved, params, options):
    (dh,) = d_state
    h_prev, r, z, n, hw_n = saved
    da, dhw = gates_backward(dh, h_prev, r, z, n, hw_n)
    grads = {"weight_hh": dhw.T @ h_prev, "bias_ih": da.sum(axis=0), "bias_hh": dhw.sum(axis=0)}
    dh_prev = dhw @ params["weight_hh"] + dh * z  # hw = h_prev @ W_hh.T + ...; h = ... z * h_prev
    return da, (dh_prev,), present(params, grads)  # a = xw + b_ih


CELL = Cell(
    name="gru",
    summary="GRU, update and reset gates, reset after the hidden product (Cho et al. 2014)",
    gates=3,
    step=step,
    step_backward=step_backward,
    torch_name="GRU",
)
