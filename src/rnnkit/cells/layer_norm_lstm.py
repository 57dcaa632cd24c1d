"""The layer-normalised LSTM of Ba, Kiros & Hinton 2016 ("Layer Normalization", section 3.1
and the LSTM equations of its supplementary material), in PyTorch's gate order i, f, g, o.

Layer normalisation LN(v; gain, shift) of a (B, N) array, row by row, with EPSILON = 1e-5
inside the square root, is ``layer_norm`` of ``rnnkit.cells._layer_norm`` (its notation
block). As in the paper's equations, each product is normalised whole (all 4H rows together,
not gate by gate), and so is the cell state (its H units) before the output tanh.

Notation (B sequences, H hidden units; the loop gives xw = x[t] @ W_ih.T):

    z           = LN(xw; g_ih, s_ih) + LN(h_prev @ W_hh.T; g_hh, s_hh) + b_ih + b_hh   (B, 4H)
    i, f, g, o  = sig(z_i), sig(z_f), tanh(z_g), sig(z_o)                each (B, H)
    c           = f * c_prev + i * g                                     (B, H)
    c_ln        = LN(c; g_c, s_c)                                        (B, H)
    h           = o * tanh(c_ln)                                         (B, H)

The state is ``(h, c)``: c is carried unnormalised, as in the paper. The shifts s_ih, s_hh add
to z exactly as the biases do (the paper has one bias); a layer built with bias=False keeps
them.
"""

from __future__ import annotations

import numpy as np

from rnnkit.cells import lstm
from rnnkit.cells._cell import Cell, optional, present
from rnnkit.cells._layer_norm import layer_norm, layer_norm_backward


def step(xw, state, params, options):
    h_prev, c_prev = state
    z_ih, ih_hat, ih_inv_std = layer_norm(xw, params["ln_ih_gain"], params["ln_ih_shift"])
    z_hh, hh_hat, hh_inv_std = layer_norm(
        h_prev @ params["weight_hh"].T, params["ln_hh_gain"], params["ln_hh_shift"]
    )
    z = z_ih + z_hh + optional(params, "bias_ih") + optional(params, "bias_hh")
    i, f, g, o, c = lstm.gates(z, c_prev)
    c_ln, c_hat, c_inv_std = layer_norm(c, params["ln_cell_gain"], params["ln_cell_shift"])
    tanh_c = np.tanh(c_ln)
    h = o * tanh_c
    saved = (h_prev, c_prev, i, f, g, o, tanh_c, c_hat, c_inv_std)
    return (h, c), (*saved, ih_hat, ih_inv_std, hh_hat, hh_inv_std)


def step_backward(d_state, saved, params, options):
    dh, dc = d_state
    h_prev, c_prev, i, f, g, o, tanh_c, c_hat, c_inv_std = saved[:9]
    ih_hat, ih_inv_std, hh_hat, hh_inv_std = saved[9:]
    do = dh * tanh_c  # h = o * tanh(c_ln)
    dc_ln = dh * o * (1.0 - tanh_c * tanh_c)
    # c_ln = LN(c; g_c, s_c)
    dc_through_ln, d_cell_gain, d_cell_shift = layer_norm_backward(
        dc_ln, c_hat, c_inv_std, params["ln_cell_gain"]
    )
    dz, dc_prev = lstm.gates_backward(do, dc + dc_through_ln, c_prev, i, f, g, o)
    # z = LN(xw; g_ih, s_ih) + ...
    d_xw, d_ih_gain, d_ih_shift = layer_norm_backward(dz, ih_hat, ih_inv_std, params["ln_ih_gain"])
    # z = ... + LN(h_prev @ W_hh.T; g_hh, s_hh) + ...
    d_product, d_hh_gain, d_hh_shift = layer_norm_backward(
        dz, hh_hat, hh_inv_std, params["ln_hh_gain"]
    )
    d_bias = dz.sum(axis=0)  # z = ... + b_ih + b_hh
    grads = {
        "weight_hh": d_product.T @ h_prev,
        "bias_ih": d_bias,
        "bias_hh": d_bias.copy(),
        "ln_ih_gain": d_ih_gain,
        "ln_ih_shift": d_ih_shift,
        "ln_hh_gain": d_hh_gain,
        "ln_hh_shift": d_hh_shift,
        "ln_cell_gain": d_cell_gain,
        "ln_cell_shift": d_cell_shift,
    }
    # z = ... + LN(h_prev @ W_hh.T ...)
    return d_xw, (d_product @ params["weight_hh"], dc_prev), present(params, grads)


def extra_parameters(input_size, hidden_size, options):
    """The gain and shift of each of the three layer normalisations: the two products' (4H
    wide) and the cell state's (H wide)."""
    rows = 4 * hidden_size
    return {
        "ln_ih_gain": ((rows,), "gain"),
        "ln_ih_shift": ((rows,), "shift"),
        "ln_hh_gain": ((rows,), "gain"),
        "ln_hh_shift": ((rows,), "shift"),
        "ln_cell_gain": ((hidden_size,), "gain"),
        "ln_cell_shift": ((hidden_size,), "shift"),
    }


CELL = Cell(
    name="layer_norm_lstm",
    summary="LSTM with layer-normalised products and cell state (Ba et al. 2016)",
    gates=4,
    step=step,
    step_backward=step_backward,
    state=("h", "c"),
    torch_name=None,  # torch.nn has no layer-normalised LSTM
    forget_gate=1,
    extra_parameters=extra_parameters,
)
