"""The layer-normalised GRU (Ba, Kiros & Hinton 2016, "Layer Normalization", section 3.1): our
GRU (PyTorch's gate order r, z, n, the reset gate applied after the hidden product) with the
input product and the hidden product each layer-normalised, with its own gain and shift, before
its bias is added.

Layer normalisation of a (B, N) array v, row by row (each sequence normalised over all N of its
summed inputs, at each step on its own; mean and variance over the row, the variance biased):

    v_hat = (v - mean(v)) / sqrt(var(v) + EPSILON)      (B, N)     EPSILON = 1e-5
    LN(v; gain, shift) = gain * v_hat + shift           (B, N)     gain, shift (N,)

as ``torch.nn.functional.layer_norm`` with its default eps. As the paper writes the LSTM, each
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

import numpy as np

from rnnkit.cells._cell import Cell, optional, present, sigmoid

EPSILON = 1e-5  # inside the square root of layer normalisation's variance


def layer_norm(v, gain, shift):
    """LN(v; gain, shift) over the last axis of (B, N) ``v`` (see the notation above); returns
    it with what ``layer_norm_backward`` needs: v_hat (B, N) and 1 / sqrt(var + EPSILON) (B, 1).
    """
    centred = v - v.mean(axis=1, keepdims=True)
    inv_std = 1.0 / np.sqrt((centred * centred).mean(axis=1, keepdims=True) + EPSILON)
    v_hat = centred * inv_std
    return gain * v_hat + shift, v_hat, inv_std


def layer_norm_backward(d_out, v_hat, inv_std, gain):
    """The gradients (dv, dgain, dshift) of out = LN(v; gain, shift), given d_out (B, N)."""
    dv_hat = d_out * gain  # out = gain * v_hat + shift
    mean_dv_hat = dv_hat.mean(axis=1, keepdims=True)
    mean_dv_hat_v_hat = (dv_hat * v_hat).mean(axis=1, keepdims=True)
    dv = inv_std * (dv_hat - mean_dv_hat - v_hat * mean_dv_hat_v_hat)  # v_hat = (v - mean) / std
    return dv, (d_out * v_hat).sum(axis=0), d_out.sum(axis=0)  # out = gain * v_hat + shift


def step(xw, state, params, options):
    (h_prev,) = state
    a_ln, a_hat, a_inv_std = layer_norm(xw, params["ln_ih_gain"], params["ln_ih_shift"])
    a = a_ln + optional(params, "bias_ih")
    hw_ln, hw_hat, hw_inv_std = layer_norm(
        h_prev @ params["weight_hh"].T, params["ln_hh_gain"], params["ln_hh_shift"]
    )
    hw = hw_ln + optional(params, "bias_hh")
    a_r, a_z, a_n = np.split(a, 3, axis=1)  # each (B, H)
    hw_r, hw_z, hw_n = np.split(hw, 3, axis=1)
    r, z = sigmoid(a_r + hw_r), sigmoid(a_z + hw_z)
    n = np.tanh(a_n + r * hw_n)
    h = (1.0 - z) * n + z * h_prev
    return (h,), (h_prev, r, z, n, hw_n, a_hat, a_inv_std, hw_hat, hw_inv_std)


def step_backward(d_state, saved, params, options):
    (dh,) = d_state
    h_prev, r, z, n, hw_n, a_hat, a_inv_std, hw_hat, hw_inv_std = saved
    dn = dh * (1.0 - z)  # h = (1 - z) * n + z * h_prev
    dz = dh * (h_prev - n)
    da_n = dn * (1.0 - n * n)  # n = tanh(a_n + r * hw_n)
    dr = da_n * hw_n
    da_r, da_z = dr * r * (1.0 - r), dz * z * (1.0 - z)  # r, z = sig(a_. + hw_.)
    da = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
    dhw = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H)
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
