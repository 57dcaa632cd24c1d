"""The numba loops behind ``_fused`` (imported only when a fused step first runs: importing
numba takes a few tenths of a second). Each inner loop runs over a contiguous row, so it vectorizes;
``error_model="numpy"`` drops the division-by-zero checks that would stop that."""

import functools
import math

import llvmlite.ir
import numba
import numba.extending
import numpy as np
from numba import types

from rnnkit.backends.compiled._fused import COMPILE_OPTIONS, EXP, TANH_SMALL, P, Q
from rnnkit.backends.compiled._packed import NO_TRANS, ROW_MAJOR, TRANS, packed_product, sgemm
from rnnkit.backends.compiled._packed import pack as pack  # the kernels pack the weights they pass
from rnnkit.backends.compiled._packed import pack_transpose as pack_transpose

jit = numba.njit(**COMPILE_OPTIONS)
inline = numba.njit(fastmath=True, error_model="numpy", inline="always")
_F = np.float32
_P0, _P1, _P2, _P3, _P4 = (_F(value) for value in P)
_Q1, _Q2, _Q3, _Q4 = (_F(value) for value in Q[1:])
_LIMIT, _HALF, _ONE, _ZERO = _F(9.0), _F(0.5), _F(1.0), _F(0.0)


@inline
def _tanh(x):
    x = min(max(x, -_LIMIT), _LIMIT)
    s = x * x
    p = _P0 + s * (_P1 + s * (_P2 + s * (_P3 + s * _P4)))
    q = _ONE + s * (_Q1 + s * (_Q2 + s * (_Q3 + s * _Q4)))
    return x * p / q


_T0, _T1, _T2, _T3, _T4 = (_F(value) for value in TANH_SMALL)
_E0, _E1, _E2, _E3, _E4, _E5, _E6 = (_F(value) for value in EXP)
_SMALL, _TWO, _LOG2E = _F(0.625), _F(2.0), _F(1.0 / math.log(2.0))
_TANH_LIMIT = _F(10.0)  # tanh(10) rounds to 1 (tanh(9) to the float below 1)
_LN2_HIGH = _F(0.693359375)  # ln 2 in two parts; the first has 9 significant bits, so
_LN2_LOW = _F(math.log(2.0) - 0.693359375)  # n * _LN2_HIGH is exact for the n <= 29 here


@numba.extending.intrinsic
def _float_from_bits(typing_context, bits):
    """The float32 whose bit pattern is the int32 ``bits``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvmlite.ir.FloatType())

    return types.float32(types.int32), codegen


@inline
def _tanh_precise(x):
    """tanh(x) in float32 arithmetic, within 1.3 float32 units in the last place (measured on
    2.2 million points over [-12, 12] and 1e-12 .. 12.6; NumPy's float32 tanh: 1.4), for the
    RNN, whose gradients amplify an approximation's error through time. With a = |x| <= 10
    (tanh(10) rounds to 1): a + a s T(s), s = a^2, below a = 0.625; above, 1 - 2 / (e^(2a) + 1)
    with e^y = 2^n e^r, n = round(y / ln 2) <= 29, r = y - n ln 2 (|r| <= ln(2) / 2), e^r from
    the polynomial E and 2^n made from its bits. Both branches are computed and one is kept, so
    a loop of it vectorizes."""
    a = min(abs(x), _TANH_LIMIT)
    s = a * a
    small = a + a * s * (_T0 + s * (_T1 + s * (_T2 + s * (_T3 + s * _T4))))
    y = a + a
    n = np.int32(y * _LOG2E + _HALF)  # y >= 0: truncation rounds
    whole = _F(n)
    r = (y - whole * _LN2_HIGH) - whole * _LN2_LOW
    e_r = _E0 + r * (_E1 + r * (_E2 + r * (_E3 + r * (_E4 + r * (_E5 + r * _E6)))))
    e_y = e_r * _float_from_bits((n + np.int32(127)) << np.int32(23))  # 2^n: exponent bits
    large = _ONE - _TWO / (e_y + _ONE)
    return math.copysign(small if a < _SMALL else large, x)


@inline
def _sigmoid(x):
    return _HALF + _HALF * _tanh(_HALF * x)


@jit
def lstm_step(gates, bias, c_prev, h, c, tanh_c, first, last):
    """In place, rows first .. last - 1: ``gates`` (B, 4H) from pre-activations less the bias
    (4H,), which is added here (no pass of its own), to i, f, g, o; writes h, c, tanh(c) (each
    (B, H)). One inner loop per quantity, over contiguous rows, so each vectorizes."""
    hidden = c_prev.shape[1]
    b_i, b_f = bias[:hidden], bias[hidden : 2 * hidden]
    b_g, b_o = bias[2 * hidden : 3 * hidden], bias[3 * hidden :]
    for b in range(first, last):
        i = gates[b, :hidden]
        f = gates[b, hidden : 2 * hidden]
        g = gates[b, 2 * hidden : 3 * hidden]
        o = gates[b, 3 * hidden :]
        for j in range(hidden):
            i[j] = _sigmoid(i[j] + b_i[j])
        for j in range(hidden):
            f[j] = _sigmoid(f[j] + b_f[j])
        for j in range(hidden):
            g[j] = _tanh(g[j] + b_g[j])
        for j in range(hidden):
            o[j] = _sigmoid(o[j] + b_o[j])
        for j in range(hidden):
            c[b, j] = f[j] * c_prev[b, j] + i[j] * g[j]
        for j in range(hidden):
            tanh_c[b, j] = _tanh(c[b, j])
        for j in range(hidden):
            h[b, j] = o[j] * tanh_c[b, j]


@jit
def lstm_step_backward(dh, dc, gates, c_prev, tanh_c, dz, dc_prev, scratch, first, last):
    """Writes rows first .. last - 1 of dz (B, 4H) and dc_prev (B, H) from dh, dc at h[t], c[t]
    (see ``rnnkit.cells.lstm``); dz may be
    ``gates`` itself; scratch (4H,) is working room. Each inner loop writes one array, over
    one-dimensional row views, and dz's row is written last, copied from the scratch row: so
    every loop vectorizes (with dz written in place as it is read, LLVM's overlap checks failed
    and the loops ran one value at a time)."""
    hidden = c_prev.shape[1]
    s_i, s_f = scratch[:hidden], scratch[hidden : 2 * hidden]
    s_g, s_o = scratch[2 * hidden : 3 * hidden], scratch[3 * hidden :]
    for b in range(first, last):
        i, f = gates[b, :hidden], gates[b, hidden : 2 * hidden]
        g, o = gates[b, 2 * hidden : 3 * hidden], gates[b, 3 * hidden :]
        dh_b, dc_b, c_prev_b, t, d_c = dh[b], dc[b], c_prev[b], tanh_c[b], dc_prev[b]
        for j in range(hidden):  # dc_prev[b] holds dL/dc[t] until the last loop
            d_c[j] = dc_b[j] + dh_b[j] * o[j] * (_ONE - t[j] * t[j])  # h = o * tanh(c)
        for j in range(hidden):
            s_o[j] = dh_b[j] * t[j] * o[j] * (_ONE - o[j])  # o = sig(z_o)
        for j in range(hidden):
            s_i[j] = d_c[j] * g[j] * i[j] * (_ONE - i[j])  # c = f * c_prev + i * g
        for j in range(hidden):
            s_f[j] = d_c[j] * c_prev_b[j] * f[j] * (_ONE - f[j])
        for j in range(hidden):
            s_g[j] = d_c[j] * i[j] * (_ONE - g[j] * g[j])  # g = tanh(z_g)
        for j in range(hidden):
            d_c[j] *= f[j]
        dz[b] = scratch


@jit
def gru_step(gates, bias_ih, hw, bias_hh, h_prev, h, hw_n, first, last):
    """In place, rows first .. last - 1: ``gates`` (B, 3H) from x @ W_ih.T to r, z, n; writes
    h (B, H), as
    ``gru.step``, and hw_n (B, H), the hidden product's n block with its bias (the backward
    reads it). hw (B, 3H) is h_prev @ W_hh.T; the biases (3H,) are added here, as they are read."""
    hidden = h_prev.shape[1]
    b_ir, b_iz, b_in = bias_ih[:hidden], bias_ih[hidden : 2 * hidden], bias_ih[2 * hidden :]
    b_hr, b_hz, b_hn = bias_hh[:hidden], bias_hh[hidden : 2 * hidden], bias_hh[2 * hidden :]
    for b in range(first, last):
        r = gates[b, :hidden]
        z = gates[b, hidden : 2 * hidden]
        n = gates[b, 2 * hidden :]
        hw_r = hw[b, :hidden]
        hw_z = hw[b, hidden : 2 * hidden]
        hw_n_b, n_hidden = hw[b, 2 * hidden :], hw_n[b]
        for j in range(hidden):
            r[j] = _sigmoid(r[j] + b_ir[j] + hw_r[j] + b_hr[j])
        for j in range(hidden):
            z[j] = _sigmoid(z[j] + b_iz[j] + hw_z[j] + b_hz[j])
        for j in range(hidden):
            n_hidden[j] = hw_n_b[j] + b_hn[j]
        for j in range(hidden):
            n[j] = _tanh(n[j] + b_in[j] + r[j] * n_hidden[j])
        for j in range(hidden):
            h[b, j] = n[j] + z[j] * (h_prev[b, j] - n[j])


@jit
def gru_step_backward(dh, gates, hw_n, h_prev, dxw, dhw, dh_direct, first, last):
    """Writes rows first .. last - 1 of dxw, dhw (B, 3H) and dh_direct (B, H) from dh at h[t],
    as ``gru.step_backward``
    (dxw may be ``gates``). As ``lstm_step_backward``: one written array per inner loop, the
    gradients made in dhw's row and copied to dxw's once r, z, n have been read, so that
    every loop vectorizes."""
    hidden = h_prev.shape[1]
    for b in range(first, last):
        r, z, n = gates[b, :hidden], gates[b, hidden : 2 * hidden], gates[b, 2 * hidden :]
        dx_r, dx_z, dx_n = dxw[b, :hidden], dxw[b, hidden : 2 * hidden], dxw[b, 2 * hidden :]
        dh_r, dh_z, dh_n = dhw[b, :hidden], dhw[b, hidden : 2 * hidden], dhw[b, 2 * hidden :]
        dh_b, hw_n_b, h_prev_b, direct_b = dh[b], hw_n[b], h_prev[b], dh_direct[b]
        for j in range(hidden):
            direct_b[j] = dh_b[j] * z[j]  # h = (1 - z) n + z h_prev
        for j in range(hidden):  # dL/da_n, a_n = xw_n + r hw_n
            dh_n[j] = dh_b[j] * (_ONE - z[j]) * (_ONE - n[j] * n[j])
        for j in range(hidden):  # z = sig(a_z)
            dh_z[j] = dh_b[j] * (h_prev_b[j] - n[j]) * z[j] * (_ONE - z[j])
        for j in range(hidden):  # r = sig(a_r)
            dh_r[j] = dh_n[j] * hw_n_b[j] * r[j] * (_ONE - r[j])
        for j in range(hidden):
            dx_n[j] = dh_n[j]
        for j in range(hidden):
            dh_n[j] *= r[j]  # hw_n enters as r * hw_n
        for j in range(hidden):
            dx_r[j] = dh_r[j]  # hw_r, hw_z enter as xw_r, xw_z do
        for j in range(hidden):
            dx_z[j] = dh_z[j]


@jit
def _product(rows, weight, out, beta):
    """out (B, G) = beta * out + rows (B, K) @ weight.T for weight (G, K); all C-ordered; beta 0
    or 1. For the cell steps: for one step, packing the weight (``_packed``) would cost more
    than the product. One cblas_sgemm call per row: for a few rows OpenBLAS wakes a second
    thread, which costs more than the product (measured: docs/performance.md)."""
    inner = rows.shape[1]
    width = out.shape[1]
    for b in range(rows.shape[0]):
        sgemm(ROW_MAJOR, NO_TRANS, TRANS, 1, width, inner, _ONE, rows[b].ctypes.data, inner,
              weight.ctypes.data, inner, beta, out[b].ctypes.data, width)  # fmt: skip


_EXPONENT = np.uint32(0x7F800000)  # float32 bits of the exponent: all set for NaN and inf


@jit
def _all_finite(values):
    """Whether no value of the float32 array is NaN or inf, read from the bits (floating-point
    tests would be folded away under fastmath, which assumes finite values)."""
    for bits in values.ravel().view(np.uint32):  # noqa: SIM110 (numba: a loop, not all())
        if bits & _EXPONENT == _EXPONENT:
            return False
    return True


_ROWS, _VECTOR = types.float32[:, ::1], types.float32[::1]  # float32, C-ordered


@jit
def _fits(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """Whether the shapes agree: x (B, I), h_prev (B, H), weights (G*H, I) and (G*H, H),
    biases (G*H,)."""
    gates, hidden = weight_hh.shape
    return (
        weight_ih.shape == (gates, x.shape[1])
        and h_prev.shape == (x.shape[0], hidden)
        and bias_ih.shape[0] == gates
        and bias_hh.shape[0] == gates
    )


def _lstm_cell(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh, h, c):
    """``cell_step('lstm_cell')``: one LSTM step without a cache (``LSTMCell`` inference):
    x (B, I), h_prev, c_prev (B, H), weights (4H, I) and (4H, H), biases (4H,); writes the new
    state h, c (B, H) (made by the caller: an array made here costs more, returned to Python).
    Returns whether it did: False, and h and c not written, when the shapes do not agree or an
    input holds NaN or inf."""
    if not (
        _fits(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
        and c_prev.shape == h_prev.shape == h.shape == c.shape
        and _all_finite(x)
        and _all_finite(h_prev)
        and _all_finite(c_prev)
    ):
        return False
    gates = np.empty((x.shape[0], weight_ih.shape[0]), np.float32)  # (B, 4H)
    _product(x, weight_ih, gates, _ZERO)
    _product(h_prev, weight_hh, gates, _ONE)
    tanh_c = np.empty_like(c)  # (B, H), not kept
    lstm_step(gates, bias_ih + bias_hh, c_prev, h, c, tanh_c, 0, x.shape[0])
    return True


def _gru_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh, h):
    """``cell_step('gru_cell')``: one GRU step without a cache (``GRUCell`` inference):
    x (B, I), h_prev (B, H), weights (3H, I) and (3H, H), biases (3H,); writes h (B, H) and
    returns whether it did, as ``_lstm_cell``."""
    if not (
        _fits(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
        and h.shape == h_prev.shape
        and _all_finite(x)
        and _all_finite(h_prev)
    ):
        return False
    gates = np.empty((x.shape[0], weight_ih.shape[0]), np.float32)  # (B, 3H): xw
    _product(x, weight_ih, gates, _ZERO)
    hw = np.empty_like(gates)  # (B, 3H)
    _product(h_prev, weight_hh, hw, _ZERO)
    hw_n = np.empty_like(h)  # (B, H), not kept
    gru_step(gates, bias_ih, hw, bias_hh, h_prev, h, hw_n, 0, x.shape[0])
    return True


_CELLS = {
    "lstm_cell": (_lstm_cell, (_ROWS,) * 5 + (_VECTOR,) * 2 + (_ROWS,) * 2),
    "gru_cell": (_gru_cell, (_ROWS,) * 4 + (_VECTOR,) * 2 + (_ROWS,)),
}


@functools.cache
def cell_step(name: str):
    """The compiled cell step ``name`` ('lstm_cell' or 'gru_cell'), for float32 C-ordered arrays
    only: numba refuses any other argument with a TypeError (no compilation for it). Compiled,
    or loaded from the cache, at its first use: not at import, where an explicit signature
    would compile it (seconds, on a fresh install) for programs that never step a cell."""
    function, arguments = _CELLS[name]
    signature = types.boolean(*arguments)
    return numba.njit(signature, **COMPILE_OPTIONS)(function)


@jit
def _copy_rows(source, target, first, last):
    """target[first:last] = source[first:last], for (B, H) arrays."""
    for b in range(first, last):
        target[b] = source[b]


@jit
def _keep_running(masks, t, new, state, first, last):
    """state[b] = new[b], rows first .. last - 1, for the sequences still running at step t;
    masks (T, B, 1) or None (every sequence runs)."""
    if masks is None:
        _copy_rows(new, state, first, last)
        return
    for b in range(first, last):
        if masks[t, b, 0] > 0:
            state[b] = new[b]


@jit
def _zero_rows(masks, t, values, running, first, last):
    """values[b] = 0, rows first .. last - 1, for every sequence b that is still running at step
    t (``running`` True) or is not (False); masks (T, B, 1) or None (every sequence runs)."""
    if masks is None:
        if running:
            values[first:last] = 0
        return
    for b in range(first, last):
        if (masks[t, b, 0] > 0) == running:
            values[b] = 0


@jit
def _gradient_at_step(masks, t, dy, dh, out, first, last):
    """out = m[t] * (dy[t] + dh), rows first .. last - 1: the gradient reaching the h[t] a step
    computed (y[t] = h[t], which also feeds step t+1; zero past a sequence's end)."""
    for b in range(first, last):
        dy_b, dh_b, out_b = dy[t, b], dh[b], out[b]
        for j in range(out_b.shape[0]):
            out_b[j] = dy_b[j] + dh_b[j]
    _zero_rows(masks, t, out, False, first, last)


@jit
def _add_rows(source, target, first, last):
    """target[first:last] += source[first:last], for (B, H) arrays."""
    for b in range(first, last):
        source_b, target_b = source[b], target[b]
        for j in range(target_b.shape[0]):
            target_b[j] += source_b[j]


# The time loops below run rows first .. last - 1 of the batch: the sequences of a batch never
# meet, so two threads may run the two halves side by side (``_fused.by_rows``). Each takes the
# recurrent weight packed once (``pack``) for its products.


@jit
def lstm_sequence(
    x, w_ih_t, gates, bias, h0, c0, w_hh_t, masks, hs, cs, tanh_cs, h, c, first, last
):
    """``lstm.forward``'s time loop, the input projection in it: x (T, B, I); w_ih_t and w_hh_t
    are ``pack(W_ih.T)`` and ``pack(W_hh.T)``; bias (4H,) is b_ih + b_hh (zeros without biases),
    added by ``lstm_step``; masks (T, B, 1) or None. Writes gates (T, B, 4H) (i, f, g, o), hs,
    cs, tanh_cs (T, B, H) and the final h, c (B, H)."""
    _copy_rows(h0, h, first, last)
    _copy_rows(c0, c, first, last)
    for t in range(gates.shape[0]):
        packed_product(x[t], w_ih_t, gates[t], False, first, last)
        packed_product(h, w_hh_t, gates[t], True, first, last)
        lstm_step(gates[t], bias, c, hs[t], cs[t], tanh_cs[t], first, last)
        _keep_running(masks, t, hs[t], h, first, last)
        _keep_running(masks, t, cs[t], c, first, last)


@jit
def lstm_inference(x, w_ih_t, bias, h0, c0, w_hh_t, masks, hs, h, c, first, last):
    """``lstm.infer``'s time loop, the input projection in it: x (T, B, I); w_ih_t and w_hh_t
    are ``pack(W_ih.T)`` and ``pack(W_hh.T)``; bias (4H,) is b_ih + b_hh; masks (T, B, 1) or
    None. Each step's gates go to one (B, 4H) buffer, not kept. Writes hs (T, B, H) and the
    final h, c (B, H)."""
    gates = np.empty((x.shape[1], bias.shape[0]), np.float32)  # (B, 4H)
    c_next = np.empty_like(c)
    tanh_c = np.empty_like(c)  # not kept
    _copy_rows(h0, h, first, last)
    _copy_rows(c0, c, first, last)
    for t in range(x.shape[0]):
        packed_product(x[t], w_ih_t, gates, False, first, last)
        packed_product(h, w_hh_t, gates, True, first, last)
        lstm_step(gates, bias, c, hs[t], c_next, tanh_c, first, last)
        _keep_running(masks, t, hs[t], h, first, last)
        _keep_running(masks, t, c_next, c, first, last)


@jit
def lstm_sequence_backward(
    dy, dh, dc, gates, cs, tanh_cs, c0, w_hh, w_ih, masks, dz, d_bias, dx, dh_record, first, last
):
    """``lstm.backward``'s time loop: writes dz (T, B, 4H), dx (T, B, I) and dh_record (T, B, H)
    unless None; adds each row's dz over time to d_bias (B, 4H) (the bias gradient, summed
    while dz is in cache); dh, dc (B, H) come in at the final state and leave as the gradients
    at the initial one; w_hh and w_ih are ``pack(W_hh)`` and ``pack(W_ih)``."""
    dh_t = np.empty_like(dh)
    dc_t = np.empty_like(dc)
    dc_prev = np.empty_like(dc)
    scratch = np.empty(gates.shape[2], np.float32)  # (4H,), lstm_step_backward's working row
    for t in range(gates.shape[0] - 1, -1, -1):
        c_prev = c0 if t == 0 else cs[t - 1]
        _gradient_at_step(masks, t, dy, dh, dh_t, first, last)
        _copy_rows(dc, dc_t, first, last)
        _zero_rows(masks, t, dc_t, False, first, last)  # the state is m c[t] + (1 - m) c[t-1]
        lstm_step_backward(
            dh_t, dc_t, gates[t], c_prev, tanh_cs[t], dz[t], dc_prev, scratch, first, last
        )
        _add_rows(dz[t], d_bias, first, last)
        _zero_rows(masks, t, dh, True, first, last)  # a frozen state passes its gradient on
        _zero_rows(masks, t, dc, True, first, last)
        _add_rows(dc_prev, dc, first, last)
        packed_product(dz[t], w_hh, dh, True, first, last)  # z[t] = ... + h[t-1] @ W_hh.T
        packed_product(dz[t], w_ih, dx[t], False, first, last)  # z[t] = x[t] @ W_ih.T + ...
        if dh_record is not None:
            _copy_rows(dh_t, dh_record[t], first, last)


@jit
def gru_sequence(x, w_ih_t, xw, b_ih, h0, w_hh_t, b_hh, masks, hs, hw_ns, h, first, last):
    """``gru.forward``'s time loop, the input projection in it: x (T, B, I); w_ih_t and w_hh_t
    are ``pack(W_ih.T)`` and ``pack(W_hh.T)``; b_ih, b_hh (3H,) (zeros without biases), added
    by ``gru_step``; masks (T, B, 1) or None. Writes xw (T, B, 3H) (r, z, n), hs and hw_ns
    (T, B, H) and the final state h (B, H)."""
    hw = np.empty(xw.shape[1:], np.float32)  # (B, 3H)
    _copy_rows(h0, h, first, last)
    for t in range(xw.shape[0]):
        packed_product(x[t], w_ih_t, xw[t], False, first, last)
        packed_product(h, w_hh_t, hw, False, first, last)
        gru_step(xw[t], b_ih, hw, b_hh, h, hs[t], hw_ns[t], first, last)
        _keep_running(masks, t, hs[t], h, first, last)


@jit
def gru_sequence_backward(
    dy, dh, gates, hs, hw_ns, h0, w_hh, w_ih, masks, dxw, dhw, d_bias_ih, d_bias_hh, dx,
    dh_record, first, last,
):  # fmt: skip
    """``gru.backward``'s time loop: writes dxw, dhw (T, B, 3H), dx (T, B, I) and dh_record
    (T, B, H) unless None; adds each row's dxw and dhw over time to d_bias_ih and d_bias_hh
    (B, 3H); dh (B, H) comes in at the final state and leaves as the gradient at the initial
    one; w_hh and w_ih are ``pack(W_hh)`` and ``pack(W_ih)``."""
    dh_t = np.empty_like(dh)
    dh_direct = np.empty_like(dh)
    for t in range(gates.shape[0] - 1, -1, -1):
        h_prev = h0 if t == 0 else hs[t - 1]
        _gradient_at_step(masks, t, dy, dh, dh_t, first, last)
        gru_step_backward(dh_t, gates[t], hw_ns[t], h_prev, dxw[t], dhw[t], dh_direct, first, last)
        _add_rows(dxw[t], d_bias_ih, first, last)
        _add_rows(dhw[t], d_bias_hh, first, last)
        _zero_rows(masks, t, dh, True, first, last)  # a frozen state passes its gradient on
        _add_rows(dh_direct, dh, first, last)
        packed_product(dhw[t], w_hh, dh, True, first, last)  # hw[t] = h[t-1] @ W_hh.T + b_hh
        packed_product(dxw[t], w_ih, dx[t], False, first, last)  # xw[t] = x[t] @ W_ih.T + b_ih
        if dh_record is not None:
            _copy_rows(dh_t, dh_record[t], first, last)


@jit
def rnn_sequence(x, w_ih_t, hs, bias, h0, w_hh_t, relu, masks, h, first, last):
    """``rnn.forward``'s time loop, the input projection in it: x (T, B, I); w_ih_t and w_hh_t
    are ``pack(W_ih.T)`` and ``pack(W_hh.T)``; bias (H,) is b_ih + b_hh (zeros without biases),
    added as the nonlinearity reads a; relu: True for relu, False for tanh; masks (T, B, 1) or
    None. Writes hs (T, B, H) (a[t], then h[t]) and the final state h (B, H)."""
    _copy_rows(h0, h, first, last)
    for t in range(hs.shape[0]):
        a = hs[t]
        packed_product(x[t], w_ih_t, a, False, first, last)
        packed_product(h, w_hh_t, a, True, first, last)
        for b in range(first, last):
            row = a[b]
            if relu:
                for j in range(row.shape[0]):
                    row[j] = max(row[j] + bias[j], _ZERO)
            else:  # not _tanh: an RNN's gradients amplify its error through time
                for j in range(row.shape[0]):
                    row[j] = _tanh_precise(row[j] + bias[j])
        _keep_running(masks, t, a, h, first, last)


@jit
def rnn_sequence_backward(
    dy, dh, hs, w_hh, w_ih, relu, masks, da, d_bias, dx, dh_record, first, last
):
    """``rnn.backward``'s time loop: writes da (T, B, H), dx (T, B, I) and dh_record (T, B, H)
    unless None; adds each row's da over time to d_bias (B, H); dh (B, H) comes in at the final
    state and leaves as the gradient at the initial one; w_hh and w_ih are ``pack(W_hh)`` and
    ``pack(W_ih)``."""
    dh_t = np.empty_like(dh)
    for t in range(hs.shape[0] - 1, -1, -1):
        _gradient_at_step(masks, t, dy, dh, dh_t, first, last)
        for b in range(first, last):
            h_b, dh_b, da_b = hs[t, b], dh_t[b], da[t, b]
            if relu:
                for j in range(h_b.shape[0]):
                    da_b[j] = dh_b[j] if h_b[j] > _ZERO else _ZERO  # d relu(a) = [a > 0]
            else:
                for j in range(h_b.shape[0]):
                    da_b[j] = dh_b[j] * (_ONE - h_b[j] * h_b[j])  # d tanh(a) = 1 - h^2
        _add_rows(da[t], d_bias, first, last)
        _zero_rows(masks, t, dh, True, first, last)  # a frozen state passes its gradient on
        packed_product(da[t], w_hh, dh, True, first, last)  # a[t] = ... + h[t-1] @ W_hh.T
        packed_product(da[t], w_ih, dx[t], False, first, last)  # a[t] = x[t] @ W_ih.T + ...
        if dh_record is not None:
            _copy_rows(dh_t, dh_record[t], first, last)
