"""ONNX export of the SpeechRecogniser: ONNX Runtime's logits and output lengths equal rnnkit's
for every cell and stack, uni- and bidirectional, on ragged batches whose padding holds large
values, one graph at several T (frames stacked inside the graph); `rnnkit export` of a speech
model file carries its label names."""

import dataclasses
import itertools
import json

import numpy as np
import pytest

import rnnkit
from cli_helpers import run_cli
from rnnkit.errors import UserError
from rnnkit.io.models import save
from rnnkit.models.recogniser import SpeechRecogniser
from rnnkit.speech.spoken_digits import LABELS, Recipe

ort = pytest.importorskip("onnxruntime", reason="the ONNX tests need onnxruntime (rnnkit[onnx])")
onnx = pytest.importorskip("onnx", reason="the ONNX tests need onnx (rnnkit[onnx])")

BATCH, MELS, NUM_LABELS = 4, 3, 5
# per T: ragged lengths with a 1, the longest not always first, and lengths % stack != 0
LENGTHS = {6: np.array([5, 6, 1, 4]), 7: np.array([7, 1, 5, 2])}
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def padded_frames(steps, lengths, seed=0):
    """(T, B, MELS) float32 frames with 1e3 in the padding, which must change nothing."""
    frames = np.random.default_rng(seed).standard_normal((steps, BATCH, MELS))
    frames[np.arange(steps)[:, None] >= lengths] = 1e3
    return frames.astype(np.float32)


GRID = list(itertools.product([1, 2, 3], ["gru", "lstm", "rnn"], [1, 2], [False, True]))


@pytest.mark.parametrize(("stack", "cell", "layers", "bidirectional"), GRID)
def test_recogniser_equals_rnnkit_at_any_length(tmp_path, stack, cell, layers, bidirectional):
    """One graph at T = 6 (a multiple of every stack) and T = 7 (of none but 1)."""
    model = SpeechRecogniser(
        NUM_LABELS, input_size=MELS, stack=stack, hidden_size=3, num_layers=layers, cell=cell,
        bidirectional=bidirectional, seed=3,
    )  # fmt: skip
    runtime = session(rnnkit.export_onnx(model, tmp_path / "asr.onnx"))
    for steps, lengths in LENGTHS.items():
        frames = padded_frames(steps, lengths, seed=steps)
        logits, output_lengths = runtime.run(
            None, {"frames": frames, "lengths": lengths.astype(np.int32)}
        )
        expected = model(frames, lengths)
        assert logits.shape == expected.shape == (-(-steps // stack), BATCH, NUM_LABELS)
        np.testing.assert_allclose(logits, expected, **TOLERANCE)
        assert output_lengths.dtype == np.int32
        np.testing.assert_array_equal(output_lengths, model.output_lengths(lengths))
        past = np.arange(len(logits))[:, None] >= output_lengths
        assert not logits[past].any()


def test_fewer_frames_than_a_stack(tmp_path):
    """T = 1 with stack 3: one output frame, the stack filled with zero frames."""
    model = SpeechRecogniser(NUM_LABELS, input_size=MELS, stack=3, hidden_size=3, seed=1)
    runtime = session(rnnkit.export_onnx(model, tmp_path / "asr.onnx"))
    frames = padded_frames(1, np.ones(BATCH, int))
    logits, output_lengths = runtime.run(
        None, {"frames": frames, "lengths": np.ones(BATCH, np.int32)}
    )
    np.testing.assert_allclose(logits, model(frames, np.ones(BATCH, int)), **TOLERANCE)
    np.testing.assert_array_equal(output_lengths, [1] * BATCH)


def speech_extra(num_mels):
    """What `rnnkit train speech` saves with a model, for a model made here (no espeak-ng)."""
    return {
        "task": "speech",
        "labels": list(LABELS),
        "data": {
            "kind": "spoken digits",
            "espeak_ng": "1.51",
            "seed": 0,
            "recipe": dataclasses.asdict(Recipe(num_mels=num_mels)),
            "test_utterances": 8,
        },
    }


def test_cli_exports_a_speech_model_with_its_labels(tmp_path, capsys):
    model = SpeechRecogniser(len(LABELS), input_size=40, stack=2, hidden_size=4, seed=5)
    save(model, tmp_path / "model.safetensors", extra=speech_extra(40))
    status, out, err = run_cli(
        capsys, "export", tmp_path / "model.safetensors", "--onnx", tmp_path / "asr.onnx"
    )
    assert status == 0, err
    assert "inputs: frames (time, batch, 40), lengths (batch)" in out
    assert "outputs: logits (output_time, batch, 11), output_lengths (batch)" in out
    exported = onnx.load(tmp_path / "asr.onnx")
    properties = {prop.key: prop.value for prop in exported.metadata_props}
    assert json.loads(properties["labels"]) == list(LABELS)
    assert properties["blank"] == "0" and properties["stack"] == "2"
    lengths = np.array([9, 4, 1, 6])
    frames = np.random.default_rng(2).standard_normal((9, BATCH, 40)).astype(np.float32)
    logits, _ = session(tmp_path / "asr.onnx").run(
        None, {"frames": frames, "lengths": lengths.astype(np.int32)}
    )
    np.testing.assert_allclose(logits, model(frames, lengths), **TOLERANCE)


def test_extra_of_another_task_is_refused(tmp_path):
    model = SpeechRecogniser(len(LABELS), input_size=40, hidden_size=4)
    with pytest.raises(UserError, match="task"):
        rnnkit.export_onnx(model, tmp_path / "asr.onnx", extra={"task": "classify"})
