"""Backpropagation through time against central finite differences, in float64.

Loss = sum(output * R_y) + sum(final_state * R_s) with fixed random R, so gradients flow in
through both the output and the final state (R_s is passed to backward as d_state).
"""

import numpy as np
import pytest

import rnnkit
from rnnkit import cells

INPUTS, HIDDEN, BATCH, STEPS = 3, 4, 3, 5
RAGGED = np.array([5, 2, 4])  # unsorted, one full-length sequence
# The finite differences' step. A zero state gives a layer-normalising cell a zero-variance input
# to LN, whose curvature there is of order LN's epsilon^-3/2 (about 3e7): central differences'
# truncation error (step^2 times that) needs a step of 1e-7, not 1e-6, to stay under 1e-6.
STEP = 1e-7

CASES = {  # id -> (registered cell, its options): every cell, and each option that matters
    "rnn_tanh": ("rnn", {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", {"nonlinearity": "relu"}),
    **{name: (name, {}) for name in cells.names() if name != "rnn"},
    "lstm_proj": ("lstm", {"proj_size": 3}),  # h 3 wide, c HIDDEN wide
}


def parts(state) -> tuple:
    """A state as a tuple of arrays: ``(h,)``, or ``(h, c)`` for an LSTM."""
    return state if isinstance(state, tuple) else (state,)


def public(state_parts: tuple):
    """The inverse of ``parts``: ``h`` alone, or the tuple ``(h, c)``."""
    return state_parts[0] if len(state_parts) == 1 else tuple(state_parts)


def make_layer(kind: str, **options):
    cell, cell_options = CASES[kind]
    return rnnkit.Recurrent(
        cell, INPUTS, HIDDEN, dtype=np.float64, seed=0, **cell_options, **options
    )


def make_cell(kind: str):
    cell, cell_options = CASES[kind]
    return rnnkit.RecurrentCell(cell, INPUTS, HIDDEN, dtype=np.float64, seed=0, **cell_options)


def random_state(module, leading: tuple, rng: np.random.Generator) -> tuple:
    """One random array per part of ``module``'s state, each ``leading`` + (its width,)."""
    return tuple(0.5 * rng.standard_normal((*leading, size)) for size in module.state_sizes)


def check_layer_gradients(layer, kind, x, lengths, with_state, gradient_check):
    """d_x, each part of d_state0 and every parameter gradient against finite differences.

    Without a state the layer starts from zeros; its d_state0 is checked through explicit zeros.
    """
    rng = np.random.default_rng(1)
    stack = (layer.num_layers * (2 if layer.bidirectional else 1), BATCH)
    state0 = random_state(layer, stack, rng)
    if not with_state:
        state0 = tuple(np.zeros_like(part) for part in state0)
    (output, _), backward = layer.forward(x, lengths, public(state0) if with_state else None)
    R_y = rng.standard_normal(output.shape)
    R_s = random_state(layer, stack, rng)
    layer.zero_grad()
    d_x, d_state0 = backward(R_y, public(R_s))

    def loss():
        output, final = layer(x, lengths, public(state0))
        state_term = sum(np.sum(s * r) for s, r in zip(parts(final), R_s, strict=True))
        return np.sum(output * R_y) + state_term

    checks = {"x": (x, d_x)}
    for i, (part, d_part) in enumerate(zip(state0, parts(d_state0), strict=True)):
        checks[f"state0[{i}]"] = (part, d_part)
    for name, param in layer.params.items():
        checks[name] = (param, layer.grads[name])
    gradient_check(loss, checks, eps=STEP)


@pytest.mark.parametrize("with_state", [True, False], ids=["state", "no_state"])
@pytest.mark.parametrize("lengths", [None, RAGGED], ids=["equal", "ragged"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["1_layer", "2_layers"])
@pytest.mark.parametrize("kind", CASES)
def test_layer_gradients_match_finite_differences(
    kind, num_layers, bidirectional, lengths, with_state, gradient_check
):
    layer = make_layer(kind, num_layers=num_layers, bidirectional=bidirectional)
    x = np.random.default_rng(2).standard_normal((STEPS, BATCH, INPUTS))
    check_layer_gradients(layer, kind, x, lengths, with_state, gradient_check)


@pytest.mark.parametrize("kind", CASES)
def test_summed_directions_gradients_match_finite_differences(kind, gradient_check):
    layer = make_layer(kind, num_layers=2, bidirectional=True, merge="sum")
    x = np.random.default_rng(2).standard_normal((STEPS, BATCH, INPUTS))
    check_layer_gradients(layer, kind, x, RAGGED, True, gradient_check)


@pytest.mark.parametrize("kind", CASES)
def test_batch_first_gradients_match_finite_differences(kind, gradient_check):
    layer = make_layer(kind, bidirectional=True, batch_first=True)
    x = np.random.default_rng(2).standard_normal((BATCH, STEPS, INPUTS))
    check_layer_gradients(layer, kind, x, RAGGED, True, gradient_check)


@pytest.mark.parametrize("kind", CASES)
def test_biasless_gradients_match_finite_differences(kind, gradient_check):
    layer = make_layer(kind, num_layers=2, bidirectional=True, bias=False)
    assert not any(name.startswith("bias") for name in layer.params)
    x = np.random.default_rng(2).standard_normal((STEPS, BATCH, INPUTS))
    check_layer_gradients(layer, kind, x, RAGGED, True, gradient_check)


@pytest.mark.parametrize("with_state", [True, False], ids=["state", "no_state"])
@pytest.mark.parametrize("kind", CASES)
def test_cell_gradients_match_finite_differences(kind, with_state, gradient_check):
    cell = make_cell(kind)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((BATCH, INPUTS))
    state0 = random_state(cell, (BATCH,), rng)
    if not with_state:
        state0 = tuple(np.zeros_like(part) for part in state0)
    _, backward = cell.forward(x, public(state0) if with_state else None)
    R = random_state(cell, (BATCH,), rng)
    cell.zero_grad()
    d_x, d_state0 = backward(public(R))

    def loss():
        return sum(np.sum(s * r) for s, r in zip(parts(cell(x, public(state0))), R, strict=True))

    checks = {"x": (x, d_x)}
    for i, (part, d_part) in enumerate(zip(state0, parts(d_state0), strict=True)):
        checks[f"state0[{i}]"] = (part, d_part)
    for name, param in cell.params.items():
        checks[name] = (param, cell.grads[name])
    gradient_check(loss, checks, eps=STEP)


@pytest.mark.parametrize("kind", CASES)
def test_ragged_batch_matches_each_sequence_run_alone(kind):
    layer = make_layer(kind, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((STEPS, BATCH, INPUTS))  # noise in the padding: it must be ignored
    state = random_state(layer, (4, BATCH), rng)
    output, final = layer(x, RAGGED, public(state))
    for b, length in enumerate(RAGGED):
        assert np.all(output[length:, b] == 0.0)
        alone_state = public(tuple(part[:, b : b + 1] for part in state))
        alone_output, alone_final = layer(x[:length, b : b + 1], state=alone_state)
        np.testing.assert_allclose(output[:length, b : b + 1], alone_output, rtol=1e-12, atol=1e-12)
        for got, want in zip(parts(final), parts(alone_final), strict=True):
            np.testing.assert_allclose(got[:, b : b + 1], want, rtol=1e-12, atol=1e-12)
