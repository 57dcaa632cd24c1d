"""Losses as pure functions: each returns ``(loss, d_prediction)``.

``loss`` is a Python float; ``d_prediction`` is d(loss)/d(prediction), with the prediction's
shape and dtype, ready to pass to the model's ``backward``.

Ragged batches: ``mask`` (bool, or 0/1 numbers) marks the valid positions. It has the shape of the
prediction's leading axes (for ``cross_entropy``: of the targets) and covers any trailing axes.
Masked-out positions are ignored entirely: their targets may hold padding, -100 or NaN, and their
gradient is zero.

``reduction="mean"`` averages over the valid positions (elements, for the element-wise losses);
``reduction="sum"`` adds them up: L = sum_t L_t.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError, UserTypeError
from rnnkit.nn.module import _to_numpy

REDUCTIONS = ("mean", "sum")


def cross_entropy(logits, targets, mask=None, reduction: str = "mean"):
    """Softmax cross-entropy of class scores against class ids.

    Args:
        logits: (..., C) unnormalised class scores, floating point.
        targets: (...) integer class ids in [0, C).
        mask: None, or valid positions with the shape of ``targets`` (or of its leading axes).
        reduction: "mean" or "sum" over the valid positions.
    Returns:
        loss: -log softmax(logits)[target], reduced; d_logits: (..., C) = softmax - one_hot(target)
        at valid positions (divided by their count for "mean"), zero elsewhere.
    """
    logits = _prediction(logits, "logits")
    if logits.ndim == 0:
        raise UserError("logits must have a class axis (..., C), got a scalar")
    targets = _to_numpy(targets)
    if targets.dtype.kind not in "iu":
        raise UserTypeError(
            f"targets have dtype {targets.dtype}, but cross_entropy needs integer class ids; "
            "pass e.g. targets.astype(np.int64)"
        )
    _check_shape(targets, "targets", logits.shape[:-1], f"logits.shape[:-1] of {logits.shape}")
    valid = _valid_positions(mask, targets.shape, reduction)
    classes = logits.shape[-1]
    picked = targets[valid]
    if picked.min() < 0 or picked.max() >= classes:
        bad = picked.min() if picked.min() < 0 else picked.max()
        raise UserError(
            f"target {bad} is not a class id of logits with {classes} classes (valid 0.."
            f"{classes - 1}); fix the targets or mask out padding positions"
        )
    targets = np.where(valid, targets, 0)  # padding -> class 0; its loss is masked out
    shifted = logits - logits.max(axis=-1, keepdims=True)  # (..., C), largest score 0
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # (..., C)
    nll = -np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]  # (...)
    one_hot = targets[..., None] == np.arange(classes)  # (..., C) bool
    d_logits = np.exp(log_probs) - one_hot  # d nll / d logits = softmax - one_hot
    return _reduce(nll, d_logits, valid, reduction)


def binary_cross_entropy(logits, targets, mask=None, reduction: str = "mean"):
    """Sigmoid cross-entropy from logits: -t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)).

    Computed as softplus(x) - t x = max(x, 0) - t x + log(1 + exp(-|x|)), which never
    overflows. ``targets`` (same shape as ``logits``) are probabilities in [0, 1].
    Returns the reduced loss and d_logits = sigmoid(x) - t (masked, scaled as the reduction).
    """
    logits = _prediction(logits, "logits")
    targets = _real_target(targets, "targets", logits, "logits")
    valid = _valid_positions(mask, logits.shape, reduction)
    targets = _valid_values(targets, valid, "targets", logits.dtype)
    if targets.min() < 0.0 or targets.max() > 1.0:
        raise UserError(
            f"targets must lie in [0, 1], got values from {targets.min()} to {targets.max()}; "
            "give 0/1 labels or probabilities"
        )
    element_loss = np.maximum(logits, 0.0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    sigmoid = 0.5 * (1.0 + np.tanh(0.5 * logits))  # tanh form: no overflow
    return _reduce(element_loss, sigmoid - targets, valid, reduction)


def mse(prediction, target, mask=None, reduction: str = "mean"):
    """Squared error (prediction - target)^2 per element, reduced over the valid elements.

    Returns the loss and d_prediction = 2 (prediction - target) (masked, scaled as the reduction).
    """
    prediction, target, valid = _regression_inputs(prediction, target, mask, reduction)
    error = prediction - target
    return _reduce(error**2, 2.0 * error, valid, reduction)


def mae(prediction, target, mask=None, reduction: str = "mean"):
    """Absolute error |prediction - target| per element, reduced over the valid elements.

    Returns the loss and d_prediction = sign(prediction - target), 0 where they are equal
    (masked, scaled as the reduction).
    """
    prediction, target, valid = _regression_inputs(prediction, target, mask, reduction)
    error = prediction - target
    return _reduce(np.abs(error), np.sign(error), valid, reduction)


def _regression_inputs(prediction, target, mask, reduction: str):
    """Checked prediction, target (cast to the prediction's dtype) and valid elements."""
    prediction = _prediction(prediction, "prediction")
    target = _real_target(target, "target", prediction, "prediction")
    valid = _valid_positions(mask, prediction.shape, reduction)
    return prediction, _valid_values(target, valid, "target", prediction.dtype), valid


def _reduce(element_loss: np.ndarray, d_element: np.ndarray, valid: np.ndarray, reduction: str):
    """Sum or average ``element_loss`` over ``valid`` (its shape), and the matching gradient.

    ``d_element`` is d(element_loss)/d(prediction); it may have trailing axes beyond ``valid``'s
    (the class axis of cross_entropy), which the mask covers.
    """
    scale = 1.0 / np.count_nonzero(valid) if reduction == "mean" else 1.0
    loss = float(np.sum(element_loss, where=valid, dtype=np.float64) * scale)
    extra_axes = (1,) * (d_element.ndim - valid.ndim)
    weights = (valid * scale).astype(d_element.dtype).reshape(valid.shape + extra_axes)
    return loss, d_element * weights


def _prediction(value, name: str) -> np.ndarray:
    """``value`` as a floating-point array; TypeError for other dtypes, ValueError for NaN/inf."""
    array = _to_numpy(value)
    if array.dtype.kind != "f":
        raise UserTypeError(
            f"{name} has dtype {array.dtype}, but losses need floating-point predictions; "
            f"convert it, e.g. {name}.astype(np.float32)"
        )
    if not np.isfinite(array).all():
        raise UserError(f"{name} contains NaN or inf values; check the model and its inputs")
    return array


def _real_target(value, name: str, prediction: np.ndarray, prediction_name: str) -> np.ndarray:
    """A numeric target array with the prediction's shape."""
    target = _to_numpy(value)
    if target.dtype.kind not in "biuf":
        raise UserTypeError(
            f"{name} has dtype {target.dtype}; give numbers (floats, ints or bools)"
        )
    _check_shape(target, name, prediction.shape, f"{prediction_name}.shape")
    return target


def _valid_values(target: np.ndarray, valid: np.ndarray, name: str, dtype) -> np.ndarray:
    """``target`` in ``dtype``, 0 at masked-out elements; ValueError for NaN/inf at valid ones."""
    if not np.isfinite(target[valid]).all():
        raise UserError(f"{name} contains NaN or inf at valid positions; clean or mask them")
    return np.where(valid, target, 0).astype(dtype)


def _check_shape(array: np.ndarray, name: str, expected: tuple, meaning: str) -> None:
    if array.shape != expected:
        raise UserError(
            f"{name} has shape {array.shape}, but {meaning} is {expected}; the shapes must match"
        )


def _valid_positions(mask, shape: tuple, reduction: str) -> np.ndarray:
    """A bool array of ``shape``, True where the loss counts; the mask covers trailing axes."""
    if reduction not in REDUCTIONS:
        raise UserError(f"reduction={reduction!r} is not one of {list(REDUCTIONS)}")
    if mask is None:
        valid = np.ones(shape, dtype=bool)
    else:
        mask = _to_numpy(mask)
        if mask.shape != shape[: mask.ndim]:
            raise UserError(
                f"mask has shape {mask.shape}, but the positions have shape {shape}; the mask "
                f"must have that shape or that of its leading axes, e.g. {shape[:-1] or shape}"
            )
        if mask.dtype.kind not in "biuf" or not np.isin(mask, (0, 1)).all():
            raise UserError(
                f"mask must hold booleans or 0/1 values (got dtype {mask.dtype}); build it as "
                "e.g. np.arange(T)[:, None] < lengths"
            )
        trailing = (1,) * (len(shape) - mask.ndim)
        valid = np.broadcast_to(mask.astype(bool).reshape(mask.shape + trailing), shape)
    if not valid.any():
        raise UserError(
            f"no valid position to compute the loss over (shape {shape}); the mask selects "
            "nothing or the data are empty"
        )
    return valid
