"""Cells stepped by hand over a sequence reproduce the 1-layer unidirectional layers (float64)."""

import numpy as np
import pytest

import rnnkit

STEPS, BATCH, INPUTS, HIDDEN = 6, 3, 4, 5
CLOSE = {"rtol": 1e-12, "atol": 1e-14}

PAIRS = {
    "rnn_tanh": (rnnkit.RNN, rnnkit.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnnkit.RNN, rnnkit.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (rnnkit.LSTM, rnnkit.LSTMCell, {}),
    "gru": (rnnkit.GRU, rnnkit.GRUCell, {}),
}


def parts(state) -> tuple:
    """A state as a tuple of arrays: ``(h,)``, or ``(h, c)`` for an LSTM."""
    return state if isinstance(state, tuple) else (state,)


def public(state_parts: tuple):
    """The inverse of ``parts``: ``h`` alone, or the tuple ``(h, c)``."""
    return state_parts[0] if len(state_parts) == 1 else tuple(state_parts)


@pytest.mark.parametrize("kind", PAIRS)
def test_cell_steps_match_layer(kind):
    layer_class, cell_class, options = PAIRS[kind]
    layer = layer_class(INPUTS, HIDDEN, dtype=np.float64, seed=0, **options)
    cell = cell_class(
        INPUTS, HIDDEN, dtype=np.float64, seed=1, **options
    )  # other weights until loaded
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    rng = np.random.default_rng(2)
    x = rng.standard_normal((STEPS, BATCH, INPUTS))
    state0 = tuple(rng.standard_normal((BATCH, HIDDEN)) for _ in range(2 if kind == "lstm" else 1))

    output, final = layer(x, state=public(tuple(part[None] for part in state0)))

    state = public(state0)
    for t in range(STEPS):
        state = cell(x[t], state)
        np.testing.assert_allclose(parts(state)[0], output[t], **CLOSE, err_msg=f"step {t}")
    for got, want in zip(parts(state), parts(final), strict=True):
        np.testing.assert_allclose(got, want[0], **CLOSE)
