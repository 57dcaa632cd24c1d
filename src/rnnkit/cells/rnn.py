"""The Elman RNN cell, as ``torch.nn.RNN``.

Notation (B sequences, I inputs, H hidden units; the loop gives xw = x[t] @ W_ih.T):

    a    = xw + b_ih + h_prev @ W_hh.T + b_hh        (B, H)
    h    = f(a)                                      (B, H)     f = tanh or relu
"""

from __future__ import annotations

import numpy as np

from rnnkit.cells._cell import Cell, optional, present

NONLINEARITIES = ("tanh", "relu")


def step(xw, state, params, options):
    (h_prev,) = state
    a = xw + optional(params, "bias_ih") + h_prev @ params["weight_hh"].T
    a += optional(params, "bias_hh")
    h = np.tanh(a) if options["nonlinearity"] == "tanh" else np.maximum(a, 0.0)
    return (h,), (h_prev, h)


def step_backward(d_state, saved, params, options):
    (dh,) = d_state
    h_prev, h = saved
    tanh = options["nonlinearity"] == "tanh"
    da = dh * (1.0 - h * h) if tanh else dh * (h > 0.0)  # h = tanh(a) or relu(a)
    d_bias = da.sum(axis=0)  # a = ... + b_ih + ... + b_hh
    grads = {"weight_hh": da.T @ h_prev, "bias_ih": d_bias, "bias_hh": d_bias.copy()}
    return da, (da @ params["weight_hh"],), present(params, grads)  # a = ... + h_prev @ W_hh.T


CELL = Cell(
    name="rnn",
    summary="Elman RNN, h = f(W_ih x + W_hh h + b), f = tanh or relu",
    gates=1,
    step=step,
    step_backward=step_backward,
    torch_name="RNN",
    options={"nonlinearity": "tanh"},
    choices={"nonlinearity": NONLINEARITIES},
)
