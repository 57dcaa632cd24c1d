"""The layer-normalised GRU (Ba, Kiros & Hinton 2016, "Layer Normalization", section 3.1): our
GRU (PyTorch's gate order r, z, n, the reset gate applied after the hidden product) with the
input product and the hidden product each layer-normalised, with its own gain and shift, before
its bias is added.

LN(v; gain, shift) is ``layer_norm`` of ``rnnkit.cells._layer_norm`` (row by row, EPSILON =
1e-5 inside the square root; its notation block). As the paper writes the LSTM, each
product is normalised whole (all 3H rows together), not gate by gate.

Notation (B sequences, H hidden units; the loop gives xw = x[t] @ W_ih.T):

    a      = LN(xw; g_ih, s_ih) + b_ih                  (B, 3H)
    hw     = LN(h_prev @ W_hh.T; g_hh, s_hh) + b_hh     (B, 3H)
    r      = sig(a_r + hw_r)                            (B, H)
    z      = sig(a_z + hw_z)                            (B, H)
    n      = tanh(a_n + r * hw_n)                       (B, H)
    h      = (1 - z) * n + z * h_prev                   (B, H)

The reset gate multiplies the normalised, biased hidden product: r * (LN(...)_n + b_hn). LN sits
inside r * (...), so its statistics are those of the whole hidden product, which do not depend
on r. The shifts s_ih, s_hh add to the biases exactly as b_ih, b_hh do (the paper has one of
each); a layer built with bias=False keeps them.
"""

from __future__ import annotations

from rnnkit.cells import gru
from rnnkit.cells._cell import Cell, optional, present
from rnnkit.cells._layer_norm import layer_norm, layer_norm_backward


def step(xw, state, params, options):
    (h_prev,) = state
    a_ln, a_hat, a_inv_std = layer_norm(xw, params["ln_ih_gain"], params["ln_ih_shift"])
    a = a_ln + optional(params, "bias_ih")
    hw_ln, hw_hat, hw_inv_std = layer_norm(
        h_prev @ params["weight_hh"].T, params["ln_hh_gain"], params["ln_hh_shift"]
    )
    hw = hw_ln + optional(params, "bias_hh")
    h, r, z, n, hw_n = gru.gates(a, hw, h_prev)
    return (h,), (h_prev, r, z, n, hw_n, a_hat, a_inv_std, hw_hat, hw_inv_std)


def step_backward(d_state, saved, params, options):
    (dh,) = d_state
    h_prev, r, z, n, hw_n, a_hat, a_inv_std, hw_hat, hw_inv_std = saved
    da, dhw = gru.gates_backward(dh, h_prev, r, z, n, hw_n)  # the gates, as gru's
    # a = LN(xw; g_ih, s_ih) + b_ih
    d_xw, d_ih_gain, d_ih_shift = layer_norm_backward(da, a_hat, a_inv_std, params["ln_ih_gain"])
    # hw = LN(h_prev @ W_hh.T; g_hh, s_hh) + b_hh
    d_product, d_hh_gain, d_hh_shift = layer_norm_backward(
        dhw, hw_hat, hw_inv_std, params["ln_hh_gain"]
    )
    grads = {
        "weight_hh": d_product.T @ h_prev,
        "bias_ih": da.sum(axis=0),
        "bias_hh": dhw.sum(axis=0),
        "ln_ih_gain": d_ih_gain,
        "ln_ih_shift": d_ih_shift,
        "ln_hh_gain": d_hh_gain,
        "ln_hh_shift": d_hh_shift,
    }
    # hw = LN(h_prev @ W_hh.T ...) ...; h = ... + z * h_prev
    dh_prev = d_product @ params["weight_hh"] + dh * z
    return d_xw, (dh_prev,), present(params, grads)


def extra_parameters(input_size, hidden_size, options):
    """The gain and shift of each of the two layer normalisations, 3H wide."""
    rows = 3 * hidden_size
    return {
        "ln_ih_gain": ((rows,), "gain"),
        "ln_ih_shift": ((rows,), "shift"),
        "ln_hh_gain": ((rows,), "gain"),
        "ln_hh_shift": ((rows,), "shift"),
    }


CELL = Cell(
    name="layer_norm_gru",
    summary="GRU with layer-normalised input and hidden products (Ba et al. 2016)",
    gates=3,
    step=step,
    step_backward=step_backward,
    torch_name=None,  # torch.nn has no layer-normalised GRU
    extra_parameters=extra_parameters,
)
