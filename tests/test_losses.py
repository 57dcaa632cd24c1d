"""Losses: gradients against finite differences in float64, values and gradients against PyTorch,
masking of ragged batches, numerical stability, and rejection of bad input."""

import re

import numpy as np
import pytest

from rnnkit.train.losses import binary_cross_entropy, cross_entropy, mae, mse

T, B, C = 4, 3, 5
MASK = np.arange(T)[:, None] < np.array([4, 1, 3])  # (T, B): ragged lengths


def make_inputs(name: str, dtype=np.float64, seed: int = 0):
    """(prediction, target) for each loss: logits (T, B, C) with class ids (T, B) for
    cross_entropy, else (T, B, 2) predictions with float targets of the same shape."""
    rng = np.random.default_rng(seed)
    if name == "cross_entropy":
        return rng.standard_normal((T, B, C)).astype(dtype), rng.integers(0, C, size=(T, B))
    prediction = rng.standard_normal((T, B, 2)).astype(dtype)
    if name == "binary_cross_entropy":
        return prediction, rng.uniform(0.0, 1.0, size=(T, B, 2))
    return prediction, rng.standard_normal((T, B, 2))


LOSSES = {
    "cross_entropy": cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "mse": mse,
    "mae": mae,
}


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", LOSSES)
def test_gradients_match_finite_differences(name, reduction, masked, gradient_check):
    loss_fn = LOSSES[name]
    prediction, target = make_inputs(name)
    mask = MASK if masked else None
    loss, d_prediction = loss_fn(prediction, target, mask, reduction)
    assert isinstance(loss, float)
    assert d_prediction.shape == prediction.shape
    gradient_check(
        lambda: loss_fn(prediction, target, mask, reduction)[0],
        {"prediction": (prediction, d_prediction)},
    )


def torch_loss(torch, name: str, prediction, target, reduction: str):
    functional = torch.nn.functional
    prediction = torch.from_numpy(prediction).requires_grad_()
    if name == "cross_entropy":
        value = functional.cross_entropy(
            prediction.reshape(-1, C), torch.from_numpy(target).reshape(-1), reduction=reduction
        )
    else:
        function = {
            "binary_cross_entropy": functional.binary_cross_entropy_with_logits,
            "mse": functional.mse_loss,
            "mae": functional.l1_loss,
        }[name]
        value = function(prediction, torch.from_numpy(target), reduction=reduction)
    value.backward()
    return value.item(), prediction.grad.numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", LOSSES)
def test_matches_pytorch(name, reduction, torch):
    prediction, target = make_inputs(name)
    loss, d_prediction = LOSSES[name](prediction, target, reduction=reduction)
    torch_value, torch_grad = torch_loss(torch, name, prediction, target, reduction)
    np.testing.assert_allclose(loss, torch_value, rtol=1e-12)
    np.testing.assert_allclose(d_prediction, torch_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", LOSSES)
def test_masked_loss_is_the_loss_over_the_selected_positions(name, reduction):
    loss_fn = LOSSES[name]
    prediction, target = make_inputs(name)
    loss, d_prediction = loss_fn(prediction, target, MASK, reduction)
    selected_loss, selected_grad = loss_fn(prediction[MASK], target[MASK], reduction=reduction)
    np.testing.assert_allclose(loss, selected_loss, rtol=1e-12)
    np.testing.assert_allclose(d_prediction[MASK], selected_grad, rtol=1e-12)
    assert np.all(d_prediction[~MASK] == 0.0)
    # 0/1 numbers work as a mask, and padding targets are never looked at
    padded = target.copy()
    padded[~MASK] = -100 if name == "cross_entropy" else np.nan
    padded_loss, padded_grad = loss_fn(prediction, padded, MASK.astype(np.int64), reduction)
    assert padded_loss == loss
    np.testing.assert_array_equal(padded_grad, d_prediction)


@pytest.mark.parametrize("name", LOSSES)
def test_float32_in_float32_out(name):
    prediction, target = make_inputs(name, dtype=np.float32)
    loss, d_prediction = LOSSES[name](prediction, target)
    assert isinstance(loss, float)
    assert d_prediction.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=dtype)
    targets = np.array([1, 0, 2])
    loss, d_logits = cross_entropy(logits, targets, reduction="sum")
    # -log softmax: 2e4 for the -1e4 class, 0 for the top class, log 3 among equals
    np.testing.assert_allclose(loss, 2e4 + np.log(3.0), rtol=1e-6)
    expected = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0], [1 / 3, 1 / 3, -2 / 3]])
    np.testing.assert_allclose(d_logits, expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_is_stable_for_huge_logits(dtype):
    logits = np.array([1e4, -1e4, 1e4, -1e4], dtype=dtype)
    targets = np.array([1.0, 0.0, 0.0, 1.0])
    loss, d_logits = binary_cross_entropy(logits, targets, reduction="sum")
    assert loss == 2e4  # right answers cost 0, wrong ones |logit|
    np.testing.assert_array_equal(d_logits, [0.0, 0.0, 1.0, -1.0])


def test_cross_entropy_rejects_bad_input():
    logits, targets = make_inputs("cross_entropy")
    with pytest.raises(
        ValueError, match=re.escape("shape (3, 4), but logits.shape[:-1] of (4, 3, 5)")
    ):
        cross_entropy(logits, targets.T)
    with pytest.raises(ValueError, match="target 5 .* 5 classes"):
        cross_entropy(logits, np.full((T, B), 5))
    with pytest.raises(ValueError, match="target -1 .* 5 classes"):
        cross_entropy(logits, np.full((T, B), -1))
    with pytest.raises(TypeError, match="integer class ids"):
        cross_entropy(logits, targets.astype(np.float64))
    with pytest.raises(TypeError, match="int64"):
        cross_entropy(targets, targets)
    with pytest.raises(ValueError, match="NaN"):
        cross_entropy(np.full_like(logits, np.nan), targets)
    with pytest.raises(ValueError, match="class axis"):
        cross_entropy(np.float64(1.0), np.int64(0))


@pytest.mark.parametrize("name", ["binary_cross_entropy", "mse", "mae"])
def test_elementwise_losses_reject_bad_shapes(name):
    prediction, target = make_inputs(name)
    prediction_name = "logits" if name == "binary_cross_entropy" else "prediction"
    message = f"shape (4, 3), but {prediction_name}.shape is (4, 3, 2)"
    with pytest.raises(ValueError, match=re.escape(message)):
        LOSSES[name](prediction, target[..., 0])


def test_binary_cross_entropy_rejects_targets_outside_zero_one():
    logits = np.zeros(3)
    with pytest.raises(ValueError, match=re.escape("[0, 1]")):
        binary_cross_entropy(logits, np.array([0.0, 1.5, 1.0]))
    with pytest.raises(ValueError, match="NaN or inf at valid positions"):
        binary_cross_entropy(logits, np.array([0.0, np.nan, 1.0]))


@pytest.mark.parametrize("name", LOSSES)
def test_bad_masks_and_reductions_are_rejected(name):
    prediction, target = make_inputs(name)
    loss_fn = LOSSES[name]
    with pytest.raises(ValueError, match="no valid position"):
        loss_fn(prediction, target, np.zeros((T, B), dtype=bool))
    with pytest.raises(ValueError, match=re.escape("mask has shape (3, 4)")):
        loss_fn(prediction, target, MASK.T)
    with pytest.raises(ValueError, match="0/1"):
        loss_fn(prediction, target, MASK * 2)
    with pytest.raises(ValueError, match="reduction='none'"):
        loss_fn(prediction, target, reduction="none")
    with pytest.raises(ValueError, match="no valid position"):
        loss_fn(prediction[:0], target[:0])
