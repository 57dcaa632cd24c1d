"""ONNX export of the SequenceClassifier: ONNX Runtime's logits and probabilities equal rnnkit's
inference for every pooling mode and cell, uni- and bidirectional, on ragged batches; a trained
classifier's file carries its classes and scaling, and takes raw features."""

import itertools
import json

import numpy as np
import pytest

import rnnkit
from cli_helpers import classifier_run, run_cli
from rnnkit.data.texts import encode_texts, pad_ids
from rnnkit.data.vocabulary import Vocabulary
from rnnkit.errors import UserError
from rnnkit.io.models import load_with_extra
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.regressor import SequenceRegressor
from test_classify import review_rows, write_csv

ort = pytest.importorskip("onnxruntime", reason="the ONNX tests need onnxruntime (rnnkit[onnx])")
onnx = pytest.importorskip("onnx", reason="the ONNX tests need onnx (rnnkit[onnx])")

STEPS, BATCH, CLASSES = 6, 4, 3
LENGTHS = np.array([6, 2, 4, 1])  # ragged, the longest first and not
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def session(tmp_path, model, **options):
    """An ONNX Runtime session of ``model`` exported, and the file's metadata properties."""
    path = rnnkit.export_onnx(model, tmp_path / "model.onnx", **options)
    exported = onnx.load(path)
    onnx.checker.check_model(exported, full_check=True)
    properties = {prop.key: prop.value for prop in exported.metadata_props}
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), properties


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


GRID = list(itertools.product(["last", "mean", "max"], ["rnn", "lstm", "gru"], [1, 2],
                              [False, True]))  # fmt: skip


@pytest.mark.parametrize(("pooling", "cell", "layers", "bidirectional"), GRID)
def test_text_classifier_equals_rnnkit(tmp_path, pooling, cell, layers, bidirectional):
    model = SequenceClassifier(
        CLASSES, vocab_size=11, embedding_dim=5, hidden_size=4, num_layers=layers, cell=cell,
        bidirectional=bidirectional, pooling=pooling, seed=7,
    )  # fmt: skip
    tokens = np.random.default_rng(1).integers(0, 11, (STEPS, BATCH))
    tokens[np.arange(STEPS)[:, None] >= LENGTHS] = 0  # padding
    runtime, properties = session(tmp_path, model)
    logits, probabilities = runtime.run(
        None, {"tokens": tokens, "lengths": LENGTHS.astype(np.int32)}
    )
    expected = model(tokens, LENGTHS)
    np.testing.assert_allclose(logits, expected, **TOLERANCE)
    np.testing.assert_allclose(probabilities, softmax(expected), **TOLERANCE)
    assert properties["rnnkit_class"] == "SequenceClassifier"
    assert json.loads(properties["classes"]) == ["0", "1", "2"]


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("cell", ["lstm", "layer_norm_gru", "layer_norm_lstm", "gru_reset_before"])
def test_numeric_classifier_ignores_padding(tmp_path, pooling, cell):
    """Padding holding the largest values changes nothing: padded steps never count."""
    model = SequenceClassifier(
        CLASSES, input_size=2, hidden_size=4, cell=cell, bidirectional=True, pooling=pooling,
        seed=2,
    )  # fmt: skip
    features = np.random.default_rng(3).standard_normal((STEPS, BATCH, 2)).astype(np.float32)
    features[np.arange(STEPS)[:, None] >= LENGTHS] = 50.0
    runtime, properties = session(tmp_path, model)
    (logits, _) = runtime.run(None, {"features": features, "lengths": LENGTHS.astype(np.int32)})
    np.testing.assert_allclose(logits, model(features, LENGTHS), **TOLERANCE)
    assert properties["scaling"].startswith("none")


def test_trained_classifier_takes_raw_features(tmp_path, capsys):
    """`rnnkit train classify --npz`: the graph standardises raw features inside, and the file
    names the classes and the scaling."""
    _, run = classifier_run(tmp_path, capsys)
    model, extra = load_with_extra(run / "model.safetensors")
    runtime, properties = session(tmp_path, model, extra=extra)
    data = np.load(tmp_path / "seq.npz")
    raw = data["X"][:8].transpose(1, 0, 2)  # (T, B, F) time first
    lengths = data["lengths"][:8]
    scaling = extra["preprocessing"]["scaling"]
    valid = np.arange(raw.shape[0])[:, None, None] < lengths[None, :, None]
    scaled = np.where(valid, (raw - scaling["mean"]) / scaling["std"], 0.0).astype(np.float32)
    logits, _ = runtime.run(
        None, {"features": raw.astype(np.float32), "lengths": lengths.astype(np.int32)}
    )
    np.testing.assert_allclose(logits, model(scaled, lengths), **TOLERANCE)
    assert json.loads(properties["classes"]) == extra["classes"]
    assert json.loads(properties["scaling"])["mean"] == scaling["mean"]


def test_trained_text_classifier_carries_its_vocabulary(tmp_path, capsys):
    """`rnnkit train classify --csv`: the file holds the vocabulary (index = id), its tokenizer
    level and the classes; ids encoded with them give rnnkit's logits."""
    data = write_csv(tmp_path / "reviews.csv", review_rows(count=40))
    out = tmp_path / "run"
    status, _, err = run_cli(
        capsys, "train", "classify", "--csv", data, "--text-col", "review", "--label-col",
        "sentiment", "--epochs", 1, "--hidden", 4, "--embedding", 4, "--min-count", 1,
        "--out", out,
    )  # fmt: skip
    assert status == 0, err
    model, extra = load_with_extra(out / "model.safetensors")
    runtime, properties = session(tmp_path, model, extra=extra)
    vocabulary = Vocabulary(json.loads(properties["vocabulary"]), properties["tokenizer_level"])
    assert vocabulary.to_json() == extra["preprocessing"]["vocabulary"]
    assert json.loads(properties["classes"]) == ["bad", "good"]
    texts = [text for text, _ in review_rows(count=5, seed=9)]
    tokens, lengths = pad_ids(encode_texts(texts, vocabulary, 400))
    logits, _ = runtime.run(None, {"tokens": tokens, "lengths": lengths.astype(np.int32)})
    np.testing.assert_allclose(logits, model(tokens, lengths), **TOLERANCE)


def test_extra_of_another_task_is_refused(tmp_path):
    model = SequenceClassifier(CLASSES, input_size=2, hidden_size=4)
    with pytest.raises(UserError, match="task"):
        rnnkit.export_onnx(model, tmp_path / "classifier.onnx", extra={"task": "forecast"})


@pytest.mark.parametrize(("cell", "bidirectional"), [("gru", True), ("lstm", False)])
@pytest.mark.parametrize("text", [False, True])
def test_regressor_equals_rnnkit(tmp_path, cell, bidirectional, text):
    """An output at every valid step, zero past each length."""
    inputs = {"vocab_size": 9, "embedding_dim": 3} if text else {"input_size": 2}
    model = SequenceRegressor(
        2, hidden_size=4, num_layers=2, cell=cell, bidirectional=bidirectional, seed=4, **inputs
    )
    rng = np.random.default_rng(5)
    x = rng.integers(0, 9, (STEPS, BATCH)) if text else rng.standard_normal((STEPS, BATCH, 2))
    x = x if text else x.astype(np.float32)
    runtime, properties = session(tmp_path, model)
    (outputs,) = runtime.run(
        None, {"tokens" if text else "features": x, "lengths": LENGTHS.astype(np.int32)}
    )
    np.testing.assert_allclose(outputs, model(x, LENGTHS), **TOLERANCE)
    assert properties["rnnkit_class"] == "SequenceRegressor"


def test_the_command_exports_a_saved_regressor(tmp_path, capsys):
    model = SequenceRegressor(2, input_size=3, hidden_size=4, seed=1)
    rnnkit.save(model, tmp_path / "regressor.safetensors")
    status, out, err = run_cli(
        capsys, "export", tmp_path / "regressor.safetensors", "--onnx", tmp_path / "r.onnx"
    )
    assert status == 0, err
    assert "outputs (time, batch, 2)" in out
