"""The CTC acoustic model: frame stacking and its way back, finite-difference gradients
(float64) for every cell, padding that changes no output, and save and load."""

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.io.models import load, save
from rnnkit.models.recogniser import SpeechRecogniser, stack_frames

T, B, MELS, LABELS = 7, 3, 4, 5
LENGTHS = np.array([7, 2, 5])


def frames(seed=0, steps=T):
    return np.random.default_rng(seed).standard_normal((steps, B, MELS))


def test_stack_frames_concatenates_runs_and_zeroes_padding():
    x = frames()
    stacked, backward = stack_frames(x, LENGTHS, 3)
    assert stacked.shape == (3, B, 3 * MELS)  # ceil(7 / 3) output steps
    np.testing.assert_array_equal(stacked[1, 0], x[3:6, 0].reshape(-1))
    np.testing.assert_array_equal(stacked[2, 0], np.concatenate([x[6, 0], np.zeros(2 * MELS)]))
    np.testing.assert_array_equal(stacked[0, 1], np.concatenate([x[0:2, 1].reshape(-1),
                                                                 np.zeros(MELS)]))  # fmt: skip
    d_stacked = np.random.default_rng(1).standard_normal(stacked.shape)
    d_x = backward(d_stacked)
    # the way back is the transpose of the (linear) stacking
    assert np.isclose((d_stacked * stacked).sum(), (d_x * x).sum())
    assert not d_x[5:, 1].any()


@pytest.mark.parametrize(
    ("cell", "stack", "layers"), [("rnn", 3, 2), ("lstm", 2, 1), ("gru", 1, 1)]
)
def test_gradients_match_finite_differences(cell, stack, layers, gradient_check):
    model = SpeechRecogniser(LABELS, input_size=MELS, stack=stack, hidden_size=3,
                             num_layers=layers, cell=cell, dtype="float64", seed=2)  # fmt: skip
    x = frames()
    output_steps = -(-T // stack)
    weights = np.random.default_rng(9).standard_normal((output_steps, B, LABELS))
    model.zero_grad()
    logits, backward = model.forward(x, LENGTHS)
    assert logits.shape == (output_steps, B, LABELS)
    d_x = backward(weights)
    checks = {name: (param, model.grads[name].copy()) for name, param in model.params.items()}
    checks["x"] = (x, d_x)
    gradient_check(lambda: float((model(x, LENGTHS) * weights).sum()), checks)


def test_padding_and_neighbours_change_no_output():
    model = SpeechRecogniser(LABELS, input_size=MELS, stack=2, hidden_size=3, seed=0)
    x = frames().astype(np.float32)
    alone = model(x[:2, 1:2], np.array([2]))
    noisy = x.copy()
    noisy[2:, 1] = 1e3  # padding of sequence 1
    together = model(noisy, LENGTHS)
    np.testing.assert_allclose(together[:1, 1:2], alone, rtol=1e-5, atol=1e-6)
    assert not together[1:, 1].any()
    np.testing.assert_array_equal(model.output_lengths(LENGTHS), [4, 1, 3])


def test_save_and_load_give_the_same_logits(tmp_path):
    model = SpeechRecogniser(LABELS, input_size=MELS, stack=3, hidden_size=3, cell="lstm", seed=4)
    save(model, tmp_path / "asr.safetensors")
    loaded = load(tmp_path / "asr.safetensors")
    x = frames().astype(np.float32)
    np.testing.assert_array_equal(loaded(x, LENGTHS), model(x, LENGTHS))
    assert loaded.config() == model.config()


def test_bad_frames_and_labels_are_refused():
    with pytest.raises(UserError, match="num_labels"):
        SpeechRecogniser(1, input_size=MELS)
    model = SpeechRecogniser(LABELS, input_size=MELS, hidden_size=3)
    with pytest.raises(UserError, match="4 bands"):
        model(np.zeros((5, 2, 3), np.float32))
    with pytest.raises(UserError, match="lengths must lie"):
        model(np.zeros((5, 2, MELS), np.float32), np.array([6, 2]))
