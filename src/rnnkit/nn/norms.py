"""Norms of gradients, in float64: for clipping (``rnnkit.train.clip``), the gradient log
(``rnnkit.train.callbacks``) and the diagnostics (``rnnkit.diagnostics``)."""

from __future__ import annotations

import math

import numpy as np


def global_norm(module) -> float:
    """sqrt(sum of squares of every entry of every gradient in ``module.grads``)."""
    squares = sum(float(np.square(grad, dtype=np.float64).sum()) for grad in module.grads.values())
    return math.sqrt(squares)


def l2_norm(array) -> float:
    """The L2 norm of all entries in float64, scaled first so tiny values do not underflow."""
    array = np.asarray(array, dtype=np.float64)
    largest = float(np.abs(array).max()) if array.size else 0.0
    if largest == 0.0 or not math.isfinite(largest):
        return largest
    return largest * float(np.sqrt(np.square(array / largest).sum()))
