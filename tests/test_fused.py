"""The compiled back end's parts (numba, products through NumPy's OpenBLAS): its steps against
the cells' reference steps, its products, threads and streaming steps. Whole layers against the
reference loop: tests/test_backends.py."""

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
from rnnkit.cells import gru, lstm
from rnnkit.nn.cells import COMPILED_STEP_BATCH

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


def test_the_rnns_tanh_is_within_its_stated_error_in_units_in_the_last_place():
    import numba

    precise = _fused.loops()._tanh_precise

    @numba.njit
    def apply(values):
        return np.array([precise(value) for value in values], np.float32)

    grid = np.geomspace(1e-12, 12.6, 100_000)
    x = np.concatenate([np.linspace(-12, 12, 400_001), grid, -grid]).astype(np.float32)
    exact = np.tanh(x.astype(np.float64))
    ulps = np.abs(apply(x) - exact) / np.spacing(np.abs(exact).astype(np.float32))
    assert ulps.max() <= 1.3
    special = np.array([0.0, -0.0, np.inf, -np.inf, 30.0, -1e-30], np.float32)
    expected = np.array([0.0, -0.0, 1.0, -1.0, 1.0, -1e-30], np.float32)  # tanh(x) rounds to x
    np.testing.assert_array_equal(apply(special), expected)
    assert np.signbit(apply(special)[1]) and np.isnan(apply(np.array([np.nan], np.float32))[0])


def test_only_c_ordered_float32_takes_the_fused_path(monkeypatch):
    assert _fused.loops(np.zeros((2, 3))) is None
    assert _fused.loops(np.zeros((4, 6), np.float32)[:, ::2]) is None  # not C-ordered
    assert _fused.loops(np.zeros((4, 6), np.float32)) is not None


def test_without_numpys_openblas_the_numpy_path_runs_and_says_why(monkeypatch):
    assert _fused.availability() is None
    assert _fused.blas() is not None  # NumPy's PyPI wheel, as the test extra installs it
    monkeypatch.setattr(_fused, "blas", lambda: None)  # a NumPy built on another BLAS
    assert _fused.loops(np.zeros((4, 6), np.float32)) is None
    assert "no OpenBLAS exporting cblas_sgemm" in _fused.availability()
    assert _fused.product_path().startswith("no compiled loops: no OpenBLAS")


def test_a_numba_outside_the_tested_range_is_refused_with_the_fix(monkeypatch):
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


@pytest.mark.parametrize("batch", [1, 3, 20])  # 20: above COMPILED_STEP_BATCH, the layer's path
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
    assert compiled == [batch <= COMPILED_STEP_BATCH] * 2
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
        parts = tuple(np.zeros(shape, dtype) for _ in range(len(cell.cell.state)))
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
    i, f, g, o = np.split(gates, 4, axis=1)
    no_weight = {"weight_hh": np.zeros((4 * hidden, hidden), np.float32)}
    saved = (c_prev, c_prev, i, f, g, o, tanh_c)  # (h_prev is read by dW_hh only)
    expected_dz, (_, expected_dc) = lstm.step_backward(
        (dh, dc), saved, no_weight, lstm.CELL.options
    )[:2]
    ours_gates, dc_prev = gates.copy(), np.empty_like(dc)
    dz = ours_gates if in_place else np.empty_like(gates)
    scratch = np.empty(4 * hidden, np.float32)
    fused.lstm_step_backward(dh, dc, ours_gates, c_prev, tanh_c, dz, dc_prev, scratch, 0, batch)
    np.testing.assert_allclose(dz, expected_dz, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dc_prev, expected_dc, rtol=1e-5, atol=1e-7)

    hw_n, h_prev = uniform(batch, hidden), uniform(batch, hidden)
    gates = uniform(batch, 3 * hidden)
    r, z, n = np.split(gates, 3, axis=1)
    no_weight = {"weight_hh": np.zeros((3 * hidden, hidden), np.float32)}
    expected_dxw, (expected_direct,), _ = gru.step_backward(
        (dh,), (h_prev, r, z, n, hw_n), no_weight, {}
    )  # with W_hh zero, dh_prev is the direct part dh * z
    expected_dhw = np.concatenate(
        [expected_dxw[:, : 2 * hidden], expected_dxw[:, 2 * hidden :] * r], 1
    )
    ours_gates = gates.copy()
    dxw = ours_gates if in_place else np.empty_like(gates)
    ours = [dxw, np.empty_like(gates), np.empty_like(dh)]
    fused.gru_step_backward(dh, ours_gates, hw_n, h_prev, *ours, 0, batch)
    for got, want in zip(ours, (expected_dxw, expected_dhw, expected_direct), strict=True):
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


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one_way", "bidirectional"])
def test_lstm_inference_with_the_projection_in_its_loop_matches_the_training_path(
    bidirectional, monkeypatch
):
    """``lstm.infer`` (the input projection inside the compiled loop) gives the numbers of
    ``forward``, ragged and in two halves (19 sequences)."""
    rng = np.random.default_rng(7)
    batch = 19
    layer = rnnkit.LSTM(5, 9, 2, bidirectional=bidirectional, seed=0)
    x = rng.standard_normal((6, batch, 5), dtype=np.float32)
    lengths = rng.integers(1, 7, batch)
    inferred = layer(x, lengths=lengths)
    (trained_y, trained_state), _ = layer.forward(x, lengths=lengths)
    for got, want in zip((inferred[0], *inferred[1]), (trained_y, *trained_state), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
