"""ONNX export of the bare recurrent layers: ONNX Runtime's outputs and final states equal
rnnkit's inference for every cell with a standard operator, stacked, bidirectional, ragged."""

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import UserError

ort = pytest.importorskip("onnxruntime", reason="the ONNX tests need onnxruntime (rnnkit[onnx])")
onnx = pytest.importorskip("onnx", reason="the ONNX tests need onnx (rnnkit[onnx])")

INPUTS, HIDDEN, STEPS, BATCH = 3, 4, 5, 3
CELLS = [("rnn", {"nonlinearity": "tanh"}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}),
         ("gru", {}), ("gru_reset_before", {}), ("layer_norm_lstm", {}),
         ("layer_norm_gru", {})]  # fmt: skip


def run_exported(tmp_path, layer, x, lengths=None, state=None):
    """ONNX Runtime's (output, *final state parts) for ``layer`` exported and fed like rnnkit."""
    path = rnnkit.export_onnx(
        layer, tmp_path / "layer.onnx", lengths=lengths is not None, state=state is not None
    )
    onnx.checker.check_model(onnx.load(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"x": x}
    if lengths is not None:
        feeds["lengths"] = lengths.astype(np.int32)
    if state is not None:
        parts = (state,) if isinstance(state, np.ndarray) else state
        feeds |= dict(zip(("h0", "c0"), parts, strict=False))
    return session.run(None, feeds)


def expected(layer, x, lengths, state):
    output, final = layer(x, lengths, state)
    return [output, *((final,) if isinstance(final, np.ndarray) else final)]


GRID = [  # merge only matters with two directions
    (cell, layers, bidirectional, merge)
    for cell, layers, bidirectional, merge in itertools.product(
        CELLS, [1, 2], [False, True], ["concat", "sum"]
    )
    if bidirectional or merge == "concat"
]


@pytest.mark.parametrize(("cell", "layers", "bidirectional", "merge"), GRID)
@pytest.mark.parametrize("lengths", [None, [5, 5, 5], [2, 5, 3]])
@pytest.mark.parametrize("with_state", [False, True])
def test_runtime_equals_rnnkit(tmp_path, cell, layers, bidirectional, merge, lengths, with_state):
    name, options = cell
    layer = rnnkit.Recurrent(
        name, INPUTS, HIDDEN, layers, bidirectional=bidirectional, merge=merge, seed=3, **options
    )
    rng = np.random.default_rng(7)
    x = rng.standard_normal((STEPS, BATCH, INPUTS)).astype(np.float32)
    lengths = None if lengths is None else np.array(lengths)
    state = None
    if with_state:
        shape = (layers * layer.directions, BATCH, HIDDEN)
        parts = [rng.standard_normal(shape).astype(np.float32) for _ in layer.cell.state]
        state = parts[0] if len(parts) == 1 else tuple(parts)
    got = run_exported(tmp_path, layer, x, lengths, state)
    want = expected(layer, x, lengths, state)
    assert len(got) == len(want)
    if name.startswith("layer_norm"):
        assert_as_accurate_as_rnnkit(layer, x, lengths, state, got, want)
        return
    for runtime, reference in zip(got, want, strict=True):
        np.testing.assert_allclose(runtime, reference, rtol=1e-5, atol=1e-6)


def assert_as_accurate_as_rnnkit(layer, x, lengths, state, got, want):
    """Layer normalisation of a few nearly equal units (H = 4) amplifies float32 rounding, so
    rnnkit's float32 itself is up to ~1e-5 from the exact result there: ONNX Runtime must be as
    close to rnnkit's float64 run (the same weights) as rnnkit's float32 is, within 3x, or
    within 5e-6 where rnnkit's float32 happens to be closer than that (ONNX Runtime 1.32 was
    1.6e-6 from the exact result where rnnkit was 1.9e-7, on one 2-layer bidirectional run)."""
    exact_layer = rnnkit.Recurrent(**(layer.config() | {"dtype": "float64"}))
    for name, value in layer.params.items():
        exact_layer.params[name][...] = value
    as64 = state
    if state is not None:
        parts = (state,) if isinstance(state, np.ndarray) else state
        as64 = tuple(part.astype(np.float64) for part in parts)
        as64 = as64[0] if len(as64) == 1 else as64
    exact = expected(exact_layer, x.astype(np.float64), lengths, as64)
    for runtime, reference, truth in zip(got, want, exact, strict=True):
        rnnkit_error = np.abs(reference - truth).max()
        assert np.abs(runtime - truth).max() <= max(3 * rnnkit_error, 5e-6)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "layer_norm_lstm", "layer_norm_gru"])
def test_batch_first_and_no_bias(tmp_path, cell):
    layer = rnnkit.Recurrent(
        cell, INPUTS, HIDDEN, 2, bias=False, batch_first=True, bidirectional=True, seed=5
    )
    x = np.random.default_rng(1).standard_normal((BATCH, STEPS, INPUTS)).astype(np.float32)
    lengths = np.array([1, 4, 5])
    got = run_exported(tmp_path, layer, x, lengths)
    for runtime, reference in zip(got, expected(layer, x, lengths, None), strict=True):
        np.testing.assert_allclose(runtime, reference, rtol=1e-5, atol=1e-6)


def test_metadata_names_the_layer(tmp_path):
    layer = rnnkit.GRU(INPUTS, HIDDEN, seed=0)
    model = onnx.load(rnnkit.export_onnx(layer, tmp_path / "gru.onnx"))
    properties = {p.key: p.value for p in model.metadata_props}
    assert properties["rnnkit_class"] == "GRU"
    assert rnnkit.GRU(**json.loads(properties["rnnkit_config"])).config() == (layer.config())
    assert model.opset_import[0].version == 17


@pytest.mark.parametrize(
    ("layer", "named"),
    [
        (rnnkit.LSTM(INPUTS, HIDDEN, proj_size=2), "proj_size=2"),
        (rnnkit.Linear(INPUTS, HIDDEN), "Linear"),
    ],
)
def test_refused_in_one_line(tmp_path, layer, named):
    with pytest.raises(UserError) as error:
        rnnkit.export_onnx(layer, tmp_path / "out.onnx")
    message = str(error.value)
    assert named in message and "\n" not in message
    assert not (tmp_path / "out.onnx").exists()


def test_unknown_option_refused_with_the_known_ones(tmp_path):
    with pytest.raises(
        UserError, match=r"takes the options \['lengths', 'state'\], not \['steps'\]"
    ):
        rnnkit.export_onnx(rnnkit.GRU(INPUTS, HIDDEN), tmp_path / "out.onnx", steps=4)


def test_path_must_end_in_onnx(tmp_path):
    with pytest.raises(UserError, match=r"\.onnx"):
        rnnkit.export_onnx(rnnkit.RNN(INPUTS, HIDDEN), tmp_path / "out.bin")


def test_import_rnnkit_does_not_import_onnx():
    code = (
        "import sys, rnnkit; assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("layer_class", [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU])
def test_streaming_step_by_step_equals_the_whole_sequence(tmp_path, layer_class):
    """The final state fed back as the initial state, one step at a time, as a deployment that
    carries the state outside the graph does."""
    layer = layer_class(INPUTS, HIDDEN, 2, seed=2)
    x = np.random.default_rng(4).standard_normal((STEPS, 1, INPUTS)).astype(np.float32)
    path = rnnkit.export_onnx(layer, tmp_path / "layer.onnx", state=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = ["h0", "c0"][: len(layer.cell.state)]
    state = [np.zeros((2, 1, HIDDEN), np.float32) for _ in names]
    outputs = []
    for step in range(STEPS):
        output, *state = session.run(
            None, {"x": x[step : step + 1], **dict(zip(names, state, strict=True))}
        )
        outputs.append(output)
    want = expected(layer, x, None, None)
    for runtime, reference in zip([np.concatenate(outputs), *state], want, strict=True):
        np.testing.assert_allclose(runtime, reference, rtol=1e-5, atol=1e-6)


def test_float64_layer_exports_as_float32(tmp_path):
    layer = rnnkit.LSTM(INPUTS, HIDDEN, bidirectional=True, dtype=np.float64, seed=6)
    x = np.random.default_rng(2).standard_normal((STEPS, BATCH, INPUTS))
    got = run_exported(tmp_path, layer, x.astype(np.float32), np.array([3, 1, 5]))
    for runtime, reference in zip(got, expected(layer, x, np.array([3, 1, 5]), None), strict=True):
        assert runtime.dtype == np.float32
        np.testing.assert_allclose(runtime, reference, rtol=1e-5, atol=1e-6)


def test_missing_onnx_is_a_user_error_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(UserError, match=r"pip install 'rnnkit\[onnx\]'"):
        rnnkit.export_onnx(rnnkit.GRU(INPUTS, HIDDEN), tmp_path / "out.onnx")
