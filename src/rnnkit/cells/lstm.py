"""The LSTM cell, as ``torch.nn.LSTM``: gates in PyTorch's order i, f, g, o, and PyTorch's
optional projection of the hidden state (``proj_size`` P > 0; Sak et al. 2014).

Notation (B sequences, H hidden units, S = P with a projection, else H; the loop gives
xw = x[t] @ W_ih.T):

    z           = xw + b_ih + h_prev @ W_hh.T + b_hh     (B, 4H)    W_hh (4H, S)
    i, f, g, o  = sig(z_i), sig(z_f), tanh(z_g), sig(z_o)  each (B, H)
    c           = f * c_prev + i * g                     (B, H)
    m           = o * tanh(c)                            (B, H)
    h           = m @ W_hr.T  (P > 0), else m            (B, S)     W_hr (P, H)

The state is ``(h, c)``: h is S wide, c is H wide.
"""

from __future__ import annotations

import numpy as np

from rnnkit.cells._cell import Cell, optional, present, sigmoid
from rnnkit.errors import UserError, UserTypeError
from rnnkit.io._schema import _shown


def gates(z, c_prev):
    """The gates and the new cell from the pre-activations z (B, 4H) and c_prev (B, H):
    ``(i, f, g, o, c)``, each (B, H). Shared with the layer-normalised LSTM."""
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=1)  # each (B, H)
    i, f, g, o = sigmoid(z_i), sigmoid(z_f), np.tanh(z_g), sigmoid(z_o)
    return i, f, g, o, f * c_prev + i * g


def gates_backward(do, dc, c_prev, i, f, g, o):
    """``(dz, dc_prev)`` from do and dc, the gradients of the output gate and of the new cell
    (all its paths): the inverse of ``gates``."""
    di, df, dg = dc * g, dc * c_prev, dc * i  # c = f * c_prev + i * g
    dz = np.concatenate(  # i, f, o = sig(z_.), g = tanh(z_g)
        [di * i * (1.0 - i), df * f * (1.0 - f), dg * (1.0 - g * g), do * o * (1.0 - o)], axis=1
    )  # (B, 4H)
    return dz, dc * f  # c = f * c_prev + ...


def step(xw, state, params, options):
    h_prev, c_prev = state
    z = xw + optional(params, "bias_ih") + h_prev @ params["weight_hh"].T
    z += optional(params, "bias_hh")
    i, f, g, o, c = gates(z, c_prev)
    tanh_c = np.tanh(c)
    m = o * tanh_c
    h = m @ params["weight_hr"].T if options["proj_size"] else m
    return (h, c), (h_prev, c_prev, i, f, g, o, tanh_c)


def step_backward(d_state, saved, params, options):
    dh, dc = d_state
    h_prev, c_prev, i, f, g, o, tanh_c = saved
    grads = {}
    if options["proj_size"]:  # h = m @ W_hr.T
        grads["weight_hr"] = dh.T @ (o * tanh_c)
        dm = dh @ params["weight_hr"]
    else:  # h = m
        dm = dh
    do = dm * tanh_c  # m = o * tanh(c)
    dz, dc_prev = gates_backward(do, dc + dm * o * (1.0 - tanh_c * tanh_c), c_prev, i, f, g, o)
    d_bias = dz.sum(axis=0)  # z = xw + b_ih + ... + b_hh
    grads |= {"weight_hh": dz.T @ h_prev, "bias_ih": d_bias, "bias_hh": d_bias.copy()}
    d_state_prev = (dz @ params["weight_hh"], dc_prev)  # z = ... + h_prev @ W_hh.T
    return dz, d_state_prev, present(params, grads)


def check_options(owner, options, hidden_size):
    """A one-line UserError unless proj_size is an int in [0, hidden_size), as PyTorch's."""
    proj_size = options["proj_size"]
    if isinstance(proj_size, bool) or not isinstance(proj_size, int):
        raise UserTypeError(f"{owner}: proj_size must be an int, got {_shown(proj_size)}")
    if not 0 <= proj_size < hidden_size:
        raise UserError(
            f"{owner}: proj_size must be in [0, hidden_size={hidden_size}) (0: no projection), "
            f"got {proj_size}; pick one in that range"
        )


def state_sizes(hidden_size, options):
    """h is proj_size wide with a projection, c is always hidden_size wide."""
    return (options["proj_size"] or hidden_size, hidden_size)


def extra_parameters(input_size, hidden_size, options):
    """The projection W_hr (P, H), PyTorch's ``weight_hr``, when proj_size P > 0."""
    if not options["proj_size"]:
        return {}
    return {"weight_hr": ((options["proj_size"], hidden_size), "projection")}


CELL = Cell(
    name="lstm",
    summary="LSTM, input/forget/output gates and a cell state (Hochreiter & Schmidhuber 1997)",
    gates=4,
    step=step,
    step_backward=step_backward,
    state=("h", "c"),
    torch_name="LSTM",
    forget_gate=1,
    options={"proj_size": 0},
    check_options=check_options,
    state_sizes=state_sizes,
    extra_parameters=extra_parameters,
    optional_in_config=("proj_size",),
)
