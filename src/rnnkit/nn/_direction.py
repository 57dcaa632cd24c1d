"""One recurrent layer in one direction: the kernel's forward and backward, and the gradient of
the input weight.

Shared by the layers (each layer and direction of a stack) and the cells (one step).
"""

from __future__ import annotations

import numpy as np


def forward_direction(kernel, x, weights: dict, state0: tuple, lengths, **options):
    """Run one direction of one layer over a time-major sequence.

    Args:
        kernel: a module of ``rnnkit.kernels`` (``forward`` and ``backward``).
        x: (T, B, I) input. weights: ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H), and
            ``bias_ih``, ``bias_hh`` (G*H,) when the layer has biases.
        state0: the kernel's state tuple, each part (B, H).
        lengths: (B,) ints or None. options: passed to the kernel (the RNN's nonlinearity).
    Returns:
        y (T, B, H), the final state tuple, and ``backward(dy, dstate) -> (dx, dstate0, grads)``
        where ``grads`` holds the gradient of every entry of ``weights`` under the same name;
        ``backward(..., dh_record=array)`` also fills a (T, B, H) array with dL/dh[t] (see the
        kernels).
    """
    steps, batch, inputs = x.shape
    y, state, cache = kernel.forward(x, state0, *_kernel_weights(weights), lengths, **options)

    def backward(dy: np.ndarray, dstate: tuple, dh_record: np.ndarray | None = None):
        dx, dxw, dstate0, dw_hh, db_ih, db_hh = kernel.backward(dy, dstate, cache, dh_record)
        dxw = dxw.reshape(steps * batch, -1)  # (T*B, G*H)
        grads = {
            "weight_ih": dxw.T @ x.reshape(steps * batch, inputs),  # one product over all steps
            "weight_hh": dw_hh,
        }
        if db_ih is not None:
            grads["bias_ih"] = db_ih
            grads["bias_hh"] = db_hh
        return dx, dstate0, grads

    return y, state, backward


def infer_direction(kernel, x, weights: dict, state0: tuple, lengths, **options):
    """Inference of one direction of one layer, nothing kept for a backward: ``(y, state)`` as
    ``forward_direction`` gives them. A kernel with an ``infer`` (the LSTM's: its compiled loop
    keeps one step's gates, not the (T, B, 4H) cache) runs it when it applies; ``forward``
    otherwise."""
    infer = getattr(kernel, "infer", None)
    if infer is not None:
        result = infer(x, state0, *_kernel_weights(weights), lengths, **options)
        if result is not None:
            return result
    y, state, _ = forward_direction(kernel, x, weights, state0, lengths, **options)
    return y, state


def _kernel_weights(weights: dict) -> tuple:
    """``(w_ih, w_hh, b_ih, b_hh)`` as the kernels take them: the biases None when absent."""
    return (
        weights["weight_ih"],
        weights["weight_hh"],
        weights.get("bias_ih"),
        weights.get("bias_hh"),
    )
