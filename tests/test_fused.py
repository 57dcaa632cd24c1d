"""The fused float32 loops (numba, products through NumPy's OpenBLAS) against the NumPy path:
the same numbers to float32 rounding, for every cell, equal and ragged batches."""

import functools
import importlib.util
import multiprocessing
import os
import platform
import subprocess
import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest

import rnnkit
from rnnkit.backends.compiled import _fused
from rnnkit.kernels import gru, lstm, rnn
from rnnkit.nn.cells import FUSED_CELL_BATCH

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="numba absent: pip install 'rnnkit[fast]'"
)


def test_rational_tanh_is_within_its_stated_error():
    x = np.linspace(-12, 12, 200_001, dtype=np.float32)
    hidden = x.size
    gates = np.zeros((1, 4 * hidden), np.float32)
    gates[0, 2 * hidden : 3 * hidden] = x  # the g block becomes tanh(z_g)
    out = [np.empty((1, hidden), np.float32) for _ in range(3)]
    bias = np.zeros(4 * hidden, np.float32)
    _fused.loops(gates).lstm_step(gates, bias, np.zeros((1, hidden), np.float32), *out, 0, 1)
    error = np.abs(gates[0, 2 * hidden : 3 * hidden] - np.tanh(x.astype(np.float64)))
    assert error.max() < 3.2e-7


GATES = {gru: 3, lstm: 4, rnn: 1}  # kernel -> gates per hidden unit
STATE_PARTS = {gru: 1, lstm: 2, rnn: 1}  # the state is (h,) or (h, c)
KERNELS = {  # id -> (kernel, its options)
    "lstm": (lstm, {}),
    "gru": (gru, {}),
    "rnn_tanh": (rnn, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnn, {"nonlinearity": "relu"}),
}


def run(kernel, enabled: bool, monkeypatch, lengths, options=None, batch=5):
    """Outputs and gradients of ``kernel`` on seeded random float32 data, fused or not."""
    monkeypatch.setattr(_fused, "ENABLED", enabled)
    rng = np.random.default_rng(0)
    steps, hidden = 7, 12
    width = GATES[kernel] * hidden

    def states():
        return tuple(
            rng.standard_normal((batch, hidden), dtype=np.float32)
            for _ in range(STATE_PARTS[kernel])
        )

    x = rng.standard_normal((steps, batch, 6), dtype=np.float32)
    state0 = states()
    w_ih = (2 * rng.standard_normal((width, 6)) / np.sqrt(6)).astype(np.float32)
    w_hh = (rng.standard_normal((width, hidden)) / np.sqrt(hidden)).astype(np.float32)
    b_hh, b_ih = (rng.standard_normal(width, dtype=np.float32) for _ in range(2))
    assert (_fused.loops(x, w_hh, b_hh, *state0) is not None) == enabled  # the path asked for
    weights = (w_ih, w_hh, b_ih, b_hh)
    y, state, cache = kernel.forward(x, state0, *weights, lengths, **(options or {}))
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dh_record = np.zeros_like(y)  # dL/dh[t] at every step, as the diagnostics read it
    grads = kernel.backward(dy, states(), cache, dh_record)
    return (y, *state, dh_record), grads


def flat(grads: tuple) -> list:
    """A kernel's backward results as one list of arrays: dx, dxw, the parts of dstate0, dW_hh,
    db_ih, db_hh."""
    d_x, d_xw, d_state0, *d_weights = grads
    return [d_x, d_xw, *d_state0, *d_weights]


LENGTHS = pytest.mark.parametrize(
    "lengths", [None, np.array([7, 3, 1, 7, 5])], ids=["equal", "ragged"]
)


def assert_fused_matches_numpy(kernel, options, lengths, monkeypatch):
    (fused_out, fused_grads), (numpy_out, numpy_grads) = (
        run(kernel, enabled, monkeypatch, lengths, options) for enabled in (True, False)
    )
    for fused, reference in zip(fused_out, numpy_out, strict=True):
        np.testing.assert_allclose(fused, reference, rtol=1e-5, atol=2e-6)
    for fused, reference in zip(flat(fused_grads), flat(numpy_grads), strict=True):
        np.testing.assert_allclose(fused, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", KERNELS)
@LENGTHS
def test_fused_forward_and_backward_match_numpy(name, monkeypatch, lengths):
    kernel, options = KERNELS[name]
    assert_fused_matches_numpy(kernel, options, lengths, monkeypatch)


@pytest.mark.parametrize("name", KERNELS)
def test_a_batch_split_between_two_threads_gives_the_same_numbers(name, monkeypatch):
    """From SPLIT_BATCH sequences up the compiled loops run the batch in two halves side by
    side (here 8 and 11 rows, ragged): the numbers are those of one loop over all rows, exactly
    with the register tile (to float32 rounding with BLAS, whose sums depend on how many rows a
    call has), and match the NumPy path."""
    from rnnkit.backends.compiled import _packed

    same = np.testing.assert_array_equal
    if _packed.PRODUCT == "blas":
        same = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-5)
    kernel, options = KERNELS[name]
    batch = 19
    lengths = np.random.default_rng(5).integers(1, 8, batch)
    split = run(kernel, True, monkeypatch, lengths, options, batch)
    monkeypatch.setattr(_fused, "SPLIT_BATCH", batch + 1)
    whole = run(kernel, True, monkeypatch, lengths, options, batch)
    reference = run(kernel, False, monkeypatch, lengths, options, batch)
    split_grads, whole_grads = flat(split[1]), flat(whole[1])
    for ours, theirs in zip([*split[0], *split_grads], [*whole[0], *whole_grads], strict=True):
        same(ours, theirs)
    for ours, theirs in zip(split[0], reference[0], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=2e-6)
    for ours, theirs in zip(split_grads, flat(reference[1]), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_only_c_ordered_float32_takes_the_fused_path(monkeypatch):
    monkeypatch.setattr(_fused, "ENABLED", True)
    assert _fused.loops(np.zeros((2, 3))) is None
    assert _fused.loops(np.zeros((4, 6), np.float32)[:, ::2]) is None  # not C-ordered
    assert _fused.loops(np.zeros((4, 6), np.float32)) is not None


def test_without_numpys_openblas_the_numpy_path_runs_and_says_why(monkeypatch):
    monkeypatch.setattr(_fused, "ENABLED", True)
    assert _fused.availability() is None
    assert _fused.blas() is not None  # NumPy's PyPI wheel, as the test extra installs it
    monkeypatch.setattr(_fused, "blas", lambda: None)  # a NumPy built on another BLAS
    assert _fused.loops(np.zeros((4, 6), np.float32)) is None
    assert "no OpenBLAS exporting cblas_sgemm" in _fused.availability()
    assert _fused.product_path().startswith("no compiled loops: no OpenBLAS")


def test_a_numba_outside_the_tested_range_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(_fused, "ENABLED", True)
    monkeypatch.setattr(_fused, "_numba_problem", _fused._numba_problem.__wrapped__)  # uncached
    monkeypatch.setattr(_fused.importlib.metadata, "version", lambda name: "0.69.0rc1")
    assert _fused.availability() == (
        "numba 0.69.0rc1 is outside the range the compiled loops are tested with "
        "(>=0.68.1,<0.69): pip install 'numba>=0.68.1,<0.69'"
    )
    assert _fused.loops(np.zeros(1, np.float32)) is None
    monkeypatch.setattr(_fused.importlib.util, "find_spec", lambda name: None)
    assert _fused.availability() == "numba is not installed: pip install -e '.[fast]'"


def test_a_tile_choice_that_is_none_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(_fused, "ENABLED", True)
    monkeypatch.setattr(_fused, "TILE", "avx")
    assert (
        _fused.availability() == "RNNKIT_TILE='avx' is none of auto, avx512, avx2, blas: unset it"
    )
    assert _fused.loops(np.zeros(1, np.float32)) is None


def test_the_product_path_is_one_line_naming_the_product_that_runs():
    from rnnkit.backends.compiled import _packed

    line = _fused.product_path()
    assert "\n" not in line and line == _packed.PRODUCT_PATH
    tile = f"register tile, {_packed.LANES} lanes x {_packed.ROWS} rows ("
    assert line.startswith("BLAS sgemm of " if _packed.PRODUCT == "blas" else tile)


TILE = "register tile, {} lanes x {} rows"
TARGETS = [  # numba's target CPU (or RNNKIT_TILE) and the product it gets
    ({"NUMBA_CPU_NAME": "generic"}, "BLAS sgemm"),  # no features: SSE2
    ({"NUMBA_CPU_NAME": "x86-64", "NUMBA_CPU_FEATURES": "+avx,+avx2"}, "BLAS sgemm"),  # no FMA
    ({"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""}, TILE.format(8, 6)),  # AVX2, FMA
    ({"NUMBA_CPU_NAME": "skylake-avx512", "NUMBA_CPU_FEATURES": ""}, TILE.format(16, 8)),
    ({"RNNKIT_TILE": "avx2"}, TILE.format(8, 6) + " (forced by RNNKIT_TILE=avx2)"),
    ({"RNNKIT_TILE": "blas"}, "BLAS sgemm"),
]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 CPU names")
@pytest.mark.parametrize("environment, expected", TARGETS)
def test_the_product_follows_numbas_target_cpu_not_the_host(environment, expected):
    """Whatever the host has, the product is chosen by what numba compiles for (nothing is
    compiled here: the choice is made at import)."""
    code = "from rnnkit.backends.compiled import _fused; print(_fused.product_path())"
    chosen = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "RNNKIT_TILE")
    env = {name: value for name, value in os.environ.items() if name not in chosen}
    result = subprocess.run([sys.executable, "-c", code], env={**env, **environment},
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert result.stdout.startswith(expected)


@pytest.mark.parametrize("batch", [1, 3, 20])  # 20: above FUSED_CELL_BATCH, the layer's path
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cell_class", [rnnkit.LSTMCell, rnnkit.GRUCell], ids=["lstm", "gru"])
def test_a_cell_step_in_one_compiled_call_matches_the_training_path(
    cell_class, bias, batch, monkeypatch
):
    compiled = []
    compiled_step = cell_class._compiled_step
    monkeypatch.setattr(
        cell_class,
        "_compiled_step",
        lambda *args: compiled.append(compiled_step(*args) is not None) or compiled_step(*args),
    )
    cell = cell_class(6, 9, bias=bias, seed=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, 6), dtype=np.float32)
    parts = [rng.standard_normal((batch, 9), dtype=np.float32) for _ in range(2)]
    state = tuple(parts) if cell_class is rnnkit.LSTMCell else parts[0]
    for given in (state, None):
        stepped = cell(x, given)
        trained, _ = cell.forward(x, given)
        pairs = zip(stepped, trained, strict=True) if isinstance(trained, tuple) else [
            (stepped, trained)]  # fmt: skip
        for got, want in pairs:
            assert got.dtype == np.float32 and got.shape == (batch, 9)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)
    assert compiled == [batch <= FUSED_CELL_BATCH] * 2
    parts[0][0, 0] = np.inf  # the compiled step declines; the checked path names the problem
    state = tuple(parts) if cell_class is rnnkit.LSTMCell else parts[0]
    with pytest.raises(ValueError, match=r"state.* contains NaN or inf"):
        cell(x, state)


@pytest.mark.parametrize("cell_class", [rnnkit.LSTMCell, rnnkit.GRUCell], ids=["lstm", "gru"])
def test_a_cell_step_on_a_strided_input_takes_the_checked_path(cell_class):
    cell = cell_class(6, 9, seed=0)
    x = np.random.default_rng(1).standard_normal((3, 12), dtype=np.float32)[:, ::2]  # (3, 6)
    assert cell._compiled_step(x, None) is None  # BLAS reads rows by pointer: C order only
    for got, want in zip(cell(x), cell(np.ascontiguousarray(x)), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("cell_class", [rnnkit.LSTMCell, rnnkit.GRUCell], ids=["lstm", "gru"])
def test_a_cell_step_declines_arrays_its_signature_or_its_shape_checks_refuse(cell_class):
    cell = cell_class(6, 9, seed=0)
    x = np.zeros((2, 6), np.float32)

    def state(shape, dtype=np.float32):
        parts = tuple(np.zeros(shape, dtype) for _ in range(cell._state_parts))
        return parts if len(parts) == 2 else parts[0]

    assert cell._compiled_step(x, state((2, 9))) is not None
    assert cell._compiled_step(x, state((2, 10))) is None  # BLAS would read past the rows
    assert cell._compiled_step(x, state((3, 9))) is None
    assert cell._compiled_step(np.zeros((2, 7), np.float32), None) is None
    assert cell._compiled_step(x, state((2, 9), np.float64)) is None  # no signature matches
    assert cell._compiled_step(x.astype(np.float64), None) is None
    with pytest.raises(ValueError, match="state"):
        cell(x, state((2, 10)))


def test_run_together_returns_both_results_in_order_and_passes_errors_on():
    assert _fused.run_together(lambda: 1, lambda: 2, np.float32) == (1, 2)
    assert _fused.run_together(lambda: 1, lambda: 2, np.float64) == (1, 2)  # one after the other

    def fail():
        raise ValueError("from a direction")

    for first, second in ((fail, lambda: 2), (lambda: 1, fail)):
        with pytest.raises(ValueError, match="from a direction"):
            _fused.run_together(first, second, np.float32)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_bidirectional_layers_give_the_same_numbers_with_directions_side_by_side(cell, monkeypatch):
    """The directions side by side, and a batch of SPLIT_BATCH or more in each (whose halves
    then run one after the other: one pair at a time): the numbers of one thread."""
    rng = np.random.default_rng(0)
    batch = _fused.SPLIT_BATCH + 1
    x = rng.standard_normal((9, batch, 4), dtype=np.float32)
    lengths = rng.integers(1, 10, batch)
    dy = rng.standard_normal((9, batch, 12), dtype=np.float32)

    def outputs_and_gradients():
        layer = getattr(rnnkit, cell)(4, 6, 2, bidirectional=True, seed=0)
        (y, state), backward = layer.forward(x, lengths)
        dx, _ = backward(dy)
        states = state if isinstance(state, tuple) else (state,)  # (h, c) or h
        return [y, *states, dx, *layer.grads.values()]

    together = outputs_and_gradients()
    monkeypatch.setattr(_fused, "run_together", lambda first, second, dtype: (first(), second()))
    for got, want in zip(together, outputs_and_gradients(), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_runs_bidirectional_layers_side_by_side_too():
    layer = rnnkit.LSTM(3, 4, bidirectional=True, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3), dtype=np.float32)
    expected, _ = layer(x)  # the pool thread now exists in this process
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got, _ = pool.apply_async(layer, (x,)).get(timeout=60)  # hung on the parent's pool
    np.testing.assert_array_equal(got, expected)


def test_run_together_uses_a_second_thread_only_when_blas_may_use_two():
    get_threads, set_threads = _fused._blas_thread_count()
    threads = get_threads()
    here = threading.get_ident()
    try:
        set_threads(2)
        first, second = _fused.run_together(threading.get_ident, threading.get_ident, np.float32)
        assert first == here != second
        assert get_threads() == 2  # restored after the pair ran with one each
        set_threads(1)  # as OPENBLAS_NUM_THREADS=1 asks: stay on one core
        assert _fused.run_together(threading.get_ident, threading.get_ident, np.float32) == (
            here, here)  # fmt: skip
    finally:
        set_threads(threads)


@pytest.mark.parametrize("in_place", [True, False], ids=["dz_is_gates", "dz_apart"])
def test_step_backwards_match_numpy_in_place_or_not(in_place):
    """The fused step backwards write the gate gradients over the gates or into their own array
    (hidden 37: vectorized loops with a remainder); both equal the NumPy steps'."""
    rng = np.random.default_rng(3)
    batch, hidden = 3, 37

    def uniform(*shape):
        return rng.uniform(0.05, 0.95, shape).astype(np.float32)

    fused = _fused.loops(np.zeros(1, np.float32))
    dh, dc, c_prev, tanh_c = (uniform(batch, hidden) for _ in range(4))
    gates = uniform(batch, 4 * hidden)
    expected_dz, expected_dc = np.empty_like(gates), np.empty_like(dc)
    lstm.step_backward(dh, dc, gates.copy(), c_prev, tanh_c, expected_dz, expected_dc)
    ours_gates, dc_prev = gates.copy(), np.empty_like(dc)
    dz = ours_gates if in_place else np.empty_like(gates)
    scratch = np.empty(4 * hidden, np.float32)
    fused.lstm_step_backward(dh, dc, ours_gates, c_prev, tanh_c, dz, dc_prev, scratch, 0, batch)
    np.testing.assert_allclose(dz, expected_dz, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dc_prev, expected_dc, rtol=1e-5, atol=1e-7)

    hw_n, h_prev = uniform(batch, hidden), uniform(batch, hidden)
    gates = uniform(batch, 3 * hidden)
    expected = [np.empty_like(gates), np.empty_like(gates), np.empty_like(dh)]
    gru.step_backward(dh, gates.copy(), hw_n, h_prev, *expected)
    ours_gates = gates.copy()
    dxw = ours_gates if in_place else np.empty_like(gates)
    ours = [dxw, np.empty_like(gates), np.empty_like(dh)]
    fused.gru_step_backward(dh, ours_gates, hw_n, h_prev, *ours, 0, batch)
    for got, want in zip(ours, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("path", ["chosen", "blas"])
@pytest.mark.parametrize("batch, inner, width", [(1, 1, 1), (3, 5, 31), (13, 33, 70), (19, 8, 64)])
def test_the_packed_product_equals_numpys_on_any_shape_and_row_range(batch, inner, width, path):
    """``packed_product`` (register tiles of 8, 4, 2 and 1 rows, panels of PANEL columns, the
    last one partial; or cblas_sgemm) computes rows first .. last - 1 of rows @ weight, with or
    without what out held, and leaves the other rows alone. The BLAS product is checked here
    whichever product this process chose."""
    fused = _fused.loops(np.zeros(1, np.float32))
    if path == "blas":
        from rnnkit.backends.compiled import _packed

        fused = SimpleNamespace(pack=_packed._kept, packed_product=_packed._blas_product)
    rng = np.random.default_rng(batch)
    rows = rng.standard_normal((batch, inner), dtype=np.float32)
    weight = rng.standard_normal((inner, width), dtype=np.float32)
    held = rng.standard_normal((batch, width), dtype=np.float32)
    first, last = batch // 3, batch
    expected = held.copy()
    expected[first:last] = rows[first:last] @ weight
    packed = fused.pack(weight)
    for accumulate in (False, True):
        out = held.copy()
        fused.packed_product(rows, packed, out, accumulate, first, last)
        if accumulate:
            expected[first:last] += held[first:last]
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", ["chosen", "blas"])
@pytest.mark.parametrize("inner, width", [(1, 1), (5, 31), (33, 70), (8, 64)])
def test_packing_a_transpose_equals_packing_its_copy(inner, width, path):
    """``pack_transpose(w)`` is ``pack`` of the C-ordered copy of w.T, padding included."""
    fused = _fused.loops(np.zeros(1, np.float32))
    if path == "blas":
        from rnnkit.backends.compiled import _packed

        fused = SimpleNamespace(pack=_packed._kept, pack_transpose=_packed._kept_transpose)
    weight = np.random.default_rng(width).standard_normal((width, inner), dtype=np.float32)
    expected = fused.pack(np.ascontiguousarray(weight.T))
    np.testing.assert_array_equal(fused.pack_transpose(weight), expected)


@pytest.mark.parametrize("name", KERNELS)
def test_a_fortran_ordered_initial_state_gives_the_same_numbers(name):
    """The compiled loops' products read their rows C-ordered: a state that comes in
    Fortran-ordered is read as it is, not misread."""
    kernel, options = KERNELS[name]
    rng = np.random.default_rng(6)
    batch, hidden = 3, 5
    width = GATES[kernel] * hidden
    x = rng.standard_normal((4, batch, 3), dtype=np.float32)
    weights = (rng.standard_normal((width, size), dtype=np.float32) for size in (3, hidden))
    weights = (*weights, None, None)  # w_ih, w_hh, no biases
    state = tuple(
        rng.standard_normal((batch, hidden), dtype=np.float32) for _ in range(STATE_PARTS[kernel])
    )
    fortran = tuple(np.asfortranarray(part) for part in state)
    y, final, _ = kernel.forward(x, state, *weights, None, **options)
    y_f, final_f, _ = kernel.forward(x, fortran, *weights, None, **options)
    for ours, theirs in zip((y, *final), (y_f, *final_f), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one_way", "bidirectional"])
def test_lstm_inference_with_the_projection_in_its_loop_matches_the_training_path(
    bidirectional, monkeypatch
):
    """``lstm.infer`` (the input projection inside the compiled loop) gives the numbers of
    ``forward``, ragged and in two halves (19 sequences); None for float64."""
    monkeypatch.setattr(_fused, "ENABLED", True)
    rng = np.random.default_rng(7)
    batch = 19
    layer = rnnkit.LSTM(5, 9, 2, bidirectional=bidirectional, seed=0)
    x = rng.standard_normal((6, batch, 5), dtype=np.float32)
    lengths = rng.integers(1, 7, batch)
    inferred = layer(x, lengths=lengths)
    (trained_y, trained_state), _ = layer.forward(x, lengths=lengths)
    for got, want in zip((inferred[0], *inferred[1]), (trained_y, *trained_state), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    weights = [layer.params[f"{role}_l0"] for role in ("weight_ih", "weight_hh", "bias_ih")]
    state = (np.zeros((batch, 9)),) * 2
    assert lstm.infer(x.astype(np.float64), state, *weights, None, None) is None
