"""Layer normalisation (Ba, Kiros & Hinton 2016) of a (B, N) array v, row by row (each sequence
normalised over all N of its summed inputs, at each step on its own; mean and variance over the
row, the variance biased), and its gradient, for the layer-normalised cells:

    v_hat = (v - mean(v)) / sqrt(var(v) + EPSILON)      (B, N)     EPSILON = 1e-5
    LN(v; gain, shift) = gain * v_hat + shift           (B, N)     gain, shift (N,)

as ``torch.nn.functional.layer_norm`` with its default eps.
"""

from __future__ import annotations

import numpy as np

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
