"""One recurrent layer in one direction: input projection, kernel, and the backward of both.

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
    w_ih, b_ih = weights["weight_ih"], weights.get("bias_ih")
    xw = x.reshape(steps * batch, inputs) @ w_ih.T  # (T*B, G*H): all steps in one product
    xw = xw.reshape(steps, batch, -1)  # (T, B, G*H); the kernel adds b_ih as it goes
    y, state, cache = kernel.forward(
        xw, state0, weights["weight_hh"], weights.get("bias_hh"), lengths, b_ih=b_ih, **options
    )

    def backward(dy: np.ndarray, dstate: tuple, dh_record: np.ndarray | None = None):
        dxw, dstate0, dw_hh, db_ih, db_hh = kernel.backward(dy, dstate, cache, dh_record)
        dxw = dxw.reshape(steps * batch, -1)  # (T*B, G*H)
        dx = (dxw @ w_ih).reshape(steps, batch, inputs)  # (T, B, I)
        grads = {
            "weight_ih": dxw.T @ x.reshape(steps * batch, inputs),  # one product over all steps
            "weight_hh": dw_hh,
        }
        if b_ih is not None:
            grads["bias_ih"] = db_ih
            grads["bias_hh"] = db_hh
        return dx, dstate0, grads

    return y, state, backward


def infer_direction(kernel, x, weights: dict, state0: tuple, lengths, **options):
    """Inference of one direction of one layer, nothing kept for a backward: ``(y, state)`` as
    ``forward_direction`` gives them. A kernel with an ``infer`` (the LSTM's, with the input
    projection inside its compiled loop) runs it when it applies; ``forward`` otherwise."""
    infer = getattr(kernel, "infer", None)
    if infer is not None:
        args = (weights["weight_ih"], weights["weight_hh"], weights.get("bias_ih"))
        result = infer(x, state0, *args, weights.get("bias_hh"), lengths, **options)
        if result is not None:
            return result
    y, state, _ = forward_direction(kernel, x, weights, state0, lengths, **options)
    return y, state
