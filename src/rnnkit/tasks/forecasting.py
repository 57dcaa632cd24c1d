"""Forecasting: from a window of past steps of several variables, the next ``horizon`` values of
a target (by default Seattle's daily maximum temperature, from the vega_datasets package).

The series is split in time order, never shuffled across time: the first steps train, the next
``val_fraction`` validate (and choose the best epoch), the last ``test_fraction`` test. An example
belongs to the split that holds its targets; its window may reach back into the split before
(that is the past, known when forecasting). Training shuffles the training windows among
themselves. The scaling (each input standardised) is fitted on the training steps only and saved
with the model, together with the columns, the window and the data's identity (see
``rnnkit.data.identity``), so that ``evaluate_forecaster`` can rebuild the same test split: of the
packaged weather, found by name, or of the user's file when the user gives it again (its sha256
tells it is the same). A path in a model file is never read.

Baselines, on the same windows: persistence (every future value = the last one seen: "tomorrow =
today") and seasonal (the value one ``season`` earlier: "the same day last year").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rnnkit import _arguments
from rnnkit._memory import check_fits
from rnnkit.data.identity import changed, not_read, same_data, saved_data
from rnnkit.data.scaling import Standardizer
from rnnkit.data.series import (
    CALENDAR_COLUMNS,
    Series,
    feature_columns,
    read_series,
    read_table,
)
from rnnkit.data.splits import check_fractions, chronological_split
from rnnkit.data.tables import Table
from rnnkit.data.windows import make_windows, window_starts
from rnnkit.errors import UserError
from rnnkit.io._schema import Fields
from rnnkit.models.forecaster import ForecastEnsemble, Forecaster
from rnnkit.tasks import _common_options as shared
from rnnkit.tasks._options import Options, Spec, option
from rnnkit.tasks._task import Prepared, Task
from rnnkit.train.batching import epoch_batches
from rnnkit.train.losses import mae, mse
from rnnkit.train.metrics import regression_errors
from rnnkit.train.trainer import trained_line

LOSSES = {"mse": mse, "mae": mae}
DEFAULT_DATA = {"target": "temp_max", "date_col": "date"}  # the Seattle weather
# The units of the Seattle weather's columns (its package does not say them: the temperatures
# are plainly Celsius, and each year's precipitation adds up to Seattle's yearly rainfall in mm).
WEATHER_UNITS = {"temp_max": "°C", "temp_min": "°C", "precipitation": "mm", "wind": "m/s"}
# The training loss's unit: the target is standardised by its training steps' standard deviation.
SCALED_LOSS_UNITS = {"mse": "(standard deviations of {})²", "mae": "standard deviations of {}"}


@dataclass
class ForecastOptions(Options):
    """Everything ``rnnkit train forecast`` can set; the defaults train on the Seattle weather in
    a few seconds on 2 cores. window, hidden and cell were chosen by validation MAE alone on the
    default data (benchmarks/forecast_selection.py)."""

    csv: str | None = option(
        None, "one row per time step; default: Seattle's weather", metavar="FILE"
    )
    target: str | None = option(
        None, "the column to forecast (default data: temp_max)", metavar="COL"
    )
    features: tuple[str, ...] | None = option(
        None, "input columns besides the target, comma-separated; default: all numbers",
        metavar="COLS", parse=_arguments.columns,
    )  # fmt: skip
    date_col: str | None = option(None, "dates, increasing (default data: date)", metavar="COL")
    calendar: bool = option(
        True, "add the day of the year (sine, cosine) as inputs, given --date-col", negatable=True
    )
    window: int = option(14, "past steps read", whole=True, low=1)
    horizon: int = option(1, "steps forecast", whole=True, low=1)
    season: int = option(365, "steps in a season, for the seasonal baseline", whole=True, low=1)
    loss: str = option("mse", "training loss: squared or absolute error", choices=tuple(LOSSES))
    members: int = option(
        5, "networks from different initial weights; the forecast is their mean", whole=True,
        low=1,
    )  # fmt: skip
    cell: str = shared.cell("lstm")
    hidden: int = shared.hidden(16)
    layers: int = shared.layers(1)
    dropout: float = shared.dropout(0.0, example="0.1")
    batch: int = shared.batch(32)
    epochs: int | None = shared.epochs(40)
    steps: int | None = shared.steps(None)
    lr: float = shared.learning_rate(1e-3)
    clip: float = shared.clip(1.0)
    val_fraction: float = shared.val_fraction(0.1)
    test_fraction: float = shared.test_fraction(0.1)
    seed: int = shared.seed()
    out: str = shared.out("runs/forecast")
    resume: bool = shared.resume()

    def check_together(self) -> None:
        if self.csv is not None and self.target is None:
            raise UserError("--csv needs --target COL: the column to forecast")
        if self.season < self.horizon:
            raise UserError(
                f"season ({self.season}) must be at least the horizon ({self.horizon}): the "
                "seasonal baseline may only use past values"
            )
        check_fractions(self.val_fraction, self.test_fraction)


@dataclass
class Layout:
    """How a table becomes the model's inputs: saved with the model."""

    target: str
    features: list[str]
    date_col: str | None
    calendar: bool
    window: int
    horizon: int
    season: int

    def series(self, table: Table) -> Series:
        """The series of ``table``, checked cell by cell."""
        features = feature_columns(table, self.target, self.features, self.date_col)
        return read_series(table, self.target, features, self.date_col, self.calendar)


def layout_for(options: ForecastOptions, table: Table) -> Layout:
    """The columns ``options`` name (the default data's when no CSV is given), features resolved
    against ``table``."""
    defaults = DEFAULT_DATA if options.csv is None else {}
    target = options.target or defaults["target"]
    date_col = options.date_col or defaults.get("date_col")
    features = feature_columns(table, target, options.features, date_col)
    return Layout(
        target,
        features,
        date_col,
        options.calendar,
        options.window,
        options.horizon,
        options.season,
    )


def split_starts(series: Series, layout: Layout, val_fraction: float, test_fraction: float):
    """The window starts of the training, validation and test examples (time order);
    ValueError when a split is too short to hold one example."""
    count = len(series)
    train_end, val_end = chronological_split(count, val_fraction, test_fraction)
    bounds = {
        "training": (0, train_end),
        "validation": (train_end, val_end),
        "test": (val_end, count),
    }
    starts = {}
    for name, (first, end) in bounds.items():
        starts[name] = window_starts(count, layout.window, layout.horizon, first, end)
        if len(starts[name]) == 0:
            needed = layout.window + layout.horizon if name == "training" else layout.horizon
            raise UserError(
                f"{series.description} has {count} rows: its {name} split (rows {first + 1} to "
                f"{end}) is too short for --window {layout.window} and --horizon "
                f"{layout.horizon} (it needs at least {needed} rows); give more rows or a "
                "smaller --window or --horizon"
            )
    return starts["training"], starts["validation"], starts["test"]


class ForecastTask:
    """Shuffled minibatches of training windows; validation MAE in the target's units."""

    def __init__(
        self,
        windows,
        targets,
        train,
        val,
        scaling: Standardizer,
        batch_size: int,
        seed: int,
        loss: str,
    ) -> None:
        self.windows, self.targets = windows, targets  # (W, M, F) and (M, horizon), scaled
        self.train, self.val = train, val  # example indices
        self.scaling, self.batch_size, self.seed = scaling, batch_size, seed
        self.loss = LOSSES[loss]

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.train) / self.batch_size)

    def train_batch(self, model, epoch: int, index: int, carry):
        """One batch through every member of the ensemble ``model``, each on its own loss (so
        that each learns as if trained alone); returns their mean loss."""
        chosen = self.train[
            epoch_batches(len(self.train), self.batch_size, self.seed, epoch)[index]
        ]
        losses = []
        for member in model.members:
            predictions, backward = member.forward(self.windows[:, chosen])
            loss, d_predictions = self.loss(predictions, self.targets[chosen])
            backward(d_predictions)
            losses.append(loss)
        return float(np.mean(losses)), len(chosen), None

    def validate(self, model) -> dict[str, float]:
        predictions = model(self.windows[:, self.val])  # (M, horizon), scaled
        loss, _ = self.loss(predictions, self.targets[self.val])
        scaled_error = np.abs(predictions - self.targets[self.val]).mean()
        return {"val_loss": loss, "val_mae": float(scaled_error * self.scaling.std[0])}


def check_windows_fit(count: int, window: int, width: int) -> None:
    """UserError, before they are made, when ``count`` windows of ``window`` steps of ``width``
    inputs (float64, with a scaled copy and a float32 one) would not fit in memory."""
    check_fits(
        2.5 * 8 * count * window * width,
        f"{count} windows of {window} steps of {width} inputs",
        "give fewer rows, or use a shorter window",
    )


def persistence_forecast(target: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    """ "Tomorrow = today": the last value before each example's start, for every step ahead,
    shaped (M, horizon)."""
    return np.repeat(target[starts - 1][:, None], horizon, axis=1)


def forecast_report(
    model,
    series: Series,
    starts: np.ndarray,
    layout: Layout,
    scaling: Standardizer,
    unit: str | None,
) -> tuple[dict, dict]:
    """``(report, curves)``: mae and rmse of the model and of the persistence and seasonal
    baselines over the examples at ``starts``, in the target's ``unit`` (None: unknown, kept as
    the report's "unit"); and the one-step-ahead forecasts, actual values and persistence values
    with their times, for a picture.

    The seasonal baseline is None when the first example has less than a season of history.
    """
    check_windows_fit(len(starts), layout.window, series.inputs.shape[1])
    windows, actual = make_windows(
        series.inputs, series.target, starts, layout.window, layout.horizon
    )
    scaled = scaling.transform(windows).astype(model.dtype)  # (W, M, F)
    predicted = scaling.inverse(model(scaled), column=0)  # (M, horizon)
    persistence = persistence_forecast(series.target, starts, layout.horizon)
    report = regression_errors(predicted, actual)
    report["mae_by_step"] = np.abs(predicted - actual).mean(axis=0).tolist()
    baseline = regression_errors(persistence, actual)
    report.update(baseline_mae=baseline["mae"], baseline_rmse=baseline["rmse"])
    seasonal = {"mae": None, "rmse": None}
    if starts[0] >= layout.season:
        ahead = starts[:, None] + np.arange(layout.horizon)[None, :]  # (M, horizon) steps
        seasonal = regression_errors(series.target[ahead - layout.season], actual)
    report.update(seasonal_mae=seasonal["mae"], seasonal_rmse=seasonal["rmse"])
    report.update(
        target=layout.target,
        unit=unit,
        horizon=layout.horizon,
        windows=len(starts),
        season=layout.season,
    )
    if series.times is not None:
        report["period"] = [str(series.times[starts[0]]), str(series.times[starts[-1]])]
    curves = {
        "times": series.times[starts] if series.times is not None else starts + 1,
        "actual": actual[:, 0],
        "predicted": predicted[:, 0],
        "persistence": persistence[:, 0],
    }
    return report, curves


def target_unit(identity: dict, target: str) -> str | None:
    """The unit of the column ``target`` of the data of ``identity``: known for the packaged
    weather's columns, None for a user's file (a CSV does not say its units)."""
    return WEATHER_UNITS.get(target) if identity.get("kind") == "weather" else None


def measured(value: float, unit: str | None, digits: int = 3) -> str:
    """``value`` with its ``unit`` when known: "2.179 °C", or "2.179"."""
    return f"{value:.{digits}f} {unit}" if unit else f"{value:.{digits}f}"


def against_persistence(report: dict, digits: int = 3) -> str:
    """How the model's MAE in ``report`` compares with persistence's, as "12.0% lower than
    persistence (MAE 2.476 °C)" or "3.3% higher than ..."."""
    mae, baseline = report["mae"], report["baseline_mae"]
    if mae == baseline:
        comparison = "the same as persistence"
    elif baseline == 0:  # a constant series: persistence is exact
        comparison = "higher than persistence"
    else:
        change = mae / baseline - 1
        comparison = f"{abs(change):.1%} {'higher' if change > 0 else 'lower'} than persistence"
    return f"{comparison} (MAE {measured(baseline, report['unit'], digits)})"


def draw_forecast(report: dict, curves: dict, png_path: Path, title: str) -> bool:
    """The one-step-ahead forecast against the actual values, in the report's unit, headed by
    the MAEs of what it draws (the report's are over every step of the horizon)."""
    from rnnkit.train.result_plots import plot_forecast

    unit = report["unit"]
    model, persistence = (
        measured(float(np.abs(curves[name] - curves["actual"]).mean()), unit)
        for name in ("predicted", "persistence")
    )
    heading = f"{title}: one step ahead\nMAE {model} (model), {persistence} (persistence)"
    return plot_forecast(
        curves["times"],
        curves["actual"],
        curves["predicted"],
        curves["persistence"],
        png_path,
        heading,
        f"{report['target']} ({unit})" if unit else report["target"],
    )


@dataclass
class SavedForecaster:
    """A forecaster file's saved extra, checked: its layout, its input columns, their scaling and
    its data (``rnnkit.data.identity.saved_data`` with the series' "rows")."""

    layout: Layout
    columns: list[str]
    scaling: Standardizer
    data: dict


def saved_forecaster(model, extra) -> SavedForecaster:
    """Every field of a forecaster's saved ``extra`` that evaluation and prediction use, checked
    against ``model`` (a Forecaster or ForecastEnsemble) before anything uses it; a one-line
    UserError names the first bad one."""
    fields = Fields(extra, "the model file's saved extra", "re-train the model")
    fields.get("task", str, choices=["forecast"])
    config = model.config()
    data = saved_data(fields, packaged=("weather",), users=("csv",))
    data["rows"] = fields.get("data.rows", int, low=3)
    fields.get("layout", dict)
    horizon = fields.get("layout.horizon", int)
    if horizon != config["horizon"]:
        steps = f"{config['horizon']} step{'s' if config['horizon'] > 1 else ''}"
        fields.fail(
            "layout.horizon", f"is {horizon}, but the model's output layer forecasts {steps}"
        )
    layout = Layout(
        target=fields.get("layout.target", str),
        features=fields.get("layout.features", list, items=str),
        date_col=fields.get("layout.date_col", str, optional=True),
        calendar=fields.get("layout.calendar", bool),
        window=fields.get("layout.window", int, low=1, high=data["rows"] - horizon),
        horizon=horizon,
        season=fields.get("layout.season", int, low=horizon),
    )
    size = config["input_size"]
    columns = fields.get("columns", list, items=str, low=size, high=size)
    calendar = CALENDAR_COLUMNS if layout.calendar and layout.date_col is not None else ()
    if columns != [layout.target, *layout.features, *calendar]:
        fields.fail(
            "columns", "are not the target, the features and the calendar inputs of its layout"
        )
    scaling = Standardizer.from_fields(fields, "scaling", size)
    return SavedForecaster(layout, columns, scaling, data)


def _series(saved: SavedForecaster, csv) -> tuple[Series, dict]:
    """The series of ``csv`` (a path the user gave) or, for a model of the packaged weather,
    of the weather (found by name), read with the saved layout, and the identity of its data.
    ValueError unless it gives the inputs the model was trained on."""
    if csv is None and "file" in saved.data:
        raise not_read(saved.data, "--csv")
    table = read_table(csv)
    series = saved.layout.series(table)
    if series.columns != saved.columns:
        raise UserError(
            f"{series.description} gives the inputs {series.columns}, but the model was trained "
            f"on {saved.columns}; give a file with those columns"
        )
    return series, table.identity


def evaluate_forecaster(model, extra, csv=None, png_path=None) -> tuple[dict, str, bool]:
    """``(report, description, drew)`` on the remembered test split of the packaged weather
    (``csv`` None) or of the training file given again (the same sha256), else on every window
    of ``csv``; draws the forecast against the actual values to ``png_path`` if given (``drew``
    is False when it is not, or matplotlib is missing)."""
    saved = saved_forecaster(model, extra)
    series, identity = _series(saved, csv)
    data, layout = saved.data, saved.layout
    training = same_data(data, identity)
    if csv is None and not training:
        raise changed(series.description, data, identity, "--csv FILE")
    if training:
        if len(series) != data["rows"]:
            raise UserError(
                f"{series.description} now has {len(series)} rows, but the model was trained when "
                f"it had {data['rows']}: its test split cannot be rebuilt; give data with --csv"
            )
        *_, starts = split_starts(series, layout, data["val_fraction"], data["test_fraction"])
        origin = "" if csv is None else " (the training data: the same sha256)"
        description = f"the test split of {series.description}{origin}"
    else:
        starts = window_starts(len(series), layout.window, layout.horizon, 0, len(series))
        if len(starts) == 0:
            raise UserError(
                f"{series.description} has {len(series)} rows, too few for one window of "
                f"{layout.window} steps and {layout.horizon} to forecast; give more rows"
            )
        description = series.description
    unit = target_unit(identity, layout.target)
    report, curves = forecast_report(model, series, starts, layout, saved.scaling, unit)
    drew = png_path is not None and draw_forecast(report, curves, Path(png_path), description)
    return report, description, drew


def predict_next(model, extra, csv=None) -> list[dict]:
    """The next ``horizon`` values after the end of ``csv`` (or, for a model of the packaged
    weather, of the weather): ``[{"step": k, "date": ... or None, "value": v}, ...]``."""
    saved = saved_forecaster(model, extra)
    series, _ = _series(saved, csv)
    layout = saved.layout
    if len(series) < layout.window:
        raise UserError(
            f"{series.description} has {len(series)} rows, but the model reads windows of "
            f"{layout.window}; give at least {layout.window} rows"
        )
    window = saved.scaling.transform(series.inputs[-layout.window :])[:, None].astype(model.dtype)
    values = saved.scaling.inverse(model(window)[0], column=0)  # (horizon,)
    dates = [None] * layout.horizon
    if series.times is not None and len(series) > 1:
        step = series.times[-1] - series.times[-2]
        dates = [str(series.times[-1] + step * (k + 1)) for k in range(layout.horizon)]
    return [
        {"step": k + 1, "date": dates[k], "value": float(value)} for k, value in enumerate(values)
    ]


@dataclass
class ForecastData:
    """What ``Forecasting.finish`` scores after training: the series, its test windows' starts,
    the layout and the scaling fitted on the training steps."""

    series: Series
    test: np.ndarray  # (M,) window starts
    layout: Layout
    scaling: Standardizer
    unit: str | None  # the target's, when known


CSV = Spec("csv", None, "the series", metavar="FILE")


class Forecasting(Task):
    """Forecasters: an ensemble trained on windows of a series, the epoch of the best validation
    MAE kept, scored on the test split against the persistence and seasonal baselines."""

    name = "forecast"
    summary = "forecast the next values of a series"
    noun = "forecaster"
    options = ForecastOptions
    model_classes = (Forecaster, ForecastEnsemble)
    evaluate_options = (CSV, Spec("plot", None, "draw the forecast to this file", metavar="PNG"))
    predict_options = (CSV,)

    def prepare(self, options: ForecastOptions, say) -> Prepared:
        table = read_table(options.csv)
        layout = layout_for(options, table)
        series = layout.series(table)
        fractions = options.val_fraction, options.test_fraction
        train, val, test = split_starts(series, layout, *fractions)
        train_end, _ = chronological_split(len(series), *fractions)
        scaling = Standardizer.fit(series.inputs[:train_end])  # the training steps only
        scaled = scaling.transform(series.inputs)  # (N, F)
        starts = np.concatenate([train, val])
        check_windows_fit(len(starts), layout.window, scaled.shape[1])
        windows, targets = make_windows(scaled, scaled[:, 0], starts, layout.window, layout.horizon)
        say(
            f"data: {series.description}: {len(series)} steps; inputs {series.columns}; "
            f"{len(train)} training, {len(val)} validation and {len(test)} test windows of "
            f"{layout.window} steps -> the next {layout.horizon} {layout.target}"
        )
        model = ForecastEnsemble(
            len(series.columns), layout.horizon, members=options.members,
            hidden_size=options.hidden, num_layers=options.layers, cell=options.cell,
            dropout=options.dropout, seed=options.seed,
        )  # fmt: skip
        training = ForecastTask(
            windows.astype(np.float32), targets.astype(np.float32), np.arange(len(train)),
            np.arange(len(train), len(starts)), scaling, options.batch, options.seed, options.loss,
        )  # fmt: skip
        extra = {
            "task": "forecast",
            "layout": asdict(layout),
            "columns": series.columns,
            "scaling": scaling.to_json(),
            "data": {
                **table.identity,
                "val_fraction": options.val_fraction,
                "test_fraction": options.test_fraction,
                "rows": len(series),
            },
            "options": asdict(options),
        }
        unit = target_unit(table.identity, layout.target)
        scaled_loss = SCALED_LOSS_UNITS[options.loss].format(layout.target)
        return Prepared(
            model,
            training,
            extra,
            trainer={"monitor": "val_mae", "progress_unit": "windows"},
            keep_best=True,
            state=ForecastData(series, test, layout, scaling, unit),
            units={"loss": scaled_loss, "val_loss": scaled_loss, "val_mae": unit},
        )

    def finish(self, prepared: Prepared, summary: dict, out: Path) -> dict:
        """The test split's figures (saved with the model) and ``forecast.png``."""
        data = prepared.state
        report, curves = forecast_report(
            prepared.model, data.series, data.test, data.layout, data.scaling, data.unit
        )
        prepared.extra["test"] = report
        title = f"test split of {data.series.description}"
        drew = draw_forecast(report, curves, out / "forecast.png", title)
        return {"test": report, "forecast_png": str(out / "forecast.png") if drew else None}

    def report(self, summary: dict) -> str:
        test = summary["test"]
        lines = [
            f"\n{trained_line(summary)}; test "
            f"MAE {measured(test['mae'], test['unit'])}, {against_persistence(test)}; RMSE "
            f"{measured(test['rmse'], test['unit'])} over {test['windows']} windows; model: "
            f"{summary['model_path']}"
        ]
        if summary["forecast_png"]:
            lines.append(f"forecast against the actual values: {summary['forecast_png']}")
        return "\n".join(lines)

    def evaluate(self, path, model, extra, csv=None, plot=None) -> tuple[dict, str]:
        result, description, drew = evaluate_forecaster(model, extra, csv, plot)
        if plot and not drew:
            raise UserError("--plot needs matplotlib: pip install 'rnnkit[plot]'")
        seasonal, unit = result["seasonal_mae"], result["unit"]
        if seasonal is not None:
            seasonal = measured(seasonal, unit, 4)
        return result, (
            f"MAE {measured(result['mae'], unit, 4)}, {against_persistence(result, 4)}; RMSE "
            f"{measured(result['rmse'], unit, 4)}; seasonal MAE "
            f"{seasonal or 'n/a (under a season of history)'} over {result['windows']} windows "
            f"of {description}"
        )

    def predict(self, path, model, extra, csv=None) -> tuple[list, list[str]]:
        results = predict_next(model, extra, csv)
        lines = [f"{result['date'] or '+' + str(result['step'])}\t{result['value']:.4f}"
                 for result in results]  # fmt: skip
        return results, lines


TASK = Forecasting()
