"""The fused float32 LSTM step (numba) against the NumPy path: same numbers to float32 rounding."""

import importlib.util

import numpy as np
import pytest

from rnnkit.kernels import _fused, lstm

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="numba absent: pip install 'rnnkit[fast]'"
)


def test_rational_tanh_is_within_its_stated_error():
    x = np.linspace(-12, 12, 200_001, dtype=np.float32)
    hidden = x.size
    gates = np.zeros((1, 4 * hidden), np.float32)
    gates[0, 2 * hidden : 3 * hidden] = x  # the g block becomes tanh(z_g)
    out = [np.empty((1, hidden), np.float32) for _ in range(3)]
    _fused.lstm_step(gates, np.zeros((1, hidden), np.float32), *out)
    error = np.abs(gates[0, 2 * hidden : 3 * hidden] - np.tanh(x.astype(np.float64)))
    assert error.max() < 3.2e-7


def run(enabled: bool, monkeypatch, lengths):
    monkeypatch.setattr(_fused, "ENABLED", enabled)
    rng = np.random.default_rng(0)
    steps, batch, hidden = 7, 5, 12
    xw = 2 * rng.standard_normal((steps, batch, 4 * hidden), dtype=np.float32)
    state0 = tuple(rng.standard_normal((batch, hidden), dtype=np.float32) for _ in range(2))
    w_hh = rng.standard_normal((4 * hidden, hidden), dtype=np.float32) / np.sqrt(hidden)
    b_hh = rng.standard_normal(4 * hidden, dtype=np.float32)
    y, state, cache = lstm.forward(xw, state0, w_hh, b_hh, lengths)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dstate = tuple(rng.standard_normal((batch, hidden), dtype=np.float32) for _ in range(2))
    return (y, *state), lstm.backward(dy, dstate, cache)


@pytest.mark.parametrize("lengths", [None, np.array([7, 3, 1, 7, 5])])
def test_fused_forward_and_backward_match_numpy(monkeypatch, lengths):
    (fused_out, fused_grads), (numpy_out, numpy_grads) = (
        run(enabled, monkeypatch, lengths) for enabled in (True, False)
    )
    for fused, reference in zip(fused_out, numpy_out, strict=True):
        np.testing.assert_allclose(fused, reference, rtol=1e-5, atol=2e-6)
    dxw, (dh0, dc0), dw_hh, db_hh = fused_grads
    ref_dxw, (ref_dh0, ref_dc0), ref_dw_hh, ref_db_hh = numpy_grads
    pairs = [(dxw, ref_dxw), (dh0, ref_dh0), (dc0, ref_dc0), (dw_hh, ref_dw_hh), (db_hh, ref_db_hh)]
    for fused, reference in pairs:
        np.testing.assert_allclose(fused, reference, rtol=1e-5, atol=1e-5)


def test_float64_never_takes_the_fused_path():
    array = np.zeros((2, 3))
    assert not _fused.usable(array)
    assert not _fused.usable(np.zeros((4, 6), np.float32)[:, ::2])  # not C-ordered
