"""The LSTM cell, as ``torch.nn.LSTM``: gates in PyTorch's order i, f, g, o.

Notation (B sequences, H hidden units; the loop gives xw = x[t] @ W_ih.T):

    z           = xw + b_ih + h_prev @ W_hh.T + b_hh     (B, 4H)
    i, f, g, o  = sig(z_i), sig(z_f), tanh(z_g), sig(z_o)  each (B, H)
    c           = f * c_prev + i * g                     (B, H)
    h           = o * tanh(c)                            (B, H)

The state is ``(h, c)``.
"""

from __future__ import annotations

import numpy as np

from rnnkit.cells._cell import Cell, optional, present, sigmoid


def step(xw, state, params, options):
    h_prev, c_prev = state
    z = xw + optional(params, "bias_ih") + h_prev @ params["weight_hh"].T
    z += optional(params, "bias_hh")
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=1)  # each (B, H)
    i, f, g, o = sigmoid(z_i), sigmoid(z_f), np.tanh(z_g), sigmoid(z_o)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return (h, c), (h_prev, c_prev, i, f, g, o, tanh_c)


def step_backward(d_state, saved, params, options):
    dh, dc = d_state
    h_prev, c_prev, i, f, g, o, tanh_c = saved
    do = dh * tanh_c  # h = o * tanh(c)
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
    di, df, dg = dc * g, dc * c_prev, dc * i  # c = f * c_prev + i * g
    dz = np.concatenate(  # i, f, o = sig(z_.), g = tanh(z_g)
        [di * i * (1.0 - i), df * f * (1.0 - f), dg * (1.0 - g * g), do * o * (1.0 - o)], axis=1
    )  # (B, 4H)
    d_bias = dz.sum(axis=0)  # z = xw + b_ih + ... + b_hh
    grads = {"weight_hh": dz.T @ h_prev, "bias_ih": d_bias, "bias_hh": d_bias.copy()}
    d_state_prev = (dz @ params["weight_hh"], dc * f)  # z = ... + h_prev @ W_hh.T; c = f * c_prev
    return dz, d_state_prev, present(params, grads)


CELL = Cell(
    name="lstm",
    summary="LSTM, input/forget/output gates and a cell state (Hochreiter & Schmidhuber 1997)",
    gates=4,
    step=step,
    step_backward=step_backward,
    state=("h", "c"),
    torch_name="LSTM",
    forget_gate=1,
)
