"""Truncated BPTT: full BPTT when one window covers the sequence, finite differences of the
windowed loss (window starts frozen) otherwise, and the language model's own windowed training."""

import numpy as np
import pytest

import rnnkit
from rnnkit.models.language_model import LanguageModel
from rnnkit.nn.linear import Linear
from rnnkit.tasks.language_modeling import LanguageModelTask
from rnnkit.train.losses import cross_entropy
from rnnkit.train.tbptt import truncated_bptt, windows

INPUTS, HIDDEN, CLASSES, BATCH, STEPS = 3, 4, 5, 2, 7
CELLS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU}


def make_model(cell: str):
    """A 2-layer recurrent stack with a linear head, float64, and its training-path closure."""
    layer = CELLS[cell](INPUTS, HIDDEN, num_layers=2, dtype=np.float64, seed=0)
    head = Linear(HIDDEN, CLASSES, dtype=np.float64, seed=1)

    def forward(x, state):
        (h, state_out), rnn_backward = layer.forward(x, state=state)  # h: (k, B, H)
        y, head_backward = head.forward(h)  # (k, B, C)

        def backward(d_y):
            rnn_backward(head_backward(d_y))

        return (y, state_out), backward

    return layer, head, forward


def make_data(cell: str, with_state: bool):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((STEPS, BATCH, INPUTS))  # (T, B, I)
    targets = rng.integers(0, CLASSES, (STEPS, BATCH))  # (T, B)
    shape = (2, BATCH, HIDDEN)  # (layers, B, H)
    state = None
    if with_state:
        parts = [0.5 * rng.standard_normal(shape) for _ in range(2 if cell == "lstm" else 1)]
        state = tuple(parts) if cell == "lstm" else parts[0]
    return x, targets, state


def all_grads(*modules) -> dict:
    return {
        f"{i}.{name}": grad.copy() for i, m in enumerate(modules) for name, grad in m.grads.items()
    }


def state_parts(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


def test_windows_cover_the_steps():
    assert windows(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert windows(6, 3) == [slice(0, 3), slice(3, 6)]
    assert windows(5, 5) == windows(5, 9) == [slice(0, 5)]
    assert windows(0, 4) == []
    for steps, k in ((5, 0), (5, 2.0), (-1, 3), (5, True)):
        with pytest.raises(ValueError, match="int >="):
            windows(steps, k)


def test_mismatched_or_empty_sequences_are_refused():
    _, _, forward = make_model("gru")
    x, targets, _ = make_data("gru", False)
    with pytest.raises(ValueError, match="7 steps but targets have 6"):
        truncated_bptt(forward, cross_entropy, x, targets[:6], 3)
    with pytest.raises(ValueError, match="0 steps"):
        truncated_bptt(forward, cross_entropy, x[:0], targets[:0], 3)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("k", [STEPS, STEPS + 1, 10 * STEPS])
def test_one_window_is_full_bptt(cell, k):
    layer, head, forward = make_model(cell)
    x, targets, state = make_data(cell, with_state=True)
    (y, full_state), backward = forward(x, state)
    full_loss, d_y = cross_entropy(y, targets)
    backward(d_y)
    full_grads = all_grads(layer, head)
    layer.zero_grad()
    head.zero_grad()

    total, final_state = truncated_bptt(forward, cross_entropy, x, targets, k, state)

    assert total == full_loss
    for name, grad in all_grads(layer, head).items():
        assert np.array_equal(grad, full_grads[name]), name
    for part, full_part in zip(state_parts(final_state), state_parts(full_state), strict=True):
        assert np.array_equal(part, full_part)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
def test_truncated_gradients_match_finite_differences_of_frozen_windows(
    cell, with_state, gradient_check
):
    k = 3  # windows of 3, 3 and 1 steps
    layer, head, forward = make_model(cell)
    x, targets, state0 = make_data(cell, with_state)
    total, final_state = truncated_bptt(forward, cross_entropy, x, targets, k, state0)
    analytic = {
        owner: {name: grad.copy() for name, grad in module.grads.items()}
        for owner, module in (("layer", layer), ("head", head))
    }

    # The oracle: each window starts from the state the unperturbed model reaches there, computed
    # on the inference path over the whole prefix, then held fixed while the weights are nudged.
    starts = [0, 3, 6]
    frozen = [state0] + [layer(x[:start], state=state0)[1] for start in starts[1:]]

    def windowed_loss() -> float:
        value = 0.0
        for start, start_state in zip(starts, frozen, strict=True):
            stop = min(start + k, STEPS)
            h, _ = layer(x[start:stop], state=start_state)  # (window, B, H)
            value += cross_entropy(head(h), targets[start:stop])[0]
        return value

    assert total == pytest.approx(windowed_loss(), rel=1e-12)
    full_final = layer(x, state=state0)[1]
    for part, full_part in zip(state_parts(final_state), state_parts(full_final), strict=True):
        np.testing.assert_allclose(part, full_part, rtol=1e-12, atol=1e-14)
    checks = {
        f"{owner}.{name}": (module.params[name], analytic[owner][name])
        for owner, module in (("layer", layer), ("head", head))
        for name in module.params
    }
    gradient_check(windowed_loss, checks)

    # The truncation really cuts something: full BPTT gives another recurrent gradient.
    layer.zero_grad()
    head.zero_grad()
    truncated_bptt(forward, cross_entropy, x, targets, STEPS, state0)
    full = layer.grads["weight_hh_l0"]
    assert np.abs(analytic["layer"]["weight_hh_l0"] - full).max() > 1e-3 * np.abs(full).max()


@pytest.mark.parametrize("cell", CELLS)
def test_language_model_windows_match_truncated_bptt(cell):
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 9, 203)
    task = LanguageModelTask(ids, ids[:60], batch_size=3, seq_len=10)  # strips of 67: 7 windows
    assert task.batches_per_epoch() == 7

    def make():
        return LanguageModel(9, 5, 6, 2, cell, dropout=0.25, dtype=np.float64, seed=4)

    task_model, helper_model = make(), make()
    total, carry = 0.0, None
    for index in range(task.batches_per_epoch()):
        loss, count, carry = task.train_batch(task_model, 0, index, carry)
        total += loss

    helper_total, helper_state = truncated_bptt(
        helper_model.forward, cross_entropy, task.stream.inputs, task.stream.targets, 10
    )

    assert helper_total == total
    for part, task_part in zip(state_parts(helper_state), state_parts(carry), strict=True):
        assert np.array_equal(part, task_part)
    for name, grad in task_model.grads.items():
        assert np.array_equal(helper_model.grads[name], grad), name
    assert np.abs(task_model.grads["rnn.weight_hh_l1"]).max() > 0
