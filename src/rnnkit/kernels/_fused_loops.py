"""The numba loops behind ``_fused`` (imported only when a fused step first runs: importing
numba takes a few tenths of a second). Each inner loop runs over a contiguous row, so it vectorizes;
``error_model="numpy"`` drops the division-by-zero checks that would stop that."""

import numba
import numpy as np

from rnnkit.kernels._fused import P, Q

jit = numba.njit(cache=True, fastmath=True, error_model="numpy")  # numpy: no zero checks
inline = numba.njit(fastmath=True, error_model="numpy", inline="always")
_F = np.float32
_P0, _P1, _P2, _P3, _P4 = (_F(value) for value in P)
_Q1, _Q2, _Q3, _Q4 = (_F(value) for value in Q[1:])
_LIMIT, _HALF, _ONE = _F(9.0), _F(0.5), _F(1.0)


@inline
def _tanh(x):
    x = min(max(x, -_LIMIT), _LIMIT)
    s = x * x
    p = _P0 + s * (_P1 + s * (_P2 + s * (_P3 + s * _P4)))
    q = _ONE + s * (_Q1 + s * (_Q2 + s * (_Q3 + s * _Q4)))
    return x * p / q


@inline
def _sigmoid(x):
    return _HALF + _HALF * _tanh(_HALF * x)


@jit
def lstm_step(gates, c_prev, h, c, tanh_c):
    """In place: ``gates`` (B, 4H) from pre-activations to i, f, g, o; writes h, c, tanh(c)
    (each (B, H)). One inner loop per quantity, over contiguous rows, so each vectorizes."""
    batch, hidden = c_prev.shape
    for b in range(batch):
        i = gates[b, :hidden]
        f = gates[b, hidden : 2 * hidden]
        g = gates[b, 2 * hidden : 3 * hidden]
        o = gates[b, 3 * hidden :]
        for j in range(hidden):
            i[j] = _sigmoid(i[j])
        for j in range(hidden):
            f[j] = _sigmoid(f[j])
        for j in range(hidden):
            g[j] = _tanh(g[j])
        for j in range(hidden):
            o[j] = _sigmoid(o[j])
        for j in range(hidden):
            c[b, j] = f[j] * c_prev[b, j] + i[j] * g[j]
        for j in range(hidden):
            tanh_c[b, j] = _tanh(c[b, j])
        for j in range(hidden):
            h[b, j] = o[j] * tanh_c[b, j]


@jit
def lstm_step_backward(dh, dc, gates, c_prev, tanh_c, dz, dc_prev):
    """Writes dz (B, 4H) and dc_prev (B, H) from dh, dc at h[t], c[t] (see lstm.py)."""
    batch, hidden = c_prev.shape
    for b in range(batch):
        for j in range(hidden):
            i = gates[b, j]
            f = gates[b, hidden + j]
            g = gates[b, 2 * hidden + j]
            o = gates[b, 3 * hidden + j]
            t = tanh_c[b, j]
            d_c = dc[b, j] + dh[b, j] * o * (_ONE - t * t)  # h = o * tanh(c)
            dz[b, j] = d_c * g * i * (_ONE - i)  # c = f * c_prev + i * g; i = sig(z_i)
            dz[b, hidden + j] = d_c * c_prev[b, j] * f * (_ONE - f)
            dz[b, 2 * hidden + j] = d_c * i * (_ONE - g * g)
            dz[b, 3 * hidden + j] = dh[b, j] * t * o * (_ONE - o)
            dc_prev[b, j] = d_c * f


@jit
def gru_step(gates, hw, h_prev, h):
    """In place: ``gates`` (B, 3H) from xw to r, z, n; writes h (B, H), as ``gru.step``."""
    batch, hidden = h_prev.shape
    for b in range(batch):
        r = gates[b, :hidden]
        z = gates[b, hidden : 2 * hidden]
        n = gates[b, 2 * hidden :]
        hw_r = hw[b, :hidden]
        hw_z = hw[b, hidden : 2 * hidden]
        hw_n = hw[b, 2 * hidden :]
        for j in range(hidden):
            r[j] = _sigmoid(r[j] + hw_r[j])
        for j in range(hidden):
            z[j] = _sigmoid(z[j] + hw_z[j])
        for j in range(hidden):
            n[j] = _tanh(n[j] + r[j] * hw_n[j])
        for j in range(hidden):
            h[b, j] = n[j] + z[j] * (h_prev[b, j] - n[j])


@jit
def gru_step_backward(dh, gates, hw_n, h_prev, dxw, dhw, dh_direct):
    """Writes dxw, dhw (B, 3H) and dh_direct (B, H) from dh at h[t], as ``gru.step_backward``."""
    batch, hidden = h_prev.shape
    for b in range(batch):
        for j in range(hidden):
            r = gates[b, j]
            z = gates[b, hidden + j]
            n = gates[b, 2 * hidden + j]
            d_h = dh[b, j]
            da_n = d_h * (_ONE - z) * (_ONE - n * n)  # h = (1 - z) n + z h_prev; n = tanh(a_n)
            da_r = da_n * hw_n[b, j] * r * (_ONE - r)  # a_n = xw_n + r hw_n; r = sig(a_r)
            da_z = d_h * (h_prev[b, j] - n) * z * (_ONE - z)  # z = sig(a_z)
            dxw[b, j] = da_r
            dxw[b, hidden + j] = da_z
            dxw[b, 2 * hidden + j] = da_n
            dhw[b, j] = da_r
            dhw[b, hidden + j] = da_z
            dhw[b, 2 * hidden + j] = da_n * r
            dh_direct[b, j] = d_h * z


_EXPONENT = np.uint32(0x7F800000)  # float32 bits of the exponent: all set for NaN and inf


@jit
def _all_finite(values):
    """Whether no value of the float32 array is NaN or inf, read from the bits (floating-point
    tests would be folded away under fastmath, which assumes finite values)."""
    for bits in values.ravel().view(np.uint32):  # noqa: SIM110 (numba: a loop, not all())
        if bits & _EXPONENT == _EXPONENT:
            return False
    return True


@jit
def _pre_activations(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """``(xw, hw)``: x W_ih^T + b_ih and h_prev W_hh^T + b_hh, (B, G) each, one row of the
    weights at a time: for the few examples of a streaming step this costs less than BLAS calls."""
    batch, inputs = x.shape
    hidden = h_prev.shape[1]
    xw = np.empty((batch, weight_ih.shape[0]), np.float32)
    hw = np.empty_like(xw)
    for b in range(batch):
        for j in range(weight_ih.shape[0]):
            total = bias_ih[j]
            for k in range(inputs):
                total += weight_ih[j, k] * x[b, k]
            xw[b, j] = total
            total = bias_hh[j]
            for k in range(hidden):
                total += weight_hh[j, k] * h_prev[b, k]
            hw[b, j] = total
    return xw, hw


@jit
def lstm_cell(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """One LSTM step without a cache (``LSTMCell`` inference): x (B, I), h_prev, c_prev (B, H),
    weights (4H, I) and (4H, H), biases (4H,). Returns ``(finite, h, c)``; ``finite`` is False,
    and h and c are not computed, when an input holds NaN or inf."""
    h, c = np.empty_like(h_prev), np.empty_like(c_prev)
    if not (_all_finite(x) and _all_finite(h_prev) and _all_finite(c_prev)):
        return False, h, c
    gates, hw = _pre_activations(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
    gates += hw
    lstm_step(gates, c_prev, h, c, np.empty_like(c))  # the last: tanh(c), not kept
    return True, h, c


@jit
def gru_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """One GRU step without a cache (``GRUCell`` inference): x (B, I), h_prev (B, H), weights
    (3H, I) and (3H, H), biases (3H,). Returns ``(finite, h)`` as ``lstm_cell``."""
    h = np.empty_like(h_prev)
    if not (_all_finite(x) and _all_finite(h_prev)):
        return False, h
    gates, hw = _pre_activations(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
    gru_step(gates, hw, h_prev, h)
    return True, h
