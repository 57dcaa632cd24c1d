"""Compiled steps for the cells that have no compiled time loop: the LSTM with a projection
(``proj_size`` > 0), the layer-normalised LSTM and GRU, and the GRU with the reset before the
product. The reference loop (``rnnkit.kernels.loop``) runs them: each step makes its products
with NumPy and its elementwise work in compiled kernels (the LSTM's and GRU's gate steps of
``_fused_loops``, layer normalisation and the reset-before gates of ``_step_loops``), one call
where the cell's own step makes about fifteen NumPy passes. The equations, and the step
protocol, are the cells' own (``rnnkit.cells``); float32 only, tanh as ``_fused`` says.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import numpy as np

from rnnkit.backends.compiled import _fused
from rnnkit.backends.compiled._common import bias_sum
from rnnkit.cells import lstm
from rnnkit.cells._cell import present
from rnnkit.kernels import loop


def _gate_loops():
    """The module ``_fused_loops`` (the LSTM's and GRU's gate steps), imported once."""
    return _fused._imported_loops()


@functools.cache
def _step_loops():
    """The module ``_step_loops``, imported once (it imports numba)."""
    from rnnkit.backends.compiled import _step_loops

    return _step_loops


class Biases(NamedTuple):
    """A layer's two biases and their sum, each (G*H,) (zeros for a layer without biases):
    made once per sequence, for the kernels that add them as they read the gates."""

    ih: np.ndarray
    hh: np.ndarray
    total: np.ndarray


def _biases(params) -> Biases:
    rows = params["weight_hh"].shape[0]  # G*H
    total = bias_sum(rows, np.float32, params.get("bias_ih"), params.get("bias_hh"))
    if "bias_ih" in params:
        return Biases(params["bias_ih"], params["bias_hh"], total)
    return Biases(total, total, total)  # all zeros


def _layer_norm(v, params, name: str):
    """``(LN(v), v_hat, inv_std)`` with the gain and shift ``ln_{name}_gain``, ``_shift``."""
    out, v_hat, inv_std = np.empty_like(v), np.empty_like(v), np.empty(v.shape[0], v.dtype)
    _step_loops().layer_norm(
        v, params[f"ln_{name}_gain"], params[f"ln_{name}_shift"], out, v_hat, inv_std
    )
    return out, v_hat, inv_std


def _layer_norm_backward(d_out, v_hat, inv_std, params, name: str, grads: dict):
    """The gradient of LN's input; adds ``ln_{name}_gain`` and ``_shift``'s to ``grads``."""
    dv = np.empty_like(d_out)
    _step_loops().layer_norm_backward(d_out, v_hat, inv_std, params[f"ln_{name}_gain"], dv)
    grads[f"ln_{name}_gain"] = (d_out * v_hat).sum(axis=0)  # out = gain * v_hat + shift
    grads[f"ln_{name}_shift"] = d_out.sum(axis=0)
    return dv


def _lstm_gates(z, biases, c_prev):
    """i, f, g, o in place in z (B, 4H) (the biases added), and the new cell c and o * tanh(c)."""
    batch, hidden = c_prev.shape
    m, c, tanh_c = (np.empty((batch, hidden), np.float32) for _ in range(3))
    _gate_loops().lstm_step(z, biases.total, c_prev, m, c, tanh_c, 0, batch)
    return m, c, tanh_c


def lstm_step(xw, state, params, options, biases):
    """``rnnkit.cells.lstm.step`` with its gates compiled (with a projection: h = m @ W_hr.T)."""
    h_prev, c_prev = state
    z = xw + h_prev @ params["weight_hh"].T  # (B, 4H): i, f, g, o once the kernel has run
    m, c, tanh_c = _lstm_gates(z, biases, c_prev)
    h = m @ params["weight_hr"].T if options["proj_size"] else m
    return (h, c), (h_prev, c_prev, z, tanh_c, m)


def lstm_step_backward(d_state, saved, params, options):
    dh, dc = d_state
    h_prev, c_prev, gates, tanh_c, m = saved
    grads = {}
    if options["proj_size"]:  # h = m @ W_hr.T
        grads["weight_hr"] = dh.T @ m
        dh = dh @ params["weight_hr"]
    batch, hidden = c_prev.shape
    dz, dc_prev = np.empty_like(gates), np.empty_like(c_prev)  # (B, 4H), (B, H)
    scratch = np.empty(4 * hidden, np.float32)
    dh, dc = np.ascontiguousarray(dh), np.ascontiguousarray(dc)
    _gate_loops().lstm_step_backward(dh, dc, gates, c_prev, tanh_c, dz, dc_prev, scratch, 0, batch)
    d_bias = dz.sum(axis=0)  # z = xw + b_ih + ... + b_hh
    grads |= {"weight_hh": dz.T @ h_prev, "bias_ih": d_bias, "bias_hh": d_bias.copy()}
    return dz, (dz @ params["weight_hh"], dc_prev), present(params, grads)


def layer_norm_lstm_step(xw, state, params, options, biases):
    """``rnnkit.cells.layer_norm_lstm.step``: its layer normalisations and gates compiled (the
    gate kernel also writes o * tanh(c), which o * tanh(LN(c)) then replaces)."""
    h_prev, c_prev = state
    z, ih_hat, ih_inv_std = _layer_norm(np.ascontiguousarray(xw), params, "ih")
    z_hh, hh_hat, hh_inv_std = _layer_norm(h_prev @ params["weight_hh"].T, params, "hh")
    z += z_hh  # (B, 4H): i, f, g, o once the kernel has run
    h, c, tanh_c = _lstm_gates(z, biases, c_prev)
    c_ln, c_hat, c_inv_std = _layer_norm(c, params, "cell")
    np.tanh(c_ln, out=tanh_c)
    np.multiply(z[:, 3 * c.shape[1] :], tanh_c, out=h)  # h = o * tanh(c_ln)
    saved = (h_prev, c_prev, z, tanh_c, c_hat, c_inv_std)
    return (h, c), (*saved, ih_hat, ih_inv_std, hh_hat, hh_inv_std)


def layer_norm_lstm_step_backward(d_state, saved, params, options):
    dh, dc = d_state
    h_prev, c_prev, gates, tanh_c, c_hat, c_inv_std = saved[:6]
    ih_hat, ih_inv_std, hh_hat, hh_inv_std = saved[6:]
    i, f, g, o = np.split(gates, 4, axis=1)  # each (B, H)
    grads = {}
    do = dh * tanh_c  # h = o * tanh(c_ln)
    dc_ln = dh * o * (1.0 - tanh_c * tanh_c)
    dc = dc + _layer_norm_backward(dc_ln, c_hat, c_inv_std, params, "cell", grads)
    dz, dc_prev = lstm.gates_backward(do, dc, c_prev, i, f, g, o)
    d_xw = _layer_norm_backward(dz, ih_hat, ih_inv_std, params, "ih", grads)
    d_product = _layer_norm_backward(dz, hh_hat, hh_inv_std, params, "hh", grads)
    d_bias = dz.sum(axis=0)  # z = ... + b_ih + b_hh
    grads |= {"weight_hh": d_product.T @ h_prev, "bias_ih": d_bias, "bias_hh": d_bias.copy()}
    return d_xw, (d_product @ params["weight_hh"], dc_prev), present(params, grads)


def layer_norm_gru_step(xw, state, params, options, biases):
    """``rnnkit.cells.layer_norm_gru.step``: its layer normalisations and gates compiled."""
    (h_prev,) = state
    a, a_hat, a_inv_std = _layer_norm(np.ascontiguousarray(xw), params, "ih")
    hw, hw_hat, hw_inv_std = _layer_norm(h_prev @ params["weight_hh"].T, params, "hh")
    h, hw_n = np.empty_like(h_prev), np.empty_like(h_prev)
    _gate_loops().gru_step(a, biases.ih, hw, biases.hh, h_prev, h, hw_n, 0, h.shape[0])  # r, z, n
    return (h,), (h_prev, a, hw_n, a_hat, a_inv_std, hw_hat, hw_inv_std)


def layer_norm_gru_step_backward(d_state, saved, params, options):
    (dh,) = d_state
    h_prev, gates, hw_n, a_hat, a_inv_std, hw_hat, hw_inv_std = saved
    da, dhw, dh_direct = np.empty_like(gates), np.empty_like(gates), np.empty_like(h_prev)
    dh = np.ascontiguousarray(dh)
    _gate_loops().gru_step_backward(dh, gates, hw_n, h_prev, da, dhw, dh_direct, 0, dh.shape[0])
    grads = {"bias_ih": da.sum(axis=0), "bias_hh": dhw.sum(axis=0)}
    d_xw = _layer_norm_backward(da, a_hat, a_inv_std, params, "ih", grads)
    d_product = _layer_norm_backward(dhw, hw_hat, hw_inv_std, params, "hh", grads)
    grads["weight_hh"] = d_product.T @ h_prev
    return d_xw, (d_product @ params["weight_hh"] + dh_direct,), present(params, grads)


def gru_reset_before_step(xw, state, params, options, biases):
    """``rnnkit.cells.gru_reset_before.step`` with its gates compiled."""
    (h_prev,) = state
    hidden = h_prev.shape[1]
    w_rz, w_n = params["weight_hh"][: 2 * hidden], params["weight_hh"][2 * hidden :]
    a, rh, h = np.array(xw, order="C"), np.empty_like(h_prev), np.empty_like(h_prev)
    kernels = _step_loops()
    kernels.reset_before_gates(a, biases.total, h_prev @ w_rz.T, h_prev, rh)  # a: r, z, xw_n
    kernels.reset_before_output(a, biases.total, rh @ w_n.T, h_prev, h)  # a: r, z, n
    return (h,), (h_prev, a, rh)


def gru_reset_before_step_backward(d_state, saved, params, options):
    (dh,) = d_state
    h_prev, gates, rh = saved
    hidden = h_prev.shape[1]
    w_rz, w_n = params["weight_hh"][: 2 * hidden], params["weight_hh"][2 * hidden :]
    da, dh_direct = np.empty_like(gates), np.empty_like(h_prev)  # (B, 3H), (B, H)
    kernels = _step_loops()
    kernels.reset_before_output_backward(np.ascontiguousarray(dh), gates, h_prev, da, dh_direct)
    da_n = da[:, 2 * hidden :]
    kernels.reset_before_gates_backward(da_n @ w_n, gates, h_prev, da, dh_direct)
    da_rz = da[:, : 2 * hidden]
    d_bias = da.sum(axis=0)  # a = xw + b_ih + b_hh
    d_weight_hh = np.concatenate([da_rz.T @ h_prev, da_n.T @ rh])  # (3H, H)
    grads = {"weight_hh": d_weight_hh, "bias_ih": d_bias, "bias_hh": d_bias.copy()}
    return da, (dh_direct + da_rz @ w_rz,), present(params, grads)


STEPS = {  # cell name -> its compiled (step, step_backward); step takes the layer's Biases too
    "lstm": (lstm_step, lstm_step_backward),
    "layer_norm_lstm": (layer_norm_lstm_step, layer_norm_lstm_step_backward),
    "layer_norm_gru": (layer_norm_gru_step, layer_norm_gru_step_backward),
    "gru_reset_before": (gru_reset_before_step, gru_reset_before_step_backward),
}


def run(cell, options, x, params, state0, lengths, training):
    """As ``rnnkit.kernels.loop.run``: the reference loop over the cell's compiled steps."""
    step, step_backward = STEPS[cell.name]
    step = functools.partial(step, biases=_biases(params))  # summed once, not at every step
    compiled_cell = dataclasses.replace(cell, step=step, step_backward=step_backward)
    state0 = tuple(np.ascontiguousarray(part) for part in state0)  # the kernels read rows
    return loop.run(compiled_cell, options, x, params, state0, lengths, training)
