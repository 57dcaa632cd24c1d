"""Pictures of a trained model's results: a confusion matrix and a forecast against the actual
values. Needs matplotlib (``rnnkit[plot]``); each function returns False, drawing nothing,
without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.train.plots import add_title, pyplot, save_figure


def confusion_figure(confusion, labels: list[str], title: str):
    """Counts (C, C) as a heat map, true class down, predicted class across, each cell with its
    count and its share of the row; ``title`` above, wrapped to the figure's width."""
    plt = pyplot()
    counts = np.asarray(confusion)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # (C, C): of each row
    size = 2.5 + 0.6 * len(labels)
    figure, axes = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if shares[row, column] > 0.5 else "black"
        axes.text(
            column,
            row,
            f"{count}\n{shares[row, column]:.0%}",
            ha="center",
            va="center",
            color=colour,
        )
    axes.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 4 else 0)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    figure.colorbar(image, ax=axes, label="share of the true class")
    add_title(figure, title)
    return figure


def plot_confusion(confusion, labels: list[str], png_path: Path, title: str) -> bool:
    """Draw ``confusion_figure`` to ``png_path``."""
    if pyplot() is None:
        return False
    save_figure(confusion_figure(confusion, labels, title), png_path)
    return True


def plot_forecast(
    times, actual, predicted, baseline, png_path: Path, title: str, ylabel: str
) -> bool:
    """The actual series, the model's forecasts and the persistence baseline over ``times``
    (dates as ``datetime64``, or row numbers of the series), one value per time; ``ylabel``
    names the values and their unit. The baseline is named "tomorrow = today" only for days
    one after another, else "the previous value": the series may be weekly, or have no dates."""
    plt = pyplot()
    if plt is None:
        return False
    dates = np.issubdtype(np.asarray(times).dtype, np.datetime64)
    daily = dates and len(times) > 1 and bool((np.diff(times) == np.timedelta64(1, "D")).all())
    figure, axes = plt.subplots(figsize=(11, 4.5), layout="constrained")
    axes.plot(times, actual, color="black", lw=1.4, label="actual")
    axes.plot(times, predicted, color="tab:blue", lw=1.2, label="forecast (model)")
    axes.plot(
        times,
        baseline,
        color="tab:orange",
        lw=0.9,
        ls="--",
        alpha=0.8,
        label=f"persistence ({'tomorrow = today' if daily else 'the previous value'})",
    )
    axes.set_xlabel("date" if dates else "row of the series")
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend()
    if dates:
        figure.autofmt_xdate()
    add_title(figure, title)
    save_figure(figure, png_path)
    return True
