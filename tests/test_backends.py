"""The back ends: the compiled one against the reference loop, layer by layer, for every cell it
runs; the explicit choice, its errors and ``backend_info``."""

import importlib.util

import numpy as np
import pytest

import rnnkit
from rnnkit import backends, cells
from rnnkit.backends import compiled

NUMBA = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="numba absent: pip install 'rnnkit[fast]'"
)
COMPILED_CASES = {  # id -> (cell, its options): every registered cell, each option's values
    "rnn_tanh": ("rnn", {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", {"nonlinearity": "relu"}),
    **{name: (name, {}) for name in cells.names() if name != "rnn"},
    "lstm_proj": ("lstm", {"proj_size": 5}),  # a compiled step: the LSTM loops have no projection
}
INPUTS, HIDDEN, STEPS = 6, 12, 7


def parts(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


def run(cell, options, backend, lengths, batch, bidirectional=False, num_layers=1):
    """Everything a layer computes on seeded float32 data: output, final state, dx, d_state0,
    every parameter gradient and the recorded dL/dh."""
    layer = rnnkit.Recurrent(
        cell, INPUTS, HIDDEN, num_layers, bidirectional=bidirectional, seed=0, backend=backend,
        **options,
    )  # fmt: skip
    assert layer.backend_choice().name == backend
    rng = np.random.default_rng(1)
    stack = (num_layers * (2 if bidirectional else 1), batch)  # each part: (L*D, B, its size)
    state0 = tuple(rng.standard_normal((*stack, size), np.float32) for size in layer.state_sizes)
    x = rng.standard_normal((STEPS, batch, INPUTS), dtype=np.float32)
    layer.dh_records = []
    (y, final), backward = layer.forward(x, lengths, rnnkit.nn._checks.public_state(state0))
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    d_final = tuple(rng.standard_normal((*stack, size), np.float32) for size in layer.state_sizes)
    dx, d_state0 = backward(dy, rnnkit.nn._checks.public_state(d_final))
    return [y, *parts(final), dx, *parts(d_state0), *layer.grads.values(), *layer.dh_records]


LENGTHS = pytest.mark.parametrize(
    "lengths", [None, np.array([7, 3, 1, 7, 5])], ids=["equal", "ragged"]
)


@NUMBA
@pytest.mark.parametrize("case", COMPILED_CASES)
@LENGTHS
@pytest.mark.parametrize("shape", [(1, False), (2, True)], ids=["1_layer", "2_layers_bi"])
def test_the_compiled_back_end_matches_the_reference_loop(case, lengths, shape):
    cell, options = COMPILED_CASES[case]
    num_layers, bidirectional = shape
    got = run(cell, options, "compiled", lengths, 5, bidirectional, num_layers)
    want = run(cell, options, "numpy", lengths, 5, bidirectional, num_layers)
    for ours, reference in zip(got, want, strict=True):
        close(ours, reference, cell)


def close(ours, reference, cell: str) -> None:
    """Equal to float32 rounding, relative to the array's largest value (a gradient may reach
    30). The compiled kernels' tanh is within 3.2e-7 where NumPy's is within 6e-8, and layer
    normalisation scales such errors by 1 / std: against a float64 run, a 2-layer bidirectional
    layer-normalised LSTM's dx (largest 20) was off by 6.1e-4 compiled, 8.7e-5 on NumPy."""
    tolerance = 1e-4 if cell.startswith("layer_norm") else 2e-5
    scale = max(1.0, float(np.abs(reference).max()))
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=tolerance * scale)


@NUMBA
@pytest.mark.parametrize("case", COMPILED_CASES)
def test_a_batch_split_between_two_threads_gives_the_same_numbers(case, monkeypatch):
    """From SPLIT_BATCH sequences up the compiled loops run the batch in two halves side by
    side (here 8 and 11 rows, ragged; with the BLAS product the batch is not split): the
    numbers are those of one loop over all rows, exactly, and match the reference loop."""
    cell, options = COMPILED_CASES[case]
    batch = 19
    lengths = np.random.default_rng(5).integers(1, STEPS + 1, batch)
    split = run(cell, options, "compiled", lengths, batch)
    monkeypatch.setattr(compiled._fused, "SPLIT_BATCH", batch + 1)
    whole = run(cell, options, "compiled", lengths, batch)
    reference = run(cell, options, "numpy", lengths, batch)
    for ours, theirs in zip(split, whole, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(split, reference, strict=True):
        close(ours, theirs, cell)


@NUMBA
@pytest.mark.parametrize("case", COMPILED_CASES)
def test_a_fortran_ordered_initial_state_gives_the_same_numbers(case):
    cell, options = COMPILED_CASES[case]
    layer = rnnkit.Recurrent(cell, INPUTS, HIDDEN, seed=0, backend="compiled", **options)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, INPUTS), dtype=np.float32)
    state = tuple(rng.standard_normal((1, 3, size), np.float32) for size in layer.state_sizes)
    fortran = tuple(np.asfortranarray(part) for part in state)
    public = rnnkit.nn._checks.public_state
    y, final = layer(x, state=public(state))
    y_f, final_f = layer(x, state=public(fortran))
    for ours, theirs in zip((y, *parts(final)), (y_f, *parts(final_f)), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_the_reference_loop_runs_when_asked_for_and_for_float64():
    assert rnnkit.LSTM(3, 4, backend="numpy").backend_choice() == ("numpy", "asked for")
    choice = rnnkit.GRU(3, 4, dtype=np.float64).backend_choice()
    assert choice.name == "numpy" and "float32 only" in choice.why


def test_a_back_end_that_cannot_run_is_a_loud_error():
    with pytest.raises(rnnkit.UserError, match="backend='compiled' cannot run here: .*float32"):
        rnnkit.LSTM(3, 4, dtype=np.float64, backend="compiled")  # refused when built
    cell = rnnkit.GRUCell(3, 4, dtype=np.float64)
    cell.backend = "compiled"  # and when run
    with pytest.raises(rnnkit.UserError, match="GRUCell: backend='compiled' cannot run"):
        cell(np.zeros((2, 3)))
    with pytest.raises(rnnkit.UserError, match="backend='fast' is not one of"):
        rnnkit.GRU(3, 4, backend="fast")


@NUMBA
@pytest.mark.parametrize(
    ("cell", "options", "method"),
    [
        ("lstm", {}, "numba's float32 time loop for the lstm cell"),
        ("lstm", {"proj_size": 2}, "the reference loop over numba's float32 lstm step"),
        ("gru_reset_before", {}, "the reference loop over numba's float32 gru_reset_before step"),
    ],
)
def test_a_cell_without_a_compiled_time_loop_runs_its_compiled_step(cell, options, method):
    """The LSTM loops have no projection, and the newer cells no loop at all: auto runs their
    compiled steps in the reference loop, and says so."""
    layer = rnnkit.Recurrent(cell, 3, 4, **options)
    assert layer.backend_choice() == ("compiled", f"auto: {method}")


def test_without_the_compiled_loops_auto_runs_the_reference_and_compiled_is_refused(monkeypatch):
    missing = "numba is not installed: pip install -e '.[fast]'"
    monkeypatch.setattr(compiled._fused, "availability", lambda: missing)
    layer = rnnkit.LSTM(3, 4)
    assert layer.backend_choice().name == "numpy"
    assert "numba" in rnnkit.backend_info(layer)["why"]
    layer.backend = "compiled"
    with pytest.raises(rnnkit.UserError, match="numba"):
        layer(np.zeros((2, 1, 3), np.float32))


def test_the_process_default_comes_from_set_default_backend_then_the_environment(monkeypatch):
    layer = rnnkit.RNN(3, 4)
    monkeypatch.setenv("RNNKIT_BACKEND", "numpy")
    try:
        rnnkit.set_default_backend(None)  # RNNKIT_BACKEND is read again at the next choice
        assert layer.backend_choice() == ("numpy", "the process default")
        rnnkit.set_default_backend("auto")
        assert backends.default_backend() == "auto"
        rnnkit.set_default_backend(None)
        assert backends.default_backend() == "numpy"
        monkeypatch.setenv("RNNKIT_BACKEND", "quick")
        rnnkit.set_default_backend(None)
        with pytest.raises(rnnkit.UserError, match="RNNKIT_BACKEND='quick' is not one of"):
            layer(np.zeros((2, 1, 3), np.float32))
        with pytest.raises(rnnkit.UserError, match="is not one of"):
            rnnkit.set_default_backend("quick")
    finally:
        monkeypatch.delenv("RNNKIT_BACKEND")
        rnnkit.set_default_backend(None)


@NUMBA
def test_backend_info_names_the_back_end_the_reason_and_the_products():
    info = rnnkit.backend_info(rnnkit.LSTMCell(3, 4))
    assert info["cell"] == "lstm" and info["backend"] == "compiled"
    assert info["requested"].startswith("auto") and "lstm" in info["why"]
    assert "lanes" in info["products"] or "BLAS" in info["products"]
    with pytest.raises(rnnkit.UserError, match="takes a recurrent layer or cell"):
        rnnkit.backend_info(rnnkit.Linear(3, 4))


def test_every_registered_cell_is_offered_by_name():
    assert set(cells.names()) >= {"rnn", "lstm", "gru"}
    with pytest.raises(rnnkit.UserError, match="cell='lsmt' is not one of"):
        rnnkit.Recurrent("lsmt", 3, 4)
