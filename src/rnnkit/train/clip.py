"""Gradient clipping over a whole module, in place, as torch.nn.utils.clip_grad_norm_ /
clip_grad_value_.

Both return the global L2 norm of all gradients before clipping (a Python float, summed in
float64). A non-finite norm is returned as is, for the caller to decide (e.g. skip the step);
``clip_grad_norm`` then leaves the gradients untouched (PyTorch would turn them into zeros and
NaN), ``clip_grad_value`` still clamps (inf becomes the limit, NaN stays NaN).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from rnnkit.errors import UserError, UserTypeError
from rnnkit.nn.norms import global_norm


def clip_grad_norm(module, max_norm: float) -> float:
    """Scale all gradients by max_norm / (norm + 1e-6) when that is below 1 (norm > max_norm,
    up to the 1e-6); returns the norm before clipping."""
    max_norm = _limit("clip_grad_norm", "max_norm", max_norm)
    norm = global_norm(module)
    scale = max_norm / (norm + 1e-6)
    if math.isfinite(norm) and scale < 1.0:
        for grad in module.grads.values():
            grad *= scale
    return norm


def clip_grad_value(module, clip_value: float) -> float:
    """Clamp every gradient entry to [-clip_value, clip_value]; returns the norm before."""
    clip_value = _limit("clip_grad_value", "clip_value", clip_value)
    norm = global_norm(module)
    for grad in module.grads.values():
        np.clip(grad, -clip_value, clip_value, out=grad)
    return norm


def _limit(owner: str, name: str, value) -> float:
    """``value`` as a float >= 0 (inf allowed: no clipping); TypeError/ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserTypeError(f"{owner}: {name} must be a number, got {type(value).__name__}")
    if not value >= 0.0:  # also catches NaN
        raise UserError(f"{owner}: {name} must be a number >= 0 (inf: no clipping), got {value}")
    return float(value)
