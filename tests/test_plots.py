"""The pictures the command line draws: one panel per unit in loss.png, titles that fit the
figure, units on the axes, the attention's colour bar."""

import sys

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.train.plots import EPOCH_LOSS, panels

LM_UNITS = {
    "loss": "nats per character",
    "val_loss": "nats per character",
    "val_bits_per_char": "bits per character",
}
LONG_TITLE = (
    "the test split of /home/someone/projects/sentiment/data/reviews_with_a_long_name.csv "
    "(the training data: the same sha256)\naccuracy 0.812, macro F1 0.790"
)


def test_quantities_of_one_unit_share_a_panel_and_unknown_ones_stand_alone():
    names = ["loss", "val_accuracy", "val_bits_per_char", "val_loss", "val_mae"]
    units = {**LM_UNITS, "val_accuracy": "share of examples right (0-1)", "val_mae": None}
    assert panels(names, units) == [
        ("nats per character", ["loss", "val_loss"]),
        ("share of examples right (0-1)", ["val_accuracy"]),
        ("bits per character", ["val_bits_per_char"]),
        ("val_mae", ["val_mae"]),  # no unit is invented
    ]


def records():
    """A metrics log: 4 steps, an epoch of 2 steps, validations at steps 2 and 4."""
    steps = [{"kind": "step", "step": s, "loss": 4.0 - s / 2, "grad_norm": 1.0} for s in (1, 2)]
    more = [{"kind": "step", "step": s, "loss": 4.0 - s / 2, "grad_norm": 1.0} for s in (3, 4)]
    validation = {"kind": "validation", "epoch": 0, "val_loss": 3.0, "val_bits_per_char": 4.3}
    return [
        *steps,
        {"kind": "epoch", "step": 2, "epoch": 0, "loss": 3.25},
        {**validation, "step": 2},
        *more,
        {**validation, "step": 4, "val_mae": 2.5},
    ]


def drawn(axes) -> tuple[str, list[str]]:
    """(y-axis label on one line, legend entries) of a panel."""
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    return " ".join(axes.get_ylabel().split()), legend


def test_loss_picture_draws_each_unit_on_its_own_axis_under_the_runs_title():
    pytest.importorskip("matplotlib")
    from rnnkit.train.plots import history_figure

    figure = history_figure(records(), LM_UNITS, "rnnkit train lm — runs/lm")
    assert [drawn(axes) for axes in figure.axes] == [
        ("nats per character", ["training loss (each step)", EPOCH_LOSS, "val_loss"]),
        ("bits per character", ["val_bits_per_char"]),
        ("val_mae", ["val_mae"]),
    ]
    assert figure.axes[-1].get_xlabel() == "step"
    assert figure.get_suptitle() == "rnnkit train lm — runs/lm"
    epoch_line = figure.axes[0].get_lines()[1]
    assert list(epoch_line.get_xdata()) == [1.0]  # the mean of steps 1 and 2, at their middle


def test_training_passes_the_tasks_units_and_the_runs_name(tmp_path, monkeypatch):
    from rnnkit.tasks import pipeline
    from rnnkit.tasks.language_modeling import TASK, LanguageModelOptions
    from rnnkit.train import plots

    text = tmp_path / "tiny.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 40, encoding="utf-8")
    options = LanguageModelOptions(
        texts=(str(text),), steps=4, hidden=8, layers=1, batch=2, seq_len=8, embedding=4,
        out=str(tmp_path / "run"), validate_every=2, checkpoint_every=2,
    )  # fmt: skip
    calls = []
    monkeypatch.setattr(plots, "plot_history", lambda *args: calls.append(args))
    pipeline.train(TASK, options, say=lambda line: None)
    [(log, png, units, title)] = calls
    assert (log.name, png.name) == ("metrics.jsonl", "loss.png")
    assert units == LM_UNITS
    assert title == f"rnnkit train lm — {tmp_path / 'run'}"


def inside(figure, text) -> bool:
    """Whether ``text`` (drawn) lies wholly inside ``figure``."""
    figure.canvas.draw()
    box, frame = text.get_window_extent(), figure.bbox
    return frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1


@pytest.mark.parametrize("classes", [2, 12])
def test_the_confusion_matrix_title_is_whole(classes):
    pytest.importorskip("matplotlib")
    from rnnkit.train.result_plots import confusion_figure

    counts = np.arange(classes * classes).reshape(classes, classes)
    labels = [f"class {index}" for index in range(classes)]
    figure = confusion_figure(counts, labels, LONG_TITLE)
    assert inside(figure, figure._suptitle)  # wrapped to fit, every character kept:
    assert "".join(figure.get_suptitle().split()) == "".join(LONG_TITLE.split())
    for axes in figure.axes:  # the title stays above the matrix and its colour bar
        assert axes.get_window_extent().y1 <= figure._suptitle.get_window_extent().y0


def test_the_forecast_axis_names_the_targets_unit_when_it_is_known(monkeypatch):
    from rnnkit.tasks import forecasting
    from rnnkit.train import result_plots

    assert forecasting.target_unit({"kind": "weather"}, "temp_max") == "°C"
    assert forecasting.target_unit({"kind": "csv", "sha256": "0"}, "temp_max") is None
    drawn = []
    monkeypatch.setattr(result_plots, "plot_forecast", lambda *args: drawn.append(args[-2:]))
    # the report's MAEs are over 3 steps ahead; the picture draws (and is headed by) the first
    report = {"mae": 9.0, "baseline_mae": 9.5, "target": "temp_max", "unit": "°C"}
    curves = {"times": np.arange(3), "actual": np.array([1.0, 2.0, 3.0]),
              "predicted": np.array([1.0, 2.0, 4.0]),
              "persistence": np.array([0.0, 1.0, 2.0])}  # fmt: skip
    forecasting.draw_forecast(report, curves, "f.png", "test split")
    forecasting.draw_forecast({**report, "unit": None}, curves, "f.png", "test split")
    assert drawn == [
        ("test split: one step ahead\nMAE 0.333 °C (model), 1.000 °C (persistence)",
         "temp_max (°C)"),
        ("test split: one step ahead\nMAE 0.333 (model), 1.000 (persistence)", "temp_max"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("times", "named"),
    [
        (np.arange("2020-01-01", "2020-01-04", dtype="datetime64[D]"), "tomorrow = today"),
        (np.arange("2020-01-01", "2020-01-22", 7, dtype="datetime64[D]"), "the previous value"),
        (np.arange(3) + 1, "the previous value"),  # rows of a series without dates
    ],
    ids=["daily", "weekly", "rows"],
)
def test_the_forecast_legend_names_persistence_by_the_series_step(times, named, monkeypatch):
    pytest.importorskip("matplotlib")
    from rnnkit.train import result_plots

    figures = []
    monkeypatch.setattr(result_plots, "save_figure", lambda figure, path: figures.append(figure))
    values = np.arange(3.0)
    assert result_plots.plot_forecast(times, values, values, values, "f.png", "title", "y")
    [figure] = figures
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert labels == ["actual", "forecast (model)", f"persistence ({named})"]


def test_the_attention_map_has_a_labelled_colour_bar(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from rnnkit.tasks import seq2seq
    from rnnkit.train import plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: figures.append(figure))
    weights = np.full((3, 4), 0.25)  # (output steps: 2 tokens and the end, source tokens)
    seq2seq.plot_attention(list("abca"), ["A", "B"], weights, tmp_path / "attention.png")
    [figure] = figures
    heat, colour_bar = figure.axes
    assert [tick.get_text() for tick in heat.get_xticklabels()] == list("abca")
    assert [tick.get_text() for tick in heat.get_yticklabels()] == ["A", "B", "</s>"]
    assert colour_bar.get_ylabel() == "attention weight (0-1)"


def test_the_attention_map_without_matplotlib_is_a_one_line_error(tmp_path, monkeypatch):
    from rnnkit.tasks import seq2seq

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(UserError, match=r"pip install 'rnnkit\[plot\]'"):
        seq2seq.plot_attention(["a"], ["A"], np.ones((2, 1)), tmp_path / "attention.png")


def test_the_gradient_picture_is_titled_with_the_diagnosis():
    pytest.importorskip("matplotlib")
    from rnnkit.diagnostics import describe, diagnose_fresh
    from rnnkit.diagnostics.plot import grad_norms_figure

    result = diagnose_fresh("rnn", length=8, hidden=4, layers=2, jacobian=False)
    figure = grad_norms_figure(result)
    assert figure.get_suptitle().replace("\n", " ") == describe(result)
    assert inside(figure, figure._suptitle)
    assert "L2 norm" in figure.axes[0].get_ylabel()
    assert [text.get_text() for text in figure.axes[0].get_legend().get_texts()] == [
        "layer 0",
        "layer 1",
    ]
