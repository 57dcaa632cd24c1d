"""rnnkit train/evaluate/predict for forecasters: scaling, the chronological split and its
windows, baselines, the remembered test split, the next values, and every bad input."""

import csv
import importlib.util
import json
import re
import sys

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli
from rnnkit.data.scaling import Standardizer
from rnnkit.data.series import day_of_year_features
from rnnkit.data.splits import chronological_split
from rnnkit.data.windows import make_windows, window_starts
from rnnkit.io._schema import Fields
from rnnkit.io.models import load_with_extra

DAYS = 300
SMALL = ["--epochs", 40, "--hidden", 8, "--window", 7, "--season", 100, "--lr", 0.01]


def series_rows(days=DAYS, seed=0):
    """Daily rows: a date, a temperature with a 100-day cycle and noise, rain, a word."""
    rng = np.random.default_rng(seed)
    dates = np.datetime64("2020-01-01") + np.arange(days)
    temp = 12 + 8 * np.sin(2 * np.pi * np.arange(days) / 100) + rng.normal(0, 1, days)
    rain = np.round(np.maximum(0, rng.normal(1, 2, days)), 2)
    return [[str(d), f"{t:.2f}", f"{r}", "sun"] for d, t, r in zip(dates, temp, rain, strict=True)]


def write_csv(path, rows, header=("day", "temp", "rain", "sky")):
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A forecaster trained through the command line on a CSV, and its data."""
    from rnnkit.cli import main  # capsys is function-scoped: run the command directly

    folder = tmp_path_factory.mktemp("forecast")
    data = write_csv(folder / "series.csv", series_rows())
    out = folder / "run"
    # no calendar inputs: a day-of-year learnt from 240 days does not carry to the 60 after
    status = main([str(arg) for arg in ["train", "forecast", "--csv", data, "--target", "temp",
                                        "--date-col", "day", "--no-calendar", *SMALL,
                                        "--out", out]])  # fmt: skip
    assert status == 0
    return folder, data, out


def test_scaler_round_trip():
    values = np.random.default_rng(0).normal(5, 3, (40, 3))
    values[:, 2] = 7.0  # a constant column
    scaler = Standardizer.fit(values)
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled[:, :2].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled[:, :2].std(axis=0), 1, atol=1e-12)
    assert (scaled[:, 2] == 0).all() and scaler.std[2] == 1.0
    np.testing.assert_allclose(scaler.inverse(scaled), values, rtol=1e-12)
    np.testing.assert_allclose(scaler.inverse(scaled[:, 1], column=1), values[:, 1], rtol=1e-12)
    saved = Fields({"scaling": json.loads(json.dumps(scaler.to_json()))}, "test", "fix")
    again = Standardizer.from_fields(saved, "scaling", 3)
    np.testing.assert_array_equal(again.transform(values), scaled)


def test_chronological_split_keeps_time_order_and_windows_never_cross_it():
    count, window, horizon = 100, 5, 3
    train_end, val_end = chronological_split(count, 0.15, 0.2)
    assert (train_end, val_end) == (65, 80)
    bounds = [(0, train_end), (train_end, val_end), (val_end, count)]
    targets = []
    for first, end in bounds:
        starts = window_starts(count, window, horizon, first, end)
        assert starts[0] == max(first, window) and starts[-1] + horizon == end
        targets.append({t + k for t in starts for k in range(horizon)})
        assert all(first <= t < end for t in targets[-1])  # targets inside their split
    assert not (targets[0] & targets[1]) and not (targets[1] & targets[2])
    assert min(targets[2]) == val_end and max(targets[0]) < train_end  # the future tests


def test_windows_hold_the_past_and_the_next_values():
    inputs = np.arange(20.0)[:, None] * np.array([1.0, 10.0])  # (20, 2): step t holds t, 10t
    windows, targets = make_windows(inputs, inputs[:, 0], np.array([4, 9]), window=3, horizon=2)
    assert windows.shape == (3, 2, 2) and targets.shape == (2, 2)
    np.testing.assert_array_equal(windows[:, 0, 0], [1, 2, 3])  # steps 1..3 before step 4
    np.testing.assert_array_equal(windows[:, 1, 1], [60, 70, 80])
    np.testing.assert_array_equal(targets, [[4, 5], [9, 10]])


def test_day_of_year_features_go_round_the_year():
    dates = np.array(["2021-01-01", "2021-04-02", "2021-07-02", "2021-12-31"], "datetime64[D]")
    features = day_of_year_features(dates)
    np.testing.assert_allclose(features[0], [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(features[2], [0.0, -1.0], atol=0.02)  # half a year on
    np.testing.assert_allclose(np.hypot(features[:, 0], features[:, 1]), 1.0)


def test_evaluate_on_the_training_file_rebuilds_the_test_split_and_its_baselines(trained, capsys):
    _, data, out = trained
    status, stdout, _ = run_cli(capsys, "evaluate", out / "model.safetensors", "--csv", data,
                                "--json")  # fmt: skip
    assert status == 0
    figures = json.loads(stdout)
    _, extra = load_with_extra(out / "model.safetensors")
    assert figures == extra["test"]
    temp = np.array([float(row[1]) for row in series_rows()])
    _, val_end = chronological_split(DAYS, 0.1, 0.1)
    targets = np.arange(val_end, DAYS)  # horizon 1: every test step is a target
    assert figures["windows"] == len(targets) == 30
    persistence, seasonal = temp[targets - 1], temp[targets - 100]
    assert figures["baseline_mae"] == pytest.approx(np.abs(temp[targets] - persistence).mean())
    assert figures["seasonal_mae"] == pytest.approx(np.abs(temp[targets] - seasonal).mean())
    assert figures["period"] == ["2020-09-27", "2020-10-26"]
    train_end, _ = chronological_split(DAYS, 0.1, 0.1)
    mean_guess = np.abs(temp[targets] - temp[:train_end].mean()).mean()  # about 5
    assert figures["mae"] < mean_guess / 2  # it learned, and its values come back unscaled


def test_scaling_is_fitted_on_the_training_steps_only(trained):
    _, _, out = trained
    _, extra = load_with_extra(out / "model.safetensors")
    temp = np.array([float(row[1]) for row in series_rows()])
    train_end, _ = chronological_split(DAYS, 0.1, 0.1)
    assert extra["scaling"]["mean"][0] == pytest.approx(temp[:train_end].mean())
    assert extra["columns"] == ["temp", "rain"]


def test_evaluate_on_a_csv_draws_and_predict_gives_the_next_day(trained, capsys, tmp_path):
    folder, data, out = trained
    model = out / "model.safetensors"
    png = tmp_path / "forecast.png"
    other = write_csv(tmp_path / "other.csv", series_rows(DAYS, seed=1))
    status, stdout, _ = run_cli(capsys, "evaluate", model, "--csv", other, "--plot", png)
    assert status == 0 and "than persistence (MAE " in stdout and f"{DAYS - 7} windows" in stdout
    assert "°C" not in stdout  # a CSV does not say its unit
    if importlib.util.find_spec("matplotlib"):
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert (out / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    status, stdout, _ = run_cli(capsys, "predict", model, "--csv", data, "--json")
    (forecast,) = json.loads(stdout)
    assert status == 0 and forecast["date"] == "2020-10-27" and forecast["step"] == 1
    assert 0 < forecast["value"] < 25


def test_several_steps_ahead_without_dates(tmp_path, capsys):
    rows = [row[1:3] for row in series_rows(120)]
    data = write_csv(tmp_path / "plain.csv", rows, header=("temp", "rain"))
    out = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "forecast", "--csv", data, "--target", "temp",
                             "--horizon", 3, "--epochs", 2, "--hidden", 4, "--window", 5,
                             "--out", out)  # fmt: skip
    assert status == 0, err
    status, stdout, _ = run_cli(capsys, "evaluate", out / "model.safetensors", "--csv", data,
                                "--json")  # fmt: skip
    figures = json.loads(stdout)
    assert len(figures["mae_by_step"]) == 3 and figures["seasonal_mae"] is None  # 120 < 365
    status, stdout, _ = run_cli(capsys, "predict", out / "model.safetensors", "--csv", data)
    assert [line.split("\t")[0] for line in stdout.splitlines()] == ["+1", "+2", "+3"]


@pytest.fixture
def bad_files(tmp_path):
    rows = series_rows(80)
    files = {"good": write_csv(tmp_path / "good.csv", rows)}
    word = [list(row) for row in rows]
    word[11][1] = "warm"
    files["word"] = write_csv(tmp_path / "word.csv", word)
    gap = [list(row) for row in rows]
    gap[20][2] = "NA"
    files["gap"] = write_csv(tmp_path / "gap.csv", gap)
    swapped = [list(row) for row in rows]
    swapped[5][0], swapped[6][0] = swapped[6][0], swapped[5][0]
    files["unsorted"] = write_csv(tmp_path / "unsorted.csv", swapped)
    not_date = [list(row) for row in rows]
    not_date[2][0] = "Tuesday"
    files["not_date"] = write_csv(tmp_path / "not_date.csv", not_date)
    files["short"] = write_csv(tmp_path / "short.csv", rows[:25])
    return tmp_path, files


TARGET = ["--target", "temp", "--date-col", "day"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--csv", "{good}", "--target", "tmax"],
         "--target 'tmax' is not a column of {good}; its columns are 'day', 'temp', 'rain', 'sky'"),
        (["--csv", "{good}", "--target", "temp", "--features", "rain,wind"],
         "--features 'wind' is not a column"),
        (["--csv", "{good}", "--target", "temp", "--date-col", "when"],
         "--date-col 'when' is not a column"),
        (["--csv", "{word}", *TARGET], "row 12 of {word}, column 'temp': 'warm' is not a number"),
        (["--csv", "{good}", *TARGET, "--features", "sky"],
         "row 1 of {good}, column 'sky': 'sun' is not a number"),
        (["--csv", "{gap}", *TARGET], "row 21 of {gap}, column 'rain': the value is missing"),
        (["--csv", "{unsorted}", *TARGET], "row 7 of {unsorted}: the date '2020-01-06' does not "
                                            "come after the date of row 6"),
        (["--csv", "{not_date}", *TARGET], "column 'day': 'Tuesday' is not a date"),
        (["--csv", "{short}", *TARGET, "--window", "21"],
         "its training split (rows 1 to 21) is too short for --window 21 and --horizon 1"),
        (["--csv", "{good}", *TARGET, "--window", "5", "--horizon", "9"],
         "its validation split (rows 65 to 72) is too short"),
        (["--csv", "{good}"], "--csv needs --target COL"),
        (["--csv", "{good}", *TARGET, "--horizon", "7", "--season", "5"],
         "season (5) must be at least the horizon (7)"),
        (["--csv", "{folder}/missing.csv", *TARGET], "missing.csv: no such file"),
        (["--csv", "{good}", *TARGET, "--features", ","], "expected column names"),
    ],
)  # fmt: skip
def test_bad_training_input_is_one_line_and_writes_nothing(bad_files, capsys, args, message):
    folder, files = bad_files
    names = {"folder": folder, **files}
    out = folder / "out"
    result = run_cli(capsys, "train", "forecast", *[arg.format(**names) for arg in args],
                     "--epochs", 1, "--out", out)  # fmt: skip
    assert_one_line_error(result, "rnnkit train forecast", message.format(**names))
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "{model}", "--csv", "{word}"], "'warm' is not a number"),
        (["evaluate", "{model}", "--csv", "{plain}"], "--date-col 'day' is not a column"),
        (["evaluate", "{model}", "--npz", "{good}"], "--npz is not read by a forecaster"),
        (["evaluate", "{model}", "--text", "{good}"], "--text is not read by a forecaster"),
        (["predict", "{model}", "--text", "hello"], "--text is not read by a forecaster"),
        (["predict", "{model}", "--csv", "{tiny}"], "has 5 rows, but the model reads windows of 7"),
    ],
)  # fmt: skip
def test_bad_evaluation_input_is_one_line(trained, bad_files, capsys, args, message):
    _, _, out = trained
    folder, files = bad_files
    rows = series_rows(80)
    names = {
        "model": out / "model.safetensors", **files,
        "plain": write_csv(folder / "plain.csv", [row[1:3] for row in rows], ("temp", "rain")),
        "tiny": write_csv(folder / "tiny.csv", rows[:5]),
    }  # fmt: skip
    result = run_cli(capsys, *[arg.format(**names) for arg in args])
    assert_one_line_error(result, f"rnnkit {args[0]}", message.format(**names))


@pytest.mark.skipif(
    importlib.util.find_spec("vega_datasets") is None,
    reason="the default weather needs vega_datasets: pip install 'rnnkit[weather]'",
)
def test_default_weather_loads_in_date_order():
    from rnnkit.data.packaged import seattle_weather
    from rnnkit.data.series import parse_dates

    table = seattle_weather()
    assert len(table.rows) == 1461
    assert table.numeric_columns() == ["precipitation", "temp_max", "temp_min", "wind"]
    dates = parse_dates(table, "date")
    assert str(dates[0]) == "2012-01-01" and str(dates[-1]) == "2015-12-31"
    assert "vega_datasets" not in sys.modules  # read, never imported


@pytest.mark.skipif(
    importlib.util.find_spec("vega_datasets") is None,
    reason="the default weather needs vega_datasets: pip install 'rnnkit[weather]'",
)
def test_the_weather_figures_come_in_degrees_and_against_persistence(tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, err = run_cli(capsys, "train", "forecast", "--epochs", 1, "--hidden", 4,
                                  "--members", 1, "--out", out)  # fmt: skip
    assert status == 0, err
    number = r"\d+\.\d{3}"
    # one epoch of 4 hidden units is far worse than persistence (173.7% higher here)
    assert re.search(rf"; test MAE {number} °C, \d+\.\d% higher than persistence "
                     rf"\(MAE 2\.179 °C\); RMSE {number} °C over 146 windows", stdout)  # fmt: skip
    status, stdout, _ = run_cli(capsys, "evaluate", out)
    number = r"\d+\.\d{4}"
    expected = (rf"MAE {number} °C, \d+\.\d% higher than persistence \(MAE 2\.1788 °C\); "
                rf"RMSE {number} °C; seasonal MAE {number} °C over 146 windows")  # fmt: skip
    assert re.match(expected, stdout), stdout
    status, stdout, _ = run_cli(capsys, "evaluate", out, "--json")
    assert json.loads(stdout)["unit"] == "°C"


def test_the_comparison_with_persistence_follows_its_sign():
    from rnnkit.tasks.forecasting import against_persistence

    lower = {"mae": 2.0, "baseline_mae": 2.5, "unit": None}
    assert against_persistence(lower) == "20.0% lower than persistence (MAE 2.500)"
    higher = {"mae": 2.251, "baseline_mae": 2.179, "unit": "°C"}
    assert against_persistence(higher, 4) == "3.3% higher than persistence (MAE 2.1790 °C)"
    exact = {"mae": 0.5, "baseline_mae": 0.0, "unit": None}  # a constant series
    assert against_persistence(exact) == "higher than persistence (MAE 0.000)"


def test_resume_goes_on_and_refuses_other_data(tmp_path, capsys):
    rows = series_rows(120)
    data = write_csv(tmp_path / "a.csv", rows)
    other = write_csv(tmp_path / "b.csv", series_rows(120, seed=1))
    out = tmp_path / "run"
    train = ["train", "forecast", *TARGET, "--window", 5, "--hidden", 4, "--out", out]
    status, _, err = run_cli(capsys, *train, "--csv", data, "--steps", 6)
    assert status == 0, err
    result = run_cli(capsys, *train, "--csv", data, "--steps", 12)
    assert_one_line_error(result, "rnnkit train forecast", "holds checkpoints of an earlier run")
    result = run_cli(capsys, *train, "--csv", other, "--steps", 12, "--resume")
    assert_one_line_error(result, "rnnkit train forecast", "trained with another data")
    status, stdout, err = run_cli(capsys, *train, "--csv", data, "--steps", 12, "--resume")
    assert status == 0 and "resumed from" in err and "trained steps 7 to 12" in stdout
    _, extra = load_with_extra(out / "model.safetensors")
    assert extra["columns"] == ["temp", "rain", "day_of_year_sin", "day_of_year_cos"]


def test_ensemble_members_learn_as_if_each_were_trained_alone():
    """One batch through an ensemble of two gives each member the gradients it gets alone."""
    from rnnkit.models.forecaster import ForecastEnsemble
    from rnnkit.tasks.forecasting import ForecastTask

    rng = np.random.default_rng(0)
    windows, targets = rng.standard_normal((6, 10, 3)), rng.standard_normal((10, 2))
    scaling = Standardizer(np.zeros(3), np.ones(3))
    task = ForecastTask(windows, targets, np.arange(8), np.arange(8, 10), scaling, 4, 0, "mse")
    model = ForecastEnsemble(3, 2, members=2, hidden_size=4, dtype="float64", seed=0)
    loss, count, _ = task.train_batch(model, 0, 0, None)
    alone = []
    for member in model.members:
        ensemble_grads = {name: grad.copy() for name, grad in member.grads.items()}
        member.zero_grad()
        single = ForecastEnsemble(3, 2, members=1, hidden_size=4, dtype="float64")
        single.members = [member]
        alone.append(task.train_batch(single, 0, 0, None)[0])
        for name, grad in member.grads.items():
            np.testing.assert_allclose(grad, ensemble_grads[name], rtol=1e-12, atol=1e-15)
    assert count == 4 and loss == pytest.approx(np.mean(alone))
