"""The numba kernels of ``stepped``'s compiled steps that ``_fused_loops`` lacks: layer
normalisation row by row, and the gates of the GRU with the reset before the product. float32,
C-ordered, writing into arrays the caller gives (imported with numba, at the first step)."""

import numpy as np

from rnnkit.backends.compiled._fused_loops import _ONE, _sigmoid, _tanh, jit
from rnnkit.cells._layer_norm import EPSILON

_EPSILON = np.float64(EPSILON)


@jit
def layer_norm(v, gain, shift, out, v_hat, inv_std):
    """``rnnkit.cells._layer_norm.layer_norm`` of v (B, N): writes out = gain * v_hat + shift
    and v_hat (each (B, N)), and 1 / sqrt(var + EPSILON) into inv_std (B,). Each row's mean and
    variance are summed in float64."""
    size = v.shape[1]
    for b in range(v.shape[0]):
        row, hat, out_b = v[b], v_hat[b], out[b]
        total = np.float64(0.0)
        for j in range(size):
            total += row[j]
        mean = np.float32(total / size)
        squares = np.float64(0.0)
        for j in range(size):
            centred = row[j] - mean
            squares += centred * centred
        scale = np.float32(1.0 / np.sqrt(squares / size + _EPSILON))
        inv_std[b] = scale
        for j in range(size):
            hat[j] = (row[j] - mean) * scale
        for j in range(size):
            out_b[j] = gain[j] * hat[j] + shift[j]


@jit
def layer_norm_backward(d_out, v_hat, inv_std, gain, dv):
    """dv (B, N), the gradient of v in out = LN(v; gain, shift), from d_out (B, N) and what
    ``layer_norm`` wrote (the gain's and shift's gradients are column sums: NumPy makes them).
    """
    size = d_out.shape[1]
    for b in range(d_out.shape[0]):
        d_b, hat, dv_b = d_out[b], v_hat[b], dv[b]
        total, weighted = np.float64(0.0), np.float64(0.0)
        for j in range(size):
            d_hat = d_b[j] * gain[j]  # out = gain * v_hat + shift
            total += d_hat
            weighted += d_hat * hat[j]
        mean, mean_weighted = np.float32(total / size), np.float32(weighted / size)
        scale = inv_std[b]
        for j in range(size):  # v_hat = (v - mean) / std
            dv_b[j] = scale * (d_b[j] * gain[j] - mean - hat[j] * mean_weighted)


@jit
def reset_before_gates(a, bias, hw_rz, h_prev, rh):
    """The GRU with the reset before the product (``rnnkit.cells.gru_reset_before``): a (B, 3H)
    from xw to r, z in its first 2H columns (in place, the biases (3H,) b_ih + b_hh added
    here), given hw_rz = h_prev @ [W_hr; W_hz].T (B, 2H); writes rh = r * h_prev (B, H)."""
    hidden = h_prev.shape[1]
    for b in range(a.shape[0]):
        gates, hw = a[b], hw_rz[b]
        for j in range(2 * hidden):
            gates[j] = _sigmoid(gates[j] + bias[j] + hw[j])
        r, h_prev_b, rh_b = gates[:hidden], h_prev[b], rh[b]
        for j in range(hidden):
            rh_b[j] = r[j] * h_prev_b[j]


@jit
def reset_before_output(a, bias, rh_w, h_prev, h):
    """The rest of that step: a's last H columns from xw_n to n = tanh(a_n + rh @ W_hn.T), in
    place, given rh_w = rh @ W_hn.T (B, H); writes h = (1 - z) * n + z * h_prev (B, H)."""
    hidden = h_prev.shape[1]
    b_n = bias[2 * hidden :]
    for b in range(a.shape[0]):
        z, n, rh_w_b = a[b, hidden : 2 * hidden], a[b, 2 * hidden :], rh_w[b]
        for j in range(hidden):
            n[j] = _tanh(n[j] + b_n[j] + rh_w_b[j])
        h_prev_b, h_b = h_prev[b], h[b]
        for j in range(hidden):
            h_b[j] = n[j] + z[j] * (h_prev_b[j] - n[j])


@jit
def reset_before_output_backward(dh, gates, h_prev, da, dh_direct):
    """From dh (B, H) at that step's h and its gates (B, 3H: r, z, n): writes da's z and n
    blocks (da (B, 3H), the gradient of xw + biases; its r block waits for d_rh) and
    dh_direct = dh * z (B, H), the gradient reaching h_prev through h alone."""
    hidden = h_prev.shape[1]
    for b in range(dh.shape[0]):
        z, n = gates[b, hidden : 2 * hidden], gates[b, 2 * hidden :]
        dh_b, h_prev_b = dh[b], h_prev[b]
        da_z, da_n, direct = da[b, hidden : 2 * hidden], da[b, 2 * hidden :], dh_direct[b]
        for j in range(hidden):  # h = (1 - z) n + z h_prev; n = tanh(a_n + rh @ W_hn.T)
            da_n[j] = dh_b[j] * (_ONE - z[j]) * (_ONE - n[j] * n[j])
        for j in range(hidden):  # z = sig(a_z + ...)
            da_z[j] = dh_b[j] * (h_prev_b[j] - n[j]) * z[j] * (_ONE - z[j])
        for j in range(hidden):
            direct[j] = dh_b[j] * z[j]


@jit
def reset_before_gates_backward(d_rh, gates, h_prev, da, dh_direct):
    """From d_rh = da_n @ W_hn (B, H): writes da's r block and adds d_rh * r, the gradient
    reaching h_prev through rh = r * h_prev, to dh_direct (B, H)."""
    hidden = h_prev.shape[1]
    for b in range(d_rh.shape[0]):
        r, d_rh_b, h_prev_b = gates[b, :hidden], d_rh[b], h_prev[b]
        da_r, direct = da[b, :hidden], dh_direct[b]
        for j in range(hidden):  # rh = r * h_prev; r = sig(a_r + ...)
            da_r[j] = d_rh_b[j] * h_prev_b[j] * r[j] * (_ONE - r[j])
        for j in range(hidden):
            direct[j] += d_rh_b[j] * r[j]
