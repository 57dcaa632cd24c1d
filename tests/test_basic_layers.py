"""Linear, Embedding, Dropout and Sequential: finite differences in float64, PyTorch parity,
dropout statistics, and rejection of bad input."""

import re

import numpy as np
import pytest

from rnnkit.nn.dropout import Dropout
from rnnkit.nn.embedding import Embedding
from rnnkit.nn.linear import Linear
from rnnkit.nn.recurrent import GRU, LSTM
from rnnkit.nn.sequential import Sequential

RAGGED = np.array([5, 2, 4])  # T = 5, B = 3, unsorted


# Linear


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4)], ids=["1d", "2d", "3d"])
def test_linear_gradients_match_finite_differences(shape, bias, gradient_check):
    layer = Linear(4, 3, bias=bias, dtype=np.float64, seed=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    y, backward = layer.forward(x)
    assert y.shape == (*shape[:-1], 3)
    R = rng.standard_normal(y.shape)
    dx = backward(R)
    checks = {"x": (x, dx)}
    checks.update({name: (param, layer.grads[name]) for name, param in layer.params.items()})
    gradient_check(lambda: np.sum(layer(x) * R), checks)


def test_linear_matches_pytorch(torch):
    layer = Linear(4, 3, seed=0)
    reference = torch.nn.Linear(4, 3)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(layer.params["weight"]))
        reference.bias.copy_(torch.from_numpy(layer.params["bias"]))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2, 4)).astype(np.float32)
    dy = rng.standard_normal((5, 2, 3)).astype(np.float32)
    y, backward = layer.forward(x)
    dx = backward(dy)
    x_torch = torch.from_numpy(x).requires_grad_()
    y_torch = reference(x_torch)
    y_torch.backward(torch.from_numpy(dy))
    close = {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(y, y_torch.detach().numpy(), **close)
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), **close)
    np.testing.assert_allclose(layer.grads["weight"], reference.weight.grad.numpy(), **close)
    np.testing.assert_allclose(layer.grads["bias"], reference.bias.grad.numpy(), **close)


def test_linear_init_is_pytorch_uniform():
    layer = Linear(100, 200, seed=0)
    bound = 1.0 / np.sqrt(100)
    for name in ("weight", "bias"):
        values = layer.params[name]
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.9 * bound  # spread over the whole interval
    assert layer.params["weight"].shape == (200, 100) and layer.params["bias"].shape == (200,)
    np.testing.assert_array_equal(layer.params["weight"], Linear(100, 200, seed=0).params["weight"])


def test_linear_gradients_accumulate_over_interleaved_calls():
    layer = Linear(4, 3, dtype=np.float64, seed=0)
    rng = np.random.default_rng(1)
    x1, x2 = rng.standard_normal((2, 4)), rng.standard_normal((5, 4))
    dy1, dy2 = rng.standard_normal((2, 3)), rng.standard_normal((5, 3))
    _, backward1 = layer.forward(x1)
    _, backward2 = layer.forward(x2)  # a second forward before the first backward
    backward2(dy2)
    dx1 = backward1(dy1)
    np.testing.assert_allclose(dx1, dy1 @ layer.params["weight"])
    np.testing.assert_allclose(layer.grads["weight"], dy1.T @ x1 + dy2.T @ x2)
    np.testing.assert_allclose(layer.grads["bias"], dy1.sum(0) + dy2.sum(0))


def test_linear_config_rebuilds_the_layer():
    layer = Linear(4, 3, bias=False, dtype=np.float64)
    rebuilt = Linear(**layer.config())
    assert layer.config() == {
        "in_features": 4,
        "out_features": 3,
        "bias": False,
        "dtype": "float64",
    }
    assert {k: v.shape for k, v in rebuilt.params.items()} == {"weight": (3, 4)}
    assert rebuilt.dtype == np.float64


def test_linear_rejects_bad_input():
    layer = Linear(4, 3)
    with pytest.raises(ValueError, match=re.escape("(..., 4), got (2, 5)")):
        layer(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="got \\(\\)"):
        layer(np.float32(1.0))
    with pytest.raises(TypeError, match="int64"):
        layer(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="NaN"):
        layer(np.full((2, 4), np.nan, dtype=np.float32))
    _, backward = layer.forward(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=re.escape("(2, 3), got (3, 2)")):
        backward(np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="out_features"):
        Linear(4, 0)
    with pytest.raises(TypeError, match="in_features"):
        Linear(4.0, 3)
    with pytest.raises(ValueError, match="float16"):
        Linear(4, 3, dtype=np.float16)


# Embedding


def test_embedding_gradient_matches_finite_differences(gradient_check):
    layer = Embedding(6, 3, dtype=np.float64, seed=0)
    ids = np.array([[0, 2, 2], [5, 0, 2]])  # repeated ids must add up
    rng = np.random.default_rng(1)
    vectors, backward = layer.forward(ids)
    assert vectors.shape == (2, 3, 3)
    R = rng.standard_normal(vectors.shape)
    assert backward(R) is None
    weight = layer.params["weight"]
    gradient_check(lambda: np.sum(layer(ids) * R), {"weight": (weight, layer.grads["weight"])})
    assert np.all(layer.grads["weight"][[1, 3, 4]] == 0.0)  # ids never looked up


def test_embedding_matches_pytorch(torch):
    layer = Embedding(10, 4, seed=0)
    reference = torch.nn.Embedding(10, 4)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(layer.params["weight"]))
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 10, size=(6, 3))
    dy = rng.standard_normal((6, 3, 4)).astype(np.float32)
    vectors, backward = layer.forward(ids)
    backward(dy)
    vectors_torch = reference(torch.from_numpy(ids))
    vectors_torch.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(vectors, vectors_torch.detach().numpy())
    np.testing.assert_allclose(
        layer.grads["weight"], reference.weight.grad.numpy(), rtol=1e-5, atol=1e-6
    )


def test_embedding_init_is_standard_normal():
    weight = Embedding(1000, 20, seed=0).params["weight"]
    assert weight.dtype == np.float32 and weight.shape == (1000, 20)
    assert abs(weight.mean()) < 0.03 and abs(weight.std() - 1.0) < 0.03


def test_embedding_config_rebuilds_the_layer():
    layer = Embedding(10, 4, dtype=np.float64)
    assert layer.config() == {"num_embeddings": 10, "embedding_dim": 4, "dtype": "float64"}
    assert Embedding(**layer.config()).params["weight"].shape == (10, 4)


def test_embedding_rejects_bad_ids():
    layer = Embedding(10, 4)
    with pytest.raises(ValueError, match="id 12 .* 10 embeddings"):
        layer(np.array([1, 12, 3]))
    with pytest.raises(ValueError, match="id -1 .* 10 embeddings"):
        layer.forward(np.array([[-1, 3]]))
    with pytest.raises(TypeError, match="float64"):
        layer(np.array([1.0, 2.0]))
    _, backward = layer.forward(np.array([1, 2]))
    with pytest.raises(ValueError, match=re.escape("(2, 4), got (2, 3)")):
        backward(np.zeros((2, 3), dtype=np.float32))


# Dropout


def test_dropout_preserves_the_mean_and_drops_a_fraction_p():
    dropout = Dropout(0.5, seed=0)
    x = np.ones((1000, 1000), dtype=np.float32)
    y, _ = dropout.forward(x)
    assert y.dtype == np.float32
    assert set(np.unique(y)) == {0.0, 2.0}
    # each unit is 0 or 2 with probability 1/2: the mean of 1e6 units has std 1e-3
    assert abs(y.mean() - 1.0) < 0.01
    assert abs(np.mean(y == 0.0) - 0.5) < 0.01


def test_dropout_backward_zeroes_dropped_units(gradient_check):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 5))
    R = rng.standard_normal(x.shape)
    y, backward = Dropout(0.3, seed=0).forward(x)
    dx = backward(R)
    dropped = y == 0.0
    assert dropped.any() and not dropped.all()
    assert np.all(dx[dropped] == 0.0)
    np.testing.assert_allclose(dx[~dropped], R[~dropped] / 0.7)
    # the same seed gives the same mask, so the forward is a fixed linear map of x
    gradient_check(lambda: np.sum(Dropout(0.3, seed=0).forward(x)[0] * R), {"x": (x, dx)})


def test_locked_dropout_shares_one_mask_across_time():
    x = np.ones((6, 8, 10))
    dropout = Dropout(0.5, locked=True, seed=0)
    y, backward = dropout.forward(x)
    assert np.all(y == y[0])  # every step drops the same units
    assert (y[0] == 0.0).any() and (y[0] == 2.0).any()
    dy = np.random.default_rng(1).standard_normal(x.shape)
    np.testing.assert_array_equal(backward(dy), dy * y)  # y is the mask itself here
    y2, _ = dropout.forward(x)
    assert not np.array_equal(y, y2)  # a new mask per forward


def test_dropout_inference_is_the_identity():
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert Dropout(0.5)(x) is x
    assert Dropout(0.5, locked=True)(x) is x


def test_dropout_with_p_zero_keeps_everything():
    x = np.random.default_rng(0).standard_normal((3, 4))
    y, backward = Dropout(0.0).forward(x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(backward(x), x)
    assert Dropout(0.0).params == {}


def test_dropout_config_and_bad_input():
    assert Dropout(0.25, locked=True).config() == {"p": 0.25, "locked": True}
    for p in (-0.1, 1.5):  # 1 is allowed: every unit dropped
        with pytest.raises(ValueError, match="p must be in"):
            Dropout(p)
    with pytest.raises(ValueError, match=re.escape("(T, B, F), got shape (3, 4)")):
        Dropout(0.5, locked=True).forward(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="int64"):
        Dropout(0.5).forward(np.zeros((3, 4), dtype=np.int64))


# Sequential


def language_model() -> Sequential:
    return Sequential(
        Embedding(7, 3, dtype=np.float64, seed=0),
        LSTM(3, 4, dtype=np.float64, seed=1),
        Linear(4, 5, dtype=np.float64, seed=2),
    )


def test_sequential_names_parameters_like_pytorch():
    model = language_model()
    assert list(model.params) == [
        "0.weight",
        "1.weight_ih_l0",
        "1.weight_hh_l0",
        "1.bias_ih_l0",
        "1.bias_hh_l0",
        "2.weight",
        "2.bias",
    ]
    assert model.params["0.weight"] is model[0].params["weight"]
    assert model.grads["2.bias"] is model[2].grads["bias"]
    assert len(model) == 3


def test_sequential_gradients_match_finite_differences_with_ragged_lengths(gradient_check):
    model = language_model()
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 7, size=(5, 3))  # (T, B)
    logits, backward = model.forward(ids, RAGGED)
    np.testing.assert_allclose(logits, model(ids, RAGGED), rtol=1e-12, atol=1e-12)
    R = rng.standard_normal(logits.shape)
    model.zero_grad()
    assert backward(R) is None  # the chain starts with an Embedding
    checks = {name: (param, model.grads[name]) for name, param in model.params.items()}
    gradient_check(lambda: np.sum(model(ids, RAGGED) * R), checks)


def test_sequential_input_gradient_through_a_bidirectional_layer(gradient_check):
    model = Sequential(
        Linear(2, 3, dtype=np.float64, seed=0),
        GRU(3, 4, bidirectional=True, dtype=np.float64, seed=1),
        Linear(8, 2, dtype=np.float64, seed=2),
    )
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3, 2))
    y, backward = model.forward(x, RAGGED)
    R = rng.standard_normal(y.shape)
    dx = backward(R)
    checks = {"x": (x, dx)}
    checks.update({name: (param, model.grads[name]) for name, param in model.params.items()})
    gradient_check(lambda: np.sum(model(x, RAGGED) * R), checks)


def test_sequential_equals_the_modules_applied_by_hand():
    model = language_model()
    ids = np.random.default_rng(3).integers(0, 7, size=(5, 3))
    output, _ = model[1](model[0](ids), RAGGED)
    np.testing.assert_array_equal(model(ids, RAGGED), model[2](output))


def test_sequential_with_dropout_differs_in_training_only():
    model = Sequential(
        Embedding(7, 3, seed=0), Dropout(0.5, seed=1), LSTM(3, 4, seed=2), Linear(4, 5, seed=3)
    )
    plain = Sequential(model[0], model[2], model[3])  # the same arrays, no dropout
    ids = np.random.default_rng(3).integers(0, 7, size=(5, 3))
    np.testing.assert_array_equal(model(ids), plain(ids))
    logits, backward = model.forward(ids)
    assert not np.allclose(logits, plain(ids))
    assert backward(np.ones_like(logits)) is None
    assert np.abs(model.grads["0.weight"]).max() > 0.0
    # checkpoints save these generators so that a resumed run draws the same masks
    assert model.generators() == {"1.rng": model[1].rng, "2.rng": model[2].rng}


def test_sequential_rejects_bad_modules():
    with pytest.raises(ValueError, match="at least one module"):
        Sequential()
    with pytest.raises(TypeError, match="argument 1 is a str"):
        Sequential(Linear(3, 3), "relu")
    with pytest.raises(ValueError, match="Embedding at position 1"):
        Sequential(Linear(3, 3), Embedding(5, 3))
    with pytest.raises(NotImplementedError, match="Sequential has no config"):
        language_model().config()
