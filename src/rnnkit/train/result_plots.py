"""Pictures of a trained model's results: a confusion matrix and a forecast against the actual
values. Needs matplotlib (``rnnkit[plot]``); each function returns False, drawing nothing,
without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.train.plots import save_figure


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_confusion(confusion, labels: list[str], png_path: Path, title: str) -> bool:
    """Counts (C, C) as a heat map, true class down, predicted class across, with row shares."""
    plt = _pyplot()
    if plt is None:
        return False
    counts = np.asarray(confusion)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # (C, C): of each row
    size = 2.5 + 0.6 * len(labels)
    figure, axes = plt.subplots(figsize=(size + 1, size))
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
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="share of the true class")
    figure.tight_layout()
    save_figure(figure, png_path)
    return True


def plot_forecast(
    times, actual, predicted, baseline, png_path: Path, title: str, ylabel: str
) -> bool:
    """The actual series, the model's forecasts and the persistence baseline over ``times``
    (dates as ``datetime64`` or step numbers), one value per time."""
    plt = _pyplot()
    if plt is None:
        return False
    figure, axes = plt.subplots(figsize=(11, 4.5))
    axes.plot(times, actual, color="black", lw=1.4, label="actual")
    axes.plot(times, predicted, color="tab:blue", lw=1.2, label="forecast (model)")
    axes.plot(
        times,
        baseline,
        color="tab:orange",
        lw=0.9,
        ls="--",
        alpha=0.8,
        label="persistence (tomorrow = today)",
    )
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.autofmt_xdate()
    figure.tight_layout()
    save_figure(figure, png_path)
    return True
