"""Dropout rates changed after construction (PyTorch's ``rnn.dropout = 1``): checked on
assignment, and a rate of 1 zeroes the dropped path (no NaN from 1/(1-p)) in ``Dropout`` and
between the layers of ``Recurrent``; a parameterless module's dtype is None."""

import re

import numpy as np
import pytest

import rnnkit
from rnnkit.nn.dropout import Dropout

STEPS, BATCH, INPUTS, HIDDEN = 5, 3, 4, 6
BAD_RATES = [(1.5, "1.5"), (-0.1, "-0.1"), (float("nan"), "nan"), (True, "True"), ("0.5", "'0.5'")]
LAYERS = {  # the name in the message: the layer's, "GRU" for Recurrent("gru")
    "LSTM": lambda: rnnkit.LSTM(INPUTS, HIDDEN, 2, seed=0),
    "GRU": lambda: rnnkit.GRU(INPUTS, HIDDEN, 2, seed=0),
    "RNN": lambda: rnnkit.RNN(INPUTS, HIDDEN, 2, seed=0),
    "Recurrent": lambda: rnnkit.Recurrent("gru", INPUTS, HIDDEN, 2, seed=0),
}
SHOWN_NAMES = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "RNN", "Recurrent": "GRU"}


def parts(state) -> tuple:
    """A state as a tuple: ``(h,)``, or ``(h, c)`` for an LSTM."""
    return state if isinstance(state, tuple) else (state,)


def random_input(dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((STEPS, BATCH, INPUTS)).astype(dtype)


# ---------------------------------------------------------------- refused assignments


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize(("rate", "shown"), BAD_RATES, ids=[shown for _, shown in BAD_RATES])
def test_a_layer_refuses_a_dropout_outside_0_1_on_assignment(kind, rate, shown):
    layer = LAYERS[kind]()
    layer.dropout = 0.25
    with pytest.raises(ValueError) as refusal:
        layer.dropout = rate
    message = str(refusal.value)
    pattern = rf"{SHOWN_NAMES[kind]}: dropout must be (a number )?in \[0, 1\], got "
    assert re.fullmatch(pattern + re.escape(shown), message), message
    assert layer.dropout == 0.25  # the refused value was not kept


@pytest.mark.parametrize(("rate", "shown"), BAD_RATES, ids=[shown for _, shown in BAD_RATES])
def test_dropout_module_refuses_a_p_outside_0_1_on_assignment(rate, shown):
    dropout = Dropout(0.25)
    with pytest.raises(ValueError) as refusal:
        dropout.p = rate
    pattern = r"Dropout: p must be (a number )?in \[0, 1\], got " + re.escape(shown)
    assert re.fullmatch(pattern, str(refusal.value)), str(refusal.value)
    assert dropout.p == 0.25
    with pytest.raises(ValueError, match=r"Dropout: p must be (a number )?in \[0, 1\]"):
        Dropout(rate)


def test_the_constructors_accept_a_dropout_of_1_as_pytorch_does():
    assert rnnkit.LSTM(INPUTS, HIDDEN, 2, dropout=1).dropout == 1.0
    assert Dropout(1).p == 1.0
    assert rnnkit.LSTM(INPUTS, HIDDEN, 2, dropout=1).config()["dropout"] == 1.0


# ---------------------------------------------------------------- dropout = 1


def test_dropout_of_1_gives_zeros_and_a_zero_gradient():
    x = random_input()
    for locked in (False, True):
        y, backward = Dropout(1.0, locked=locked).forward(x)
        np.testing.assert_array_equal(y, np.zeros_like(x))
        np.testing.assert_array_equal(backward(np.ones_like(x)), np.zeros_like(x))


def test_dropout_p_assigned_1_then_0():
    x = random_input()
    dropout = Dropout(0.5, seed=0)
    dropout.p = 1
    np.testing.assert_array_equal(dropout.forward(x)[0], np.zeros_like(x))
    dropout.p = 0
    np.testing.assert_array_equal(dropout.forward(x)[0], x)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_dropout_assigned_1_matches_pytorch_in_training(torch, kind):
    layer = getattr(rnnkit, kind)(INPUTS, HIDDEN, 2, seed=0)
    torch_layer = getattr(torch.nn, kind)(INPUTS, HIDDEN, 2)
    torch_layer.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = random_input()
    R = np.random.default_rng(2).standard_normal((STEPS, BATCH, HIDDEN)).astype(np.float32)
    layer.dropout = 1
    torch_layer.dropout = 1
    torch_layer.train()
    (output, final), backward = layer.forward(x)
    d_x, _ = backward(R)
    x_torch = torch.from_numpy(x).requires_grad_()
    output_torch, final_torch = torch_layer(x_torch)
    (output_torch * torch.from_numpy(R)).sum().backward()
    assert np.isfinite(output).all()
    tolerance = {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(output, output_torch.detach().numpy(), **tolerance)
    for ours, theirs in zip(parts(final), parts(final_torch), strict=True):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **tolerance)
    # The output sees x only through layer 2's input, which is all zeros: no gradient.
    np.testing.assert_array_equal(d_x, np.zeros_like(x))
    np.testing.assert_array_equal(x_torch.grad.numpy(), np.zeros_like(x))
    for name, parameter in torch_layer.named_parameters():
        np.testing.assert_allclose(layer.grads[name], parameter.grad.numpy(), **tolerance)

    layer.dropout = 0  # back to no dropout: training equals inference equals torch
    torch_layer.dropout = 0
    (output, _), _ = layer.forward(x)
    np.testing.assert_array_equal(output, layer(x)[0])
    np.testing.assert_allclose(output, torch_layer(x_torch)[0].detach().numpy(), **tolerance)


def test_dropout_of_1_gradients_match_finite_differences(gradient_check):
    layer = rnnkit.LSTM(INPUTS, HIDDEN, 2, dropout=1, dtype=np.float64, seed=0)
    x = random_input(np.float64)
    rng = np.random.default_rng(3)
    R_y = rng.standard_normal((STEPS, BATCH, HIDDEN))
    R_s = tuple(rng.standard_normal((2, BATCH, HIDDEN)) for _ in range(2))  # (h, c)

    def loss() -> float:
        (output, (h, c)), _ = layer.forward(x)
        return float(np.sum(output * R_y) + np.sum(h * R_s[0]) + np.sum(c * R_s[1]))

    (output, _), backward = layer.forward(x)
    d_x, _ = backward(R_y)  # the output alone: x reaches it only through the dropped path
    np.testing.assert_array_equal(d_x, np.zeros_like(x))
    layer.zero_grad()
    _, backward = layer.forward(x)
    d_x, _ = backward(R_y, R_s)  # the final state of layer 1 does depend on x
    assert np.abs(d_x).max() > 0
    np.testing.assert_array_equal(layer.grads["weight_ih_l1"], 0.0)  # its input is zero
    checks = {"x": (x, d_x)}
    checks |= {name: (layer.params[name], layer.grads[name].copy()) for name in layer.params}
    gradient_check(loss, checks)


def test_a_layer_with_dropout_1_saves_and_loads(tmp_path):
    layer = rnnkit.GRU(INPUTS, HIDDEN, 2, seed=0)
    layer.dropout = 1
    path = tmp_path / "gru.safetensors"
    rnnkit.save(layer, path)
    loaded = rnnkit.load(path)
    assert loaded.dropout == 1.0
    assert loaded.config() == layer.config()
    x = random_input()
    np.testing.assert_array_equal(loaded.forward(x)[0][0], layer.forward(x)[0][0])


# ---------------------------------------------------------------- dtype without parameters


def test_a_module_without_parameters_has_dtype_none():
    assert Dropout(0.5).dtype is None
    assert rnnkit.GRU(INPUTS, HIDDEN, dtype=np.float64).dtype == np.float64
