"""ONNX export of the Forecaster and ForecastEnsemble: ONNX Runtime's forecasts equal rnnkit's for
every cell and depth, the ensemble's mean inside the graph; a trained forecaster's graph takes raw
values and returns the target in its own units, its scaling written beside it."""

import itertools
import json

import numpy as np
import pytest

from cli_helpers import run_cli
from rnnkit.io.models import load_with_extra
from rnnkit.models.forecaster import ForecastEnsemble, Forecaster
from test_export_classifier import session
from test_forecast import series_rows, write_csv

ort = pytest.importorskip("onnxruntime", reason="the ONNX tests need onnxruntime (rnnkit[onnx])")
onnx = pytest.importorskip("onnx", reason="the ONNX tests need onnx (rnnkit[onnx])")

STEPS, BATCH, INPUTS, HORIZON = 7, 3, 2, 2
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def windows(seed=0):
    return np.random.default_rng(seed).standard_normal((STEPS, BATCH, INPUTS)).astype(np.float32)


@pytest.mark.parametrize(
    ("cell", "layers", "members"),
    list(itertools.product(["rnn", "lstm", "gru", "layer_norm_lstm"], [1, 2], [0, 1, 3])),
)
def test_forecaster_equals_rnnkit(tmp_path, cell, layers, members):
    """members 0: a bare Forecaster; else an ensemble of that many."""
    options = {"hidden_size": 4, "num_layers": layers, "cell": cell, "seed": 5}
    model = (
        ForecastEnsemble(INPUTS, HORIZON, members=members, **options)
        if members
        else Forecaster(INPUTS, HORIZON, **options)
    )
    runtime, properties = session(tmp_path, model)
    (forecast,) = runtime.run(None, {"windows": windows()})
    np.testing.assert_allclose(forecast, model(windows()), **TOLERANCE)
    assert properties["rnnkit_class"] == type(model).__name__
    assert properties["scaling"].startswith("none")


def test_trained_forecaster_in_real_units(tmp_path, capsys):
    """`rnnkit train forecast --csv`: raw temperatures and rain in, the temperature out, equal
    to the model's forecast of the scaled window turned back into the target's units."""
    data = write_csv(tmp_path / "series.csv", series_rows(days=120))
    out = tmp_path / "run"
    status, _, err = run_cli(
        capsys, "train", "forecast", "--csv", data, "--target", "temp", "--date-col", "day",
        "--no-calendar",
        "--epochs", 1, "--hidden", 4, "--window", 7, "--horizon", HORIZON, "--season", 10,
        "--members", 2, "--out", out,
    )  # fmt: skip
    assert status == 0, err
    model, extra = load_with_extra(out / "model.safetensors")
    runtime, properties = session(tmp_path, model, extra=extra)
    columns = json.loads(properties["columns"])
    assert columns == extra["columns"] == ["temp", "rain"]
    rows = np.array(series_rows(days=120))
    values = {"temp": rows[:, 1].astype(float), "rain": rows[:, 2].astype(float)}
    raw = np.stack([values[name] for name in columns], axis=1)  # (N, 2): temp, rain
    starts = np.array([10, 40, 90])
    raw_windows = np.stack([raw[start - 7 : start] for start in starts], axis=1)  # (T, B, F)
    mean, std = (np.array(extra["scaling"][key]) for key in ("mean", "std"))
    scaled = ((raw_windows - mean) / std).astype(np.float32)
    expected = model(scaled) * std[0] + mean[0]  # °C
    (forecast,) = runtime.run(None, {"windows": raw_windows.astype(np.float32)})
    np.testing.assert_allclose(forecast, expected, **TOLERANCE)
    assert 0 < forecast.mean() < 30  # degrees, not standard deviations
    assert json.loads(properties["scaling"])["std"] == extra["scaling"]["std"]
