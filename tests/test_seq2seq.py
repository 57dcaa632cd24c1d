"""Seq2Seq: gradients through the whole decoder loop, decoding, saving, learning a tiny task."""

import numpy as np
import pytest

import rnnkit
from conftest import numeric_gradient, relative_error
from rnnkit.models.seq2seq import Seq2Seq, target_mask
from rnnkit.train.losses import cross_entropy

SRC_V, TGT_V, START, END = 7, 6, 0, 1
SOURCE_LENGTHS = np.array([4, 2, 3])
TARGET_LENGTHS = np.array([3, 4, 1])


def tiny(cell="gru", attention="luong", bidirectional=True, num_layers=1, seed=0):
    return Seq2Seq(
        SRC_V, TGT_V, START, END, embedding_dim=3, hidden_size=4, num_layers=num_layers,
        bidirectional=bidirectional, cell=cell, attention=attention, dtype="float64", seed=seed,
    )  # fmt: skip


def batch(seed=0):
    rng = np.random.default_rng(seed)
    source = rng.integers(0, SRC_V, (4, 3))
    target = rng.integers(2, TGT_V, (4, 3))
    target[TARGET_LENGTHS - 1, np.arange(3)] = END
    return source, target


@pytest.mark.parametrize(
    "cell, attention, bidirectional, num_layers",
    [
        ("gru", "luong", True, 1),
        ("lstm", "bahdanau", True, 1),
        ("rnn", "none", False, 2),
        ("lstm", "luong", False, 1),
        ("gru", "bahdanau", False, 2),
    ],
)
def test_gradients_match_finite_differences(cell, attention, bidirectional, num_layers):
    """eps = 1e-4: with tiny sizes the attention is nearly uniform, its parameters' gradients
    are ~1e-4 and eps = 1e-6 drowns them in rounding noise (the error falls as eps grows)."""
    model = tiny(cell, attention, bidirectional, num_layers)
    source, target = batch()
    mask = target_mask(TARGET_LENGTHS, 4)

    def loss():
        return cross_entropy(model(source, SOURCE_LENGTHS, target), target, mask, "sum")[0]

    logits, backward = model.forward(source, SOURCE_LENGTHS, target)
    _, d_logits = cross_entropy(logits, target, mask, "sum")
    backward(d_logits)
    errors = {
        name: relative_error(model.grads[name], numeric_gradient(loss, value, eps=1e-4))
        for name, value in model.params.items()
    }
    assert max(errors.values()) <= 1e-6, errors


def test_padding_does_not_change_the_loss():
    model = tiny()
    source, target = batch()
    mask = target_mask(TARGET_LENGTHS, 4)
    loss = cross_entropy(model(source, SOURCE_LENGTHS, target), target, mask)[0]
    source[3, 1] = 5 - source[3, 1]  # past source length 2
    target[3, 2] = 2 + (target[3, 2] - 1) % 4  # past target length 1
    assert cross_entropy(model(source, SOURCE_LENGTHS, target), target, mask)[0] == loss


def test_teacher_forcing_ratio_draws_from_the_seeded_generator():
    source, target = batch()
    first = tiny(seed=5).forward(source, SOURCE_LENGTHS, target, teacher_forcing=0.3)[0]
    again = tiny(seed=5).forward(source, SOURCE_LENGTHS, target, teacher_forcing=0.3)[0]
    forced = tiny(seed=5).forward(source, SOURCE_LENGTHS, target, teacher_forcing=1.0)[0]
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[0], forced[0])  # step 0 always reads the start token


@pytest.mark.parametrize("attention", ["luong", "none"])
def test_beam_of_one_is_greedy_and_wider_beams_score_no_worse(attention):
    model = tiny(attention=attention, seed=2)
    source, _ = batch(1)
    greedy, weights = model.greedy(source, SOURCE_LENGTHS, max_length=6)
    for b in range(3):
        one, rows = model.beam_search(source[: SOURCE_LENGTHS[b], b], beam=1, max_length=6)
        assert one == greedy[b]
        if attention == "none":
            assert rows is None and weights[b] is None
        else:
            np.testing.assert_allclose(rows, weights[b])
            assert rows.shape[1] == SOURCE_LENGTHS[b]

    def log_probability(ids, src):
        target = np.array(ids + [END])[:, None]
        logits = model(src[:, None], None, target)
        return -cross_entropy(logits, target, reduction="sum")[0]

    src = source[:, 0]
    one, _ = model.beam_search(src, beam=1, max_length=6, alpha=0.0)
    five, _ = model.beam_search(src, beam=5, max_length=6, alpha=0.0)
    if len(five) < 6 and len(one) < 6:  # both finished: the wider search finds a likelier output
        assert log_probability(five, src) >= log_probability(one, src) - 1e-9


def test_save_and_load_round_trip(tmp_path):
    model = tiny(cell="lstm", attention="bahdanau")
    source, target = batch()
    rnnkit.save(model, tmp_path / "m.safetensors")
    loaded = rnnkit.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(
        loaded(source, SOURCE_LENGTHS, target), model(source, SOURCE_LENGTHS, target)
    )


def test_bad_input():
    with pytest.raises(ValueError, match="attention"):
        Seq2Seq(5, 5, 0, 1, attention="cosine")
    with pytest.raises(ValueError, match="end_id"):
        Seq2Seq(5, 5, 0, 9)
    model = tiny()
    source, target = batch()
    with pytest.raises(ValueError, match="target must be ids"):
        model(source, SOURCE_LENGTHS, target[:, :2])
    with pytest.raises(ValueError, match="source must be ids"):
        model(source[:0], None, target)


def test_learns_to_reverse_sequences():
    """Reverse 3-5 symbols: teacher-forced training reaches exact greedy outputs."""
    from rnnkit.train.clip import clip_grad_norm
    from rnnkit.train.optim import Adam

    rng = np.random.default_rng(0)
    model = Seq2Seq(6, 6, 0, 1, embedding_dim=8, hidden_size=24, cell="gru", seed=0)
    optimizer = Adam(model, lr=1e-2)
    for _ in range(250):
        lengths = rng.integers(3, 6, 16)
        source = rng.integers(2, 6, (5, 16))
        target = np.full((6, 16), END)
        for b, n in enumerate(lengths):
            target[:n, b] = source[:n, b][::-1]
        optimizer.zero_grad()
        logits, backward = model.forward(source, lengths, target)
        _, d_logits = cross_entropy(logits, target, target_mask(lengths + 1, 6))
        backward(d_logits)
        clip_grad_norm(model, 5.0)
        optimizer.step()
    source = rng.integers(2, 6, (5, 20))
    lengths = rng.integers(3, 6, 20)
    outputs, _ = model.greedy(source, lengths, max_length=8)
    right = sum(
        out == source[:n, b][::-1].tolist()
        for b, (out, n) in enumerate(zip(outputs, lengths, strict=True))
    )
    assert right >= 16
